//! The BNS wire format: opcodes, payload bodies, name syntax, base-40 and the hashes that
//! payloads carry.
//!
//! Payload = `id` || opcode || body, at most 80 bytes, in the last OP_RETURN output.

use bitcoin::hashes::{Hash, hash160, sha256};
use serde::Serialize;
use vc_chash::hex;

/// The BNS magic bytes.
pub const MAGIC: &[u8; 2] = b"id";
/// The longest payload (magic and opcode included).
pub const PAYLOAD_LIMIT: usize = 80;
/// The longest fully qualified name (`name.namespace`), in bytes.
pub const MAX_FQN: usize = 37;
/// The longest namespace id.
pub const MAX_NAMESPACE_ID: usize = 19;

/// `*`: namespace preorder.
pub const NAMESPACE_PREORDER: u8 = b'*';
/// `&`: namespace reveal.
pub const NAMESPACE_REVEAL: u8 = b'&';
/// `!`: namespace ready.
pub const NAMESPACE_READY: u8 = b'!';
/// `?`: name preorder.
pub const NAME_PREORDER: u8 = b'?';
/// `:`: name registration or renewal.
pub const NAME_REGISTRATION: u8 = b':';
/// `+`: name update.
pub const NAME_UPDATE: u8 = b'+';
/// `>`: name transfer.
pub const NAME_TRANSFER: u8 = b'>';
/// `~`: name revoke.
pub const NAME_REVOKE: u8 = b'~';

/// Every BNS opcode.
pub const OPCODES: [u8; 8] = [
    NAMESPACE_PREORDER,
    NAMESPACE_REVEAL,
    NAMESPACE_READY,
    NAME_PREORDER,
    NAME_REGISTRATION,
    NAME_UPDATE,
    NAME_TRANSFER,
    NAME_REVOKE,
];

/// The base-40 alphabet of preorder hashes.
pub const B40_ALPHABET: &[u8; 40] = b"0123456789abcdefghijklmnopqrstuvwxyz-_.+";

/// Why a payload body is not a BNS operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The opcode is not a BNS opcode.
    #[error("opcode 0x{0:02x} is not a BNS opcode")]
    Opcode(u8),
    /// The body has the wrong length for the opcode.
    #[error("{op} body of {len} bytes; expected {expected}")]
    Length {
        /// The operation.
        op: &'static str,
        /// The body's length.
        len: usize,
        /// What the operation requires.
        expected: &'static str,
    },
    /// A name, namespace id or field is malformed.
    #[error("{op}: {detail} (body byte offset {offset})")]
    Field {
        /// The operation.
        op: &'static str,
        /// Where in the body.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
}

/// Why a string is not a valid name or namespace id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not `name.namespace` with exactly one dot.
    #[error("{0:?} is not of the form name.namespace")]
    Form(String),
    /// Too long.
    #[error("{what} {value:?} is longer than {max} bytes")]
    TooLong {
        /// `name` or `namespace id`.
        what: &'static str,
        /// The value.
        value: String,
        /// The limit.
        max: usize,
    },
    /// A character outside `0-9 a-z - _`.
    #[error("{what} {value:?} has a character outside 0-9 a-z - _")]
    Charset {
        /// `name` or `namespace id`.
        what: &'static str,
        /// The value.
        value: String,
    },
}

fn check_label(what: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'_')
    {
        return Err(NameError::Charset {
            what,
            value: s.to_owned(),
        });
    }
    Ok(())
}

/// Checks a namespace id: 1 to 19 characters of `0-9 a-z - _`.
pub fn check_namespace_id(id: &str) -> Result<(), NameError> {
    if id.len() > MAX_NAMESPACE_ID {
        return Err(NameError::TooLong {
            what: "namespace id",
            value: id.to_owned(),
            max: MAX_NAMESPACE_ID,
        });
    }
    check_label("namespace id", id)
}

/// Splits and checks a fully qualified name: `name.namespace`, at most 37 bytes.
pub fn split_fqn(fqn: &str) -> Result<(&str, &str), NameError> {
    if fqn.len() > MAX_FQN {
        return Err(NameError::TooLong {
            what: "name",
            value: fqn.to_owned(),
            max: MAX_FQN,
        });
    }
    let mut parts = fqn.split('.');
    let (Some(name), Some(ns), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NameError::Form(fqn.to_owned()));
    };
    check_label("name", name)?;
    check_namespace_id(ns)?;
    Ok((name, ns))
}

