//! The geometric fork watch on in-memory chains: forks of every depth found at the first poll
//! in `O(log n)` probe requests and located in `O(log d)` more, counted at the source; a
//! source that contradicts itself refused; forks beyond the automatic limit reported before
//! the engine stops; every detection recorded in the file for its readers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Network};
use common::*;
use vc_engine::prelude::*;
use vc_engine::watch::probe_heights;
use vc_engine::{ForkReport, ReorgReport};
use vc_source::mem::MemoryChain;
use vc_source::{BlockSource, ChainTip, ChainView, FetchedBlock, SourceError, SpentOutputs};
use vc_store::LastFork;

/// A memory chain that counts `block_hash` requests and can lie about the hash at one height.
#[derive(Clone)]
struct Counting {
    chain: MemoryChain,
    hash_requests: Arc<AtomicU32>,
    lie_at: Arc<std::sync::Mutex<Option<u64>>>,
    /// Answers "past the tip" once for this height, as a node does in the middle of a
    /// reorganisation.
    vanish_once: Arc<std::sync::Mutex<Option<u64>>>,
}

impl Counting {
    fn new(chain: &MemoryChain) -> Self {
        Counting {
            chain: chain.clone(),
            hash_requests: Arc::default(),
            lie_at: Arc::default(),
            vanish_once: Arc::default(),
        }
    }
    fn requests(&self) -> u32 {
        self.hash_requests.load(Ordering::SeqCst)
    }
}

impl ChainView for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn network(&self) -> Network {
        self.chain.network()
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.chain.tip()
    }
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        self.hash_requests.fetch_add(1, Ordering::SeqCst);
        let mut vanish = self.vanish_once.lock().unwrap();
        if *vanish == Some(height) {
            *vanish = None;
            return Err(SourceError::PastTip {
                source_name: "counting",
                height,
                tip: height.saturating_sub(1),
            });
        }
        drop(vanish);
        if *self.lie_at.lock().unwrap() == Some(height) {
            return Ok(BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()));
        }
        self.chain.block_hash(height)
    }
    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        self.chain.headers(start, count)
    }
}

impl BlockSource for Counting {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        self.chain.block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        self.chain.spent_outputs(hash, block)
    }
}

/// What the engine reported, with the source's request count at each fork report.
#[derive(Default)]
struct Seen {
    forks: Vec<(ForkReport, u32)>,
    reorgs: Vec<ReorgReport>,
    counter: Option<Counting>,
}

impl Observer for Seen {
    fn on_fork(&mut self, fork: &ForkReport) {
        let at = self.counter.as_ref().map_or(0, Counting::requests);
        self.forks.push((fork.clone(), at));
    }
    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.reorgs.push(reorg.clone());
    }
}

const FIRST: u64 = 2;

fn config() -> EngineConfig {
    EngineConfig::default()
        .with_confirmations(1)
        .with_max_reorg_depth(u64::MAX)
        .with_undo_window(u64::MAX)
}

fn fresh(toy: &Toy, chain: &MemoryChain) -> Dump {
    let dir = tempdir();
    let mut e = engine(toy.clone(), &dir.path().join("fresh.redb"), chain, config());
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    dump(e.store())
}

/// A chain of a few empty blocks and `blocks` random ones, indexed through a counting source
/// with `config`: (chain, its counting view, rng, engine, the directory holding the database).
struct Indexed {
    chain: MemoryChain,
    counting: Counting,
    rng: Rng,
    engine: Engine<Toy>,
    _dir: tempfile::TempDir,
}

fn indexed(seed: u64, blocks: u64, max_ops: u64, config: EngineConfig) -> Indexed {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(3);
    let mut rng = Rng(seed);
    mine_random(&chain, &mut rng, blocks, max_ops, None);
    let dir = tempdir();
    let counting = Counting::new(&chain);
    let mut engine = Engine::open(
        Toy::new(Scheme::V2, FIRST),
        dir.path().join("db.redb"),
        Source::blocks(counting.clone()),
        config,
    )
    .unwrap();
    engine
        .sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    Indexed {
        chain,
        counting,
        rng,
        engine,
        _dir: dir,
    }
}

