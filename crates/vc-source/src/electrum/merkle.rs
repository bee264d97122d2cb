//! Merkle branches as Electrum servers send them (`blockchain.transaction.get_merkle`):
//! the siblings from the leaf up, the leaf's position selecting left or right at each level.
//! Siblings here are in internal byte order (the server hex-encodes them in display order,
//! like txids, so the caller reverses each).

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::{TxMerkleNode, Txid};

/// Why a branch was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// At `level` the path is a right child equal to its left sibling: a node Bitcoin's tree
    /// only has by duplicating the last one of an odd level. Such a position lies past the
    /// block's transactions, and accepting it would let a server move a transaction after
    /// others that really follow it.
    Phantom {
        /// The position.
        pos: u64,
        /// The level (0 = the leaves) where the path enters the duplicate.
        level: usize,
    },
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
            BranchError::Phantom { pos, level } => write!(
                f,
                "position {pos} passes through a duplicated node at level {level}, past the \
                 block's last transaction"
            ),
            BranchError::Root { computed } => {
                write!(f, "the branch leads to root {computed}, not the header's")
            }
        }
    }
}

/// No block holds 2^24 transactions (a 4 MWU block holds at most about 25,000 of the smallest).
const MAX_DEPTH: usize = 24;

/// The root that `branch` leads to from `txid` at `pos`, or why it cannot be a block's.
///
/// A path that enters a duplicated node (a right child equal to its left sibling) is refused:
/// in a valid block no two subtrees are equal, so only the padding of an odd level repeats a
/// node, and the positions below that copy hold no transaction. Without the check, the last
/// transaction of an odd level (and everything under a duplicated inner node) proves at more
/// than one position.
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
            if *sibling == node {
                return Err(BranchError::Phantom { pos, level });
            }
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

#[cfg(all(test, feature = "blk"))]
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
        use crate::{BlockSource, ChainView};
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

    fn fake_txids(n: usize) -> Vec<Txid> {
        (0..n)
            .map(|i| Txid::from_byte_array([i as u8 + 1; 32]))
            .collect()
    }

    fn root_of(txids: &[Txid]) -> TxMerkleNode {
        let branch = branch_for(txids, 0);
        branch_root(txids[0], 0, &branch).unwrap()
    }

    fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
        let mut engine = sha256d::Hash::engine();
        engine.input(left);
        engine.input(right);
        sha256d::Hash::from_engine(engine).to_byte_array()
    }

    /// A forgery: the leaf and branch a server would send to prove position `phantom` (past
    /// the last transaction), walking down from the root and entering the left twin wherever
    /// the path asks for a right child that exists only as padding.
    fn forge(txids: &[Txid], phantom: usize) -> (Txid, Vec<[u8; 32]>) {
        let mut levels = vec![txids.iter().map(|t| t.to_byte_array()).collect::<Vec<_>>()];
        while levels[levels.len() - 1].len() > 1 {
            let below = &levels[levels.len() - 1];
            let up = below
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
                .collect();
            levels.push(up);
        }
        let depth = levels.len() - 1;
        let (mut idx, mut top_down) = (0usize, Vec::new());
        for level in (0..depth).rev() {
            let (left, right) = (2 * idx, 2 * idx + 1);
            let row = &levels[level];
            let right_exists = right < row.len();
            if (phantom >> level) & 1 == 0 {
                top_down.push(if right_exists { row[right] } else { row[left] });
                idx = left;
            } else {
                top_down.push(row[left]);
                idx = if right_exists { right } else { left };
            }
        }
        top_down.reverse();
        (Txid::from_byte_array(levels[0][idx]), top_down)
    }

    /// Folds a branch with no checks at all: what a verifier without the duplicate rule does.
    fn fold(txid: Txid, pos: usize, branch: &[[u8; 32]]) -> TxMerkleNode {
        let mut node = txid.to_byte_array();
        for (level, sibling) in branch.iter().enumerate() {
            node = if (pos >> level) & 1 == 1 {
                hash_pair(sibling, &node)
            } else {
                hash_pair(&node, sibling)
            };
        }
        TxMerkleNode::from_byte_array(node)
    }

    #[test]
    fn the_last_transaction_of_an_odd_level_proves_only_at_its_own_position() {
        // Three transactions: the leaves are a b c c. Without the duplicate check, c also
        // proves at position 3.
        let txids = fake_txids(3);
        let root = root_of(&txids);
        let forged = vec![txids[2].to_byte_array(), branch_for(&txids, 2)[1]];
        assert_eq!(forged, branch_for(&txids, 2));
        verify_branch(txids[2], 2, &forged, root).unwrap();
        assert_eq!(
            verify_branch(txids[2], 3, &forged, root),
            Err(BranchError::Phantom { pos: 3, level: 0 })
        );
    }

    #[test]
    fn a_transaction_under_a_duplicated_inner_node_cannot_move_after_its_successor() {
        // Six transactions: level 1 is ab cd ef, padded to ab cd ef ef. Without the check, e
        // (position 4) also proves at 6, after f at 5: a server could reorder e and f.
        let txids = fake_txids(6);
        let root = root_of(&txids);
        let (leaf, forged) = forge(&txids, 6);
        assert_eq!(leaf, txids[4]);
        assert_eq!(fold(leaf, 6, &forged), root, "the forgery is real");
        assert_eq!(
            branch_root(leaf, 6, &forged),
            Err(BranchError::Phantom { pos: 6, level: 1 })
        );
        // Every phantom position of every size up to 33: the forgery folds to the root, and
        // is refused, so a transaction proves at exactly one position.
        for n in 1..=33 {
            let txids = fake_txids(n);
            let root = root_of(&txids);
            let depth = branch_for(&txids, 0).len();
            for phantom in n..(1 << depth) {
                let (leaf, forged) = forge(&txids, phantom);
                assert_eq!(fold(leaf, phantom, &forged), root);
                assert!(
                    matches!(
                        verify_branch(leaf, phantom as u64, &forged, root),
                        Err(BranchError::Phantom { .. })
                    ),
                    "{n} transactions: {leaf} proved at {phantom}"
                );
            }
            // And every honest branch still verifies.
            for (pos, txid) in txids.iter().enumerate() {
                verify_branch(*txid, pos as u64, &branch_for(&txids, pos), root).unwrap();
            }
        }
    }
}
