//! State proofs: "key `K` of namespace `S` has value `V` (or is absent) at height `m`", checked
//! against one trusted `(n, CH(n))` of a v3 chain.
//!
//! The proof carries block `m`'s commitment without its state root, the key's path in the
//! state tree at `m`, and (if `m < n`) the link from `CH(m)` to `CH(n)` that v2 and v3 ops proofs
//! use. The verifier folds the path into `state_root(m)`, recomputes `CH(m)` from it, and follows
//! the link to the trusted hash; so the state root is never taken from the server.
//!
//! # Wire format (version 1)
//!
//! ```text
//! magic      2 bytes  "vs"
//! version    u8       1
//! scheme     u8       3 (v3, the only scheme with a state root)
//! first      u64      F
//! trusted    u64      n
//! target     u64      m
//! namespace  u8 length, then the namespace name's bytes
//! key        u16 length, then the key's bytes
//! block m    block_hash, ops_hash, priors_hash, mmr_root(m - F)      4 x 32 bytes
//! depth      u16      d <= 256, where the key's path ends
//! bitmap     ceil(d / 8) bytes: bit i (most significant first) is set iff the sibling at
//!            depth i + 1 is not empty; the bits after d are zero
//! siblings   32 bytes per set bit, top-down; never 32 zero bytes
//! answer     u8: 0 = present, then u32 length || value
//!                1 = absent, the path ends at an empty subtree
//!                2 = absent, the path ends at another key's leaf: path 32 || value_hash 32
//! link       only if m < n: block_hash(n), ops_hash(n), priors_hash(n), state_root(n),
//!            then the accumulator path as in the v2 proof (see `crate::v2::proof`)
//! ```
//!
//! All integers are big-endian. Every count is checked against the remaining input and nothing
//! may follow the proof, so each proof has one encoding; every field is either compared with
//! what the verifier asked or bound by a hash, so changing any byte makes the proof fail.

use alloc::vec::Vec;
use core::fmt;

use super::{EMPTY, MAX_DEPTH, NodeSource, StatePath, Terminal, key_path, value_hash};
use crate::history::History;
use crate::proof::{ProveError, VerifyError, check_question, read};
use crate::types::{ConsensusHash, Hash256, Scheme};
use crate::v2::proof::{
    TrustedLink, check_link, mmr_root_at, priors_hash_of, target_commitment, trusted_link,
};
use crate::wire::{CountWidth, DecodeError, DecodeErrorKind, Reader, read_preamble};

/// The first two bytes of every state proof.
pub const MAGIC: [u8; 2] = *b"vs";

/// The state-proof format version this implementation writes and reads.
pub const VERSION: u8 = 1;

/// What the proof says about the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The key is present with this value.
    Present(Vec<u8>),
    /// The key is absent: its path ends at an empty subtree.
    Empty,
    /// The key is absent: its path ends at another key's leaf.
    Other {
        /// The other key's path.
        path: Hash256,
        /// The other key's value hash.
        value_hash: Hash256,
    },
}

/// A decoded state proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    /// The application's first block `F`.
    pub first_block: u64,
    /// The trusted height `n`.
    pub trusted: u64,
    /// The height `m` whose state is proven.
    pub target: u64,
    /// The namespace's name.
    pub namespace: Vec<u8>,
    /// The key's bytes.
    pub key: Vec<u8>,
    /// `block_hash(m)`.
    pub block_hash: Hash256,
    /// `ops_hash(m)`.
    pub ops_hash: Hash256,
    /// `priors_hash(m)`.
    pub priors_hash: Hash256,
    /// `mmr_root(m - F)`.
    pub mmr_root: Hash256,
    /// The siblings of the key's path, top-down ([`EMPTY`] for an empty one).
    pub siblings: Vec<Hash256>,
    /// Where the path ends.
    pub answer: Answer,
    /// Present exactly when `m < n`.
    pub link: Option<TrustedLink>,
}

/// What a valid state proof authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedState {
    /// The height `m`.
    pub height: u64,
    /// `CH(m)`.
    pub consensus_hash: ConsensusHash,
    /// The Bitcoin block hash at `m`, internal byte order.
    pub block_hash: Hash256,
    /// The state root at `m`.
    pub state_root: Hash256,
    /// The key's value at `m`, or `None` if the key is absent.
    pub value: Option<Vec<u8>>,
}

/// Why a state proof could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateProveError<H, T> {
    /// Reading the chain failed or lacked an item (see [`ProveError`]).
    Chain(ProveError<H>),
    /// Reading the state tree failed.
    Tree(super::TreeError<T>),
    /// The tree says the key is present but its value is not there.
    MissingValue {
        /// The height.
        height: u64,
    },
    /// The chain is not v3.
    Scheme(Scheme),
    /// The namespace name or the key is longer than the format allows (255 and 65,535 bytes).
    KeyTooLong,
}

