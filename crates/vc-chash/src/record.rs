//! Consensus records: the canonical bytes an application commits for each accepted operation.
//!
//! An application describes a committed operation as a [`Record`]: an opcode (the legacy
//! scheme's opcode string, such as `NAME_REGISTRATION`, or any short tag) and the values of the
//! opcode's field list, in order. [`encode`] turns it into the bytes that the block's ops hash
//! covers, under the chain's scheme. Both encodings are consensus rules, so they live here, next
//! to the hashing of their bytes, and a light client can decode the records a proof verifies
//! with this crate alone (`vc_codec::record` re-exports this module):
//!
//! * **Legacy**: the field-list serialization of the Python virtualchain, implemented once in
//!   [`crate::legacy::record`] and only called from here.
//! * **V2**: the canonical encoding below (also in `docs/consensus-hash-v2.md`, section 2.1).
//!   It is typed, length-prefixed and has exactly one encoding per record, so two
//!   implementations that agree on the values agree on the bytes; [`decode_v2`] reverses it and
//!   rejects any non-canonical input.
//!
//! ```text
//! record = 0x01 (encoding version) || u8 len || opcode || u16 count || value{count}
//! value  = 0x00                              null
//!        | 0x01 || 0x00 | 0x01               boolean
//!        | 0x02 || u64                       unsigned integer
//!        | 0x03 || i64 (two's complement)    signed integer
//!        | 0x04 || u32 len || bytes          bytes
//!        | 0x05 || u32 len || UTF-8 text     text
//! ```
//!
//! Integers are big-endian. Floats exist only for the legacy scheme, whose records the Python
//! code rendered with `str()`; v2 refuses them (consensus code must not depend on floating point).
//! Storage encodings (postcard, in `vc-codec`) are never hashed.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::legacy::record::{Field, serialize};
use crate::types::Scheme;

/// The version byte that starts every v2 record.
pub const V2_RECORD_VERSION: u8 = 0x01;

/// One field value of a record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordValue {
    /// No value (Python `None`).
    Null,
    /// A boolean.
    Bool(bool),
    /// An unsigned integer.
    Uint(u64),
    /// A signed integer.
    Int(i64),
    /// Bytes (in the legacy scheme: a Python 2 `str`, rendered as-is).
    Bytes(Vec<u8>),
    /// UTF-8 text.
    Text(String),
    /// A float: legacy scheme only.
    LegacyFloat(f64),
}

/// An operation as committed: opcode and field values in the application's field-list order.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The opcode or opcode name (at most 255 bytes in v2).
    pub opcode: Vec<u8>,
    /// The values of the opcode's field list, in order.
    pub values: Vec<RecordValue>,
}

impl Record {
    /// A record with `opcode` and no values yet; add them in field-list order with
    /// [`Record::with`].
    ///
    /// ```
    /// use vc_chash::record::{Record, RecordValue};
    /// let r = Record::new("+").with(7u64).with("alice");
    /// assert_eq!(r.values, vec![RecordValue::Uint(7), RecordValue::Text("alice".into())]);
    /// ```
    pub fn new(opcode: impl AsRef<[u8]>) -> Self {
        Record {
            opcode: opcode.as_ref().to_vec(),
            values: Vec::new(),
        }
    }

    /// Appends a value.
    pub fn with(mut self, value: impl Into<RecordValue>) -> Self {
        self.values.push(value.into());
        self
    }
}

impl From<bool> for RecordValue {
    fn from(v: bool) -> Self {
        RecordValue::Bool(v)
    }
}

impl From<u64> for RecordValue {
    fn from(v: u64) -> Self {
        RecordValue::Uint(v)
    }
}

impl From<u32> for RecordValue {
    fn from(v: u32) -> Self {
        RecordValue::Uint(u64::from(v))
    }
}

impl From<i64> for RecordValue {
    fn from(v: i64) -> Self {
        RecordValue::Int(v)
    }
}

impl From<&str> for RecordValue {
    fn from(v: &str) -> Self {
        RecordValue::Text(v.to_owned())
    }
}

impl From<String> for RecordValue {
    fn from(v: String) -> Self {
        RecordValue::Text(v)
    }
}

impl From<&[u8]> for RecordValue {
    fn from(v: &[u8]) -> Self {
        RecordValue::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for RecordValue {
    fn from(v: Vec<u8>) -> Self {
        RecordValue::Bytes(v)
    }
}

impl<T: Into<RecordValue>> From<Option<T>> for RecordValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(RecordValue::Null, Into::into)
    }
}

