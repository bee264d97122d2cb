//! What a hostile Bitcoin Core node answers, through the Core source's parsers. The first byte
//! picks the response:
//!
//! * 0: REST `/rest/spenttxouts/<hash>.bin` (binary). What decodes is canonical: encoding it
//!   again gives the same bytes.
//! * 1: JSON-RPC `getblock <hash> 3` (JSON). What parses has one spent-output list per
//!   transaction, none for the coinbase, and one output per input of every other.
//!
//! Block bodies and headers go through the decoders the `block_body` and `header_chain`
//! targets cover.
#![no_main]

use bitcoin::VarInt;
use bitcoin::consensus::Encodable;
use libfuzzer_sys::fuzz_target;
use vc_source::core::{decode_spent, spent_from_verbose_block};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 2 {
        0 => {
            if let Ok(spent) = decode_spent(body) {
                let mut again = Vec::new();
                VarInt(spent.0.len() as u64)
                    .consensus_encode(&mut again)
                    .expect("encoding to memory");
                for list in &spent.0 {
                    VarInt(list.len() as u64)
                        .consensus_encode(&mut again)
                        .expect("encoding to memory");
                    for out in list {
                        out.consensus_encode(&mut again).expect("encoding to memory");
                    }
                }
                assert_eq!(again, body, "spent outputs decoded from non-canonical bytes");
            }
        }
        _ => {
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
                return;
            };
            if let Ok(spent) = spent_from_verbose_block(&json) {
                let txs = json["tx"].as_array().expect("parsed, so tx is an array");
                assert_eq!(spent.0.len(), txs.len());
                for (i, (list, tx)) in spent.0.iter().zip(txs).enumerate() {
                    let inputs = tx["vin"].as_array().expect("parsed, so vin is an array");
                    let want = if i == 0 { 0 } else { inputs.len() };
                    assert_eq!(list.len(), want, "transaction {i}");
                }
            }
        }
    }
});
