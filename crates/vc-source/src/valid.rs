//! The checks every block passes before anything reads it, whatever the backend: written once
//! here and run by [`crate::prefetch::Prefetch`] (and [`crate::WatchBlocks`]), so that no source,
//! ours or a third party's, can skip them.
//!
//! A block must hash to the hash the chain view gave for its height, its transactions must
//! hash to its header's merkle root, no transaction may appear twice (the merkle tree's
//! duplicate-leaf ambiguity, CVE-2012-2459, lets a mutated block keep a valid root), and its
//! spent outputs must have its shape: one list per transaction, one output per input, none for
//! the coinbase.

use bitcoin::{Block, BlockHash};

use crate::body::{self, BodyError};
use crate::error::{SourceError, Violation};
use crate::source::{FetchedBlock, SpentOutputs};

fn unverified(
    source: &'static str,
    height: u64,
    violation: Violation,
    detail: String,
) -> SourceError {
    SourceError::Unverified {
        source_name: source,
        height,
        violation,
        detail,
    }
}

/// Checks `fetched`, served by `source` for `height`, against `hash`: its header's hash and,
/// unless the backend checked them while decoding ([`FetchedBlock::body_checked`]), its
/// transactions against its merkle root with none repeated.
pub fn check_block(
    source: &'static str,
    height: u64,
    hash: &BlockHash,
    fetched: &FetchedBlock,
) -> Result<(), SourceError> {
    check_scanned(source, height, hash, &fetched.block.header)?;
    if fetched.body_checked() {
        return Ok(());
    }
    body::check_body(&fetched.block).map_err(|e| {
        let violation = match e {
            BodyError::Mutated { .. } => Violation::DuplicateTx,
            _ => Violation::MerkleRoot,
        };
        unverified(source, height, violation, format!("block {hash}: {e}"))
    })
}

/// Checks `block`'s witnesses against its coinbase's witness commitment (BIP141), for a
/// reader that uses them: its body must have passed [`check_block`] already.
pub fn check_witnesses(
    source: &'static str,
    height: u64,
    hash: &BlockHash,
    block: &Block,
) -> Result<(), SourceError> {
    body::check_witness_commitment(block).map_err(|e| {
        unverified(
            source,
            height,
            Violation::WitnessCommitment,
            format!("block {hash}: {e}"),
        )
    })
}

/// Checks that a block (scanned or decoded) is the one asked for: its header hashes to
/// `hash`.
pub fn check_scanned(
    source: &'static str,
    height: u64,
    hash: &BlockHash,
    header: &bitcoin::block::Header,
) -> Result<(), SourceError> {
    let got = header.block_hash();
    if got != *hash {
        return Err(unverified(
            source,
            height,
            Violation::BlockHash,
            format!("asked for block {hash}, got block {got}"),
        ));
    }
    Ok(())
}

/// Checks that `spent` holds one list per position, each with one output per input of the
/// transaction there (`inputs` per transaction).
pub fn check_spent_at(
    source: &'static str,
    height: u64,
    inputs: &[u32],
    positions: &[u32],
    spent: &[Vec<bitcoin::TxOut>],
) -> Result<(), SourceError> {
    let bad = |detail: String| unverified(source, height, Violation::SpentShape, detail);
    if spent.len() != positions.len() {
        return Err(bad(format!(
            "{} spent-output lists for {} transactions",
            spent.len(),
            positions.len()
        )));
    }
    for (&p, list) in positions.iter().zip(spent) {
        let want = inputs.get(p as usize).copied().unwrap_or(0) as usize;
        if p == 0 || list.len() != want {
            return Err(bad(format!(
                "transaction {p} has {want} inputs but {} spent outputs",
                list.len()
            )));
        }
    }
    Ok(())
}

/// Checks that `spent` has `block`'s shape.
pub fn check_spent(
    source: &'static str,
    height: u64,
    block: &Block,
    spent: &SpentOutputs,
) -> Result<(), SourceError> {
    spent
        .check_shape(block)
        .map_err(|detail| unverified(source, height, Violation::SpentShape, detail))
}

#[cfg(all(test, feature = "mem"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::mem::MemoryChain;
    use crate::{BlockSource, ChainView};

    fn sample() -> (BlockHash, Block) {
        let chain = MemoryChain::new(bitcoin::Network::Regtest);
        chain.mine(2);
        let funding = chain.block_at(1).unwrap().txdata[0].clone();
        let spend = bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: bitcoin::OutPoint::new(funding.compute_txid(), 0),
                ..Default::default()
            }],
            output: vec![],
        };
        let hash = chain.push(vec![spend]);
        (hash, chain.block(&hash).unwrap().block)
    }

    fn check(hash: &BlockHash, block: &Block) -> Result<(), SourceError> {
        check_block("t", 3, hash, &FetchedBlock::new(block.clone(), 0))
    }

    #[test]
    fn a_good_block_passes() {
        let (hash, block) = sample();
        check(&hash, &block).unwrap();
        // Decoded with its body checked, it is not hashed again, and still passes.
        let bytes = bitcoin::consensus::serialize(&block);
        let decoded = FetchedBlock::decode(&bytes, true).unwrap();
        assert!(decoded.body_checked());
        check_block("t", 3, &hash, &decoded).unwrap();
    }

    #[test]
    fn each_lie_is_named() {
        let (hash, block) = sample();
        let violation = |r: Result<(), SourceError>| match r {
            Err(SourceError::Unverified { violation, .. }) => violation,
            other => panic!("expected a violation, got {other:?}"),
        };
        // Another block than asked for.
        let other = MemoryChain::new(bitcoin::Network::Regtest)
            .tip()
            .unwrap()
            .hash;
        assert_eq!(violation(check(&other, &block)), Violation::BlockHash);
        // A transaction changed: the merkle root no longer matches (the header, and so the
        // hash, are unchanged).
        let mut changed = block.clone();
        changed.txdata[1].lock_time = bitcoin::absolute::LockTime::from_consensus(9);
        assert_eq!(violation(check(&hash, &changed)), Violation::MerkleRoot);
        // CVE-2012-2459: duplicating the last transaction of an odd row keeps the root.
        let mut odd = block.clone();
        odd.txdata.push(odd.txdata[1].clone());
        let root = odd.compute_merkle_root().unwrap();
        let mut dup = odd.clone();
        dup.txdata.push(dup.txdata[2].clone());
        assert_eq!(dup.compute_merkle_root().unwrap(), root);
        odd.header.merkle_root = root;
        dup.header.merkle_root = root;
        let dup_hash = dup.block_hash();
        assert_eq!(violation(check(&dup_hash, &dup)), Violation::DuplicateTx);
        // Spent outputs of the wrong shape.
        let short = SpentOutputs(vec![vec![]]);
        assert_eq!(
            violation(check_spent("t", 3, &block, &short)),
            Violation::SpentShape
        );
    }
}
