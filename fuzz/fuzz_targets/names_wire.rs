//! Decoding an arbitrary names-app operation body (first byte: opcode) never panics, and what
//! decodes encodes to a body that decodes to the same operation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_names::NameOp;

fuzz_target!(|data: &[u8]| {
    let Some((&opcode, body)) = data.split_first() else {
        return;
    };
    if let Ok(op) = NameOp::decode(opcode, body) {
        assert_eq!(op.opcode(), opcode);
        let again = NameOp::decode(opcode, &op.encode_body()).expect("an encoded body decodes");
        assert_eq!(again, op);
    }
});
