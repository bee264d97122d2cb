//! The writer side: build and sign each operation's transaction.
//!
//! A [`Wallet`] holds one key (from WIF) and spends its own coins, P2WPKH (default) or P2PKH.
//! Each `plan_*` function lays out an operation's outputs the way the rules expect them
//! (OP_RETURN first, then the operation's outputs, with the change where BNS puts it).
//!
//! Funding is the generic writer wallet's job ([`vc_source::wallet`]: coin selection that skips
//! immature coinbases and follows the key's unconfirmed change, fee rates, dust checks,
//! replacements): [`Plan::slots`] hands it the outputs and [`Wallet::sign_outputs`] signs what
//! it picks. [`Wallet::sign`] is the simple path, with given coins and a given fee.
//! Broadcasting goes through any [`vc_source::Broadcaster`].

use bitcoin::hashes::Hash;
use bitcoin::key::CompressedPublicKey;
use bitcoin::secp256k1::{All, Message, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    Address, Amount, Network, OutPoint, PrivateKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness, absolute, transaction,
};

use vc_source::wallet::{CoinStatus, Slot};

use crate::app::burn_script;
use crate::wire::{
    NameOp, NamespaceParams, name_consensus_hash, name_hash16, preorder_hash, split_fqn,
};

/// The value of outputs that only carry an address (owner, recipient, revealer), in satoshis.
pub const DUST: u64 = 5_500;

/// Why a transaction cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The WIF string does not decode.
    #[error("bad WIF key: {0}")]
    Wif(String),
    /// The key is uncompressed and the wallet wants P2WPKH.
    #[error("an uncompressed key cannot own a P2WPKH output")]
    Uncompressed,
    /// A name or namespace id is invalid.
    #[error("{0}")]
    Name(String),
    /// The coins do not cover outputs and fee.
    #[error("the coins hold {have} sat but the transaction needs {need} sat")]
    Insufficient {
        /// Satoshis in the funding coins.
        have: u64,
        /// Outputs plus fee plus the change's dust floor.
        need: u64,
    },
    /// A coin is not the wallet's.
    #[error("coin {0} does not pay the wallet's script")]
    ForeignCoin(OutPoint),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
}

/// One output of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedOutput {
    /// The wallet's change (what is left after outputs and fee).
    Change,
    /// A fixed payment.
    Pay(TxOut),
}

/// An operation's transaction before funding: payload and outputs after the OP_RETURN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The operation.
    pub op: NameOp,
    /// Outputs 1, 2, ... in order.
    pub outputs: Vec<PlannedOutput>,
}

/// A coin the wallet can spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it is.
    pub txout: TxOut,
}

impl Plan {
    /// The plan with one more output paying [`DUST`] to `marker` (the registry of a marker
    /// deployment), after every output the rules look at by position.
    pub fn with_marker(mut self, marker: &ScriptBuf) -> Plan {
        self.outputs.push(pay(marker.clone(), DUST));
        self
    }

    /// [`Plan::with_marker`] when the deployment `config` has a registry, else the plan.
    pub fn for_deployment(self, config: &crate::NamesConfig) -> Plan {
        match &config.registry {
            Some(r) => self.with_marker(r),
            None => self,
        }
    }

    /// The transaction's outputs for the writer wallet ([`vc_source::wallet::fund`]): the
    /// OP_RETURN carrying the operation, then the plan's outputs, the change paying `change`.
    pub fn slots(&self, change: &ScriptBuf) -> Result<Vec<Slot>, BuildError> {
        let mut slots = vec![Slot::Fixed(TxOut {
            value: Amount::ZERO,
            script_pubkey: op_return(&self.op.payload())?,
        })];
        slots.extend(self.outputs.iter().map(|o| match o {
            PlannedOutput::Pay(t) => Slot::Fixed(t.clone()),
            PlannedOutput::Change => Slot::Change(change.clone()),
        }));
        Ok(slots)
    }
}

