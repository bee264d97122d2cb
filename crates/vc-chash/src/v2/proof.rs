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
//! v3 only: target state_root                      32 bytes
//! u32 record count, then per record: u32 length, bytes
//! only if target < trusted:
//!     trusted block_hash, ops_hash, priors_hash   3 x 32 bytes
//!     v3 only: trusted state_root                 32 bytes
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
    /// v3: `state_root(n)`.
    pub state_root: Option<Hash256>,
    /// The MMR membership path of leaf `m - F` among `n - F` leaves.
    pub path: MmrPath,
}

/// A v2 (or v3) fast-query proof.
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
    /// v3: `state_root(m)`.
    pub state_root: Option<Hash256>,
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

/// v3: the state root at `height`, which the proof must carry; `None` for v2.
fn state_root_of<H: History>(h: &H, height: u64) -> Result<Option<Hash256>, ProveError<H::Error>> {
    if !h.scheme().commits_state() {
        return Ok(None);
    }
    read::required(h.state_root(height), "state root", height).map(Some)
}

pub(crate) fn priors_hash_of<H: History>(
    h: &H,
    height: u64,
) -> Result<Hash256, ProveError<H::Error>> {
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

/// `mmr_root(m - F)`: the accumulator root block `m` commits, from the stored peaks.
pub(crate) fn mmr_root_at<H: History>(
    history: &H,
    first_block: u64,
    target: u64,
) -> Result<Hash256, ProveError<H::Error>> {
    let leaves = target - first_block;
    let peaks: Vec<(u8, u64)> = mmr::peak_positions(leaves).collect();
    Ok(mmr::root_from_bag(
        leaves,
        mmr::bag_peaks(&nodes(history, &peaks)?).as_ref(),
    ))
}

/// The link from block `m` to the trusted block `n`, or `None` when they are the same block.
pub(crate) fn trusted_link<H: History>(
    history: &H,
    first_block: u64,
    trusted: u64,
    target: u64,
) -> Result<Option<TrustedLink>, ProveError<H::Error>> {
    let (f, n, m) = (first_block, trusted, target);
    if m >= n {
        return Ok(None);
    }
    let pos = mmr::path_positions(n - f, m - f).ok_or(ProveError::InvalidRange {
        first_block: f,
        trusted: n,
        target: m,
    })?;
    Ok(Some(TrustedLink {
        block_hash: read::required(history.block_hash(n), "block hash", n)?,
        ops_hash: read::required(history.ops_hash(n), "ops hash", n)?,
        priors_hash: priors_hash_of(history, n)?,
        state_root: state_root_of(history, n)?,
        path: MmrPath {
            siblings: nodes(history, &pos.siblings)?,
            left_peaks: nodes(history, &pos.left_peaks)?,
            right_bag: mmr::bag_peaks(&nodes(history, &pos.right_peaks)?),
        },
    }))
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
        let mmr_root = mmr_root_at(history, f, m)?;
        let link = trusted_link(history, f, n, m)?;
        Ok(V2Proof {
            header,
            block_hash: read::required(history.block_hash(m), "block hash", m)?,
            priors_hash: priors_hash_of(history, m)?,
            mmr_root,
            state_root: state_root_of(history, m)?,
            records: read::records(history, m)?,
            link,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.block_hash.0);
        out.extend_from_slice(&self.priors_hash.0);
        out.extend_from_slice(&self.mmr_root.0);
        if let Some(root) = &self.state_root {
            out.extend_from_slice(&root.0);
        }
        write_records(out, &self.records);
        if let Some(link) = &self.link {
            link.encode(out);
        }
    }
}

impl TrustedLink {
    /// Writes the link (after a proof's target-block fields).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.block_hash.0);
        out.extend_from_slice(&self.ops_hash.0);
        out.extend_from_slice(&self.priors_hash.0);
        if let Some(root) = &self.state_root {
            out.extend_from_slice(&root.0);
        }
        write_hashes(out, &self.path.siblings);
        write_hashes(out, &self.path.left_peaks);
        match &self.path.right_bag {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&b.0);
            }
            None => out.push(0),
        }
    }

    /// Reads a link written by [`TrustedLink::encode`], with a state root when `scheme` commits
    /// one.
    pub(crate) fn decode(r: &mut Reader<'_>, scheme: Scheme) -> Result<Self, DecodeError> {
        let block_hash = r.hash("trusted block hash")?;
        let ops_hash = r.hash("trusted ops hash")?;
        let priors_hash = r.hash("trusted priors hash")?;
        let state_root = if scheme.commits_state() {
            Some(r.hash("trusted state root")?)
        } else {
            None
        };
        let siblings = hashes(r, "path sibling", 63)?;
        let left_peaks = hashes(r, "left peak", 63)?;
        let right_bag = if r.flag("right bag flag")? {
            Some(r.hash("right bag")?)
        } else {
            None
        };
        Ok(TrustedLink {
            block_hash,
            ops_hash,
            priors_hash,
            state_root,
            path: MmrPath {
                siblings,
                left_peaks,
                right_bag,
            },
        })
    }

    /// Checks that `ch_m`, the recomputed consensus hash of block `m`, leads through this link
    /// to the trusted `CH(n)`.
    pub(crate) fn verify(
        &self,
        first_block: u64,
        trusted: u64,
        target: u64,
        ch_m: &Hash256,
        trusted_ch: &Hash256,
    ) -> Result<(), VerifyError> {
        let (f, n, m) = (first_block, trusted, target);
        let root = mmr::root_from_path(n - f, m - f, ch_m, &self.path)
            .map_err(|e| VerifyError::from_path_shape(n, e))?;
        let ch_n = Commitment {
            height: n,
            block_hash: self.block_hash,
            ops_hash: self.ops_hash,
            priors_hash: self.priors_hash,
            mmr_root: root,
            state_root: self.state_root,
        }
        .consensus_hash();
        if ch_n != *trusted_ch {
            return Err(VerifyError::HashMismatch {
                step: Step::Accumulator { height: n },
            });
        }
        Ok(())
    }
}

