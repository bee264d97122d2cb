//! Criterion benchmarks of vc-store (v2 scheme unless named, database files in a temporary
//! directory).
//!
//! * `commit/empty_x1000_one_commit`: 1,000 empty blocks (consensus hash, accumulator nodes,
//!   chain entry, undo log) applied in one write transaction and committed (catch-up mode).
//! * `commit/empty_x20_each_committed`: 20 empty blocks, each committed (fsync) on its own (at
//!   the tip).
//! * `commit/ops100_x50_one_commit`: 50 blocks of 100 operations each (a ~150-byte stored
//!   operation, one record and one state write per operation), one commit.
//! * `rollback/6_blocks_of_100k`: roll back 6 blocks (each with 10 state changes) of a
//!   100,000-block database and commit; the blocks are re-applied outside the timing.
//! * `deep_rollback/D_of_1m` for D in 6, 10, 100, 1,000, 10,000: revert D blocks (one state
//!   write each, an operation in one block of ten) of a 1,000,000-block database that keeps
//!   every undo log, timing `rollback_to` alone (the commit after it, one fsync, is printed
//!   apart); the blocks are re-applied outside the timing. The database is built once in big
//!   transactions and cached under the target directory (`CARGO_TARGET_TMPDIR`); its size is
//!   printed against the same chain with a 1,000-block undo window.
//! * `state_reads/random_of_100k`: point reads of random keys among 100,000 through a read view.
//! * `million_keys/{v2,v3}/...`: on a store holding 1,000,000 keys (built once in 100 blocks of
//!   10,000 puts and cached under `CARGO_TARGET_TMPDIR`, then copied): `apply_1000` times one
//!   block changing 1,000 random keys from `begin_block` to `finish` (inside the write
//!   transaction; the commit follows untimed), `apply_1000_commit` the same with its durable
//!   commit, `apply_1000_x20_commit` the same blocks during catch-up (20 to a write
//!   transaction, every commit timed; the time is per block), `apply_empty` one block changing
//!   nothing (commit every 1,000 blocks, untimed),
//!   and for v3 `prove_D_blocks_back` a state proof of a random key at `D` blocks below the
//!   tip (1, 10, 100), whose earlier tree is rebuilt from the `D` blocks' undo logs. The
//!   writer first applies 300 such blocks untimed, so that the times are of a warm writer.
//!   Bytes on disk per key and the growth per block are printed at start-up; then, v2 and v3
//!   interleaved, catch-up as the engine commits it, under the default `CommitPolicy` (1,000
//!   blocks or 2 seconds to a write transaction, so the batch grows as blocks get cheaper; the
//!   2 seconds stretched to 9 times the last commit's duration), and for v3 also with the
//!   interval fixed at 2 seconds,
//!   with where the time went (`WriterTimings`: the blocks, the tree update and the wait for
//!   it, the commits and the tree pages written at them), and blocks changing nothing; and for
//!   v3 batches of 20 with and without the tree's second thread (`Writer::set_tree_thread`),
//!   interleaved.
//! * `state_sizes/{v2,v3}/{10000,100000}/apply_1000_x20_commit`: `apply_1000_x20_commit` on
//!   stores of 10,000 and 100,000 keys, built the same way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vc_chash::{Hash256, Scheme};
use vc_store::{
    BlockHeader, Namespace, OutputData, StateAccess, StateReadExt, StateWriteExt, Store,
    StoreConfig, StoredOp, Writer,
};

fn hash(height: u64, salt: u64) -> Hash256 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&height.to_le_bytes());
    b[8..16].copy_from_slice(&salt.to_le_bytes());
    b[31] = 1;
    Hash256(b)
}

fn open(dir: &tempfile::TempDir) -> Store {
    open_at(&dir.path().join("bench.redb"), Scheme::V2)
}

fn open_at(path: &Path, scheme: Scheme) -> Store {
    let cfg = StoreConfig::new("bench", "1", scheme, 0, "regtest");
    Store::open(path, cfg).unwrap()
}

/// Applies the next block with `ops` operations and `writes` state writes; `salt` makes a branch.
/// The benchmark's one namespace.
const NAMES: Namespace<u64, Vec<u8>> = Namespace::new("names");

