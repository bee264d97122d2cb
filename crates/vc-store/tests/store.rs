//! The store's behaviour: hashing, metadata checks, rollback, snapshots, replay and proofs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{Model, config, generate, write_block};
use vc_chash::{ConsensusHash, Hash256, History, Scheme};
use vc_store::replay::{self, DivergenceKind};
use vc_store::{BlockHeader, MetaField, StateReadExt, StateWriteExt, Store, StoreError, snapshot};

fn names(_store: &Store) -> vc_store::Namespace<String, u64> {
    common::NAMES
}

/// Builds a store with `n` generated blocks from `first`, committing every `batch` blocks.
fn build(path: &Path, scheme: Scheme, first: u64, n: u64, batch: u64) -> (Store, Model) {
    let store = Store::open(path, config(scheme, first)).unwrap();
    let ns = names(&store);
    let mut model = Model::new(scheme, first);
    let mut w = store.writer().unwrap();
    for h in first..first + n {
        write_block(&mut w, &ns, h, 0);
        model.apply(0);
        if (h - first + 1).is_multiple_of(batch) {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
    drop(w);
    (store, model)
}

fn assert_matches_model(store: &Store, model: &Model) {
    let view = store.view().unwrap();
    let ns = names(store);
    let got: std::collections::BTreeMap<String, u64> =
        view.range(&ns, None, None).unwrap().into_iter().collect();
    assert_eq!(got, model.state(), "state");
    assert_eq!(view.tip().unwrap().map(|t| t.height), model.tip(), "tip");
    let mem = model.history();
    if let Some(tip) = model.tip() {
        for h in model.first..=tip {
            assert_eq!(
                view.consensus_hash(h).unwrap(),
                mem.consensus_hash(h).unwrap(),
                "CH at {h}"
            );
            assert_eq!(
                view.ops_hash(h).unwrap(),
                mem.ops_hash(h).unwrap(),
                "ops hash at {h}"
            );
        }
    }
}

#[test]
fn consensus_hashes_equal_vc_chash_for_both_schemes() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let dir = tempfile::tempdir().unwrap();
        let (store, model) = build(&dir.path().join("db"), scheme, 1000, 150, 7);
        assert_matches_model(&store, &model);
        // Reopening changes nothing.
        let path = store.path().to_path_buf();
        drop(store);
        let store = Store::open(&path, config(scheme, 1000)).unwrap();
        assert_matches_model(&store, &model);
    }
}

#[test]
fn proofs_are_served_from_the_store() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let dir = tempfile::tempdir().unwrap();
        let (store, model) = build(&dir.path().join("db"), scheme, 50, 300, 50);
        let view = store.view().unwrap();
        let mem = model.history();
        for (n, m) in [(349u64, 50u64), (349, 348), (200, 123), (51, 50)] {
            let proof = vc_chash::prove(&view, n, m).unwrap();
            assert_eq!(proof, vc_chash::prove(&mem, n, m).unwrap());
            let trusted = view.consensus_hash(n).unwrap().unwrap();
            let verified = vc_chash::verify(&proof.encode(), 50, n, &trusted, m).unwrap();
            let mut want = view.records(m).unwrap().unwrap();
            if scheme == Scheme::Legacy {
                // Legacy commits no order: a verified block's records come sorted by digest.
                want.sort_by_key(|r| vc_chash::legacy::record_digest(r));
            }
            assert_eq!(verified.records, want);
        }
    }
}

