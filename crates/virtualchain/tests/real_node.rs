//! The CLI against a real regtest bitcoind: `virtualchain index` killed with SIGKILL at random
//! moments then resumed equals an uninterrupted run; `names send` preorders and registers a name,
//! chains every operation through the mempool, bumps a fee and refuses dust and immature coins;
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

/// `virtualchain names send ARGS` with `wif`'s key on `node`, with the names database `db`:
/// Core found the way ord and electrs find it, the cookie in its data directory and the RPC
/// address, no URL with credentials.
fn names_send(node: &TestNode, db: &Path, wif: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["names", "send"])
        .args(args)
        .args(["--wif", wif, "--bitcoin-data-dir"])
        .arg(node.datadir())
        .args([
            "--bitcoin-rpc-url",
            &format!("127.0.0.1:{}", node.rpc_port()),
        ])
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `virtualchain names show NAME` from `db`, which must succeed.
fn names_show(db: &Path, name: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["names", "show", name, "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// [`index_cmd`], which must succeed.
fn index_ok(node: &TestNode, db: &Path, first: u64) {
    let out = index_cmd(node, db, first).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

    let index = || index_ok(&node, &db, first);
    let send = |args: &[&str]| {
        let out = names_send(&node, &db, &key.to_wif(), args);
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

    let v = names_show(&db, "zzz.test");
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

    // With a source cache, the validated headers are kept for the next run.
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    let (code, _, err) = index(&["--registry", "default", "--source-cache", &cache_arg]);
    assert_eq!(code, Some(0), "{err}");
    let files: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.len() == 1 && files[0].starts_with("electrum-regtest-"),
        "{files:?}"
    );
    assert!(std::fs::metadata(cache.join(&files[0])).unwrap().len() > 0);
    let (code, _, err) = index(&["--source-cache", &cache_arg]);
    assert_eq!(code, Some(0), "a restart with the cache: {err}");
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

/// The txids in the node's mempool.
fn mempool(node: &TestNode) -> Vec<String> {
    let mut m: Vec<String> = node.rpc().call("getrawmempool", &[]).unwrap();
    m.sort();
    m
}

/// `names send` from one key, as a user runs it: every operation back to back with no block
/// between where the rules allow (each chains from the previous one's unconfirmed change), a
/// block where they need one; then a key holding only an immature coinbase, a price below the
/// dust limit, and a fee bump. Each ends in a transaction the node accepts or a clear error
/// before anything is broadcast.
#[test]
fn names_send_chains_every_operation_and_fails_clearly() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, core(&node, true), &db, 6).unwrap();
    s.run_history().unwrap(); // namespace `test` is ready
    let first = s.engine().store().config().first_block;
    drop(s);

    let key = |seed: u8| {
        bitcoin::PrivateKey::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap(),
            Network::Regtest,
        )
    };
    let address = |k: bitcoin::PrivateKey| {
        vc_names::build::Wallet::from_key(k, ScriptKind::P2wpkh, Network::Regtest)
            .unwrap()
            .address()
    };
    // One coin only, so every send after the first must spend unconfirmed change.
    let me = key(78);
    node.mine(1, &address(me));
    let sink = address(key(203));
    node.mine(100, &sink);

    let index = || index_ok(&node, &db, first);
    let run = |k: bitcoin::PrivateKey, args: &[&str]| {
        let out = names_send(&node, &db, &k.to_wif(), args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok((
                serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
                stderr,
            ))
        } else {
            Err(stderr)
        }
    };
    let send = |args: &[&str]| -> serde_json::Value {
        let (v, stderr) = run(me, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        // Regtest has no fee estimate: the floor is paid, and said.
        assert!(stderr.contains("no fee estimate"), "{stderr}");
        assert!(mempool(&node).contains(&v["txid"].as_str().unwrap().to_owned()));
        v
    };
    let chained = |v: &serde_json::Value| {
        let inputs = v["inputs"].as_array().unwrap();
        assert!(
            inputs.iter().all(|i| i["unconfirmed"] == true),
            "{v} should spend the previous send's change"
        );
    };
    let mine_all = |expected: usize| {
        assert_eq!(mempool(&node).len(), expected);
        node.mine(1, &sink);
        assert!(
            mempool(&node).is_empty(),
            "every transaction was valid and mined"
        );
        index();
    };
    let mine_str = address(me).to_string();
    let sink_str = sink.to_string();
    let value_hash = "42".repeat(20);
    let zero_buckets = vec!["0"; 16].join(",");

    index();
    // Round 1: a namespace preorder and two name preorders, one after the other.
    let v = send(&["namespace-preorder", "nsxy", "--reveal", &mine_str]);
    assert_eq!(v["inputs"][0]["unconfirmed"], false);
    let rate: f64 = v["fee_rate"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate >= 1.0, "{v}");
    chained(&send(&["preorder", "aaa.test", "--owner", &mine_str]));
    chained(&send(&["preorder", "bbb.test", "--owner", &mine_str]));
    // A reveal or registration needs its preorder in an earlier block.
    mine_all(3);
    // Round 2.
    send(&[
        "namespace-reveal",
        "nsxy",
        "--reveal",
        &mine_str,
        "--lifetime",
        "1000",
        "--coeff",
        "1",
        "--base",
        "2",
        "--buckets",
        &zero_buckets,
    ]);
    chained(&send(&["register", "aaa.test", "--owner", &mine_str]));
    chained(&send(&["register", "bbb.test", "--owner", &mine_str]));
    mine_all(3);
    // Round 3. The key now also holds confirmed coins (the 5,500-sat owner and revealer
    // outputs): the wallet spends those before unconfirmed change; either way nothing
    // conflicts.
    send(&["namespace-ready", "nsxy"]);
    send(&["update", "aaa.test", "--value-hash", &value_hash]);
    send(&["renew", "bbb.test"]);
    mine_all(3);
    // Round 4, and a fee bump of its last transaction.
    send(&["transfer", "aaa.test", "--to", &sink_str]);
    let revoke = send(&["revoke", "bbb.test"]);
    let old = revoke["txid"].as_str().unwrap().to_owned();
    let (bumped, _) = run(me, &["--bump", &old, "--fee-rate", "5"]).unwrap();
    let new = bumped["txid"].as_str().unwrap().to_owned();
    assert_eq!(bumped["replaces"], old.as_str());
    assert!(bumped["fee"].as_u64().unwrap() > revoke["fee"].as_u64().unwrap());
    assert!(bumped["fee"].as_u64().unwrap() >= 5 * bumped["vsize"].as_u64().unwrap());
    let pool = mempool(&node);
    assert!(pool.contains(&new) && !pool.contains(&old), "{pool:?}");
    mine_all(2);
    // Bumping a confirmed or an unknown transaction is a clear error.
    let e = run(me, &["--bump", &new]).unwrap_err();
    assert!(e.contains("already confirmed"), "{e}");
    let e = run(me, &["--bump", &"ab".repeat(32)]).unwrap_err();
    assert!(e.contains("not in the node's mempool"), "{e}");

    // The effects: every operation was accepted.
    let show = |name: &str| names_show(&db, name);
    let aaa = show("aaa.test");
    assert_eq!(aaa["owner_address"], sink_str.as_str());
    assert_eq!(aaa["value_hash"], value_hash.as_str());
    assert_eq!(show("bbb.test")["revoked"], true);

    // A price below the dust limit: a name in nsxy costs 100 sat; nothing is broadcast.
    let e = run(me, &["preorder", "cheap.nsxy", "--owner", &mine_str]).unwrap_err();
    assert!(
        e.contains("below the dust limit of 546 sat") && e.contains("--burn 546"),
        "{e}"
    );
    // So is a namespace id of 8 letters or more (400 sat on regtest).
    let e = run(
        me,
        &["namespace-preorder", "longname", "--reveal", &mine_str],
    )
    .unwrap_err();
    assert!(e.contains("burns 400 sat"), "{e}");
    assert!(mempool(&node).is_empty());
    // Burning more than the price is how it is paid.
    let v = send(&[
        "preorder",
        "cheap.nsxy",
        "--owner",
        &mine_str,
        "--burn",
        "546",
    ]);
    let tx = node.raw_transaction(&v["txid"].as_str().unwrap().parse().unwrap());
    assert_eq!(tx.output[2].value.to_sat(), 546);

    // A key holding only an immature coinbase: a clear error, nothing broadcast.
    let young = key(79);
    node.mine(1, &address(young));
    let coin_height = node.height();
    let before = mempool(&node);
    let e = run(young, &["preorder", "ccc.test", "--owner", &mine_str]).unwrap_err();
    assert!(
        e.contains("immature coinbase output")
            && e.contains(&format!("spendable from block {}", coin_height + 100)),
        "{e}"
    );
    assert_eq!(mempool(&node), before);
}