/// Why a record cannot be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// V2 cannot encode floats.
    FloatInV2 {
        /// The value's position.
        index: usize,
    },
    /// The opcode is longer than 255 bytes.
    OpcodeTooLong(usize),
    /// More than 65,535 values.
    TooManyValues(usize),
    /// A bytes or text value longer than `u32::MAX`.
    ValueTooLong {
        /// The value's position.
        index: usize,
    },
    /// Decoding: the input ends early.
    Truncated {
        /// Where the missing bytes start.
        offset: usize,
        /// How many are missing.
        need: usize,
    },
    /// Splitting a legacy record: the bytes at `offset` are not `what` the format needs there.
    Malformed {
        /// Where.
        offset: usize,
        /// What the format needs there.
        what: &'static str,
    },
    /// Decoding: an unknown encoding version.
    UnknownVersion(u8),
    /// Decoding: an unknown value tag, or a boolean byte other than 0 or 1.
    BadTag {
        /// The byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// Decoding: text that is not UTF-8.
    NotUtf8 {
        /// Where the text starts.
        offset: usize,
    },
    /// Decoding: bytes after the last value.
    Trailing {
        /// Where they start.
        offset: usize,
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::FloatInV2 { index } => write!(
                f,
                "value {index} is a float, which only the legacy scheme can commit"
            ),
            RecordError::OpcodeTooLong(len) => {
                write!(f, "opcode of {len} bytes is longer than 255")
            }
            RecordError::TooManyValues(count) => {
                write!(f, "{count} values; a v2 record holds at most 65535")
            }
            RecordError::ValueTooLong { index } => {
                write!(f, "value {index} is longer than 2^32 - 1 bytes")
            }
            RecordError::Truncated { offset, need } => write!(
                f,
                "record truncated at byte offset {offset}: need {need} more bytes"
            ),
            RecordError::Malformed { offset, what } => write!(
                f,
                "legacy record malformed at byte offset {offset}: expected {what}"
            ),
            RecordError::UnknownVersion(version) => {
                write!(f, "unknown v2 record encoding version 0x{version:02x}")
            }
            RecordError::BadTag { byte, offset } => write!(
                f,
                "invalid value tag or boolean 0x{byte:02x} at byte offset {offset}"
            ),
            RecordError::NotUtf8 { offset } => {
                write!(f, "text at byte offset {offset} is not UTF-8")
            }
            RecordError::Trailing { offset, extra } => write!(
                f,
                "{extra} bytes after the record's last value at byte offset {offset}"
            ),
        }
    }
}

impl core::error::Error for RecordError {}

/// Encodes `record` for `scheme`: the bytes the ops hash covers.
pub fn encode(scheme: Scheme, record: &Record) -> Result<Vec<u8>, RecordError> {
    match scheme {
        Scheme::Legacy => Ok(encode_legacy(record)),
        Scheme::V2 | Scheme::V3 => encode_v2(record),
    }
}

/// The legacy field-list serialization (`opcode:len:value,len:value,...`).
pub fn encode_legacy(record: &Record) -> Vec<u8> {
    let fields: Vec<Field<'_>> = record
        .values
        .iter()
        .map(|v| match v {
            RecordValue::Null => Field::None,
            RecordValue::Bool(b) => Field::Bool(*b),
            RecordValue::Uint(n) => Field::Int(i128::from(*n)),
            RecordValue::Int(n) => Field::Int(i128::from(*n)),
            RecordValue::Bytes(b) => Field::Str(b),
            RecordValue::Text(s) => Field::Str(s.as_bytes()),
            RecordValue::LegacyFloat(f) => Field::Float(*f),
        })
        .collect();
    serialize(&record.opcode, &fields)
}

/// Splits a legacy record (`opcode:len:value,len:value,...`) whose opcode is `opcode_len`
/// bytes into its opcode and its rendered field values. The legacy format keeps no types (an
/// integer is its decimal digits, `None` is empty), so the caller interprets the values by
/// position, as the application's field list orders them.
///
/// ```
/// use vc_chash::record::split_legacy;
/// let (opcode, values) = split_legacy(b"+:8:alice.id,0:,3:a:b", 1).unwrap();
/// assert_eq!(opcode, b"+");
/// assert_eq!(values, [&b"alice.id"[..], b"", b"a:b"]);
/// ```
pub fn split_legacy(bytes: &[u8], opcode_len: usize) -> Result<(&[u8], Vec<&[u8]>), RecordError> {
    let bad = |offset: usize, what: &'static str| RecordError::Malformed { offset, what };
    let opcode = bytes.get(..opcode_len).ok_or(bad(0, "opcode"))?;
    if bytes.get(opcode_len) != Some(&b':') {
        return Err(bad(opcode_len, "':' after the opcode"));
    }
    let mut at = opcode_len + 1;
    let mut values = Vec::new();
    while at < bytes.len() {
        if !values.is_empty() {
            if bytes[at] != b',' {
                return Err(bad(at, "',' between values"));
            }
            at += 1;
        }
        let colon = bytes[at..]
            .iter()
            .position(|&b| b == b':')
            .ok_or(bad(at, "a value length"))?;
        let digits = &bytes[at..at + colon];
        if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad(at, "a decimal value length"));
        }
        let len: usize = core::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(bad(at, "a decimal value length"))?;
        let start = at + colon + 1;
        let value = start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .ok_or(bad(start, "as many value bytes as the length says"))?;
        values.push(value);
        at = start + len;
    }
    Ok((opcode, values))
}