/// `b40(s)`: `s` read as a big-endian base-40 number, written as bytes (the shortest even
/// number of hex digits; `0` for zero). Characters outside [`B40_ALPHABET`] give `None`.
pub fn b40(s: &str) -> Option<Vec<u8>> {
    // Big-endian base-256 digits, grown by multiply-and-add.
    let mut digits: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let v = B40_ALPHABET.iter().position(|&a| a == c)? as u32;
        let mut carry = v;
        for d in digits.iter_mut().rev() {
            let x = u32::from(*d) * 40 + carry;
            *d = (x & 0xff) as u8;
            carry = x >> 8;
        }
        while carry > 0 {
            digits.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    if digits.is_empty() {
        digits.push(0);
    }
    Some(digits)
}

/// A preorder hash: `HASH160(b40(name) || sender scriptPubKey || ascii(address))`.
pub fn preorder_hash(name: &str, sender_script: &[u8], address: &str) -> Option<[u8; 20]> {
    let mut data = b40(name)?;
    data.extend_from_slice(sender_script);
    data.extend_from_slice(address.as_bytes());
    Some(hash160::Hash::hash(&data).to_byte_array())
}

/// `SHA256(fqn)[0..16]`: how a transfer names its name.
pub fn name_hash16(fqn: &str) -> [u8; 16] {
    first16(&sha256::Hash::hash(fqn.as_bytes()).to_byte_array())
}

/// The 16 bytes a payload carries for consensus hash `ch`: a legacy hash itself, and the first
/// 16 bytes of a v2 or v3 hash (the BNS wire format has 16 bytes for it; 128 bits still name
/// one of the few fresh blocks beyond any grinding).
pub fn payload_consensus_hash(ch: &vc_chash::ConsensusHash) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&ch.as_bytes()[..16]);
    out
}

/// `SHA256(fqn || hex(consensus hash))[0..16]`: how an update names its name.
pub fn name_consensus_hash(fqn: &str, consensus_hash: &[u8; 16]) -> [u8; 16] {
    let mut data = fqn.as_bytes().to_vec();
    data.extend_from_slice(hex::encode(consensus_hash).as_bytes());
    first16(&sha256::Hash::hash(&data).to_byte_array())
}

fn first16(h: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

mod hex_serde {
    pub fn serialize<S: serde::Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&vc_chash::hex::encode(v.as_ref()))
    }
}

mod opt_hex_serde {
    pub fn serialize<S: serde::Serializer>(v: &Option<[u8; 20]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&vc_chash::hex::encode(v)),
            None => s.serialize_none(),
        }
    }
}

/// A namespace's pricing and lifetime parameters, as revealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NamespaceParams {
    /// Blocks a name lives after registration or renewal (`u32::MAX`: forever).
    pub lifetime: u32,
    /// Price coefficient.
    pub coeff: u8,
    /// Price base.
    pub base: u8,
    /// Price exponents by name length (1 to 16+), each 0 to 15.
    pub buckets: [u8; 16],
    /// Divisor for names with a digit, `-` or `_` (1 to 15).
    pub nonalpha_discount: u8,
    /// Divisor for names without a vowel (1 to 15).
    pub no_vowel_discount: u8,
    /// The namespace version (1: burn to the burn address).
    pub version: u16,
}

