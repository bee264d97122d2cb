//! The engine on its own, on in-memory chains: reorgs, limits, pins, checkpoints, stopping,
//! commit policy, faults, and watched versus whole blocks. No bitcoind needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use vc_engine::prelude::*;
use vc_engine::{BlockReport, Checkpoint, CommitReport, ReorgReport};
use vc_source::mem::MemoryChain;
use vc_store::CommitPolicy;

fn config() -> EngineConfig {
    EngineConfig::default().with_confirmations(1)
}

fn sync(e: &mut Engine<Toy>) -> Result<SyncOutcome, EngineError> {
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
}

/// A fresh index of `chain` by `toy`, dumped.
fn fresh(toy: &Toy, chain: &MemoryChain) -> Dump {
    let dir = tempdir();
    let mut e = engine(toy.clone(), &dir.path().join("fresh.redb"), chain, config());
    sync(&mut e).unwrap();
    dump(e.store())
}

/// A chain with `blocks` blocks of random operations above a few empty ones.
fn random_chain(seed: u64, blocks: u64) -> (MemoryChain, Rng) {
    let chain = MemoryChain::new(bitcoin::Network::Regtest);
    chain.mine(3);
    let mut rng = Rng(seed);
    mine_random(&chain, &mut rng, blocks, 3, None);
    (chain, rng)
}

#[derive(Default)]
struct Record {
    reorgs: Vec<ReorgReport>,
    commits: Vec<u64>,
    blocks: Vec<BlockReport>,
    stop_at: Option<u64>,
    stop: Option<std::sync::Arc<AtomicBool>>,
}

impl Observer for Record {
    fn on_block(&mut self, report: &BlockReport) {
        if self.stop_at == Some(report.info.height)
            && let Some(s) = &self.stop
        {
            s.store(true, Ordering::SeqCst);
        }
        self.blocks.push(report.clone());
    }
    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.reorgs.push(reorg.clone());
    }
    fn on_commit(&mut self, commit: &CommitReport) {
        self.commits.push(commit.height);
    }
}

#[test]
fn reorgs_of_every_depth_to_the_limit_equal_a_fresh_index() {
    for scheme in [Scheme::V2, Scheme::Legacy] {
        let (chain, mut rng) = random_chain(1, 110);
        let toy = Toy::new(scheme, 2);
        let dir = tempdir();
        let mut e = engine(toy.clone(), &dir.path().join("db.redb"), &chain, config());
        sync(&mut e).unwrap();
        for depth in 1..=100u64 {
            let old_tip = chain.height();
            chain.truncate(old_tip - depth);
            // As long as the old branch, or one longer.
            mine_random(&chain, &mut rng, depth + depth % 2, 2, Some(e.store()));
            let mut seen = Record::default();
            let out = e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
            assert_eq!(out.reorgs, 1, "depth {depth}");
            assert_eq!(seen.reorgs[0].depth, depth);
            assert_eq!(seen.reorgs[0].fork_height, old_tip - depth);
            // Checking every depth against a fresh index costs a fresh index each; every
            // seventh depth and the limit itself are enough to catch a drift early.
            if depth % 7 == 0 || depth == 100 {
                assert_eq!(dump(e.store()), fresh(&toy, &chain), "depth {depth}");
            }
        }
        assert_eq!(dump(e.store()), fresh(&toy, &chain));
    }
}

