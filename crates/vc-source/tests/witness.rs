//! Witnesses are not covered by txids or the merkle root: a source can alter them without any
//! other check noticing. A reader that uses them declares it (`ScanFilter::with_witnesses`),
//! and then every block where a selected candidate has a witness must match its coinbase's
//! witness commitment (BIP141), whether the block arrives as bytes (scanned in place) or
//! decoded.
#![cfg(feature = "mem")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::{
    Amount, Block, BlockHash, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness, absolute, transaction,
};
use vc_source::mem::MemoryChain;
use vc_source::prefetch::{Prefetch, ScannedBlock, TxSelector};
use vc_source::scan::ScanFilter;
use vc_source::{
    BlockSource, ChainTip, ChainView, FetchedBlock, SourceError, SpentOutputs, Violation,
};

const MAGIC: &[u8] = b"wt";

/// A chain whose block 3 holds one candidate spending block 1's coinbase, with a witness.
fn chain() -> MemoryChain {
    let chain = MemoryChain::new(Network::Regtest);
    chain.mine(2);
    let funding = chain.block_at(1).unwrap().txdata[0].compute_txid();
    let mut payload = vec![0x6a, 6];
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(b"+ops");
    chain.push(vec![Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(funding, 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[b"the envelope".to_vec(), vec![0x51]]),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(payload),
        }],
    }]);
    chain
}

/// `chain`, serving block 3 with its candidate's witness changed: as bytes (`bytes`) or
/// decoded.
struct Altering {
    chain: MemoryChain,
    bytes: bool,
}

impl Altering {
    fn altered(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let mut block = self.chain.block(hash)?.block;
        if let Some(tx) = block.txdata.get_mut(1) {
            tx.input[0].witness = Witness::from_slice(&[b"another one".to_vec(), vec![0x51]]);
        }
        Ok(block)
    }
}

impl ChainView for Altering {
    fn name(&self) -> &'static str {
        "altering"
    }
    fn network(&self) -> Network {
        Network::Regtest
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.chain.tip()
    }
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        self.chain.block_hash(height)
    }
    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        self.chain.headers(start, count)
    }
}

impl BlockSource for Altering {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        let block = self.altered(hash)?;
        let size = bitcoin::consensus::serialize(&block).len();
        Ok(FetchedBlock::new(block, size))
    }
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        self.chain.spent_outputs(hash, block)
    }
    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        if !self.bytes {
            return Ok(false);
        }
        *buf = bitcoin::consensus::serialize(&self.altered(hash)?);
        Ok(true)
    }
}

fn scan(source: Arc<dyn BlockSource>, witnesses: bool) -> Result<Vec<ScannedBlock>, SourceError> {
    let filter = ScanFilter::new(MAGIC, &[]).with_witnesses(witnesses);
    let select: TxSelector = Arc::new(|_| true);
    Prefetch::scanned(source, 0..4, 2, 4, filter, select, 1).collect()
}

/// The candidate's first witness item in block 3.
fn envelope(blocks: &[ScannedBlock]) -> Vec<u8> {
    let tx = &blocks[3].txs[0].tx;
    tx.input[0].witness.nth(0).unwrap().to_vec()
}

#[test]
fn an_honest_block_with_witnesses_passes_and_keeps_them() {
    let chain = chain();
    assert!(vc_source::body::check_witness_commitment(&chain.block_at(3).unwrap()).is_ok());
    let blocks = scan(Arc::new(chain), true).unwrap();
    assert_eq!(envelope(&blocks), b"the envelope");
}

#[test]
fn an_altered_witness_is_refused_as_bytes_and_decoded() {
    for bytes in [true, false] {
        let source = Arc::new(Altering {
            chain: chain(),
            bytes,
        });
        // Every other check passes: without the witness check the altered envelope gets through.
        let unchecked = scan(source.clone(), false).unwrap();
        assert_eq!(envelope(&unchecked), b"another one", "bytes {bytes}");
        match scan(source, true) {
            Err(SourceError::Unverified {
                violation, height, ..
            }) => {
                assert_eq!(violation, Violation::WitnessCommitment, "bytes {bytes}");
                assert_eq!(height, 3);
            }
            other => panic!("bytes {bytes}: {:?}", other.map(|b| b.len())),
        }
    }
}

#[test]
fn a_block_with_witnesses_and_no_commitment_is_refused() {
    let chain = chain();
    let mut block = Block::clone(&chain.block_at(3).unwrap());
    block.txdata[0].output.pop();
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    assert!(vc_source::body::check_witness_commitment(&block).is_err());
    // A block without witnesses needs no commitment.
    let plain = chain.block_at(1).unwrap();
    assert!(vc_source::body::check_witness_commitment(&plain).is_ok());
}
