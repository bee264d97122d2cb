//! The writer side: the transactions that deploy and call contracts, signed with one key.
//!
//! A deploy is two transactions, as an inscription is:
//!
//! 1. the **commit** spends a coin of the key's P2WPKH address and pays a taproot output whose
//!    internal key is the key and whose single leaf is the envelope
//!    ([`crate::envelope::leaf_script`]), plus change back to the P2WPKH address;
//! 2. the **reveal** spends the commit's change (input 0: the deployer, the contract's caller
//!    in `vc_init`) and the taproot output by its script path (input 1: signature, leaf script,
//!    control block), and carries the deploy payload in output 0 (envelope input 1), with
//!    change in output 1.
//!
//! A call is one transaction: input 0 spends a coin of the P2WPKH address (the caller), output
//! 0 carries the call payload, output 1 pays the platform's pay script when an amount is paid,
//! and the last output is change.
//!
//! Fees are `fee_rate` satoshis per virtual byte of the signed transaction.

use bitcoin::key::{Keypair, Secp256k1};
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{LeafVersion, TapLeafHash, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness, absolute, transaction,
};
use sha2::{Digest, Sha256};

use crate::envelope::leaf_script;
use crate::wire::{CallBody, DeployBody, OP_CALL, OP_DEPLOY, PAYLOAD_LIMIT, payload};

/// Outputs below this are not relayed (dust); the writer never makes one.
pub const DUST: u64 = 546;

/// Why transactions could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The coin does not cover the outputs and the fee.
    #[error("the coin holds {have} sat, {need} are needed")]
    Insufficient {
        /// The coin's value.
        have: u64,
        /// Outputs and fees.
        need: u64,
    },
    /// The payload is longer than the platform accepts.
    #[error("the payload has {0} bytes, at most {PAYLOAD_LIMIT}")]
    PayloadTooLong(usize),
    /// The method is not a method name.
    #[error("{0:?} is not a method (1 to 32 bytes of a-z, 0-9, '_', '-')")]
    Method(String),
    /// Signing failed.
    #[error("signing input {input}")]
    Sign {
        /// The input.
        input: usize,
        /// The failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A spendable output: where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The outpoint.
    pub outpoint: OutPoint,
    /// Its value and script.
    pub txout: TxOut,
}

/// A deploy's two transactions, to broadcast in order.
#[derive(Clone, Debug)]
pub struct Deploy {
    /// The commit transaction.
    pub commit: Transaction,
    /// The reveal transaction: its txid is the contract's id.
    pub reveal: Transaction,
}

impl Deploy {
    /// The contract's id (the reveal's txid).
    pub fn contract(&self) -> Txid {
        self.reveal.compute_txid()
    }
}

/// One key that funds, deploys and calls: its P2WPKH address holds the coins and is the
/// caller; its x-only form is the envelope's internal key and leaf key.
#[derive(Clone, Debug)]
pub struct Writer {
    secp: Secp256k1<All>,
    keypair: Keypair,
}

impl Writer {
    /// The writer of `secret`.
    pub fn new(secret: SecretKey) -> Writer {
        let secp = Secp256k1::new();
        let keypair = Keypair::from_secret_key(&secp, &secret);
        Writer { secp, keypair }
    }

