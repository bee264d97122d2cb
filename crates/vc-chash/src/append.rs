//! The append step: how a block's records and earlier consensus hashes become its consensus hash.
//!
//! This is the one place where the chaining rule of both schemes is applied. [`Appender`]
//! holds what a chain needs between blocks (the scheme, the first block, the next height and,
//! for v2, the accumulator's peaks); [`Appender::append`] takes the next block's hash and
//! committed records, reads the consensus hashes of its priors (see [`crate::priors`]) through a
//! closure, and returns the block's ops hash and consensus hash. It does no I/O: an in-memory
//! chain ([`crate::MemoryHistory`]) and a database (`vc-store`'s writer, snapshot import and
//! replay verifier) both use it, each reading earlier hashes its own way.
//!
//! ```
//! use vc_chash::append::Appender;
//! use vc_chash::{ConsensusHash, Hash256, Scheme};
//!
//! let mut chain = Appender::new(Scheme::V2, 100);
//! let mut hashes: Vec<ConsensusHash> = Vec::new();
//! for height in 100..110u64 {
//!     let records = [height.to_be_bytes()];
//!     let block = chain.append(
//!         height,
//!         Hash256([7; 32]),
//!         &records,
//!         None, // the state root: v3 chains only
//!         |prior| Ok::<_, core::convert::Infallible>(hashes.get((prior - 100) as usize).copied()),
//!         |_level, _index, _node| {},
//!     )?;
//!     hashes.push(block.consensus_hash);
//! }
//! assert_eq!(chain.next_height(), 110);
//! assert_eq!(chain.mmr().leaf_count(), 10);
//! # Ok::<(), vc_chash::append::AppendError<core::convert::Infallible>>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::history::BlockSummary;
use crate::priors::{prior_count, prior_heights};
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::v2::mmr::Mmr;
use crate::{legacy, v2};

/// What appending one block produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The block's height.
    pub height: u64,
    /// Its ops hash (legacy: in display order, as the Python code prints it).
    pub ops_hash: Hash256,
    /// Its consensus hash.
    pub consensus_hash: ConsensusHash,
    /// v2 and v3: the accumulator root after appending this block (the one the next block
    /// commits to); `None` for legacy chains.
    pub mmr_root: Option<Hash256>,
    /// v3: the state root the block committed; `None` for the other schemes.
    pub state_root: Option<Hash256>,
}

impl Appended {
    /// The block's height, ops hash and consensus hash.
    pub fn summary(&self) -> BlockSummary {
        BlockSummary {
            height: self.height,
            ops_hash: self.ops_hash,
            consensus_hash: self.consensus_hash,
        }
    }
}

/// Why a block could not be appended. Nothing changed in the [`Appender`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppendError<E> {
    /// Reading an earlier block's consensus hash failed.
    Read {
        /// The block being appended.
        height: u64,
        /// The earlier block whose consensus hash was being read.
        prior: u64,
        /// The reader's error.
        source: E,
    },
    /// An earlier block's consensus hash, which this block's priors need, is not there.
    MissingPrior {
        /// The block being appended.
        height: u64,
        /// The earlier block.
        prior: u64,
    },
    /// An earlier block's consensus hash is of the other scheme.
    PriorScheme {
        /// The block being appended.
        height: u64,
        /// The earlier block.
        prior: u64,
        /// The chain's scheme.
        expected: Scheme,
    },
    /// The block is not the next one.
    NotNext {
        /// The block's height.
        height: u64,
        /// The height the next block must have.
        expected: u64,
    },
    /// v2: the accumulator does not hold exactly the blocks from the first one to this one.
    Accumulator {
        /// The block's height.
        height: u64,
        /// The application's first block.
        first_block: u64,
        /// The accumulator's leaf count.
        leaves: u64,
    },
    /// The block is at height `u64::MAX`, after which no block could follow.
    LastHeight,
    /// A v3 block came without its state root, or a legacy or v2 block with one.
    StateRoot {
        /// The block's height.
        height: u64,
        /// The chain's scheme.
        scheme: Scheme,
    },
}