impl<H: fmt::Display, T: fmt::Display> fmt::Display for StateProveError<H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateProveError::Chain(e) => write!(f, "{e}"),
            StateProveError::Tree(e) => write!(f, "{e}"),
            StateProveError::MissingValue { height } => {
                write!(
                    f,
                    "the state tree at block {height} has the key but its value is missing"
                )
            }
            StateProveError::Scheme(s) => {
                write!(f, "state proofs need a v3 chain, this one is {s}")
            }
            StateProveError::KeyTooLong => f.write_str(
                "state proofs carry namespaces of at most 255 bytes and keys of at most 65,535",
            ),
        }
    }
}

impl<H: fmt::Debug + fmt::Display, T: fmt::Debug + fmt::Display> core::error::Error
    for StateProveError<H, T>
{
}

/// Builds the proof of `key` in `namespace` at height `target` against the trusted height
/// `trusted`, from the chain in `history` and the state tree as it was after block `target`
/// (`tree`). `value` returns the value whose hash a leaf holds: the key's value at `target`.
pub fn prove<H: History, S: NodeSource>(
    history: &H,
    tree: &S,
    value: impl FnOnce(&Hash256) -> Option<Vec<u8>>,
    trusted: u64,
    target: u64,
    namespace: &[u8],
    key: &[u8],
) -> Result<StateProof, StateProveError<H::Error, S::Error>> {
    let scheme = history.scheme();
    if !scheme.commits_state() {
        return Err(StateProveError::Scheme(scheme));
    }
    if namespace.len() > usize::from(u8::MAX) || key.len() > usize::from(u16::MAX) {
        return Err(StateProveError::KeyTooLong);
    }
    let f = history.first_block();
    if !(f <= target && target <= trusted) {
        return Err(StateProveError::Chain(ProveError::InvalidRange {
            first_block: f,
            trusted,
            target,
        }));
    }
    let path = key_path(namespace, key);
    let state_path = super::prove_path(tree, &path).map_err(StateProveError::Tree)?;
    let answer = match state_path.terminal {
        Terminal::Present(_) => {
            Answer::Present(value(&path).ok_or(StateProveError::MissingValue { height: target })?)
        }
        Terminal::Empty => Answer::Empty,
        Terminal::Other { path, value_hash } => Answer::Other { path, value_hash },
    };
    let chain = StateProveError::Chain;
    Ok(StateProof {
        first_block: f,
        trusted,
        target,
        namespace: namespace.to_vec(),
        key: key.to_vec(),
        block_hash: read::required(history.block_hash(target), "block hash", target)
            .map_err(chain)?,
        ops_hash: read::required(history.ops_hash(target), "ops hash", target).map_err(chain)?,
        priors_hash: priors_hash_of(history, target).map_err(chain)?,
        mmr_root: mmr_root_at(history, f, target).map_err(chain)?,
        siblings: state_path.siblings,
        answer,
        link: trusted_link(history, f, trusted, target).map_err(chain)?,
    })
}

