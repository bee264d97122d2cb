//! The CLI against a real regtest bitcoind: `virtualchain index` killed with SIGKILL at random
//! moments then resumed equals an uninterrupted run; `names send` preorders and registers a name;
//! `index --source electrum://` (with electrs) over the names marker deployment ends on the
//! consensus hash a Core engine computed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::Network;
use vc_names::build::ScriptKind;
use vc_names::scenario::{Scenario, seeded_wallet};
use vc_store::Store;
use vc_testnode::{Electrs, TestNode};

/// The names tests' regtest helpers (the scenario's miner, Core sources), shared rather than
/// copied.
#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

use common::{Node, core, marker_scenario, source_url};

fn index_cmd(node: &TestNode, db: &Path, first: u64) -> Command {
    let source = source_url(node);
    let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
    c.args([
        "index",
        "--app",
        "names",
        "--network",
        "regtest",
        "--confirmations",
        "1",
    ])
    .args([
        "--first-block",
        &first.to_string(),
        "--source",
        &source,
        "--db",
    ])
    .arg(db)
    .args(["--commit-every-block", "--threads", "2"])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Per block: height, consensus hash, ops hash.
type Chain = Vec<(u64, Vec<u8>, [u8; 32])>;

/// Consensus hash per block and every name, from a finished database.
fn contents(db: &Path) -> (Chain, Vec<vc_names::state::NameRecord>) {
    let meta = Store::read_meta(db).unwrap();
    let app = vc_names::NamesApp::new(vc_names::NamesConfig::regtest(meta.first_block));
    let store = Store::open(
        db,
        vc_engine::store_config(&vc_engine::Application::spec(&app), Network::Regtest, 1_000),
    )
    .unwrap();
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap().height;
    let chain = (meta.first_block..=tip)
        .map(|h| {
            let e = view.chain_entry(h).unwrap().unwrap();
            (h, e.consensus_hash, e.ops_hash)
        })
        .collect();
    (chain, vc_names::all_names(&store).unwrap())
}

#[test]
fn sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = core(&node, true);
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, source, &dir.path().join("scenario.redb"), 6).unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    drop(s);
    // A longer tail so that a run takes long enough to be killed many times.
    let sink = seeded_wallet(201, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    for _ in 0..15 {
        node.mine(100, &sink);
    }

    let reference = dir.path().join("reference.redb");
    let started = Instant::now();
    let out = index_cmd(&node, &reference, first).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full_run = started.elapsed();

    // Kill at pseudo-random moments within the time a full run takes.
    let db = dir.path().join("killed.redb");
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 12 {
        attempts += 1;
        assert!(
            attempts < 200,
            "could not kill a running index 12 times ({kills} kills)"
        );
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let window = (full_run.as_millis() as u64 / 3).max(20);
        let delay = Duration::from_millis(5 + (seed >> 33) % window);
        let mut child = index_cmd(&node, &db, first).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        if status.success() {
            // It finished: start over so that later kills still land mid-run.
            std::fs::remove_file(&db).unwrap();
        }
    }
    let out = index_cmd(&node, &db, first).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want_chain, want_names) = contents(&reference);
    let (got_chain, got_names) = contents(&db);
    assert_eq!(got_chain, want_chain);
    assert_eq!(got_names, want_names);
    assert_eq!(want_names.len(), 2);
}

#[test]
fn names_send_preorders_and_registers_through_core() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let source = core(&node, true);
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, source, &db, 6).unwrap();
    s.run_history().unwrap(); // namespace `test` is ready
    let first = s.engine().store().config().first_block;
    drop(s);

    // A key of our own, funded by a coinbase that then matures.
    let key = bitcoin::PrivateKey::new(
        bitcoin::secp256k1::SecretKey::from_slice(&[77; 32]).unwrap(),
        Network::Regtest,
    );
    let wallet =
        vc_names::build::Wallet::from_key(key, ScriptKind::P2wpkh, Network::Regtest).unwrap();
    node.mine(1, &wallet.address());
    let sink = seeded_wallet(202, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    node.mine(100, &sink);

    let index = || {
        let out = index_cmd(&node, &db, first).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let send = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
            .args(["names", "send"])
            .args(args)
            // Core found the way ord and electrs find it: the cookie in its data directory
            // and the RPC address, no URL with credentials.
            .args(["--wif", &key.to_wif(), "--bitcoin-data-dir"])
            .arg(node.datadir())
            .args([
                "--bitcoin-rpc-url",
                &format!("127.0.0.1:{}", node.rpc_port()),
            ])
            .args(["--db"])
            .arg(&db)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["txid"]
            .as_str()
            .unwrap()
            .parse::<bitcoin::Txid>()
            .unwrap()
    };
    let owner = wallet.address().to_string();
    index();
    let txid = send(&["preorder", "zzz.test", "--owner", &owner]);
    let tx = node.raw_transaction(&txid);
    node.mine_with(&sink, &[tx]);
    index();
    let txid = send(&[
        "register",
        "zzz.test",
        "--owner",
        &owner,
        "--value-hash",
        &"42".repeat(20),
    ]);
    let tx = node.raw_transaction(&txid);
    node.mine_with(&sink, &[tx]);
    // The last block through the --bitcoin-* options instead of --source, and no --network or
    // --first-block: the database has them.
    node.mine(1, &sink);
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["index", "--confirmations", "1", "--bitcoin-data-dir"])
        .arg(node.datadir())
        .args([
            "--bitcoin-rpc-url",
            &format!("127.0.0.1:{}", node.rpc_port()),
        ])
        .arg("--db")
        .arg(&db)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let show = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["names", "show", "zzz.test", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["owner_address"], owner);
    assert_eq!(v["value_hash"], "42".repeat(20));
}

#[test]
fn index_from_electrum_with_the_registry_equals_core() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = marker_scenario(&miner, &dir.path().join("core.redb"), 6);
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let want = s.engine().store().tip().unwrap().unwrap();
    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    let light = dir.path().join("light.redb");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let source = format!("electrum://127.0.0.1:{}", electrs.port());
    let db = light.to_string_lossy().into_owned();
    let first = first.to_string();
    let index = |extra: &[&str]| {
        let mut args = vec![
            "index",
            "--network",
            "regtest",
            "--confirmations",
            "1",
            "--first-block",
            &first,
            "--source",
            &source,
            "--db",
            &db,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // Without the registry the names app has no markers: refused before any file is made,
    // with the exit code for a wrong setting.
    let (code, _, err) = index(&[]);
    assert_eq!(code, Some(78));
    assert!(err.contains("marker scripts"), "{err}");
    assert!(!light.exists());

    let (code, _, err) = index(&["--registry", "default"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, status, err) = run(&["status", "--db", &db]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        status.contains(&format!("consensus hash:  {}", want.consensus_hash)),
        "{status}"
    );
    // The registry is an application parameter of the file, not part of the version.
    let registry = vc_names::default_registry_script().to_hex_string();
    assert!(
        status.contains(&format!("registry:        {registry}")),
        "{status}"
    );
    assert!(
        status.contains(&format!("tip:             {} ", want.height)),
        "{status}"
    );
}
