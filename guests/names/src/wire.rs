//! The BNS wire format, as `vc_names::wire` reads it: opcodes, payload bodies, name syntax,
//! base 40 and the hashes payloads carry.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::crypto::{hash160, hex, sha256};

/// The magic bytes.
pub const MAGIC: &[u8] = b"id";
/// Every opcode: namespace preorder, reveal, ready; name preorder, registration, update,
/// transfer, revoke.
pub const OPCODES: &[u8] = b"*&!?:+>~";
/// The longest payload.
pub const PAYLOAD_LIMIT: u32 = 80;
const MAX_FQN: usize = 37;
const MAX_NAMESPACE_ID: usize = 19;

/// A namespace's pricing and lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceParams {
    /// Blocks a name lives (`u32::MAX`: forever).
    pub lifetime: u32,
    /// Price coefficient.
    pub coeff: u8,
    /// Price base.
    pub base: u8,
    /// Exponents by name length.
    pub buckets: [u8; 16],
    /// Divisor for names with a digit, `-` or `_`.
    pub nonalpha_discount: u8,
    /// Divisor for names without a vowel.
    pub no_vowel_discount: u8,
    /// The namespace version.
    pub version: u16,
}

/// A decoded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOp {
    /// `*`
    NamespacePreorder {
        /// Preorder hash.
        preorder_hash: [u8; 20],
        /// Consensus hash.
        consensus_hash: [u8; 16],
    },
    /// `&`
    NamespaceReveal {
        /// Namespace id.
        namespace_id: String,
        /// Parameters.
        params: NamespaceParams,
    },
    /// `!`
    NamespaceReady {
        /// Namespace id.
        namespace_id: String,
    },
    /// `?`
    NamePreorder {
        /// Preorder hash.
        preorder_hash: [u8; 20],
        /// Consensus hash.
        consensus_hash: [u8; 16],
    },
    /// `:`
    NameRegistration {
        /// Fully qualified name.
        name: String,
        /// Value hash (padded form only).
        value_hash: Option<[u8; 20]>,
    },
    /// `+`
    NameUpdate {
        /// `SHA256(fqn || hex(consensus hash))[0..16]`.
        name_consensus_hash: [u8; 16],
        /// The new value hash.
        value_hash: [u8; 20],
    },
    /// `>`
    NameTransfer {
        /// Keep the value hash.
        keep_data: bool,
        /// `SHA256(fqn)[0..16]`.
        name_hash: [u8; 16],
        /// Consensus hash.
        consensus_hash: [u8; 16],
    },
    /// `~`
    NameRevoke {
        /// Fully qualified name.
        name: String,
    },
}

impl NameOp {
    /// Blockstack's name of the operation.
    pub fn name(&self) -> &'static str {
        match self {
            NameOp::NamespacePreorder { .. } => "NAMESPACE_PREORDER",
            NameOp::NamespaceReveal { .. } => "NAMESPACE_REVEAL",
            NameOp::NamespaceReady { .. } => "NAMESPACE_READY",
            NameOp::NamePreorder { .. } => "NAME_PREORDER",
            NameOp::NameRegistration { .. } => "NAME_REGISTRATION",
            NameOp::NameUpdate { .. } => "NAME_UPDATE",
            NameOp::NameTransfer { .. } => "NAME_TRANSFER",
            NameOp::NameRevoke { .. } => "NAME_REVOKE",
        }
    }

    /// The opcode byte.
    pub fn opcode(&self) -> u8 {
        match self {
            NameOp::NamespacePreorder { .. } => b'*',
            NameOp::NamespaceReveal { .. } => b'&',
            NameOp::NamespaceReady { .. } => b'!',
            NameOp::NamePreorder { .. } => b'?',
            NameOp::NameRegistration { .. } => b':',
            NameOp::NameUpdate { .. } => b'+',
            NameOp::NameTransfer { .. } => b'>',
            NameOp::NameRevoke { .. } => b'~',
        }
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn ascii_field(op: &str, offset: usize, bytes: &[u8]) -> Result<String, String> {
    match core::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => Ok(String::from(s)),
        _ => Err(format!("{op}: not ASCII (body byte offset {offset})")),
    }
}

