//! The value types shared by both schemes.

use core::fmt;
use core::str::FromStr;

use crate::hex::{self, HexError};

/// A 32-byte hash value (SHA-256 output, block hash, ops hash).
///
/// Its textual form is the lowercase hex of the bytes in the order they are stored. Note that
/// Bitcoin displays block hashes byte-reversed; see [`Hash256::from_display_hex`] for that form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash256(pub [u8; 32]);

/// The bytes' lexicographic order, as `[u8; 32]` orders them, compared as four big-endian
/// words: the same order without a call to `memcmp`, which state trees and maps of key paths
/// compare millions of times.
impl Ord for Hash256 {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        let words = |h: &Hash256| {
            let mut w = [0u64; 4];
            for (word, chunk) in w.iter_mut().zip(h.0.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                *word = u64::from_be_bytes(b);
            }
            w
        };
        words(self).cmp(&words(other))
    }
}

impl PartialOrd for Hash256 {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash256 {
    /// The all-zero hash.
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses a hash shown in Bitcoin's reversed display order (as `bitcoind` prints block
    /// hashes and txids) into internal byte order.
    pub fn from_display_hex(s: &str) -> Result<Self, ParseHashError> {
        let mut bytes = hex::decode_array::<32>(s).map_err(ParseHashError::Hex)?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }

    /// This hash byte-reversed, as Bitcoin displays block hashes.
    pub fn reversed(&self) -> Hash256 {
        let mut b = self.0;
        b.reverse();
        Hash256(b)
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0)
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex::decode_array::<32>(s)
            .map(Hash256)
            .map_err(ParseHashError::Hex)
    }
}

impl From<[u8; 32]> for Hash256 {
    fn from(b: [u8; 32]) -> Self {
        Hash256(b)
    }
}

/// Which consensus-hash scheme an application uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// Virtualchain v1 (Blockstack/BNS), 128-bit, byte-exact with the Python implementation.
    Legacy,
    /// The v2 scheme of `docs/consensus-hash-v2.md`: 256-bit with an accumulator.
    V2,
    /// The v3 scheme of `docs/consensus-hash-v3.md`: v2 plus a commitment to the application's
    /// whole state (a sparse Merkle tree; see [`crate::state`]).
    V3,
}

impl Scheme {
    /// The scheme's byte in proof and storage encodings (1 = legacy, 2 = v2, 3 = v3).
    pub fn to_byte(self) -> u8 {
        match self {
            Scheme::Legacy => 1,
            Scheme::V2 => 2,
            Scheme::V3 => 3,
        }
    }

    /// The scheme for an encoding byte, if it names one.
    pub fn from_byte(b: u8) -> Option<Scheme> {
        match b {
            1 => Some(Scheme::Legacy),
            2 => Some(Scheme::V2),
            3 => Some(Scheme::V3),
            _ => None,
        }
    }

    /// Whether this scheme's chains commit a state root (v3).
    pub fn commits_state(self) -> bool {
        matches!(self, Scheme::V3)
    }

    /// Whether this scheme keeps the accumulator (v2 and v3).
    pub fn has_accumulator(self) -> bool {
        matches!(self, Scheme::V2 | Scheme::V3)
    }

    /// The length in bytes of this scheme's consensus hashes.
    pub fn hash_len(self) -> usize {
        match self {
            Scheme::Legacy => 16,
            Scheme::V2 | Scheme::V3 => 32,
        }
    }

    /// The scheme's name as the CLI and configuration files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Legacy => "legacy",
            Scheme::V2 => "v2",
            Scheme::V3 => "v3",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" | "v1" => Ok(Scheme::Legacy),
            "v2" => Ok(Scheme::V2),
            "v3" => Ok(Scheme::V3),
            _ => Err(ParseHashError::UnknownScheme),
        }
    }
}

/// A consensus hash of any scheme.
///
/// Legacy consensus hashes are 16 bytes (shown as 32 hex characters); v2 and v3 ones are 32
/// bytes and share the [`ConsensusHash::V2`] variant, since a hash's bytes cannot say which of
/// the two made it: the chain's [`Scheme`] does. Use [`ConsensusHash::fits`] to check a hash
/// against a scheme.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsensusHash {
    /// A virtualchain v1 consensus hash: the first 16 bytes of a HASH160.
    Legacy([u8; 16]),
    /// A 256-bit consensus hash: scheme v2 or v3.
    V2(Hash256),
}

impl ConsensusHash {
    /// Whether this hash has the shape of `scheme`'s hashes (16 bytes for legacy, 32 for v2
    /// and v3).
    pub fn fits(&self, scheme: Scheme) -> bool {
        self.as_bytes().len() == scheme.hash_len()
    }

