//! The legacy SNV walk-back proof.
//!
//! The verifier trusts `CH(n)`. At height `k` (starting at `n`) the proof gives `ops_hash(k)` and
//! the priors of `k`; the verifier recomputes `CH(k)`, checks it against the value it trusts for
//! `k`, and thereby learns to trust each prior. It then jumps to the smallest prior height `>= m`
//! and repeats; at `m` the proof gives the records and priors of `m`, from which `CH(m)` is
//! recomputed and checked. The walk's heights depend only on `n` and `m` ([`walk_heights`]) and
//! it makes at most `floor(log2(n - m)) + 1` jumps.
//!
//! Body after the common header (see [`crate::proof`]):
//!
//! ```text
//! u8 steps                                       = number of jumps (walk heights minus one)
//! per step, for k = n, ... (heights before m):
//!     ops_hash(k)   32 bytes (display order)
//!     u8 count      = number of priors of k
//!     priors        16 bytes each, nearest first (CH(k-1), CH(k-3), ...)
//! u8 count, priors of m (as above)
//! u32 record count, then per record: u32 length, bytes
//! ```

use alloc::vec::Vec;

use super::{LegacyHash, consensus_hash, ops_hash};
use crate::history::{History, Retain};
use crate::priors::{prior_count, prior_heights};
use crate::proof::{ProofHeader, ProveError, Step, VerifiedBlock, VerifyError, read};
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::wire::{CountWidth, DecodeError, Reader, read_records, write_count_u8, write_records};

/// One step of the walk: what recomputes `CH(k)` for a height `k` above the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkStep {
    /// `ops_hash(k)`, display order.
    pub ops_hash: Hash256,
    /// The priors of `k`, nearest first.
    pub priors: Vec<LegacyHash>,
}

/// A legacy fast-query proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyProof {
    /// The common header.
    pub header: ProofHeader,
    /// One step per walk height above the target, starting at the trusted block.
    pub steps: Vec<WalkStep>,
    /// The priors of the target block, nearest first.
    pub target_priors: Vec<LegacyHash>,
    /// The target block's serialized records.
    pub records: Vec<Vec<u8>>,
}

/// The heights the walk visits from `trusted` down to `target`, both included
/// (`target <= trusted`; an empty walk otherwise).
///
/// ```
/// assert_eq!(vc_chash::legacy::proof::walk_heights(100, 90), [100, 93, 90]);
/// ```
pub fn walk_heights(trusted: u64, target: u64) -> Vec<u64> {
    if target > trusted {
        return Vec::new();
    }
    let mut heights = alloc::vec![trusted];
    let mut k = trusted;
    while k > target {
        // The largest offset 2^i - 1 that does not pass the target.
        let offset = match (k - target).checked_add(1) {
            Some(d1) => (1u64 << (u64::BITS - 1 - d1.leading_zeros())) - 1,
            None => u64::MAX,
        };
        k -= offset;
        heights.push(k);
    }
    heights
}

/// What [`LegacyProof::prove`] reads besides consensus hashes.
pub(crate) fn retention(trusted: u64, target: u64) -> Retain {
    let walk = walk_heights(trusted, target);
    Retain {
        ops_hashes: Some(walk.iter().copied().filter(|&h| h != target).collect()),
        block_hashes: Some(Default::default()),
        records: Some([target].into_iter().collect()),
        mmr_nodes: Some(Default::default()),
    }
}

fn priors_of<H: History>(
    history: &H,
    height: u64,
) -> Result<Vec<LegacyHash>, ProveError<H::Error>> {
    prior_heights(height, history.first_block())
        .map(|h| match read::ch(history, h)? {
            ConsensusHash::Legacy(c) => Ok(c),
            ConsensusHash::V2(_) => Err(ProveError::Missing {
                what: "legacy consensus hash",
                height: h,
            }),
        })
        .collect()
}

fn read_priors(r: &mut Reader<'_>) -> Result<Vec<LegacyHash>, DecodeError> {
    let n = r.count(CountWidth::U8, "prior", 64, 16)?;
    (0..n)
        .map(|_| r.array::<16>("prior consensus hash"))
        .collect()
}

fn write_priors(out: &mut Vec<u8>, priors: &[LegacyHash]) {
    write_count_u8(out, priors.len());
    for p in priors {
        out.extend_from_slice(p);
    }
}

