//! Encoding and decoding of virtualchain operations and stored values.
//!
//! Data enters an application in three steps, each a module here:
//!
//! 1. [`carrier`]: find the payload in a Bitcoin transaction's OP_RETURN outputs (legacy or
//!    strict rule, configurable size limit), and build the output that carries one.
//! 2. [`payload`]: split `magic (1..=8 bytes) || opcode (1 byte) || body`, checking magic and
//!    declared opcodes.
//! 3. [`layout`]: decode the body into named, typed fields (fixed bytes, big-endian integers,
//!    hashes, NUL-padded ASCII, a variable tail) with byte offsets in every error.
//!
//! Two encodings leave it: [`record`] turns an accepted operation into the canonical bytes that
//! the consensus hash covers (re-exported from `vc-chash`, which owns every consensus rule),
//! and [`storage`] turns stored values into versioned postcard bytes (never hashed). Every
//! decoder is total: arbitrary bytes give a value or a typed error, never a panic.
//!
//! ```
//! use vc_codec::{carrier::Carrier, layout::Layout, payload::PayloadFormat};
//!
//! // BNS: magic "id", a few of its opcodes, payloads of at most 80 bytes.
//! let bns = PayloadFormat::new(b"id", b"?:+>~", 80)?;
//! let carrier = Carrier::default(); // legacy rule, 80 bytes
//! let output = carrier.output(&bns.encode(b':', b"foo.test")?)?;
//!
//! let carried = carrier.extract_outputs(std::slice::from_ref(&output))?.expect("a payload");
//! let op = bns.decode(carried.data)?;
//! let register = Layout::builder().ascii_tail("name", 37).build()?;
//! assert_eq!(register.decode(op.body)?.ascii("name")?, "foo.test");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `bitcoin` feature (on by default) provides [`carrier`]; without it the crate has no
//! dependency on the `bitcoin` crate.

#[cfg(feature = "bitcoin")]
pub mod carrier;
pub mod layout;
pub mod payload;
pub mod record;
pub mod storage;

#[cfg(feature = "bitcoin")]
pub use bitcoin;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
