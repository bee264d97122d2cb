//! The witness envelope that carries a contract's code (`docs/contracts.md` section 2).
//!
//! As ord's inscriptions do, the code travels in a taproot script-path spend: a commit
//! transaction pays a taproot output whose single leaf script is
//!
//! ```text
//! OP_FALSE OP_IF "vc-contract" <chunk 1> ... <chunk n> OP_ENDIF <32-byte x-only key> OP_CHECKSIG
//! ```
//!
//! and the reveal transaction spends it (witness: signature, leaf script, control block),
//! carrying the deploy operation that commits the code's SHA-256. The `OP_FALSE OP_IF` block
//! never executes, so the pushes cost nothing but witness bytes; the key check after it keeps
//! the output spendable only by its creator.

use bitcoin::opcodes::OP_FALSE;
use bitcoin::opcodes::all::{OP_CHECKSIG, OP_ENDIF, OP_IF};
use bitcoin::script::{Builder, Instruction, PushBytesBuf};
use bitcoin::{ScriptBuf, TxOut, Witness, XOnlyPublicKey};

/// The tag that follows `OP_FALSE OP_IF` in an envelope.
pub const TAG: &[u8; 11] = b"vc-contract";

/// The most bytes one push may carry (the consensus limit on a script element).
pub const CHUNK_BYTES: usize = 520;

