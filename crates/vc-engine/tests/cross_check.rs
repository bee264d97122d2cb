//! Cross-checked sources on in-memory chains: witnesses that agree change nothing; a witness on
//! another chain, one that hides an operation, and one that lies about spent outputs each stop
//! the engine under `all` before the block is committed, with every source's answer; under
//! `majority` one liar among three is outvoted, and a lying block source is not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction};
use common::*;
use vc_engine::prelude::*;
use vc_engine::{Agreement, SourceAnswer};
use vc_source::mem::MemoryChain;
use vc_source::{
    BlockSource, ChainView, FetchedBlock, SourceError, SpentOutputs, WatchSource, WatchedBlock,
};

const FIRST: u64 = 2;

/// A liar over a memory chain: at height `at`, a watching view drops every transaction, and a
/// block view adds a satoshi to every spent output.
#[derive(Clone)]
struct Liar {
    chain: MemoryChain,
    at: u64,
}

memory_chain_view!(Liar, "liar");

impl BlockSource for Liar {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        self.chain.block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        let mut spent = self.chain.spent_outputs(hash, block)?;
        if self.chain.block_hash(self.at)? == *hash {
            for out in spent.0.iter_mut().flatten() {
                out.value += bitcoin::Amount::from_sat(1);
            }
        }
        Ok(spent)
    }
}

impl WatchSource for Liar {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        let mut block = self.chain.watching().watched(height, scripts, select)?;
        if height == self.at {
            block.txs.clear();
        }
        Ok(block)
    }
}

/// A chain with operations in every block from height 5.
fn chain() -> MemoryChain {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(4);
    let mut rng = Rng(77);
    for _ in 0..30 {
        let height = chain.height();
        let funding = coinbase(&chain, height - 1);
        let body = [1u8, b'a' + (height % 5) as u8, height as u8];
        chain.push(vec![op_tx(&funding, &payload(b'p', &body), true, 0)]);
        mine_random(&chain, &mut rng, 1, 2, None);
    }
    chain
}

/// The toy with its marker script, so that watching sources can serve it.
fn toy() -> Toy {
    let mut toy = Toy::new(Scheme::V2, FIRST);
    toy.markers = true;
    toy
}

fn run(chain: &MemoryChain, config: EngineConfig) -> (Result<SyncOutcome, EngineError>, Dump) {
    let dir = tempdir();
    let mut e = engine(toy(), &dir.path().join("db.redb"), chain, config);
    let out = e.sync(None, &AtomicBool::new(false), &mut NoObserver);
    (out, dump(e.store()))
}

fn config() -> EngineConfig {
    EngineConfig::default().with_confirmations(1)
}

/// The error's height and answers, or a panic.
fn disagreement(out: Result<SyncOutcome, EngineError>) -> (u64, Vec<SourceAnswer>, String) {
    match out {
        Err(e @ EngineError::SourcesDisagree { .. }) => {
            let text = e.to_string();
            let EngineError::SourcesDisagree {
                height, answers, ..
            } = e
            else {
                unreachable!()
            };
            (height, answers.0, text)
        }
        other => panic!("expected SourcesDisagree, got {other:?}"),
    }
}

#[test]
fn agreeing_witnesses_change_nothing() {
    let chain = chain();
    let (out, plain) = run(&chain, config());
    out.unwrap();
    let witnessed = config()
        .with_witness(Source::blocks(chain.clone()))
        .with_witness(Source::watched(chain.watching()));
    let (out, checked) = run(&chain, witnessed);
    out.unwrap();
    assert_eq!(checked, plain);
}

#[test]
fn a_witness_on_another_chain_stops_the_engine_before_the_block() {
    let chain = chain();
    let other = MemoryChain::new(Network::Regtest);
    // Another coinbase at height 1, so that `other` parts from `chain` there.
    other.mine(1);
    other.truncate(0);
    for h in 1..=20 {
        let block = chain.block_at(h).unwrap();
        other.push(block.txdata[1..].to_vec());
    }
    let (out, dump) = run(&chain, config().with_witness(Source::blocks(other.clone())));
    let (height, answers, text) = disagreement(out);
    assert_eq!(height, FIRST);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].block_hash, Ok(chain.block_hash(FIRST).unwrap()));
    assert_eq!(answers[1].block_hash, Ok(other.block_hash(FIRST).unwrap()));
    for (i, a) in answers.iter().enumerate() {
        let hash = a.block_hash.clone().unwrap();
        // Numbered, as both sources have the same name.
        let want = format!("#{} {}: block {hash}", i + 1, a.source);
        assert!(text.contains(&want), "{text}");
    }
    assert!(dump.chain.is_empty(), "a block was committed");
}

#[test]
fn a_witness_that_hides_an_operation_or_lies_about_spent_outputs_is_caught() {
    let chain = chain();
    let at = 11;
    let liar = Liar {
        chain: chain.clone(),
        at,
    };
    for witness in [Source::watched(liar.clone()), Source::blocks(liar.clone())] {
        let (out, dump) = run(&chain, config().with_witness(witness.clone()));
        let (height, answers, _) = disagreement(out);
        assert_eq!(height, at, "{witness:?}");
        assert_eq!(answers[0].block_hash, answers[1].block_hash);
        assert_ne!(
            (&answers[0].candidates, answers[0].spent_digest),
            (&answers[1].candidates, answers[1].spent_digest),
            "{witness:?}"
        );
        // Everything below the block is committed, nothing from it.
        assert_eq!(
            dump.chain.last().map(|(h, _)| *h),
            Some(at - 1),
            "{witness:?}"
        );
    }
}

#[test]
fn a_majority_outvotes_one_liar_but_never_follows_a_lying_block_source() {
    let chain = chain();
    let liar = Liar {
        chain: chain.clone(),
        at: 11,
    };
    let (out, plain) = run(&chain, config());
    out.unwrap();
    let majority = config()
        .with_agreement(Agreement::Majority)
        .with_witness(Source::watched(liar.clone()))
        .with_witness(Source::watched(chain.watching()));
    let (out, checked) = run(&chain, majority.clone());
    out.unwrap();
    assert_eq!(checked, plain);
    // Under `all` the same three stop.
    let all = majority.with_agreement(Agreement::All);
    assert_eq!(disagreement(run(&chain, all).0).0, 11);
    // The block source itself lying about spent outputs is outvoted: the engine stops.
    let dir = tempdir();
    let mut e = Engine::open(
        toy(),
        dir.path().join("db.redb"),
        Source::blocks(liar),
        config()
            .with_agreement(Agreement::Majority)
            .with_witness(Source::blocks(chain.clone()))
            .with_witness(Source::watched(chain.watching())),
    )
    .unwrap();
    let out = e.sync(None, &AtomicBool::new(false), &mut NoObserver);
    assert_eq!(disagreement(out).0, 11);
}