#[test]
fn a_reorg_deeper_than_the_limit_is_refused_and_changes_nothing() {
    let (chain, mut rng) = random_chain(2, 40);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let limited = config().with_max_reorg_depth(10);
    let mut e = engine(toy.clone(), &db, &chain, limited.clone());
    sync(&mut e).unwrap();
    let before = dump(e.store());
    let tip = chain.height();
    let stale = chain.truncate(tip - 11);
    mine_random(&chain, &mut rng, 12, 2, None);
    match sync(&mut e) {
        Err(EngineError::DeepReorg {
            fork_height,
            depth,
            tip: t,
            limit,
            new_branch_hash,
            ..
        }) => {
            assert_eq!((fork_height, depth, t, limit), (tip - 11, 11, tip, 10));
            assert_eq!(
                new_branch_hash,
                chain.block_at(tip - 10).unwrap().block_hash()
            );
        }
        other => panic!("expected DeepReorg, got {other:?}"),
    }
    assert_eq!(
        dump(e.store()),
        before,
        "a refused reorg changed the database"
    );
    // Refused again after a restart, still without a change.
    drop(e);
    let mut e = engine(toy.clone(), &db, &chain, limited);
    assert!(matches!(sync(&mut e), Err(EngineError::DeepReorg { .. })));
    assert_eq!(dump(e.store()), before);
    drop(e);
    // With the old branch back, the node simply goes on.
    chain.switch_to(&stale).unwrap();
    let mut e = engine(toy.clone(), &db, &chain, config().with_max_reorg_depth(10));
    sync(&mut e).unwrap();
    assert_eq!(dump(e.store()), before);
    // A higher limit takes the new branch.
    chain.truncate(tip - 11);
    mine_random(&chain, &mut rng, 12, 2, None);
    drop(e);
    let mut e = engine(toy.clone(), &db, &chain, config().with_max_reorg_depth(11));
    assert_eq!(sync(&mut e).unwrap().reorgs, 1);
    assert_eq!(dump(e.store()), fresh(&toy, &chain));
}

#[test]
fn a_pinned_branch_refuses_the_other_one_and_follows_its_own() {
    let (chain, mut rng) = random_chain(3, 30);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let mut e = engine(toy.clone(), &db, &chain, config());
    sync(&mut e).unwrap();
    let fork = chain.height() - 5;
    let (pinned_height, pinned) = e.pin_branch(fork).unwrap();
    assert_eq!(pinned_height, fork + 1);
    let before = dump(e.store());
    let ours = chain.truncate(fork);
    mine_random(&chain, &mut rng, 8, 2, None);
    match sync(&mut e) {
        Err(EngineError::PinnedBranch {
            height,
            pinned: p,
            found,
        }) => {
            assert_eq!((height, p), (fork + 1, pinned));
            assert_eq!(found, chain.block_at(fork + 1).unwrap().block_hash());
        }
        other => panic!("expected PinnedBranch, got {other:?}"),
    }
    assert_eq!(dump(e.store()), before);
    // The pin survives a restart, and the pinned branch is followed as it grows.
    drop(e);
    chain.switch_to(&ours).unwrap();
    mine_random(&chain, &mut rng, 4, 2, None);
    let mut e = engine(toy.clone(), &db, &chain, config());
    assert_eq!(e.pins(), &[(fork + 1, pinned)]);
    sync(&mut e).unwrap();
    assert_eq!(dump(e.store()), fresh(&toy, &chain));
}

#[test]
fn checkpoints_stop_before_a_mismatch_and_pass_a_match() {
    let (chain, _) = random_chain(4, 30);
    let toy = Toy::new(Scheme::V2, 2);
    let h = 20;
    let good_block = chain.block_at(h).unwrap().block_hash();
    let reference = fresh(&toy, &chain);
    let good_ch = {
        let dir = tempdir();
        let mut e = engine(toy.clone(), &dir.path().join("r.redb"), &chain, config());
        sync(&mut e).unwrap();
        e.store()
            .view()
            .unwrap()
            .chain_entry(h)
            .unwrap()
            .unwrap()
            .consensus_hash
    };
    let good_ch = ConsensusHash::from_slice(Scheme::V2, &good_ch).unwrap();
    let wrong_block = chain.block_at(h + 1).unwrap().block_hash();
    let wrong_ch = ConsensusHash::from_slice(Scheme::V2, &[1; 32]).unwrap();
    let cases = [
        (Some(wrong_block), None, true),
        (None, Some(wrong_ch), true),
        (Some(good_block), Some(good_ch), false),
    ];
    for (block_hash, consensus_hash, fails) in cases {
        let dir = tempdir();
        let cp = Checkpoint {
            height: h,
            block_hash,
            consensus_hash,
        };
        let db = dir.path().join("cp.redb");
        let mut e = engine(toy.clone(), &db, &chain, config().with_checkpoint(cp));
        let result = sync(&mut e);
        if fails {
            assert!(matches!(result, Err(EngineError::Checkpoint { height, .. }) if height == h));
            // Everything below the checkpoint is committed, nothing at or above it.
            drop(e);
            let e = engine(toy.clone(), &db, &chain, config());
            assert_eq!(e.store().tip().unwrap().unwrap().height, h - 1);
        } else {
            result.unwrap();
            assert_eq!(dump(e.store()), reference);
        }
    }
}

