//! Merkle branches as Electrum servers send them (`blockchain.transaction.get_merkle`):
//! the siblings from the leaf up, the leaf's position selecting left or right at each level.
//! Siblings here are in internal byte order (the server hex-encodes them in display order,
//! like txids, so the caller reverses each).

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::{TxMerkleNode, Txid};

/// Why a branch was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BranchError {
    /// The position does not fit a tree of the branch's depth.
    Position {
        /// The position.
        pos: u64,
        /// The branch's depth.
        depth: usize,
    },
    /// The branch is deeper than any block's tree can be.
    TooDeep(usize),
    /// The branch leads to another root.
    Root {
        /// The root it leads to.
        computed: TxMerkleNode,
    },
}

impl core::fmt::Display for BranchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BranchError::Position { pos, depth } => {
                write!(f, "position {pos} does not fit a tree of depth {depth}")
            }
            BranchError::TooDeep(d) => write!(f, "a branch of depth {d} is deeper than any block"),
            BranchError::Root { computed } => {
                write!(f, "the branch leads to root {computed}, not the header's")
            }
        }
    }
}

/// No block holds 2^24 transactions (a 4 MWU block holds at most about 25,000 of the smallest).
const MAX_DEPTH: usize = 24;

/// The root that `branch` leads to from `txid` at `pos`, or why it cannot be a block's.
pub fn branch_root(txid: Txid, pos: u64, branch: &[[u8; 32]]) -> Result<TxMerkleNode, BranchError> {
    if branch.len() > MAX_DEPTH {
        return Err(BranchError::TooDeep(branch.len()));
    }
    if pos >> branch.len() != 0 {
        return Err(BranchError::Position {
            pos,
            depth: branch.len(),
        });
    }
    let mut node = txid.to_byte_array();
    for (level, sibling) in branch.iter().enumerate() {
        let mut engine = sha256d::Hash::engine();
        if (pos >> level) & 1 == 1 {
            engine.input(sibling);
            engine.input(&node);
        } else {
            engine.input(&node);
            engine.input(sibling);
        }
        node = sha256d::Hash::from_engine(engine).to_byte_array();
    }
    Ok(TxMerkleNode::from_byte_array(node))
}

/// Checks that `branch` leads from `txid` at `pos` to `root`.
pub fn verify_branch(
    txid: Txid,
    pos: u64,
    branch: &[[u8; 32]],
    root: TxMerkleNode,
) -> Result<(), BranchError> {
    let computed = branch_root(txid, pos, branch)?;
    if computed == root {
        Ok(())
    } else {
        Err(BranchError::Root { computed })
    }
}

/// The branch for the transaction at `pos` among `txids` (as a server computes it; used by
/// tests and by anyone serving proofs).
pub fn branch_for(txids: &[Txid], pos: usize) -> Vec<[u8; 32]> {
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    let mut pos = pos;
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1
            && let Some(&last) = level.last()
        {
            level.push(last);
        }
        branch.push(level[pos ^ 1]);
        level = level
            .chunks(2)
            .map(|pair| {
                let mut engine = sha256d::Hash::engine();
                engine.input(&pair[0]);
                engine.input(&pair[1]);
                sha256d::Hash::from_engine(engine).to_byte_array()
            })
            .collect();
        pos /= 2;
    }
    branch
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn fixture_blocks() -> Vec<bitcoin::Block> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/regtest-chain/blocks"
        );
        let source =
            crate::blk::BlkSource::open(crate::blk::BlkConfig::new(dir, bitcoin::Network::Regtest))
                .unwrap();
        use crate::BlockSource;
        let tip = source.tip().unwrap().height;
        (0..=tip)
            .map(|h| {
                let hash = source.block_hash(h).unwrap();
                source.block(&hash).unwrap().block
            })
            .filter(|b| b.txdata.len() > 1)
            .collect()
    }

    #[test]
    fn branches_of_real_blocks_verify_and_tampering_fails() {
        let blocks = fixture_blocks();
        assert!(
            blocks.len() > 10,
            "the fixture has blocks with transactions"
        );
        for block in blocks {
            let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
            let root = block.header.merkle_root;
            for pos in 0..txids.len() {
                let branch = branch_for(&txids, pos);
                verify_branch(txids[pos], pos as u64, &branch, root).unwrap();
                // Another position, another sibling or another txid must fail.
                if txids.len() > 1 {
                    let other = (pos + 1) % txids.len();
                    assert!(verify_branch(txids[pos], other as u64, &branch, root).is_err());
                    assert!(verify_branch(txids[other], pos as u64, &branch, root).is_err());
                }
                if let Some(first) = branch.first() {
                    let mut bad = branch.clone();
                    bad[0] = {
                        let mut b = *first;
                        b[0] ^= 1;
                        b
                    };
                    assert!(verify_branch(txids[pos], pos as u64, &bad, root).is_err());
                }
                assert!(matches!(
                    verify_branch(txids[pos], 1 << branch.len(), &branch, root),
                    Err(BranchError::Position { .. })
                ));
            }
        }
    }
}
