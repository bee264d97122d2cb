//! Body layouts: an application declares the fields of an operation's body once and gets
//! decoding and encoding with byte offsets in every error.
//!
//! ```
//! use vc_codec::layout::{Layout, Value};
//!
//! // BNS name preorder: hash160(name || script || address) then a 16-byte consensus hash.
//! let preorder = Layout::builder().hash160("preorder_hash").consensus_hash16("consensus_hash").build()?;
//! let body = [[0xaa; 20].as_slice(), &[0xbb; 16]].concat();
//! let fields = preorder.decode(&body)?;
//! assert_eq!(fields.array::<20>("preorder_hash")?, [0xaa; 20]);
//! assert_eq!(preorder.encode(fields.values())?, body);
//! assert!(preorder.decode(&body[..30]).is_err()); // truncated inside `consensus_hash`
//! # Ok::<(), vc_codec::layout::LayoutError>(())
//! ```

use thiserror::Error;

/// The kind of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// Exactly `n` bytes.
    Bytes(usize),
    /// An unsigned big-endian integer of 1, 2, 4 or 8 bytes.
    Uint(UintWidth),
    /// A 20-byte HASH160.
    Hash160,
    /// A 16-byte (legacy) consensus hash.
    ConsensusHash16,
    /// A 32-byte (v2) consensus hash.
    ConsensusHash32,
    /// ASCII text in a fixed width of `n` bytes, padded on the right with NUL bytes.
    Ascii(usize),
    /// All remaining bytes (at most `max`); only as the last field.
    Tail {
        /// The longest tail accepted.
        max: usize,
    },
    /// All remaining bytes as ASCII text (at most `max`, no NUL); only as the last field.
    AsciiTail {
        /// The longest tail accepted.
        max: usize,
    },
}

/// Widths of [`FieldKind::Uint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UintWidth {
    /// `u8`.
    U8 = 1,
    /// `u16`, big-endian.
    U16 = 2,
    /// `u32`, big-endian.
    U32 = 4,
    /// `u64`, big-endian.
    U64 = 8,
}

impl FieldKind {
    /// The field's width, or `None` for a tail.
    pub fn width(&self) -> Option<usize> {
        Some(match *self {
            FieldKind::Bytes(n) | FieldKind::Ascii(n) => n,
            FieldKind::Uint(w) => w as usize,
            FieldKind::Hash160 => 20,
            FieldKind::ConsensusHash16 => 16,
            FieldKind::ConsensusHash32 => 32,
            FieldKind::Tail { .. } | FieldKind::AsciiTail { .. } => return None,
        })
    }

    fn expects(&self) -> &'static str {
        match self {
            FieldKind::Uint(_) => "an integer",
            FieldKind::Ascii(_) | FieldKind::AsciiTail { .. } => "ASCII text",
            _ => "bytes",
        }
    }
}

/// A decoded field value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// Raw bytes (fixed-width fields, hashes, byte tails).
    Bytes(Vec<u8>),
    /// An unsigned integer.
    Uint(u64),
    /// ASCII text (without its NUL padding).
    Ascii(String),
}

/// A named field of a layout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field's name, used by the getters and in errors.
    pub name: &'static str,
    /// The field's kind.
    pub kind: FieldKind,
}