#[test]
fn the_stop_flag_and_should_continue_stop_on_a_committed_block() {
    let (chain, _) = random_chain(5, 30);
    let toy = Toy::new(Scheme::Legacy, 2);
    let reference = fresh(&toy, &chain);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let mut e = engine(toy.clone(), &db, &chain, config());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let mut seen = Record {
        stop_at: Some(12),
        stop: Some(stop.clone()),
        ..Record::default()
    };
    let out = e.sync(None, &stop, &mut seen).unwrap();
    assert_eq!(out.stopped, Stopped::Interrupted);
    assert_eq!(out.tip.unwrap().height, 12);
    assert_eq!(seen.commits.last(), Some(&12));
    drop(e);
    // should_continue: the application asks to stop after block 20.
    let mut stopping = toy.clone();
    stopping.stop_after = Some(20);
    let mut e = engine(stopping, &db, &chain, config());
    let out = sync(&mut e).unwrap();
    assert_eq!(out.stopped, Stopped::AppDone);
    assert_eq!(out.tip.unwrap().height, 20);
    drop(e);
    let mut e = engine(toy, &db, &chain, config());
    assert_eq!(sync(&mut e).unwrap().stopped, Stopped::Reached);
    assert_eq!(dump(e.store()), reference);
}

#[test]
fn catch_up_commits_by_policy_and_the_tip_commits_every_block() {
    let (chain, mut rng) = random_chain(6, 21);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let policy = CommitPolicy {
        max_blocks: 5,
        max_interval: std::time::Duration::from_secs(3600),
        interval_per_commit: 0,
    };
    let mut e = engine(
        toy,
        &dir.path().join("db.redb"),
        &chain,
        config().with_commit(policy),
    );
    let mut seen = Record::default();
    e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
    // Blocks 2..=24 (23 blocks): commits after every fifth, and at the target.
    assert_eq!(seen.commits, vec![6, 11, 16, 21, 24]);
    for _ in 0..3 {
        mine_random(&chain, &mut rng, 1, 2, None);
        let mut seen = Record::default();
        e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
        assert_eq!(seen.commits, vec![chain.height()]);
    }
}

#[test]
fn a_failing_hook_discards_its_block_and_a_restart_goes_on() {
    let (chain, _) = random_chain(7, 30);
    let toy = Toy::new(Scheme::V2, 2);
    let reference = fresh(&toy, &chain);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    // Fail in a block with operations, under a policy that has not committed since block 9.
    let policy = CommitPolicy {
        max_blocks: 8,
        max_interval: std::time::Duration::from_secs(3600),
        interval_per_commit: 0,
    };
    let target = (14..30)
        .find(|&h| chain.block_at(h).unwrap().txdata.len() > 1)
        .unwrap();
    let faulty = toy.clone();
    faulty.fault.at(target);
    let mut e = engine(faulty, &db, &chain, config().with_commit(policy));
    let mut seen = Record::default();
    match e.sync(None, &AtomicBool::new(false), &mut seen) {
        Err(EngineError::Hook { height, txid, .. }) => {
            assert_eq!(height, target);
            assert!(txid.is_some());
        }
        other => panic!("expected a hook failure, got {other:?}"),
    }
    let committed = *seen.commits.last().unwrap();
    assert!(committed < target);
    drop(e);
    let mut e = engine(toy, &db, &chain, config());
    assert_eq!(e.store().tip().unwrap().unwrap().height, committed);
    sync(&mut e).unwrap();
    assert_eq!(dump(e.store()), reference);
}

