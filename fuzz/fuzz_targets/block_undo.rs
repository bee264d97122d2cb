//! Arbitrary bytes as a rev-file block undo record never panic the decoder, which uses every
//! byte: a record that decodes has at least three bytes per coin (code, amount, script).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spent) = vc_source::undo::decode_block_undo(data) {
        assert!(spent.first().is_some_and(Vec::is_empty), "the coinbase spends nothing");
        let coins: usize = spent.iter().map(Vec::len).sum();
        assert!(coins * 3 <= data.len());
    }
});