fn check_label(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'_')
    {
        return Err(format!("{what} {s:?} has a character outside 0-9 a-z - _"));
    }
    Ok(())
}

/// Checks a namespace id: 1 to 19 characters of `0-9 a-z - _`.
pub fn check_namespace_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_NAMESPACE_ID {
        return Err(format!(
            "namespace id {id:?} is longer than {MAX_NAMESPACE_ID} bytes"
        ));
    }
    check_label("namespace id", id)
}

/// Splits and checks `name.namespace` (at most 37 bytes).
pub fn split_fqn(fqn: &str) -> Result<(&str, &str), String> {
    if fqn.len() > MAX_FQN {
        return Err(format!("name {fqn:?} is longer than {MAX_FQN} bytes"));
    }
    let mut parts = fqn.split('.');
    let (name, ns) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(ns), None) => (name, ns),
        _ => return Err(format!("{fqn:?} is not of the form name.namespace")),
    };
    check_label("name", name)?;
    check_namespace_id(ns)?;
    Ok((name, ns))
}

fn length(op: &str, len: usize, expected: &str) -> String {
    format!("{op} body of {len} bytes; expected {expected}")
}

/// Decodes the body of an operation with `opcode` (lengths, ASCII, name syntax).
pub fn decode(opcode: u8, body: &[u8]) -> Result<NameOp, String> {
    let len = body.len();
    let name_field = |op: &str, offset: usize, bytes: &[u8]| -> Result<String, String> {
        let s = ascii_field(op, offset, bytes)?;
        split_fqn(&s).map_err(|e| format!("{op}: {e} (body byte offset {offset})"))?;
        Ok(s)
    };
    Ok(match opcode {
        b'*' | b'?' => {
            let op = if opcode == b'?' {
                "NAME_PREORDER"
            } else {
                "NAMESPACE_PREORDER"
            };
            if len != 36 {
                return Err(length(op, len, "36"));
            }
            let (preorder_hash, consensus_hash) = (arr(&body[..20]), arr(&body[20..]));
            if opcode == b'?' {
                NameOp::NamePreorder {
                    preorder_hash,
                    consensus_hash,
                }
            } else {
                NameOp::NamespacePreorder {
                    preorder_hash,
                    consensus_hash,
                }
            }
        }
        b'&' => {
            const OP: &str = "NAMESPACE_REVEAL";
            if !(18..=17 + MAX_NAMESPACE_ID).contains(&len) {
                return Err(length(OP, len, "17 plus a namespace id of 1 to 19"));
            }
            let mut buckets = [0u8; 16];
            for (i, b) in body[6..14].iter().enumerate() {
                buckets[2 * i] = b >> 4;
                buckets[2 * i + 1] = b & 0x0f;
            }
            let namespace_id = ascii_field(OP, 17, &body[17..])?;
            check_namespace_id(&namespace_id)
                .map_err(|e| format!("{OP}: {e} (body byte offset 17)"))?;
            NameOp::NamespaceReveal {
                namespace_id,
                params: NamespaceParams {
                    lifetime: u32::from_be_bytes(arr(&body[..4])),
                    coeff: body[4],
                    base: body[5],
                    buckets,
                    nonalpha_discount: body[14] >> 4,
                    no_vowel_discount: body[14] & 0x0f,
                    version: u16::from_be_bytes(arr(&body[15..17])),
                },
            }
        }
        b'!' => {
            const OP: &str = "NAMESPACE_READY";
            if !(2..=1 + MAX_NAMESPACE_ID).contains(&len) {
                return Err(length(OP, len, "'.' plus a namespace id of 1 to 19"));
            }
            if body[0] != b'.' {
                return Err(format!(
                    "{OP}: starts with 0x{:02x}, not '.' (body byte offset 0)",
                    body[0]
                ));
            }
            let namespace_id = ascii_field(OP, 1, &body[1..])?;
            check_namespace_id(&namespace_id)
                .map_err(|e| format!("{OP}: {e} (body byte offset 1)"))?;
            NameOp::NamespaceReady { namespace_id }
        }
        b':' => {
            const OP: &str = "NAME_REGISTRATION";
            if len == MAX_FQN + 20 {
                let padded = &body[..MAX_FQN];
                let end = padded.iter().position(|&b| b == 0).unwrap_or(MAX_FQN);
                if padded[end..].iter().any(|&b| b != 0) {
                    return Err(format!(
                        "{OP}: name padding is not all NUL (body byte offset {end})"
                    ));
                }
                NameOp::NameRegistration {
                    name: name_field(OP, 0, &padded[..end])?,
                    value_hash: Some(arr(&body[MAX_FQN..])),
                }
            } else if (1..=MAX_FQN).contains(&len) {
                NameOp::NameRegistration {
                    name: name_field(OP, 0, body)?,
                    value_hash: None,
                }
            } else {
                return Err(length(
                    OP,
                    len,
                    "1 to 37, or 57 (padded name and value hash)",
                ));
            }
        }
        b'+' => {
            if len != 36 {
                return Err(length("NAME_UPDATE", len, "36"));
            }
            NameOp::NameUpdate {
                name_consensus_hash: arr(&body[..16]),
                value_hash: arr(&body[16..]),
            }
        }
        b'>' => {
            const OP: &str = "NAME_TRANSFER";
            if len != 33 {
                return Err(length(OP, len, "33"));
            }
            let keep_data = match body[0] {
                b'>' => true,
                b'~' => false,
                other => {
                    return Err(format!(
                        "{OP}: disposition 0x{other:02x} is neither '>' nor '~' (body byte offset 0)"
                    ));
                }
            };
            NameOp::NameTransfer {
                keep_data,
                name_hash: arr(&body[1..17]),
                consensus_hash: arr(&body[17..]),
            }
        }
        b'~' => {
            const OP: &str = "NAME_REVOKE";
            if !(1..=MAX_FQN).contains(&len) {
                return Err(length(OP, len, "1 to 37"));
            }
            NameOp::NameRevoke {
                name: name_field(OP, 0, body)?,
            }
        }
        other => return Err(format!("opcode 0x{other:02x} is not a BNS opcode")),
    })
}

