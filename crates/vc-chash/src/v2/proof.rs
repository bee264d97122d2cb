//! The v2 accumulator proof.
//!
//! The proof carries the target block's records and the rest of its commitment, from which the
//! verifier recomputes `CH(m)`. If `m < n` it also carries the trusted block's commitment minus
//! its MMR root, and the MMR membership path of leaf `m - F` in the MMR of `n - F` leaves; the
//! verifier recomputes that root from `CH(m)` and the path, then `CH(n)`, and compares it with
//! the trusted value.
//!
//! Body after the common header (see [`crate::proof`]):
//!
//! ```text
//! target block_hash, priors_hash, mmr_root        3 x 32 bytes
//! u32 record count, then per record: u32 length, bytes
//! only if target < trusted:
//!     trusted block_hash, ops_hash, priors_hash   3 x 32 bytes
//!     u8 count, siblings                          32 bytes each, bottom-up
//!     u8 count, left peaks                        32 bytes each, left to right
//!     u8 flag (0 or 1), right bag                 32 bytes if the flag is 1
//! ```

use alloc::vec::Vec;

use super::mmr::{self, MmrPath};
use super::{Commitment, ops_hash, priors_hash};
use crate::history::{History, Retain};
use crate::priors::prior_heights;
use crate::proof::{ProofHeader, ProveError, Step, VerifiedBlock, VerifyError, read};
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::wire::{CountWidth, DecodeError, Reader, read_records, write_count_u8, write_records};

/// The trusted block's commitment (without its MMR root, which the verifier recomputes) and
/// the path from the target's leaf to that root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedLink {
    /// `block_hash(n)`.
    pub block_hash: Hash256,
    /// `ops_hash(n)`.
    pub ops_hash: Hash256,
    /// `priors_hash(n)`.
    pub priors_hash: Hash256,
    /// The MMR membership path of leaf `m - F` among `n - F` leaves.
    pub path: MmrPath,
}

/// A v2 fast-query proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Proof {
    /// The common header.
    pub header: ProofHeader,
    /// `block_hash(m)`.
    pub block_hash: Hash256,
    /// `priors_hash(m)`.
    pub priors_hash: Hash256,
    /// `mmr_root(m)`: the MMR root over `CH(F) .. CH(m-1)`.
    pub mmr_root: Hash256,
    /// The target block's records, in block order.
    pub records: Vec<Vec<u8>>,
    /// Present exactly when `m < n`.
    pub link: Option<TrustedLink>,
}

/// What [`V2Proof::prove`] reads besides consensus hashes.
pub(crate) fn retention(first_block: u64, trusted: u64, target: u64) -> Retain {
    let mut nodes: alloc::collections::BTreeSet<(u8, u64)> =
        mmr::peak_positions(target.saturating_sub(first_block)).collect();
    let mut ops = alloc::collections::BTreeSet::new();
    if first_block <= target && target < trusted {
        ops.insert(trusted);
        if let Some(p) = mmr::path_positions(trusted - first_block, target - first_block) {
            nodes.extend(p.siblings);
            nodes.extend(p.left_peaks);
            nodes.extend(p.right_peaks);
        }
    }
    Retain {
        ops_hashes: Some(ops),
        block_hashes: Some([target, trusted].into_iter().collect()),
        records: Some([target].into_iter().collect()),
        mmr_nodes: Some(nodes),
    }
}

fn node<H: History>(h: &H, (level, index): (u8, u64)) -> Result<Hash256, ProveError<H::Error>> {
    h.mmr_node(level, index)
        .map_err(ProveError::History)?
        .ok_or(ProveError::MissingNode { level, index })
}

fn nodes<H: History>(h: &H, positions: &[(u8, u64)]) -> Result<Vec<Hash256>, ProveError<H::Error>> {
    positions.iter().map(|&p| node(h, p)).collect()
}