/// A rollback leaves the reverted blocks' accumulator nodes in the table: a shorter branch
/// on top, committed or not, reopened or not, must still prove and hash exactly as a chain
/// that never had the reverted blocks.
#[test]
fn proofs_after_a_rollback_ignore_the_reverted_accumulator_nodes() {
    for scheme in [Scheme::V2, Scheme::V3] {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut model) = build(&dir.path().join("db"), scheme, 50, 300, 50);
        // Reverts 150 blocks: nodes up to level 7 of the old branch stay behind.
        assert_eq!(store.rollback_to(199).unwrap(), 150);
        model.rollback_to(199);
        let ns = names(&store);
        let mut w = store.writer().unwrap();
        for _ in 0..41 {
            let h = w.next_height();
            write_block(&mut w, &ns, h, 1);
            model.apply(1);
        }
        // A second, shallower rollback inside the open transaction, then a few more blocks.
        w.rollback_to(230).unwrap();
        model.rollback_to(230);
        for _ in 0..3 {
            let h = w.next_height();
            write_block(&mut w, &ns, h, 2);
            model.apply(2);
        }
        w.commit().unwrap();
        drop(w);
        let check = |store: &Store| {
            assert_matches_model(store, &model);
            let view = store.view().unwrap();
            let mem = model.history();
            let tip = model.tip().unwrap();
            assert_eq!(tip, 233);
            for (n, m) in [
                (tip, 50u64),
                (tip, 199),
                (tip, 200),
                (tip, 231),
                (tip, tip),
                (230, 120),
            ] {
                let proof = vc_chash::prove(&view, n, m).unwrap();
                assert_eq!(proof, vc_chash::prove(&mem, n, m).unwrap(), "proof {n} {m}");
                let trusted = view.consensus_hash(n).unwrap().unwrap();
                vc_chash::verify(&proof.encode(), 50, n, &trusted, m).unwrap();
            }
        };
        check(&store);
        let path = store.path().to_path_buf();
        drop(store);
        let store = Store::open(&path, config(scheme, 50)).unwrap();
        check(&store);
        // Growing back past the old tip overwrites every stale node.
        let mut w = store.writer().unwrap();
        for _ in 0..80 {
            let h = w.next_height();
            write_block(&mut w, &ns, h, 3);
            model.apply(3);
        }
        w.commit().unwrap();
        drop(w);
        assert_matches_model(&store, &model);
        let view = store.view().unwrap();
        let mem = model.history();
        for m in [50u64, 200, 299, 313] {
            assert_eq!(
                vc_chash::prove(&view, 313, m).unwrap(),
                vc_chash::prove(&mem, 313, m).unwrap()
            );
        }
    }
}

/// A v3 file written by an earlier layout of the state tree (every version kept: one node to an
/// entry in table `smt`, then pages in `smt_pages`) is refused by both kinds of handle: its
/// tree would read as empty.
#[test]
fn a_v3_file_of_an_earlier_tree_layout_is_refused() {
    for table in ["smt", "smt_pages", "smt_tree"] {
        refuses_a_v3_file_with(table);
    }
}

