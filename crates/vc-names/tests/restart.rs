//! Restart equals continuous, on a real regtest bitcoind (issue 23): over a 200-block stretch
//! with name operations in every block and forced reorganisations, a database whose engine is
//! stopped and reopened at every block, one followed by a single engine through the reorgs, and
//! one indexed straight through at the end agree hash for hash at every height, and on the
//! whole names state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bitcoin::Transaction;
use common::{Node, Snapshot, core, preorder, snapshot};
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::{NamesApp, NamesConfig, build};
use vc_testnode::TestNode;

/// The stretch of blocks mined after the scripted history.
const STRETCH: u64 = 200;

/// The engine configuration every database here is indexed with.
fn config() -> EngineConfig {
    EngineConfig::default()
        .with_confirmations(1)
        .with_workers(2)
}

/// The engine on `db`, fed by the node's REST interface.
fn open(node: &TestNode, first: u64, db: &Path) -> Engine<NamesApp> {
    Engine::open(
        NamesApp::new(NamesConfig::regtest(first)),
        db,
        vc_source::Source::Blocks(core(node, true)),
        config(),
    )
    .unwrap()
}

/// Opens the engine on `db`, indexes what the node has, and drops it: one restart.
fn restart(node: &TestNode, first: u64, db: &Path) -> u64 {
    let out = open(node, first, db)
        .sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    out.tip.map_or(0, |t| t.height)
}

#[test]
fn a_database_restarted_at_every_block_equals_continuous_and_reorged_ones() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = vc_names::scenario::Scenario::start(
        &miner,
        core(&node, true),
        &dir.path().join("followed.redb"),
        12,
    )
    .unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let restarted = dir.path().join("restarted.redb");
    restart(&node, first, &restarted);

    // The stretch: every block carries a preorder from one of wallets 6..12 and, when that
    // wallet preordered a name six blocks earlier, its registration. After 50, 100 and 150 such
    // blocks the node is forced onto another branch: the newest 1, 2 and 3 blocks are
    // invalidated and replaced by
    // an empty block followed by the same transactions, so every operation lands one block
    // later (other consensus hashes) and the wallets' coins stay valid.
    let mut pending: [Option<String>; 12] = Default::default();
    let mut mined: Vec<Vec<Transaction>> = Vec::new();
    let mut reorgs = 0;
    let start = node.height();
    let mut i = 0u64;
    while node.height() < start + STRETCH {
        let who = 6 + usize::try_from(i % 6).unwrap();
        let mut txs = Vec::new();
        if let Some(name) = pending[who].take() {
            let p = build::plan_name_register(&name, &s.wallet(who).address(), None).unwrap();
            txs.push(s.sign(who, &p).unwrap());
        }
        let name = format!("r{i}xxxxxx.test");
        txs.push(preorder(&mut s, who, &name));
        pending[who] = Some(name);
        let r = s.mine(&txs).unwrap();
        // The preorder names the tip's consensus hash: accepted. A registration whose preorder
        // was replayed onto another branch may be refused; the databases must agree either way.
        assert!(r.accepted >= 1, "block {i}: {:?}", r.rejected);
        mined.push(txs);
        assert_eq!(restart(&node, first, &restarted), node.height());
        i += 1;

        if i.is_multiple_of(50) {
            let depth = (i / 50) as usize;
            let tip = node.height();
            let fork = tip - depth as u64;
            node.invalidate(&node.block_at(fork + 1).block_hash());
            let replayed: Vec<Vec<Transaction>> = mined.split_off(mined.len() - depth);
            s.mine(&[]).unwrap();
            assert_eq!(restart(&node, first, &restarted), fork + 1);
            for txs in replayed {
                s.mine(&txs).unwrap();
                assert_eq!(restart(&node, first, &restarted), node.height());
                mined.push(txs);
            }
            reorgs += 1;
            let last = s
                .reorgs()
                .last()
                .expect("the followed engine saw the reorg");
            assert_eq!((last.fork_height, last.depth), (fork, depth as u64));
        }
    }
    assert_eq!(reorgs, 3);

    let followed = snapshot(s.engine().store());
    let straight = {
        let mut e = open(&node, first, &dir.path().join("straight.redb"));
        e.sync(None, &AtomicBool::new(false), &mut NoObserver)
            .unwrap();
        snapshot(e.store())
    };
    let restarted = snapshot(open(&node, first, &restarted).store());
    let first_difference = |a: &Snapshot, b: &Snapshot| {
        a.chain
            .iter()
            .zip(&b.chain)
            .position(|(x, y)| x != y)
            .map(|k| first + k as u64)
    };
    assert_eq!(first_difference(&straight, &restarted), None);
    assert_eq!(first_difference(&straight, &followed), None);
    assert_eq!(straight, restarted, "restarted at every block");
    assert_eq!(
        straight, followed,
        "followed through {reorgs} reorganisations"
    );
    assert!(
        straight.chain.len() as u64 > STRETCH + 100,
        "{} blocks",
        straight.chain.len()
    );
    assert!(straight.names.len() > 100, "{} names", straight.names.len());
}
