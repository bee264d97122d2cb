//! The Merkle Mountain Range that makes v2 proofs logarithmic.
//!
//! The leaves are the consensus hashes `CH(F), CH(F+1), ...` in order; leaf `i` is the block at
//! height `F + i`. Nodes are addressed by `(level, index)`: node `(l, j)` covers leaves
//! `j * 2^l .. (j + 1) * 2^l`, level 0 are the leaves themselves, and
//! `node(l + 1, j) = H(0x03 || node(l, 2j) || node(l, 2j + 1))`. A node, once it exists, never
//! changes.
//!
//! With `N` leaves the *peaks* are the nodes of the binary decomposition of `N`, largest first.
//! The root bags them from the right, `bag = H(0x04 || peak || bag)`, and binds the leaf count:
//! `root = H(0x05 || u64 N || bag)` (with `bag` = 32 zero bytes when `N = 0`).

use alloc::vec::Vec;

use super::tag;
use crate::digest::{Tagged, tagged_pair};
use crate::types::Hash256;

/// Joins two children into their parent node.
pub fn parent(left: &Hash256, right: &Hash256) -> Hash256 {
    Hash256(tagged_pair(tag::MMR_NODE, &left.0, &right.0))
}

/// One bagging step: `H(0x04 || peak || bag_of_the_peaks_to_its_right)`.
pub fn bag(peak: &Hash256, right: &Hash256) -> Hash256 {
    Hash256(tagged_pair(tag::MMR_BAG, &peak.0, &right.0))
}

/// Bags peaks (left to right) from the right; `None` when there are none.
pub fn bag_peaks(peaks: &[Hash256]) -> Option<Hash256> {
    let (last, rest) = peaks.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, p| bag(p, &acc)))
}

/// The root from the leaf count and the bag of all peaks.
pub fn root_from_bag(leaves: u64, bagged: Option<&Hash256>) -> Hash256 {
    let mut t = Tagged::new(tag::MMR_ROOT);
    t.u64(leaves).update(&bagged.unwrap_or(&Hash256::ZERO).0);
    Hash256(t.finish())
}

/// The `(level, index)` of each peak of an MMR with `leaves` leaves, largest first.
pub fn peak_positions(leaves: u64) -> impl Iterator<Item = (u8, u64)> + Clone {
    let mut start = 0u64;
    (0..64u8).rev().filter_map(move |level| {
        if leaves & (1u64 << level) == 0 {
            return None;
        }
        let pos = (level, start >> level);
        start += 1u64 << level;
        Some(pos)
    })
}

/// Where a leaf sits in an MMR of a given size: which peak holds it and how high that is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mountain {
    /// Position of the peak among the peaks, 0 = the leftmost (largest).
    pub ordinal: usize,
    /// Height of the mountain: the number of siblings on the leaf's path to its peak.
    pub height: u8,
    /// Number of peaks in the MMR.
    pub peaks: usize,
}

/// The mountain holding leaf `index` in an MMR of `leaves` leaves; `None` if `index >= leaves`.
pub fn mountain_of(leaves: u64, index: u64) -> Option<Mountain> {
    if index >= leaves {
        return None;
    }
    let peaks = leaves.count_ones() as usize;
    let mut start = 0u64;
    for (ordinal, (level, _)) in peak_positions(leaves).enumerate() {
        start += 1u64 << level;
        if index < start {
            return Some(Mountain {
                ordinal,
                height: level,
                peaks,
            });
        }
    }
    None
}

/// The positions a membership proof of leaf `index` in an MMR of `leaves` leaves reads:
/// siblings bottom-up, then the peaks to the left of its mountain, then those to the right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPositions {
    /// The siblings on the path from the leaf to its peak, bottom-up.
    pub siblings: Vec<(u8, u64)>,
    /// The peaks left of the leaf's mountain, left to right.
    pub left_peaks: Vec<(u8, u64)>,
    /// The peaks right of the leaf's mountain, left to right (the proof carries their bag).
    pub right_peaks: Vec<(u8, u64)>,
}

