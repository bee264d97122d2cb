//! Encoding and decoding of virtualchain operations.
//!
//! An operation travels in a Bitcoin transaction as an OP_RETURN payload:
//! `magic (1..=8 bytes) || opcode (1 byte) || body`. This crate owns that framing
//! ([`payload`]); the OP_RETURN carrier rules, typed body layouts and the versioned storage
//! encodings join it as the codec work proceeds (see `docs/` and the project issues).
//!
//! ```
//! use vc_codec::payload::{PayloadFormat, Payload};
//!
//! // BNS: magic "id", a few of its opcodes, payloads of at most 80 bytes.
//! let bns = PayloadFormat::new(b"id", b"?:+>~", 80).unwrap();
//! let p = bns.decode(b"id:foo.test").unwrap();
//! assert_eq!((p.opcode, p.body), (b':', &b"foo.test"[..]));
//! assert_eq!(bns.encode(b':', b"foo.test").unwrap(), b"id:foo.test");
//! assert!(bns.decode(b"id!x").is_err()); // '!' is not declared
//! ```

pub mod payload;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