fn refuses_a_v3_file_with(table: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (store, _) = build(&path, Scheme::V3, 10, 5, 5);
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let old: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(table);
            let mut t = txn.open_table(old).unwrap();
            t.insert(&[0u8, 0][..], &[0u8][..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let field = |e: StoreError| match e {
        StoreError::Mismatch { field, .. } => field,
        other => panic!("{other}"),
    };
    let e = Store::open(&path, config(Scheme::V3, 10)).err().unwrap();
    assert_eq!(field(e), MetaField::SchemaVersion);
    let e = vc_store::ReadOnlyStore::open(&path).err().unwrap();
    assert_eq!(field(e), MetaField::SchemaVersion);
}

/// `config` with one change.
fn with(
    config: &vc_store::StoreConfig,
    change: impl FnOnce(&mut vc_store::StoreConfig),
) -> vc_store::StoreConfig {
    let mut c = config.clone();
    change(&mut c);
    c
}

#[test]
fn opening_with_another_identity_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (store, _) = build(&path, Scheme::V2, 10, 5, 5);
    drop(store);
    let mut before = std::fs::read(&path).unwrap();
    let good = config(Scheme::V2, 10);
    let cases = [
        (good.clone().with_undo_window(5), None),
        (config(Scheme::Legacy, 10), Some(MetaField::Scheme)),
        (config(Scheme::V2, 11), Some(MetaField::FirstBlock)),
        (
            with(&good, |c| c.network = "bitcoin".into()),
            Some(MetaField::Network),
        ),
        (
            with(&good, |c| c.app_name = "other".into()),
            Some(MetaField::AppName),
        ),
        (
            with(&good, |c| c.app_version = "2.0.0".into()),
            Some(MetaField::AppVersion),
        ),
        (
            good.clone()
                .with_seeds(vec![(9, ConsensusHash::V2(Hash256([1; 32])))]),
            Some(MetaField::Seeds),
        ),
        (
            good.clone().with_app_params(vec![1, 2, 3]),
            Some(MetaField::AppParams),
        ),
    ];
    for (cfg, want) in cases {
        match (Store::open(&path, cfg), want) {
            (Ok(store), None) => {
                // A successful open may write (redb's clean-shutdown bookkeeping).
                drop(store);
                before = std::fs::read(&path).unwrap();
                continue;
            }
            (Err(StoreError::Mismatch { field, .. }), Some(w)) => assert_eq!(field, w),
            (other, want) => panic!("{want:?}: got {other:?}"),
        }
        assert!(
            std::fs::read(&path).unwrap() == before,
            "a refused open changed the file"
        );
    }
    // Not a database at all: named as such, for opening and for reading the identity.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"hello, I am not redb").unwrap();
    assert!(matches!(
        Store::open(&junk, good),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(matches!(
        Store::read_meta(&junk),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(std::fs::read(&junk).unwrap() == b"hello, I am not redb");
}

#[test]
fn blocks_must_extend_the_tip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(&dir.path().join("db"), Scheme::V2, 10, 3, 3);
    let mut w = store.writer().unwrap();
    let tip = w.tip().unwrap();
    let bad_height = BlockHeader {
        height: 14,
        block_hash: Hash256([1; 32]),
        prev_hash: tip.1,
    };
    assert!(matches!(
        w.begin_block(bad_height),
        Err(StoreError::NotNext { height: 14, .. })
    ));
    let bad_parent = BlockHeader {
        height: 13,
        block_hash: Hash256([1; 32]),
        prev_hash: Hash256([2; 32]),
    };
    let err = w.begin_block(bad_parent).unwrap_err();
    assert!(err.to_string().contains("parent"), "{err}");
}

#[test]
fn an_unfinished_block_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = build(&dir.path().join("db"), Scheme::V2, 10, 20, 20);
    let ns = names(&store);
    let mut w = store.writer().unwrap();
    {
        let tip = w.tip().unwrap();
        let mut b = w
            .begin_block(BlockHeader {
                height: 30,
                block_hash: Hash256([9; 32]),
                prev_hash: tip.1,
            })
            .unwrap();
        b.put(&ns, &"ghost".to_string(), &1).unwrap();
        assert_eq!(b.get(&ns, &"ghost".to_string()).unwrap(), Some(1));
        // Dropped without finish.
    }
    w.commit().unwrap();
    drop(w);
    assert_matches_model(&store, &model);
    assert_eq!(
        store
            .view()
            .unwrap()
            .get(&ns, &"ghost".to_string())
            .unwrap(),
        None
    );
}

#[test]
fn reads_inside_a_block_see_its_own_writes_and_ranges_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db"), config(Scheme::V2, 0)).unwrap();
    let ns = names(&store);
    const COUNTERS: vc_store::Namespace<u64, u64> = vc_store::Namespace::new("counters");
    let counters = COUNTERS;
    // A namespace never written reads as empty, inside a block and in a view.
    assert_eq!(store.view().unwrap().get(&counters, &7).unwrap(), None);
    let mut w = store.writer().unwrap();
    let mut b = w
        .begin_block(BlockHeader {
            height: 0,
            block_hash: Hash256([1; 32]),
            prev_hash: Hash256::ZERO,
        })
        .unwrap();
    for k in ["a", "b", "c", "d"] {
        b.put(&ns, &k.to_string(), &1).unwrap();
    }
    b.put(&counters, &7, &70).unwrap();
    b.finish().unwrap();
    let mut b = w
        .begin_block(BlockHeader {
            height: 1,
            block_hash: Hash256([2; 32]),
            prev_hash: Hash256([1; 32]),
        })
        .unwrap();
    b.delete(&ns, &"b".to_string());
    b.put(&ns, &"bb".to_string(), &2).unwrap();
    b.put(&ns, &"c".to_string(), &3).unwrap();
    let got = b
        .range(&ns, Some(&"b".to_string()), Some(&"d".to_string()))
        .unwrap();
    assert_eq!(got, vec![("bb".to_string(), 2), ("c".to_string(), 3)]);
    // Namespaces do not leak into each other.
    assert_eq!(b.range(&counters, None, None).unwrap(), vec![(7, 70)]);
    b.finish().unwrap();
    w.commit().unwrap();
    drop(w);
    let view = store.view().unwrap();
    assert_eq!(view.range(&ns, None, None).unwrap().len(), 4);
    const NOPE: vc_store::Namespace<u64, u64> = vc_store::Namespace::new("nope");
    assert_eq!(view.range(&NOPE, None, None).unwrap(), vec![]);
    assert_eq!(view.get(&NOPE, &1).unwrap(), None);
    // Ids were given in the order of first writes and are kept in the metadata.
    assert_eq!(
        vc_store::Store::read_meta(store.path()).unwrap().namespaces,
        vec!["names".to_string(), "counters".to_string()]
    );
}

#[test]
fn rollback_restores_state_and_hashes_and_allows_a_new_branch() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut model) = build(&dir.path().join("db"), scheme, 100, 60, 10);
        assert_eq!(store.rollback_to(150).unwrap(), 9);
        model.rollback_to(150);
        assert_matches_model(&store, &model);
        // A different branch on top.
        let ns = names(&store);
        let mut w = store.writer().unwrap();
        for _ in 0..12 {
            let h = w.next_height();
            write_block(&mut w, &ns, h, 1);
            model.apply(1);
        }
        // Roll back inside the same uncommitted transaction, then commit.
        w.rollback_to(155).unwrap();
        model.rollback_to(155);
        w.commit().unwrap();
        drop(w);
        assert_matches_model(&store, &model);
        // Back to an empty chain.
        store.rollback_to(99).unwrap();
        model.rollback_to(99);
        assert_matches_model(&store, &model);
        assert!(
            store
                .view()
                .unwrap()
                .range(&ns, None, None)
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn rollback_beyond_the_undo_window_is_refused_without_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path, config(Scheme::V2, 0).with_undo_window(10)).unwrap();
    let ns = names(&store);
    let mut model = Model::new(Scheme::V2, 0);
    let mut w = store.writer().unwrap();
    for h in 0..50 {
        write_block(&mut w, &ns, h, 0);
        model.apply(0);
    }
    w.commit().unwrap();
    drop(w);
    assert_eq!(
        store.view().unwrap().undo_heights().unwrap(),
        Some((40, 49))
    );
    match store.rollback_to(38) {
        Err(StoreError::RollbackTooDeep {
            target: 38,
            oldest: 39,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.rollback_to(60),
        Err(StoreError::RollbackAboveTip { .. })
    ));
    assert_matches_model(&store, &model);
    assert_eq!(store.rollback_to(39).unwrap(), 10);
    model.rollback_to(39);
    assert_matches_model(&store, &model);
}

#[test]
fn snapshot_round_trip_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = build(&dir.path().join("db"), Scheme::V2, 500, 120, 40);
    let snap = dir.path().join("snap");
    let summary = snapshot::export(&store.view().unwrap(), &snap).unwrap();
    assert_eq!(summary.blocks, 120);
    let trusted = (
        600,
        store.view().unwrap().consensus_hash(600).unwrap().unwrap(),
    );

    let target = dir.path().join("imported");
    let (imported, s2) =
        snapshot::import(&snap, &target, config(Scheme::V2, 500), trusted).unwrap();
    assert_eq!((s2.blocks, s2.bytes), (summary.blocks, summary.bytes));
    assert_matches_model(&imported, &model);
    assert_eq!(
        imported.view().unwrap().undo_heights().unwrap(),
        store.view().unwrap().undo_heights().unwrap()
    );
    // Rollback works right after an import.
    imported.rollback_to(610).unwrap();
    let mut m2 = model.clone();
    m2.rollback_to(610);
    assert_matches_model(&imported, &m2);
    drop(imported);

    let fresh = |name: &str| dir.path().join(name);
    let refused = |path: &Path, cfg, trusted| {
        let err = snapshot::import(path, &fresh("refused"), cfg, trusted).unwrap_err();
        assert!(
            !fresh("refused").exists(),
            "a refused import left a database behind"
        );
        err
    };
    // A wrong trusted hash.
    let err = refused(
        &snap,
        config(Scheme::V2, 500),
        (600, ConsensusHash::V2(Hash256([7; 32]))),
    );
    assert!(err.to_string().contains("trusted"), "{err}");
    // Another application.
    let err = refused(&snap, config(Scheme::V2, 501), trusted);
    assert!(err.to_string().contains("made for"), "{err}");
    // A trusted height outside the snapshot.
    let err = refused(&snap, config(Scheme::V2, 500), (700, trusted.1));
    assert!(err.to_string().contains("not among"), "{err}");
    // Truncation at every region of the file, and a flipped byte in each.
    let bytes = std::fs::read(&snap).unwrap();
    for cut in [5, 20, bytes.len() / 3, bytes.len() - 10, bytes.len() - 1] {
        let p = fresh("cut");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = refused(&p, config(Scheme::V2, 500), trusted);
        assert!(
            matches!(err, StoreError::Snapshot { .. }),
            "cut {cut}: {err}"
        );
    }
    for at in [9, 200, bytes.len() / 2, bytes.len() - 40] {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        let p = fresh("flip");
        std::fs::write(&p, &b).unwrap();
        refused(&p, config(Scheme::V2, 500), trusted);
    }
    // Never over an existing database.
    let err = snapshot::import(&snap, store.path(), config(Scheme::V2, 500), trusted).unwrap_err();
    assert!(err.to_string().contains("existing"), "{err}");
}