    /// The first scheme with hashes of this shape: [`Scheme::Legacy`] or [`Scheme::V2`] (a v3
    /// hash looks like a v2 one; see [`ConsensusHash::fits`]).
    pub fn scheme(&self) -> Scheme {
        match self {
            ConsensusHash::Legacy(_) => Scheme::Legacy,
            ConsensusHash::V2(_) => Scheme::V2,
        }
    }

    /// The raw bytes (16 or 32).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ConsensusHash::Legacy(b) => b,
            ConsensusHash::V2(h) => &h.0,
        }
    }

    /// Builds a consensus hash of `scheme` from raw bytes of the right length.
    pub fn from_slice(scheme: Scheme, bytes: &[u8]) -> Option<ConsensusHash> {
        match scheme {
            Scheme::Legacy => <[u8; 16]>::try_from(bytes).ok().map(ConsensusHash::Legacy),
            Scheme::V2 | Scheme::V3 => <[u8; 32]>::try_from(bytes)
                .ok()
                .map(|b| ConsensusHash::V2(Hash256(b))),
        }
    }
}

impl fmt::Display for ConsensusHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, self.as_bytes())
    }
}

impl fmt::Debug for ConsensusHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsensusHash::{:?}({self})", self.scheme())
    }
}

impl FromStr for ConsensusHash {
    type Err = ParseHashError;
    /// Parses 32 hex characters as a legacy hash and 64 as a v2 hash.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.len() {
            32 => Ok(ConsensusHash::Legacy(
                hex::decode_array(s).map_err(ParseHashError::Hex)?,
            )),
            64 => Ok(ConsensusHash::V2(s.parse()?)),
            n => Err(ParseHashError::Length(n)),
        }
    }
}

/// Why a textual hash or scheme name could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseHashError {
    /// Not valid hex of the required length.
    Hex(HexError),
    /// A consensus hash must have 32 (legacy) or 64 (v2) hex characters.
    Length(usize),
    /// The scheme name is neither `legacy` nor `v2`.
    UnknownScheme,
}

impl fmt::Display for ParseHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseHashError::Hex(e) => write!(f, "invalid hash: {e}"),
            ParseHashError::Length(n) => write!(
                f,
                "a consensus hash has 32 (legacy) or 64 (v2) hex characters, got {n}"
            ),
            ParseHashError::UnknownScheme => {
                f.write_str("unknown scheme (expected legacy, v2 or v3)")
            }
        }
    }
}

impl core::error::Error for ParseHashError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn consensus_hash_text() {
        let l: ConsensusHash = "2a9148d8b13939723d2aca16c75c6d68".parse().unwrap();
        assert_eq!(l.scheme(), Scheme::Legacy);
        assert_eq!(l.to_string(), "2a9148d8b13939723d2aca16c75c6d68");
        let v: ConsensusHash = "00".repeat(32).parse().unwrap();
        assert_eq!(v.scheme(), Scheme::V2);
        assert_eq!(
            "abc".parse::<ConsensusHash>(),
            Err(ParseHashError::Length(3))
        );
    }

    #[test]
    fn display_order() {
        let h = Hash256::from_display_hex(&("00".repeat(31) + "01")).unwrap();
        assert_eq!(h.0[0], 1);
        assert_eq!(h.reversed().to_string(), "00".repeat(31) + "01");
    }

    #[test]
    fn hashes_order_as_their_bytes() {
        // Every byte position decides when the ones before it are equal, including the last
        // of each eight-byte word and a difference in the top bit.
        let mut cases = alloc::vec![Hash256::ZERO, Hash256([0xFF; 32])];
        for i in 0..32 {
            for b in [0x01, 0x7F, 0x80, 0xFF] {
                let mut h = [0x55u8; 32];
                h[i] = b;
                cases.push(Hash256(h));
            }
        }
        for a in &cases {
            for b in &cases {
                assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a} against {b}");
                assert_eq!(a.partial_cmp(b), Some(a.0.cmp(&b.0)));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_hashes_order_as_their_bytes(a: [u8; 32], b: [u8; 32], shared in 0usize..32) {
            // Share a prefix half the time, so that the deciding byte is anywhere.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            proptest::prop_assert_eq!(Hash256(a).cmp(&Hash256(b)), a.cmp(&b));
        }
    }

    #[test]
    fn scheme_bytes() {
        for s in [Scheme::Legacy, Scheme::V2] {
            assert_eq!(Scheme::from_byte(s.to_byte()), Some(s));
            assert_eq!(s.name().parse::<Scheme>().unwrap(), s);
        }
        assert_eq!(Scheme::from_byte(0), None);
    }
}
