//! OP_RETURN carriers: where a payload sits in a Bitcoin transaction.
//!
//! A payload is the single data push of an output script that is exactly `OP_RETURN <push>`.
//! The push may use any push form (`OP_PUSHBYTES_n`, `OP_PUSHDATA1/2/4`, minimal or not, and
//! `OP_0` for an empty push). Two rules decide which output counts:
//!
//! * [`CarrierRule::Legacy`], the rule of the Python virtualchain: outputs are scanned in order; a
//!   conforming `OP_RETURN <push>` output sets the payload, and any other script that starts
//!   with `OP_RETURN` (no push, two pushes, a truncated push, an opcode after the push) resets
//!   it to none. The **last** OP_RETURN output therefore decides.
//! * [`CarrierRule::Strict`], for new applications: the transaction must have exactly one
//!   OP_RETURN output and it must be `OP_RETURN <push>`; anything else is rejected with a
//!   [`Rejection`] that says why, so an application can log or count it.
//!
//! The push length is checked against the carrier's limit: 80 bytes by default (Bitcoin Core's
//! standardness limit before v30) and at most [`MAX_PAYLOAD_LIMIT`] (100,000).

use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::{Builder, Instruction, PushBytesBuf, Script};
use bitcoin::{Amount, Transaction, TxOut};
use thiserror::Error;

use crate::payload::{DEFAULT_PAYLOAD_LIMIT, MAX_PAYLOAD_LIMIT};

/// Which OP_RETURN output of a transaction carries its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CarrierRule {
    /// The last OP_RETURN output counts; a malformed one resets the payload to none.
    Legacy,
    /// Exactly one OP_RETURN output with exactly one push, or the transaction is rejected.
    Strict,
}

/// Why a transaction carries no payload under [`CarrierRule::Strict`], or why its payload is
/// unusable under either rule.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    /// Strict: more than one output starts with `OP_RETURN`.
    #[error(
        "{count} OP_RETURN outputs (outputs {first} and {second} among them); the strict rule allows one"
    )]
    SeveralOpReturns {
        /// How many outputs start with `OP_RETURN`.
        count: usize,
        /// The first such output's index.
        first: usize,
        /// The second such output's index.
        second: usize,
    },
    /// Strict: the only OP_RETURN output is not exactly `OP_RETURN <one push>`.
    #[error("output {vout}: OP_RETURN script is not exactly one data push ({reason})")]
    Malformed {
        /// The output index.
        vout: usize,
        /// What is wrong with the script.
        reason: MalformedScript,
    },
    /// Either rule: the carried push is longer than the carrier's limit.
    #[error("output {vout}: OP_RETURN push of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// The output index.
        vout: usize,
        /// The push length.
        len: usize,
        /// The carrier's limit.
        limit: usize,
    },
}

/// How an OP_RETURN script fails to be `OP_RETURN <one push>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MalformedScript {
    /// Nothing follows `OP_RETURN`.
    #[error("no data push")]
    NoPush,
    /// The first instruction after `OP_RETURN` is an opcode, not a data push.
    #[error("opcode instead of a data push at byte offset {offset}")]
    NotAPush {
        /// Byte offset of the opcode in the script.
        offset: usize,
    },
    /// Something follows the push.
    #[error("trailing instruction at byte offset {offset}")]
    Trailing {
        /// Byte offset of the first trailing byte in the script.
        offset: usize,
    },
    /// A push's length prefix runs past the end of the script.
    #[error("push truncated at byte offset {offset}")]
    Truncated {
        /// Byte offset of the push opcode in the script.
        offset: usize,
    },
}

/// A payload found in a transaction: the output that carries it and the pushed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried<'a> {
    /// The output index.
    pub vout: usize,
    /// The pushed bytes (the payload, before [`crate::payload::PayloadFormat::decode`]).
    pub data: &'a [u8],
}

/// Why a carrier cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CarrierError {
    /// The limit must be between 1 and [`MAX_PAYLOAD_LIMIT`].
    #[error("carrier limit {0} must be between 1 and {MAX_PAYLOAD_LIMIT}")]
    Limit(usize),
    /// The payload is longer than the carrier's limit.
    #[error("payload of {len} bytes exceeds the carrier limit of {limit}")]
    TooLong {
        /// The payload length.
        len: usize,
        /// The carrier's limit.
        limit: usize,
    },
}

/// A carrier rule with a push-size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Carrier {
    rule: CarrierRule,
    limit: usize,
}

impl Default for Carrier {
    /// The legacy rule with an 80-byte limit.
    fn default() -> Self {
        Carrier {
            rule: CarrierRule::Legacy,
            limit: DEFAULT_PAYLOAD_LIMIT,
        }
    }
}