/// The v2 canonical encoding.
pub fn encode_v2(record: &Record) -> Result<Vec<u8>, RecordError> {
    let op_len = u8::try_from(record.opcode.len())
        .map_err(|_| RecordError::OpcodeTooLong(record.opcode.len()))?;
    let count = u16::try_from(record.values.len())
        .map_err(|_| RecordError::TooManyValues(record.values.len()))?;
    let mut out = Vec::with_capacity(4 + record.opcode.len() + 9 * record.values.len());
    out.push(V2_RECORD_VERSION);
    out.push(op_len);
    out.extend_from_slice(&record.opcode);
    out.extend_from_slice(&count.to_be_bytes());
    for (index, v) in record.values.iter().enumerate() {
        match v {
            RecordValue::Null => out.push(0x00),
            RecordValue::Bool(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
            RecordValue::Uint(n) => {
                out.push(0x02);
                out.extend_from_slice(&n.to_be_bytes());
            }
            RecordValue::Int(n) => {
                out.push(0x03);
                out.extend_from_slice(&n.to_be_bytes());
            }
            RecordValue::Bytes(b) => put_bytes(&mut out, 0x04, b, index)?,
            RecordValue::Text(s) => put_bytes(&mut out, 0x05, s.as_bytes(), index)?,
            RecordValue::LegacyFloat(_) => return Err(RecordError::FloatInV2 { index }),
        }
    }
    Ok(out)
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8], index: usize) -> Result<(), RecordError> {
    let len = u32::try_from(b.len()).map_err(|_| RecordError::ValueTooLong { index })?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let have = self.bytes.len() - self.at;
        if have < n {
            return Err(RecordError::Truncated {
                offset: self.at,
                need: n - have,
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Decodes a v2 record. Total: any input gives a record or an error with a byte offset, and a
/// decoded record re-encodes to exactly the input.
pub fn decode_v2(bytes: &[u8]) -> Result<Record, RecordError> {
    let mut c = Cursor { bytes, at: 0 };
    let version = c.byte()?;
    if version != V2_RECORD_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let op_len = usize::from(c.byte()?);
    let opcode = c.take(op_len)?.to_vec();
    let count = u16::from_be_bytes(c.array()?);
    let mut values = Vec::with_capacity(usize::from(count).min(bytes.len()));
    for _ in 0..count {
        let offset = c.at;
        let tag = c.byte()?;
        values.push(match tag {
            0x00 => RecordValue::Null,
            0x01 => match c.byte()? {
                0 => RecordValue::Bool(false),
                1 => RecordValue::Bool(true),
                byte => {
                    return Err(RecordError::BadTag {
                        byte,
                        offset: c.at - 1,
                    });
                }
            },
            0x02 => RecordValue::Uint(u64::from_be_bytes(c.array()?)),
            0x03 => RecordValue::Int(i64::from_be_bytes(c.array()?)),
            0x04 | 0x05 => {
                let len = u32::from_be_bytes(c.array()?);
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let start = c.at;
                let raw = c.take(len)?;
                if tag == 0x04 {
                    RecordValue::Bytes(raw.to_vec())
                } else {
                    let text = core::str::from_utf8(raw)
                        .map_err(|_| RecordError::NotUtf8 { offset: start })?;
                    RecordValue::Text(text.to_owned())
                }
            }
            byte => return Err(RecordError::BadTag { byte, offset }),
        });
    }
    if c.at != bytes.len() {
        return Err(RecordError::Trailing {
            offset: c.at,
            extra: bytes.len() - c.at,
        });
    }
    Ok(Record { opcode, values })
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    #[test]
    fn split_legacy_inverts_encode_legacy() {
        let record = Record {
            opcode: b":".to_vec(),
            values: vec![
                RecordValue::Text("a,b:c".into()),
                RecordValue::Null,
                RecordValue::Bool(true),
                RecordValue::Uint(42),
            ],
        };
        let bytes = encode_legacy(&record);
        let (opcode, values) = split_legacy(&bytes, 1).unwrap();
        assert_eq!(opcode, b":");
        assert_eq!(values, [&b"a,b:c"[..], b"", b"True", b"42"]);
        assert_eq!(split_legacy(b"?:", 1).unwrap().1.len(), 0);
        for bad in [
            &b""[..],
            b"?",
            b"?x",
            b"?:3:ab",
            b"?:1:a2:bc",
            b"?::a",
            b"?:x:a",
            b"?:1:a,",
        ] {
            assert!(split_legacy(bad, 1).is_err(), "{bad:?}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn sample() -> Record {
        Record {
            opcode: b"NAME_REGISTRATION".to_vec(),
            values: vec![
                RecordValue::Text("foo.test".into()),
                RecordValue::Uint(6_400_000),
                RecordValue::Null,
                RecordValue::Bool(true),
                RecordValue::Bytes(vec![0xde, 0xad]),
                RecordValue::Int(-3),
            ],
        }
    }

    #[test]
    fn legacy_uses_the_field_list_serialization() {
        assert_eq!(
            encode(Scheme::Legacy, &sample()).unwrap(),
            b"NAME_REGISTRATION:8:foo.test,7:6400000,0:,4:True,2:\xde\xad,2:-3".to_vec()
        );
        let f = Record {
            opcode: b"?".to_vec(),
            values: vec![RecordValue::LegacyFloat(6400000.0)],
        };
        assert_eq!(encode(Scheme::Legacy, &f).unwrap(), b"?:9:6400000.0");
        assert_eq!(
            encode(Scheme::V2, &f),
            Err(RecordError::FloatInV2 { index: 0 })
        );
    }

    #[test]
    fn v2_known_bytes() {
        let r = Record {
            opcode: b":".to_vec(),
            values: vec![
                RecordValue::Uint(1),
                RecordValue::Text("a".into()),
                RecordValue::Bool(false),
            ],
        };
        let want: Vec<u8> = [
            &[0x01, 0x01, b':', 0x00, 0x03][..],
            &[0x02, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x05, 0, 0, 0, 1, b'a'],
            &[0x01, 0x00],
        ]
        .concat();
        assert_eq!(encode_v2(&r).unwrap(), want);
        assert_eq!(decode_v2(&want).unwrap(), r);
    }

    #[test]
    fn v2_decoding_errors() {
        let good = encode_v2(&sample()).unwrap();
        assert_eq!(decode_v2(&[0x02]), Err(RecordError::UnknownVersion(2)));
        assert!(matches!(
            decode_v2(&good[..good.len() - 1]),
            Err(RecordError::Truncated { .. })
        ));
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(
            decode_v2(&extra),
            Err(RecordError::Trailing {
                offset: good.len(),
                extra: 1
            })
        );
        assert_eq!(
            decode_v2(&[1, 0, 0, 1, 0x01, 0x02]),
            Err(RecordError::BadTag { byte: 2, offset: 5 })
        );
        assert_eq!(
            decode_v2(&[1, 0, 0, 1, 0x09]),
            Err(RecordError::BadTag { byte: 9, offset: 4 })
        );
        assert_eq!(
            decode_v2(&[1, 0, 0, 1, 0x05, 0, 0, 0, 1, 0xff]),
            Err(RecordError::NotUtf8 { offset: 9 })
        );
        // A huge declared length is an error, not an allocation.
        assert!(matches!(
            decode_v2(&[1, 0, 0xff, 0xff, 0x04, 0xff, 0xff, 0xff, 0xff]),
            Err(RecordError::Truncated { .. })
        ));
    }

    fn value() -> impl Strategy<Value = RecordValue> {
        prop_oneof![
            Just(RecordValue::Null),
            any::<bool>().prop_map(RecordValue::Bool),
            any::<u64>().prop_map(RecordValue::Uint),
            any::<i64>().prop_map(RecordValue::Int),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(RecordValue::Bytes),
            ".{0,20}".prop_map(RecordValue::Text),
        ]
    }

    proptest! {
        #[test]
        fn v2_round_trip(opcode in prop::collection::vec(any::<u8>(), 0..20),
                         values in prop::collection::vec(value(), 0..12)) {
            let r = Record { opcode, values };
            let bytes = encode_v2(&r).unwrap();
            prop_assert_eq!(decode_v2(&bytes).unwrap(), r);
        }

        #[test]
        fn v2_decoding_is_total_and_canonical(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(r) = decode_v2(&bytes) {
                prop_assert_eq!(encode_v2(&r).unwrap(), bytes);
            }
        }
    }
}
