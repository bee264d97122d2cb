//! Decoding arbitrary bytes as a v2 consensus record never panics, and the decoder is total
//! and canonical: what decodes re-encodes to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_codec::record::{decode_v2, encode_v2};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode_v2(data) {
        assert_eq!(encode_v2(&record).expect("a decoded record encodes"), data);
    }
});