#[test]
fn rejected_operations_leave_no_trace() {
    let (chain, _) = random_chain(8, 60);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let mut e = engine(toy, &dir.path().join("db.redb"), &chain, config());
    let mut seen = Record::default();
    e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
    let accepted: u64 = seen.blocks.iter().map(|b| u64::from(b.accepted)).sum();
    let by_stage = |s: Stage| {
        seen.blocks
            .iter()
            .flat_map(|b| &b.rejected)
            .filter(|r| r.stage == s)
            .count()
    };
    assert!(
        by_stage(Stage::Apply) > 5 && by_stage(Stage::Parse) > 5,
        "a weak chain"
    );
    let d = dump(e.store());
    assert!(
        d.state["junk"].is_empty(),
        "a rejected operation's write survived"
    );
    let view = e.store().view().unwrap();
    let counted: u64 = view
        .range(&COUNTS, None, None)
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(counted, accepted, "rejected operations were counted");
    let ops: usize = view.ops_range(0, chain.height()).unwrap().len();
    assert_eq!(ops as u64, accepted);
    // The records are the accepted operations' own: one each, two for an accepted `w`
    // (which emits before it decides).
    for (_, op) in view.ops_range(0, chain.height()).unwrap() {
        assert_eq!(op.records.len(), if op.opcode == b'w' { 2 } else { 1 });
    }
}

#[test]
fn a_watching_source_equals_whole_blocks() {
    let (chain, mut rng) = random_chain(9, 60);
    let mut toy = Toy::new(Scheme::Legacy, 2);
    toy.markers = true;
    let dir = tempdir();
    let mut blocks = engine(toy.clone(), &dir.path().join("b.redb"), &chain, config());
    let mut watched = watching_engine(toy.clone(), &dir.path().join("w.redb"), &chain, config());
    for round in 0..4 {
        sync(&mut blocks).unwrap();
        sync(&mut watched).unwrap();
        let (b, w) = (dump(blocks.store()), dump(watched.store()));
        assert!(b.ops.len() > 3, "a weak chain");
        assert_eq!(b, w, "round {round}");
        chain.reorg(3, 5);
        mine_random(&chain, &mut rng, 3, 3, None);
    }
    // Without markers an application cannot run on a watching source.
    let err = Engine::open(
        Toy::new(Scheme::V2, 2),
        dir.path().join("x.redb"),
        Source::watched(chain.watching()),
        config(),
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::NeedsMarkers { .. }));
    // An application that reads witnesses cannot: an Electrum server cannot prove them.
    let mut reads_witnesses = Toy::new(Scheme::V2, 2);
    reads_witnesses.markers = true;
    reads_witnesses.witnesses = true;
    let err = Engine::open(
        reads_witnesses.clone(),
        dir.path().join("y.redb"),
        Source::watched(chain.watching()),
        config(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Spec(m) if m.contains("witnesses")),
        "{err}"
    );
    // On whole blocks it runs, and equals the application that does not read them (no
    // operation of this chain has a witness).
    let mut plain = reads_witnesses.clone();
    plain.witnesses = false;
    let mut w = engine(
        reads_witnesses,
        &dir.path().join("z.redb"),
        &chain,
        config(),
    );
    sync(&mut w).unwrap();
    assert!(dump(w.store()) == fresh(&plain, &chain), "the two differ");
}

#[test]
fn a_database_refuses_a_source_on_another_network() {
    let (chain, _) = random_chain(10, 5);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let mut e = engine(Toy::new(Scheme::V2, 2), &db, &chain, config());
    sync(&mut e).unwrap();
    drop(e);
    let mainnet = MemoryChain::new(bitcoin::Network::Bitcoin);
    let err = Engine::open(
        Toy::new(Scheme::V2, 2),
        &db,
        Source::blocks(mainnet),
        config(),
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::WrongNetwork { .. }), "{err}");
}

/// A third-party source that serves `block` with its last transaction dropped from every block
/// above `from`, and does no checking of its own.
struct Lying {
    chain: MemoryChain,
    from: u64,
}

