//! Reorganisations and source agreement on a real regtest bitcoind, with the names app.
//!
//! After the scripted names history, three reorganisations of depth 1, 3 and 10 each replace
//! blocks that carried operations with a longer branch that carries different ones. After each,
//! the followed database must equal a fresh index of the new chain (every consensus hash, ops
//! hash and the whole names state), and at the end Core REST, Core JSON-RPC and the node's block
//! files must give the same consensus-hash sequence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::Network;
use common::{Node, Snapshot, core, snapshot};
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::scenario::{Scenario, test_namespace_params};
use vc_names::{NamesApp, NamesConfig, build, price::name_price};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::{BlockSource, Source};
use vc_testnode::TestNode;

fn fresh_index(source: Arc<dyn BlockSource>, first_block: u64, db: &Path) -> Snapshot {
    let config = EngineConfig::default().with_confirmations(1);
    let mut e = Engine::open(
        NamesApp::new(NamesConfig::regtest(first_block)),
        db,
        Source::Blocks(source),
        config,
    )
    .unwrap();
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    snapshot(e.store())
}

#[test]
fn reorgs_of_depth_1_3_10_equal_a_fresh_index_and_sources_agree() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = Scenario::start(
        &miner,
        core(&node, true),
        &dir.path().join("followed.redb"),
        12,
    )
    .unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let price = name_price("abcdefgh", &test_namespace_params());

    for (round, depth) in [1u64, 3, 10].into_iter().enumerate() {
        let (wa, wb) = (6 + 2 * round, 7 + 2 * round);
        // Branch A: `depth` blocks, each with a name preorder and (from the second block on)
        // the registration of the previous block's name.
        let fork = node.height();
        let mut pending: Option<String> = None;
        for i in 0..depth {
            let ch = s.consensus_hash().unwrap();
            let mut txs = Vec::new();
            if let Some(name) = pending.take() {
                let p = build::plan_name_register(&name, &s.wallet(wa).address(), None).unwrap();
                txs.push(s.sign(wa, &p).unwrap());
            }
            let name = format!("a{depth}n{i}xxxxx.test");
            let p = build::plan_name_preorder(
                &name,
                &s.wallet(wa).script(),
                &s.wallet(wa).address(),
                ch,
                price,
            )
            .unwrap();
            txs.push(s.sign(wa, &p).unwrap());
            pending = Some(name);
            let r = s.mine(&txs).unwrap();
            assert_eq!(
                r.accepted as usize,
                txs.len(),
                "branch A block {i}: {:?}",
                r.rejected
            );
        }
        let tip_a = snapshot(s.engine().store());
        assert_eq!(
            s.engine().store().tip().unwrap().unwrap().height,
            fork + depth
        );

        // Branch B replaces them: one block longer, other names from another wallet.
        node.invalidate(&node.block_at(fork + 1).block_hash());
        s.sync().unwrap();
        let reorg = s.reorgs().last().cloned().expect("a reorganisation");
        assert_eq!(
            (reorg.fork_height, reorg.depth),
            (fork, depth),
            "round {round}"
        );
        let mut pending: Option<String> = None;
        for i in 0..=depth {
            let ch = s.consensus_hash().unwrap();
            let mut txs = Vec::new();
            if let Some(name) = pending.take() {
                let p = build::plan_name_register(&name, &s.wallet(wb).address(), None).unwrap();
                txs.push(s.sign(wb, &p).unwrap());
            }
            let name = format!("b{depth}n{i}yyyyy.test");
            let p = build::plan_name_preorder(
                &name,
                &s.wallet(wb).script(),
                &s.wallet(wb).address(),
                ch,
                price,
            )
            .unwrap();
            txs.push(s.sign(wb, &p).unwrap());
            pending = Some(name);
            let r = s.mine(&txs).unwrap();
            assert_eq!(
                r.accepted as usize,
                txs.len(),
                "branch B block {i}: {:?}",
                r.rejected
            );
        }
        let followed = snapshot(s.engine().store());
        assert_ne!(
            followed.names, tip_a.names,
            "the branches carried different names"
        );
        assert!(
            followed
                .names
                .iter()
                .any(|(n, _)| n.starts_with(&format!("b{depth}n")))
        );
        assert!(
            !followed
                .names
                .iter()
                .any(|(n, _)| n.starts_with(&format!("a{depth}n")))
        );
        let fresh = fresh_index(
            core(&node, true),
            first,
            &dir.path().join(format!("fresh{depth}.redb")),
        );
        assert_eq!(followed, fresh, "after the depth-{depth} reorganisation");
    }

    // The three sources give the same consensus-hash sequence (and state).
    let followed = snapshot(s.engine().store());
    let rpc = fresh_index(core(&node, false), first, &dir.path().join("rpc.redb"));
    let blk = BlkSource::open(BlkConfig::new(node.blocks_dir(), Network::Regtest)).unwrap();
    let blk = fresh_index(Arc::new(blk), first, &dir.path().join("blk.redb"));
    assert_eq!(rpc, followed, "Core JSON-RPC");
    assert_eq!(blk, followed, "block files");
    assert!(
        followed.chain.len() > 130,
        "{} blocks",
        followed.chain.len()
    );
}