/// The position of the wallet's change in the transaction of a names operation, by the layout
/// the `plan_*` functions give each operation (after the OP_RETURN at 0: 1 for preorders,
/// ready, update and revoke; 2 for reveal, registration, renewal and transfer). `None` when
/// `tx` carries no names operation. The caller checks the output pays the wallet: a change
/// below the dust limit may have been left out.
pub fn change_index(tx: &Transaction) -> Option<usize> {
    let carried = vc_codec::carrier::Carrier::default().extract(tx).ok()??;
    if carried.data.get(..2)? != &crate::wire::MAGIC[..] {
        return None;
    }
    let op = NameOp::decode(*carried.data.get(2)?, carried.data.get(3..)?).ok()?;
    Some(match op {
        NameOp::NamespacePreorder { .. }
        | NameOp::NamePreorder { .. }
        | NameOp::NamespaceReady { .. }
        | NameOp::NameUpdate { .. }
        | NameOp::NameRevoke { .. } => 1,
        NameOp::NamespaceReveal { .. }
        | NameOp::NameRegistration { .. }
        | NameOp::NameTransfer { .. } => 2,
    })
}

fn pay(script: ScriptBuf, sat: u64) -> PlannedOutput {
    PlannedOutput::Pay(TxOut {
        value: Amount::from_sat(sat),
        script_pubkey: script,
    })
}

fn name_err(e: impl std::fmt::Display) -> BuildError {
    BuildError::Name(e.to_string())
}

/// `*`: preorders `namespace_id` for `reveal` (the address that will make it ready), burning
/// `burn` satoshis. `sender` is the script of the wallet that will also send the reveal.
pub fn plan_namespace_preorder(
    namespace_id: &str,
    sender: &ScriptBuf,
    reveal: &Address,
    consensus_hash: [u8; 16],
    burn: u64,
) -> Result<Plan, BuildError> {
    crate::wire::check_namespace_id(namespace_id).map_err(name_err)?;
    let hash = preorder_hash(namespace_id, sender.as_bytes(), &reveal.to_string())
        .ok_or_else(|| name_err("namespace id outside base 40"))?;
    Ok(Plan {
        op: NameOp::NamespacePreorder {
            preorder_hash: hash,
            consensus_hash,
        },
        outputs: vec![PlannedOutput::Change, pay(burn_script(), burn)],
    })
}

/// `&`: reveals `namespace_id` with `params`; output 1 pays the reveal address.
pub fn plan_namespace_reveal(
    namespace_id: &str,
    params: NamespaceParams,
    reveal: &Address,
) -> Result<Plan, BuildError> {
    crate::wire::check_namespace_id(namespace_id).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NamespaceReveal {
            namespace_id: namespace_id.into(),
            params,
        },
        outputs: vec![pay(reveal.script_pubkey(), DUST), PlannedOutput::Change],
    })
}

/// `!`: makes `namespace_id` ready (sent by the reveal address's wallet).
pub fn plan_namespace_ready(namespace_id: &str) -> Result<Plan, BuildError> {
    crate::wire::check_namespace_id(namespace_id).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NamespaceReady {
            namespace_id: namespace_id.into(),
        },
        outputs: vec![PlannedOutput::Change],
    })
}

/// `?`: preorders `name` for `owner`, burning `burn` satoshis.
pub fn plan_name_preorder(
    name: &str,
    sender: &ScriptBuf,
    owner: &Address,
    consensus_hash: [u8; 16],
    burn: u64,
) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    let hash = preorder_hash(name, sender.as_bytes(), &owner.to_string())
        .ok_or_else(|| name_err("name outside base 40"))?;
    Ok(Plan {
        op: NameOp::NamePreorder {
            preorder_hash: hash,
            consensus_hash,
        },
        outputs: vec![PlannedOutput::Change, pay(burn_script(), burn)],
    })
}

/// `:`: registers a preordered `name` to `owner` (the address the preorder named).
pub fn plan_name_register(
    name: &str,
    owner: &Address,
    value_hash: Option<[u8; 20]>,
) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NameRegistration {
            name: name.into(),
            value_hash,
        },
        outputs: vec![pay(owner.script_pubkey(), DUST), PlannedOutput::Change],
    })
}