fn block(w: &mut Writer<'_>, ns: &Namespace<u64, Vec<u8>>, ops: u32, writes: u64, salt: u64) {
    let height = w.next_height();
    let prev = w.tip().map_or(Hash256::ZERO, |t| t.1);
    let mut b = w
        .begin_block(BlockHeader {
            height,
            block_hash: hash(height, salt),
            prev_hash: prev,
        })
        .unwrap();
    for i in 0..ops {
        b.add_op(StoredOp {
            txid: hash(height, u64::from(i) + 7).0,
            txindex: i + 1,
            vtxindex: i,
            opcode: b':',
            payload: b"id:some-name.id-and-a-bit-more-data".to_vec(),
            senders: vec![OutputData {
                value: 10_000,
                script: vec![
                    0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                    20,
                ],
            }],
            outputs: vec![],
            fee: 1_000,
            records: vec![format!(":name-{height}-{i}").into_bytes()],
        })
        .unwrap();
    }
    for i in 0..writes {
        b.put(ns, &(height * 1_000 + i), &vec![salt as u8; 40])
            .unwrap();
    }
    b.finish().unwrap();
}

fn commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("empty_x1000_one_commit", |b| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let ns = NAMES;
        b.iter(|| {
            let mut w = store.writer().unwrap();
            for _ in 0..1_000 {
                block(&mut w, &ns, 0, 0, 0);
            }
            w.commit().unwrap();
        });
    });
    g.throughput(Throughput::Elements(20));
    g.bench_function("empty_x20_each_committed", |b| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let ns = NAMES;
        b.iter(|| {
            let mut w = store.writer().unwrap();
            for _ in 0..20 {
                block(&mut w, &ns, 0, 0, 0);
                w.commit().unwrap();
            }
        });
    });
    g.throughput(Throughput::Elements(50));
    g.bench_function("ops100_x50_one_commit", |b| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let ns = NAMES;
        b.iter(|| {
            let mut w = store.writer().unwrap();
            for _ in 0..50 {
                block(&mut w, &ns, 100, 100, 0);
            }
            w.commit().unwrap();
        });
    });
    g.finish();
}

fn rollback(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ns = NAMES;
    {
        let mut w = store.writer().unwrap();
        for i in 0..100_000u64 {
            block(&mut w, &ns, u32::from(i % 10 == 0), 1, 0);
            if i % 5_000 == 4_999 {
                w.commit().unwrap();
            }
        }
        // The last blocks, the ones rolled back, change 10 keys each.
        w.rollback_to(99_993).unwrap();
        for _ in 0..6 {
            block(&mut w, &ns, 2, 10, 0);
        }
        w.commit().unwrap();
    }
    let mut g = c.benchmark_group("rollback");
    g.sample_size(30);
    g.bench_function("6_blocks_of_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let mut w = store.writer().unwrap();
                let tip = w.tip().unwrap().0;
                let start = Instant::now();
                assert_eq!(w.rollback_to(tip - 6).unwrap(), 6);
                w.commit().unwrap();
                total += start.elapsed();
                for _ in 0..6 {
                    block(&mut w, &ns, 2, 10, i + 1);
                }
                w.commit().unwrap();
            }
            total
        });
    });
    g.finish();
}

/// Blocks in the deep-rollback database.
const DEEP_BLOCKS: u64 = 1_000_000;

/// Opens (building it the first time, or after a failed build) the cached 1,000,000-block
/// database with an undo window of `window` blocks. A marker file says it is complete.
fn deep_store(window: u64) -> Store {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vc-store-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let tag = if window == vc_store::KEEP_ALL_UNDO {
        "all".to_owned()
    } else {
        window.to_string()
    };
    let path = dir.join(format!("deep-1m-undo-{tag}.redb"));
    let done = dir.join(format!("deep-1m-undo-{tag}.done"));
    let cfg = StoreConfig::new("bench", "1", Scheme::V2, 0, "regtest").with_undo_window(window);
    if !done.exists() {
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&path, cfg.clone()).unwrap();
        let started = Instant::now();
        {
            let mut w = store.writer().unwrap();
            for i in 0..DEEP_BLOCKS {
                deep_block(&mut w, i, 0);
                if i % 100_000 == 99_999 {
                    w.commit().unwrap();
                }
            }
            w.commit().unwrap();
        }
        eprintln!(
            "built {} ({DEEP_BLOCKS} blocks) in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        drop(store);
        std::fs::write(&done, b"").unwrap();
    }
    Store::open(&path, cfg).unwrap()
}

/// A block of the deep-rollback database: one state write, an operation in one block of ten.
fn deep_block(w: &mut Writer<'_>, i: u64, salt: u64) {
    block(w, &NAMES, u32::from(i.is_multiple_of(10)), 1, salt);
}