/// The leaf script carrying `code` behind `key`'s signature check.
pub fn leaf_script(code: &[u8], key: &XOnlyPublicKey) -> ScriptBuf {
    let mut b = Builder::new()
        .push_opcode(OP_FALSE)
        .push_opcode(OP_IF)
        .push_slice(TAG);
    for chunk in code.chunks(CHUNK_BYTES) {
        // A chunk is at most 520 bytes, which always fits a push.
        let mut push = PushBytesBuf::new();
        if push.extend_from_slice(chunk).is_ok() {
            b = b.push_slice(push);
        }
    }
    b.push_opcode(OP_ENDIF)
        .push_x_only_key(key)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// Why an input does not carry an envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input does not exist.
    #[error("the transaction has no input {0}")]
    NoInput(usize),
    /// The output the input spends is not a taproot output.
    #[error("input {0} does not spend a taproot output")]
    NotTaproot(usize),
    /// The witness is not a script-path spend (fewer than two elements, or no control block).
    #[error("input {0}'s witness is not a taproot script-path spend")]
    NotScriptPath(usize),
    /// The leaf script does not start with `OP_FALSE OP_IF "vc-contract"`, has something else
    /// than pushes before `OP_ENDIF`, or no `OP_ENDIF`.
    #[error("input {input}'s leaf script is not a contract envelope: {reason}")]
    Malformed {
        /// The input.
        input: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The code the envelope in input `input`'s witness carries, given the output it spends.
///
/// The rule, exactly: the spent output is P2TR; the witness, without an annex (a last element
/// starting with `0x50` when there are at least two), has at least two elements, the last a
/// control block (33 + 32k bytes, first byte's low bit aside `0xc0`/`0xc1`) and the one before
/// it the leaf script; the leaf script's instructions are `OP_FALSE`, `OP_IF`, a push of
/// exactly `vc-contract`, any number of pushes (the code is their concatenation), then
/// `OP_ENDIF`; whatever follows is not read.
pub fn extract(
    witness: Option<&Witness>,
    spent: Option<&TxOut>,
    input: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    let (Some(witness), Some(spent)) = (witness, spent) else {
        return Err(EnvelopeError::NoInput(input));
    };
    if !spent.script_pubkey.is_p2tr() {
        return Err(EnvelopeError::NotTaproot(input));
    }
    let (Some(leaf), Some(control)) = (witness.taproot_leaf_script(), control_block(witness))
    else {
        return Err(EnvelopeError::NotScriptPath(input));
    };
    if control.len() < 33
        || (control.len() - 33) % 32 != 0
        || leaf.version != bitcoin::taproot::LeafVersion::TapScript
    {
        return Err(EnvelopeError::NotScriptPath(input));
    }
    let script = leaf.script;
    let bad = |reason| EnvelopeError::Malformed { input, reason };
    let mut it = script.instructions();
    match (it.next(), it.next(), it.next()) {
        (
            Some(Ok(Instruction::PushBytes(f))),
            Some(Ok(Instruction::Op(op_if))),
            Some(Ok(Instruction::PushBytes(t))),
        ) if f.is_empty() && op_if == OP_IF && t.as_bytes() == TAG.as_slice() => {}
        _ => return Err(bad("it does not start with OP_FALSE OP_IF \"vc-contract\"")),
    }
    let mut code = Vec::new();
    for ins in it {
        match ins {
            Ok(Instruction::PushBytes(p)) => code.extend_from_slice(p.as_bytes()),
            Ok(Instruction::Op(op)) if op == OP_ENDIF => return Ok(code),
            Ok(Instruction::Op(_)) => {
                return Err(bad("an opcode other than a push before OP_ENDIF"));
            }
            Err(_) => return Err(bad("a push runs past the script's end")),
        }
    }
    Err(bad("no OP_ENDIF"))
}

/// The control block of a script-path witness: the last element, or the one before an annex.
fn control_block(w: &Witness) -> Option<&[u8]> {
    let n = w.len();
    let last = w.last()?;
    if n >= 2 && last.first() == Some(&0x50) {
        (n >= 3).then(|| w.nth(n - 2)).flatten()
    } else {
        (n >= 2).then_some(last)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bitcoin::key::{Keypair, Secp256k1};
    use bitcoin::taproot::{LeafVersion, TaprootBuilder};
    use bitcoin::{Amount, secp256k1::SecretKey};

    use super::*;

    fn key() -> XOnlyPublicKey {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&[7; 32]).unwrap();
        Keypair::from_secret_key(&secp, &sk).x_only_public_key().0
    }

    fn spend(script: &ScriptBuf) -> (Witness, TxOut) {
        let secp = Secp256k1::new();
        let info = TaprootBuilder::new()
            .add_leaf(0, script.clone())
            .unwrap()
            .finalize(&secp, key())
            .unwrap();
        let control = info
            .control_block(&(script.clone(), LeafVersion::TapScript))
            .unwrap();
        let mut w = Witness::new();
        w.push([1u8; 64]);
        w.push(script.as_bytes());
        w.push(control.serialize());
        let out = TxOut {
            value: Amount::from_sat(1000),
            script_pubkey: ScriptBuf::new_p2tr_tweaked(info.output_key()),
        };
        (w, out)
    }

    #[test]
    fn code_of_any_size_round_trips() {
        for len in [0usize, 1, 519, 520, 521, 5000] {
            let code: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (w, out) = spend(&leaf_script(&code, &key()));
            assert_eq!(extract(Some(&w), Some(&out), 0), Ok(code));
        }
    }

    #[test]
    fn an_annex_is_skipped() {
        let (w, out) = spend(&leaf_script(b"code", &key()));
        let mut with_annex = w.clone();
        with_annex.push([0x50, 1, 2]);
        assert_eq!(
            extract(Some(&with_annex), Some(&out), 0),
            Ok(b"code".to_vec())
        );
        // Without a control block before it, an annex leaves no script path.
        let bare = Witness::from_slice(&[vec![1; 64], vec![0x50]]);
        assert_eq!(
            extract(Some(&bare), Some(&out), 0),
            Err(EnvelopeError::NotScriptPath(0))
        );
    }

    #[test]
    fn other_spends_are_not_envelopes() {
        let (w, out) = spend(&leaf_script(b"code", &key()));
        // A key-path spend.
        let key_path = Witness::from_slice(&[[1u8; 64]]);
        assert_eq!(
            extract(Some(&key_path), Some(&out), 1),
            Err(EnvelopeError::NotScriptPath(1))
        );
        // Not taproot.
        let p2wpkh = TxOut {
            value: out.value,
            script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0; 20])),
        };
        assert_eq!(
            extract(Some(&w), Some(&p2wpkh), 0),
            Err(EnvelopeError::NotTaproot(0))
        );
        assert_eq!(extract(None, Some(&out), 3), Err(EnvelopeError::NoInput(3)));
        // A leaf with another tag, and one with an opcode inside the envelope.
        let other = Builder::new()
            .push_opcode(OP_FALSE)
            .push_opcode(OP_IF)
            .push_slice(b"ord")
            .push_opcode(OP_ENDIF)
            .into_script();
        let (w, out) = spend(&other);
        assert!(matches!(
            extract(Some(&w), Some(&out), 0),
            Err(EnvelopeError::Malformed { .. })
        ));
        let opcode = Builder::new()
            .push_opcode(OP_FALSE)
            .push_opcode(OP_IF)
            .push_slice(TAG)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ENDIF)
            .into_script();
        let (w, out) = spend(&opcode);
        assert!(matches!(
            extract(Some(&w), Some(&out), 0),
            Err(EnvelopeError::Malformed { .. })
        ));
    }

    use bitcoin::hashes::Hash;
}