impl vc_source::ChainView for Lying {
    fn name(&self) -> &'static str {
        "lying"
    }
    fn network(&self) -> bitcoin::Network {
        self.chain.network()
    }
    fn tip(&self) -> Result<vc_source::ChainTip, vc_source::SourceError> {
        self.chain.tip()
    }
    fn block_hash(&self, height: u64) -> Result<bitcoin::BlockHash, vc_source::SourceError> {
        self.chain.block_hash(height)
    }
    fn headers(
        &self,
        start: u64,
        count: usize,
    ) -> Result<Vec<bitcoin::block::Header>, vc_source::SourceError> {
        self.chain.headers(start, count)
    }
}

impl BlockSource for Lying {
    fn block(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<vc_source::FetchedBlock, vc_source::SourceError> {
        let mut block = self.chain.block(hash)?.block;
        let height = (0..=self.chain.height())
            .find(|h| self.chain.block_hash(*h).ok() == Some(*hash))
            .unwrap_or(0);
        if height > self.from && block.txdata.len() > 1 {
            block.txdata.pop();
        }
        Ok(vc_source::FetchedBlock::new(block, 0))
    }
    fn spent_outputs(
        &self,
        hash: &bitcoin::BlockHash,
        block: &bitcoin::Block,
    ) -> Result<vc_source::SpentOutputs, vc_source::SourceError> {
        self.chain.spent_outputs(hash, block)
    }
}

#[test]
fn a_third_party_source_cannot_skip_validation() {
    let (chain, _) = random_chain(11, 30);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let mut honest = engine(toy.clone(), &db, &chain, config());
    honest
        .sync(Some(20), &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    let before = dump(honest.store());
    drop(honest);
    let lying = Lying {
        chain: chain.clone(),
        from: 20,
    };
    let mut e = Engine::open(toy, &db, Source::blocks(lying), config()).unwrap();
    match sync(&mut e) {
        Err(EngineError::Source(vc_source::SourceError::Unverified {
            violation, height, ..
        })) => {
            assert_eq!(violation, vc_source::Violation::MerkleRoot);
            assert!(height > 20);
        }
        other => panic!("expected a merkle-root violation, got {other:?}"),
    }
    // Blocks before the first lie may have been applied; nothing from it on.
    let first_lie = (21..=chain.height())
        .find(|h| chain.block_at(*h).unwrap().txdata.len() > 1)
        .unwrap();
    let after = dump(e.store());
    assert_eq!(after.chain[..before.chain.len()], before.chain[..]);
    assert!(e.store().tip().unwrap().unwrap().height < first_lie);
}

#[test]
fn an_engine_runs_on_a_store_its_caller_opened() {
    let (chain, _) = random_chain(12, 20);
    let toy = Toy::new(Scheme::V2, 2);
    let dir = tempdir();
    let db = dir.path().join("db.redb");
    let spec = toy.spec();
    let store = vc_store::Store::open(
        &db,
        vc_engine::store_config(&spec, bitcoin::Network::Regtest, 100),
    )
    .unwrap();
    let mut e =
        Engine::with_store(toy.clone(), store, Source::blocks(chain.clone()), config()).unwrap();
    sync(&mut e).unwrap();
    assert_eq!(dump(e.store()), fresh(&toy, &chain));
    drop(e);
    // A store made for another application, or another network, is refused.
    let other = Toy::new(Scheme::Legacy, 2);
    let store = vc_store::Store::open(
        dir.path().join("other.redb"),
        vc_engine::store_config(&other.spec(), bitcoin::Network::Regtest, 100),
    )
    .unwrap();
    let err = Engine::with_store(toy.clone(), store, Source::blocks(chain.clone()), config())
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Spec(ref m) if m.contains("scheme")),
        "{err}"
    );
    let store = vc_store::Store::open(
        dir.path().join("mainnet.redb"),
        vc_engine::store_config(&spec, bitcoin::Network::Bitcoin, 100),
    )
    .unwrap();
    let err = Engine::with_store(toy, store, Source::blocks(chain), config()).unwrap_err();
    assert!(matches!(err, EngineError::WrongNetwork { .. }), "{err}");
}