/// Parses `script` (known to start with `OP_RETURN`) as `OP_RETURN <one push>`.
pub fn op_return_push(script: &Script) -> Result<&[u8], MalformedScript> {
    let bytes = script.as_bytes();
    let mut instructions = script.instruction_indices();
    // The OP_RETURN itself.
    match instructions.next() {
        Some(Ok((_, Instruction::Op(op)))) if op == OP_RETURN => {}
        _ => return Err(MalformedScript::NoPush),
    }
    let (push_at, data) = match instructions.next() {
        None => return Err(MalformedScript::NoPush),
        Some(Err(_)) => return Err(MalformedScript::Truncated { offset: 1 }),
        Some(Ok((offset, Instruction::Op(_)))) => return Err(MalformedScript::NotAPush { offset }),
        Some(Ok((offset, Instruction::PushBytes(push)))) => (offset, push.as_bytes()),
    };
    if instructions.next().is_some() {
        // Whatever follows (parsable or not) starts right after the push.
        let prefix = match bytes.get(push_at) {
            Some(0x4c) => 2,
            Some(0x4d) => 3,
            Some(0x4e) => 5,
            _ => 1,
        };
        return Err(MalformedScript::Trailing {
            offset: push_at + prefix + data.len(),
        });
    }
    Ok(data)
}

