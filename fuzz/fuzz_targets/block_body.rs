//! Arbitrary bytes as a block never panic the body decoder; a block that passes the body check
//! has a merkle root matching its transactions and serializes back to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = vc_source::body::decode_block(data, true) {
        assert!(vc_source::body::check_body(&block).is_ok());
        assert_eq!(bitcoin::consensus::serialize(&block), data);
    }
});