/// `:` as a renewal: the owner renews `name` (keeping or moving it to `owner`), burning `price`.
pub fn plan_name_renew(name: &str, owner: &Address, price: u64) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NameRegistration {
            name: name.into(),
            value_hash: None,
        },
        outputs: vec![
            pay(owner.script_pubkey(), DUST),
            PlannedOutput::Change,
            pay(burn_script(), price),
        ],
    })
}

/// `+`: sets `name`'s value hash.
pub fn plan_name_update(
    name: &str,
    consensus_hash: [u8; 16],
    value_hash: [u8; 20],
) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NameUpdate {
            name_consensus_hash: name_consensus_hash(name, &consensus_hash),
            value_hash,
        },
        outputs: vec![PlannedOutput::Change],
    })
}

/// `>`: gives `name` to `recipient`, keeping or dropping its value hash.
pub fn plan_name_transfer(
    name: &str,
    recipient: &Address,
    keep_data: bool,
    consensus_hash: [u8; 16],
) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NameTransfer {
            keep_data,
            name_hash: name_hash16(name),
            consensus_hash,
        },
        outputs: vec![pay(recipient.script_pubkey(), DUST), PlannedOutput::Change],
    })
}

/// `~`: revokes `name`.
pub fn plan_name_revoke(name: &str) -> Result<Plan, BuildError> {
    split_fqn(name).map_err(name_err)?;
    Ok(Plan {
        op: NameOp::NameRevoke { name: name.into() },
        outputs: vec![PlannedOutput::Change],
    })
}

/// Which script type the wallet's coins use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptKind {
    /// Pay to witness public key hash (segwit v0).
    P2wpkh,
    /// Pay to public key hash.
    P2pkh,
}

/// One key and the coins it owns.
pub struct Wallet {
    key: PrivateKey,
    kind: ScriptKind,
    network: Network,
    secp: Secp256k1<All>,
}

