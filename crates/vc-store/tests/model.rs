//! Model-based property test: random sequences of apply, rollback, commit, abort and reopen
//! leave the store equal to a simple in-memory model (state, tip and every consensus hash).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Model, WIDE, config, write_block};
use proptest::prelude::*;
use vc_chash::{History, Scheme};
use vc_store::{StateReadExt, Store, StoreError};

#[derive(Clone, Debug)]
enum Step {
    /// Apply `count` blocks of branch `fork` (from [`WIDE`] on, some of them change enough keys
    /// for a v3 writer to update its tree on its second thread).
    Apply { fork: u64, count: u64 },
    /// Roll back `depth` blocks (possibly past the undo window or the first block).
    Rollback { depth: u64 },
    /// Commit the open transaction.
    Commit,
    /// Drop the writer without committing.
    Abort,
    /// Close and reopen the database file.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop_oneof![0..3u64, WIDE..WIDE + 3], 1..6u64)
            .prop_map(|(fork, count)| Step::Apply { fork, count }),
        2 => (0..10u64).prop_map(|depth| Step::Rollback { depth }),
        2 => Just(Step::Commit),
        1 => Just(Step::Abort),
        1 => Just(Step::Reopen),
    ]
}

const FIRST: u64 = 20;
const WINDOW: u64 = 6;

fn check(
    store: &Store,
    model: &Model,
    undo: &std::collections::BTreeSet<u64>,
) -> Result<(), TestCaseError> {
    let view = store.view().unwrap();
    let ns = common::NAMES;
    let state: std::collections::BTreeMap<String, u64> =
        view.range(&ns, None, None).unwrap().into_iter().collect();
    prop_assert_eq!(state, model.state());
    prop_assert_eq!(view.tip().unwrap().map(|t| t.height), model.tip());
    let mem = model.history();
    if let Some(tip) = model.tip() {
        for h in FIRST..=tip {
            prop_assert_eq!(
                view.consensus_hash(h).unwrap(),
                mem.consensus_hash(h).unwrap()
            );
        }
        prop_assert_eq!(view.consensus_hash(tip + 1).unwrap(), None);
        prop_assert!(view.ops(tip + 1).unwrap().is_empty());
        if model.scheme.commits_state() {
            check_state_proofs(&view, model, tip, undo)?;
        }
    }
    Ok(())
}

/// v3: the store's state root at every height equals the model's, and state proofs of every
/// key the model ever had, at a spread of heights, verify against the tip's consensus hash and
/// give the model's value at that height. Heights older than the undo window (whose logs
/// rebuild the earlier trees) are refused as such.
fn check_state_proofs(
    view: &vc_store::View,
    model: &Model,
    tip: u64,
    undo: &std::collections::BTreeSet<u64>,
) -> Result<(), TestCaseError> {
    let roots = model.roots();
    let trusted = view.consensus_hash(tip).unwrap().unwrap();
    for h in FIRST..=tip {
        prop_assert_eq!(
            view.tree_root(h).unwrap(),
            Some(roots[(h - FIRST) as usize])
        );
    }
    // The oldest height whose later blocks all still have their undo logs.
    let mut reach = tip;
    while reach >= FIRST && undo.contains(&reach) {
        reach -= 1;
    }
    let reach = reach.max(FIRST);
    let heights = [
        FIRST,
        (FIRST + tip) / 2,
        reach.saturating_sub(1).max(FIRST),
        reach,
        tip.saturating_sub(1).max(FIRST),
        tip,
    ];
    for m in heights {
        let state = &model.states[(m - FIRST) as usize];
        for i in 0..42u64 {
            let key = format!("name{i}");
            if m < reach {
                let refused = view.state_proof("names", key.as_bytes(), tip, m);
                prop_assert!(
                    matches!(refused, Err(vc_store::StoreError::StateTooOld { height, oldest }) if height == m && oldest == reach),
                    "key {key} at {m}, undo logs from {reach}: {refused:?}"
                );
                continue;
            }
            let proof = view.state_proof("names", key.as_bytes(), tip, m).unwrap();
            let ok = vc_chash::state::proof::verify(
                &proof.encode(),
                FIRST,
                tip,
                &trusted,
                m,
                b"names",
                key.as_bytes(),
            )
            .map_err(|e| TestCaseError::fail(format!("key {key} at {m}: {e}")))?;
            prop_assert_eq!(ok.value, state.get(&key).map(|v| common::stored_u64(*v)));
        }
    }
    Ok(())
}

fn run(scheme: Scheme, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let cfg = config(scheme, FIRST).with_undo_window(WINDOW);
    let mut store = Store::open(&path, cfg.clone()).unwrap();
    let ns = common::NAMES;
    // `committed` is what the file holds; `working` includes the open transaction.
    let mut committed = Model::new(scheme, FIRST);
    let mut working = committed.clone();
    // Heights whose undo logs exist, for the working and committed chains.
    let mut committed_undo = std::collections::BTreeSet::new();
    let mut undo = committed_undo.clone();
    let mut i = 0;
    while i < steps.len() {
        let mut w = store.writer().unwrap();
        while i < steps.len() {
            match steps[i].clone() {
                Step::Apply { fork, count } => {
                    for _ in 0..count {
                        let h = w.next_height();
                        write_block(&mut w, &ns, h, fork);
                        working.apply(fork);
                        undo.insert(h);
                        undo.retain(|u| *u + WINDOW > h);
                    }
                }
                Step::Rollback { depth } => {
                    let tip = working.tip();
                    let target = tip.map_or(FIRST, |t| t.saturating_sub(depth));
                    let target = target.max(FIRST - 1);
                    let possible =
                        tip.is_none_or(|t| ((target + 1)..=t).all(|h| undo.contains(&h)));
                    match w.rollback_to(target) {
                        Ok(n) => {
                            prop_assert!(possible);
                            prop_assert_eq!(n, tip.map_or(0, |t| t.saturating_sub(target)));
                            working.rollback_to(target);
                            undo.retain(|u| *u <= target);
                        }
                        Err(StoreError::RollbackTooDeep { .. }) => prop_assert!(!possible),
                        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                    }
                }
                Step::Commit => {
                    w.commit().unwrap();
                    committed = working.clone();
                    committed_undo = undo.clone();
                }
                Step::Abort => {
                    i += 1;
                    break;
                }
                Step::Reopen => {
                    w.commit().unwrap();
                    committed = working.clone();
                    committed_undo = undo.clone();
                    drop(w);
                    drop(store);
                    store = Store::open(&path, cfg.clone()).unwrap();
                    check(&store, &committed, &committed_undo)?;
                    i += 1;
                    break;
                }
            }
            i += 1;
            if i == steps.len() {
                w.commit().unwrap();
                committed = working.clone();
                committed_undo = undo.clone();
            }
        }
        check(&store, &committed, &committed_undo)?;
        working = committed.clone();
        undo = committed_undo.clone();
    }
    check(&store, &committed, &committed_undo)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn v2_store_equals_model(steps in prop::collection::vec(step(), 1..40)) {
        run(Scheme::V2, steps)?;
    }

    #[test]
    fn v3_store_equals_model_and_proves_its_state(steps in prop::collection::vec(step(), 1..40)) {
        run(Scheme::V3, steps)?;
    }

    #[test]
    fn legacy_store_equals_model(steps in prop::collection::vec(step(), 1..40)) {
        run(Scheme::Legacy, steps)?;
    }
}