/// A decoded BNS operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NameOp {
    /// `*`: commits to a namespace id without revealing it.
    NamespacePreorder {
        /// `HASH160(b40(namespace id) || sender script || ascii(reveal address))`.
        #[serde(with = "hex_serde")]
        preorder_hash: [u8; 20],
        /// A recent consensus hash.
        #[serde(with = "hex_serde")]
        consensus_hash: [u8; 16],
    },
    /// `&`: reveals a preordered namespace and its parameters.
    NamespaceReveal {
        /// The namespace id.
        namespace_id: String,
        /// Pricing and lifetime.
        #[serde(flatten)]
        params: NamespaceParams,
    },
    /// `!`: opens a revealed namespace for registrations.
    NamespaceReady {
        /// The namespace id.
        namespace_id: String,
    },
    /// `?`: commits to a name without revealing it.
    NamePreorder {
        /// `HASH160(b40(fqn) || sender script || ascii(register address))`.
        #[serde(with = "hex_serde")]
        preorder_hash: [u8; 20],
        /// A recent consensus hash.
        #[serde(with = "hex_serde")]
        consensus_hash: [u8; 16],
    },
    /// `:`: registers a preordered name, or renews one the sender owns.
    NameRegistration {
        /// The fully qualified name.
        name: String,
        /// The value hash (in the padded form only).
        #[serde(with = "opt_hex_serde")]
        value_hash: Option<[u8; 20]>,
    },
    /// `+`: sets a name's value hash.
    NameUpdate {
        /// `SHA256(fqn || hex(consensus hash))[0..16]`.
        #[serde(with = "hex_serde")]
        name_consensus_hash: [u8; 16],
        /// The new value hash.
        #[serde(with = "hex_serde")]
        value_hash: [u8; 20],
    },
    /// `>`: gives a name to the script of output 1.
    NameTransfer {
        /// `true` (`>`): keep the value hash; `false` (`~`): drop it.
        keep_data: bool,
        /// `SHA256(fqn)[0..16]`.
        #[serde(with = "hex_serde")]
        name_hash: [u8; 16],
        /// A recent consensus hash.
        #[serde(with = "hex_serde")]
        consensus_hash: [u8; 16],
    },
    /// `~`: revokes a name for good.
    NameRevoke {
        /// The fully qualified name.
        name: String,
    },
}

fn length(op: &'static str, len: usize, expected: &'static str) -> WireError {
    WireError::Length { op, len, expected }
}

fn ascii_field(op: &'static str, offset: usize, bytes: &[u8]) -> Result<String, WireError> {
    String::from_utf8(bytes.to_vec())
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| WireError::Field {
            op,
            offset,
            detail: "not ASCII".into(),
        })
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