impl Carrier {
    /// A carrier with `rule` and a limit on the pushed payload (1..=[`MAX_PAYLOAD_LIMIT`]).
    pub fn new(rule: CarrierRule, limit: usize) -> Result<Self, CarrierError> {
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&limit) {
            return Err(CarrierError::Limit(limit));
        }
        Ok(Carrier { rule, limit })
    }

    /// The carrier's rule.
    pub fn rule(&self) -> CarrierRule {
        self.rule
    }

    /// The carrier's push-size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Finds the payload of `tx` under this carrier's rule.
    ///
    /// `Ok(None)`: the transaction carries nothing (legacy: no conforming last OP_RETURN; strict:
    /// no OP_RETURN output at all). `Err`: it tried to carry something and broke a rule.
    pub fn extract<'t>(&self, tx: &'t Transaction) -> Result<Option<Carried<'t>>, Rejection> {
        self.extract_outputs(&tx.output)
    }

    /// [`Carrier::extract`] over a list of outputs.
    pub fn extract_outputs<'t>(
        &self,
        outputs: &'t [TxOut],
    ) -> Result<Option<Carried<'t>>, Rejection> {
        let found = match self.rule {
            CarrierRule::Legacy => {
                let mut found = None;
                for (vout, out) in outputs.iter().enumerate() {
                    if out.script_pubkey.is_op_return() {
                        found = op_return_push(&out.script_pubkey)
                            .ok()
                            .map(|data| Carried { vout, data });
                    }
                }
                found
            }
            CarrierRule::Strict => {
                let mut op_returns = outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.script_pubkey.is_op_return());
                let Some((vout, out)) = op_returns.next() else {
                    return Ok(None);
                };
                if let Some((second, _)) = op_returns.next() {
                    return Err(Rejection::SeveralOpReturns {
                        count: 2 + op_returns.count(),
                        first: vout,
                        second,
                    });
                }
                let data = op_return_push(&out.script_pubkey)
                    .map_err(|reason| Rejection::Malformed { vout, reason })?;
                Some(Carried { vout, data })
            }
        };
        match found {
            Some(c) if c.data.len() > self.limit => Err(Rejection::TooLong {
                vout: c.vout,
                len: c.data.len(),
                limit: self.limit,
            }),
            other => Ok(other),
        }
    }

    /// The zero-value `OP_RETURN <payload>` output that carries `payload` (minimal push).
    pub fn output(&self, payload: &[u8]) -> Result<TxOut, CarrierError> {
        if payload.len() > self.limit {
            return Err(CarrierError::TooLong {
                len: payload.len(),
                limit: self.limit,
            });
        }
        let push = PushBytesBuf::try_from(payload.to_vec()).map_err(|_| CarrierError::TooLong {
            len: payload.len(),
            limit: self.limit,
        })?;
        let script_pubkey = Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(push)
            .into_script();
        Ok(TxOut {
            value: Amount::ZERO,
            script_pubkey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;
    use proptest::prelude::*;

    fn out(script: Vec<u8>) -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(script),
        }
    }

    fn pay() -> TxOut {
        // A P2WPKH output.
        let mut s = vec![0x00, 0x14];
        s.extend([7u8; 20]);
        out(s)
    }

    fn strict() -> Carrier {
        Carrier::new(CarrierRule::Strict, 80).unwrap()
    }

    #[test]
    fn every_push_form_is_accepted() {
        let forms: Vec<Vec<u8>> = vec![
            vec![0x6a, 0x03, b'i', b'd', b':'],
            vec![0x6a, 0x4c, 0x03, b'i', b'd', b':'],
            vec![0x6a, 0x4d, 0x03, 0x00, b'i', b'd', b':'],
            vec![0x6a, 0x4e, 0x03, 0x00, 0x00, 0x00, b'i', b'd', b':'],
        ];
        for f in forms {
            let outs = [out(f.clone())];
            for c in [Carrier::default(), strict()] {
                let got = c.extract_outputs(&outs).unwrap().unwrap();
                assert_eq!(
                    got,
                    Carried {
                        vout: 0,
                        data: b"id:"
                    },
                    "{f:02x?}"
                );
            }
        }
        // OP_0 is an empty push.
        let outs = [out(vec![0x6a, 0x00])];
        assert_eq!(strict().extract_outputs(&outs).unwrap().unwrap().data, b"");
    }

    #[test]
    fn malformed_scripts_are_named() {
        let cases: Vec<(Vec<u8>, MalformedScript)> = vec![
            (vec![0x6a], MalformedScript::NoPush),
            (vec![0x6a, 0x51], MalformedScript::NotAPush { offset: 1 }),
            (
                vec![0x6a, 0x05, 1, 2],
                MalformedScript::Truncated { offset: 1 },
            ),
            (
                vec![0x6a, 0x01, 1, 0x01, 2],
                MalformedScript::Trailing { offset: 3 },
            ),
            (
                vec![0x6a, 0x01, 1, 0x75],
                MalformedScript::Trailing { offset: 3 },
            ),
            (
                vec![0x6a, 0x01, 1, 0x4c],
                MalformedScript::Trailing { offset: 3 },
            ),
        ];
        for (script, want) in cases {
            let s = ScriptBuf::from_bytes(script.clone());
            assert_eq!(op_return_push(&s), Err(want), "{script:02x?}");
            assert_eq!(
                strict().extract_outputs(&[out(script.clone())]),
                Err(Rejection::Malformed {
                    vout: 0,
                    reason: want
                })
            );
            assert_eq!(Carrier::default().extract_outputs(&[out(script)]), Ok(None));
        }
    }

    #[test]
    fn legacy_last_output_wins_and_malformed_resets() {
        let a = out(vec![0x6a, 0x01, b'a']);
        let b = out(vec![0x6a, 0x01, b'b']);
        let bad = out(vec![0x6a]);
        let legacy = Carrier::default();
        let outs = [a.clone(), pay(), b.clone(), pay()];
        let got = legacy.extract_outputs(&outs).unwrap().unwrap();
        assert_eq!(
            got,
            Carried {
                vout: 2,
                data: b"b"
            }
        );
        assert_eq!(legacy.extract_outputs(&[a.clone(), bad.clone()]), Ok(None));
        let outs = [bad, pay(), a];
        assert_eq!(legacy.extract_outputs(&outs).unwrap().unwrap().vout, 2);
        assert_eq!(legacy.extract_outputs(&[pay()]), Ok(None));
    }

    #[test]
    fn strict_rejects_several_op_returns() {
        let a = out(vec![0x6a, 0x01, b'a']);
        assert_eq!(
            strict().extract_outputs(&[pay(), a.clone(), pay(), a.clone(), a]),
            Err(Rejection::SeveralOpReturns {
                count: 3,
                first: 1,
                second: 3
            })
        );
        assert_eq!(strict().extract_outputs(&[pay()]), Ok(None));
    }

    #[test]
    fn limits() {
        let c = Carrier::new(CarrierRule::Legacy, 4).unwrap();
        assert_eq!(
            c.extract_outputs(&[out(vec![0x6a, 0x05, 1, 2, 3, 4, 5])]),
            Err(Rejection::TooLong {
                vout: 0,
                len: 5,
                limit: 4
            })
        );
        assert_eq!(
            c.output(&[0; 5]),
            Err(CarrierError::TooLong { len: 5, limit: 4 })
        );
        assert_eq!(
            Carrier::new(CarrierRule::Legacy, 0),
            Err(CarrierError::Limit(0))
        );
        assert!(Carrier::new(CarrierRule::Legacy, MAX_PAYLOAD_LIMIT + 1).is_err());
        let big = Carrier::new(CarrierRule::Strict, MAX_PAYLOAD_LIMIT).unwrap();
        let payload = vec![0xab; MAX_PAYLOAD_LIMIT];
        let o = big.output(&payload).unwrap();
        assert_eq!(&o.script_pubkey.as_bytes()[..4], &[0x6a, 0x4e, 0xa0, 0x86]);
        assert_eq!(
            big.extract_outputs(&[o]).unwrap().unwrap().data,
            &payload[..]
        );
    }

    proptest! {
        #[test]
        fn built_outputs_round_trip(payload in prop::collection::vec(any::<u8>(), 0..=300),
                                    strict_rule in any::<bool>()) {
            let rule = if strict_rule { CarrierRule::Strict } else { CarrierRule::Legacy };
            let c = Carrier::new(rule, 300).unwrap();
            let o = c.output(&payload).unwrap();
            let outs = [pay(), o];
            let got = c.extract_outputs(&outs).unwrap().unwrap();
            prop_assert_eq!(got, Carried { vout: 1, data: &payload[..] });
        }

        #[test]
        fn arbitrary_scripts_never_panic(scripts in prop::collection::vec(
            prop::collection::vec(any::<u8>(), 0..40).prop_map(|mut s| { if !s.is_empty() { s[0] = 0x6a; } s }),
            0..5)) {
            let outs: Vec<TxOut> = scripts.into_iter().map(out).collect();
            let _ = Carrier::default().extract_outputs(&outs);
            let _ = strict().extract_outputs(&outs);
        }
    }
}