#[test]
fn a_snapshot_with_a_forged_record_is_refused() {
    // Re-encode a snapshot with one record changed but the original consensus hashes.
    use vc_codec::storage;
    use vc_store::snapshot::Frame;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(&dir.path().join("db"), Scheme::Legacy, 0, 40, 40);
    let snap = dir.path().join("snap");
    snapshot::export(&store.view().unwrap(), &snap).unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    let mut forged = false;
    use sha2::Digest;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut frame: Frame = storage::from_bytes(&bytes[at + 4..at + 4 + len]).unwrap();
        at += 4 + len;
        match &mut frame {
            Frame::Block { ops, .. } if !forged => {
                if let Some(op) = ops.iter_mut().find(|o| !o.records.is_empty()) {
                    op.records[0].push(b'!');
                    forged = true;
                }
            }
            Frame::End(d) => *d = sha2::Sha256::digest(&out).into(),
            _ => {}
        }
        let body = storage::to_bytes(&frame).unwrap();
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
    }
    assert!(forged);
    let p = dir.path().join("forged");
    std::fs::write(&p, &out).unwrap();
    let trusted = (
        39,
        store.view().unwrap().consensus_hash(39).unwrap().unwrap(),
    );
    let err = snapshot::import(
        &p,
        &dir.path().join("x"),
        config(Scheme::Legacy, 0),
        trusted,
    )
    .unwrap_err();
    assert!(err.to_string().contains("its records give"), "{err}");
}

