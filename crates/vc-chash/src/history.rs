//! What a prover reads, and an in-memory chain that provides it.
//!
//! [`History`] is the small storage-agnostic interface between the proof builder and wherever a
//! node keeps its chain (`vc-store` implements it on redb). [`MemoryHistory`] computes a chain of
//! either scheme block by block and keeps everything, or only what one proof needs.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt;

use crate::append::Appender;
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::v2::mmr::{self, Mmr};

/// Read access to an application's computed chain, by height.
///
/// Every method returns `Ok(None)` for a height (or MMR node) the history does not have.
pub trait History {
    /// The storage's own error.
    type Error: fmt::Display + fmt::Debug;

    /// The chain's consensus-hash scheme.
    fn scheme(&self) -> Scheme;

    /// The application's first block `F`.
    fn first_block(&self) -> u64;

    /// The consensus hash of the block at `height`.
    fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, Self::Error>;

    /// The ops hash of the block at `height`.
    fn ops_hash(&self, height: u64) -> Result<Option<Hash256>, Self::Error>;

    /// The committed consensus records of the block at `height`, in the order they were
    /// committed.
    fn records(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, Self::Error>;

    /// The Bitcoin block hash (internal byte order) at `height`.
    fn block_hash(&self, height: u64) -> Result<Option<Hash256>, Self::Error>;

    /// v3: the root of the application's state after the block at `height`
    /// ([`crate::state`]). The default has none, which is right for legacy and v2 chains.
    fn state_root(&self, height: u64) -> Result<Option<Hash256>, Self::Error> {
        let _ = height;
        Ok(None)
    }

    /// The v2 MMR node `(level, index)` (see [`crate::v2::mmr`]).
    ///
    /// The default recomputes it from consensus hashes, reading `2^level` of them; a store that
    /// keeps MMR nodes should override it so that proofs cost O(log n) reads.
    fn mmr_node(&self, level: u8, index: u64) -> Result<Option<Hash256>, Self::Error> {
        if level == 0 {
            let height = index.checked_add(self.first_block());
            return Ok(match height {
                Some(h) => match self.consensus_hash(h)? {
                    Some(ConsensusHash::V2(ch)) => Some(ch),
                    _ => None,
                },
                None => None,
            });
        }
        let (Some(left_index), Some(right_index)) = (
            index.checked_mul(2),
            index.checked_mul(2).and_then(|i| i.checked_add(1)),
        ) else {
            return Ok(None);
        };
        let left = self.mmr_node(level - 1, left_index)?;
        let right = self.mmr_node(level - 1, right_index)?;
        Ok(match (left, right) {
            (Some(l), Some(r)) => Some(mmr::parent(&l, &r)),
            _ => None,
        })
    }
}

/// The per-block results of appending a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSummary {
    /// The block's height.
    pub height: u64,
    /// Its ops hash (legacy: in display order, as the Python code prints it).
    pub ops_hash: Hash256,
    /// Its consensus hash.
    pub consensus_hash: ConsensusHash,
}

/// What a [`MemoryHistory`] keeps besides consensus hashes (which it always keeps, because later
/// blocks' priors need them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retain {
    /// Heights whose ops hash is kept; `None` keeps all.
    pub ops_hashes: Option<BTreeSet<u64>>,
    /// Heights whose block hash (and, for v3, state root) is kept; `None` keeps all.
    pub block_hashes: Option<BTreeSet<u64>>,
    /// Heights whose records are kept; `None` keeps all.
    pub records: Option<BTreeSet<u64>>,
    /// MMR nodes kept; `None` keeps all.
    pub mmr_nodes: Option<BTreeSet<(u8, u64)>>,
}

impl Retain {
    /// Keep everything.
    pub fn all() -> Self {
        Retain::default()
    }
}

fn keeps<T: Ord>(set: &Option<BTreeSet<T>>, item: &T) -> bool {
    set.as_ref().is_none_or(|s| s.contains(item))
}