#[test]
fn forks_of_every_depth_are_found_at_the_first_poll_in_logarithmic_requests() {
    let Indexed {
        chain,
        counting,
        mut rng,
        engine: mut e,
        ..
    } = indexed(23, 2_100, 1, config());
    let toy = Toy::new(Scheme::V2, FIRST);
    // (depth, bisection requests): the fork lies between the probes 2^(j-1) and 2^j below the
    // tip, a bracket of 2^(j-1) heights, so the search takes j - 1 = ⌊log2(d - 1)⌋ requests.
    for (n, (depth, search)) in [
        (1u64, 0u32),
        (2, 0),
        (6, 2),
        (10, 3),
        (100, 6),
        (1_000, 9),
        (2_000, 10),
    ]
    .into_iter()
    .enumerate()
    {
        let tip = chain.height();
        chain.truncate(tip - depth);
        // A longer branch, as a node that switched chains while the indexer was down serves.
        mine_random(&chain, &mut rng, depth + 1, 1, None);
        let before = counting.requests();
        let mut seen = Seen {
            counter: Some(counting.clone()),
            ..Seen::default()
        };
        let out = e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
        assert_eq!(out.reorgs, 1, "depth {depth}");
        let (fork, at) = seen.forks.first().expect("a fork report").clone();
        let probes = u32::try_from(probe_heights(tip, FIRST).len()).unwrap();
        assert_eq!(
            (fork.fork_height, fork.depth, fork.tip),
            (tip - depth, depth, tip),
            "depth {depth}"
        );
        assert_eq!(fork.probe_requests, probes, "depth {depth}");
        // About 2,100 blocks: 14 probes (⌈log2 2100⌉ + 2).
        assert_eq!(probes, 14, "{probes} probes");
        assert_eq!(fork.search_requests, search, "depth {depth}");
        // The source saw exactly the requests the report counts, before the report.
        assert_eq!(at - before, fork.requests(), "depth {depth}");
        assert!(fork.automatic);
        assert_eq!(seen.reorgs[0].depth, depth);
        // Recorded in the file for its readers (the server's events feed), one more each time.
        let seq = u64::try_from(n).unwrap() + 1;
        assert_eq!(
            e.store().view().unwrap().last_fork().unwrap(),
            Some(LastFork::new(
                seq,
                tip - depth,
                tip,
                chain.height(),
                probes,
                search,
                true
            ))
        );
        eprintln!(
            "depth {depth}: detected with {} probe requests, located with {} more",
            fork.probe_requests, fork.search_requests
        );
    }
    assert_eq!(dump(e.store()), fresh(&toy, &chain));
}

#[test]
fn on_the_source_s_chain_every_poll_costs_only_the_probes() {
    let Indexed {
        counting,
        engine: mut e,
        ..
    } = indexed(1, 1_027, 0, config());
    let before = counting.requests();
    let mut seen = Seen::default();
    let out = e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
    assert_eq!((out.blocks, out.reorgs), (0, 0));
    assert!(seen.forks.is_empty());
    // Heights 2..=1030: the tip, 1, 2, 4, ..., 1024 below it, and the first block.
    assert_eq!(counting.requests() - before, 13);
    assert_eq!(probe_heights(1_030, FIRST).len(), 13);
}