#[test]
fn replay_finds_the_first_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(&dir.path().join("db"), Scheme::V2, 0, 80, 80);
    let view = store.view().unwrap();
    let ch = |h| view.consensus_hash(h).unwrap().unwrap();
    let ok = replay::verify(&view, (79, ch(79))).unwrap();
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(ok.blocks, 80);
    let bad = replay::verify(&view, (40, ch(41))).unwrap();
    let d = bad.divergence.unwrap();
    assert_eq!((d.height, d.kind), (40, DivergenceKind::Trusted));
    assert!(replay::verify(&view, (80, ch(79))).is_err());
    drop(view);

    // Tamper with one stored record behind the store's back: replay names the block.
    let target = (0..80)
        .find(|h| !generate(*h, 0).ops.iter().all(|o| o.records.is_empty()))
        .unwrap();
    let path = store.path().to_path_buf();
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<(u64, u32), &[u8]> = redb::TableDefinition::new("ops");
            let mut t = txn.open_table(def).unwrap();
            use redb::ReadableTable;
            let key = {
                let mut r = t.range((target, 0)..=(target, u32::MAX)).unwrap();
                let (k, _) = r.next().unwrap().unwrap();
                k.value()
            };
            let mut op: vc_store::StoredOp = {
                let v = t.get(key).unwrap().unwrap();
                vc_codec::storage::from_bytes(v.value()).unwrap()
            };
            if op.records.is_empty() {
                op.records.push(b"x".to_vec());
            } else {
                op.records[0].push(b'x');
            }
            let bytes = vc_codec::storage::to_bytes(&op).unwrap();
            t.insert(key, bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path, config(Scheme::V2, 0)).unwrap();
    let view = store.view().unwrap();
    let report = replay::verify(&view, (79, view.consensus_hash(79).unwrap().unwrap())).unwrap();
    let d = report.divergence.unwrap();
    assert_eq!((d.height, d.kind), (target, DivergenceKind::OpsHash));
}