/// See [`PathPositions`]; `None` if `index >= leaves`.
pub fn path_positions(leaves: u64, index: u64) -> Option<PathPositions> {
    let m = mountain_of(leaves, index)?;
    let siblings = (0..m.height).map(|l| (l, (index >> l) ^ 1)).collect();
    let mut left_peaks = Vec::new();
    let mut right_peaks = Vec::new();
    for (i, pos) in peak_positions(leaves).enumerate() {
        if i < m.ordinal {
            left_peaks.push(pos);
        } else if i > m.ordinal {
            right_peaks.push(pos);
        }
    }
    Some(PathPositions {
        siblings,
        left_peaks,
        right_peaks,
    })
}

/// A membership proof of one leaf: what [`root_from_path`] needs besides the leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmrPath {
    /// Siblings from the leaf up to its peak.
    pub siblings: Vec<Hash256>,
    /// The peaks left of the leaf's mountain, left to right.
    pub left_peaks: Vec<Hash256>,
    /// The bag of the peaks right of the leaf's mountain, if there are any.
    pub right_bag: Option<Hash256>,
}

/// Why an [`MmrPath`] does not fit the MMR it claims to be a path in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathShapeError {
    /// The leaf index is not below the leaf count.
    IndexOutOfRange,
    /// Wrong number of siblings for the leaf's mountain.
    Siblings {
        /// Required.
        expected: usize,
        /// Given.
        found: usize,
    },
    /// Wrong number of peaks left of the leaf's mountain.
    LeftPeaks {
        /// Required.
        expected: usize,
        /// Given.
        found: usize,
    },
    /// A right bag is given where none may be, or missing where one must be.
    RightBag {
        /// Whether the MMR has peaks right of the leaf's mountain.
        expected: bool,
    },
}

/// Recomputes the root of an MMR of `leaves` leaves from leaf `index`'s value and its path,
/// checking that the path has exactly the shape that MMR requires.
pub fn root_from_path(
    leaves: u64,
    index: u64,
    leaf: &Hash256,
    path: &MmrPath,
) -> Result<Hash256, PathShapeError> {
    let m = mountain_of(leaves, index).ok_or(PathShapeError::IndexOutOfRange)?;
    if path.siblings.len() != usize::from(m.height) {
        return Err(PathShapeError::Siblings {
            expected: usize::from(m.height),
            found: path.siblings.len(),
        });
    }
    if path.left_peaks.len() != m.ordinal {
        return Err(PathShapeError::LeftPeaks {
            expected: m.ordinal,
            found: path.left_peaks.len(),
        });
    }
    let has_right = m.ordinal + 1 < m.peaks;
    if path.right_bag.is_some() != has_right {
        return Err(PathShapeError::RightBag {
            expected: has_right,
        });
    }
    let mut node = *leaf;
    let mut pos = index;
    for s in &path.siblings {
        node = if pos & 1 == 0 {
            parent(&node, s)
        } else {
            parent(s, &node)
        };
        pos >>= 1;
    }
    let mut acc = match &path.right_bag {
        Some(rb) => bag(&node, rb),
        None => node,
    };
    for p in path.left_peaks.iter().rev() {
        acc = bag(p, &acc);
    }
    Ok(root_from_bag(leaves, Some(&acc)))
}

/// The `(level, index)` of the nodes that appending leaf `index` creates, in the order
/// [`Mmr::push`] reports them: the leaf, then one parent per trailing one bit of `index`. Taking
/// the newest leaf back out of a stored MMR removes exactly these.
pub fn nodes_created_by(index: u64) -> impl Iterator<Item = (u8, u64)> {
    let merges = index.trailing_ones() as u8;
    (0..=merges).map(move |level| (level, index >> level))
}

/// An append-only MMR that keeps only its peaks (at most 64 hashes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mmr {
    leaves: u64,
    peaks: Vec<Hash256>,
}

impl Mmr {
    /// An empty MMR.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores an MMR from its leaf count and peaks (largest first), as stored; `None` if the
    /// number of peaks does not match the leaf count.
    pub fn from_peaks(leaves: u64, peaks: Vec<Hash256>) -> Option<Self> {
        (peaks.len() == leaves.count_ones() as usize).then_some(Mmr { leaves, peaks })
    }

