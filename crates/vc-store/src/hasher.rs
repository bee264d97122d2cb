//! Consensus hashing for stored chains: the one place the store turns a block's records and
//! earlier consensus hashes into the block's ops hash and consensus hash. The writer, the replay
//! verifier and snapshot import all use it, so they cannot disagree.

use vc_chash::priors::prior_heights;
use vc_chash::v2::mmr::Mmr;
use vc_chash::{ConsensusHash, Hash256, Scheme, legacy, v2};

use crate::error::StoreError;

/// What hashing one block produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub ops_hash: Hash256,
    pub consensus_hash: ConsensusHash,
    /// v2: the accumulator root after appending this block.
    pub mmr_root: Option<Hash256>,
}

/// Hashes blocks in order; holds the v2 accumulator's peaks between blocks.
#[derive(Clone, Debug)]
pub(crate) struct ChainHasher {
    scheme: Scheme,
    first_block: u64,
    next_height: u64,
    /// v2 only; stays empty for legacy chains.
    mmr: Mmr,
}

impl ChainHasher {
    /// A hasher whose next block is `next_height`; for v2, `mmr` must hold the accumulator over
    /// the blocks before it.
    pub fn new(scheme: Scheme, first_block: u64, next_height: u64, mmr: Mmr) -> Self {
        ChainHasher {
            scheme,
            first_block,
            next_height,
            mmr,
        }
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Hashes the block at `height` (which must be [`Self::next_height`]) from its records; `prior` reads an earlier block's consensus hash, and
    /// `on_node` sees each new accumulator node.
    pub fn hash_block(
        &mut self,
        height: u64,
        block_hash: Hash256,
        records: &[Vec<u8>],
        mut prior: impl FnMut(u64) -> Result<ConsensusHash, StoreError>,
        on_node: impl FnMut(u8, u64, &Hash256),
    ) -> Result<Hashed, StoreError> {
        if height != self.next_height
            || (self.scheme == Scheme::V2
                && height.checked_sub(self.first_block) != Some(self.mmr.leaf_count()))
        {
            return Err(StoreError::Inconsistent(format!(
                "hashing block {height}, but the hasher expects block {} with {} accumulator leaves",
                self.next_height,
                self.mmr.leaf_count()
            )));
        }
        let mismatch = |h: u64| {
            StoreError::Inconsistent(format!(
                "prior block {h} of block {height} has a consensus hash of another scheme"
            ))
        };
        let hashed = match self.scheme {
            Scheme::Legacy => {
                let ops_hash = legacy::ops_hash(records);
                let mut priors = Vec::with_capacity(64);
                for h in prior_heights(height, self.first_block) {
                    match prior(h)? {
                        ConsensusHash::Legacy(c) => priors.push(c),
                        ConsensusHash::V2(_) => return Err(mismatch(h)),
                    }
                }
                Hashed {
                    ops_hash,
                    consensus_hash: ConsensusHash::Legacy(legacy::consensus_hash(
                        &ops_hash, &priors,
                    )),
                    mmr_root: None,
                }
            }
            Scheme::V2 => {
                let ops_hash = v2::ops_hash(records);
                let mut priors = Vec::with_capacity(64);
                for h in prior_heights(height, self.first_block) {
                    match prior(h)? {
                        ConsensusHash::V2(c) => priors.push(c),
                        ConsensusHash::Legacy(_) => return Err(mismatch(h)),
                    }
                }
                let ch = v2::Commitment {
                    height,
                    block_hash,
                    ops_hash,
                    priors_hash: v2::priors_hash(&priors),
                    mmr_root: self.mmr.root(),
                }
                .consensus_hash();
                self.mmr.push(ch, on_node);
                Hashed {
                    ops_hash,
                    consensus_hash: ConsensusHash::V2(ch),
                    mmr_root: Some(self.mmr.root()),
                }
            }
        };
        self.next_height += 1;
        Ok(hashed)
    }
}
