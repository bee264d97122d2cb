//! The operations' payloads (`docs/contracts.md` section 3): magic `ct`, opcode `D` (deploy) or
//! `C` (call), and a body.

use bitcoin::Txid;
use bitcoin::hashes::Hash;

/// The magic bytes every payload starts with.
pub const MAGIC: &[u8] = b"ct";

/// Deploy: `u8 envelope input`, 32-byte SHA-256 of the code, the init arguments (the rest).
pub const OP_DEPLOY: u8 = b'D';

/// Call: 32-byte contract id, `u8` method length, the method, the arguments (the rest).
pub const OP_CALL: u8 = b'C';

/// The longest payload accepted (magic and opcode included).
pub const PAYLOAD_LIMIT: usize = 1_024;

/// The longest method name.
pub const MAX_METHOD_BYTES: usize = 32;

/// A decoded deploy body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployBody {
    /// The input whose witness carries the envelope.
    pub envelope_input: u8,
    /// The SHA-256 of the code the envelope must carry.
    pub code_hash: [u8; 32],
    /// What `vc_init` gets as arguments.
    pub args: Vec<u8>,
}

/// A decoded call body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallBody {
    /// The contract: its deploy transaction's txid.
    pub contract: Txid,
    /// The method: 1 to 32 bytes of `a-z`, `0-9`, `_`, `-`.
    pub method: String,
    /// The arguments.
    pub args: Vec<u8>,
}

/// Why a body does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body is shorter than its fixed fields.
    #[error("the {op} body has {len} bytes, at least {min} are needed")]
    Short {
        /// `deploy` or `call`.
        op: &'static str,
        /// Its length.
        len: usize,
        /// The least.
        min: usize,
    },
    /// The method name is empty, too long or has another byte.
    #[error("a method is 1 to 32 bytes of a-z, 0-9, '_', '-'")]
    Method,
}

impl DeployBody {
    /// Decodes a deploy body.
    pub fn decode(body: &[u8]) -> Result<DeployBody, WireError> {
        let short = WireError::Short {
            op: "deploy",
            len: body.len(),
            min: 33,
        };
        let (&envelope_input, rest) = body.split_first().ok_or(short.clone())?;
        let code_hash: [u8; 32] = rest
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .ok_or(short)?;
        Ok(DeployBody {
            envelope_input,
            code_hash,
            args: rest[32..].to_vec(),
        })
    }

    /// The body's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.envelope_input];
        out.extend_from_slice(&self.code_hash);
        out.extend_from_slice(&self.args);
        out
    }
}

/// Whether `m` is a method name.
pub fn valid_method(m: &[u8]) -> bool {
    !m.is_empty()
        && m.len() <= MAX_METHOD_BYTES
        && m.iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

impl CallBody {
    /// Decodes a call body.
    pub fn decode(body: &[u8]) -> Result<CallBody, WireError> {
        let short = WireError::Short {
            op: "call",
            len: body.len(),
            min: 34,
        };
        let id: [u8; 32] = body
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .ok_or(short.clone())?;
        let n = usize::from(*body.get(32).ok_or(short.clone())?);
        let method = body.get(33..33 + n).ok_or(short)?;
        if !valid_method(method) {
            return Err(WireError::Method);
        }
        Ok(CallBody {
            contract: Txid::from_byte_array(id),
            method: String::from_utf8_lossy(method).into_owned(),
            args: body[33 + n..].to_vec(),
        })
    }

    /// The body's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.contract.to_byte_array().to_vec();
        out.push(u8::try_from(self.method.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(&self.args);
        out
    }
}

/// A whole payload: magic, opcode, body.
pub fn payload(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(opcode);
    p.extend_from_slice(body);
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bodies_round_trip_and_bad_ones_are_refused() {
        let d = DeployBody {
            envelope_input: 1,
            code_hash: [9; 32],
            args: vec![0, 0, 0, 0, 0, 0, 0, 5],
        };
        assert_eq!(DeployBody::decode(&d.encode()).unwrap(), d);
        assert!(DeployBody::decode(&[1; 32]).is_err());
        let c = CallBody {
            contract: Txid::from_byte_array([3; 32]),
            method: "transfer".into(),
            args: vec![1, 2, 3],
        };
        let bytes = c.encode();
        assert_eq!(bytes[32], 8);
        assert_eq!(CallBody::decode(&bytes).unwrap(), c);
        assert!(CallBody::decode(&bytes[..35]).is_err());
        let mut bad = bytes.clone();
        bad[33] = b'T';
        assert_eq!(CallBody::decode(&bad), Err(WireError::Method));
        let mut empty = bytes[..32].to_vec();
        empty.push(0);
        assert_eq!(CallBody::decode(&empty), Err(WireError::Method));
    }
}
