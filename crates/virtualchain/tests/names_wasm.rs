//! The names rules as a WebAssembly module (`guests/names`, built from source by `cargo xtask
//! guests`) against the native `--app names` on the committed fixture chain: the same consensus
//! hash at every height, the same accepted operations with the same records, the same
//! rejections, and the same state, byte for byte.
//!
//! Needs `VC_VM_GUESTS` (the directory `cargo xtask guests` prints); skips loudly without it,
//! and fails without it when `VC_REQUIRE_WASM=1` (as `cargo xtask ci` sets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vc_names::state::{NameRecord, NamespaceRecord, Preorder};
use vc_store::{ReadOnlyStore, StateRead};

/// The namespaces the native app writes (`vc_names::state`).
const NAMESPACES: [&str; 5] = [
    "namespaces",
    "namespace_preorders",
    "preorders",
    "names",
    "owners",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

/// The built module `name`, or `None` (after saying so) when the guests were not built.
fn guest(name: &str) -> Option<PathBuf> {
    let required = std::env::var("VC_REQUIRE_WASM").is_ok_and(|v| v == "1");
    match std::env::var_os("VC_VM_GUESTS") {
        Some(dir) => {
            let path = Path::new(&dir).join(format!("{name}.wasm"));
            assert!(
                path.exists(),
                "no {}: run `cargo xtask guests`",
                path.display()
            );
            Some(path)
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

/// Indexes the fixture with `app` into `db`; returns the summary line of the log.
fn index(app: &str, extra: &[&str], db: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["index", "--app", app, "--network", "regtest"])
        .args(extra)
        .args(["--confirmations", "1", "--source"])
        .arg(format!("blk:{}", fixture().join("blocks").display()))
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("VIRTUALCHAIN_DB")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "index --app {app}: {log}");
    let line = log
        .lines()
        .find(|l| l.contains("operations accepted"))
        .unwrap_or_else(|| panic!("no summary in the log of --app {app}: {log}"));
    // "indexed N blocks in T s: " comes first, and the time differs.
    let from = line.find(" s: ").unwrap() + 4;
    let to = line[from..]
        .find(" blocks=")
        .map_or(line.len(), |i| from + i);
    line[from..to].to_owned()
}

#[test]
fn names_wasm_equals_the_native_app_on_the_fixture_chain() {
    let Some(module) = guest("names") else { return };
    let chain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap();
    let first = chain["names"]["first_block"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let native_db = dir.path().join("native.redb");
    let wasm_db = dir.path().join("wasm.redb");
    let native = index("names", &["--first-block", &first.to_string()], &native_db);
    let wasm = index(module.to_str().unwrap(), &[], &wasm_db);

    // The same operations accepted and the same rejections, by code.
    assert_eq!(wasm, native, "the runs' summaries differ");
    assert!(
        native.contains("13 operations accepted, 5 rejected"),
        "{native}"
    );

    let n = ReadOnlyStore::open(&native_db).unwrap();
    let w = ReadOnlyStore::open(&wasm_db).unwrap();
    assert_eq!(n.meta().app_name, "vc-names");
    assert_eq!(w.meta().app_name, "wasm:names");
    assert_eq!(w.meta().first_block, first);
    assert_eq!(w.meta().scheme, n.meta().scheme);
    let tip = n.tip().unwrap().unwrap();
    assert_eq!(w.tip().unwrap().unwrap(), tip);
    assert_eq!(
        tip.consensus_hash.to_string(),
        chain["names"]["consensus_hash"].as_str().unwrap(),
        "the native app no longer gives the fixture's hash"
    );
    let (nv, wv) = (n.view().unwrap(), w.view().unwrap());

    // Every height: block, ops hash, consensus hash and operation count.
    let n_chain = nv.chain_range(first, tip.height).unwrap();
    let w_chain = wv.chain_range(first, tip.height).unwrap();
    assert_eq!(n_chain.len() as u64, tip.height - first + 1);
    assert_eq!(w_chain.len(), n_chain.len());
    for ((h, ne), (wh, we)) in n_chain.iter().zip(&w_chain) {
        assert_eq!(h, wh);
        assert_eq!(
            we.consensus_hash, ne.consensus_hash,
            "consensus hashes differ at height {h}"
        );
        assert_eq!(we, ne, "chain entries differ at height {h}");
    }

    // The accepted operations, with the records they committed.
    let n_ops = nv.ops_range(first, tip.height).unwrap();
    let w_ops = wv.ops_range(first, tip.height).unwrap();
    assert_eq!(n_ops.len(), 13);
    assert_eq!(w_ops, n_ops);

    // The state, byte for byte, namespace by namespace.
    let mut entries = 0;
    for ns in NAMESPACES {
        let ne = nv.range_raw(ns, None, None).unwrap();
        let we = wv.range_raw(ns, None, None).unwrap();
        assert_eq!(we, ne, "namespace {ns} differs");
        entries += ne.len();
    }
    assert!(entries > 0, "the fixture left no state");
    // Decoded with the native types, the module's bytes are the native records.
    let names = wv.range_raw("names", None, None).unwrap();
    assert_eq!(names.len(), 2, "the fixture registers two names");
    for (_, v) in &names {
        vc_codec::storage::from_bytes::<NameRecord>(v).unwrap();
    }
    for (_, v) in wv.range_raw("namespaces", None, None).unwrap() {
        vc_codec::storage::from_bytes::<NamespaceRecord>(&v).unwrap();
    }
    for ns in ["preorders", "namespace_preorders"] {
        for (_, v) in wv.range_raw(ns, None, None).unwrap() {
            vc_codec::storage::from_bytes::<Preorder>(&v).unwrap();
        }
    }
}