#[test]
fn a_source_that_contradicts_itself_is_refused_without_a_change() {
    let Indexed {
        chain,
        counting,
        engine: mut e,
        ..
    } = indexed(5, 200, 2, config());
    let before = dump(e.store());
    let tip = chain.height();
    // The tip links, but the hash 64 blocks below it is another chain's.
    *counting.lie_at.lock().unwrap() = Some(tip - 64);
    match e.sync(None, &AtomicBool::new(false), &mut NoObserver) {
        Err(EngineError::InconsistentSource {
            agrees_at,
            differs_at,
        }) => {
            assert_eq!(differs_at, tip - 64);
            assert!(agrees_at > differs_at);
        }
        other => panic!("expected InconsistentSource, got {other:?}"),
    }
    assert_eq!(dump(e.store()), before);
}

/// A node half-way through a reorganisation answers one probe with "past my tip": `follow`
/// polls again instead of stopping, and reaches the tip.
#[test]
fn follow_polls_again_when_the_source_moves_during_a_pass() {
    let Indexed {
        chain,
        counting,
        mut rng,
        mut engine,
        _dir,
    } = indexed(
        9,
        40,
        3,
        config().with_poll_interval(std::time::Duration::from_millis(10)),
    );
    mine_random(&chain, &mut rng, 5, 2, None);
    let tip = chain.tip().unwrap().height;
    *counting.vanish_once.lock().unwrap() = Some(FIRST);
    let outcome = engine
        .follow(Some(tip), &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    assert_eq!(outcome.tip.map(|t| t.height), Some(tip));
    assert_eq!(
        *counting.vanish_once.lock().unwrap(),
        None,
        "the probe was asked"
    );
}

#[test]
fn a_fork_beyond_the_automatic_limit_is_reported_before_the_engine_stops() {
    let Indexed {
        chain,
        mut rng,
        engine: mut e,
        ..
    } = indexed(9, 300, 2, config().with_max_reorg_depth(100));
    let before = dump(e.store());
    let tip = chain.height();
    chain.truncate(tip - 150);
    mine_random(&chain, &mut rng, 151, 2, None);
    let mut seen = Seen::default();
    let err = e
        .sync(None, &AtomicBool::new(false), &mut seen)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::DeepReorg { depth: 150, .. }),
        "{err:?}"
    );
    let (fork, _) = &seen.forks[0];
    assert_eq!(
        (fork.fork_height, fork.depth, fork.automatic),
        (tip - 150, 150, false)
    );
    assert!(seen.reorgs.is_empty());
    assert_eq!(dump(e.store()), before);
    // The detection is recorded for the file's readers even though nothing was rolled back.
    let recorded = e.store().view().unwrap().last_fork().unwrap().unwrap();
    assert_eq!(
        (recorded.seq, recorded.fork_height, recorded.depth()),
        (1, tip - 150, 150)
    );
    assert!(!recorded.automatic);
}

#[test]
fn a_fork_deeper_than_any_window_is_reverted_by_command_to_a_fresh_index() {
    // The defaults: 100 blocks reverted automatically, every undo log kept.
    let Indexed {
        chain,
        mut rng,
        engine: mut e,
        ..
    } = indexed(31, 1_600, 2, EngineConfig::default().with_confirmations(1));
    let tip = chain.height();
    chain.truncate(tip - 1_500);
    mine_random(&chain, &mut rng, 1_501, 2, None);
    let fork_height = match e.sync(None, &AtomicBool::new(false), &mut NoObserver) {
        Err(EngineError::DeepReorg {
            fork_height, depth, ..
        }) => {
            assert_eq!(depth, 1_500);
            fork_height
        }
        other => panic!("expected DeepReorg, got {other:?}"),
    };
    // `virtualchain recover revert --to FORK`: one undo log per block, no re-index.
    assert_eq!(e.rewind_to(fork_height).unwrap(), 1_500);
    let mut seen = Seen::default();
    let out = e.sync(None, &AtomicBool::new(false), &mut seen).unwrap();
    assert_eq!((out.reorgs, out.blocks), (0, 1_501));
    assert!(seen.forks.is_empty());
    assert_eq!(dump(e.store()), fresh(&Toy::new(Scheme::V2, FIRST), &chain));
}
