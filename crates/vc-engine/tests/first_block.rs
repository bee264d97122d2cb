//! An application whose first block lies deep in the chain (BNS starts at 373,601 of mainnet's
//! 900,000) reaches it without reading any block body below it: the engine asks the source for
//! hashes and headers there, never for blocks or their spent outputs. Counted at the source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bitcoin::{Block, BlockHash, Network, TxOut};
use common::*;
use vc_engine::prelude::*;
use vc_source::mem::MemoryChain;
use vc_source::{BlockSource, ChainView, FetchedBlock, SourceError, SpentOutputs};

/// A memory chain that records the height of every body read: blocks, their bytes and their
/// spent outputs.
#[derive(Clone)]
struct BodyReads {
    chain: MemoryChain,
    heights: Arc<HashMap<BlockHash, u64>>,
    reads: Arc<Mutex<Vec<u64>>>,
}

impl BodyReads {
    fn new(chain: &MemoryChain) -> BodyReads {
        let heights = (0..=chain.height())
            .map(|h| (chain.block_hash(h).unwrap(), h))
            .collect();
        BodyReads {
            chain: chain.clone(),
            heights: Arc::new(heights),
            reads: Arc::default(),
        }
    }

    fn record(&self, hash: &BlockHash) {
        let height = self.heights.get(hash).copied().unwrap_or(u64::MAX);
        self.reads.lock().unwrap().push(height);
    }
}

memory_chain_view!(BodyReads, "body-reads");

impl BlockSource for BodyReads {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        self.record(hash);
        self.chain.block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        self.record(hash);
        self.chain.spent_outputs(hash, block)
    }
    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        self.record(hash);
        self.chain.block_bytes(hash, buf)
    }
    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        self.record(hash);
        self.chain.spent_outputs_at(hash, inputs, positions)
    }
}

#[test]
fn a_deep_first_block_is_reached_without_reading_the_bodies_below_it() {
    const FIRST: u64 = 240;
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(3);
    // Operations below the first block too: an application that read them would show it.
    mine_random(&chain, &mut Rng(7), 297, 3, None);
    let source = BodyReads::new(&chain);
    let dir = tempdir();
    let toy = Toy::new(Scheme::V2, FIRST);
    let mut e = Engine::open(
        toy.clone(),
        dir.path().join("db.redb"),
        Source::blocks(source.clone()),
        EngineConfig::default().with_confirmations(1),
    )
    .unwrap();
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap();
    let reads = source.reads.lock().unwrap().clone();
    let below: Vec<u64> = reads.iter().copied().filter(|h| *h < FIRST).collect();
    assert!(below.is_empty(), "bodies read below {FIRST}: {below:?}");
    assert_eq!(reads.iter().min(), Some(&FIRST), "the first block was read");
    // And the index is the one a source without the counter gives.
    let plain = {
        let dir = tempdir();
        let mut e = engine(
            toy,
            &dir.path().join("plain.redb"),
            &chain,
            EngineConfig::default().with_confirmations(1),
        );
        e.sync(None, &AtomicBool::new(false), &mut NoObserver)
            .unwrap();
        dump(e.store())
    };
    assert_eq!(dump(e.store()), plain);
}
