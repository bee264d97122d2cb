//! Arbitrary WebAssembly modules and arbitrary operations for the VM (`vc-vm`). The first byte
//! chooses:
//!
//! - even: the rest is a module. Loading never panics; a module that loads states a manifest
//!   that re-encodes to what it wrote, and indexing a small chain with it (one operation per
//!   opcode it declares, at its first block) never fails the engine: whatever the module does,
//!   each operation is accepted or rejected.
//! - odd: the rest is operation bodies (split at `0xff`) for a fixed module that echoes every
//!   body into state and a record, loops on opcode `l` and recurses on opcode `r`. Indexing never
//!   fails, and the consensus hash does not depend on the run: two indexings agree.
//!
//! `cargo xtask fuzz` seeds the guest modules `cargo xtask guests` built, if any.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    Amount, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, absolute, transaction,
};
use libfuzzer_sys::fuzz_target;
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_source::Source;
use vc_source::mem::MemoryChain;
use vc_vm::{Manifest, VmApp, VmModule};

/// The fixed module of odd inputs.
fn echo() -> &'static [u8] {
    static M: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let mut m = Manifest::new("echo", "1", b"fz", 1);
        m.opcodes = b"elr".to_vec();
        m.memory_pages = 2;
        m.fuel_per_op = 200_000;
        m.fuel_per_block = 1_000_000;
        let manifest = m.encode();
        let data: String = manifest.iter().map(|b| format!("\\{b:02x}")).collect();
        // Apply: copy the input to 4096, then on `l` loop, on `r` recurse, else put the
        // payload under key "k" of namespace "ns" and emit a record with it as bytes.
        let text = format!(
            r#"(module
  (import "vc" "input_len" (func $len (result i32)))
  (import "vc" "input_read" (func $read (param i32)))
  (import "vc" "output" (func $output (param i32 i32)))
  (import "vc" "state_put" (func $put (param i32 i32 i32 i32 i32 i32)))
  (import "vc" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "{data}")
  (data (i32.const 2000) "nsk")
  (func $down (call $down))
  (func (export "vc_manifest") (call $output (i32.const 1024) (i32.const {len})))
  (func (export "vc_parse")
    (call $read (i32.const 4096))
    (call $output (i32.const 4096) (call $len)))
  (func (export "vc_apply")
    (local $n i32) (local $op i32)
    (local.set $n (call $len))
    (if (i32.gt_u (local.get $n) (i32.const 60000)) (then (unreachable)))
    (call $read (i32.const 4096))
    (local.set $op (i32.load8_u (i32.const 4191)))
    (if (i32.eq (local.get $op) (i32.const 0x6c)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $op) (i32.const 0x72)) (then (call $down)))
    (call $put (i32.const 2000) (i32.const 2) (i32.const 2002) (i32.const 1) (i32.const 4096) (local.get $n))
    ;; record: 01, opcode length 1, "e", one value: bytes of the input (tag 04, u32 length)
    (i32.store8 (i32.const 3000) (i32.const 1))
    (i32.store8 (i32.const 3001) (i32.const 1))
    (i32.store8 (i32.const 3002) (i32.const 0x65))
    (i32.store16 (i32.const 3003) (i32.const 0x0100))
    (i32.store8 (i32.const 3005) (i32.const 4))
    (i32.store (i32.const 3006) (i32.const 0))
    (i32.store8 (i32.const 3009) (i32.const 8))
    (call $emit (i32.const 3000) (i32.const 10))))"#,
            len = manifest.len()
        );
        wat::parse_str(&text).expect("the echo module")
    })
}

fn op_tx(funding: &Transaction, payload: Vec<u8>, salt: u32) -> Option<Transaction> {
    Some(Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(salt),
        input: vec![TxIn {
            previous_output: OutPoint::new(funding.compute_txid(), 0),
            ..TxIn::default()
        }],
        output: vec![
            TxOut {
                value: Amount::ZERO,
                script_pubkey: Builder::new()
                    .push_opcode(OP_RETURN)
                    .push_slice(PushBytesBuf::try_from(payload).ok()?)
                    .into_script(),
            },
            TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                    [3; 20],
                )),
            },
        ],
    })
}

/// Indexes a chain whose block `first` holds one operation per (opcode, body) under `magic`;
/// the engine must not fail. Returns the tip's consensus hash.
fn index(module: VmModule, ops: &[(u8, Vec<u8>)]) -> String {
    let m = module.manifest().clone();
    let chain = MemoryChain::new(Network::Regtest);
    let first = m.first_block.clamp(1, 3);
    if m.first_block != first {
        return String::new();
    }
    chain.mine(first as usize);
    let funding = chain.block_at(first).expect("funding").txdata[0].clone();
    let txs = ops
        .iter()
        .enumerate()
        .filter_map(|(i, (op, body))| {
            let mut payload = m.magic.clone();
            payload.push(*op);
            payload.extend_from_slice(body);
            payload.truncate(m.payload_limit as usize);
            op_tx(&funding, payload, i as u32)
        })
        .collect();
    chain.push(txs);
    let dir = tempfile::tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    })
    .expect("tempdir");
    let app = VmApp::new(Arc::new(module), Network::Regtest);
    let config = EngineConfig::default().with_confirmations(1);
    let mut engine = Engine::open(
        app,
        dir.path().join("f.redb"),
        Source::blocks(chain),
        config,
    )
    .expect("the engine opens");
    let outcome = engine
        .sync(None, &AtomicBool::new(false), &mut NoObserver)
        .expect("a module never fails the engine");
    outcome
        .tip
        .map(|t| t.consensus_hash.to_string())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        let Ok(module) = VmModule::load(rest) else {
            return;
        };
        let m = module.manifest().clone();
        assert_eq!(Manifest::decode(&m.encode()).as_ref(), Ok(&m));
        let ops: Vec<_> = m
            .opcodes
            .iter()
            .map(|&op| (op, rest.get(..8).unwrap_or_default().to_vec()))
            .collect();
        index(module, &ops);
    } else {
        let ops: Vec<(u8, Vec<u8>)> = rest
            .split(|&b| b == 0xff)
            .take(8)
            .map(|chunk| match chunk.split_first() {
                Some((&op, body)) => (b"elr"[usize::from(op) % 3], body.to_vec()),
                None => (b'e', Vec::new()),
            })
            .collect();
        let load = || VmModule::load(echo()).expect("the echo module loads");
        let a = index(load(), &ops);
        let b = index(load(), &ops);
        assert_eq!(a, b, "two indexings of the same chain agree");
    }
});