/// A chain computed in memory, block by block, for tests, tools and light servers.
///
/// Memory: one consensus hash per block always (16 or 32 bytes), plus whatever [`Retain`]
/// selects.
#[derive(Clone, Debug)]
pub struct MemoryHistory {
    appender: Appender,
    chs: Vec<ConsensusHash>,
    ops_hashes: BTreeMap<u64, Hash256>,
    block_hashes: BTreeMap<u64, Hash256>,
    records: BTreeMap<u64, Vec<Vec<u8>>>,
    mmr_nodes: BTreeMap<(u8, u64), Hash256>,
    state_roots: BTreeMap<u64, Hash256>,
    retain: Retain,
}

impl MemoryHistory {
    /// An empty chain whose first block will be `first_block`, keeping everything.
    pub fn new(scheme: Scheme, first_block: u64) -> Self {
        Self::with_retention(scheme, first_block, Retain::all())
    }

    /// An empty chain that keeps only what `retain` selects.
    pub fn with_retention(scheme: Scheme, first_block: u64, retain: Retain) -> Self {
        MemoryHistory {
            appender: Appender::new(scheme, first_block),
            chs: Vec::new(),
            ops_hashes: BTreeMap::new(),
            block_hashes: BTreeMap::new(),
            records: BTreeMap::new(),
            mmr_nodes: BTreeMap::new(),
            state_roots: BTreeMap::new(),
            retain,
        }
    }

    /// The height the next pushed block gets.
    pub fn next_height(&self) -> u64 {
        self.appender.next_height()
    }

    /// The newest block's height and consensus hash, if there is a block.
    pub fn tip(&self) -> Option<(u64, ConsensusHash)> {
        let last = self.chs.last()?;
        Some((self.next_height() - 1, *last))
    }

    /// The v2 accumulator over all blocks so far (empty for legacy chains).
    pub fn mmr(&self) -> &Mmr {
        self.appender.mmr()
    }

    fn ch_at(&self, height: u64) -> Option<ConsensusHash> {
        ch_at(&self.chs, self.appender.first_block(), height)
    }

    /// Appends the next block from its hash (internal byte order; legacy ignores it) and its
    /// committed records in block order, through the append step ([`Appender::append`]).
    ///
    /// # Panics
    ///
    /// If the block would be at height `u64::MAX` (see [`crate::append::AppendError::LastHeight`]),
    /// or if the chain is v3 (use [`MemoryHistory::push_block_with_state`]): the chain holds
    /// every earlier block's consensus hash, all of its own scheme, so the append step has
    /// nothing else to refuse.
    pub fn push_block<R: AsRef<[u8]>>(
        &mut self,
        block_hash: Hash256,
        records: &[R],
    ) -> BlockSummary {
        self.push_block_with_state(block_hash, records, None)
    }

    /// [`MemoryHistory::push_block`] with the state root the block commits: `Some` for v3
    /// chains (see [`crate::state`]), `None` for the others.
    ///
    /// # Panics
    ///
    /// If the block would be at height `u64::MAX`, or `state_root` does not fit the scheme.
    pub fn push_block_with_state<R: AsRef<[u8]>>(
        &mut self,
        block_hash: Hash256,
        records: &[R],
        state_root: Option<Hash256>,
    ) -> BlockSummary {
        let height = self.next_height();
        let (chs, first_block) = (&self.chs, self.appender.first_block());
        let (nodes, keep) = (&mut self.mmr_nodes, &self.retain.mmr_nodes);
        let appended = self.appender.append(
            height,
            block_hash,
            records,
            state_root,
            |h| Ok::<_, Infallible>(ch_at(chs, first_block, h)),
            |level, index, hash| {
                if keeps(keep, &(level, index)) {
                    nodes.insert((level, index), *hash);
                }
            },
        );
        let summary = match appended {
            Ok(appended) => appended.summary(),
            #[expect(clippy::panic, reason = "documented: a chain cannot pass u64::MAX")]
            Err(e) => panic!("MemoryHistory::push_block: {e}"),
        };
        self.chs.push(summary.consensus_hash);
        if keeps(&self.retain.ops_hashes, &height) {
            self.ops_hashes.insert(height, summary.ops_hash);
        }
        if keeps(&self.retain.block_hashes, &height) {
            self.block_hashes.insert(height, block_hash);
        }
        if let Some(root) = state_root
            && keeps(&self.retain.block_hashes, &height)
        {
            self.state_roots.insert(height, root);
        }
        if keeps(&self.retain.records, &height) {
            self.records.insert(
                height,
                records.iter().map(|r| r.as_ref().to_vec()).collect(),
            );
        }
        summary
    }
}

