//! Legacy record serialization of arbitrary field values never panics, and its item lengths
//! always describe the rendered values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_chash::legacy::record::{Field, serialize};

fuzz_target!(|data: &[u8]| {
    let mut fields = Vec::new();
    let mut chunks = data.chunks(9);
    for chunk in chunks.by_ref() {
        let (kind, rest) = chunk.split_first().unwrap_or((&0, &[]));
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        fields.push(match kind % 5 {
            0 => Field::None,
            1 => Field::Bool(word[0] & 1 == 1),
            2 => Field::Int(i128::from(i64::from_le_bytes(word))),
            3 => Field::Float(f64::from_le_bytes(word)),
            _ => Field::Str(rest),
        });
    }
    let record = serialize(b"?", &fields);
    assert!(record.starts_with(b"?:"));
});
