//! Modules written in WAT for the tests: a manifest in a data segment, the host imports, and
//! hook bodies the tests choose.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vc_vm::Manifest;

/// The magic of the test modules.
pub const MAGIC: &[u8] = b"tt";

/// Where the manifest sits in memory.
const MANIFEST_AT: usize = 1024;

/// The test modules' manifest: opcodes `a`..`e`, from block 1, small budgets.
pub fn manifest() -> Manifest {
    let mut m = Manifest::new("wat-test", "1", MAGIC, 1);
    m.opcodes = b"abcde".to_vec();
    m.memory_pages = 4;
    m.fuel_per_op = 1_000_000;
    m.fuel_per_block = 3_000_000;
    m
}

/// `bytes` as a WAT string literal.
pub fn wat_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Every host import, named `$<name>`.
pub const IMPORTS: &str = r#"
  (import "vc" "input_len" (func $input_len (result i32)))
  (import "vc" "input_read" (func $input_read (param i32)))
  (import "vc" "output" (func $output (param i32 i32)))
  (import "vc" "scratch_read" (func $scratch_read (param i32)))
  (import "vc" "reject" (func $reject (param i32 i32 i32 i32)))
  (import "vc" "prepare_reject" (func $prepare_reject (param i32 i32 i32 i32 i32)))
  (import "vc" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "vc" "state_put" (func $state_put (param i32 i32 i32 i32 i32 i32)))
  (import "vc" "state_delete" (func $state_delete (param i32 i32 i32 i32)))
  (import "vc" "emit" (func $emit (param i32 i32)))
"#;

/// A module with `manifest`, memory of `pages` pages, the given parse and apply bodies, and
/// `extra` fields (more functions, tables, sections).
pub fn module_with(
    manifest: &Manifest,
    pages: u32,
    parse: &str,
    apply: &str,
    extra: &str,
) -> Vec<u8> {
    let m = manifest.encode();
    let (imports, extra) = if extra.trim_start().starts_with("(import") {
        (extra, "")
    } else {
        ("", extra)
    };
    let text = format!(
        r#"(module
  {IMPORTS}
  {imports}
  (memory (export "memory") {pages})
  (data (i32.const {MANIFEST_AT}) "{data}")
  (data (i32.const 2000) "ns")
  (data (i32.const 2010) "key")
  (data (i32.const 2020) "nope")
  (data (i32.const 2030) "bad input")
  (func (export "vc_manifest") (call $output (i32.const {MANIFEST_AT}) (i32.const {len})))
  (func (export "vc_parse") {parse})
  (func (export "vc_apply") {apply})
  {extra}
)"#,
        data = wat_string(&m),
        len = m.len(),
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A module with the test manifest, one page, and the given bodies.
pub fn module(parse: &str, apply: &str, extra: &str) -> Vec<u8> {
    module_with(&manifest(), 1, parse, apply, extra)
}

/// An apply body that counts: key `key` of namespace `ns` holds a little-endian u64, plus one.
/// Opcode `r` (or any other than `a`) in the input rejects with `nope`.
pub const COUNTER_APPLY: &str = r#"
  (local $len i32)
  (call $input_read (i32.const 4096))
  ;; header 3 + block 44 + height 8 + txid 32 + txindex 4 + vtxindex 4 = the opcode at 95
  (if (i32.ne (i32.load8_u (i32.const 4191)) (i32.const 0x61))
    (then (call $reject (i32.const 2020) (i32.const 4) (i32.const 2030) (i32.const 9))))
  (local.set $len (call $state_get (i32.const 2000) (i32.const 2) (i32.const 2010) (i32.const 3)))
  (if (i32.eq (local.get $len) (i32.const 8))
    (then (call $scratch_read (i32.const 3000)))
    (else (i64.store (i32.const 3000) (i64.const 0))))
  (i64.store (i32.const 3000) (i64.add (i64.load (i32.const 3000)) (i64.const 1)))
  (call $state_put (i32.const 2000) (i32.const 2) (i32.const 2010) (i32.const 3) (i32.const 3000) (i32.const 8))
"#;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    Amount, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, absolute, transaction,
};
use vc_engine::Engine;
use vc_engine::prelude::*;
use vc_source::mem::MemoryChain;
use vc_vm::{VmApp, VmModule};