fn deep_rollback(c: &mut Criterion) {
    let pruned = deep_store(1_000);
    let pruned_bytes = std::fs::metadata(pruned.path()).unwrap().len();
    drop(pruned);
    let store = deep_store(vc_store::KEEP_ALL_UNDO);
    let all_bytes = std::fs::metadata(store.path()).unwrap().len();
    eprintln!(
        "disk: {all_bytes} bytes with every undo log, {pruned_bytes} bytes with a 1,000-block undo window: {} bytes ({:.1} bytes a block) more",
        all_bytes.saturating_sub(pruned_bytes),
        all_bytes.saturating_sub(pruned_bytes) as f64 / DEEP_BLOCKS as f64
    );
    let mut g = c.benchmark_group("deep_rollback");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    for depth in [6u64, 10, 100, 1_000, 10_000] {
        g.throughput(Throughput::Elements(depth));
        let mut commits = Duration::ZERO;
        let mut rounds = 0u32;
        g.bench_function(format!("{depth}_of_1m"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let mut w = store.writer().unwrap();
                    let tip = w.tip().unwrap().0;
                    let start = Instant::now();
                    assert_eq!(w.rollback_to(tip - depth).unwrap(), depth);
                    total += start.elapsed();
                    let start = Instant::now();
                    w.commit().unwrap();
                    commits += start.elapsed();
                    rounds += 1;
                    for h in tip - depth + 1..=tip {
                        deep_block(&mut w, h, i + 1);
                    }
                    w.commit().unwrap();
                }
                total
            });
        });
        eprintln!(
            "deep_rollback/{depth}_of_1m: the commit after the rollback took {:.2} ms on average",
            commits.as_secs_f64() * 1e3 / f64::from(rounds.max(1))
        );
    }
    g.finish();
}

fn state_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ns: Namespace<u64, Vec<u8>> = NAMES;
    {
        let mut w = store.writer().unwrap();
        for _ in 0..100 {
            block(&mut w, &ns, 0, 1_000, 0);
        }
        w.commit().unwrap();
    }
    let view = store.view().unwrap();
    let mut g = c.benchmark_group("state_reads");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("random_of_100k", |b| {
        let mut x = 0x1234_5678_u64;
        b.iter(|| {
            for _ in 0..1_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = (x % 100) * 1_000 + (x >> 32) % 1_000;
                black_box(view.get(&ns, &key).unwrap().unwrap());
            }
        });
    });
    g.finish();
}

/// Keys in the `million_keys` stores, and how many each bulk block puts.
const MILLION: u64 = 1_000_000;
const BULK: u64 = 10_000;

/// Blocks to a write transaction in `apply_1000_x20_commit`.
const BATCH: u64 = 20;

/// Key `i`'s value in block `salt`: 40 to 100 bytes, like a name record.
fn record(i: u64, salt: u64) -> Vec<u8> {
    let len = 40 + ((i.wrapping_mul(7919) ^ salt) % 61) as usize;
    (0..len)
        .map(|j| (i ^ salt).rotate_left(j as u32 % 64) as u8 ^ j as u8)
        .collect()
}

/// Applies the next block, setting key `i` to `record(i, height)` for every `i` of `keys`.
fn put_block(w: &mut Writer<'_>, keys: impl Iterator<Item = u64>) {
    let height = w.next_height();
    let prev = w.tip().map_or(Hash256::ZERO, |t| t.1);
    let mut b = w
        .begin_block(BlockHeader {
            height,
            block_hash: hash(height, 0),
            prev_hash: prev,
        })
        .unwrap();
    for i in keys {
        b.put_raw("names", &i.to_be_bytes(), record(i, height))
            .unwrap();
    }
    b.finish().unwrap();
}

/// The store of 1,000,000 keys under `scheme`, built once (100 blocks of 10,000 puts, a commit
/// every 10) and kept under the target directory (`CARGO_TARGET_TMPDIR`).
fn million_store(scheme: Scheme) -> PathBuf {
    sized_store(scheme, MILLION)
}

