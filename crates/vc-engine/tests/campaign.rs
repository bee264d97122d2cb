//! The differential campaign: random chains and operations, reorganisations of depth 1 to 100,
//! switches back to stale branches, engines stopped mid-sync or failing mid-block and reopened,
//! random commit policies, whole and watched sources. Every scenario must end equal to a fresh
//! index of its final chain in every consensus hash, ops hash, stored operation and state
//! entry.
//!
//! `VC_CAMPAIGN_SCENARIOS` sets the number of scenarios (default 1,000) and
//! `VC_CAMPAIGN_SEED` the first seed; a failure names the seed that replays it, and so does a
//! scenario still running after 300 s (stuck), which ends the process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use vc_engine::prelude::*;
use vc_engine::{BlockReport, ReorgReport};
use vc_source::mem::MemoryChain;
use vc_store::CommitPolicy;

/// What a scenario did, for the campaign's totals.
#[derive(Default)]
struct Tally {
    blocks: u64,
    reorgs: u64,
    deepest: u64,
    restarts: u64,
    faults: u64,
    stops: u64,
    switches: u64,
    accepted: u64,
}

/// Raises the stop flag after a chosen number of applied blocks.
struct StopAfter {
    left: Option<u64>,
    flag: Arc<AtomicBool>,
    tally: Tally,
}

impl Observer for StopAfter {
    fn on_block(&mut self, report: &BlockReport) {
        self.tally.blocks += 1;
        self.tally.accepted += u64::from(report.accepted);
        if let Some(left) = self.left.as_mut() {
            if *left == 0 {
                self.flag.store(true, Ordering::SeqCst);
            }
            *left = left.saturating_sub(1);
        }
    }
    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.tally.reorgs += 1;
        self.tally.deepest = self.tally.deepest.max(reorg.depth);
    }
}

fn random_config(rng: &mut Rng) -> EngineConfig {
    let policy = CommitPolicy {
        max_blocks: u32::try_from(rng.range(1, 40)).unwrap(),
        max_interval: Duration::from_secs(3600),
        interval_per_commit: 0,
    };
    EngineConfig::default()
        .with_confirmations(1)
        .with_workers(usize::try_from(rng.range(1, 3)).unwrap())
        .with_window(usize::try_from(rng.range(1, 16)).unwrap())
        .with_commit(policy)
}

/// One scenario; panics with its seed on a difference.
fn scenario(seed: u64, tally: &mut Tally) {
    let mut rng = Rng(seed);
    let chain = MemoryChain::new(bitcoin::Network::Regtest);
    chain.mine(usize::try_from(rng.range(0, 4)).unwrap());
    let first = rng.range(1, chain.height() + 2);
    // Every scheme; v3's consensus hashes also commit the state tree, so its roots too must
    // equal a fresh index's after every reorg and restart.
    let scheme = match rng.range(0, 2) {
        0 => Scheme::Legacy,
        1 => Scheme::V2,
        _ => Scheme::V3,
    };
    let mut toy = Toy::new(scheme, first);
    toy.markers = rng.chance(30);
    let watching = toy.markers && rng.chance(50);
    let source = if watching {
        Source::watched(chain.watching())
    } else {
        Source::blocks(chain.clone())
    };
    let dir = tempdir();
    let db = dir.path().join("scenario.redb");
    let mut engine = Some(engine_on(&toy, &db, &source, random_config(&mut rng)));
    let n = rng.range(5, 60);
    mine_random(&chain, &mut rng, n, 3, None);
    // Replaced branches: (the height they fork above, their blocks).
    let mut stale: Vec<(u64, Vec<bitcoin::BlockHash>)> = Vec::new();
    let steps = rng.range(3, 9);
    for _ in 0..steps {
        let store_ref = engine.as_ref().map(|e| e.store());
        match rng.range(0, 9) {
            0..=3 => {
                let n = rng.range(1, 40);
                mine_random(&chain, &mut rng, n, 3, store_ref);
            }
            4..=7 => {
                let height = chain.height();
                let depth = rng.range(1, 100.min(height.saturating_sub(first).max(1)));
                let fork = height.saturating_sub(depth).max(1);
                stale.push((fork, chain.truncate(fork)));
                let n = height - fork + rng.range(0, 5);
                mine_random(&chain, &mut rng, n, 3, store_ref);
            }
            _ => {
                // Back to a replaced branch, if that is a reorganisation within the limit.
                if let Some((fork, branch)) = stale.pop()
                    && chain.height() - fork <= 100
                    && chain.switch_to(&branch).is_ok()
                {
                    tally.switches += 1;
                }
            }
        }
        // Sync, with one of: nothing in the way, a stop flag raised after some blocks, or a
        // fault in a block ahead that loses everything uncommitted; and now and then a
        // restart, as after a crash.
        let e = engine.as_mut().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let mut obs = StopAfter {
            left: None,
            flag: flag.clone(),
            tally: Tally::default(),
        };
        let indexed = e.store().tip().unwrap().map_or(first, |t| t.height);
        match rng.range(0, 5) {
            0 => obs.left = Some(rng.range(0, 30)),
            1 => toy
                .fault
                .at(rng.range(indexed.saturating_sub(10), chain.height())),
            _ => {}
        }
        let result = e.sync(None, &flag, &mut obs);
        tally.blocks += obs.tally.blocks;
        tally.reorgs += obs.tally.reorgs;
        tally.deepest = tally.deepest.max(obs.tally.deepest);
        match result {
            Ok(out) if out.stopped == Stopped::Interrupted => tally.stops += 1,
            Ok(_) => {}
            Err(EngineError::Hook { .. }) => {
                tally.faults += 1;
                engine = None;
            }
            Err(err) => panic!("seed {seed}: {err}"),
        }
        toy.fault.at(u64::MAX);
        if engine.is_none() || rng.chance(25) {
            tally.restarts += 1;
            // The old engine (and its store) must be gone before the file is opened again.
            drop(engine.take());
            engine = Some(engine_on(&toy, &db, &source, random_config(&mut rng)));
        }
    }
    let e = engine.as_mut().unwrap();
    let mut obs = StopAfter {
        left: None,
        flag: Arc::new(AtomicBool::new(false)),
        tally: Tally::default(),
    };
    let out = e.sync(None, &AtomicBool::new(false), &mut obs).unwrap();
    tally.reorgs += obs.tally.reorgs;
    tally.deepest = tally.deepest.max(obs.tally.deepest);
    assert_eq!(
        out.tip.map(|t| t.height),
        Some(chain.height()).filter(|h| *h >= first),
        "seed {seed}: not at the tip"
    );
    let got = dump(e.store());

    let fresh_dir = tempdir();
    let mut fresh = engine_on(
        &toy,
        &fresh_dir.path().join("fresh.redb"),
        &source,
        EngineConfig::default().with_confirmations(1),
    );
    let mut obs = StopAfter {
        left: None,
        flag: Arc::new(AtomicBool::new(false)),
        tally: Tally::default(),
    };
    fresh.sync(None, &AtomicBool::new(false), &mut obs).unwrap();
    tally.accepted += obs.tally.accepted;
    let want = dump(fresh.store());
    if got != want {
        let first_diff = got
            .chain
            .iter()
            .zip(&want.chain)
            .find(|(a, b)| a != b)
            .map(|(a, _)| a.0);
        panic!(
            "seed {seed}: differs from a fresh index (first differing chain entry at {first_diff:?}; \
             state equal: {})",
            got.state == want.state
        );
    }
}

