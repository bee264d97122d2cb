//! The legacy consensus hash (virtualchain v1), byte-exact with Blockstack's Python code.
//!
//! Notation: `D(x) = SHA256(SHA256(x))`, `H160(x) = RIPEMD160(SHA256(x))`, `rev` reverses bytes.
//!
//! * **Ops hash** of a block: the digests `D(s_i)` of its serialized records (see [`record`]),
//!   or the single `D("")` when there are none, sorted, then a Bitcoin-style Merkle tree
//!   (parent `D(left || right)`, an odd row duplicates its last node, one leaf is the root) over
//!   the reversed digests. The ops hash is the reversed root: 32 bytes, shown as 64 hex digits.
//! * **Consensus hash** of block `k`: the priors `CH(k - 1), CH(k - 3), CH(k - 7), ...` (see
//!   [`crate::priors`]) and the ops hash, sorted as hex strings (equivalently as bytes), put
//!   through the same Merkle tree over reversed values; the first 16 bytes of `H160(rev(root))`.
//!
//! The weaknesses of this scheme (128-bit output, sorted leaves, no domain separation, no block
//! hash binding, O(log² n) proofs) are why new applications use [`crate::v2`].

pub mod proof;
mod py27_float;
pub mod record;

use alloc::vec::Vec;

use crate::digest::{dsha256, dsha256_pair, hash160};
use crate::types::Hash256;

/// A legacy consensus hash: 16 bytes.
pub type LegacyHash = [u8; 16];

/// `D("")`, the ops hash of a block without records.
fn empty_digest() -> [u8; 32] {
    dsha256(b"")
}

/// A Merkle node or leaf of at most 32 bytes (legacy leaves are 16 or 32 bytes).
#[derive(Clone, Copy)]
struct Node {
    buf: [u8; 32],
    len: usize,
}

impl Node {
    fn reversed(bytes: &[u8]) -> Node {
        let mut buf = [0u8; 32];
        let len = bytes.len().min(32);
        for (dst, src) in buf[..len].iter_mut().zip(bytes[..len].iter().rev()) {
            *dst = *src;
        }
        Node { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Bitcoin-style Merkle root over `leaves` (at least one): an odd row duplicates its last node.
fn merkle_root(mut row: Vec<Node>) -> Node {
    while row.len() > 1 {
        if row.len() % 2 == 1
            && let Some(&last) = row.last()
        {
            row.push(last);
        }
        let next: Vec<Node> = row
            .chunks_exact(2)
            .map(|pair| Node {
                buf: dsha256_pair(pair[0].bytes(), pair[1].bytes()),
                len: 32,
            })
            .collect();
        row = next;
    }
    row.first().copied().unwrap_or(Node {
        buf: [0; 32],
        len: 32,
    })
}

/// The digest `D(record)` of one serialized record, as the Python code hexlifies it.
pub fn record_digest(record: &[u8]) -> [u8; 32] {
    dsha256(record)
}

/// The ops hash of a block from its serialized records (in any order: the scheme sorts them).
///
/// ```
/// let h = vc_chash::legacy::ops_hash::<&[u8]>(&[]);
/// assert_eq!(h.to_string(), "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456");
/// ```
pub fn ops_hash<R: AsRef<[u8]>>(records: &[R]) -> Hash256 {
    let mut digests: Vec<[u8; 32]> = records.iter().map(|r| dsha256(r.as_ref())).collect();
    ops_hash_from_digests(&mut digests)
}

/// The ops hash from record digests `D(s_i)` already computed (sorted in place).
pub fn ops_hash_from_digests(digests: &mut Vec<[u8; 32]>) -> Hash256 {
    if digests.is_empty() {
        digests.push(empty_digest());
    }
    digests.sort_unstable();
    let root = merkle_root(digests.iter().map(|d| Node::reversed(d)).collect());
    let mut out = [0u8; 32];
    out.copy_from_slice(Node::reversed(root.bytes()).bytes());
    Hash256(out)
}

/// The consensus hash from a block's ops hash and its priors (in any order: the scheme sorts
/// them together with the ops hash).
pub fn consensus_hash(ops_hash: &Hash256, priors: &[LegacyHash]) -> LegacyHash {
    let mut items: Vec<&[u8]> = Vec::with_capacity(priors.len() + 1);
    items.extend(priors.iter().map(|p| &p[..]));
    items.push(&ops_hash.0[..]);
    // Lowercase hex strings sort as their bytes do, with a shorter prefix first.
    items.sort_unstable();
    let root = merkle_root(items.iter().map(|x| Node::reversed(x)).collect());
    let digest = hash160(Node::reversed(root.bytes()).bytes());
    let mut ch = [0u8; 16];
    ch.copy_from_slice(&digest[..16]);
    ch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use alloc::string::ToString;

    #[test]
    fn design_vectors() {
        let ops = ops_hash::<&[u8]>(&[]);
        assert_eq!(
            ops.to_string(),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
        assert_eq!(
            hex::encode(&consensus_hash(&ops, &[])),
            "2a9148d8b13939723d2aca16c75c6d68"
        );
        let ops = ops_hash(&[b"hello"]);
        assert_eq!(
            ops.to_string(),
            "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
        );
        assert_eq!(
            hex::encode(&consensus_hash(&ops, &[[0x11; 16], [0x00; 16]])),
            "84db60b70fc30c46dfd8315f110d830f"
        );
    }

    #[test]
    fn order_does_not_matter() {
        let a = ops_hash(&[b"abc".as_slice(), b"def", b"x"]);
        let b = ops_hash(&[b"x".as_slice(), b"abc", b"def"]);
        assert_eq!(a, b);
        let p = [[1u8; 16], [2u8; 16], [3u8; 16]];
        let q = [[3u8; 16], [1u8; 16], [2u8; 16]];
        assert_eq!(consensus_hash(&a, &p), consensus_hash(&a, &q));
    }
}
