//! The payload framing: `magic || opcode || body`.

use thiserror::Error;

/// Why bytes are not a payload of an application.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Fewer bytes than the magic and an opcode.
    #[error("payload of {len} bytes is too short: need at least {min} (magic and opcode)")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// Magic length plus one.
        min: usize,
    },
    /// The payload does not start with the application's magic.
    #[error("wrong magic: expected {expected:02x?}, found {found:02x?}")]
    WrongMagic {
        /// The application's magic.
        expected: Vec<u8>,
        /// The payload's first bytes.
        found: Vec<u8>,
    },
    /// The opcode byte is not one the application declares.
    #[error("undeclared opcode 0x{opcode:02x} at byte offset {offset}")]
    UndeclaredOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its offset in the payload (the magic's length).
        offset: usize,
    },
    /// The whole payload is longer than the configured limit.
    #[error("payload of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Payload length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Why a [`PayloadFormat`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The magic must have 1 to 8 bytes.
    #[error("magic must have 1 to 8 bytes, got {0}")]
    MagicLength(usize),
    /// The limit must leave room for magic and opcode and stay within 100,000 bytes.
    #[error("payload limit {limit} must be between {min} and {max}")]
    Limit {
        /// The requested limit.
        limit: usize,
        /// Magic length plus one.
        min: usize,
        /// [`MAX_PAYLOAD_LIMIT`].
        max: usize,
    },
}

/// The largest payload limit a format may set (Bitcoin Core v30's default data-carrier size).
pub const MAX_PAYLOAD_LIMIT: usize = 100_000;

/// The standard OP_RETURN payload size before Bitcoin Core v30.
pub const DEFAULT_PAYLOAD_LIMIT: usize = 80;

/// An application's payload format: its magic, declared opcodes and size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    magic: Vec<u8>,
    opcodes: [bool; 256],
    limit: usize,
}

/// A decoded payload, borrowing its body from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The opcode byte.
    pub opcode: u8,
    /// Everything after the opcode.
    pub body: &'a [u8],
}

impl PayloadFormat {
    /// A format with `magic` (1..=8 bytes), the declared `opcodes`, and a limit on the whole
    /// payload's length (at most [`MAX_PAYLOAD_LIMIT`]).
    pub fn new(magic: &[u8], opcodes: &[u8], limit: usize) -> Result<Self, FormatError> {
        if !(1..=8).contains(&magic.len()) {
            return Err(FormatError::MagicLength(magic.len()));
        }
        let min = magic.len() + 1;
        if !(min..=MAX_PAYLOAD_LIMIT).contains(&limit) {
            return Err(FormatError::Limit {
                limit,
                min,
                max: MAX_PAYLOAD_LIMIT,
            });
        }
        let mut declared = [false; 256];
        for &op in opcodes {
            declared[usize::from(op)] = true;
        }
        Ok(PayloadFormat {
            magic: magic.to_vec(),
            opcodes: declared,
            limit,
        })
    }

    /// The magic bytes.
    pub fn magic(&self) -> &[u8] {
        &self.magic
    }

    /// The payload length limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether `opcode` is declared.
    pub fn declares(&self, opcode: u8) -> bool {
        self.opcodes[usize::from(opcode)]
    }

    /// Splits a payload into opcode and body, checking length, magic and opcode.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Payload<'a>, PayloadError> {
        let min = self.magic.len() + 1;
        if bytes.len() < min {
            return Err(PayloadError::TooShort {
                len: bytes.len(),
                min,
            });
        }
        if bytes.len() > self.limit {
            return Err(PayloadError::TooLong {
                len: bytes.len(),
                limit: self.limit,
            });
        }
        let (magic, rest) = bytes.split_at(self.magic.len());
        if magic != self.magic.as_slice() {
            return Err(PayloadError::WrongMagic {
                expected: self.magic.clone(),
                found: magic.to_vec(),
            });
        }
        let (&opcode, body) = rest.split_first().ok_or(PayloadError::TooShort {
            len: bytes.len(),
            min,
        })?;
        if !self.declares(opcode) {
            return Err(PayloadError::UndeclaredOpcode {
                opcode,
                offset: self.magic.len(),
            });
        }
        Ok(Payload { opcode, body })
    }

    /// Builds `magic || opcode || body`, checking the opcode and the length limit.
    pub fn encode(&self, opcode: u8, body: &[u8]) -> Result<Vec<u8>, PayloadError> {
        if !self.declares(opcode) {
            return Err(PayloadError::UndeclaredOpcode {
                opcode,
                offset: self.magic.len(),
            });
        }
        let len = self.magic.len() + 1 + body.len();
        if len > self.limit {
            return Err(PayloadError::TooLong {
                len,
                limit: self.limit,
            });
        }
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.magic);
        out.push(opcode);
        out.extend_from_slice(body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bns() -> PayloadFormat {
        PayloadFormat::new(b"id", b"*&!?:+>~", DEFAULT_PAYLOAD_LIMIT).unwrap()
    }

    #[test]
    fn real_bns_registration() {
        // The OP_RETURN data of a `foo.test` registration from Blockstack's test fixtures.
        let p = bns().decode(b"id:foo.test").unwrap();
        assert_eq!(p.opcode, b':');
        assert_eq!(p.body, b"foo.test");
    }

    #[test]
    fn typed_errors() {
        let f = bns();
        assert_eq!(
            f.decode(b"i"),
            Err(PayloadError::TooShort { len: 1, min: 3 })
        );
        assert!(matches!(
            f.decode(b"xx?"),
            Err(PayloadError::WrongMagic { .. })
        ));
        assert_eq!(
            f.decode(b"idA"),
            Err(PayloadError::UndeclaredOpcode {
                opcode: b'A',
                offset: 2
            })
        );
        assert_eq!(
            f.decode(&[b'i'; 81]),
            Err(PayloadError::TooLong { len: 81, limit: 80 })
        );
        assert_eq!(
            f.encode(b'?', &[0; 78]),
            Err(PayloadError::TooLong { len: 81, limit: 80 })
        );
        assert_eq!(
            PayloadFormat::new(b"", b"?", 80),
            Err(FormatError::MagicLength(0))
        );
        assert_eq!(
            PayloadFormat::new(&[0; 9], b"?", 80),
            Err(FormatError::MagicLength(9))
        );
        assert!(PayloadFormat::new(b"id", b"?", 2).is_err());
        assert!(PayloadFormat::new(b"id", b"?", MAX_PAYLOAD_LIMIT + 1).is_err());
        assert!(PayloadFormat::new(b"id", b"?", MAX_PAYLOAD_LIMIT).is_ok());
    }

    proptest! {
        #[test]
        fn round_trip(op in prop::sample::select(b"*&!?:+>~".to_vec()),
                      body in prop::collection::vec(any::<u8>(), 0..77)) {
            let f = bns();
            let bytes = f.encode(op, &body).unwrap();
            let p = f.decode(&bytes).unwrap();
            prop_assert_eq!(p.opcode, op);
            prop_assert_eq!(p.body, &body[..]);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = bns().decode(&bytes);
        }
    }
}
