//! Forks and cross-checked sources through the CLI, on a real regtest bitcoind (and electrs).
//!
//! * `index` reads blocks from Core with electrs witnesses (`--source` repeated): honest ones
//!   agree to the tip; the lying Electrum proxy hiding the registry's first operation stops the
//!   indexer at that operation's height, naming every source's answer, with nothing of that
//!   block committed; under `--agreement majority` two honest sources out of three carry on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use bitcoin::Network;
use vc_store::Store;
use vc_testnode::{Electrs, Lie, LyingProxy, TestNode};

/// The names tests' regtest helpers (the scenario's miner, Core sources, state snapshots),
/// shared rather than copied.
#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

use common::{Node, Snapshot, marker_scenario, source_url};

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