impl V2Proof {
    pub(crate) fn decode_body(
        header: ProofHeader,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let block_hash = r.hash("target block hash")?;
        let priors_hash = r.hash("target priors hash")?;
        let mmr_root = r.hash("target accumulator root")?;
        let state_root = if header.scheme.commits_state() {
            Some(r.hash("target state root")?)
        } else {
            None
        };
        let records = read_records(r)?;
        let link = if header.target < header.trusted {
            Some(TrustedLink::decode(r, header.scheme)?)
        } else {
            None
        };
        Ok(V2Proof {
            header,
            block_hash,
            priors_hash,
            mmr_root,
            state_root,
            records,
            link,
        })
    }

    /// Verifies against the trusted `CH(n)`; the header was checked by the caller.
    pub(crate) fn verify(&self, trusted_ch: &Hash256) -> Result<VerifiedBlock, VerifyError> {
        let ProofHeader {
            scheme,
            first_block: f,
            trusted: n,
            target: m,
        } = self.header;
        let ch_m = target_commitment(
            scheme,
            m,
            self.block_hash,
            ops_hash(&self.records),
            self.priors_hash,
            self.mmr_root,
            self.state_root,
        )?;
        check_link(
            f,
            n,
            m,
            &ch_m.consensus_hash(),
            self.link.as_ref(),
            trusted_ch,
        )?;
        Ok(VerifiedBlock {
            scheme,
            height: m,
            consensus_hash: ConsensusHash::V2(ch_m.consensus_hash()),
            ops_hash: ch_m.ops_hash,
            block_hash: Some(self.block_hash),
            state_root: self.state_root,
            records: self.records.clone(),
        })
    }
}

/// Block `m`'s commitment, after checking that it has a state root exactly when the scheme
/// commits one.
pub(crate) fn target_commitment(
    scheme: Scheme,
    height: u64,
    block_hash: Hash256,
    ops_hash: Hash256,
    priors_hash: Hash256,
    mmr_root: Hash256,
    state_root: Option<Hash256>,
) -> Result<Commitment, VerifyError> {
    if state_root.is_some() != scheme.commits_state() {
        return Err(VerifyError::Shape {
            step: Step::Target { height },
            what: "state roots",
            expected: usize::from(scheme.commits_state()),
            found: usize::from(state_root.is_some()),
        });
    }
    Ok(Commitment {
        height,
        block_hash,
        ops_hash,
        priors_hash,
        mmr_root,
        state_root,
    })
}

/// Checks that `ch_m` is the trusted hash (`m = n`, no link) or leads to it through `link`
/// (`m < n`).
pub(crate) fn check_link(
    first_block: u64,
    trusted: u64,
    target: u64,
    ch_m: &Hash256,
    link: Option<&TrustedLink>,
    trusted_ch: &Hash256,
) -> Result<(), VerifyError> {
    match link {
        None if target == trusted => {
            if ch_m != trusted_ch {
                return Err(VerifyError::HashMismatch {
                    step: Step::Target { height: target },
                });
            }
            Ok(())
        }
        Some(link) if target < trusted => {
            link.verify(first_block, trusted, target, ch_m, trusted_ch)
        }
        _ => Err(VerifyError::Shape {
            step: Step::Accumulator { height: trusted },
            what: "trusted-block links",
            expected: usize::from(target < trusted),
            found: usize::from(link.is_some()),
        }),
    }
}
