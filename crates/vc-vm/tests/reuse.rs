//! Calls stay independent when the host reuses one instance of a module across them
//! (`docs/vm.md` section 1): every call sees the memory, the globals and the memory size the
//! module starts with, whatever earlier calls wrote, trapped on or grew; and a module whose
//! tables or segments a call could change is instantiated afresh for each call instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vc_engine::prelude::*;
use vc_vm::{VmModule, codes};

use common::*;

/// An apply that changes everything a call can change, then records what it saw.
///
/// It adds 1 to a private mutable global (starts at 0) and to the `i64` at 3000 (starts at 0),
/// grows memory by a page on opcode `c`, and stores under the operation's txid
/// `global * 1000 + memory cell + pages * 1 000 000`: a call that starts from the module's
/// initial state stores 1 001 001 (2 001 001 if it grew). Then, leaving its changes to memory
/// and the global behind and its write dropped, it ends in each way a call can end early: a
/// trap on opcode `b`, a rejection (a host call that never returns) on `d`, running out of
/// fuel on `e`. Every call first reads a key, so it is suspended and resumed once.
const RECORDING_APPLY: &str = r#"
  (call $input_read (i32.const 4096))
  (drop (call $state_get (i32.const 2000) (i32.const 2) (i32.const 2010) (i32.const 3)))
  (global.set $g (i64.add (global.get $g) (i64.const 1)))
  (i64.store (i32.const 3000) (i64.add (i64.load (i32.const 3000)) (i64.const 1)))
  ;; the opcode sits at input offset 95 (header 3, block 44, height 8, txid 32, positions 8)
  (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x63))
    (then (drop (memory.grow (i32.const 1)))))
  (i64.store (i32.const 3008)
    (i64.add
      (i64.add (i64.mul (global.get $g) (i64.const 1000)) (i64.load (i32.const 3000)))
      (i64.mul (i64.extend_i32_u (memory.size)) (i64.const 1000000))))
  ;; key: the txid, input offset 55
  (call $state_put (i32.const 2000) (i32.const 2) (i32.const 4151) (i32.const 32)
    (i32.const 3008) (i32.const 8))
  (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x62)) (then unreachable))
  (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x64))
    (then (call $reject (i32.const 2020) (i32.const 4) (i32.const 2030) (i32.const 9))))
  (if (i32.eq (i32.load8_u (i32.const 4191)) (i32.const 0x65)) (then (loop $l (br $l))))
"#;

const GLOBAL: &str = "(global $g (mut i64) (i64.const 0))";

/// The values stored in namespace `ns`, in key order.
fn stored(engine: &vc_engine::Engine<vc_vm::VmApp>) -> Vec<u64> {
    let view = engine.store().view().unwrap();
    vc_store::StateRead::range_raw(&view, "ns", None, None)
        .unwrap()
        .into_iter()
        .map(|(_, v)| u64::from_le_bytes(v.try_into().unwrap()))
        .collect()
}

fn reuses(bytes: &[u8]) -> bool {
    VmModule::load(bytes).unwrap().reuses_instances()
}

#[test]
fn every_call_on_a_reused_instance_starts_from_the_initial_state() {
    let bytes = module("", RECORDING_APPLY, GLOBAL);
    assert!(reuses(&bytes), "this module's instances are reused");
    // Operations in one block and across blocks: b traps after its changes, c grows memory,
    // d is rejected, e runs out of fuel.
    let blocks = vec![
        vec![
            (b'a', vec![]),
            (b'a', vec![]),
            (b'b', vec![]),
            (b'a', vec![]),
        ],
        vec![
            (b'c', vec![]),
            (b'a', vec![]),
            (b'd', vec![]),
            (b'a', vec![]),
        ],
        vec![(b'b', vec![]), (b'e', vec![]), (b'a', vec![])],
        vec![
            (b'a', vec![]),
            (b'c', vec![]),
            (b'c', vec![]),
            (b'a', vec![]),
        ],
    ];
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &blocks);
    let (engine, reports) = index(&bytes, &chain, &dir.path().join("a.redb"));
    assert_eq!(
        reports.rejections(),
        vec![
            (2, Stage::Apply, codes::UNREACHABLE),
            (3, Stage::Apply, "nope"),
            (4, Stage::Apply, codes::UNREACHABLE),
            (4, Stage::Apply, codes::OUT_OF_FUEL),
        ]
    );
    assert_eq!(reports.accepted(), 11);
    let mut values = stored(&engine);
    values.sort_unstable();
    assert_eq!(
        values,
        [vec![1_001_001; 8], vec![2_001_001; 3]].concat(),
        "a call saw what an earlier call left"
    );

    // The same rules in a module that is instantiated afresh for every call (a passive data
    // segment rules reuse out): the same consensus hash at every height.
    let fresh = module("", RECORDING_APPLY, &format!(r#"{GLOBAL} (data "unused")"#));
    assert!(!reuses(&fresh));
    let (again, _) = index(&fresh, &chain, &dir.path().join("b.redb"));
    for height in 1..=5 {
        let at = |e: &vc_engine::Engine<vc_vm::VmApp>| {
            e.store()
                .view()
                .unwrap()
                .chain_entry(height)
                .unwrap()
                .unwrap()
                .consensus_hash
        };
        assert_eq!(at(&engine), at(&again), "height {height}");
    }
}

#[test]
fn a_module_that_drops_a_segment_gets_a_fresh_instance_per_call() {
    // Apply copies a passive segment into memory and drops it: on a reused instance the second
    // call's copy would trap (the segment is gone); with a fresh instance per call every call
    // succeeds.
    let apply = r#"
      (memory.init $p (i32.const 3100) (i32.const 0) (i32.const 2))
      (data.drop $p)
      (call $state_put (i32.const 2000) (i32.const 2) (i32.const 2010) (i32.const 3)
        (i32.const 3100) (i32.const 2))"#;
    let bytes = module("", apply, r#"(data $p "zz")"#);
    assert!(!reuses(&bytes));
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', vec![]); 3], vec![(b'a', vec![])]]);
    let (_, reports) = index(&bytes, &chain, &dir.path().join("a.redb"));
    assert_eq!(reports.rejections(), vec![]);
    assert_eq!(reports.accepted(), 4);
}

#[test]
fn parse_and_apply_share_the_reused_instance_without_seeing_each_other() {
    // Parse leaves a mark in memory and in the global; apply rejects if it sees either.
    let parse = r#"
      (i32.store (i32.const 3200) (i32.const 7))
      (global.set $g (i64.const 5))"#;
    let apply = r#"
      (if (i32.or (i32.ne (i32.load (i32.const 3200)) (i32.const 0))
                  (i64.ne (global.get $g) (i64.const 0)))
        (then (call $reject (i32.const 2020) (i32.const 4) (i32.const 2030) (i32.const 9))))
      (i32.store (i32.const 3200) (i32.const 9))
      (global.set $g (i64.const 6))"#;
    let bytes = module(parse, apply, GLOBAL);
    assert!(reuses(&bytes));
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(MAGIC, &[vec![(b'a', vec![]); 3], vec![(b'a', vec![]); 2]]);
    let (_, reports) = index(&bytes, &chain, &dir.path().join("a.redb"));
    assert_eq!(reports.rejections(), vec![]);
    assert_eq!(reports.accepted(), 5);
}