/// Why a body does not fit a layout, why values cannot be encoded, or why a layout is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The body ends inside a field.
    #[error("field `{field}` at byte offset {offset} needs {need} bytes, {have} left")]
    Truncated {
        /// The field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its width.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// Bytes remain after the last field.
    #[error("{extra} unexpected bytes at byte offset {offset} after the last field")]
    Trailing {
        /// Where the extra bytes start.
        offset: usize,
        /// How many.
        extra: usize,
    },
    /// A text field holds a byte that is not ASCII (or a NUL inside a tail).
    #[error(
        "field `{field}`: byte 0x{byte:02x} at byte offset {offset} is not allowed in ASCII text"
    )]
    NotAscii {
        /// The field.
        field: &'static str,
        /// The offending byte's offset.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A NUL-padded field has text after its padding started.
    #[error("field `{field}`: text after NUL padding at byte offset {offset}")]
    BadPadding {
        /// The field.
        field: &'static str,
        /// The offset of the first non-NUL byte after padding.
        offset: usize,
    },
    /// A tail (or a value for a fixed field) is too long.
    #[error("field `{field}` at byte offset {offset} has {len} bytes, at most {max} allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value for a fixed-width byte field has the wrong length.
    #[error("field `{field}` needs exactly {need} bytes, got {len}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// The field's width.
        need: usize,
        /// The value's length.
        len: usize,
    },
    /// An integer does not fit its field's width.
    #[error("field `{field}`: {value} does not fit in {bytes} bytes")]
    Overflow {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The field's width.
        bytes: usize,
    },
    /// A value of the wrong type for its field (encoding) or getter (decoded fields).
    #[error("field `{field}` holds {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What the field holds.
        expected: &'static str,
    },
    /// Encoding got a different number of values than the layout has fields.
    #[error("layout has {expected} fields, got {got} values")]
    ValueCount {
        /// Number of fields.
        expected: usize,
        /// Number of values.
        got: usize,
    },
    /// A getter asked for a field the layout does not have.
    #[error("no field named `{0}`")]
    NoSuchField(String),
    /// Layout definition: a tail that is not the last field.
    #[error("layout definition: tail field `{0}` must be the last field")]
    TailNotLast(&'static str),
    /// Layout definition: two fields with one name.
    #[error("layout definition: field name `{0}` is used twice")]
    DuplicateName(&'static str),
    /// Layout definition: a uint width other than 1, 2, 4 or 8.
    #[error("layout definition: field `{0}` has an unsupported integer width")]
    BadWidth(&'static str),
}

/// An ordered list of fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    fields: Vec<Field>,
    fixed: usize,
    tail_max: Option<usize>,
}

/// Builds a [`Layout`] field by field; [`LayoutBuilder::build`] checks the definition.
#[derive(Clone, Debug, Default)]
pub struct LayoutBuilder {
    fields: Vec<Field>,
}

impl LayoutBuilder {
    /// Adds a field of any kind.
    pub fn field(mut self, name: &'static str, kind: FieldKind) -> Self {
        self.fields.push(Field { name, kind });
        self
    }
    /// Exactly `n` bytes.
    pub fn bytes(self, name: &'static str, n: usize) -> Self {
        self.field(name, FieldKind::Bytes(n))
    }
    /// A `u8`.
    pub fn u8(self, name: &'static str) -> Self {
        self.field(name, FieldKind::Uint(UintWidth::U8))
    }
    /// A big-endian `u16`.
    pub fn u16(self, name: &'static str) -> Self {
        self.field(name, FieldKind::Uint(UintWidth::U16))
    }
    /// A big-endian `u32`.
    pub fn u32(self, name: &'static str) -> Self {
        self.field(name, FieldKind::Uint(UintWidth::U32))
    }
    /// A big-endian `u64`.
    pub fn u64(self, name: &'static str) -> Self {
        self.field(name, FieldKind::Uint(UintWidth::U64))
    }
    /// A 20-byte HASH160.
    pub fn hash160(self, name: &'static str) -> Self {
        self.field(name, FieldKind::Hash160)
    }
    /// A 16-byte consensus hash.
    pub fn consensus_hash16(self, name: &'static str) -> Self {
        self.field(name, FieldKind::ConsensusHash16)
    }
    /// A 32-byte consensus hash.
    pub fn consensus_hash32(self, name: &'static str) -> Self {
        self.field(name, FieldKind::ConsensusHash32)
    }
    /// NUL-padded ASCII text of width `n`.
    pub fn ascii(self, name: &'static str, n: usize) -> Self {
        self.field(name, FieldKind::Ascii(n))
    }
    /// The remaining bytes, at most `max`.
    pub fn tail(self, name: &'static str, max: usize) -> Self {
        self.field(name, FieldKind::Tail { max })
    }
    /// The remaining bytes as ASCII text, at most `max`.
    pub fn ascii_tail(self, name: &'static str, max: usize) -> Self {
        self.field(name, FieldKind::AsciiTail { max })
    }

    /// Checks the definition: unique names, a tail only last.
    pub fn build(self) -> Result<Layout, LayoutError> {
        let mut fixed = 0usize;
        let mut tail_max = None;
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(LayoutError::DuplicateName(f.name));
            }
            match f.kind.width() {
                Some(w) => fixed = fixed.saturating_add(w),
                None if i + 1 == self.fields.len() => {
                    tail_max = match f.kind {
                        FieldKind::Tail { max } | FieldKind::AsciiTail { max } => Some(max),
                        _ => None,
                    }
                }
                None => return Err(LayoutError::TailNotLast(f.name)),
            }
        }
        Ok(Layout {
            fields: self.fields,
            fixed,
            tail_max,
        })
    }
}