/// The store of `keys` keys (a multiple of [`BULK`]) under `scheme`, built once (blocks of
/// 10,000 puts, a commit every 10) and kept under the target directory.
fn sized_store(scheme: Scheme, keys: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vc-store-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = match keys {
        MILLION => dir.join(format!("store-1m-{}-v3.redb", scheme.name())),
        _ => dir.join(format!("store-{keys}-{}-v3.redb", scheme.name())),
    };
    if path.exists() {
        return path;
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let started = Instant::now();
    {
        let store = open_at(&partial, scheme);
        let mut w = store.writer().unwrap();
        for block in 0..keys / BULK {
            put_block(&mut w, block * BULK..(block + 1) * BULK);
            if block % 10 == 9 {
                w.commit().unwrap();
            }
        }
        w.commit().unwrap();
    }
    eprintln!(
        "built the {scheme} store of {keys} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Bytes the file takes on disk.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Entries and bytes per table of the database at `path` (redb's own accounting: the bytes its
/// entries store, and the pages its tree takes).
fn table_sizes(path: &Path) -> (String, u64) {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = redb::Database::builder().open_read_only(path).unwrap();
    let txn = db.begin_read().unwrap();
    let (mut out, mut total) = (String::new(), 0);
    for handle in txn.list_tables().unwrap() {
        let name = handle.name().to_owned();
        let table = txn.open_untyped_table(handle).unwrap();
        let s = table.stats().unwrap();
        // redb's default page size.
        let pages = (s.leaf_pages() + s.branch_pages()) * 4096;
        out += &format!(
            "\n  {name}: {} entries, {:.1} MB stored, {:.1} MB of pages",
            table.len().unwrap(),
            s.stored_bytes() as f64 / 1e6,
            pages as f64 / 1e6
        );
        total += s.stored_bytes();
    }
    (out, total)
}

/// A random key below 1,000,000 (xorshift).
fn next_key(x: &mut u64) -> u64 {
    next_key_below(x, MILLION)
}

/// A random key below `keys` (xorshift).
fn next_key_below(x: &mut u64, keys: u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x % keys
}

/// The time per block of `iters` blocks changing 1,000 random keys below `keys`, [`BATCH`] to
/// a commit, every commit timed (`iters` rounded up to whole batches, the time scaled back).
fn batched_blocks(w: &mut Writer<'_>, iters: u64, x: &mut u64, keys: u64) -> Duration {
    let blocks = iters.div_ceil(BATCH) * BATCH;
    let start = Instant::now();
    for i in 0..blocks {
        put_block(w, (0..1_000).map(|_| next_key_below(x, keys)));
        if i % BATCH == BATCH - 1 {
            w.commit().unwrap();
        }
    }
    start.elapsed().mul_f64(iters as f64 / blocks as f64)
}

/// Blocks changing 1,000 random keys, 20 to a commit (`apply_1000_x20_commit`, as in
/// `million_keys`), on stores of 10,000 and 100,000 keys: how the tree's cost grows with the
/// state. The commit is timed since the writer writes the tree's pages then.
fn state_sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_sizes");
    g.sample_size(20);
    for keys in [10_000u64, 100_000] {
        for scheme in [Scheme::V2, Scheme::V3] {
            let cached = sized_store(scheme, keys);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bench.redb");
            std::fs::copy(&cached, &path).unwrap();
            let store = open_at(&path, scheme);
            let mut w = store.writer().unwrap();
            let mut x = 0x9E37_79B9_7F4A_7C15_u64;
            let name = scheme.name();
            g.bench_function(format!("{name}/{keys}/apply_1000_x{BATCH}_commit"), |b| {
                b.iter_custom(|iters| batched_blocks(&mut w, iters, &mut x, keys));
            });
        }
    }
    g.finish();
}

fn million_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("million_keys");
    g.sample_size(10);
    // The v2 store, kept open for the v3 round to compare catch-up with, interleaved.
    let mut v2_kept: Option<(tempfile::TempDir, Store)> = None;
    for scheme in [Scheme::V2, Scheme::V3] {
        let cached = million_store(scheme);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.redb");
        std::fs::copy(&cached, &path).unwrap();
        let built = disk_bytes(&path);
        let (tables, stored) = table_sizes(&path);
        eprintln!(
            "{scheme} store of {MILLION} keys (100 blocks of {BULK} puts): {built} bytes on disk, \
             {:.1} per key; entries store {stored} bytes, {:.1} per key; by table:{tables}",
            built as f64 / MILLION as f64,
            stored as f64 / MILLION as f64,
        );
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        // Growth: 100 more blocks of 1,000 changed keys, each committed.
        {
            let store = open_at(&path, scheme);
            let mut w = store.writer().unwrap();
            for _ in 0..100 {
                put_block(&mut w, (0..1_000).map(|_| next_key(&mut x)));
                w.commit().unwrap();
            }
        }
        let (_, grown) = table_sizes(&path);
        eprintln!(
            "{scheme}: 100 more blocks of 1,000 changes add {:.1} KB of stored entries per block \
             (the file: {} to {} bytes)",
            grown.saturating_sub(stored) as f64 / 100.0 / 1e3,
            built,
            disk_bytes(&path)
        );
        let store = open_at(&path, scheme);
        let name = scheme.name();
        // One writer throughout, as the engine keeps one: its cache of the newest tree's nodes
        // stays warm from block to block. A node that has run for a while has every page it
        // needs there; so that the timings are of that steady state, and not of the first
        // blocks after a start, which read pages back from the file, 300 blocks go first
        // (untimed; their cost is printed).
        let mut w = store.writer().unwrap();
        let started = Instant::now();
        for i in 0..300 {
            put_block(&mut w, (0..1_000).map(|_| next_key(&mut x)));
            if i % 20 == 19 {
                w.commit().unwrap();
            }
        }
        eprintln!(
            "{scheme}: the first 300 blocks after opening (20 to a commit) took {:.1} ms each",
            started.elapsed().as_secs_f64() * 1e3 / 300.0
        );
        if let Some((_, v2)) = &v2_kept {
            let mut v2_writer = v2.writer().unwrap();
            catch_up_by_policy(&mut v2_writer, &mut w, &mut x);
            empty_blocks_interleaved(&mut v2_writer, &mut w);
        }
        if scheme.commits_state() {
            tree_thread_interleaved(&mut w, &mut x);
        }
        for (bench, with_commit) in [("apply_1000", false), ("apply_1000_commit", true)] {
            g.bench_function(format!("{name}/{bench}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let keys: Vec<u64> = (0..1_000).map(|_| next_key(&mut x)).collect();
                        let start = Instant::now();
                        put_block(&mut w, keys.into_iter());
                        if with_commit {
                            w.commit().unwrap();
                            total += start.elapsed();
                        } else {
                            total += start.elapsed();
                            w.commit().unwrap();
                        }
                    }
                    total
                });
            });
        }
        // Catch-up: blocks applied in one write transaction, committed together (as the
        // engine's commit policy batches them), every commit timed. The time is per block.
        g.bench_function(format!("{name}/apply_1000_x{BATCH}_commit"), |b| {
            b.iter_custom(|iters| batched_blocks(&mut w, iters, &mut x, MILLION));
        });
        if scheme.commits_state() {
            // A proof at an earlier height sets back, in memory, every key changed since:
            // about 1,000 a block here.
            w.commit().unwrap();
            let view = store.view().unwrap();
            let tip = view.tip().unwrap().unwrap().height;
            for back in [1u64, 10, 100] {
                g.bench_function(format!("{name}/prove_{back}_blocks_back"), |b| {
                    let mut key = 0u64;
                    b.iter(|| {
                        key = next_key(&mut x);
                        black_box(
                            view.state_proof("names", &key.to_be_bytes(), tip, tip - back)
                                .unwrap(),
                        )
                    });
                });
            }
        }
        g.bench_function(format!("{name}/apply_empty"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let start = Instant::now();
                    put_block(&mut w, std::iter::empty());
                    total += start.elapsed();
                    if i % 1_000 == 999 {
                        w.commit().unwrap();
                    }
                }
                w.commit().unwrap();
                total
            });
        });
        drop(w);
        if scheme == Scheme::V2 {
            v2_kept = Some((dir, store));
        }
    }
    g.finish();
}