#[test]
fn readers_see_a_consistent_snapshot_while_the_writer_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(&dir.path().join("db"), Scheme::V2, 0, 10, 10);
    let ns = names(&store);
    let view = store.view().unwrap();
    let before = view.range(&ns, None, None).unwrap();
    let mut w = store.writer().unwrap();
    for h in 10..30 {
        write_block(&mut w, &ns, h, 0);
    }
    w.commit().unwrap();
    drop(w);
    assert_eq!(view.tip().unwrap().unwrap().height, 9);
    assert_eq!(view.range(&ns, None, None).unwrap(), before);
    assert_eq!(store.tip().unwrap().unwrap().height, 29);
}

#[test]
fn revert_takes_back_changes_since_a_savepoint_and_nothing_before() {
    const FRESH: vc_store::Namespace<u64, u64> = vc_store::Namespace::new("fresh");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db"), config(Scheme::V2, 0)).unwrap();
    let ns = names(&store);
    let mut w = store.writer().unwrap();
    let mut b = w
        .begin_block(BlockHeader {
            height: 0,
            block_hash: Hash256([1; 32]),
            prev_hash: Hash256::ZERO,
        })
        .unwrap();
    b.put(&ns, &"kept".to_string(), &1).unwrap();
    let sp = b.savepoint();
    b.put(&ns, &"kept".to_string(), &2).unwrap();
    b.put(&ns, &"dropped".to_string(), &3).unwrap();
    b.delete(&ns, &"kept".to_string());
    b.put(&FRESH, &1, &1).unwrap();
    assert_eq!(b.get(&FRESH, &1).unwrap(), Some(1));
    b.revert(sp);
    assert_eq!(b.get(&ns, &"kept".to_string()).unwrap(), Some(1));
    assert_eq!(b.get(&ns, &"dropped".to_string()).unwrap(), None);
    assert_eq!(b.get(&FRESH, &1).unwrap(), None);
    b.finish().unwrap();
    w.commit().unwrap();
    drop(w);
    let view = store.view().unwrap();
    assert_eq!(
        view.range(&ns, None, None).unwrap(),
        vec![("kept".to_string(), 1)]
    );
    // The reverted namespace got no id.
    assert_eq!(
        Store::read_meta(store.path()).unwrap().namespaces,
        vec!["names".to_string()]
    );
}

#[test]
fn app_params_are_stored_and_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let with = config(Scheme::V2, 10).with_app_params(vec![1, 0xab]);
    drop(Store::open(&path, with.clone()).unwrap());
    assert_eq!(Store::read_meta(&path).unwrap().app_params, vec![1, 0xab]);
    drop(Store::open(&path, with).unwrap());
    for other in [vec![], vec![1, 0xac]] {
        match Store::open(&path, config(Scheme::V2, 10).with_app_params(other)) {
            Err(StoreError::Mismatch { field, .. }) => assert_eq!(field, MetaField::AppParams),
            other => panic!("got {other:?}"),
        }
    }
}

#[test]
fn a_snapshot_of_the_first_format_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("old.snap");
    let mut bytes = b"VCSNAP\x00\x01".to_vec();
    bytes.extend_from_slice(&[0; 64]);
    std::fs::write(&snap, bytes).unwrap();
    let err = snapshot::import(
        &snap,
        &dir.path().join("db"),
        config(Scheme::V2, 0),
        (0, ConsensusHash::V2(Hash256([0; 32]))),
    )
    .unwrap_err();
    assert!(err.to_string().contains("format 1"), "{err}");
    assert!(
        !dir.path().join("db").exists(),
        "a refused import left a database"
    );
}

