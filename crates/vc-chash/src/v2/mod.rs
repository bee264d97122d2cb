//! The v2 consensus hash: the default for new applications (and, with a state root, v3).
//!
//! Specified in `docs/consensus-hash-v2.md`; in short (`H` is SHA-256, `u64` is big-endian, each
//! hash input starts with a one-byte domain tag):
//!
//! ```text
//! leaf(r)        = H(0x00 || r)                             for each record r, in block order
//! node(a, b)     = H(0x01 || a || b)                        ops tree (RFC 6962 shape)
//! ops_hash       = H(0x02 || u64 count || ops_root)         ops_root = 32 zero bytes if count = 0
//! priors_hash(k) = H(0x06 || CH(k-1) || CH(k-3) || CH(k-7) || ...)   heights >= F
//! mmr_root(k)    = root of the Merkle Mountain Range over CH(F), ..., CH(k-1) (see [`mmr`])
//! CH(k)          = H(0x07 || u64 k || block_hash(k) || ops_hash(k) || priors_hash(k) || mmr_root(k))
//! ```
//!
//! v3 (`docs/consensus-hash-v3.md`) is v2 with one more field, the state root
//! ([`crate::state`]), and its own tag: `CH(k) = H(0x0C || ... || mmr_root(k) || state_root(k))`.
//! Everything else, the accumulator included, is shared.
//!
//! `block_hash` is in Bitcoin's internal byte order (the double SHA-256 of the header as
//! computed, not as displayed).

pub mod mmr;
pub mod proof;

use alloc::vec::Vec;

use crate::digest::{Tagged, tagged_pair};
use crate::types::Hash256;

/// Domain tags: the first byte of every SHA-256 input in the v2 scheme.
pub mod tag {
    /// A record leaf of the ops tree.
    pub const RECORD: u8 = 0x00;
    /// An inner node of the ops tree.
    pub const OPS_NODE: u8 = 0x01;
    /// A block's ops hash (record count and ops-tree root).
    pub const OPS_HASH: u8 = 0x02;
    /// An inner node of a mountain of the MMR.
    pub const MMR_NODE: u8 = 0x03;
    /// A bagging step joining MMR peaks.
    pub const MMR_BAG: u8 = 0x04;
    /// The MMR root (leaf count and bagged peaks).
    pub const MMR_ROOT: u8 = 0x05;
    /// A block's priors hash.
    pub const PRIORS: u8 = 0x06;
    /// A block's consensus hash.
    pub const CONSENSUS: u8 = 0x07;
}

/// The leaf hash of one record: `H(0x00 || record)`.
pub fn record_leaf(record: &[u8]) -> Hash256 {
    let mut t = Tagged::new(tag::RECORD);
    t.update(record);
    Hash256(t.finish())
}

/// The root of the ops tree over leaf hashes in block order (RFC 6962 shape: the left subtree
/// holds the largest power of two of leaves smaller than the total; nothing is duplicated).
/// Zero leaves give 32 zero bytes.
pub fn ops_root(leaves: &[Hash256]) -> Hash256 {
    let mut row: Vec<Hash256> = leaves.to_vec();
    if row.is_empty() {
        return Hash256::ZERO;
    }
    // Pairing bottom-up and promoting an odd last node unchanged yields the RFC 6962 tree.
    while row.len() > 1 {
        let mut next = Vec::with_capacity(row.len().div_ceil(2));
        for pair in row.chunks(2) {
            match pair {
                [a, b] => next.push(Hash256(tagged_pair(tag::OPS_NODE, &a.0, &b.0))),
                [a] => next.push(*a),
                _ => {}
            }
        }
        row = next;
    }
    row[0]
}

/// The ops hash of a block: `H(0x02 || u64 count || ops_root)` over its records in block order.
pub fn ops_hash<R: AsRef<[u8]>>(records: &[R]) -> Hash256 {
    let leaves: Vec<Hash256> = records.iter().map(|r| record_leaf(r.as_ref())).collect();
    ops_hash_from_leaves(&leaves)
}