impl<E: fmt::Display> fmt::Display for AppendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Read {
                height,
                prior,
                source,
            } => write!(
                f,
                "reading the consensus hash of block {prior}, a prior of block {height}: {source}"
            ),
            AppendError::MissingPrior { height, prior } => write!(
                f,
                "the consensus hash of block {prior}, a prior of block {height}, is missing"
            ),
            AppendError::PriorScheme {
                height,
                prior,
                expected,
            } => write!(
                f,
                "block {prior}, a prior of block {height}, has a consensus hash of another scheme than {expected}"
            ),
            AppendError::NotNext { height, expected } => {
                write!(f, "block {height} is not the next block {expected}")
            }
            AppendError::Accumulator {
                height,
                first_block,
                leaves,
            } => write!(
                f,
                "block {height} of a chain from block {first_block} needs an accumulator over {} blocks, not {leaves}",
                height.wrapping_sub(*first_block)
            ),
            AppendError::LastHeight => {
                write!(f, "no block can be appended at height {}", u64::MAX)
            }
            AppendError::StateRoot { height, scheme } => {
                if scheme.commits_state() {
                    write!(f, "block {height} of a {scheme} chain needs a state root")
                } else {
                    write!(
                        f,
                        "block {height} of a {scheme} chain cannot commit a state root"
                    )
                }
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for AppendError<E> {}

/// A chain's position between blocks: everything the append step needs besides the next
/// block and the earlier consensus hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appender {
    scheme: Scheme,
    first_block: u64,
    next_height: u64,
    /// v2 only; stays empty for legacy chains.
    mmr: Mmr,
}

impl Appender {
    /// An appender for an empty chain whose first block will be `first_block`.
    pub fn new(scheme: Scheme, first_block: u64) -> Self {
        Self::resume(scheme, first_block, first_block, Mmr::new())
    }

    /// An appender whose next block is `next_height`. For v2, `mmr` must hold the consensus
    /// hashes of the blocks from `first_block` to `next_height - 1` (each append checks its
    /// leaf count); legacy chains ignore it.
    pub fn resume(scheme: Scheme, first_block: u64, next_height: u64, mmr: Mmr) -> Self {
        Appender {
            scheme,
            first_block,
            next_height,
            mmr,
        }
    }

