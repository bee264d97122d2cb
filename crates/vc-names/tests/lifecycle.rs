//! The whole name lifecycle through real signed transactions on a regtest bitcoind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Node, core};
use vc_names::scenario::Scenario;
use vc_names::{all_names, lookup_name, lookup_namespace};
use vc_testnode::TestNode;

fn codes(r: &vc_engine::BlockReport) -> Vec<&'static str> {
    r.rejected.iter().map(|x| x.reject.code).collect()
}

#[test]
fn full_lifecycle_on_a_real_node() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let miner = Node(&node);
    let mut s = Scenario::start(&miner, core(&node, true), &db, 6).unwrap();
    let blocks = s.run_history().unwrap();
    let accepted: Vec<u32> = blocks.iter().map(|b| b.accepted).collect();
    let rejected: Vec<Vec<&str>> = blocks.iter().map(codes).collect();
    // namespace preorder, reveal, ready
    assert_eq!(&accepted[..3], &[1, 1, 1], "{rejected:?}");
    // name preorders: foo, bar (an underpaid burn shows only at registration, when the name is
    // known), baz from c and from d (different hashes), qux with a stale consensus hash
    assert_eq!(accepted[3], 4, "{rejected:?}");
    assert_eq!(rejected[3], vec!["stale-consensus-hash"]);
    // registrations: foo ok; bar underpaid; baz twice collide
    assert_eq!(accepted[4], 1, "{rejected:?}");
    let mut r4 = rejected[4].clone();
    r4.sort();
    assert_eq!(r4, vec!["collision", "collision", "underpaid"]);
    // baz registered again by c alone, and an update of foo
    assert_eq!(accepted[5], 2, "{rejected:?}");
    // transfer, renew, revoke
    assert_eq!(&accepted[6..9], &[1, 1, 1], "{rejected:?}");
    // update of a revoked name
    assert_eq!(accepted[9], 0);
    assert_eq!(rejected[9], vec!["revoked"]);

    let store = s.engine().store();
    let ns = lookup_namespace(store, "test").unwrap().unwrap();
    assert!(ns.ready_block.is_some());
    let foo = lookup_name(store, "foo.test").unwrap().unwrap();
    assert_eq!(
        foo.owner,
        s.wallet(3).script().to_bytes(),
        "transferred to b"
    );
    assert_eq!(
        foo.value_hash,
        Some([0xab; 20]),
        "kept through the transfer"
    );
    assert!(foo.renewed > foo.registered, "renewed");
    let baz = lookup_name(store, "baz.test").unwrap().unwrap();
    assert!(baz.revoked);
    assert_eq!(baz.value_hash, None);
    assert!(lookup_name(store, "bar.test").unwrap().is_none());
    assert!(lookup_name(store, "qux.test").unwrap().is_none());
    assert_eq!(all_names(store).unwrap().len(), 2);
}
