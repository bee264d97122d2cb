//! Byte-level reading and writing for the proof wire format.
//!
//! All integers are fixed-width big-endian, so every value has exactly one encoding; the reader
//! never allocates more than the input could hold and reports the byte offset of every failure.

use alloc::vec::Vec;
use core::fmt;

use crate::types::Hash256;

/// Why bytes could not be decoded, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input at which decoding failed.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

/// The kinds of [`DecodeError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended while `needed` more bytes were required for `what`.
    UnexpectedEnd {
        /// The field being read.
        what: &'static str,
        /// Bytes required from the offset on.
        needed: usize,
    },
    /// The input does not start with the proof magic `vc`.
    BadMagic,
    /// A format version this implementation does not know.
    UnsupportedVersion(u8),
    /// A scheme byte naming no scheme.
    UnknownScheme(u8),
    /// A presence flag other than 0 or 1.
    InvalidFlag(u8),
    /// A count larger than the format allows or than the remaining input could hold.
    CountTooLarge {
        /// The counted field.
        what: &'static str,
        /// The count read.
        count: u64,
    },
    /// Bytes left over after a complete proof.
    TrailingBytes(usize),
    /// A field in a form the format forbids so that each proof has one encoding (padding
    /// bits set, an empty hash spelled out).
    NonCanonical(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match self.kind {
            DecodeErrorKind::UnexpectedEnd { what, needed } => {
                write!(
                    f,
                    "input ends while reading {what} ({needed} more bytes needed)"
                )
            }
            DecodeErrorKind::BadMagic => f.write_str("not a virtualchain proof (bad magic)"),
            DecodeErrorKind::UnsupportedVersion(v) => write!(f, "unsupported proof version {v}"),
            DecodeErrorKind::UnknownScheme(s) => write!(f, "unknown consensus-hash scheme {s}"),
            DecodeErrorKind::InvalidFlag(b) => write!(f, "invalid presence flag {b}"),
            DecodeErrorKind::CountTooLarge { what, count } => {
                write!(f, "{what} count {count} is larger than the input allows")
            }
            DecodeErrorKind::TrailingBytes(n) => write!(f, "{n} trailing bytes after the proof"),
            DecodeErrorKind::NonCanonical(what) => write!(f, "non-canonical {what}"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A cursor over input bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    /// An error of `kind` at an earlier `offset`.
    pub(crate) fn error_at(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.error(DecodeErrorKind::UnexpectedEnd {
                what,
                needed: n - self.remaining(),
            }));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn hash(&mut self, what: &'static str) -> Result<Hash256, DecodeError> {
        Ok(Hash256(self.array(what)?))
    }

    /// A presence flag: exactly 0 or 1.
    pub(crate) fn flag(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let start = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::InvalidFlag(b),
            }),
        }
    }

    /// A count of items each at least `min_item_len` bytes long, checked against both `max` and
    /// the remaining input so that a hostile count cannot cause a large allocation.
    pub(crate) fn count(
        &mut self,
        width: CountWidth,
        what: &'static str,
        max: u64,
        min_item_len: usize,
    ) -> Result<usize, DecodeError> {
        let start = self.pos;
        let count = match width {
            CountWidth::U8 => u64::from(self.u8(what)?),
            CountWidth::U32 => u64::from(self.u32(what)?),
        };
        let fits = (self.remaining() / min_item_len.max(1)) as u64;
        if count > max || count > fits {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::CountTooLarge { what, count },
            });
        }
        Ok(count as usize)
    }

    /// Fails unless the whole input was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeErrorKind::TrailingBytes(n))),
        }
    }
}

/// Reads a proof's magic and format version (refusing others) and returns its scheme byte
/// with the byte's offset.
pub(crate) fn read_preamble(
    r: &mut Reader<'_>,
    magic: [u8; 2],
    version: u8,
) -> Result<(u8, usize), DecodeError> {
    if r.array::<2>("magic")? != magic {
        return Err(r.error_at(0, DecodeErrorKind::BadMagic));
    }
    let at = r.offset();
    let found = r.u8("version")?;
    if found != version {
        return Err(r.error_at(at, DecodeErrorKind::UnsupportedVersion(found)));
    }
    let at = r.offset();
    Ok((r.u8("scheme")?, at))
}

/// The width of a count field.
#[derive(Clone, Copy)]
pub(crate) enum CountWidth {
    U8,
    U32,
}

/// Reads a record list: `u32 count`, then `u32 length || bytes` per record.
pub(crate) fn read_records(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, DecodeError> {
    let count = r.count(CountWidth::U32, "record", u64::from(u32::MAX), 4)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.count(CountWidth::U32, "record byte", u64::from(u32::MAX), 1)?;
        records.push(r.bytes(len, "record")?.to_vec());
    }
    Ok(records)
}

/// Writes a record list in the form [`read_records`] reads.
pub(crate) fn write_records(out: &mut Vec<u8>, records: &[Vec<u8>]) {
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_be_bytes());
        out.extend_from_slice(r);
    }
}

/// Writes a `u8` count. Counts written this way are bounded by the format (at most 64).
pub(crate) fn write_count_u8(out: &mut Vec<u8>, n: usize) {
    out.push(u8::try_from(n).unwrap_or(u8::MAX));
}
