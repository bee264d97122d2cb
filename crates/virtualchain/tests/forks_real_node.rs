//! Forks and cross-checked sources through the CLI, on a real regtest bitcoind (and electrs):
//!
//! * `index` reads blocks from Core with electrs witnesses (`--source` repeated): honest ones
//!   agree to the tip; the lying Electrum proxy hiding the registry's first operation stops the
//!   indexer at that operation's height, naming every source's answer, with nothing of that
//!   block committed; under `--agreement majority` two honest sources out of three carry on.
//! * A 2,000-block fork made while the indexer is down (the node invalidates the block 1,999
//!   below the tip and mines a longer branch): the restarted `index` detects it at its first
//!   poll, locates the fork point in O(log d) requests, and recovers without re-indexing from
//!   the first block, by `recover revert` beyond `--max-auto-revert` and automatically under a
//!   high limit; both end equal to a fresh index of the node, hash for hash.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use bitcoin::Network;
use bitcoin::hashes::Hash;
use vc_names::build::ScriptKind;
use vc_names::scenario::{Scenario, seeded_wallet};
use vc_store::Store;
use vc_testnode::{Electrs, Lie, LyingProxy, TestNode};

/// The names tests' regtest helpers (the scenario's miner, Core sources, state snapshots),
/// shared rather than copied.
#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

use common::{Node, Snapshot, core, marker_scenario, preorder, source_url};

/// `virtualchain ARGS`: exit code, standard output, standard error.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
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
}

