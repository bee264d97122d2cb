//! Thin wrappers over the hash functions both schemes use.

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// `SHA256(x)`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `SHA256(SHA256(x))`, Bitcoin's double hash.
pub(crate) fn dsha256(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

/// SHA-256's initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The padding block that follows a 64-byte message: 0x80, zeros, bit length 512.
const PAD_64: [u8; 64] = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    b[62] = 0x02;
    b
};

fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// `SHA256(SHA256(x))` for a 64-byte `x`: exactly three compressions, no buffering. This is the
/// inner loop of legacy Merkle trees, where both children are 32-byte nodes.
fn dsha256_64(block: &[u8; 64]) -> [u8; 32] {
    let mut state = IV;
    sha2::block_api::compress256(&mut state, &[*block, PAD_64]);
    // The 32-byte first digest, padded: 0x80, zeros, bit length 256.
    let mut second = [0u8; 64];
    second[..32].copy_from_slice(&state_bytes(&state));
    second[32] = 0x80;
    second[62] = 0x01;
    let mut state2 = IV;
    sha2::block_api::compress256(&mut state2, &[second]);
    state_bytes(&state2)
}

/// `SHA256(SHA256(a || b))` without allocating.
pub(crate) fn dsha256_pair(a: &[u8], b: &[u8]) -> [u8; 32] {
    if a.len() == 32 && b.len() == 32 {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(a);
        block[32..].copy_from_slice(b);
        return dsha256_64(&block);
    }
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    let first: [u8; 32] = h.finalize().into();
    sha256(&first)
}

/// `RIPEMD160(SHA256(x))`.
pub(crate) fn hash160(data: &[u8]) -> [u8; 20] {
    Ripemd160::digest(sha256(data)).into()
}

/// A SHA-256 computation whose input starts with a one-byte domain tag.
pub(crate) struct Tagged(Sha256);

impl Tagged {
    /// Starts `SHA256(tag || ...)`.
    pub(crate) fn new(tag: u8) -> Self {
        let mut h = Sha256::new();
        h.update([tag]);
        Tagged(h)
    }

    /// Appends bytes.
    pub(crate) fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// Appends a big-endian `u32`.
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.update(v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(v.to_be_bytes());
        self
    }

    /// Finishes the hash.
    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// `SHA256(tag || a || b)`: exactly two compressions, no buffering. The 65-byte message fills
/// the first block but its last byte, which opens the second, followed by the padding (0x80,
/// zeros, bit length 520). State trees hash every inner node and leaf this way.
pub(crate) fn tagged_pair(tag: u8, a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut first = [0u8; 64];
    first[0] = tag;
    first[1..33].copy_from_slice(a);
    first[33..].copy_from_slice(&b[..31]);
    let mut second = [0u8; 64];
    second[0] = b[31];
    second[1] = 0x80;
    second[62..].copy_from_slice(&(65u16 * 8).to_be_bytes());
    let mut state = IV;
    sha2::block_api::compress256(&mut state, &[first, second]);
    state_bytes(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_pair_matches_generic_sha256() {
        for seed in 0..50u8 {
            let a: [u8; 32] = core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8));
            let b: [u8; 32] = core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(7));
            let mut cat = [0u8; 64];
            cat[..32].copy_from_slice(&a);
            cat[32..].copy_from_slice(&b);
            assert_eq!(dsha256_pair(&a, &b), dsha256(&cat));
            // Mixed lengths take the generic path.
            let mut mixed = [0u8; 48];
            mixed[..16].copy_from_slice(&a[..16]);
            mixed[16..].copy_from_slice(&b);
            assert_eq!(dsha256_pair(&a[..16], &b), dsha256(&mixed));
        }
    }

    #[test]
    fn fast_tagged_pair_matches_generic_sha256() {
        for seed in 0..50u8 {
            let a: [u8; 32] = core::array::from_fn(|i| seed.wrapping_mul(29).wrapping_add(i as u8));
            let b: [u8; 32] = core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(13));
            let mut cat = [0u8; 65];
            cat[0] = seed;
            cat[1..33].copy_from_slice(&a);
            cat[33..].copy_from_slice(&b);
            assert_eq!(tagged_pair(seed, &a, &b), sha256(&cat));
        }
    }
}
