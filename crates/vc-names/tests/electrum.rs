//! The Electrum source against a real electrs on a real regtest bitcoind, with the names app's
//! marker deployment (every operation pays the registry script).
//!
//! * Over a chain of more than 200 blocks with the scripted names history, operations that do
//!   not pay the registry, and reorganisations of depth 2 and 5 that replace blocks carrying
//!   operations, an engine on Electrum computes the same consensus-hash sequence and state as
//!   an engine on Core, and every block's watched transactions are identical from both.
//! * A lying proxy in front of electrs (a wrong merkle branch, a header without its proof of
//!   work, a header that does not link, a transaction that does not hash to its txid, a history
//!   that drops a confirmed operation it listed before) gets a typed error each time, and the
//!   database does not change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::Network;
use common::{Node, core, marker_scenario, preorder, snapshot};
use vc_engine::{Engine, EngineConfig, EngineError, NoObserver};
use vc_names::scenario::test_namespace_params;
use vc_names::{NamesApp, NamesConfig, build, default_registry_script, price::name_price};
use vc_source::electrum::{ElectrumConfig, ElectrumSource};
use vc_source::{Source, SourceError, Violation, WatchSource};
use vc_testnode::{Electrs, Lie, LyingProxy, TestNode};

fn electrum(url: &str) -> Arc<ElectrumSource> {
    Arc::new(ElectrumSource::connect(ElectrumConfig::new(url, Network::Regtest)).unwrap())
}

fn marker_engine(source: Source, first: u64, db: &std::path::Path) -> Engine<NamesApp> {
    let config = NamesConfig::regtest(first).with_registry(default_registry_script());
    Engine::open(
        NamesApp::new(config),
        db,
        source,
        EngineConfig::default()
            .with_confirmations(1)
            .with_workers(2),
    )
    .unwrap()
}

fn sync(engine: &mut Engine<NamesApp>) -> Result<vc_engine::SyncOutcome, EngineError> {
    engine.sync(None, &AtomicBool::new(false), &mut NoObserver)
}

#[test]
fn electrum_equals_core_over_200_blocks_with_reorgs() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = marker_scenario(&miner, &dir.path().join("core.redb"), 12);
    let first = s.engine().store().config().first_block;
    let history = s.run_history().unwrap();
    let accepted: u32 = history.iter().map(|r| r.accepted).sum();
    assert!(accepted >= 13, "the history's operations are accepted");

    // An operation without the registry output is never seen, even by the Core engine.
    let ch = s.consensus_hash().unwrap();
    let price = name_price("unmarked", &test_namespace_params());
    let p = build::plan_name_preorder(
        "unmarked.test",
        &s.wallet(6).script(),
        &s.wallet(6).address(),
        ch,
        price,
    )
    .unwrap();
    let unmarked = s.sign_exactly(6, &p).unwrap();
    let r = s.mine(&[unmarked]).unwrap();
    assert_eq!((r.accepted, r.rejected.len()), (0, 0));

    // A long tail: a marked preorder every seventh block, to pass 200 blocks.
    let mut i = 0;
    while node.height() < 215 {
        let txs = if i % 7 == 0 {
            vec![preorder(&mut s, 7, &format!("tail{i}xxxx.test"))]
        } else {
            vec![]
        };
        let r = s.mine(&txs).unwrap();
        assert_eq!(r.accepted as usize, txs.len(), "{:?}", r.rejected);
        i += 1;
    }

    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    let source = electrum(&electrs.url());
    let mut light = marker_engine(
        Source::Watched(source.clone()),
        first,
        &dir.path().join("electrum.redb"),
    );
    let outcome = sync(&mut light).unwrap();
    assert_eq!(outcome.tip.unwrap().height, node.height());
    assert_eq!(snapshot(light.store()), snapshot(s.engine().store()));

    // Both sources deliver the same watched transactions, positions and spent outputs.
    let markers = [default_registry_script()];
    let all = |_: &bitcoin::Transaction| true;
    let core_source = vc_source::WatchBlocks(core(&node, true));
    let mut seen = 0;
    for h in first..=node.height() {
        let a = core_source.watched(h, &markers, &all).unwrap();
        let b = source.watched(h, &markers, &all).unwrap();
        assert_eq!(a, b, "block {h}");
        seen += a.txs.len();
    }
    assert!(seen as u32 >= accepted, "{seen} watched transactions");

    // Reorganisations of depth 2 and 5 replacing blocks with operations; the light engine
    // follows through electrs and must end where a Core engine ends. Each branch uses its own
    // wallet: the replaced branch's transactions go back to the mempool.
    for (round, depth) in [2u64, 5].into_iter().enumerate() {
        let fork = node.height();
        for k in 0..depth {
            let tx = preorder(&mut s, 8 + 2 * round, &format!("r{round}a{k}xxxxx.test"));
            s.mine(&[tx]).unwrap();
        }
        electrs.wait_synced(&node);
        sync(&mut light).unwrap();
        assert_eq!(snapshot(light.store()), snapshot(s.engine().store()));

        node.invalidate(&node.block_at(fork + 1).block_hash());
        for k in 0..=depth {
            let tx = preorder(&mut s, 9 + 2 * round, &format!("r{round}b{k}xxxxx.test"));
            s.mine(&[tx]).unwrap();
        }
        electrs.wait_synced(&node);
        let outcome = sync(&mut light).unwrap();
        assert_eq!(outcome.reorgs, 1, "round {round}");
        assert_eq!(snapshot(light.store()), snapshot(s.engine().store()));
    }
    assert!(node.height() >= 200);
}