impl StateProof {
    /// The key's path in the tree as this proof states it.
    pub fn state_path(&self) -> StatePath {
        StatePath {
            siblings: self.siblings.clone(),
            terminal: match &self.answer {
                Answer::Present(v) => Terminal::Present(value_hash(v)),
                Answer::Empty => Terminal::Empty,
                Answer::Other { path, value_hash } => Terminal::Other {
                    path: *path,
                    value_hash: *value_hash,
                },
            },
        }
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 32 * self.siblings.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(Scheme::V3.to_byte());
        for v in [self.first_block, self.trusted, self.target] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.push(self.namespace.len() as u8);
        out.extend_from_slice(&self.namespace);
        out.extend_from_slice(&(self.key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.key);
        for h in [
            &self.block_hash,
            &self.ops_hash,
            &self.priors_hash,
            &self.mmr_root,
        ] {
            out.extend_from_slice(&h.0);
        }
        let depth = self.siblings.len();
        out.extend_from_slice(&(depth as u16).to_be_bytes());
        let mut bitmap = alloc::vec![0u8; depth.div_ceil(8)];
        for (i, s) in self.siblings.iter().enumerate() {
            if *s != EMPTY {
                bitmap[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out.extend_from_slice(&bitmap);
        for s in self.siblings.iter().filter(|s| **s != EMPTY) {
            out.extend_from_slice(&s.0);
        }
        match &self.answer {
            Answer::Present(v) => {
                out.push(0);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Answer::Empty => out.push(1),
            Answer::Other { path, value_hash } => {
                out.push(2);
                out.extend_from_slice(&path.0);
                out.extend_from_slice(&value_hash.0);
            }
        }
        if let Some(link) = &self.link {
            link.encode(&mut out);
        }
        out
    }

    /// Decodes a state proof. Total: any input gives a proof or a [`DecodeError`] naming the
    /// offset.
    pub fn decode(bytes: &[u8]) -> Result<StateProof, DecodeError> {
        let mut r = Reader::new(bytes);
        let (scheme, at) = read_preamble(&mut r, MAGIC, VERSION)?;
        if scheme != Scheme::V3.to_byte() {
            return Err(r.error_at(at, DecodeErrorKind::UnknownScheme(scheme)));
        }
        let first_block = r.u64("first block")?;
        let trusted = r.u64("trusted height")?;
        let target = r.u64("target height")?;
        let len = usize::from(r.u8("namespace length")?);
        let namespace = r.bytes(len, "namespace")?.to_vec();
        let len = usize::from(u16::from_be_bytes(r.array::<2>("key length")?));
        let key = r.bytes(len, "key")?.to_vec();
        let block_hash = r.hash("target block hash")?;
        let ops_hash = r.hash("target ops hash")?;
        let priors_hash = r.hash("target priors hash")?;
        let mmr_root = r.hash("target accumulator root")?;
        let at = r.offset();
        let depth = u16::from_be_bytes(r.array::<2>("state path depth")?);
        if depth > MAX_DEPTH {
            return Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::CountTooLarge {
                    what: "state path level",
                    count: u64::from(depth),
                },
            });
        }
        let depth = usize::from(depth);
        let at = r.offset();
        let bitmap = r.bytes(depth.div_ceil(8), "state path bitmap")?;
        if depth % 8 != 0 && bitmap[depth / 8] & (0xFF >> (depth % 8)) != 0 {
            return Err(r.error_at(
                at + depth / 8,
                DecodeErrorKind::NonCanonical("bitmap padding"),
            ));
        }
        let mut siblings = Vec::with_capacity(depth);
        for i in 0..depth {
            if bitmap[i / 8] & (0x80 >> (i % 8)) == 0 {
                siblings.push(EMPTY);
                continue;
            }
            let at = r.offset();
            let s = r.hash("state path sibling")?;
            if s == EMPTY {
                return Err(r.error_at(at, DecodeErrorKind::NonCanonical("empty sibling")));
            }
            siblings.push(s);
        }
        let at = r.offset();
        let answer = match r.u8("answer")? {
            0 => {
                let len = r.count(CountWidth::U32, "value byte", u64::from(u32::MAX), 1)?;
                Answer::Present(r.bytes(len, "value")?.to_vec())
            }
            1 => Answer::Empty,
            2 => Answer::Other {
                path: r.hash("other leaf's path")?,
                value_hash: r.hash("other leaf's value hash")?,
            },
            b => return Err(r.error_at(at, DecodeErrorKind::InvalidFlag(b))),
        };
        let link = if target < trusted {
            Some(TrustedLink::decode(&mut r, Scheme::V3)?)
        } else {
            None
        };
        r.finish()?;
        Ok(StateProof {
            first_block,
            trusted,
            target,
            namespace,
            key,
            block_hash,
            ops_hash,
            priors_hash,
            mmr_root,
            siblings,
            answer,
            link,
        })
    }

    /// Verifies this proof: that it answers the question asked (first block, heights,
    /// namespace and key) and leads to the trusted `CH(n)`.
    pub fn verify(
        &self,
        first_block: u64,
        trusted: u64,
        trusted_ch: &ConsensusHash,
        target: u64,
        namespace: &[u8],
        key: &[u8],
    ) -> Result<VerifiedState, VerifyError> {
        let ConsensusHash::V2(trusted_hash) = trusted_ch else {
            return Err(VerifyError::SchemeMismatch {
                proof: Scheme::V3,
                trusted: trusted_ch.scheme(),
            });
        };
        check_question(
            (first_block, trusted, target),
            (self.first_block, self.trusted, self.target),
        )?;
        if self.namespace != namespace || self.key != key {
            return Err(VerifyError::KeyMismatch);
        }
        let state_root = self
            .state_path()
            .root(&key_path(namespace, key))
            .map_err(|error| VerifyError::StatePath {
                height: target,
                error,
            })?;
        let commitment = target_commitment(
            Scheme::V3,
            target,
            self.block_hash,
            self.ops_hash,
            self.priors_hash,
            self.mmr_root,
            Some(state_root),
        )?;
        let ch_m = commitment.consensus_hash();
        check_link(
            first_block,
            trusted,
            target,
            &ch_m,
            self.link.as_ref(),
            trusted_hash,
        )?;
        Ok(VerifiedState {
            height: target,
            consensus_hash: ConsensusHash::V2(ch_m),
            block_hash: self.block_hash,
            state_root,
            value: match &self.answer {
                Answer::Present(v) => Some(v.clone()),
                Answer::Empty | Answer::Other { .. } => None,
            },
        })
    }
}

/// Decodes and verifies a state proof in one call; see [`StateProof::verify`].
pub fn verify(
    bytes: &[u8],
    first_block: u64,
    trusted: u64,
    trusted_ch: &ConsensusHash,
    target: u64,
    namespace: &[u8],
    key: &[u8],
) -> Result<VerifiedState, VerifyError> {
    StateProof::decode(bytes)
        .map_err(VerifyError::Decode)?
        .verify(first_block, trusted, trusted_ch, target, namespace, key)
}