fn engine_on(
    toy: &Toy,
    db: &std::path::Path,
    source: &Source,
    config: EngineConfig,
) -> Engine<Toy> {
    Engine::open(toy.clone(), db, source.clone(), config).unwrap()
}

/// A scenario takes well under a second; one still running after this long is stuck (a
/// deadlock, say).
const STUCK: Duration = Duration::from_secs(300);

/// A thread's scenario, shown to the watchdog until dropped (when the scenario ends or panics).
struct Watched<'a>(&'a Mutex<Option<(u64, Instant)>>);

impl<'a> Watched<'a> {
    fn start(slot: &'a Mutex<Option<(u64, Instant)>>, seed: u64) -> Watched<'a> {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((seed, Instant::now()));
        Watched(slot)
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Ends the process, naming the seed, when a scenario runs for [`STUCK`]: a stuck scenario
/// then fails the campaign with the seed that replays it, instead of running until CI's limit.
fn watchdog(running: &[Mutex<Option<(u64, Instant)>>], finished: &AtomicBool) {
    while !finished.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        for slot in running {
            let now = *slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((seed, since)) = now
                && since.elapsed() > STUCK
            {
                // Written to stderr directly: the harness's capture would lose it at the exit.
                let line = format!(
                    "seed {seed}: still running after {} s, so stuck; replay it with \
                     VC_CAMPAIGN_SEED={seed} VC_CAMPAIGN_SCENARIOS=1\n",
                    STUCK.as_secs()
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
                std::process::exit(101);
            }
        }
    }
}

#[test]
fn random_scenarios_equal_a_fresh_index() {
    let n: u64 = std::env::var("VC_CAMPAIGN_SCENARIOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let seed0: u64 = std::env::var("VC_CAMPAIGN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let next = Arc::new(AtomicU64::new(0));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    // What each thread runs (its seed, since when), for the watchdog.
    let running: Vec<Mutex<Option<(u64, Instant)>>> =
        (0..threads).map(|_| Mutex::new(None)).collect();
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        s.spawn(|| watchdog(&running, &finished));
        let handles: Vec<_> = running
            .iter()
            .map(|slot| {
                let next = next.clone();
                s.spawn(move || {
                    let mut tally = Tally::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            break tally;
                        }
                        let seed = seed0.wrapping_add(i);
                        let _watched = Watched::start(slot, seed);
                        scenario(seed, &mut tally);
                    }
                })
            })
            .collect();
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        finished.store(true, Ordering::SeqCst);
        joined
            .into_iter()
            .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut t = Tally::default();
    for x in tallies {
        t.blocks += x.blocks;
        t.reorgs += x.reorgs;
        t.deepest = t.deepest.max(x.deepest);
        t.restarts += x.restarts;
        t.faults += x.faults;
        t.stops += x.stops;
        t.switches += x.switches;
        t.accepted += x.accepted;
    }
    // The campaign must have exercised what it claims to.
    if n >= 100 {
        assert!(
            t.reorgs > n / 2 && t.deepest >= 90,
            "too few or too shallow reorgs"
        );
        assert!(t.faults > n / 20 && t.stops > n / 20 && t.switches > n / 20);
        assert!(t.accepted > n * 10, "too few accepted operations");
    }
    eprintln!(
        "{} blocks applied, {} reorgs (deepest {}), {} restarts, {} mid-sync faults, {} stops, \
         {} switches back to a stale branch, {} operations accepted in the fresh indexes; {:.1} s",
        t.blocks,
        t.reorgs,
        t.deepest,
        t.restarts,
        t.faults,
        t.stops,
        t.switches,
        t.accepted,
        started.elapsed().as_secs_f64()
    );
    // The line CI shows: written to stdout directly, so that it shows even when the test
    // harness captures output.
    let line = format!("{n} random scenarios equal a fresh index\n");
    std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes()).unwrap();
}
