//! Fast-query proofs: one versioned wire format for both schemes, a prover that reads a
//! [`History`], and a verifier that needs only the trusted consensus hash.
//!
//! # Wire format (version 1)
//!
//! ```text
//! magic    2 bytes  "vc"
//! version  u8       1
//! scheme   u8       1 = legacy, 2 = v2, 3 = v3
//! first    u64 BE   the application's first block F
//! trusted  u64 BE   n, the height of the trusted consensus hash
//! target   u64 BE   m, the height whose records the proof authenticates
//! body     scheme-specific; see [`crate::legacy::proof`] and [`crate::v2::proof`]
//! ```
//!
//! Every integer is fixed-width, every count is checked against the remaining input, and nothing
//! may follow the body, so each proof has exactly one encoding and decoding never panics. The
//! verifier checks every field, so changing any byte of a valid proof makes it fail.

use alloc::vec::Vec;
use core::fmt;

use crate::history::{History, Retain};
use crate::legacy::proof::LegacyProof;
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::v2::mmr::PathShapeError;
use crate::v2::proof::V2Proof;
use crate::wire::{DecodeError, DecodeErrorKind, Reader, read_preamble};

/// The first two bytes of every proof.
pub const MAGIC: [u8; 2] = *b"vc";

/// The wire-format version this implementation writes and reads.
pub const VERSION: u8 = 1;

/// The fields every proof starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofHeader {
    /// The consensus-hash scheme of the chain.
    pub scheme: Scheme,
    /// The application's first block `F`.
    pub first_block: u64,
    /// The height `n` of the trusted consensus hash.
    pub trusted: u64,
    /// The height `m` whose records are proven.
    pub target: u64,
}

impl ProofHeader {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.scheme.to_byte());
        out.extend_from_slice(&self.first_block.to_be_bytes());
        out.extend_from_slice(&self.trusted.to_be_bytes());
        out.extend_from_slice(&self.target.to_be_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (byte, at) = read_preamble(r, MAGIC, VERSION)?;
        let scheme = Scheme::from_byte(byte).ok_or(DecodeError {
            offset: at,
            kind: DecodeErrorKind::UnknownScheme(byte),
        })?;
        Ok(ProofHeader {
            scheme,
            first_block: r.u64("first block")?,
            trusted: r.u64("trusted height")?,
            target: r.u64("target height")?,
        })
    }

    fn check_range(&self) -> bool {
        self.first_block <= self.target && self.target <= self.trusted
    }
}

/// A decoded proof of either scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a proof is built or decoded once per query; boxing would only add an allocation"
)]
pub enum Proof {
    /// A legacy SNV walk-back proof.
    Legacy(LegacyProof),
    /// A v2 accumulator proof.
    V2(V2Proof),
}

impl Proof {
    /// The proof's header fields.
    pub fn header(&self) -> ProofHeader {
        match self {
            Proof::Legacy(p) => p.header,
            Proof::V2(p) => p.header,
        }
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.header().encode(&mut out);
        match self {
            Proof::Legacy(p) => p.encode_body(&mut out),
            Proof::V2(p) => p.encode_body(&mut out),
        }
        out
    }

    /// Decodes a proof. Total: any input gives a proof or a [`DecodeError`] naming the offset.
    pub fn decode(bytes: &[u8]) -> Result<Proof, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = ProofHeader::decode(&mut r)?;
        let proof = match header.scheme {
            Scheme::Legacy => Proof::Legacy(LegacyProof::decode_body(header, &mut r)?),
            Scheme::V2 | Scheme::V3 => Proof::V2(V2Proof::decode_body(header, &mut r)?),
        };
        r.finish()?;
        Ok(proof)
    }

    /// Verifies this proof against what the caller trusts: the application's first block, the
    /// trusted height `n` and consensus hash `CH(n)`, and the target height `m` it asked about.
    pub fn verify(
        &self,
        first_block: u64,
        trusted: u64,
        trusted_ch: &ConsensusHash,
        target: u64,
    ) -> Result<VerifiedBlock, VerifyError> {
        let h = self.header();
        if !trusted_ch.fits(h.scheme) {
            return Err(VerifyError::SchemeMismatch {
                proof: h.scheme,
                trusted: trusted_ch.scheme(),
            });
        }
        check_question(
            (first_block, trusted, target),
            (h.first_block, h.trusted, h.target),
        )?;
        match (self, trusted_ch) {
            (Proof::Legacy(p), ConsensusHash::Legacy(ch)) => p.verify(ch),
            (Proof::V2(p), ConsensusHash::V2(ch)) => p.verify(ch),
            _ => Err(VerifyError::SchemeMismatch {
                proof: h.scheme,
                trusted: trusted_ch.scheme(),
            }),
        }
    }
}