    /// The chain's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The application's first block `F`.
    pub fn first_block(&self) -> u64 {
        self.first_block
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// The v2 accumulator over the blocks so far (empty for legacy chains).
    pub fn mmr(&self) -> &Mmr {
        &self.mmr
    }

    /// Appends the block at `height` (which must be [`Self::next_height`]) from its hash
    /// (internal byte order; legacy ignores it), its committed records in block order and, for
    /// v3 only, the root of the application's state after the block ([`crate::state`]).
    ///
    /// `prior` reads the consensus hash of an earlier block (`Ok(None)` if there is none);
    /// `on_node` sees each accumulator node the block creates (v2), the new leaf first, as
    /// `(level, index, hash)`, so that a store can keep them for proofs. On an error nothing
    /// changes and `on_node` has not been called.
    pub fn append<R: AsRef<[u8]>, E>(
        &mut self,
        height: u64,
        block_hash: Hash256,
        records: &[R],
        state_root: Option<Hash256>,
        mut prior: impl FnMut(u64) -> Result<Option<ConsensusHash>, E>,
        on_node: impl FnMut(u8, u64, &Hash256),
    ) -> Result<Appended, AppendError<E>> {
        if state_root.is_some() != self.scheme.commits_state() {
            return Err(AppendError::StateRoot {
                height,
                scheme: self.scheme,
            });
        }
        if height != self.next_height {
            return Err(AppendError::NotNext {
                height,
                expected: self.next_height,
            });
        }
        let next_height = height.checked_add(1).ok_or(AppendError::LastHeight)?;
        let appended = match self.scheme {
            Scheme::Legacy => {
                let priors = self.read_priors(height, &mut prior, |ch| match ch {
                    ConsensusHash::Legacy(c) => Some(c),
                    ConsensusHash::V2(_) => None,
                })?;
                let ops_hash = legacy::ops_hash(records);
                Appended {
                    height,
                    ops_hash,
                    consensus_hash: ConsensusHash::Legacy(legacy::consensus_hash(
                        &ops_hash, &priors,
                    )),
                    mmr_root: None,
                    state_root: None,
                }
            }
            Scheme::V2 | Scheme::V3 => {
                if height.checked_sub(self.first_block) != Some(self.mmr.leaf_count()) {
                    return Err(AppendError::Accumulator {
                        height,
                        first_block: self.first_block,
                        leaves: self.mmr.leaf_count(),
                    });
                }
                let priors = self.read_priors(height, &mut prior, |ch| match ch {
                    ConsensusHash::V2(c) => Some(c),
                    ConsensusHash::Legacy(_) => None,
                })?;
                let ops_hash = v2::ops_hash(records);
                let ch = v2::Commitment {
                    height,
                    block_hash,
                    ops_hash,
                    priors_hash: v2::priors_hash(&priors),
                    mmr_root: self.mmr.root(),
                    state_root,
                }
                .consensus_hash();
                self.mmr.push(ch, on_node);
                Appended {
                    height,
                    ops_hash,
                    consensus_hash: ConsensusHash::V2(ch),
                    mmr_root: Some(self.mmr.root()),
                    state_root,
                }
            }
        };
        self.next_height = next_height;
        Ok(appended)
    }

    /// The consensus hashes of block `height`'s priors, nearest first, each taken out of its
    /// [`ConsensusHash`] by `pick` (which refuses the other scheme's).
    fn read_priors<T, E>(
        &self,
        height: u64,
        prior: &mut impl FnMut(u64) -> Result<Option<ConsensusHash>, E>,
        pick: fn(ConsensusHash) -> Option<T>,
    ) -> Result<Vec<T>, AppendError<E>> {
        let mut priors = Vec::with_capacity(prior_count(height, self.first_block));
        for p in prior_heights(height, self.first_block) {
            let ch = prior(p)
                .map_err(|source| AppendError::Read {
                    height,
                    prior: p,
                    source,
                })?
                .ok_or(AppendError::MissingPrior { height, prior: p })?;
            priors.push(pick(ch).ok_or(AppendError::PriorScheme {
                height,
                prior: p,
                expected: self.scheme,
            })?);
        }
        Ok(priors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::convert::Infallible;

    fn read(
        chs: &[ConsensusHash],
        first: u64,
    ) -> impl FnMut(u64) -> Result<Option<ConsensusHash>, Infallible> {
        move |h| Ok(chs.get((h - first) as usize).copied())
    }

    #[test]
    fn refuses_what_does_not_follow_and_changes_nothing() {
        let mut a = Appender::new(Scheme::V2, 10);
        let none: &[&[u8]] = &[];
        assert_eq!(
            a.append(11, Hash256::ZERO, none, None, read(&[], 10), |_, _, _| {}),
            Err(AppendError::NotNext {
                height: 11,
                expected: 10
            })
        );
        let first = a
            .append(10, Hash256::ZERO, none, None, read(&[], 10), |_, _, _| {})
            .unwrap();
        let before = a.clone();
        // Block 11's prior (block 10) is missing.
        assert_eq!(
            a.append(
                11,
                Hash256::ZERO,
                none,
                None,
                read(&[], 10),
                |_, _, _| panic!()
            ),
            Err(AppendError::MissingPrior {
                height: 11,
                prior: 10
            })
        );
        // ... or of the other scheme.
        let legacy = [ConsensusHash::Legacy([0; 16])];
        assert_eq!(
            a.append(
                11,
                Hash256::ZERO,
                none,
                None,
                read(&legacy, 10),
                |_, _, _| panic!()
            ),
            Err(AppendError::PriorScheme {
                height: 11,
                prior: 10,
                expected: Scheme::V2
            })
        );
        // ... or unreadable.
        assert_eq!(
            a.append(
                11,
                Hash256::ZERO,
                none,
                None,
                |_| Err("disk"),
                |_, _, _| panic!()
            ),
            Err(AppendError::Read {
                height: 11,
                prior: 10,
                source: "disk"
            })
        );
        assert_eq!(a, before);
        let chs = [first.consensus_hash];
        assert!(
            a.append(11, Hash256::ZERO, none, None, read(&chs, 10), |_, _, _| {})
                .is_ok()
        );
    }

    #[test]
    fn v2_accumulator_must_cover_the_earlier_blocks() {
        let mut a = Appender::resume(Scheme::V2, 10, 12, Mmr::new());
        let none: &[&[u8]] = &[];
        let chs = [ConsensusHash::V2(Hash256::ZERO); 2];
        assert_eq!(
            a.append(12, Hash256::ZERO, none, None, read(&chs, 10), |_, _, _| {}),
            Err(AppendError::Accumulator {
                height: 12,
                first_block: 10,
                leaves: 0
            })
        );
        // Legacy keeps no accumulator.
        let chs = [ConsensusHash::Legacy([1; 16]); 2];
        let mut a = Appender::resume(Scheme::Legacy, 10, 12, Mmr::new());
        let block = a
            .append(
                12,
                Hash256::ZERO,
                &[b"x"],
                None,
                read(&chs, 10),
                |_, _, _| {},
            )
            .unwrap();
        assert_eq!(block.mmr_root, None);
        assert_eq!(
            block.consensus_hash,
            ConsensusHash::Legacy(legacy::consensus_hash(
                &legacy::ops_hash(&[b"x"]),
                &[[1; 16]]
            ))
        );
    }

    #[test]
    fn no_block_after_the_last_height() {
        let mut a = Appender::new(Scheme::Legacy, u64::MAX);
        assert_eq!(
            a.append(
                u64::MAX,
                Hash256::ZERO,
                &[vec![1u8]],
                None,
                read(&[], u64::MAX),
                |_, _, _| {}
            ),
            Err(AppendError::LastHeight)
        );
    }
}