impl Layout {
    /// Starts a layout.
    pub fn builder() -> LayoutBuilder {
        LayoutBuilder::default()
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The shortest body this layout accepts.
    pub fn min_len(&self) -> usize {
        self.fixed
    }

    /// The longest body this layout accepts.
    pub fn max_len(&self) -> usize {
        self.fixed.saturating_add(self.tail_max.unwrap_or(0))
    }

    /// Decodes `body`; every byte must belong to a field.
    pub fn decode(&self, body: &[u8]) -> Result<Fields<'_>, LayoutError> {
        let mut values = Vec::with_capacity(self.fields.len());
        let mut at = 0usize;
        for f in &self.fields {
            let rest = body.get(at..).unwrap_or_default();
            let (value, used) = match f.kind.width() {
                Some(need) => {
                    let Some(raw) = rest.get(..need) else {
                        return Err(LayoutError::Truncated {
                            field: f.name,
                            offset: at,
                            need,
                            have: rest.len(),
                        });
                    };
                    (decode_fixed(f, raw, at)?, need)
                }
                None => (decode_tail(f, rest, at)?, rest.len()),
            };
            values.push(value);
            at += used;
        }
        if at < body.len() {
            return Err(LayoutError::Trailing {
                offset: at,
                extra: body.len() - at,
            });
        }
        Ok(Fields {
            layout: self,
            values,
        })
    }

    /// Encodes one value per field, in field order.
    pub fn encode(&self, values: &[Value]) -> Result<Vec<u8>, LayoutError> {
        if values.len() != self.fields.len() {
            return Err(LayoutError::ValueCount {
                expected: self.fields.len(),
                got: values.len(),
            });
        }
        let mut out = Vec::with_capacity(self.fixed);
        for (f, v) in self.fields.iter().zip(values) {
            encode_field(f, v, &mut out)?;
        }
        Ok(out)
    }
}

fn check_ascii(field: &'static str, text: &[u8], base: usize) -> Result<(), LayoutError> {
    match text.iter().position(|&b| b == 0 || !b.is_ascii()) {
        Some(i) => Err(LayoutError::NotAscii {
            field,
            offset: base + i,
            byte: text[i],
        }),
        None => Ok(()),
    }
}

fn decode_fixed(f: &Field, raw: &[u8], at: usize) -> Result<Value, LayoutError> {
    Ok(match f.kind {
        FieldKind::Uint(_) => Value::Uint(raw.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))),
        FieldKind::Ascii(_) => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            let (text, padding) = raw.split_at(end);
            check_ascii(f.name, text, at)?;
            if let Some(i) = padding.iter().position(|&b| b != 0) {
                return Err(LayoutError::BadPadding {
                    field: f.name,
                    offset: at + end + i,
                });
            }
            Value::Ascii(text.iter().map(|&b| char::from(b)).collect())
        }
        _ => Value::Bytes(raw.to_vec()),
    })
}

fn decode_tail(f: &Field, rest: &[u8], at: usize) -> Result<Value, LayoutError> {
    let (max, ascii) = match f.kind {
        FieldKind::Tail { max } => (max, false),
        FieldKind::AsciiTail { max } => (max, true),
        _ => (0, false),
    };
    if rest.len() > max {
        return Err(LayoutError::TooLong {
            field: f.name,
            offset: at,
            len: rest.len(),
            max,
        });
    }
    if ascii {
        check_ascii(f.name, rest, at)?;
        Ok(Value::Ascii(rest.iter().map(|&b| char::from(b)).collect()))
    } else {
        Ok(Value::Bytes(rest.to_vec()))
    }
}