    /// The P2WPKH script that holds the writer's coins (the caller of its operations).
    pub fn script(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&CompressedPublicKey(self.keypair.public_key()).wpubkey_hash())
    }

    fn envelope(&self, code: &[u8]) -> Result<(ScriptBuf, TaprootSpendInfo), BuildError> {
        let xonly = self.keypair.x_only_public_key().0;
        let leaf = leaf_script(code, &xonly);
        let info = TaprootBuilder::new()
            .add_leaf(0, leaf.clone())
            .and_then(|b| {
                b.finalize(&self.secp, xonly)
                    .map_err(|_| bitcoin::taproot::TaprootBuilderError::EmptyTree)
            })
            .map_err(|e| BuildError::Sign {
                input: 1,
                source: Box::new(e),
            })?;
        Ok((leaf, info))
    }

    /// The taproot script the commit pays for `code`.
    pub fn commit_script(&self, code: &[u8]) -> Result<ScriptBuf, BuildError> {
        let (_, info) = self.envelope(code)?;
        Ok(ScriptBuf::new_p2tr_tweaked(info.output_key()))
    }

    /// The commit and reveal that deploy `code` with `args` for `vc_init`, funded by `coin`
    /// (an output of [`Writer::script`]).
    pub fn deploy(
        &self,
        coin: &Coin,
        code: &[u8],
        args: &[u8],
        fee_rate: u64,
    ) -> Result<Deploy, BuildError> {
        let (leaf, info) = self.envelope(code)?;
        let hash: [u8; 32] = Sha256::digest(code).into();
        let body = DeployBody {
            envelope_input: 1,
            code_hash: hash,
            args: args.to_vec(),
        };
        let data = op_return(&payload(OP_DEPLOY, &body.encode()))?;
        let commit_out = TxOut {
            value: Amount::from_sat(DUST),
            script_pubkey: ScriptBuf::new_p2tr_tweaked(info.output_key()),
        };
        // The reveal's size does not depend on amounts: sign it once with placeholders to
        // learn its fee, then fund it through the commit's change.
        let probe_reveal = |change: u64, prev: [Coin; 2]| -> Result<Transaction, BuildError> {
            let tx = unsigned(
                &prev.iter().map(|c| c.outpoint).collect::<Vec<_>>(),
                vec![
                    data.clone(),
                    TxOut {
                        value: Amount::from_sat(change),
                        script_pubkey: self.script(),
                    },
                ],
            );
            self.sign_reveal(tx, &prev, &leaf, &info)
        };
        let commit_for = |change: u64| -> Result<Transaction, BuildError> {
            let tx = unsigned(
                &[coin.outpoint],
                vec![
                    commit_out.clone(),
                    TxOut {
                        value: Amount::from_sat(change),
                        script_pubkey: self.script(),
                    },
                ],
            );
            self.sign_p2wpkh(tx, std::slice::from_ref(coin), &[0])
        };
        let commit_fee = fee_rate * commit_for(0)?.vsize() as u64;
        let have = coin.txout.value.to_sat();
        let dummy = Coin {
            outpoint: OutPoint::null(),
            txout: commit_out.clone(),
        };
        let reveal_fee = fee_rate * probe_reveal(0, [dummy.clone(), dummy])?.vsize() as u64;
        let need = DUST + commit_fee + reveal_fee + DUST;
        if have < need {
            return Err(BuildError::Insufficient { have, need });
        }
        let commit = commit_for(have - DUST - commit_fee)?;
        let txid = commit.compute_txid();
        let prev = [
            Coin {
                outpoint: OutPoint::new(txid, 1),
                txout: commit.output[1].clone(),
            },
            Coin {
                outpoint: OutPoint::new(txid, 0),
                txout: commit.output[0].clone(),
            },
        ];
        let change = have - DUST - commit_fee + DUST - reveal_fee;
        let reveal = probe_reveal(change, prev)?;
        Ok(Deploy { commit, reveal })
    }

    /// A call of `method` on `contract` with `args`, paying `amount` to `pay_script` (nothing
    /// when 0), funded by `coin`.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        coin: &Coin,
        contract: Txid,
        method: &str,
        args: &[u8],
        amount: u64,
        pay_script: &ScriptBuf,
        fee_rate: u64,
    ) -> Result<Transaction, BuildError> {
        if !crate::wire::valid_method(method.as_bytes()) {
            return Err(BuildError::Method(method.into()));
        }
        let body = CallBody {
            contract,
            method: method.into(),
            args: args.to_vec(),
        };
        let mut outputs = vec![op_return(&payload(OP_CALL, &body.encode()))?];
        if amount > 0 {
            outputs.push(TxOut {
                value: Amount::from_sat(amount),
                script_pubkey: pay_script.clone(),
            });
        }
        let make = |change: u64| -> Result<Transaction, BuildError> {
            let mut outs = outputs.clone();
            outs.push(TxOut {
                value: Amount::from_sat(change),
                script_pubkey: self.script(),
            });
            self.sign_p2wpkh(
                unsigned(&[coin.outpoint], outs),
                std::slice::from_ref(coin),
                &[0],
            )
        };
        let fee = fee_rate * make(0)?.vsize() as u64;
        let have = coin.txout.value.to_sat();
        let need = amount + fee + DUST;
        if have < need {
            return Err(BuildError::Insufficient { have, need });
        }
        make(have - amount - fee)
    }

    /// Signs the P2WPKH inputs `which` of `tx` (SIGHASH_ALL); `prev` are the outputs every
    /// input spends.
    fn sign_p2wpkh(
        &self,
        mut tx: Transaction,
        prev: &[Coin],
        which: &[usize],
    ) -> Result<Transaction, BuildError> {
        let pk = CompressedPublicKey(self.keypair.public_key());
        for &i in which {
            let value = prev.get(i).map_or(Amount::ZERO, |c| c.txout.value);
            let hash = SighashCache::new(&tx)
                .p2wpkh_signature_hash(i, &self.script(), value, EcdsaSighashType::All)
                .map_err(|e| BuildError::Sign {
                    input: i,
                    source: Box::new(e),
                })?;
            let sig = self
                .secp
                .sign_ecdsa(&Message::from(hash), &self.keypair.secret_key());
            let sig = bitcoin::ecdsa::Signature::sighash_all(sig);
            if let Some(input) = tx.input.get_mut(i) {
                input.witness = Witness::p2wpkh(&sig, &pk.0);
            }
        }
        Ok(tx)
    }

    /// Signs a reveal: input 0 P2WPKH, input 1 the envelope's script path.
    fn sign_reveal(
        &self,
        tx: Transaction,
        prev: &[Coin; 2],
        leaf: &ScriptBuf,
        info: &TaprootSpendInfo,
    ) -> Result<Transaction, BuildError> {
        let mut tx = self.sign_p2wpkh(tx, prev, &[0])?;
        let outs: Vec<TxOut> = prev.iter().map(|c| c.txout.clone()).collect();
        let sign_err = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::Sign {
            input: 1,
            source,
        };
        let hash = SighashCache::new(&tx)
            .taproot_script_spend_signature_hash(
                1,
                &Prevouts::All(&outs),
                TapLeafHash::from_script(leaf, LeafVersion::TapScript),
                TapSighashType::Default,
            )
            .map_err(|e| sign_err(Box::new(e)))?;
        let sig = self
            .secp
            .sign_schnorr_no_aux_rand(&Message::from(hash), &self.keypair);
        let control = info
            .control_block(&(leaf.clone(), LeafVersion::TapScript))
            .ok_or_else(|| sign_err("the leaf is not in the tree".into()))?;
        let mut w = Witness::new();
        w.push(sig.serialize());
        w.push(leaf.as_bytes());
        w.push(control.serialize());
        if let Some(input) = tx.input.get_mut(1) {
            input.witness = w;
        }
        Ok(tx)
    }
}

fn unsigned(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .iter()
            .map(|o| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

fn op_return(payload: &[u8]) -> Result<TxOut, BuildError> {
    if payload.len() > PAYLOAD_LIMIT {
        return Err(BuildError::PayloadTooLong(payload.len()));
    }
    let push = PushBytesBuf::try_from(payload.to_vec())
        .map_err(|_| BuildError::PayloadTooLong(payload.len()))?;
    Ok(TxOut {
        value: Amount::ZERO,
        script_pubkey: Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(push)
            .into_script(),
    })
}
