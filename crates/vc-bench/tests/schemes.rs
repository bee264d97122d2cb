//! `vc-bench schemes` on the tiny chain shape (real bitcoind; runs in CI): each scheme's chain
//! embeds that scheme's consensus hashes, so indexed under its own scheme every names operation
//! is accepted, and the report shows the same accepted operations and state keys for legacy,
//! v2 and v3 (the single legacy chain gave 0 and 0 under v2 and v3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bitcoin::Network;
use vc_bench::chain::Shape;
use vc_bench::measure::Usage;
use vc_bench::v3::{self, SchemeChain};
use vc_chash::Scheme;
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::{NamesApp, NamesConfig};
use vc_source::Source;
use vc_source::blk::{BlkConfig, BlkSource};
use vc_testnode::TestNode;

/// What `virtualchain index --app names --scheme S --source blk:...` does, in process (the
/// test has no `virtualchain` binary).
fn index(c: &SchemeChain, db: &Path, _log: &Path) -> anyhow::Result<Usage> {
    let started = Instant::now();
    let source = BlkSource::open(BlkConfig::new(&c.blocks, Network::Regtest))?;
    let app = NamesApp::new(NamesConfig::regtest(c.chain.info.first_block).with_scheme(c.scheme));
    let config = EngineConfig::default().with_confirmations(1);
    let mut engine = Engine::open(app, db, Source::blocks(source), config)?;
    engine.sync(None, &AtomicBool::new(false), &mut NoObserver)?;
    Ok(Usage {
        wall_secs: started.elapsed().as_secs_f64(),
        ..Usage::default()
    })
}

#[test]
fn every_scheme_accepts_every_operation_of_its_own_chain() {
    // Skips loudly without bitcoind (fails with VC_REQUIRE_BITCOIND set).
    let Some(probe) = TestNode::start() else {
        return;
    };
    drop(probe);
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let chains = v3::chains(cache.path(), &Shape::TINY, work.path()).unwrap();
    let keys: Vec<&str> = chains.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["t1", "t1-v2", "t1-v3"]);
    for c in &chains {
        let info = &c.chain.info;
        assert_eq!(info.scheme, c.scheme.name());
        assert_eq!(info.names_rejected, 0, "{}", c.key);
        assert_eq!(info.names_ops, 35, "{}", c.key);
        assert_eq!(info.transactions, chains[0].chain.info.transactions);
        // Legacy hashes are 16 bytes, v2 and v3 hashes 32.
        let len = if c.scheme == Scheme::Legacy { 32 } else { 64 };
        assert_eq!(info.consensus_hash.len(), len, "{}", c.key);
    }
    // Same seed, different embedded hashes: different blocks.
    assert_ne!(chains[1].chain.info.tip_hash, chains[2].chain.info.tip_hash);

    let r = v3::compare(&chains, work.path(), 1, &mut index).unwrap();
    let accepted: Vec<u64> = r.runs.iter().map(|run| run.ops_accepted).collect();
    assert_eq!(accepted, [35, 35, 35], "{r:#?}");
    let keys: Vec<u64> = r.runs.iter().map(|run| run.state_keys).collect();
    assert!(
        keys[0] > 0 && keys.iter().all(|k| *k == keys[0]),
        "{keys:?}"
    );
    for (run, c) in r.runs.iter().zip(&chains) {
        assert_eq!(run.tip_consensus_hash, c.chain.info.consensus_hash);
    }
    let md = v3::markdown(&r);
    assert_eq!(md.matches("| 35 |").count(), 3, "{md}");

    // Indexing a chain under another scheme than its own is refused: its operations are
    // stale there, and the comparison would measure different work.
    let mut wrong = chains.clone();
    wrong[1].scheme = Scheme::V3;
    wrong[2].scheme = Scheme::V2;
    wrong.swap(1, 2);
    let err = v3::compare(&wrong, work.path(), 1, &mut index).unwrap_err();
    assert!(format!("{err:#}").contains("consensus hash"), "{err:#}");
}