impl core::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address().to_string())
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// A wallet for the key in `wif`, paying to `kind` scripts on `network`.
    pub fn from_wif(wif: &str, kind: ScriptKind, network: Network) -> Result<Self, BuildError> {
        let key = PrivateKey::from_wif(wif).map_err(|e| BuildError::Wif(e.to_string()))?;
        Wallet::from_key(key, kind, network)
    }

    /// A wallet for `key`, paying to `kind` scripts on `network`.
    pub fn from_key(
        key: PrivateKey,
        kind: ScriptKind,
        network: Network,
    ) -> Result<Self, BuildError> {
        if kind == ScriptKind::P2wpkh && !key.compressed {
            return Err(BuildError::Uncompressed);
        }
        Ok(Wallet {
            key,
            kind,
            network,
            secp: Secp256k1::new(),
        })
    }

    /// The wallet's address.
    pub fn address(&self) -> Address {
        let pk = self.key.public_key(&self.secp);
        match self.kind {
            ScriptKind::P2pkh => Address::p2pkh(pk, self.network),
            ScriptKind::P2wpkh => match CompressedPublicKey::try_from(pk) {
                Ok(c) => Address::p2wpkh(&c, self.network),
                Err(_) => Address::p2pkh(pk, self.network),
            },
        }
    }

    /// The wallet's script: the sender of everything it signs.
    pub fn script(&self) -> ScriptBuf {
        self.address().script_pubkey()
    }

    /// Funds `plan` with `coins` (all of them are spent), pays `fee`, returns the change to the
    /// wallet and signs. Output 0 is the OP_RETURN; coin 0 is input 0, the sender. The writer
    /// wallet ([`vc_source::wallet`]) chooses coins and fee instead; this is for callers that
    /// already did.
    pub fn sign(&self, plan: &Plan, coins: &[Coin], fee: u64) -> Result<Transaction, BuildError> {
        let script = self.script();
        let have: u64 = coins.iter().map(|c| c.txout.value.to_sat()).sum();
        let paid: u64 = plan
            .outputs
            .iter()
            .map(|o| match o {
                PlannedOutput::Pay(t) => t.value.to_sat(),
                PlannedOutput::Change => 0,
            })
            .sum();
        let need = paid + fee + DUST;
        if have < need || coins.is_empty() {
            return Err(BuildError::Insufficient { have, need });
        }
        let change = have - paid - fee;
        let outputs: Vec<TxOut> = plan
            .slots(&script)?
            .into_iter()
            .map(|s| match s {
                Slot::Fixed(t) => t,
                Slot::Change(script_pubkey) => TxOut {
                    value: Amount::from_sat(change),
                    script_pubkey,
                },
            })
            .collect();
        let coins: Vec<vc_source::wallet::Coin> = coins
            .iter()
            .map(|c| vc_source::wallet::Coin {
                outpoint: c.outpoint,
                txout: c.txout.clone(),
                status: CoinStatus::Unconfirmed,
            })
            .collect();
        self.sign_outputs(&coins, &outputs)
    }

    /// Signs a transaction spending `coins` (all the wallet's, in this order; coin 0 is the
    /// sender) to `outputs`, with RBF signalled (nSequence `0xfffffffd`) and low-R signatures.
    /// This is the signer [`vc_source::wallet::fund`] and [`vc_source::wallet::bump`] call.
    pub fn sign_outputs(
        &self,
        coins: &[vc_source::wallet::Coin],
        outputs: &[TxOut],
    ) -> Result<Transaction, BuildError> {
        let script = self.script();
        for c in coins {
            if c.txout.script_pubkey != script {
                return Err(BuildError::ForeignCoin(c.outpoint));
            }
        }
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: coins
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs.to_vec(),
        };
        let pk = self.key.public_key(&self.secp);
        for (i, coin) in coins.iter().enumerate() {
            let mut cache = SighashCache::new(&tx);
            let sighash = match self.kind {
                ScriptKind::P2wpkh => cache
                    .p2wpkh_signature_hash(i, &script, coin.txout.value, EcdsaSighashType::All)
                    .map_err(|e| BuildError::Sign(e.to_string()))?
                    .to_byte_array(),
                ScriptKind::P2pkh => cache
                    .legacy_signature_hash(i, &script, EcdsaSighashType::All.to_u32())
                    .map_err(|e| BuildError::Sign(e.to_string()))?
                    .to_byte_array(),
            };
            // Low R: 71-byte signatures (72 with the sighash byte) almost always, so the size
            // measured before the fee is set rarely moves after.
            let sig = bitcoin::ecdsa::Signature::sighash_all(
                self.secp
                    .sign_ecdsa_low_r(&Message::from_digest(sighash), &self.key.inner),
            );
            match self.kind {
                ScriptKind::P2wpkh => {
                    tx.input[i].witness = Witness::p2wpkh(&sig, &pk.inner);
                }
                ScriptKind::P2pkh => {
                    let sig_push = bitcoin::script::PushBytesBuf::try_from(sig.to_vec())
                        .map_err(|e| BuildError::Sign(e.to_string()))?;
                    tx.input[i].script_sig = bitcoin::script::Builder::new()
                        .push_slice(sig_push)
                        .push_key(&pk)
                        .into_script();
                }
            }
        }
        Ok(tx)
    }
}

/// The outputs of a migration operation (`docs/migration.md`) for the writer wallet: the
/// OP_RETURN carrying `magic || opcode || body` (the names magic), the marker of a marker
/// deployment, then the change paying `change`. The wallet's key must be the deployment's
/// migration authority: its coin is the first input, which authorizes the operation.
pub fn migration_slots(
    opcode: u8,
    body: &[u8],
    change: &ScriptBuf,
    config: &crate::NamesConfig,
) -> Result<Vec<Slot>, BuildError> {
    let mut payload = crate::wire::MAGIC.to_vec();
    payload.push(opcode);
    payload.extend_from_slice(body);
    let mut slots = vec![Slot::Fixed(TxOut {
        value: Amount::ZERO,
        script_pubkey: op_return(&payload)?,
    })];
    if let Some(registry) = &config.registry {
        slots.push(Slot::Fixed(TxOut {
            value: Amount::from_sat(DUST),
            script_pubkey: registry.clone(),
        }));
    }
    slots.push(Slot::Change(change.clone()));
    Ok(slots)
}

