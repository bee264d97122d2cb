//! Lowercase hexadecimal, as every textual form in this project uses.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encodes bytes as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Writes bytes as lowercase hex into a formatter without allocating.
pub(crate) fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    // Hashes are at most 32 bytes: format them in one stack buffer, one write.
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        // Only ASCII hex digits were written.
        f.write_str(core::str::from_utf8(&buf[..2 * chunk.len()]).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HexError {
    /// The string has an odd number of characters.
    OddLength(usize),
    /// The string decodes to a different number of bytes than required.
    WrongLength {
        /// Required number of hex characters.
        expected: usize,
        /// Number of characters given.
        actual: usize,
    },
    /// A character that is not a hex digit, at this character offset.
    InvalidDigit {
        /// Offset of the character in the string.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::OddLength(n) => write!(f, "hex string has odd length {n}"),
            HexError::WrongLength { expected, actual } => {
                write!(f, "expected {expected} hex characters, got {actual}")
            }
            HexError::InvalidDigit { offset, byte } => {
                write!(f, "invalid hex digit 0x{byte:02x} at offset {offset}")
            }
        }
    }
}

impl core::error::Error for HexError {}

fn nibble(byte: u8, offset: usize) -> Result<u8, HexError> {
    match byte {
        b'0'..=b'9' => Ok(byte - b'0'),
        b'a'..=b'f' => Ok(byte - b'a' + 10),
        b'A'..=b'F' => Ok(byte - b'A' + 10),
        _ => Err(HexError::InvalidDigit { offset, byte }),
    }
}

/// Decodes hex (either case) into bytes.
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(s.len() / 2);
    decode_with(s, |b| out.push(b))?;
    Ok(out)
}

/// Decodes hex into a fixed-size array; the length must match exactly.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return Err(HexError::WrongLength {
            expected: 2 * N,
            actual: s.len(),
        });
    }
    let mut i = 0;
    decode_with(s, |b| {
        out[i] = b;
        i += 1;
    })?;
    Ok(out)
}

fn decode_with(s: &str, mut sink: impl FnMut(u8)) -> Result<(), HexError> {
    let bytes = s.as_bytes();
    if bytes.len() % 2 == 1 {
        return Err(HexError::OddLength(bytes.len()));
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0], 2 * i)?;
        let lo = nibble(pair[1], 2 * i + 1)?;
        sink((hi << 4) | lo);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = [0x00, 0x01, 0xab, 0xff];
        assert_eq!(encode(&data), "0001abff");
        assert_eq!(decode("0001ABff").unwrap(), data);
        assert_eq!(decode_array::<4>("0001abff").unwrap(), data);
    }

    #[test]
    fn display_of_long_input() {
        struct H<'a>(&'a [u8]);
        impl fmt::Display for H<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write(f, self.0)
            }
        }
        let data: Vec<u8> = (0..70u8).collect();
        assert_eq!(alloc::format!("{}", H(&data)), encode(&data));
    }

    #[test]
    fn errors() {
        assert_eq!(decode("abc"), Err(HexError::OddLength(3)));
        assert_eq!(
            decode("zz"),
            Err(HexError::InvalidDigit {
                offset: 0,
                byte: b'z'
            })
        );
        assert!(decode_array::<2>("001122").is_err());
        assert!(decode_array::<2>("00").is_err());
    }
}
