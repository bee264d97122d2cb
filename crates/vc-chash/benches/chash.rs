//! Criterion benchmarks of vc-chash: consensus hash per block and proof verification.
//!
//! * `ch_per_block/{legacy,v2}/{0,10,1000}`: all the work of one block at height F + 10^6
//!   (20 priors, an MMR of 10^6 leaves): ops hash over that many 40-byte records, then the
//!   consensus hash (v2: also the priors hash, MMR root and MMR append).
//! * `verify/{legacy,v2}/{10,1000,999999}`: decode + verify a proof of block n - d from trusted
//!   CH(n) on a chain of 1,000,001 empty blocks (n = F + 10^6; d = 999,999 is block F + 1).
//!
//! Proof sizes are printed once at start-up (they are also asserted in `tests/proof_size.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vc_chash::history::{History, MemoryHistory, Retain};
use vc_chash::proof::{self, Proof};
use vc_chash::v2::{self, mmr::Mmr};
use vc_chash::{Hash256, Scheme, legacy};

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

fn ch_per_block(c: &mut Criterion) {
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
        group.bench_with_input(BenchmarkId::new("v2", count), &recs, |b, recs| {
            b.iter(|| {
                let ops = v2::ops_hash(black_box(recs));
                let commitment = v2::Commitment {
                    height: N,
                    block_hash: Hash256([9; 32]),
                    ops_hash: ops,
                    priors_hash: v2::priors_hash(black_box(&v2_priors)),
                    mmr_root: mmr.root(),
                    state_root: None,
                };
                let ch = commitment.consensus_hash();
                let mut next = mmr.clone();
                next.push(ch, |_, _, _| {});
                next
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

criterion_group!(benches, ch_per_block, verify);
criterion_main!(benches);