/// `b40(s)`: `s` read as a big-endian base-40 number over the alphabet
/// `0123456789abcdefghijklmnopqrstuvwxyz-_.+`, as bytes (no leading zero byte; `[0]` for
/// zero); `None` outside the alphabet.
pub fn b40(s: &str) -> Option<Vec<u8>> {
    // Little-endian 32-bit limbs, grown by multiply-and-add.
    let mut limbs: Vec<u32> = Vec::with_capacity(4);
    for c in s.bytes() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'-' => 36,
            b'_' => 37,
            b'.' => 38,
            b'+' => 39,
            _ => return None,
        };
        let mut carry = u64::from(v);
        for limb in limbs.iter_mut() {
            let x = u64::from(*limb) * 40 + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(limbs.len() * 4);
    for limb in limbs.iter().rev() {
        out.extend_from_slice(&limb.to_be_bytes());
    }
    let first = out.iter().position(|&b| b != 0).unwrap_or(out.len());
    out.drain(..first);
    if out.is_empty() {
        out.push(0);
    }
    Some(out)
}

/// `HASH160(b40(name) || sender script || ascii(address))`.
pub fn preorder_hash(name: &str, sender_script: &[u8], address: &str) -> Option<[u8; 20]> {
    let digits = b40(name)?;
    let mut data = Vec::with_capacity(digits.len() + sender_script.len() + address.len());
    data.extend_from_slice(&digits);
    data.extend_from_slice(sender_script);
    data.extend_from_slice(address.as_bytes());
    Some(hash160(&data))
}

/// `SHA256(fqn)[0..16]`.
pub fn name_hash16(fqn: &str) -> [u8; 16] {
    arr(&sha256(fqn.as_bytes()))
}

/// `SHA256(fqn || hex(consensus hash))[0..16]`.
pub fn name_consensus_hash(fqn: &str, consensus_hash: &[u8; 16]) -> [u8; 16] {
    let mut data = Vec::with_capacity(fqn.len() + 32);
    data.extend_from_slice(fqn.as_bytes());
    data.extend_from_slice(hex(consensus_hash).as_bytes());
    arr(&sha256(&data))
}

/// The 16 bytes a payload carries for a consensus hash (its first 16).
pub fn payload_consensus_hash(ch: &[u8]) -> Option<[u8; 16]> {
    (ch.len() >= 16).then(|| arr(ch))
}
