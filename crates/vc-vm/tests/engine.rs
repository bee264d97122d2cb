//! A module indexed by the engine: state through the host, rejections leaving no trace, fuel
//! per operation and per block, a deterministic consensus hash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vc_engine::prelude::*;
use vc_vm::codes;

use common::*;

const NS: Namespace<Vec<u8>, Vec<u8>> = Namespace::new("ns");

fn count(engine: &vc_engine::Engine<vc_vm::VmApp>) -> u64 {
    let view = engine.store().view().unwrap();
    let raw = vc_store::StateRead::get_raw(&view, NS.name(), b"key").unwrap();
    raw.map(|v| u64::from_le_bytes(v.try_into().unwrap()))
        .unwrap_or(0)
}

#[test]
fn a_counter_module_counts_accepted_operations_only() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = vec![
        vec![(b'a', vec![]), (b'b', vec![]), (b'a', vec![])],
        vec![],
        vec![(b'a', vec![]), (b'c', vec![])],
    ];
    let chain = chain(MAGIC, &blocks);
    let bytes = module("", COUNTER_APPLY, "");
    let (engine, reports) = index(&bytes, &chain, &dir.path().join("a.redb"));
    assert_eq!(reports.accepted(), 3);
    assert_eq!(
        reports.rejections(),
        vec![(2, Stage::Apply, "nope"), (4, Stage::Apply, "nope")]
    );
    assert_eq!(count(&engine), 3);

    // The same module on the same chain: the same consensus hashes.
    let (again, _) = index(&bytes, &chain, &dir.path().join("b.redb"));
    let tip = |e: &vc_engine::Engine<vc_vm::VmApp>| e.store().tip().unwrap().unwrap();
    assert_eq!(tip(&engine).consensus_hash, tip(&again).consensus_hash);
}

#[test]
fn a_write_before_a_trap_leaves_no_trace() {
    // Apply counts, then loops forever on opcode b: out of fuel, and the count is not kept.
    let apply = format!(
        "{COUNTER_APPLY}
        (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x62)) (then (loop $l (br $l))))"
    )
    .replace(
        "(i32.ne (i32.load8_u (i32.const 4191)) (i32.const 0x61))",
        "(i32.const 0)",
    );
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', vec![]), (b'b', vec![])]]);
    let (engine, reports) = index(&module("", &apply, ""), &chain, &dir.path().join("a.redb"));
    assert_eq!(
        reports.rejections(),
        vec![(2, Stage::Apply, codes::OUT_OF_FUEL)]
    );
    assert_eq!(count(&engine), 1);
}

#[test]
fn the_block_budget_rejects_what_comes_after_it_is_spent() {
    // Each op loops until its fuel runs out: the manifest gives 1M per op and 3M per block, so
    // three ops spend the block's fuel and the fourth and fifth get none.
    let apply = "(loop $l (br $l))";
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', vec![]); 5], vec![(b'a', vec![])]]);
    let (_, reports) = index(&module("", apply, ""), &chain, &dir.path().join("a.redb"));
    let codes: Vec<_> = reports
        .rejections()
        .into_iter()
        .map(|(h, _, c)| (h, c))
        .collect();
    assert_eq!(
        codes,
        vec![
            (2, codes::OUT_OF_FUEL),
            (2, codes::OUT_OF_FUEL),
            (2, codes::OUT_OF_FUEL),
            (2, codes::BLOCK_FUEL),
            (2, codes::BLOCK_FUEL),
            // A new block, a new budget.
            (3, codes::OUT_OF_FUEL),
        ]
    );
}

#[test]
fn the_hash_import_gives_bitcoin_hashes_and_refuses_an_unknown_kind() {
    use bitcoin::hashes::{Hash, hash160, ripemd160, sha256, sha256d};
    // Opcode a: the four digests of "abc" under keys "0" to "3" of `ns`; opcode b: kind 9.
    let mut apply = String::from(
        r#"(local $n i32)
        (call $input_read (i32.const 4096))
        (i32.store8 (i32.const 2040) (i32.const 0x61))
        (i32.store8 (i32.const 2041) (i32.const 0x62))
        (i32.store8 (i32.const 2042) (i32.const 0x63))
        (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x62))
          (then (drop (call $hash (i32.const 9) (i32.const 2040) (i32.const 3) (i32.const 3000)))))"#,
    );
    for kind in 0..4 {
        apply.push_str(&format!(
            r#"(i32.store8 (i32.const {key}) (i32.const {digit}))
            (local.set $n (call $hash (i32.const {kind}) (i32.const 2040) (i32.const 3) (i32.const {dst})))
            (call $state_put (i32.const 2000) (i32.const 2) (i32.const {key}) (i32.const 1) (i32.const {dst}) (local.get $n))"#,
            key = 2050 + kind,
            digit = 0x30 + kind,
            dst = 3000 + 64 * kind,
        ));
    }
    let import = r#"(import "vc" "hash" (func $hash (param i32 i32 i32 i32) (result i32)))"#;
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', vec![]), (b'b', vec![])]]);
    let (engine, reports) = index(
        &module("", &apply, import),
        &chain,
        &dir.path().join("a.redb"),
    );
    assert_eq!(reports.accepted(), 1);
    assert_eq!(
        reports.rejections(),
        vec![(2, Stage::Apply, codes::BAD_CALL)]
    );
    let view = engine.store().view().unwrap();
    let get = |k: &[u8]| vc_store::StateRead::get_raw(&view, NS.name(), k).unwrap();
    assert_eq!(
        get(b"0"),
        Some(sha256::Hash::hash(b"abc").to_byte_array().to_vec())
    );
    assert_eq!(
        get(b"1"),
        Some(ripemd160::Hash::hash(b"abc").to_byte_array().to_vec())
    );
    assert_eq!(
        get(b"2"),
        Some(hash160::Hash::hash(b"abc").to_byte_array().to_vec())
    );
    assert_eq!(
        get(b"3"),
        Some(sha256d::Hash::hash(b"abc").to_byte_array().to_vec())
    );
}