#[test]
fn a_lying_server_is_caught_and_changes_nothing() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = marker_scenario(&miner, &dir.path().join("core.redb"), 8);
    let first = s.engine().store().config().first_block;
    s.run_history().unwrap();
    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    let proxy = LyingProxy::start(electrs.port());
    let source = electrum(&proxy.url());

    // Without markers, an application cannot run on Electrum at all.
    let plain = Engine::open(
        NamesApp::new(NamesConfig::regtest(first)),
        dir.path().join("plain.redb"),
        Source::Watched(source.clone()),
        EngineConfig::default(),
    );
    assert!(matches!(plain, Err(EngineError::NeedsMarkers { .. })));

    let mut light = marker_engine(
        Source::Watched(source.clone()),
        first,
        &dir.path().join("light.redb"),
    );
    sync(&mut light).unwrap();
    assert_eq!(snapshot(light.store()), snapshot(s.engine().store()));

    let lies = [
        (Lie::MerkleBranch, Violation::MerkleBranch),
        (Lie::Transaction, Violation::TxidMismatch),
        (Lie::ProofOfWork(0), Violation::ProofOfWork),
        (Lie::Unlinked(0), Violation::HeaderLink),
        (Lie::OmitHistory, Violation::Omission),
    ];
    for (n, (lie, expected)) in lies.into_iter().enumerate() {
        // A new block with an operation, so that every kind of answer is needed.
        let tx = preorder(&mut s, 6, &format!("lie{n}xxxxx.test"));
        s.mine(&[tx]).unwrap();
        electrs.wait_synced(&node);
        let lie = match lie {
            Lie::ProofOfWork(_) => Lie::ProofOfWork(node.height()),
            Lie::Unlinked(_) => Lie::Unlinked(node.height()),
            other => other,
        };
        let before = snapshot(light.store());
        let validated = source.validated_tip();
        let told = proxy.lies_told();
        proxy.set(Some(lie));
        let err = sync(&mut light).unwrap_err();
        proxy.set(None);
        assert!(proxy.lies_told() > told, "{lie:?} was never told");
        match &err {
            EngineError::Source(SourceError::Unverified { violation, .. }) => {
                assert_eq!(*violation, expected, "{lie:?}: {err}");
            }
            other => panic!("{lie:?}: expected a verification failure, got {other}"),
        }
        assert_eq!(
            snapshot(light.store()),
            before,
            "{lie:?} changed the database"
        );
        if matches!(lie, Lie::ProofOfWork(_) | Lie::Unlinked(_)) {
            assert_eq!(
                source.validated_tip(),
                validated,
                "{lie:?} moved the header chain"
            );
        }
        // Told the truth again, the same source catches up and agrees with Core.
        sync(&mut light).unwrap();
        assert_eq!(
            snapshot(light.store()),
            snapshot(s.engine().store()),
            "after {lie:?}"
        );
    }
}
