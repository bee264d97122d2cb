//! Chains for the contract tests: a funded writer, deploys and calls built by the writer side,
//! an engine indexing them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid, absolute, transaction};
use vc_contracts::build::{Coin, Deploy, Writer};
use vc_contracts::{ContractsApp, ContractsConfig};
use vc_engine::Engine;
use vc_engine::prelude::*;
use vc_source::mem::MemoryChain;

/// A writer with its coins.
pub struct Wallet {
    pub writer: Writer,
    pub coins: Vec<Coin>,
}

impl Wallet {
    pub fn new(seed: u8) -> Wallet {
        Wallet {
            writer: Writer::new(SecretKey::from_slice(&[seed; 32]).unwrap()),
            coins: Vec::new(),
        }
    }

    pub fn script(&self) -> ScriptBuf {
        self.writer.script()
    }

    fn coin(&mut self) -> Coin {
        self.coins.pop().expect("a coin")
    }

    /// The commit and reveal deploying `code`; the reveal's change is a coin again.
    pub fn deploy(&mut self, code: &[u8], args: &[u8]) -> Deploy {
        let coin = self.coin();
        let d = self.writer.deploy(&coin, code, args, 1).unwrap();
        self.keep_change(&d.reveal);
        d
    }

    /// A call; its change is a coin again.
    pub fn call(
        &mut self,
        contract: Txid,
        method: &str,
        args: &[u8],
        amount: u64,
        pay: &ScriptBuf,
    ) -> Transaction {
        let coin = self.coin();
        let tx = self
            .writer
            .call(&coin, contract, method, args, amount, pay, 1)
            .unwrap();
        self.keep_change(&tx);
        tx
    }

    fn keep_change(&mut self, tx: &Transaction) {
        let vout = tx.output.len() - 1;
        self.coins.insert(
            0,
            Coin {
                outpoint: OutPoint::new(tx.compute_txid(), vout as u32),
                txout: tx.output[vout].clone(),
            },
        );
    }
}

/// A regtest chain whose block 2 gives each wallet ten coins of 1 000 000 sat.
pub fn funded_chain(wallets: &mut [&mut Wallet]) -> MemoryChain {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(1);
    let coinbase = chain.block_at(1).unwrap().txdata[0].clone();
    let mut output = Vec::new();
    for w in wallets.iter() {
        for _ in 0..10 {
            output.push(TxOut {
                value: Amount::from_sat(1_000_000),
                script_pubkey: w.script(),
            });
        }
    }
    let funding = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(coinbase.compute_txid(), 0),
            ..TxIn::default()
        }],
        output,
    };
    let txid = funding.compute_txid();
    let mut vout = 0;
    for w in wallets.iter_mut() {
        for _ in 0..10 {
            w.coins.push(Coin {
                outpoint: OutPoint::new(txid, vout),
                txout: funding.output[vout as usize].clone(),
            });
            vout += 1;
        }
    }
    chain.push(vec![funding]);
    chain
}

/// Every block report of a sync.
pub use vc_engine::Recorder as Reports;

/// An engine for the platform from block 1 over `chain`, with one confirmation.
pub fn engine(chain: &MemoryChain, db: &Path, config: ContractsConfig) -> Engine<ContractsApp> {
    let app = ContractsApp::new(config, Network::Regtest);
    let config = EngineConfig::default().with_confirmations(1);
    Engine::open(app, db, Source::blocks(chain.clone()), config).unwrap()
}

/// Syncs `engine` to the chain's tip and returns the reports.
pub fn sync(engine: &mut Engine<ContractsApp>) -> Reports {
    let mut reports = Reports::default();
    engine
        .sync(None, &AtomicBool::new(false), &mut reports)
        .unwrap();
    reports
}

/// A guest module `cargo xtask guests` built, from the directory `VC_VM_GUESTS` names. `None`
/// (after saying so) when it is unset, unless `VC_REQUIRE_WASM=1`, which makes it a failure.
pub fn guest(name: &str) -> Option<Vec<u8>> {
    let required = std::env::var("VC_REQUIRE_WASM").is_ok_and(|v| v == "1");
    match std::env::var_os("VC_VM_GUESTS") {
        Some(dir) => {
            let path = Path::new(&dir).join(format!("{name}.wasm"));
            Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
        }
        None if required => panic!("VC_REQUIRE_WASM=1 but VC_VM_GUESTS is unset"),
        None => {
            eprintln!(
                "SKIPPED: VC_VM_GUESTS is unset; run `cargo xtask guests` and set it to the \
                 directory it prints to run the guest contract tests"
            );
            None
        }
    }
}

/// A contract written in WAT that loops forever in `vc_call`.
pub fn looping_contract() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "vc_call") (loop $l (br $l))))"#,
    )
    .unwrap()
}

/// A module that uses floats: the VM refuses it.
pub fn float_contract() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "vc_call") (drop (f64.mul (f64.const 1.5) (f64.const 2)))))"#,
    )
    .unwrap()
}

/// The records of the operation `txid` as stored, decoded.
pub fn records(engine: &Engine<ContractsApp>, txid: Txid) -> Vec<Record> {
    use bitcoin::hashes::Hash;
    let tip = engine.store().tip().unwrap().unwrap().height;
    engine
        .store()
        .view()
        .unwrap()
        .ops_range(0, tip)
        .unwrap()
        .into_iter()
        .find(|(_, op)| op.txid == txid.to_byte_array())
        .map(|(_, op)| {
            op.records
                .iter()
                .map(|r| vc_codec::record::decode_v2(r).unwrap())
                .collect()
        })
        .unwrap_or_default()
}
