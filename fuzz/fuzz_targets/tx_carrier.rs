//! Arbitrary bytes as a transaction: carrier extraction under both rules and payload decoding
//! never panic. An extracted payload lies in the output the carrier names, within the limit,
//! and under the strict rule that output is the transaction's only OP_RETURN; a payload that
//! decodes re-encodes to the same bytes.
#![no_main]

use bitcoin::Transaction;
use libfuzzer_sys::fuzz_target;
use vc_codec::carrier::{Carrier, CarrierRule};
use vc_codec::payload::PayloadFormat;

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = bitcoin::consensus::deserialize::<Transaction>(data) else {
        return;
    };
    let format = PayloadFormat::new(b"id", b"*&!?:+>~#", 100_000).expect("a valid format");
    for (rule, limit) in [(CarrierRule::Legacy, 80), (CarrierRule::Strict, 100_000)] {
        let carrier = Carrier::new(rule, limit).expect("a valid carrier");
        let Ok(Some(c)) = carrier.extract(&tx) else {
            continue;
        };
        assert!(c.data.len() <= limit);
        let script = tx.output[c.vout].script_pubkey.as_bytes();
        assert!(script.first() == Some(&0x6a), "the carrier output is an OP_RETURN");
        assert!(script.windows(c.data.len().max(1)).any(|w| c.data.is_empty() || w == c.data));
        if rule == CarrierRule::Strict {
            let returns = tx.output.iter().filter(|o| o.script_pubkey.is_op_return()).count();
            assert_eq!(returns, 1);
        }
        if let Ok(p) = format.decode(c.data) {
            assert_eq!(format.encode(p.opcode, p.body).ok().as_deref(), Some(c.data));
        }
    }
});