fn encode_field(f: &Field, v: &Value, out: &mut Vec<u8>) -> Result<(), LayoutError> {
    let wrong = || LayoutError::WrongType {
        field: f.name,
        expected: f.kind.expects(),
    };
    let at = out.len();
    match (f.kind, v) {
        (FieldKind::Uint(w), Value::Uint(n)) => {
            let bytes = w as usize;
            if bytes < 8 && *n >> (8 * bytes) != 0 {
                return Err(LayoutError::Overflow {
                    field: f.name,
                    value: *n,
                    bytes,
                });
            }
            out.extend_from_slice(&n.to_be_bytes()[8 - bytes..]);
        }
        (FieldKind::Ascii(width), Value::Ascii(s)) => {
            check_ascii(f.name, s.as_bytes(), at)?;
            if s.len() > width {
                return Err(LayoutError::TooLong {
                    field: f.name,
                    offset: at,
                    len: s.len(),
                    max: width,
                });
            }
            out.extend_from_slice(s.as_bytes());
            out.resize(at + width, 0);
        }
        (FieldKind::AsciiTail { max }, Value::Ascii(s)) => {
            check_ascii(f.name, s.as_bytes(), at)?;
            if s.len() > max {
                return Err(LayoutError::TooLong {
                    field: f.name,
                    offset: at,
                    len: s.len(),
                    max,
                });
            }
            out.extend_from_slice(s.as_bytes());
        }
        (FieldKind::Tail { max }, Value::Bytes(b)) => {
            if b.len() > max {
                return Err(LayoutError::TooLong {
                    field: f.name,
                    offset: at,
                    len: b.len(),
                    max,
                });
            }
            out.extend_from_slice(b);
        }
        (
            FieldKind::Bytes(_)
            | FieldKind::Hash160
            | FieldKind::ConsensusHash16
            | FieldKind::ConsensusHash32,
            Value::Bytes(b),
        ) => {
            let need = f.kind.width().unwrap_or(0);
            if b.len() != need {
                return Err(LayoutError::WrongLength {
                    field: f.name,
                    need,
                    len: b.len(),
                });
            }
            out.extend_from_slice(b);
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

/// A decoded body: one value per field of its layout, with typed getters by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields<'l> {
    layout: &'l Layout,
    values: Vec<Value>,
}

impl Fields<'_> {
    /// The values in field order (what [`Layout::encode`] takes back).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the fields, returning the values in field order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The value of the field `name`.
    pub fn get(&self, name: &str) -> Result<&Value, LayoutError> {
        self.layout
            .fields
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| LayoutError::NoSuchField(name.to_owned()))
    }

    fn static_name(&self, name: &str) -> &'static str {
        self.layout
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.name)
            .unwrap_or("?")
    }

    /// An integer field.
    pub fn uint(&self, name: &str) -> Result<u64, LayoutError> {
        match self.get(name)? {
            Value::Uint(n) => Ok(*n),
            _ => Err(LayoutError::WrongType {
                field: self.static_name(name),
                expected: "no integer",
            }),
        }
    }

    /// A byte field (fixed, hash or tail).
    pub fn bytes(&self, name: &str) -> Result<&[u8], LayoutError> {
        match self.get(name)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(LayoutError::WrongType {
                field: self.static_name(name),
                expected: "no bytes",
            }),
        }
    }

    /// A byte field of exactly `N` bytes, as an array.
    pub fn array<const N: usize>(&self, name: &str) -> Result<[u8; N], LayoutError> {
        let b = self.bytes(name)?;
        b.try_into().map_err(|_| LayoutError::WrongLength {
            field: self.static_name(name),
            need: N,
            len: b.len(),
        })
    }

    /// A text field.
    pub fn ascii(&self, name: &str) -> Result<&str, LayoutError> {
        match self.get(name)? {
            Value::Ascii(s) => Ok(s),
            _ => Err(LayoutError::WrongType {
                field: self.static_name(name),
                expected: "no text",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The BNS namespace reveal body: lifetime, coeff, base, buckets, discounts, version, id.
    fn reveal() -> Layout {
        Layout::builder()
            .u32("lifetime")
            .u8("coeff")
            .u8("base")
            .bytes("buckets", 8)
            .u8("discounts")
            .u16("version")
            .ascii_tail("namespace_id", 19)
            .build()
            .unwrap()
    }

    #[test]
    fn decodes_a_namespace_reveal() {
        let mut body = vec![0, 0, 0x10, 0, 4, 10];
        body.extend([0x55; 8]);
        body.extend([0x11, 0x00, 0x01]);
        body.extend(b"test");
        let l = reveal();
        let f = l.decode(&body).unwrap();
        assert_eq!(f.uint("lifetime").unwrap(), 0x1000);
        assert_eq!(f.uint("version").unwrap(), 1);
        assert_eq!(f.ascii("namespace_id").unwrap(), "test");
        assert_eq!(f.array::<8>("buckets").unwrap(), [0x55; 8]);
        assert!(f.uint("buckets").is_err());
        assert_eq!(f.uint("nope"), Err(LayoutError::NoSuchField("nope".into())));
        assert_eq!(l.encode(f.values()).unwrap(), body);
        assert_eq!((l.min_len(), l.max_len()), (17, 36));
    }

    #[test]
    fn errors_name_field_and_offset() {
        let l = reveal();
        assert_eq!(
            l.decode(&[0; 10]),
            Err(LayoutError::Truncated {
                field: "buckets",
                offset: 6,
                need: 8,
                have: 4
            })
        );
        let mut body = vec![0; 17];
        body.extend(b"te\xffst");
        assert_eq!(
            l.decode(&body),
            Err(LayoutError::NotAscii {
                field: "namespace_id",
                offset: 19,
                byte: 0xff
            })
        );
        let padded = Layout::builder().ascii("s", 6).build().unwrap();
        assert_eq!(
            padded.decode(b"ab\0c\0\0"),
            Err(LayoutError::BadPadding {
                field: "s",
                offset: 3
            })
        );
        assert_eq!(
            padded.decode(b"ab\0\0\0\0").unwrap().ascii("s").unwrap(),
            "ab"
        );
        assert_eq!(
            padded.encode(&[Value::Ascii("ab".into())]).unwrap(),
            b"ab\0\0\0\0"
        );
        let fixed = Layout::builder().u16("a").build().unwrap();
        assert_eq!(
            fixed.decode(&[1, 2, 3]),
            Err(LayoutError::Trailing {
                offset: 2,
                extra: 1
            })
        );
        assert_eq!(
            fixed.encode(&[Value::Uint(70_000)]),
            Err(LayoutError::Overflow {
                field: "a",
                value: 70_000,
                bytes: 2
            })
        );
        assert!(matches!(
            fixed.encode(&[Value::Bytes(vec![])]),
            Err(LayoutError::WrongType { field: "a", .. })
        ));
        assert_eq!(
            Layout::builder().tail("t", 3).u8("x").build(),
            Err(LayoutError::TailNotLast("t"))
        );
        assert_eq!(
            Layout::builder().u8("x").u8("x").build(),
            Err(LayoutError::DuplicateName("x"))
        );
    }

    fn value_for(kind: FieldKind) -> BoxedStrategy<Value> {
        match kind {
            FieldKind::Uint(w) => {
                let max = if w == UintWidth::U64 {
                    u64::MAX
                } else {
                    (1u64 << (8 * w as u32)) - 1
                };
                (0..=max).prop_map(Value::Uint).boxed()
            }
            FieldKind::Ascii(n) => proptest::string::string_regex(&format!("[ -~]{{0,{n}}}"))
                .unwrap()
                .prop_map(Value::Ascii)
                .boxed(),
            FieldKind::AsciiTail { max } => {
                proptest::string::string_regex(&format!("[ -~]{{0,{max}}}"))
                    .unwrap()
                    .prop_map(Value::Ascii)
                    .boxed()
            }
            FieldKind::Tail { max } => prop::collection::vec(any::<u8>(), 0..=max)
                .prop_map(Value::Bytes)
                .boxed(),
            other => {
                let n = other.width().unwrap_or(0);
                prop::collection::vec(any::<u8>(), n..=n)
                    .prop_map(Value::Bytes)
                    .boxed()
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(values in (value_for(FieldKind::Uint(UintWidth::U32)), value_for(FieldKind::Uint(UintWidth::U8)),
                                 value_for(FieldKind::Uint(UintWidth::U8)), value_for(FieldKind::Bytes(8)),
                                 value_for(FieldKind::Uint(UintWidth::U8)), value_for(FieldKind::Uint(UintWidth::U16)),
                                 value_for(FieldKind::AsciiTail { max: 19 }))) {
            let l = reveal();
            let v = vec![values.0, values.1, values.2, values.3, values.4, values.5, values.6];
            let bytes = l.encode(&v).unwrap();
            prop_assert_eq!(l.decode(&bytes).unwrap().into_values(), v);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let l = Layout::builder().hash160("h").ascii("a", 5).u64("n").consensus_hash16("c").tail("t", 4).build().unwrap();
            if let Ok(f) = l.decode(&bytes) {
                prop_assert_eq!(&l.encode(f.values()).unwrap(), &bytes);
            }
            let _ = reveal().decode(&bytes);
        }
    }
}