fn op_return(payload: &[u8]) -> Result<ScriptBuf, BuildError> {
    let carrier = vc_codec::carrier::Carrier::default();
    carrier
        .output(payload)
        .map(|o| o.script_pubkey)
        .map_err(|e| BuildError::Name(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_decode_back_and_sign() {
        let wif = PrivateKey::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[7; 32]).unwrap(),
            Network::Regtest,
        )
        .to_wif();
        for kind in [ScriptKind::P2wpkh, ScriptKind::P2pkh] {
            let w = Wallet::from_wif(&wif, kind, Network::Regtest).unwrap();
            let plan =
                plan_name_preorder("foo.test", &w.script(), &w.address(), [3; 16], 10_000).unwrap();
            let coin = Coin {
                outpoint: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
                txout: TxOut {
                    value: Amount::from_sat(100_000),
                    script_pubkey: w.script(),
                },
            };
            let tx = w.sign(&plan, &[coin], 1_000).unwrap();
            assert_eq!(tx.output.len(), 3);
            assert_eq!(tx.output[1].value.to_sat(), 100_000 - 10_000 - 1_000);
            assert_eq!(tx.output[2].script_pubkey, burn_script());
            let carried = vc_codec::carrier::Carrier::default()
                .extract(&tx)
                .unwrap()
                .unwrap();
            assert_eq!(carried.vout, 0);
            assert_eq!(
                NameOp::decode(carried.data[2], &carried.data[3..]).unwrap(),
                plan.op
            );
        }
    }

    #[test]
    fn insufficient_coins_are_refused() {
        let wif = PrivateKey::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[9; 32]).unwrap(),
            Network::Regtest,
        )
        .to_wif();
        let w = Wallet::from_wif(&wif, ScriptKind::P2wpkh, Network::Regtest).unwrap();
        let coin = Coin {
            outpoint: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
            txout: TxOut {
                value: Amount::from_sat(6_000),
                script_pubkey: w.script(),
            },
        };
        let plan = plan_name_revoke("foo.test").unwrap();
        assert!(matches!(
            w.sign(&plan, &[coin], 1_000),
            Err(BuildError::Insufficient { .. })
        ));
    }

    #[test]
    fn change_index_finds_every_plans_change() {
        let key = PrivateKey::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[5; 32]).unwrap(),
            Network::Regtest,
        );
        let w = Wallet::from_key(key, ScriptKind::P2wpkh, Network::Regtest).unwrap();
        let (me, a) = (w.script(), w.address());
        let params = NamespaceParams {
            lifetime: 100,
            coeff: 1,
            base: 2,
            buckets: [1; 16],
            nonalpha_discount: 1,
            no_vowel_discount: 1,
            version: 1,
        };
        let plans = [
            plan_namespace_preorder("ns", &me, &a, [1; 16], 1_000).unwrap(),
            plan_namespace_reveal("ns", params, &a).unwrap(),
            plan_namespace_ready("ns").unwrap(),
            plan_name_preorder("a.ns", &me, &a, [1; 16], 1_000).unwrap(),
            plan_name_register("a.ns", &a, None).unwrap(),
            plan_name_renew("a.ns", &a, 1_000).unwrap(),
            plan_name_update("a.ns", [1; 16], [2; 20]).unwrap(),
            plan_name_transfer("a.ns", &a, true, [1; 16]).unwrap(),
            plan_name_revoke("a.ns").unwrap(),
        ];
        for plan in plans {
            let coin = Coin {
                outpoint: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
                txout: TxOut {
                    value: Amount::from_sat(1_000_000),
                    script_pubkey: me.clone(),
                },
            };
            let tx = w.sign(&plan, &[coin], 1_000).unwrap();
            let at = change_index(&tx).unwrap();
            let slot = plan
                .outputs
                .iter()
                .position(|o| *o == PlannedOutput::Change);
            assert_eq!(Some(at - 1), slot, "{:?}", plan.op);
            assert!(
                tx.input
                    .iter()
                    .all(|i| i.sequence == Sequence::ENABLE_RBF_NO_LOCKTIME)
            );
        }
    }
}