/// Catch-up as the engine does it, v2 against v3: blocks of 1,000 random changes, committed
/// whenever the default [`CommitPolicy`](vc_store::CommitPolicy) says (1,000 blocks, or 2
/// seconds stretched to 9 times the last commit's duration), and for v3 also under that policy
/// with the interval fixed at 2 seconds (`interval_per_commit` 0, the default before
/// 2026-12-03); every block and commit timed; three rounds of 1,000 blocks of each, each
/// ending with a commit, interleaved so that the machine's slow and fast periods fall on all
/// three; prints the median round per block, how many blocks a commit held, and where that
/// round's time went ([`WriterTimings`](vc_store::WriterTimings)).
fn catch_up_by_policy<'s>(v2: &mut Writer<'s>, v3: &mut Writer<'s>, x: &mut u64) {
    const BLOCKS: u32 = 1_000;
    let default = vc_store::CommitPolicy::default();
    let fixed = vc_store::CommitPolicy {
        interval_per_commit: 0,
        ..default
    };
    let runs = [
        ("v2", default),
        ("v3", default),
        ("v3 with the interval fixed at 2 s", fixed),
    ];
    let mut rounds: [Vec<(f64, vc_store::WriterTimings)>; 3] = Default::default();
    for _ in 0..3 {
        for ((i, (_, policy)), times) in runs.iter().enumerate().zip(rounds.iter_mut()) {
            let w = if i == 0 { &mut *v2 } else { &mut *v3 };
            w.take_timings();
            let start = Instant::now();
            for _ in 0..BLOCKS {
                put_block(w, (0..1_000).map(|_| next_key(x)));
                w.commit_if_due(policy, false).unwrap();
            }
            w.commit().unwrap();
            times.push((
                start.elapsed().as_secs_f64() * 1e3 / f64::from(BLOCKS),
                w.take_timings(),
            ));
        }
    }
    for ((label, _), times) in runs.iter().zip(rounds.iter_mut()) {
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (per_block, t) = times[1];
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(BLOCKS);
        eprintln!(
            "{label}: catch-up under the default commit policy ({BLOCKS} blocks of 1,000 \
             changes, interleaved with the others, median of 3 rounds): {per_block:.1} ms \
             a block, {:.0} blocks to a commit; the rounds: {:.1?}; per block, that round: \
             applying {:.2} ms (tree update {:.2} ms, {:.2} ms of it waited for), committing \
             {:.2} ms (tree pages {:.2} ms)",
            f64::from(BLOCKS) / t.commits as f64,
            times.iter().map(|r| r.0).collect::<Vec<_>>(),
            ms(t.applying),
            ms(t.tree_update),
            ms(t.tree_wait),
            ms(t.committing),
            ms(t.tree_pages),
        );
    }
}