/// A transaction carrying `magic`, `opcode`, `body` in output 0, spending output 0 of
/// `funding`.
pub fn op_tx(
    funding: &Transaction,
    magic: &[u8],
    opcode: u8,
    body: &[u8],
    salt: u32,
) -> Transaction {
    let mut payload = magic.to_vec();
    payload.push(opcode);
    payload.extend_from_slice(body);
    Transaction {
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
                    .push_slice(PushBytesBuf::try_from(payload).unwrap())
                    .into_script(),
            },
            TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                    [3; 20],
                )),
            },
        ],
    }
}

/// A regtest chain: block 1 funds, then one block per entry of `blocks`, each with its
/// operations (opcode, body) under `magic`.
pub fn chain(magic: &[u8], blocks: &[Vec<(u8, Vec<u8>)>]) -> MemoryChain {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(1);
    let funding = chain.block_at(1).unwrap().txdata[0].clone();
    let mut salt = 0;
    for ops in blocks {
        let txs = ops
            .iter()
            .map(|(op, body)| {
                salt += 1;
                op_tx(&funding, magic, *op, body, salt)
            })
            .collect();
        chain.push(txs);
    }
    chain
}

/// Every block report of a sync.
pub use vc_engine::Recorder as Reports;

/// Indexes `chain` with `module` into `db`.
pub fn index(module: &[u8], chain: &MemoryChain, db: &Path) -> (Engine<VmApp>, Reports) {
    let module = VmModule::load(module).unwrap_or_else(|e| panic!("{e:#?}"));
    let app = VmApp::new(Arc::new(module), Network::Regtest);
    let config = EngineConfig::default().with_confirmations(1);
    let mut engine = Engine::open(app, db, Source::blocks(chain.clone()), config).unwrap();
    let mut reports = Reports::default();
    engine
        .sync(None, &AtomicBool::new(false), &mut reports)
        .unwrap();
    (engine, reports)
}

/// The rejections of `module` on one block with one operation `a`.
pub fn one_op(module: &[u8]) -> Vec<(u64, Stage, &'static str)> {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', b"x".to_vec())]]);
    let (_, reports) = index(module, &chain, &dir.path().join("t.redb"));
    reports.rejections()
}

/// The code `module`'s parse rejects one operation with.
pub fn parse_code(module: &[u8]) -> &'static str {
    match one_op(module).as_slice() {
        [(_, Stage::Parse, code)] => code,
        other => panic!("expected one parse rejection, got {other:?}"),
    }
}

/// A regtest chain with three funding blocks (heights 1 to 3, one sender each), then one block
/// per entry of `blocks`, each with its operations (sender 0 to 2, opcode, body).
pub fn chain_from(magic: &[u8], blocks: &[Vec<(usize, u8, Vec<u8>)>]) -> MemoryChain {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(3);
    let funding: Vec<_> = (1..=3)
        .map(|h| chain.block_at(h).unwrap().txdata[0].clone())
        .collect();
    let mut salt = 0;
    for ops in blocks {
        let txs = ops
            .iter()
            .map(|(who, op, body)| {
                salt += 1;
                op_tx(&funding[*who], magic, *op, body, salt)
            })
            .collect();
        chain.push(txs);
    }
    chain
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
        None if required => {
            panic!("VC_REQUIRE_WASM=1 but VC_VM_GUESTS is unset: run `cargo xtask guests`")
        }
        None => {
            eprintln!(
                "SKIPPED: VC_VM_GUESTS is unset; `cargo xtask guests` builds the guest modules and prints the directory to set it to"
            );
            None
        }
    }
}
