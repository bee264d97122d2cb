//! `index --app app.wasm`, then `status`, `ops`, `serve` and `light` on the result, over the committed
//! fixture's block files: a WebAssembly application run by the generic CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli::{ok, run};
use vc_store::{ReadOnlyStore, StateRead};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

/// A module counting the names app's operations from block 272 (key `n` of namespace `c`, a
/// little-endian u64) and emitting one record per operation; `extra` is appended to the
/// module's bytes (a custom section makes another module with the same manifest).
fn counter(extra: &[u8]) -> Vec<u8> {
    let mut m = vc_vm::Manifest::new("idcount", "1", b"id", 272);
    m.opcodes = b"*&!?:+>~".to_vec();
    // v3, so that `light state` can prove the count from the served database.
    m.scheme = vc_chash::Scheme::V3;
    let manifest = m.encode();
    let data: String = manifest.iter().map(|b| format!("\\{b:02x}")).collect();
    // The record: v2 encoding of opcode "+" with no values: 01, 01, '+', 00 00.
    let text = format!(
        r#"(module
  (import "vc" "output" (func $output (param i32 i32)))
  (import "vc" "scratch_read" (func $scratch_read (param i32)))
  (import "vc" "state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "vc" "state_put" (func $put (param i32 i32 i32 i32 i32 i32)))
  (import "vc" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{data}")
  (data (i32.const 2000) "cn")
  (data (i32.const 2010) "\01\01+\00\00")
  (func (export "vc_manifest") (call $output (i32.const 1024) (i32.const {len})))
  (func (export "vc_parse"))
  (func (export "vc_apply")
    (if (i32.eq (call $get (i32.const 2000) (i32.const 1) (i32.const 2001) (i32.const 1)) (i32.const 8))
      (then (call $scratch_read (i32.const 3000))))
    (i64.store (i32.const 3000) (i64.add (i64.load (i32.const 3000)) (i64.const 1)))
    (call $put (i32.const 2000) (i32.const 1) (i32.const 2001) (i32.const 1) (i32.const 3000) (i32.const 8))
    (call $emit (i32.const 2010) (i32.const 5))))"#,
        len = manifest.len()
    );
    let mut bytes = wat::parse_str(&text).unwrap();
    bytes.extend_from_slice(extra);
    bytes
}

fn index(app: Option<&Path>, db: &Path) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
    c.arg("index");
    if let Some(app) = app {
        c.arg("--app").arg(app);
    }
    c.args(["--network", "regtest", "--confirmations", "1", "--source"])
        .arg(format!("blk:{}", fixture().join("blocks").display()))
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .env_remove("VIRTUALCHAIN_DB");
    c.output().unwrap()
}

fn get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_module_indexes_the_fixture_and_the_database_serves() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("idcount.wasm");
    std::fs::write(&app, counter(&[])).unwrap();
    let db = dir.path().join("idcount.redb");
    let o = index(Some(&app), &db);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Every operation of the names app from block 272 on was counted (36, as the app guide's
    // counter finds), and each committed its record.
    let store = ReadOnlyStore::open(&db).unwrap();
    let view = store.view().unwrap();
    let n = view.get_raw("c", b"n").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(n.try_into().unwrap()), 36);
    assert_eq!(store.meta().app_name, "wasm:idcount");
    let tip = store.tip().unwrap().unwrap();
    drop((view, store));

    let db_s = db.to_str().unwrap();
    let status = ok(&["status", "--db", db_s]);
    assert!(status.contains("wasm:idcount 1+vm1"), "{status}");
    let hash = vc_chash::hex::encode(&vc_vm::module_hash(&counter(&[])));
    assert!(status.contains(&hash), "{status}");
    assert!(status.contains("module stored"), "{status}");

    // Resuming needs no --app: the database holds its module.
    let o = index(None, &db);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Another module, even one differing only in a custom section, is another application.
    let other = dir.path().join("other.wasm");
    std::fs::write(&other, counter(&[0, 3, 1, b'x', 7])).unwrap();
    let o = index(Some(&other), &db);
    assert!(!o.status.success());

    // `serve` rebuilds the spec from the database alone, and `light` proves what it serves:
    // one block's records, and the count (state key `n` of namespace `c`) at the tip.
    let (mut child, base) = serve_support::serve(&db);
    let body = get(&base, "/v1/tip");
    let trusted = format!("{}:{}", tip.height, tip.consensus_hash);
    let records = run(&[
        "light",
        "verify",
        "--server",
        &base,
        "--trusted",
        &trusted,
        "--height",
        "300",
    ]);
    let count = run(&[
        "light",
        "state",
        "c",
        "6e",
        "--hex",
        "--server",
        &base,
        "--trusted",
        &trusted,
        "--json",
    ]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(body.contains("wasm:idcount"), "{body}");
    assert!(body.contains(&tip.consensus_hash.to_string()), "{body}");
    assert!(
        records.status.success(),
        "{}",
        String::from_utf8_lossy(&records.stderr)
    );
    let count_out = String::from_utf8_lossy(&count.stdout);
    assert!(
        count.status.success(),
        "{count_out}{}",
        String::from_utf8_lossy(&count.stderr)
    );
    // 36 as a little-endian u64, in hex.
    assert!(count_out.contains("2400000000000000"), "{count_out}");
}

#[test]
fn a_module_that_is_not_one_is_refused_before_indexing() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("bad.wasm");
    std::fs::write(&app, b"\0asm\x01\0\0\0").unwrap();
    let db = dir.path().join("bad.redb");
    let o = run(&[
        "index",
        "--app",
        app.to_str().unwrap(),
        "--network",
        "regtest",
        "--source",
        &format!("blk:{}", fixture().join("blocks").display()),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vc_manifest") || err.contains("export"),
        "{err}"
    );
}
