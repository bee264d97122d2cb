//! The guest SDK's encodings are the host's: what a guest writes, the host reads back
//! unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vc_chash::Scheme;
use vc_codec::record::{RecordValue, decode_v2};

#[test]
fn a_guest_manifest_decodes_on_the_host() {
    let mut g = vc_vm_guest::Manifest::new("kv", "2.1", b"kv", 7, b"sd");
    g.scheme = vc_vm_guest::Scheme::V3;
    g.strict_carrier = true;
    g.markers = vec![vec![0x51], vec![0x6a, 0x00]];
    let h = vc_vm::Manifest::decode(&g.encode()).unwrap();
    assert_eq!((h.name.as_str(), h.version.as_str()), ("kv", "2.1"));
    assert_eq!(
        (h.magic.as_slice(), h.opcodes.as_slice()),
        (&b"kv"[..], &b"sd"[..])
    );
    assert_eq!((h.first_block, h.scheme, h.staleness), (7, Scheme::V3, 24));
    assert_eq!(h.carrier, vc_codec::carrier::CarrierRule::Strict);
    assert_eq!(
        (h.memory_pages, h.fuel_per_op, h.fuel_per_block),
        (16, 10_000_000, 1_000_000_000)
    );
    assert_eq!(h.markers.len(), 2);
    // And the host's encoding of the same manifest is the same bytes.
    assert_eq!(h.encode(), g.encode());
}

#[test]
fn a_guest_record_is_a_v2_record() {
    let r = vc_vm_guest::Record::new(b"s")
        .null()
        .boolean(true)
        .uint(u64::MAX)
        .int(-5)
        .bytes(b"\x00\x01")
        .text("name");
    let decoded = decode_v2(r.encode()).unwrap();
    assert_eq!(decoded.opcode, b"s");
    assert_eq!(
        decoded.values,
        vec![
            RecordValue::Null,
            RecordValue::Bool(true),
            RecordValue::Uint(u64::MAX),
            RecordValue::Int(-5),
            RecordValue::Bytes(vec![0, 1]),
            RecordValue::Text("name".into()),
        ]
    );
}
