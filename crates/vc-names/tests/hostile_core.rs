//! The names engine on a lying Bitcoin Core: `vc_testnode::fake_core` serves the committed
//! fixture chain and, one at a time, tells each lie it knows about every block from the next
//! one the engine needs. Each lie stops the engine with a typed source error, the database is
//! exactly what it was before (consensus hashes, operations' effects, every state entry), and
//! once the node tells the truth again the same engine carries on to the consensus hash the
//! fixture recorded when the chain was mined. No node needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bitcoin::Network;
use common::snapshot;
use vc_engine::{Engine, EngineConfig, EngineError, NoObserver};
use vc_names::{NamesApp, NamesConfig};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RetryPolicy};
use vc_source::{BlockSource, ChainView, Source, SourceError};
use vc_testnode::fake_core::{CoreLie, FakeCore};

fn fixture() -> (FakeCore, u64, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("chain.json")).unwrap()).unwrap();
    let first = manifest["names"]["first_block"].as_u64().unwrap();
    let expected = manifest["names"]["consensus_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = BlkSource::open(BlkConfig::new(root.join("blocks"), Network::Regtest)).unwrap();
    let tip = source.tip().unwrap().height;
    let (mut blocks, mut spent) = (Vec::new(), Vec::new());
    for h in 0..=tip {
        let hash = source.block_hash(h).unwrap();
        let block = source.block(&hash).unwrap().block;
        spent.push(source.spent_outputs(&hash, &block).unwrap().0);
        blocks.push(block);
    }
    (FakeCore::start(blocks, spent), first, expected)
}

/// Whether `e` is the error `lie` must give.
fn is_expected(lie: CoreLie, e: &EngineError) -> bool {
    let EngineError::Source(s) = e else {
        return false;
    };
    match lie {
        // Found by the validation every block passes, whatever the backend.
        CoreLie::WrongBlock => matches!(
            s,
            SourceError::Unverified {
                violation: vc_source::Violation::BlockHash,
                ..
            }
        ),
        // Found by the backend itself while decoding (body) or shaping the spent outputs.
        CoreLie::DroppedTransaction | CoreLie::DuplicatedTransaction | CoreLie::MissingCoin => {
            matches!(s, SourceError::Mismatch { .. })
        }
        CoreLie::TruncatedBlock | CoreLie::MalformedJson => {
            matches!(s, SourceError::Malformed { .. })
        }
        CoreLie::Pruned => matches!(s, SourceError::Pruned { .. }),
        CoreLie::TruncatedBody | CoreLie::OversizedBody | CoreLie::Slow => {
            matches!(s, SourceError::Transport { .. })
        }
        CoreLie::ServerError => matches!(s, SourceError::Node { .. }),
        CoreLie::None | CoreLie::UnlinkedHeaders => false,
    }
}

#[test]
fn no_lie_changes_the_database_and_the_engine_recovers_from_each() {
    let (node, first, expected) = fixture();
    let mut config = CoreConfig::new(
        node.url(),
        CoreAuth::UserPass("user".into(), "pass".into()),
        Network::Regtest,
    );
    config.timeout = Duration::from_secs(1);
    config.retry = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(10),
        ..config.retry
    };
    let source: Arc<dyn BlockSource> = Arc::new(CoreSource::connect(config).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(
        NamesApp::new(NamesConfig::regtest(first)),
        dir.path().join("names.redb"),
        Source::Blocks(source),
        EngineConfig::default().with_confirmations(1),
    )
    .unwrap();
    let stop = AtomicBool::new(false);
    // Honest up to the first block, so the database holds state to protect from then on.
    let mut honest_to = first;
    engine
        .sync(Some(honest_to), &stop, &mut NoObserver)
        .unwrap();
    let lies = [
        CoreLie::WrongBlock,
        CoreLie::DroppedTransaction,
        CoreLie::DuplicatedTransaction,
        CoreLie::TruncatedBlock,
        CoreLie::MissingCoin,
        CoreLie::Pruned,
        CoreLie::MalformedJson,
        CoreLie::TruncatedBody,
        CoreLie::OversizedBody,
        CoreLie::Slow,
        CoreLie::ServerError,
    ];
    for lie in lies {
        // The next block; for the lies about transactions besides the coinbase, the next
        // block that has some.
        let needs_txs = matches!(lie, CoreLie::DroppedTransaction | CoreLie::MissingCoin);
        let next = (honest_to + 1..node.hashes().len() as u64)
            .find(|h| {
                !needs_txs
                    || node
                        .block(&node.hashes()[*h as usize])
                        .unwrap()
                        .txdata
                        .len()
                        > 1
            })
            .expect("a block with transactions ahead");
        engine.sync(Some(next - 1), &stop, &mut NoObserver).unwrap();
        let before = snapshot(engine.store());
        let told = node.lies_told();
        node.set_lie(lie, next);
        match engine.sync(None, &stop, &mut NoObserver) {
            Err(e) => assert!(is_expected(lie, &e), "{lie:?}: unexpected error {e}"),
            Ok(outcome) => panic!("{lie:?}: the engine accepted it: {outcome:?}"),
        }
        assert!(node.lies_told() > told, "{lie:?} was never told");
        assert_eq!(
            snapshot(engine.store()),
            before,
            "{lie:?} changed the database"
        );
        node.set_lie(CoreLie::None, 0);
        honest_to = next;
        engine
            .sync(Some(honest_to), &stop, &mut NoObserver)
            .unwrap();
    }
    let outcome = engine.sync(None, &stop, &mut NoObserver).unwrap();
    let tip = outcome.tip.unwrap();
    assert_eq!(tip.height as usize, node.hashes().len() - 1);
    assert_eq!(tip.consensus_hash.to_string(), expected);
}