/// Checks that a proof's `(first block, trusted height, target height)` are the ones asked
/// about, and that `first block <= target <= trusted`.
pub(crate) fn check_question(
    asked: (u64, u64, u64),
    found: (u64, u64, u64),
) -> Result<(), VerifyError> {
    let (first_block, trusted, target) = asked;
    for (parameter, expected, found) in [
        ("first block", first_block, found.0),
        ("trusted height", trusted, found.1),
        ("target height", target, found.2),
    ] {
        if expected != found {
            return Err(VerifyError::ParameterMismatch {
                parameter,
                expected,
                found,
            });
        }
    }
    if !(first_block <= target && target <= trusted) {
        return Err(VerifyError::InvalidRange {
            first_block,
            trusted,
            target,
        });
    }
    Ok(())
}

/// Decodes and verifies a proof in one call; see [`Proof::verify`].
pub fn verify(
    bytes: &[u8],
    first_block: u64,
    trusted: u64,
    trusted_ch: &ConsensusHash,
    target: u64,
) -> Result<VerifiedBlock, VerifyError> {
    Proof::decode(bytes).map_err(VerifyError::Decode)?.verify(
        first_block,
        trusted,
        trusted_ch,
        target,
    )
}

/// Builds the proof that the records of block `target` belong to the chain whose consensus hash
/// at `trusted` the verifier holds.
pub fn prove<H: History>(
    history: &H,
    trusted: u64,
    target: u64,
) -> Result<Proof, ProveError<H::Error>> {
    let header = ProofHeader {
        scheme: history.scheme(),
        first_block: history.first_block(),
        trusted,
        target,
    };
    if !header.check_range() {
        return Err(ProveError::InvalidRange {
            first_block: header.first_block,
            trusted,
            target,
        });
    }
    Ok(match header.scheme {
        Scheme::Legacy => Proof::Legacy(LegacyProof::prove(history, header)?),
        Scheme::V2 | Scheme::V3 => Proof::V2(V2Proof::prove(history, header)?),
    })
}

/// What [`prove`] reads for one proof beyond consensus hashes: a [`MemoryHistory`] built with
/// this retention can answer exactly that proof while keeping almost nothing.
///
/// [`MemoryHistory`]: crate::history::MemoryHistory
pub fn retention_for(scheme: Scheme, first_block: u64, trusted: u64, target: u64) -> Retain {
    match scheme {
        Scheme::Legacy => crate::legacy::proof::retention(trusted, target),
        Scheme::V2 | Scheme::V3 => crate::v2::proof::retention(first_block, trusted, target),
    }
}

/// What a valid proof authenticates about its target block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlock {
    /// The scheme.
    pub scheme: Scheme,
    /// The target height `m`.
    pub height: u64,
    /// `CH(m)`.
    pub consensus_hash: ConsensusHash,
    /// The block's ops hash (legacy: display order).
    pub ops_hash: Hash256,
    /// The Bitcoin block hash, internal byte order (v2 and v3: legacy hashes do not bind it).
    pub block_hash: Option<Hash256>,
    /// v3: the root of the application's state after the block ([`crate::state`]).
    pub state_root: Option<Hash256>,
    /// The block's consensus records. v2 commits their order, and they come in block order;
    /// legacy does not, and they come sorted by digest (the order its ops hash uses), so a
    /// server cannot choose it.
    pub records: Vec<Vec<u8>>,
}

/// Which check of a verification failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Legacy walk-back step `index` (0 = the trusted block): recomputing `CH(height)` from its
    /// ops hash and priors.
    Walk {
        /// Position in the walk.
        index: usize,
        /// The block whose consensus hash was recomputed.
        height: u64,
    },
    /// Recomputing the target block's consensus hash from its records (or, in a state
    /// proof, from its state path).
    Target {
        /// The target height.
        height: u64,
    },
    /// v2: recomputing the trusted block's consensus hash through the accumulator path.
    Accumulator {
        /// The trusted height.
        height: u64,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Walk { index, height } => write!(f, "walk-back step {index} (block {height})"),
            Step::Target { height } => write!(f, "target block {height}"),
            Step::Accumulator { height } => {
                write!(f, "accumulator path into trusted block {height}")
            }
        }
    }
}

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bytes are not a well-formed proof.
    Decode(DecodeError),
    /// The proof is for another scheme than the trusted hash.
    SchemeMismatch {
        /// The proof's scheme.
        proof: Scheme,
        /// The trusted hash's scheme.
        trusted: Scheme,
    },
    /// The proof answers another question than the one asked.
    ParameterMismatch {
        /// Which header field differs.
        parameter: &'static str,
        /// What the verifier asked for.
        expected: u64,
        /// What the proof says.
        found: u64,
    },
    /// The heights do not satisfy `first_block <= target <= trusted`.
    InvalidRange {
        /// `F`.
        first_block: u64,
        /// `n`.
        trusted: u64,
        /// `m`.
        target: u64,
    },
    /// The proof has the wrong number of some item at some step.
    Shape {
        /// Where.
        step: Step,
        /// The item.
        what: &'static str,
        /// How many the chain's shape requires.
        expected: usize,
        /// How many the proof has.
        found: usize,
    },
    /// A recomputed hash differs from the value trusted at that point.
    HashMismatch {
        /// Where.
        step: Step,
    },
    /// A state proof is about another namespace or key than the one asked about.
    KeyMismatch,
    /// A state proof's path does not fit its key, or has a shape no tree has.
    StatePath {
        /// The target height.
        height: u64,
        /// What is wrong with the path.
        error: crate::state::PathError,
    },
    /// Legacy: the target block's records repeat one record. The legacy ops hash cannot tell a
    /// repeat from its own Merkle padding, so repeats are refused rather than believed.
    RepeatedRecord {
        /// The target block.
        height: u64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Decode(e) => write!(f, "malformed proof: {e}"),
            VerifyError::SchemeMismatch { proof, trusted } => write!(
                f,
                "proof is for the {proof} scheme but the trusted hash is {trusted}"
            ),
            VerifyError::ParameterMismatch {
                parameter,
                expected,
                found,
            } => write!(f, "proof is for {parameter} {found}, expected {expected}"),
            VerifyError::InvalidRange {
                first_block,
                trusted,
                target,
            } => write!(
                f,
                "need first block {first_block} <= target {target} <= trusted {trusted}"
            ),
            VerifyError::Shape {
                step,
                what,
                expected,
                found,
            } => write!(f, "{step}: expected {expected} {what}, proof has {found}"),
            VerifyError::HashMismatch { step } => write!(
                f,
                "{step}: recomputed consensus hash differs from the trusted one"
            ),
            VerifyError::KeyMismatch => {
                f.write_str("the state proof is about another namespace or key")
            }
            VerifyError::StatePath { height, error } => {
                write!(f, "state path at block {height}: {error}")
            }
            VerifyError::RepeatedRecord { height } => write!(
                f,
                "target block {height}: a record is repeated, which the legacy ops hash cannot tell from padding"
            ),
        }
    }
}