/// v3: the replay verifier also recomputes the state tree and the state at the tip, so a
/// flipped hash in a tree page, or a changed state value, is found (the consensus hashes, from
/// the stored records and roots, still agree).
#[test]
fn replay_finds_a_damaged_state_tree_or_state() {
    for (table, want) in [
        ("state_tree", replay::DivergenceKind::StateTree),
        ("state", replay::DivergenceKind::State),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (store, _) = build(&path, Scheme::V3, 10, 30, 30);
        let tip = store.view().unwrap().tip().unwrap().unwrap();
        let ok = replay::verify(&store.view().unwrap(), (tip.height, tip.consensus_hash)).unwrap();
        assert!(ok.is_ok(), "{ok:?}");
        drop(store);
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(table);
                let mut t = txn.open_table(def).unwrap();
                let (k, mut v) = {
                    let (k, v) = redb::ReadableTable::first(&t).unwrap().unwrap();
                    (k.value().to_vec(), v.value().to_vec())
                };
                // A tree page's last byte is inside a hash; a state value's inside the value.
                *v.last_mut().unwrap() ^= 1;
                t.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path, config(Scheme::V3, 10)).unwrap();
        let view = store.view().unwrap();
        let bad = replay::verify(&view, (tip.height, tip.consensus_hash)).unwrap();
        let d = bad
            .divergence
            .unwrap_or_else(|| panic!("{table}: not found"));
        assert_eq!((d.height, d.kind), (tip.height, want), "{table}");
    }
}

/// Writes blocks `heights` of `fork` and applies them to `model`.
fn write_blocks(
    w: &mut vc_store::Writer<'_>,
    model: &mut Model,
    heights: std::ops::Range<u64>,
    fork: u64,
) {
    let ns = common::NAMES;
    for h in heights {
        write_block(w, &ns, h, fork);
        model.apply(fork);
    }
}

/// v3: the writer keeps the tree pages its blocks change until it commits (a page that several
/// blocks of one transaction change is written once), so the file's tree must come out whole
/// however a transaction ends: many blocks and one commit, a rollback inside the transaction,
/// and a rollback refused as deeper than the undo window. After each commit the replay
/// verifier, which walks the file's tree and recomputes every hash, finds nothing, and the
/// store equals the model.
#[test]
fn a_transactions_tree_pages_are_written_however_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let config = || config(Scheme::V3, 10).with_undo_window(8);
    let store = Store::open(&path, config()).unwrap();
    let mut model = Model::new(Scheme::V3, 10);
    let verified = |store: &Store, model: &Model, what: &str| {
        let view = store.view().unwrap();
        let tip = view.tip().unwrap().unwrap();
        let report = replay::verify(&view, (tip.height, tip.consensus_hash)).unwrap();
        assert!(report.is_ok(), "{what}: {report:?}");
        assert_matches_model(store, model);
    };
    let mut w = store.writer().unwrap();
    // Twenty blocks in one transaction.
    write_blocks(&mut w, &mut model, 10..30, 0);
    w.commit().unwrap();
    verified(&store, &model, "twenty blocks, one commit");
    // Six blocks, a rollback of four of them and three blocks of a fork, all uncommitted.
    write_blocks(&mut w, &mut model, 30..36, 0);
    assert_eq!(w.rollback_to(31).unwrap(), 4);
    model.rollback_to(31);
    write_blocks(&mut w, &mut model, 32..35, 1);
    w.commit().unwrap();
    verified(&store, &model, "a rollback inside the transaction");
    // Blocks, then a rollback below the undo window: refused, and the blocks stay.
    write_blocks(&mut w, &mut model, 35..38, 0);
    let e = w.rollback_to(12).unwrap_err();
    assert!(matches!(e, StoreError::RollbackTooDeep { .. }), "{e}");
    write_blocks(&mut w, &mut model, 38..39, 0);
    w.commit().unwrap();
    verified(&store, &model, "a refused rollback");
    drop(w);
    drop(store);
    let store = Store::open(&path, config()).unwrap();
    verified(&store, &model, "reopened");
}