    /// The number of leaves.
    pub fn leaf_count(&self) -> u64 {
        self.leaves
    }

    /// The peaks, largest first.
    pub fn peaks(&self) -> &[Hash256] {
        &self.peaks
    }

    /// The root: `H(0x05 || u64 N || bag of the peaks)`.
    pub fn root(&self) -> Hash256 {
        root_from_bag(self.leaves, bag_peaks(&self.peaks).as_ref())
    }

    /// Appends a leaf. `on_node` sees every node this creates, the leaf itself first, as
    /// `(level, index, hash)`, so that a store can keep them for proofs.
    pub fn push(&mut self, leaf: Hash256, mut on_node: impl FnMut(u8, u64, &Hash256)) {
        let mut index = self.leaves;
        let mut level = 0u8;
        let mut node = leaf;
        on_node(level, index, &node);
        // Each trailing one bit of the old leaf count is a peak of equal height to merge with.
        let mut carry = self.leaves;
        while carry & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            node = parent(&left, &node);
            level += 1;
            index >>= 1;
            on_node(level, index, &node);
            carry >>= 1;
        }
        self.peaks.push(node);
        self.leaves += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    fn leaf(i: u64) -> Hash256 {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&i.to_be_bytes());
        Hash256(b)
    }

    #[test]
    fn paths_verify_for_every_leaf_and_size() {
        let mut mmr = Mmr::new();
        let mut nodes = BTreeMap::new();
        for n in 1..=70u64 {
            mmr.push(leaf(n - 1), |l, i, h| {
                nodes.insert((l, i), *h);
            });
            // The stored peaks are the nodes at the peak positions.
            let peaks: Vec<Hash256> = peak_positions(n).map(|p| nodes[&p]).collect();
            assert_eq!(peaks, mmr.peaks());
            for idx in 0..n {
                let pos = path_positions(n, idx).unwrap();
                let right: Vec<Hash256> = pos.right_peaks.iter().map(|p| nodes[p]).collect();
                let path = MmrPath {
                    siblings: pos.siblings.iter().map(|p| nodes[p]).collect(),
                    left_peaks: pos.left_peaks.iter().map(|p| nodes[p]).collect(),
                    right_bag: bag_peaks(&right),
                };
                assert_eq!(root_from_path(n, idx, &leaf(idx), &path), Ok(mmr.root()));
                // A different leaf value gives a different root.
                assert_ne!(
                    root_from_path(n, idx, &leaf(idx + 1000), &path),
                    Ok(mmr.root())
                );
            }
        }
    }

    #[test]
    fn push_reports_the_nodes_created_by_each_leaf() {
        let mut mmr = Mmr::new();
        for i in 0..70u64 {
            let mut reported = Vec::new();
            mmr.push(leaf(i), |l, j, _| reported.push((l, j)));
            assert_eq!(
                reported,
                nodes_created_by(i).collect::<Vec<_>>(),
                "leaf {i}"
            );
        }
    }

    #[test]
    fn shape_is_enforced() {
        let path = MmrPath {
            siblings: Vec::new(),
            left_peaks: Vec::new(),
            right_bag: None,
        };
        assert_eq!(
            root_from_path(1, 1, &leaf(0), &path),
            Err(PathShapeError::IndexOutOfRange)
        );
        assert!(root_from_path(1, 0, &leaf(0), &path).is_ok());
        assert_eq!(
            root_from_path(2, 0, &leaf(0), &path),
            Err(PathShapeError::Siblings {
                expected: 1,
                found: 0
            })
        );
        assert_eq!(
            root_from_path(3, 2, &leaf(0), &path),
            Err(PathShapeError::LeftPeaks {
                expected: 1,
                found: 0
            })
        );
    }

    #[test]
    fn restore_from_peaks() {
        let mut mmr = Mmr::new();
        for i in 0..11 {
            mmr.push(leaf(i), |_, _, _| {});
        }
        let restored = Mmr::from_peaks(11, mmr.peaks().to_vec()).unwrap();
        assert_eq!(restored, mmr);
        assert!(Mmr::from_peaks(12, mmr.peaks().to_vec()).is_none());
        assert_eq!(Mmr::new().root(), root_from_bag(0, None));
    }
}