/// `virtualchain index` of the names app on regtest from `first` into `db`, with `extra`
/// arguments (the sources among them).
fn index(db: &Path, first: u64, extra: &[&str]) -> (Option<i32>, String, String) {
    let first = first.to_string();
    let db = db.to_string_lossy();
    let mut args = vec![
        "index",
        "--app",
        "names",
        "--network",
        "regtest",
        "--confirmations",
        "1",
        "--first-block",
        &first,
        "--db",
        &db,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Everything consensus-relevant in the names database at `db` (per-block hashes and state),
/// a marker deployment with the default registry if `marker`.
fn snapshot_of(db: &Path, marker: bool) -> Snapshot {
    let meta = Store::read_meta(db).unwrap();
    let mut config = vc_names::NamesConfig::regtest(meta.first_block);
    if marker {
        config = config.with_registry(vc_names::default_registry_script());
    }
    let app = vc_names::NamesApp::new(config);
    let store = Store::open(
        db,
        vc_engine::store_config(&vc_engine::Application::spec(&app), Network::Regtest, 1_000),
    )
    .unwrap();
    common::snapshot(&store)
}

#[test]
fn witnesses_agree_to_the_tip_and_a_hiding_one_stops_the_indexer() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = marker_scenario(&miner, &dir.path().join("scenario.redb"), 6);
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let want = common::snapshot(s.engine().store());
    drop(s);
    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    electrs.wait_synced(&node);
    let proxy = LyingProxy::start(electrs.port());
    let core_url = source_url(&node);
    let electrs_url = format!("electrum://127.0.0.1:{}", electrs.port());
    let proxy_url = proxy.url().replace("tcp://", "electrum://");
    let registry = vc_names::default_registry_script();

    // The registry's first operation: the lowest entry of its history, which the lie drops.
    let lowest = (first..=node.height())
        .find(|&h| {
            node.block_at(h)
                .txdata
                .iter()
                .any(|tx| tx.output.iter().any(|o| o.script_pubkey == registry))
        })
        .unwrap();

    // `index` of the marker deployment into a new database, with `sources` and `extra`.
    let witnessed = |name: &str, sources: &[&str], extra: &[&str]| {
        let db = dir.path().join(name);
        let mut args = vec!["--registry", "default"];
        args.extend_from_slice(extra);
        for url in sources {
            args.extend_from_slice(&["--source", url]);
        }
        let (code, _, err) = index(&db, first, &args);
        (db, code, err)
    };

    // Honest witnesses: Core plus electrs directly and through the (still honest) proxy.
    let all = [core_url.as_str(), &electrs_url, &proxy_url];
    let (honest, code, err) = witnessed("honest.redb", &all, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(snapshot_of(&honest, true), want);

    // The proxy hides the registry's first operation: the indexer stops at its height.
    proxy.set(Some(Lie::OmitHistory));
    let (lied, code, err) = witnessed("lied.redb", &[&core_url, &proxy_url], &[]);
    assert!(proxy.lies_told() > 0, "the lie was never told");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("the sources disagree on block {lowest}")),
        "{err}"
    );
    // Every source's answer is named: the block source's candidates and the witness's
    // shorter list.
    let report = err
        .lines()
        .find(|l| l.contains("the sources disagree"))
        .unwrap();
    let counts: Vec<&str> = report.matches(" candidates [").collect();
    assert_eq!(counts.len(), 2, "{report}");
    assert!(report.contains("0 candidates []"), "{report}");
    assert!(
        report.contains("#1 core-rest: block") && report.contains("#2 electrum: block"),
        "{report}"
    );
    eprintln!("{report}");
    // Nothing from that block was committed; everything before it was, and agrees.
    let got = snapshot_of(&lied, true);
    let below = usize::try_from(lowest - first).unwrap();
    assert_eq!(got.chain.len(), below, "the database ends below {lowest}");
    assert_eq!(got.chain[..], want.chain[..below]);

    // Under a majority, Core and the honest electrs outvote the lie.
    let (majority, code, err) = witnessed("majority.redb", &all, &["--agreement", "majority"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(snapshot_of(&majority, true), want);
}

/// The fork watch's log line of a run: (fork height, depth, probe requests, search requests)
/// for each detection.
fn forks_logged(stderr: &str) -> Vec<(u64, u64, u32, u32)> {
    let field = |line: &str, name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    stderr
        .lines()
        .filter(|l| l.contains("fork detected"))
        .map(|l| {
            (
                field(l, " fork"),
                field(l, "depth"),
                u32::try_from(field(l, "probe_requests")).unwrap(),
                u32::try_from(field(l, "search_requests")).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_2000_block_fork_made_while_down_is_found_at_once_and_recovered() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, core(&node, true), &dir.path().join("s.redb"), 7).unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let sink = seeded_wallet(152, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    // 2,100 blocks with a name preorder in every 300th: those above the fork point are on
    // the branch the node abandons.
    for i in 0..7 {
        node.mine(299, &sink);
        s.sync().unwrap();
        let tx = preorder(&mut s, 6, &format!("deep{i}xxxxx.test"));
        let r = s.mine(&[tx]).unwrap();
        assert_eq!(r.accepted, 1, "{:?}", r.rejected);
    }
    drop(s);
    let tip = node.height();
    let core_url = source_url(&node);
    let src = ["--source", core_url.as_str()];

    let live = dir.path().join("live.redb");
    let (code, _, err) = index(&live, first, &src);
    assert_eq!(code, Some(0), "{err}");
    let before = snapshot_of(&live, false);
    assert_eq!(before.chain.len() as u64, tip - first + 1);

    // While the indexer is down, the node moves to a longer branch forking 2,000 blocks below
    // the tip (the old branch's preorders go back to its mempool and into the new branch,
    // where their consensus hashes are from a chain that no longer exists).
    let depth = 2_000u64;
    let fork = tip - depth;
    node.invalidate(&node.block_hash(fork + 1));
    let other = seeded_wallet(153, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    let mut mined = 0;
    while mined < depth + 1 {
        let n = 500.min(depth + 1 - mined);
        node.mine(n, &other);
        mined += n;
    }
    assert_eq!(node.height(), tip + 1);

    let auto = dir.path().join("auto.redb");
    std::fs::copy(&live, &auto).unwrap();

    // Beyond the automatic limit: stopped with the revert command, which then reverts it.
    let (code, _, err) = index(&live, first, &src);
    assert_eq!(code, Some(1), "{err}");
    let detections = forks_logged(&err);
    assert_eq!(detections.len(), 1, "{err}");
    let (found_fork, found_depth, probes, search) = detections[0];
    assert_eq!((found_fork, found_depth), (fork, depth), "{err}");
    // O(log n) probes over the database's n blocks, O(log d) to locate the fork point.
    let n = tip - first + 1;
    let log2 = |x: u64| 64 - (x - 1).leading_zeros();
    assert!(probes <= log2(n) + 2, "{probes} probes for {n} blocks");
    assert!(
        search < log2(depth),
        "{search} search requests for depth {depth}"
    );
    eprintln!("2,000-block fork on {n} blocks: {probes} probe requests + {search} search requests");
    let live_s = live.to_string_lossy().into_owned();
    let revert = format!("virtualchain recover revert --db {live_s} --to {fork}");
    assert!(err.contains(&revert), "{err}");
    let (code, out, err) = run(&[
        "recover",
        "revert",
        "--db",
        &live_s,
        "--to",
        &fork.to_string(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("reverted {depth} blocks")), "{out}");
    let (code, _, err) = index(&live, first, &src);
    assert_eq!(code, Some(0), "{err}");
    assert!(forks_logged(&err).is_empty(), "{err}");

    // Under a high limit: the same detection, rolled back automatically.
    let (code, _, err) = index(
        &auto,
        first,
        &[&src[..], &["--max-auto-revert", "5000"]].concat(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(forks_logged(&err), detections, "{err}");
    assert!(
        err.contains(&format!("rolled back {depth} blocks to height {fork}")),
        "{err}"
    );

    // Both equal a fresh index of the node, hash for hash and entry for entry; the abandoned
    // branch's preorders are gone.
    let fresh = dir.path().join("fresh.redb");
    let (code, _, err) = index(&fresh, first, &src);
    assert_eq!(code, Some(0), "{err}");
    let want = snapshot_of(&fresh, false);
    assert_eq!(want.chain.len() as u64, tip + 1 - first + 1);
    assert_eq!(
        want.chain.last().unwrap().0,
        node.best_block_hash().to_byte_array()
    );
    assert_eq!(snapshot_of(&live, false), want);
    assert_eq!(snapshot_of(&auto, false), want);
    assert!(
        want.preorders.len() < before.preorders.len(),
        "{} preorders after the fork, {} before",
        want.preorders.len(),
        before.preorders.len()
    );
}
