//! v3 snapshot imports prove the state: an honest snapshot imports into a store with the same
//! state roots and state proofs (the tree built from the imported state, earlier versions from
//! the imported undo logs), and a snapshot whose state, undo logs or claimed roots were changed
//! (with its checksum made to match, so that only the consensus hashes can tell) is refused,
//! leaving no database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{config, exported, rewrite_snapshot as rewrite};
use vc_chash::{History, Scheme};
use vc_store::StoreError;
use vc_store::snapshot::{self, Frame};

const FIRST: u64 = 40;

#[test]
fn v3_snapshot_imports_prove_the_state_and_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let (store, snap) = exported(dir.path(), Scheme::V3, FIRST, 30);
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap();
    let trusted = (tip.height, tip.consensus_hash);

    // Honest: the same roots at every height, and proofs from the import verify.
    let target = dir.path().join("ok.redb");
    let (imported, _) =
        snapshot::import(&snap, &target, config(Scheme::V3, FIRST), trusted).unwrap();
    let iview = imported.view().unwrap();
    for h in FIRST..=tip.height {
        assert_eq!(iview.tree_root(h).unwrap(), view.tree_root(h).unwrap());
    }
    for key in ["name1", "name7", "name39", "absent"] {
        for m in [FIRST + 3, tip.height] {
            let proof = iview
                .state_proof("names", key.as_bytes(), tip.height, m)
                .unwrap();
            let ok = vc_chash::state::proof::verify(
                &proof.encode(),
                FIRST,
                tip.height,
                &tip.consensus_hash,
                m,
                b"names",
                key.as_bytes(),
            )
            .unwrap();
            let honest = view
                .state_proof("names", key.as_bytes(), tip.height, m)
                .unwrap();
            assert_eq!(proof, honest);
            assert_eq!(ok.state_root, view.tree_root(m).unwrap().unwrap());
        }
    }
    assert_eq!(
        iview.consensus_hash(tip.height).unwrap(),
        Some(tip.consensus_hash)
    );

    // Lies with a matching checksum.
    type Edit = Box<dyn FnMut(&mut Frame)>;
    let lies: Vec<(&str, Edit)> = vec![
        (
            "a state value",
            Box::new(|f| {
                if let Frame::State(entries) = f {
                    let last = entries.last_mut().unwrap();
                    last.1 = common::stored_u64(999_999_999);
                }
            }),
        ),
        (
            "a state entry dropped",
            Box::new(|f| {
                if let Frame::State(entries) = f {
                    entries.pop();
                }
            }),
        ),
        (
            "an undo log's earlier value",
            Box::new(|f| {
                if let Frame::Undo { height, log } = f
                    && *height == FIRST + 20
                {
                    let entry = log.entries.first_mut().unwrap();
                    entry.previous = Some(common::stored_u64(424_242));
                }
            }),
        ),
        (
            "an undo log's entry dropped",
            Box::new(|f| {
                if let Frame::Undo { height, log } = f
                    && *height == FIRST + 3
                {
                    log.entries.pop().unwrap();
                }
            }),
        ),
        (
            "a claimed state root",
            Box::new(|f| {
                if let Frame::StateRoot { root, .. } = f {
                    root[0] ^= 1;
                }
            }),
        ),
    ];
    for (what, edit) in lies {
        let bad = dir.path().join("bad");
        std::fs::copy(&snap, &bad).unwrap();
        rewrite(&bad, edit);
        let target = dir.path().join("bad.redb");
        match snapshot::import(&bad, &target, config(Scheme::V3, FIRST), trusted) {
            Err(StoreError::Snapshot { reason, .. }) => {
                assert!(!target.exists(), "{what}: a database was left behind");
                eprintln!("{what}: refused: {reason}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
