//! Failure injection through redb's `StorageBackend`: a backend that fails its `n`-th write or
//! sync. For every write and sync of one block's commit, a store whose backend fails at that
//! call must report an error (never panic), and the file must reopen with the normal file
//! backend at a whole block: the last committed block with its consensus hash unchanged, or
//! (when only a sync after the data reached the file failed) the new block complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;
use vc_chash::{ConsensusHash, Hash256, Scheme};
use vc_store::{BlockHeader, ReadOnlyStore, StateWriteExt, Store, StoreError};

use common::{NAMES, config, generate, write_block};

/// Counts writes and syncs; fails the one numbered `fail_at` (counting from 0) and every one
/// after it, like a disk that went away.
#[derive(Debug)]
struct Failing {
    inner: FileBackend,
    calls: Arc<AtomicU64>,
    fail_at: u64,
}

impl Failing {
    fn tick(&self) -> std::io::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_at {
            return Err(std::io::Error::other(format!(
                "injected failure at call {n}"
            )));
        }
        Ok(())
    }
}

impl StorageBackend for Failing {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.tick()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.tick()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.tick()?;
        self.inner.write(offset, data)
    }
}

const SCHEME: Scheme = Scheme::V2;
const FIRST: u64 = 10;
/// Blocks committed before the one whose commit fails.
const BEFORE: u64 = 6;

/// Writes block `height` (fork 0) and commits, returning errors instead of panicking.
fn write_and_commit(store: &Store, height: u64) -> Result<ConsensusHash, StoreError> {
    let mut w = store.writer()?;
    let g = generate(height, 0);
    let prev = w.tip().map(|t| t.1).unwrap_or(Hash256::ZERO);
    let mut b = w.begin_block(BlockHeader {
        height,
        block_hash: g.hash,
        prev_hash: prev,
    })?;
    for (k, v) in &g.changes {
        match v {
            Some(v) => b.put(&NAMES, k, v)?,
            None => b.delete(&NAMES, k),
        }
    }
    for op in g.ops {
        b.add_op(op)?;
    }
    let summary = b.finish()?;
    w.commit()?;
    Ok(summary.consensus_hash)
}

fn open_failing(path: &Path, fail_at: u64) -> (Result<Store, StoreError>, Arc<AtomicU64>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let backend = Failing {
        inner: FileBackend::new(file).unwrap(),
        calls: Arc::clone(&calls),
        fail_at,
    };
    (
        Store::open_with_backend(backend, path, config(SCHEME, FIRST)),
        calls,
    )
}

#[test]
fn a_failed_write_at_any_point_of_a_commit_leaves_a_whole_block() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.redb");
    let before_tip = {
        let store = Store::open(&base, config(SCHEME, FIRST)).unwrap();
        let mut w = store.writer().unwrap();
        for h in FIRST..FIRST + BEFORE {
            write_block(&mut w, &NAMES, h, 0);
        }
        w.commit().unwrap();
        drop(w);
        store.tip().unwrap().unwrap()
    };
    let next = before_tip.height + 1;

    // The reference run: how many writes and syncs the open and the block's commit make.
    let reference = dir.path().join("reference.redb");
    std::fs::copy(&base, &reference).unwrap();
    let (store, calls) = open_failing(&reference, u64::MAX);
    let store = store.unwrap();
    let opened = calls.load(Ordering::SeqCst);
    let new_ch = write_and_commit(&store, next).unwrap();
    let total = calls.load(Ordering::SeqCst);
    drop(store);
    assert!(total > opened, "the commit made no writes");

    let (mut kept, mut advanced) = (0u32, 0u32);
    for fail_at in opened..total {
        let path = dir.path().join(format!("fail-{fail_at}.redb"));
        std::fs::copy(&base, &path).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            let (store, _) = open_failing(&path, fail_at);
            let store = store.unwrap();
            let result = write_and_commit(&store, next);
            // After a failed commit the store stops: the next block fails too.
            let after = result.is_err().then(|| write_and_commit(&store, next + 1));
            drop(store);
            (result, after)
        });
        let (result, after) =
            outcome.unwrap_or_else(|_| panic!("a failure at call {fail_at} panicked"));
        assert!(
            result.is_err(),
            "failing call {fail_at} of {opened}..{total} went unreported"
        );
        assert!(
            after.is_some_and(|r| r.is_err()),
            "call {fail_at}: the store went on writing after a failed commit"
        );
        // Reopened with the normal file backend: a whole block, and a file that verifies.
        let store = Store::open(&path, config(SCHEME, FIRST))
            .unwrap_or_else(|e| panic!("call {fail_at}: the file does not reopen: {e}"));
        let tip = store.tip().unwrap().unwrap();
        drop(store);
        if tip.height == before_tip.height {
            assert_eq!(tip, before_tip, "call {fail_at}");
            kept += 1;
        } else {
            assert_eq!(
                (tip.height, tip.consensus_hash),
                (next, new_ch),
                "call {fail_at}"
            );
            advanced += 1;
        }
        let reader = ReadOnlyStore::open(&path).unwrap();
        reader
            .verify()
            .unwrap_or_else(|e| panic!("call {fail_at}: {e}"));
    }
    eprintln!(
        "failure injection: {} failing calls tested (open made {opened}); {kept} kept the last committed block, {advanced} had the new block complete",
        total - opened
    );
    assert!(kept > 0);
}
