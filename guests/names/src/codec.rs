//! The bytes the native names app stores: `vc_codec::storage`'s version byte followed by the
//! postcard encoding of the value (LEB128 varints for `u16`/`u32`/`u64`, one byte for `u8` and
//! `bool`, a varint length before a `Vec` or `String`, fixed arrays as their bytes, `Option` as
//! a `0`/`1` tag), so that a database indexed by this module holds the native app's bytes.

use alloc::string::String;
use alloc::vec::Vec;

/// Appends postcard values.
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// A value of storage encoding version 1. (Room for the largest record up front: each
    /// growth of a `Vec` is a new allocation and a copy, and nothing is freed in a call.)
    pub fn stored() -> Enc {
        let mut bytes = Vec::with_capacity(160);
        bytes.push(1);
        Enc(bytes)
    }

    /// A varint (`u16`, `u32`, `u64`).
    pub fn varint(&mut self, mut n: u64) -> &mut Self {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }

    /// A `u8`.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }

    /// A `Vec<u8>` or `String`.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// A fixed array.
    pub fn array(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Reads postcard values; every read is checked.
pub struct Dec<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    /// A stored value: checks and skips the version byte `1`.
    pub fn stored(bytes: &'a [u8]) -> Option<Dec<'a>> {
        match bytes.first() {
            Some(1) => Some(Dec { bytes, at: 1 }),
            _ => None,
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// A `u8`.
    pub fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A varint of at most `max_bytes` bytes.
    pub fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f).checked_shl(7 * i)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A `Vec<u8>`.
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.varint()?).ok()?;
        Some(self.take(n)?.to_vec())
    }

    /// A `String`.
    pub fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    /// A fixed array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Some(out)
    }

    /// A `bool`.
    pub fn boolean(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// An `Option` tag.
    pub fn some(&mut self) -> Option<bool> {
        self.boolean()
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}
