//! Consensus hashes and fast-query proofs for virtual blockchains.
//!
//! A virtual blockchain derives its state from the operations it accepts in Bitcoin blocks. After
//! every block each node computes a **consensus hash** over the block's accepted records and a
//! geometric series of earlier consensus hashes. Nodes that agree on a consensus hash agree on the
//! whole accepted history up to that block, and a light client that trusts one consensus hash can
//! authenticate any earlier block's records with a logarithmic **fast-query proof** fetched from an
//! untrusted node.
//!
//! This crate is `#![no_std]` (with `alloc`), does no I/O, and depends only on `sha2` and `ripemd`
//! (plus `serde` behind the `serde` feature), so that light clients can embed it.
//!
//! Two schemes are implemented:
//!
//! * [`legacy`]: virtualchain v1, byte-exact with Blockstack's Python implementation: 128-bit
//!   consensus hashes over sorted record digests, and the SNV walk-back proof.
//! * [`v2`]: the default for new applications (specified in `docs/consensus-hash-v2.md`):
//!   256-bit, domain-separated, records committed in block order, block hash and height bound,
//!   geometric priors kept, and a Merkle Mountain Range over all earlier consensus hashes so that
//!   a proof needs O(log n) hashes.
//!
//! [`migration`] holds the rules of cross-chain migration (`docs/migration.md`): the bodies of
//! the announcement, commit and reveal, the binding commitment, and the records that carry the
//! consensus-hash chain across the boundary.
//!
//! # Example
//!
//! Compute a v2 chain, prove an old block from the newest consensus hash, and verify the proof:
//!
//! ```
//! use vc_chash::{history::MemoryHistory, proof, Hash256, Scheme};
//!
//! let first_block = 100;
//! let mut chain = MemoryHistory::new(Scheme::V2, first_block);
//! for i in 0..50u8 {
//!     let records: Vec<Vec<u8>> = vec![vec![b'?', i]];
//!     chain.push_block(Hash256([i; 32]), &records);
//! }
//! let (n, trusted) = chain.tip().unwrap();
//!
//! let bytes = proof::prove(&chain, n, 110).unwrap().encode();
//! let verified = proof::verify(&bytes, first_block, n, &trusted, 110).unwrap();
//! assert_eq!(verified.records, vec![vec![b'?', 10u8]]);
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

pub mod append;
pub mod fresh;
pub mod hex;
pub mod history;
pub mod legacy;
pub mod migration;
pub mod priors;
pub mod proof;
pub mod record;
pub mod state;
pub mod v2;

mod digest;
mod types;
mod wire;

#[cfg(feature = "serde")]
mod serde_impls;

pub use append::{AppendError, Appended, Appender};
pub use fresh::{Seeds, is_fresh};
pub use history::{History, MemoryHistory};
pub use proof::{Proof, VerifiedBlock, VerifyError, prove, verify};
pub use types::{ConsensusHash, Hash256, ParseHashError, Scheme};
pub use wire::DecodeError;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