/// The consensus hash at `height` among `chs`, which start at `first_block`.
fn ch_at(chs: &[ConsensusHash], first_block: u64, height: u64) -> Option<ConsensusHash> {
    let i = usize::try_from(height.checked_sub(first_block)?).ok()?;
    chs.get(i).copied()
}

impl History for MemoryHistory {
    type Error = Infallible;

    fn scheme(&self) -> Scheme {
        self.appender.scheme()
    }

    fn first_block(&self) -> u64 {
        self.appender.first_block()
    }

    fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, Infallible> {
        Ok(self.ch_at(height))
    }

    fn ops_hash(&self, height: u64) -> Result<Option<Hash256>, Infallible> {
        Ok(self.ops_hashes.get(&height).copied())
    }

    fn records(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, Infallible> {
        Ok(self.records.get(&height).cloned())
    }

    fn block_hash(&self, height: u64) -> Result<Option<Hash256>, Infallible> {
        Ok(self.block_hashes.get(&height).copied())
    }

    fn mmr_node(&self, level: u8, index: u64) -> Result<Option<Hash256>, Infallible> {
        Ok(self.mmr_nodes.get(&(level, index)).copied())
    }

    fn state_root(&self, height: u64) -> Result<Option<Hash256>, Infallible> {
        Ok(self.state_roots.get(&height).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history that only has consensus hashes, to exercise the default `mmr_node`.
    struct OnlyHashes(MemoryHistory);

    impl History for OnlyHashes {
        type Error = Infallible;
        fn scheme(&self) -> Scheme {
            self.0.scheme()
        }
        fn first_block(&self) -> u64 {
            self.0.first_block()
        }
        fn consensus_hash(&self, h: u64) -> Result<Option<ConsensusHash>, Infallible> {
            self.0.consensus_hash(h)
        }
        fn ops_hash(&self, _: u64) -> Result<Option<Hash256>, Infallible> {
            Ok(None)
        }
        fn records(&self, _: u64) -> Result<Option<Vec<Vec<u8>>>, Infallible> {
            Ok(None)
        }
        fn block_hash(&self, _: u64) -> Result<Option<Hash256>, Infallible> {
            Ok(None)
        }
    }

    #[test]
    fn default_mmr_node_matches_stored_nodes() {
        let mut h = MemoryHistory::new(Scheme::V2, 7);
        for i in 0..37u8 {
            h.push_block(Hash256([i; 32]), &[[i]]);
        }
        let stored: Vec<_> = h.mmr_nodes.iter().map(|(k, v)| (*k, *v)).collect();
        let only = OnlyHashes(h);
        for ((level, index), hash) in stored {
            assert_eq!(only.mmr_node(level, index).unwrap(), Some(hash));
        }
        assert_eq!(only.mmr_node(6, 0).unwrap(), None);
    }

    #[test]
    fn retention_keeps_only_what_is_asked() {
        let retain = Retain {
            ops_hashes: Some([3u64].into_iter().collect()),
            block_hashes: Some(BTreeSet::new()),
            records: Some([2u64].into_iter().collect()),
            mmr_nodes: Some([(1u8, 0u64)].into_iter().collect()),
        };
        let mut h = MemoryHistory::with_retention(Scheme::V2, 0, retain);
        let mut full = MemoryHistory::new(Scheme::V2, 0);
        for i in 0..5u8 {
            assert_eq!(
                h.push_block(Hash256([i; 32]), &[[i]]),
                full.push_block(Hash256([i; 32]), &[[i]])
            );
        }
        assert_eq!(h.ops_hash(3).unwrap(), full.ops_hash(3).unwrap());
        assert_eq!(h.ops_hash(2).unwrap(), None);
        assert_eq!(h.records(2).unwrap(), Some(alloc::vec![alloc::vec![2u8]]));
        assert_eq!(h.records(1).unwrap(), None);
        assert_eq!(h.block_hash(1).unwrap(), None);
        assert_eq!(h.mmr_node(1, 0).unwrap(), full.mmr_node(1, 0).unwrap());
        assert_eq!(h.mmr_node(0, 0).unwrap(), None);
        assert_eq!(h.tip(), full.tip());
    }
}