impl core::error::Error for VerifyError {}

impl VerifyError {
    pub(crate) fn from_path_shape(height: u64, e: PathShapeError) -> Self {
        let step = Step::Accumulator { height };
        let (what, expected, found) = match e {
            PathShapeError::IndexOutOfRange => ("target within the accumulator", 1, 0),
            PathShapeError::Siblings { expected, found } => ("path siblings", expected, found),
            PathShapeError::LeftPeaks { expected, found } => ("left peaks", expected, found),
            PathShapeError::RightBag { expected } => {
                ("right bags", usize::from(expected), usize::from(!expected))
            }
        };
        VerifyError::Shape {
            step,
            what,
            expected,
            found,
        }
    }
}

/// Why a proof could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProveError<E> {
    /// The history failed to read.
    History(E),
    /// The history lacks an item the proof needs.
    Missing {
        /// The item.
        what: &'static str,
        /// At which height.
        height: u64,
    },
    /// The history lacks an MMR node the proof needs.
    MissingNode {
        /// Node level.
        level: u8,
        /// Node index.
        index: u64,
    },
    /// The heights do not satisfy `first_block <= target <= trusted`.
    InvalidRange {
        /// `F`.
        first_block: u64,
        /// `n`.
        trusted: u64,
        /// `m`.
        target: u64,
    },
    /// A record or record list too large for the wire format (over `u32::MAX`).
    TooLarge {
        /// The block.
        height: u64,
    },
}

impl<E: fmt::Display> fmt::Display for ProveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProveError::History(e) => write!(f, "reading history: {e}"),
            ProveError::Missing { what, height } => {
                write!(f, "history has no {what} for block {height}")
            }
            ProveError::MissingNode { level, index } => {
                write!(f, "history has no accumulator node ({level}, {index})")
            }
            ProveError::InvalidRange {
                first_block,
                trusted,
                target,
            } => write!(
                f,
                "need first block {first_block} <= target {target} <= trusted {trusted}"
            ),
            ProveError::TooLarge { height } => {
                write!(
                    f,
                    "records of block {height} exceed the proof format's limits"
                )
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ProveError<E> {}

/// Helpers the two scheme modules share when reading a history.
pub(crate) mod read {
    use super::ProveError;
    use crate::history::History;
    use crate::types::ConsensusHash;
    use alloc::vec::Vec;

    pub(crate) fn required<T, E>(
        value: Result<Option<T>, E>,
        what: &'static str,
        height: u64,
    ) -> Result<T, ProveError<E>> {
        value
            .map_err(ProveError::History)?
            .ok_or(ProveError::Missing { what, height })
    }

    pub(crate) fn ch<H: History>(
        h: &H,
        height: u64,
    ) -> Result<ConsensusHash, ProveError<H::Error>> {
        let ch = required(h.consensus_hash(height), "consensus hash", height)?;
        if !ch.fits(h.scheme()) {
            return Err(ProveError::Missing {
                what: "consensus hash of the chain's scheme",
                height,
            });
        }
        Ok(ch)
    }

    pub(crate) fn records<H: History>(
        h: &H,
        height: u64,
    ) -> Result<Vec<Vec<u8>>, ProveError<H::Error>> {
        let records = required(h.records(height), "records", height)?;
        if u32::try_from(records.len()).is_err()
            || records.iter().any(|r| u32::try_from(r.len()).is_err())
        {
            return Err(ProveError::TooLarge { height });
        }
        Ok(records)
    }
}
