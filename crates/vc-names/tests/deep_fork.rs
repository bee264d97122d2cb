//! A fork deeper than the automatic limit, checkpoints, and the recovery paths, on a real
//! regtest bitcoind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use vc_source::Source;

use bitcoin::Network;
use common::{Node, core};
use vc_engine::{Checkpoint, Engine, EngineConfig, EngineError, NoObserver};
use vc_names::build::ScriptKind;
use vc_names::scenario::{Scenario, seeded_wallet};
use vc_names::{NamesApp, NamesConfig};
use vc_testnode::TestNode;

fn engine(node: &TestNode, db: &Path, first: u64, config: EngineConfig) -> Engine<NamesApp> {
    let config = config.with_confirmations(1);
    Engine::open(
        NamesApp::new(NamesConfig::regtest(first)),
        db,
        Source::Blocks(core(node, true)),
        config,
    )
    .unwrap()
}

fn sync(e: &mut Engine<NamesApp>) -> Result<vc_engine::SyncOutcome, EngineError> {
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
}

#[test]
fn deep_fork_stops_then_each_recovery_works() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, core(&node, true), &dir.path().join("s.redb"), 6).unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    drop(s);
    let sink = seeded_wallet(150, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    let other = seeded_wallet(151, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();

    let limited = || EngineConfig::default().with_max_reorg_depth(2);
    let db = dir.path().join("limited.redb");
    let mut e = engine(&node, &db, first, limited());
    sync(&mut e).unwrap();
    let before = e.store().tip().unwrap().unwrap();

    // A 3-block reorganisation against a limit of 2.
    let fork = before.height - 3;
    node.invalidate(&node.block_at(fork + 1).block_hash());
    node.mine(5, &other);
    let err = sync(&mut e).unwrap_err();
    match &err {
        EngineError::DeepReorg {
            fork_height, depth, ..
        } => assert_eq!((*fork_height, *depth), (fork, 3)),
        other => panic!("expected DeepReorg, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("at height {fork}")), "{msg}");
    assert_eq!(
        e.store().tip().unwrap().unwrap(),
        before,
        "nothing was rolled back"
    );

    // Option 3: pin the old branch; the engine now refuses the new one without rolling back.
    let (pin_height, pin_hash) = e.pin_branch(fork).unwrap();
    assert_eq!(pin_height, fork + 1);
    assert!(matches!(
        sync(&mut e),
        Err(EngineError::PinnedBranch { .. })
    ));
    assert_eq!(e.store().tip().unwrap().unwrap(), before);
    drop(e);
    // The pin persists across opens.
    let mut e = engine(&node, &db, first, limited());
    assert_eq!(e.pins(), &[(pin_height, pin_hash)]);
    assert!(matches!(
        sync(&mut e),
        Err(EngineError::PinnedBranch { .. })
    ));
    drop(e);

    // Option 1: re-index from a height. A second database indexes the current chain, the chain
    // forks 3 blocks deep again, and rewinding to the fork lets the next sync apply the new
    // branch: the result equals a fresh index.
    let db2 = dir.path().join("reindex.redb");
    let mut e = engine(&node, &db2, first, limited());
    sync(&mut e).unwrap();
    let tip = e.store().tip().unwrap().unwrap();
    assert_eq!(tip.height, node.height());
    let fork2 = tip.height - 3;
    node.invalidate(&node.block_at(fork2 + 1).block_hash());
    node.mine(4, &sink);
    assert!(matches!(sync(&mut e), Err(EngineError::DeepReorg { .. })));
    assert_eq!(e.rewind_to(fork2).unwrap(), 3);
    sync(&mut e).unwrap();
    let fresh_db = dir.path().join("fresh.redb");
    let mut fresh = engine(&node, &fresh_db, first, EngineConfig::default());
    sync(&mut fresh).unwrap();
    assert_eq!(e.store().tip().unwrap(), fresh.store().tip().unwrap());

    // Checkpoints: a wrong block hash stops before the block; the right one passes.
    let h = first + 5;
    let right = node.block_at(h).block_hash();
    let cp = |hash| {
        EngineConfig::default().with_checkpoint(Checkpoint {
            height: h,
            block_hash: Some(hash),
            consensus_hash: None,
        })
    };
    let mut bad = engine(&node, &dir.path().join("cp-bad.redb"), first, cp(pin_hash));
    match sync(&mut bad) {
        Err(EngineError::Checkpoint { height, .. }) => assert_eq!(height, h),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    assert_eq!(
        bad.store().tip().unwrap().unwrap().height,
        h - 1,
        "stopped before the block"
    );
    let mut wrong_ch = engine(
        &node,
        &dir.path().join("cp-ch.redb"),
        first,
        EngineConfig::default().with_checkpoint(Checkpoint {
            height: h,
            block_hash: None,
            consensus_hash: Some(vc_chash::ConsensusHash::Legacy([0; 16])),
        }),
    );
    assert!(
        matches!(sync(&mut wrong_ch), Err(EngineError::Checkpoint { height, .. }) if height == h)
    );
    assert_eq!(
        wrong_ch.store().tip().unwrap().unwrap().height,
        h - 1,
        "the block was not committed"
    );
    let mut good = engine(&node, &dir.path().join("cp-good.redb"), first, cp(right));
    sync(&mut good).unwrap();
    assert_eq!(good.store().tip().unwrap(), fresh.store().tip().unwrap());
}