/// The ops hash from record leaf hashes already computed.
pub fn ops_hash_from_leaves(leaves: &[Hash256]) -> Hash256 {
    let root = ops_root(leaves);
    let mut t = Tagged::new(tag::OPS_HASH);
    t.u64(leaves.len() as u64).update(&root.0);
    Hash256(t.finish())
}

/// The priors hash: `H(0x06 || CH(k-1) || CH(k-3) || ...)`, nearest prior first, as
/// [`crate::priors::prior_heights`] yields them.
pub fn priors_hash<'a>(priors: impl IntoIterator<Item = &'a Hash256>) -> Hash256 {
    let mut t = Tagged::new(tag::PRIORS);
    for p in priors {
        t.update(&p.0);
    }
    Hash256(t.finish())
}

/// Everything a v2 consensus hash commits to: the preimage of `CH(height)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commitment {
    /// The block's height.
    pub height: u64,
    /// The Bitcoin block hash, internal byte order.
    pub block_hash: Hash256,
    /// The block's ops hash ([`ops_hash`]).
    pub ops_hash: Hash256,
    /// The block's priors hash ([`priors_hash`]).
    pub priors_hash: Hash256,
    /// The MMR root over the consensus hashes of all earlier blocks of the application.
    pub mmr_root: Hash256,
    /// v3 only: the root of the application's state after the block ([`crate::state`]).
    /// `None` makes a v2 commitment, `Some` a v3 one.
    pub state_root: Option<Hash256>,
}

impl Commitment {
    /// v2: `CH = H(0x07 || u64 height || block_hash || ops_hash || priors_hash || mmr_root)`;
    /// v3: `CH = H(0x0C || u64 height || block_hash || ops_hash || priors_hash || mmr_root ||
    /// state_root)`.
    pub fn consensus_hash(&self) -> Hash256 {
        let tag = match self.state_root {
            None => tag::CONSENSUS,
            Some(_) => crate::state::tag::CONSENSUS_V3,
        };
        let mut t = Tagged::new(tag);
        t.u64(self.height)
            .update(&self.block_hash.0)
            .update(&self.ops_hash.0)
            .update(&self.priors_hash.0)
            .update(&self.mmr_root.0);
        if let Some(state_root) = &self.state_root {
            t.update(&state_root.0);
        }
        Hash256(t.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc6962(leaves: &[Hash256]) -> Hash256 {
        match leaves.len() {
            0 => Hash256::ZERO,
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                let l = rfc6962(&leaves[..k]);
                let r = rfc6962(&leaves[k..]);
                Hash256(tagged_pair(tag::OPS_NODE, &l.0, &r.0))
            }
        }
    }

    #[test]
    fn ops_root_has_rfc6962_shape() {
        let leaves: Vec<Hash256> = (0..40u8).map(|i| record_leaf(&[i])).collect();
        for n in 0..leaves.len() {
            assert_eq!(ops_root(&leaves[..n]), rfc6962(&leaves[..n]), "n = {n}");
        }
    }

    #[test]
    fn order_and_count_are_committed() {
        let a = ops_hash(&[b"a".as_slice(), b"b"]);
        let b = ops_hash(&[b"b".as_slice(), b"a"]);
        assert_ne!(a, b);
        // A one-record block whose record is the concatenation of two leaves is not confused
        // with the two-record block.
        let l1 = record_leaf(b"a");
        let l2 = record_leaf(b"b");
        let mut cat = Vec::new();
        cat.extend_from_slice(&l1.0);
        cat.extend_from_slice(&l2.0);
        assert_ne!(ops_hash(&[cat]), a);
        assert_ne!(ops_hash::<&[u8]>(&[]), ops_hash(&[b"".as_slice()]));
    }
}