impl NameOp {
    /// The operation's name, as in Blockstack (`NAME_PREORDER`, ...).
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
            NameOp::NamespacePreorder { .. } => NAMESPACE_PREORDER,
            NameOp::NamespaceReveal { .. } => NAMESPACE_REVEAL,
            NameOp::NamespaceReady { .. } => NAMESPACE_READY,
            NameOp::NamePreorder { .. } => NAME_PREORDER,
            NameOp::NameRegistration { .. } => NAME_REGISTRATION,
            NameOp::NameUpdate { .. } => NAME_UPDATE,
            NameOp::NameTransfer { .. } => NAME_TRANSFER,
            NameOp::NameRevoke { .. } => NAME_REVOKE,
        }
    }

    /// Decodes the body of an operation with `opcode`. Checks lengths, ASCII, and the syntax of
    /// names and namespace ids; the rules check everything else.
    pub fn decode(opcode: u8, body: &[u8]) -> Result<NameOp, WireError> {
        let len = body.len();
        let name_field = |op: &'static str, offset: usize, bytes: &[u8]| {
            let s = ascii_field(op, offset, bytes)?;
            split_fqn(&s).map_err(|e| WireError::Field {
                op,
                offset,
                detail: e.to_string(),
            })?;
            Ok::<_, WireError>(s)
        };
        Ok(match opcode {
            NAMESPACE_PREORDER | NAME_PREORDER => {
                let op = if opcode == NAME_PREORDER {
                    "NAME_PREORDER"
                } else {
                    "NAMESPACE_PREORDER"
                };
                if len != 36 {
                    return Err(length(op, len, "36"));
                }
                let (preorder_hash, consensus_hash) = (arr(&body[..20]), arr(&body[20..]));
                if opcode == NAME_PREORDER {
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
            NAMESPACE_REVEAL => {
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
                check_namespace_id(&namespace_id).map_err(|e| WireError::Field {
                    op: OP,
                    offset: 17,
                    detail: e.to_string(),
                })?;
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
            NAMESPACE_READY => {
                const OP: &str = "NAMESPACE_READY";
                if !(2..=1 + MAX_NAMESPACE_ID).contains(&len) {
                    return Err(length(OP, len, "'.' plus a namespace id of 1 to 19"));
                }
                if body[0] != b'.' {
                    return Err(WireError::Field {
                        op: OP,
                        offset: 0,
                        detail: format!("starts with 0x{:02x}, not '.'", body[0]),
                    });
                }
                let namespace_id = ascii_field(OP, 1, &body[1..])?;
                check_namespace_id(&namespace_id).map_err(|e| WireError::Field {
                    op: OP,
                    offset: 1,
                    detail: e.to_string(),
                })?;
                NameOp::NamespaceReady { namespace_id }
            }
            NAME_REGISTRATION => {
                const OP: &str = "NAME_REGISTRATION";
                if len == MAX_FQN + 20 {
                    let padded = &body[..MAX_FQN];
                    let end = padded.iter().position(|&b| b == 0).unwrap_or(MAX_FQN);
                    if padded[end..].iter().any(|&b| b != 0) {
                        return Err(WireError::Field {
                            op: OP,
                            offset: end,
                            detail: "name padding is not all NUL".into(),
                        });
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
            NAME_UPDATE => {
                if len != 36 {
                    return Err(length("NAME_UPDATE", len, "36"));
                }
                NameOp::NameUpdate {
                    name_consensus_hash: arr(&body[..16]),
                    value_hash: arr(&body[16..]),
                }
            }
            NAME_TRANSFER => {
                const OP: &str = "NAME_TRANSFER";
                if len != 33 {
                    return Err(length(OP, len, "33"));
                }
                let keep_data = match body[0] {
                    b'>' => true,
                    b'~' => false,
                    other => {
                        return Err(WireError::Field {
                            op: OP,
                            offset: 0,
                            detail: format!("disposition 0x{other:02x} is neither '>' nor '~'"),
                        });
                    }
                };
                NameOp::NameTransfer {
                    keep_data,
                    name_hash: arr(&body[1..17]),
                    consensus_hash: arr(&body[17..]),
                }
            }
            NAME_REVOKE => {
                const OP: &str = "NAME_REVOKE";
                if !(1..=MAX_FQN).contains(&len) {
                    return Err(length(OP, len, "1 to 37"));
                }
                NameOp::NameRevoke {
                    name: name_field(OP, 0, body)?,
                }
            }
            other => return Err(WireError::Opcode(other)),
        })
    }

    /// The body bytes (what follows `id` and the opcode).
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            NameOp::NamespacePreorder {
                preorder_hash,
                consensus_hash,
            }
            | NameOp::NamePreorder {
                preorder_hash,
                consensus_hash,
            } => {
                out.extend_from_slice(preorder_hash);
                out.extend_from_slice(consensus_hash);
            }
            NameOp::NamespaceReveal {
                namespace_id,
                params,
            } => {
                out.extend_from_slice(&params.lifetime.to_be_bytes());
                out.push(params.coeff);
                out.push(params.base);
                for pair in params.buckets.chunks(2) {
                    out.push((pair[0] << 4) | (pair[1] & 0x0f));
                }
                out.push((params.nonalpha_discount << 4) | (params.no_vowel_discount & 0x0f));
                out.extend_from_slice(&params.version.to_be_bytes());
                out.extend_from_slice(namespace_id.as_bytes());
            }
            NameOp::NamespaceReady { namespace_id } => {
                out.push(b'.');
                out.extend_from_slice(namespace_id.as_bytes());
            }
            NameOp::NameRegistration { name, value_hash } => {
                out.extend_from_slice(name.as_bytes());
                if let Some(v) = value_hash {
                    out.resize(MAX_FQN, 0);
                    out.extend_from_slice(v);
                }
            }
            NameOp::NameUpdate {
                name_consensus_hash,
                value_hash,
            } => {
                out.extend_from_slice(name_consensus_hash);
                out.extend_from_slice(value_hash);
            }
            NameOp::NameTransfer {
                keep_data,
                name_hash,
                consensus_hash,
            } => {
                out.push(if *keep_data { b'>' } else { b'~' });
                out.extend_from_slice(name_hash);
                out.extend_from_slice(consensus_hash);
            }
            NameOp::NameRevoke { name } => out.extend_from_slice(name.as_bytes()),
        }
        out
    }

    /// The whole payload: `id`, opcode, body.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(self.opcode());
        out.extend_from_slice(&self.encode_body());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn b40_matches_the_bns_example() {
        assert_eq!(hex::encode(&b40("muneeb.id").unwrap()), "87b0059d8e5d");
        assert_eq!(b40("0").unwrap(), vec![0]);
        assert_eq!(b40("UPPER"), None);
    }

    #[test]
    fn preorder_hash_matches_mainnet_data() {
        let script = unhex("76a91408d0dd44c1f0a3a4f0957ae95901929d7d66d55788ac");
        let h = preorder_hash(
            "patrickstanley.id",
            &script,
            "17CbHgTgBG3kLedXNneEKBkCTgW2fyrnUD",
        )
        .unwrap();
        assert_eq!(hex::encode(&h), "26bf7874706ac761afdd403ed6b3b9578fb01a34");
        assert_eq!(
            hex::encode(&name_hash16("patrickstanley.id")),
            "683a3e1ee5f0296833c56e481cf41b77"
        );
    }

    #[test]
    fn blockstack_fixture_payloads_decode() {
        let p =
            unhex("69643f9fab7f294936ddb6524a48feff691ecbd0ca9e8f107d845c417a5438d1cb441e827c5126");
        let op = NameOp::decode(p[2], &p[3..]).unwrap();
        assert_eq!(
            op,
            NameOp::NamePreorder {
                preorder_hash: arr(&unhex("9fab7f294936ddb6524a48feff691ecbd0ca9e8f")),
                consensus_hash: arr(&unhex("107d845c417a5438d1cb441e827c5126")),
            }
        );
        assert_eq!(op.payload(), p);
        let reg = NameOp::decode(b':', b"foo.test").unwrap();
        assert_eq!(reg.payload(), unhex("69643a666f6f2e74657374"));
        let upd = unhex("fae543ff5672fb607fe15e16b1c3ef38737c631c7c5d911c6617993c21fba731363f1cfe");
        assert!(matches!(
            NameOp::decode(b'+', &upd),
            Ok(NameOp::NameUpdate { .. })
        ));
        assert_eq!(
            NameOp::decode(b'~', b"patrickstanley2.id").unwrap(),
            NameOp::NameRevoke {
                name: "patrickstanley2.id".into()
            }
        );
    }

    #[test]
    fn every_op_round_trips() {
        let ops = [
            NameOp::NamespaceReveal {
                namespace_id: "test".into(),
                params: NamespaceParams {
                    lifetime: 52_595,
                    coeff: 250,
                    base: 4,
                    buckets: [6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15],
                    nonalpha_discount: 10,
                    no_vowel_discount: 10,
                    version: 1,
                },
            },
            NameOp::NamespaceReady {
                namespace_id: "test".into(),
            },
            NameOp::NameRegistration {
                name: "foo.test".into(),
                value_hash: Some([7; 20]),
            },
            NameOp::NameTransfer {
                keep_data: false,
                name_hash: [1; 16],
                consensus_hash: [2; 16],
            },
        ];
        for op in ops {
            let p = op.payload();
            assert!(p.len() <= PAYLOAD_LIMIT);
            assert_eq!(NameOp::decode(p[2], &p[3..]).unwrap(), op);
        }
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(
            NameOp::decode(b'?', &[0; 35]),
            Err(WireError::Length { .. })
        ));
        assert!(matches!(
            NameOp::decode(b':', b"Foo.test"),
            Err(WireError::Field { offset: 0, .. })
        ));
        assert!(matches!(
            NameOp::decode(b':', b"foo"),
            Err(WireError::Field { .. })
        ));
        assert!(matches!(
            NameOp::decode(b'>', &[b'x'; 33]),
            Err(WireError::Field { offset: 0, .. })
        ));
        assert!(matches!(
            NameOp::decode(b'A', b""),
            Err(WireError::Opcode(b'A'))
        ));
    }

    #[test]
    fn decode_is_total() {
        // Every opcode against bodies of every length up to 80, of several byte patterns.
        for &op in &OPCODES {
            for len in 0..=80 {
                for fill in [0u8, b'a', b'.', 0xff] {
                    let _ = NameOp::decode(op, &vec![fill; len]);
                }
            }
        }
    }
}
