//! `vc-bench wasm` on the tiny chain shape (real bitcoind and the guest modules; runs in CI):
//! the bench generator's chain indexed with the native names app and with `names-bench.wasm`
//! gives the same chain entry at every height, the same operations and the same state, on the
//! generator's consensus hash; and the comparison refuses two databases that differ.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::Network;
use vc_bench::chain::{self, Shape};
use vc_bench::wasm::{compare_dbs, in_process};
use vc_chash::Scheme;
use vc_names::{NamesApp, NamesConfig};
use vc_testnode::TestNode;
use vc_vm::{VmApp, VmModule};

/// The built module `name`, or `None` (after saying so) when the guests were not built.
fn guest(name: &str) -> Option<PathBuf> {
    let required = std::env::var("VC_REQUIRE_WASM").is_ok_and(|v| v == "1");
    match std::env::var_os("VC_VM_GUESTS") {
        Some(dir) => Some(Path::new(&dir).join(format!("{name}.wasm"))),
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

#[test]
fn the_names_module_equals_the_native_app_on_a_bench_chain() {
    let Some(module) = guest("names-bench") else {
        return;
    };
    // Skips loudly without bitcoind (fails with VC_REQUIRE_BITCOIND set).
    let Some(probe) = TestNode::start() else {
        return;
    };
    drop(probe);
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let chain = chain::ensure(cache.path(), &Shape::TINY, Scheme::Legacy).unwrap();
    let first = chain.info.first_block;
    let blocks = chain.datadir.join("regtest").join("blocks");
    let vm = VmModule::load(&std::fs::read(&module).unwrap()).unwrap();
    assert_eq!(vm.manifest().first_block, first);

    let native_db = work.path().join("native.redb");
    let wasm_db = work.path().join("wasm.redb");
    let native = in_process(
        NamesApp::new(NamesConfig::regtest(first)),
        |_| 0,
        &blocks,
        &native_db,
    )
    .unwrap();
    let wasm = in_process(
        VmApp::new(Arc::new(vm), Network::Regtest),
        VmApp::fuel_used,
        &blocks,
        &wasm_db,
    )
    .unwrap();
    assert_eq!((native.parses, native.applies), (35, 35));
    assert_eq!((wasm.parses, wasm.applies), (35, 35));
    assert!(wasm.fuel.iter().sum::<u64>() > 0);

    let agreed = compare_dbs(&native_db, &wasm_db, first).unwrap();
    assert_eq!(agreed.ops, 35);
    assert_eq!(agreed.heights, chain.info.tip_height - first + 1);
    assert!(agreed.state_entries > 0);
    assert_eq!(agreed.tip_consensus_hash, chain.info.consensus_hash);

    // Another deployment (scheme v2: every preorder's consensus hash is stale there) makes
    // other chain entries, and the comparison says where.
    let other_db = work.path().join("other.redb");
    in_process(
        NamesApp::new(NamesConfig::regtest(first).with_scheme(Scheme::V2)),
        |_| 0,
        &blocks,
        &other_db,
    )
    .unwrap();
    let err = compare_dbs(&native_db, &other_db, first)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tips differ"), "{err}");
}
