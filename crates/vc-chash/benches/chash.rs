//! Criterion benchmarks of vc-chash: consensus hash per block and proof verification.
//!
//! * `ch_per_block/{legacy,v2}/{0,10,1000}`: all the work of one block at height F + 10^6
//!   (20 priors, an MMR of 10^6 leaves): ops hash over that many 40-byte records, then the
//!   consensus hash (v2: also the priors hash, MMR root and MMR append).
//! * `verify/{legacy,v2}/{10,1000,999999}`: decode + verify a proof of block n - d from trusted
//!   CH(n) on a chain of 1,000,001 empty blocks (n = F + 10^6; d = 999,999 is block F + 1).
//!
//! * `ch_per_block/v3/{0,10,1000}`: the v2 work plus the state root of a block that changes no
//!   key, read through `state::update` from a state of 1,000,000 keys (what a v3 node adds to a
//!   block that changes nothing).
//! * `state_proof/verify/{present,absent_empty,absent_other}/{0,1000000}`: decode + verify the
//!   v3 state proof of one key among 1,000,000 at height n - d from trusted CH(n) (n = F + 10^6):
//!   a present key, an absent key whose path ends at an empty subtree, one whose path ends at
//!   another key's leaf.
//! * `state_update/{updates,mixed}_1000_of_1M`: `MemoryState::apply` of one block changing
//!   1,000 keys of 1,000,000 (key paths, value hashes, the tree update, the values): 1,000
//!   updates of existing keys, or 900 updates, 50 insertions and 50 deletions.
//!
//! Proof sizes are printed once at start-up (they are also asserted in `tests/proof_size.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard, OnceLock};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use vc_chash::history::{History, MemoryHistory, Retain};
use vc_chash::proof::{self, Proof};
use vc_chash::state::{self, MemoryState};
use vc_chash::v2::{self, mmr::Mmr};
use vc_chash::{Hash256, Scheme, legacy};

#[path = "../tests/common/million.rs"]
mod million;

const F: u64 = 500_000;
const N: u64 = F + 1_000_000;
const DISTANCES: [u64; 3] = [10, 1_000, 999_999];

fn records(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("?:20:{i:020},16:{:032x}", i * 7).into_bytes())
        .map(|mut r| {
            r.truncate(40);
            r
        })
        .collect()
}

/// The state of 1,000,000 keys, built once and shared by the groups (`state_update` changes
/// values but keeps the key count).
fn million_state() -> MutexGuard<'static, MemoryState> {
    static STATE: OnceLock<Mutex<MemoryState>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            eprintln!("building a state of {} keys", million::KEYS);
            Mutex::new(million::state())
        })
        .lock()
        .unwrap()
}

fn ch_per_block(c: &mut Criterion) {
    let mut st = million_state();
    let mut group = c.benchmark_group("ch_per_block");
    let legacy_priors: Vec<[u8; 16]> = (0..20u8).map(|i| [i; 16]).collect();
    let v2_priors: Vec<Hash256> = (0..20u8).map(|i| Hash256([i; 32])).collect();
    let mut mmr = Mmr::new();
    for i in 0..1_000_000u64 {
        let mut leaf = [0u8; 32];
        leaf[..8].copy_from_slice(&i.to_be_bytes());
        mmr.push(Hash256(leaf), |_, _, _| {});
    }
    for count in [0usize, 10, 1000] {
        let recs = records(count);
        group.bench_with_input(BenchmarkId::new("legacy", count), &recs, |b, recs| {
            b.iter(|| {
                let ops = legacy::ops_hash(black_box(recs));
                legacy::consensus_hash(&ops, black_box(&legacy_priors))
            })
        });
        // The v2 work of the block, committing `state_root` (v3) or none (v2).
        let v2_block = |recs: &[Vec<u8>], state_root: Option<Hash256>| {
            let commitment = v2::Commitment {
                height: N,
                block_hash: Hash256([9; 32]),
                ops_hash: v2::ops_hash(black_box(recs)),
                priors_hash: v2::priors_hash(black_box(&v2_priors)),
                mmr_root: mmr.root(),
                state_root,
            };
            let ch = commitment.consensus_hash();
            let mut next = mmr.clone();
            next.push(ch, |_, _, _| {});
            next
        };
        group.bench_with_input(BenchmarkId::new("v2", count), &recs, |b, recs| {
            b.iter(|| v2_block(recs, None))
        });
        group.bench_with_input(BenchmarkId::new("v3", count), &recs, |b, recs| {
            b.iter(|| {
                let state_root = state::update(&mut *st, black_box(&[])).unwrap();
                v2_block(recs, Some(state_root))
            })
        });
    }
    group.finish();
}

