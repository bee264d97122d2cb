//! Decoding arbitrary payload bytes never panics; what decodes re-encodes identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_codec::payload::PayloadFormat;

fuzz_target!(|data: &[u8]| {
    let Ok(format) = PayloadFormat::new(b"id", b"*&!?:+>~", 80) else {
        return;
    };
    if let Ok(p) = format.decode(data) {
        assert_eq!(format.encode(p.opcode, p.body).ok().as_deref(), Some(data));
    }
});