/// The median of `times` (sorted in place).
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// A block changing nothing, v2 against v3, interleaved so that the machine's slow and fast
/// periods fall on both: 15 rounds of 1,000 empty blocks on each store (the commit after them
/// untimed); prints the median per block of each and their difference, which the v3 goal
/// bounds at 2 µs.
fn empty_blocks_interleaved<'s>(v2: &mut Writer<'s>, v3: &mut Writer<'s>) {
    const BLOCKS: u32 = 1_000;
    let mut rounds: [Vec<Duration>; 2] = Default::default();
    for _ in 0..15 {
        for (w, times) in [&mut *v2, &mut *v3].into_iter().zip(rounds.iter_mut()) {
            let start = Instant::now();
            for _ in 0..BLOCKS {
                put_block(w, std::iter::empty());
            }
            times.push(start.elapsed() / BLOCKS);
            w.commit().unwrap();
        }
    }
    let [v2_times, v3_times] = &mut rounds;
    let (v2_us, v3_us) = (
        median(v2_times).as_secs_f64() * 1e6,
        median(v3_times).as_secs_f64() * 1e6,
    );
    eprintln!(
        "a block changing nothing, interleaved (15 rounds of {BLOCKS} blocks, median): v2 \
         {v2_us:.1} µs, v3 {v3_us:.1} µs, {:+.1} µs",
        v3_us - v2_us
    );
}

/// v3: what the tree's second thread saves, measured interleaved so that the machine's slow
/// and fast periods fall on both: 15 rounds, each of 20 blocks of 1,000 changes and their
/// commit with the thread, then 20 without, every block and commit timed; prints the median per
/// block of each.
fn tree_thread_interleaved(w: &mut Writer<'_>, x: &mut u64) {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        for (on, times) in [(true, &mut with), (false, &mut without)] {
            w.set_tree_thread(on);
            times.push(batched_blocks(w, BATCH, x, MILLION));
        }
    }
    w.set_tree_thread(true);
    let per_block_ms = |times: &mut Vec<Duration>| median(times).as_secs_f64() * 1e3 / BATCH as f64;
    eprintln!(
        "v3 tree thread, interleaved ({BATCH} blocks of 1,000 changes and their commit, per \
         block, median of 15): {:.1} ms with it, {:.1} ms without",
        per_block_ms(&mut with),
        per_block_ms(&mut without)
    );
}

criterion_group!(
    benches,
    commit,
    rollback,
    deep_rollback,
    state_reads,
    state_sizes,
    million_keys
);
criterion_main!(benches);
