//! The example guest (`guests/kv`, built from source by `cargo xtask guests` with the guest
//! SDK) indexed by the engine: parse, prepare, apply and finalize through the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vc_engine::prelude::*;
use vc_store::StateRead;

use common::*;

fn s(key: &str, value: &str) -> Vec<u8> {
    let mut b = vec![key.len() as u8];
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(value.as_bytes());
    b
}

#[test]
fn the_kv_guest_indexes_a_chain() {
    let Some(kv) = guest("kv") else { return };
    let module = vc_vm::VmModule::load(&kv).unwrap();
    assert_eq!(module.manifest().name, "kv");
    let blocks = vec![
        // Height 4: two keys by two senders.
        vec![(0, b's', s("a", "1")), (1, b's', s("b", "X"))],
        // 5: sender 1 may not set sender 0's key; two sets of `c` collide.
        vec![
            (1, b's', s("a", "Y")),
            (0, b's', s("c", "1")),
            (1, b's', s("c", "2")),
        ],
        // 6: a delete by the owner, a delete of nothing, a malformed set.
        vec![
            (0, b'd', b"a".to_vec()),
            (0, b'd', b"zz".to_vec()),
            (0, b's', vec![]),
        ],
    ];
    let chain = chain_from(b"kv", &blocks);
    let dir = tempfile::tempdir().unwrap();
    let (engine, reports) = index(&kv, &chain, &dir.path().join("kv.redb"));
    assert_eq!(reports.accepted(), 3);
    assert_eq!(
        reports.rejections(),
        vec![
            (5, Stage::Apply, "not-owner"),
            (5, Stage::Prepare, "collision"),
            (5, Stage::Prepare, "collision"),
            (6, Stage::Parse, "malformed"),
            (6, Stage::Apply, "no-such-key"),
        ]
    );
    let view = engine.store().view().unwrap();
    assert_eq!(view.get_raw("values", b"b").unwrap(), Some(b"X".to_vec()));
    assert_eq!(view.get_raw("values", b"a").unwrap(), None);
    assert_eq!(view.get_raw("values", b"c").unwrap(), None);
    assert_eq!(view.get_raw("owners", b"a").unwrap(), None);
    // Finalize ran on every block up to the tip.
    let tip = engine.store().tip().unwrap().unwrap().height;
    assert_eq!(
        view.get_raw("meta", b"height").unwrap(),
        Some(tip.to_be_bytes().to_vec())
    );
    let ops = reports.accepted() as u64 + reports.rejections().len() as u64;
    eprintln!(
        "kv guest: {} fuel in all for {ops} operations over {} blocks",
        engine.app().fuel_used(),
        reports.blocks.len()
    );
}