fn empty_chain(scheme: Scheme) -> MemoryHistory {
    let mut h = MemoryHistory::with_retention(scheme, F, Retain::all());
    for _ in F..=N {
        h.push_block::<&[u8]>(Hash256([7; 32]), &[]);
    }
    h
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let chain = empty_chain(scheme);
        let trusted = chain.consensus_hash(N).unwrap().unwrap();
        for d in DISTANCES {
            let m = N - d;
            let bytes = proof::prove(&chain, N, m).unwrap().encode();
            eprintln!("proof size {scheme} n-m={d}: {} bytes", bytes.len());
            group.bench_with_input(BenchmarkId::new(scheme.name(), d), &bytes, |b, bytes| {
                b.iter(|| {
                    Proof::decode(black_box(bytes))
                        .unwrap()
                        .verify(F, N, &trusted, m)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

/// Sizes (value excluded) of the proofs of 1,000 present and 1,000 absent keys at `m`: mean
/// and largest of each.
fn size_summary(chain: &MemoryHistory, st: &MemoryState, m: u64) -> String {
    let mut line = String::new();
    for (what, offset) in [("present", 0), ("absent", million::KEYS)] {
        let sizes: Vec<usize> = (0..1_000u64)
            .map(|j| offset + j.wrapping_mul(0x9E37_79B9) % million::KEYS)
            .map(|i| million::size_without_value(&million::proof(chain, st, m, i)))
            .collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        let max = sizes.iter().max().unwrap();
        line += &format!("{what}: mean {mean:.0}, max {max} bytes; ");
    }
    line
}

fn state_proof(c: &mut Criterion) {
    let st = million_state();
    eprintln!("building a v3 chain of 1,000,001 blocks");
    let chain = million::chain(st.root());
    let trusted = chain.consensus_hash(million::N).unwrap().unwrap();
    // One present key, and the first absent keys whose paths end at an empty subtree and at
    // another key's leaf.
    let present = 123_457;
    let absent = |empty: bool| {
        (million::KEYS..)
            .find(|i| {
                million::absent_kind(&million::proof(&chain, &st, million::N, *i)) == Some(empty)
            })
            .unwrap()
    };
    let keys = [
        ("present", present),
        ("absent_empty", absent(true)),
        ("absent_other", absent(false)),
    ];
    let mut group = c.benchmark_group("state_proof");
    for m in [million::N, million::F] {
        let d = million::N - m;
        eprintln!(
            "state proof sizes among 1,000,000 keys, n-m={d}, 1,000 keys of each kind (value \
             excluded): {}",
            size_summary(&chain, &st, m)
        );
        for (what, i) in keys {
            let bytes = million::proof(&chain, &st, m, i);
            eprintln!(
                "state proof {what} n-m={d}: {} bytes, {} without the value",
                bytes.len(),
                million::size_without_value(&bytes)
            );
            let k = million::key(i);
            group.bench_with_input(
                BenchmarkId::new(format!("verify/{what}"), d),
                &bytes,
                |b, bytes| {
                    b.iter(|| {
                        state::proof::verify(
                            black_box(bytes),
                            million::F,
                            million::N,
                            &trusted,
                            m,
                            million::NS,
                            &k,
                        )
                        .unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

/// One block's changes: `updates` random existing keys get new values; the `churn` keys
/// inserted by the previous block are deleted and `churn` new ones inserted.
struct BlockChanges {
    updates: usize,
    churn: u64,
    block: u64,
    rng: u64,
}

impl BlockChanges {
    /// The next block's keys and their new values (`None`: deleted).
    fn next(&mut self) -> (Vec<[u8; 8]>, Vec<Option<Vec<u8>>>) {
        self.block += 1;
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for _ in 0..self.updates {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = self.rng % million::KEYS;
            keys.push(million::key(i));
            values.push(Some(million::value(i, self.block)));
        }
        let fresh = self.fresh();
        for i in fresh - self.churn..fresh {
            keys.push(million::key(i));
            values.push(None);
        }
        for i in fresh..fresh + self.churn {
            keys.push(million::key(i));
            values.push(Some(million::value(i, self.block)));
        }
        (keys, values)
    }

    /// The first key the last block inserted.
    fn fresh(&self) -> u64 {
        million::KEYS + self.block * self.churn
    }
}

fn state_update(c: &mut Criterion) {
    let mut st = million_state();
    let mut group = c.benchmark_group("state_update");
    for (name, updates, churn) in [
        ("updates_1000_of_1M", 1_000, 0),
        ("mixed_1000_of_1M", 900, 50),
    ] {
        let mut changes = BlockChanges {
            updates,
            churn,
            block: 0,
            rng: 0x1234_5678_9abc_def1,
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || changes.next(),
                |(keys, values)| {
                    st.apply(
                        keys.iter()
                            .zip(values)
                            .map(|(k, v)| (million::NS, k.as_slice(), v)),
                    )
                },
                BatchSize::PerIteration,
            )
        });
        // Leave the state at 1,000,000 keys for whatever runs next.
        let fresh = changes.fresh();
        let extra: Vec<[u8; 8]> = (fresh..fresh + churn).map(million::key).collect();
        st.apply(extra.iter().map(|k| (million::NS, k.as_slice(), None)));
        assert_eq!(st.len() as u64, million::KEYS);
    }
    group.finish();
}

criterion_group!(benches, ch_per_block, verify, state_proof, state_update);
criterion_main!(benches);