impl LegacyProof {
    pub(crate) fn prove<H: History>(
        history: &H,
        header: ProofHeader,
    ) -> Result<Self, ProveError<H::Error>> {
        let walk = walk_heights(header.trusted, header.target);
        let mut steps = Vec::with_capacity(walk.len().saturating_sub(1));
        for &k in &walk[..walk.len().saturating_sub(1)] {
            steps.push(WalkStep {
                ops_hash: read::required(history.ops_hash(k), "ops hash", k)?,
                priors: priors_of(history, k)?,
            });
        }
        Ok(LegacyProof {
            header,
            steps,
            target_priors: priors_of(history, header.target)?,
            records: read::records(history, header.target)?,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        write_count_u8(out, self.steps.len());
        for s in &self.steps {
            out.extend_from_slice(&s.ops_hash.0);
            write_priors(out, &s.priors);
        }
        write_priors(out, &self.target_priors);
        write_records(out, &self.records);
    }

    pub(crate) fn decode_body(
        header: ProofHeader,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let n = r.count(CountWidth::U8, "walk step", 65, 33)?;
        let mut steps = Vec::with_capacity(n);
        for _ in 0..n {
            let ops_hash = r.hash("ops hash")?;
            steps.push(WalkStep {
                ops_hash,
                priors: read_priors(r)?,
            });
        }
        Ok(LegacyProof {
            header,
            steps,
            target_priors: read_priors(r)?,
            records: read_records(r)?,
        })
    }

    /// Verifies the walk against the trusted `CH(n)`; the header was checked by the caller.
    pub(crate) fn verify(&self, trusted_ch: &LegacyHash) -> Result<VerifiedBlock, VerifyError> {
        let ProofHeader {
            first_block,
            target,
            ..
        } = self.header;
        let walk = walk_heights(self.header.trusted, target);
        if self.steps.len() + 1 != walk.len() {
            return Err(VerifyError::Shape {
                step: Step::Walk {
                    index: 0,
                    height: self.header.trusted,
                },
                what: "walk steps",
                expected: walk.len() - 1,
                found: self.steps.len(),
            });
        }
        let check_priors = |step: Step, height: u64, priors: &[LegacyHash]| {
            let expected = prior_count(height, first_block);
            if priors.len() == expected {
                Ok(())
            } else {
                Err(VerifyError::Shape {
                    step,
                    what: "priors",
                    expected,
                    found: priors.len(),
                })
            }
        };
        let mut expected_ch = *trusted_ch;
        for (index, (step, pair)) in self.steps.iter().zip(walk.windows(2)).enumerate() {
            let (k, next) = (pair[0], pair[1]);
            let at = Step::Walk { index, height: k };
            check_priors(at, k, &step.priors)?;
            if consensus_hash(&step.ops_hash, &step.priors) != expected_ch {
                return Err(VerifyError::HashMismatch { step: at });
            }
            // `next` is one of k's priors; find its position in the nearest-first list.
            let position = prior_heights(k, first_block).position(|h| h == next);
            expected_ch = match position.and_then(|i| step.priors.get(i)) {
                Some(c) => *c,
                None => {
                    return Err(VerifyError::Shape {
                        step: at,
                        what: "prior at the next walk height",
                        expected: 1,
                        found: 0,
                    });
                }
            };
        }
        let at = Step::Target { height: target };
        check_priors(at, target, &self.target_priors)?;
        // The scheme sorts the records' digests and pads odd Merkle rows with a copy of the
        // last node, so a repeated record can leave the root unchanged (CVE-2012-2459): refuse
        // repeats outright. The order is not committed either, so return the records in the
        // order the hash sorts them: a server that reorders them changes nothing.
        let mut records: Vec<([u8; 32], &Vec<u8>)> = self
            .records
            .iter()
            .map(|r| (super::record_digest(r), r))
            .collect();
        records.sort_unstable_by_key(|r| r.0);
        if records.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(VerifyError::RepeatedRecord { height: target });
        }
        let ops = ops_hash(&self.records);
        let ch = consensus_hash(&ops, &self.target_priors);
        if ch != expected_ch {
            return Err(VerifyError::HashMismatch { step: at });
        }
        Ok(VerifiedBlock {
            scheme: Scheme::Legacy,
            height: target,
            consensus_hash: ConsensusHash::Legacy(ch),
            ops_hash: ops,
            block_hash: None,
            state_root: None,
            records: records.into_iter().map(|(_, r)| r.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_is_logarithmic() {
        for n in 0..600u64 {
            for m in 0..=n {
                let w = walk_heights(n, m);
                assert_eq!(w.first(), Some(&n));
                assert_eq!(w.last(), Some(&m));
                let jumps = w.len() - 1;
                if n > m {
                    let bound = (63 - (n - m).leading_zeros()) as usize + 1;
                    assert!(jumps <= bound, "n={n} m={m} jumps={jumps}");
                } else {
                    assert_eq!(jumps, 0);
                }
                // Every jump lands on a prior of the block it leaves.
                for pair in w.windows(2) {
                    assert!(prior_heights(pair[0], m).any(|h| h == pair[1]));
                }
            }
        }
        assert_eq!(walk_heights(u64::MAX, 0).len(), 2);
        assert!(walk_heights(1, 2).is_empty());
    }
}