fn priors_hash_of<H: History>(h: &H, height: u64) -> Result<Hash256, ProveError<H::Error>> {
    let priors = prior_heights(height, h.first_block())
        .map(|p| match read::ch(h, p)? {
            ConsensusHash::V2(c) => Ok(c),
            ConsensusHash::Legacy(_) => Err(ProveError::Missing {
                what: "v2 consensus hash",
                height: p,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(priors_hash(&priors))
}

fn hashes(r: &mut Reader<'_>, what: &'static str, max: u64) -> Result<Vec<Hash256>, DecodeError> {
    let n = r.count(CountWidth::U8, what, max, 32)?;
    (0..n).map(|_| r.hash(what)).collect()
}

fn write_hashes(out: &mut Vec<u8>, hashes: &[Hash256]) {
    write_count_u8(out, hashes.len());
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
}

impl V2Proof {
    pub(crate) fn prove<H: History>(
        history: &H,
        header: ProofHeader,
    ) -> Result<Self, ProveError<H::Error>> {
        let ProofHeader {
            first_block: f,
            trusted: n,
            target: m,
            ..
        } = header;
        let peaks: Vec<(u8, u64)> = mmr::peak_positions(m - f).collect();
        let mmr_root = mmr::root_from_bag(m - f, mmr::bag_peaks(&nodes(history, &peaks)?).as_ref());
        let link = if m < n {
            let pos = mmr::path_positions(n - f, m - f).ok_or(ProveError::InvalidRange {
                first_block: f,
                trusted: n,
                target: m,
            })?;
            Some(TrustedLink {
                block_hash: read::required(history.block_hash(n), "block hash", n)?,
                ops_hash: read::required(history.ops_hash(n), "ops hash", n)?,
                priors_hash: priors_hash_of(history, n)?,
                path: MmrPath {
                    siblings: nodes(history, &pos.siblings)?,
                    left_peaks: nodes(history, &pos.left_peaks)?,
                    right_bag: mmr::bag_peaks(&nodes(history, &pos.right_peaks)?),
                },
            })
        } else {
            None
        };
        Ok(V2Proof {
            header,
            block_hash: read::required(history.block_hash(m), "block hash", m)?,
            priors_hash: priors_hash_of(history, m)?,
            mmr_root,
            records: read::records(history, m)?,
            link,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.block_hash.0);
        out.extend_from_slice(&self.priors_hash.0);
        out.extend_from_slice(&self.mmr_root.0);
        write_records(out, &self.records);
        if let Some(link) = &self.link {
            out.extend_from_slice(&link.block_hash.0);
            out.extend_from_slice(&link.ops_hash.0);
            out.extend_from_slice(&link.priors_hash.0);
            write_hashes(out, &link.path.siblings);
            write_hashes(out, &link.path.left_peaks);
            match &link.path.right_bag {
                Some(b) => {
                    out.push(1);
                    out.extend_from_slice(&b.0);
                }
                None => out.push(0),
            }
        }
    }

    pub(crate) fn decode_body(
        header: ProofHeader,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let block_hash = r.hash("target block hash")?;
        let priors_hash = r.hash("target priors hash")?;
        let mmr_root = r.hash("target accumulator root")?;
        let records = read_records(r)?;
        let link = if header.target < header.trusted {
            let block_hash = r.hash("trusted block hash")?;
            let ops_hash = r.hash("trusted ops hash")?;
            let priors_hash = r.hash("trusted priors hash")?;
            let siblings = hashes(r, "path sibling", 63)?;
            let left_peaks = hashes(r, "left peak", 63)?;
            let right_bag = if r.flag("right bag flag")? {
                Some(r.hash("right bag")?)
            } else {
                None
            };
            Some(TrustedLink {
                block_hash,
                ops_hash,
                priors_hash,
                path: MmrPath {
                    siblings,
                    left_peaks,
                    right_bag,
                },
            })
        } else {
            None
        };
        Ok(V2Proof {
            header,
            block_hash,
            priors_hash,
            mmr_root,
            records,
            link,
        })
    }

    /// Verifies against the trusted `CH(n)`; the header was checked by the caller.
    pub(crate) fn verify(&self, trusted_ch: &Hash256) -> Result<VerifiedBlock, VerifyError> {
        let ProofHeader {
            first_block: f,
            trusted: n,
            target: m,
            ..
        } = self.header;
        let ops = ops_hash(&self.records);
        let ch_m = Commitment {
            height: m,
            block_hash: self.block_hash,
            ops_hash: ops,
            priors_hash: self.priors_hash,
            mmr_root: self.mmr_root,
        }
        .consensus_hash();
        match &self.link {
            None if m == n => {
                if ch_m != *trusted_ch {
                    return Err(VerifyError::HashMismatch {
                        step: Step::Target { height: m },
                    });
                }
            }
            Some(link) if m < n => {
                let root = mmr::root_from_path(n - f, m - f, &ch_m, &link.path)
                    .map_err(|e| VerifyError::from_path_shape(n, e))?;
                let ch_n = Commitment {
                    height: n,
                    block_hash: link.block_hash,
                    ops_hash: link.ops_hash,
                    priors_hash: link.priors_hash,
                    mmr_root: root,
                }
                .consensus_hash();
                if ch_n != *trusted_ch {
                    return Err(VerifyError::HashMismatch {
                        step: Step::Accumulator { height: n },
                    });
                }
            }
            _ => {
                return Err(VerifyError::Shape {
                    step: Step::Accumulator { height: n },
                    what: "trusted-block links",
                    expected: usize::from(m < n),
                    found: usize::from(self.link.is_some()),
                });
            }
        }
        Ok(VerifiedBlock {
            scheme: Scheme::V2,
            height: m,
            consensus_hash: ConsensusHash::V2(ch_m),
            ops_hash: ops,
            block_hash: Some(self.block_hash),
            records: self.records.clone(),
        })
    }
}
