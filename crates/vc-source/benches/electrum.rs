//! `cargo xtask bench electrum`: the Electrum source's two rates.
//!
//! * **Headers validated per second**: linkage, proof of work, difficulty rules and median time
//!   past over in-memory regtest headers (the CPU cost alone), and a whole header sync from a
//!   real electrs on loopback (`ElectrumSource::connect`: fetching in batches of 2016 plus
//!   validation).
//! * **Operations fetched per second**: `Prefetch::watched` over blocks whose transactions pay
//!   a marker script: each transaction fetched and checked against its txid, proven by its
//!   merkle branch against the validated header, and its prevouts fetched from the funding
//!   transactions. Core REST's whole-block path over the same blocks is the reference.
//!
//! Each figure is the median of `VC_BENCH_RUNS` (default 5) runs. Without bitcoind or electrs
//! (see `cargo xtask node` and `cargo xtask electrs`) the networked part says so and stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{Network, TxMerkleNode};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
use vc_source::electrum::headers::HeaderChain;
use vc_source::electrum::{ElectrumConfig, ElectrumSource};
use vc_source::prefetch::Prefetch;
use vc_source::{WatchBlocks, WatchSource};
use vc_testnode::{Electrs, KeyKind, Signer, TestNode};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn regtest_headers(n: usize) -> Vec<Header> {
    let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
    let mut prev = genesis;
    (0..n)
        .map(|i| {
            let mut h = Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: prev.block_hash(),
                merkle_root: TxMerkleNode::from_byte_array([i as u8; 32]),
                time: genesis.time + 1 + i as u32,
                bits: genesis.bits,
                nonce: 0,
            };
            while h.validate_pow(h.target()).is_err() {
                h.nonce += 1;
            }
            prev = h;
            h
        })
        .collect()
}

fn main() {
    let runs = env_or("VC_BENCH_RUNS", 5).max(3) as usize;
    let n = env_or("VC_BENCH_HEADERS", 50_000) as usize;
    let headers = regtest_headers(n);
    let t = time(runs, || {
        let mut chain = HeaderChain::new(Network::Regtest);
        chain.connect("bench", 0, &headers).unwrap();
        assert_eq!(chain.tip_height(), n as u64);
    });
    println!(
        "header validation, in memory: {n} headers in {:.1} ms = {:.0} headers/s",
        t.as_secs_f64() * 1e3,
        n as f64 / t.as_secs_f64()
    );

    let Some(node) = TestNode::start() else {
        println!("electrum bench: no bitcoind (run `cargo xtask node`); networked part skipped");
        return;
    };
    let blocks = env_or("VC_BENCH_BLOCKS", 20);
    let txs = env_or("VC_BENCH_TXS", 100) as usize;
    let empty = env_or("VC_BENCH_EMPTY", 3_000);
    let mut signer = Signer::new(91);
    vc_testnode::build_wide_chain(&node, &mut signer, blocks, txs);
    let last = node.height();
    let first = last - blocks + 1;
    // Empty blocks above, so that the header sync has something to chew on.
    node.mine(empty, &signer.address(KeyKind::P2pkh));
    let Some(electrs) = Electrs::start(&node) else {
        println!("electrum bench: no electrs (run `cargo xtask electrs`); networked part skipped");
        return;
    };
    let tip = node.height();
    let config = ElectrumConfig::new(electrs.url(), Network::Regtest);
    let t = time(runs, || {
        let s = ElectrumSource::connect(config.clone()).unwrap();
        assert_eq!(s.validated_tip().height, tip);
    });
    println!(
        "header sync from electrs on loopback: {tip} headers in {:.1} ms = {:.0} headers/s",
        t.as_secs_f64() * 1e3,
        tip as f64 / t.as_secs_f64()
    );

    // The marker: the P2TR key's script, paid by about half of the wide chain's transactions.
    let marker = vec![signer.address(KeyKind::P2tr).script_pubkey()];
    let watch = |source: Arc<dyn WatchSource>| {
        Prefetch::watched(
            source,
            first,
            last + 1,
            4,
            64,
            marker.clone(),
            Arc::new(|_: &bitcoin::Transaction| true),
        )
        .map(|w| {
            let w = w.unwrap();
            w.txs.iter().filter(|t| t.spent.is_some()).count()
        })
        .sum::<usize>()
    };
    let mut ops = 0;
    let mut stats = Vec::new();
    let fetch = median(
        (0..runs)
            .map(|_| {
                // A fresh source each run (its header sync outside the timing): no history or
                // transaction is cached from the last run.
                let s = Arc::new(ElectrumSource::connect(config.clone()).unwrap());
                let before = s.stats();
                let start = Instant::now();
                ops = watch(Arc::clone(&s) as Arc<dyn WatchSource>);
                let took = start.elapsed();
                let after = s.stats();
                stats = vec![
                    after.requests - before.requests,
                    after.transactions - before.transactions,
                ];
                took
            })
            .collect(),
    );
    println!(
        "operations from electrs (tx + txid check + merkle proof + prevouts, 4 threads): {ops} in {:.1} ms = {:.0} ops/s",
        fetch.as_secs_f64() * 1e3,
        ops as f64 / fetch.as_secs_f64()
    );
    println!(
        "  ({} requests, batches counted once; {} transactions fetched, funding ones included)",
        stats[0], stats[1]
    );
    let core: Arc<dyn WatchSource> = Arc::new(WatchBlocks(
        CoreSource::connect(CoreConfig::new(
            node.url(),
            CoreAuth::Cookie(node.cookie_file()),
            Network::Regtest,
        ))
        .unwrap(),
    ));
    let mut core_ops = 0;
    let t = time(runs, || core_ops = watch(Arc::clone(&core)));
    assert_eq!(core_ops, ops, "both sources see the same operations");
    println!(
        "the same operations from Core REST (whole blocks + undo data, 4 threads): {core_ops} in {:.1} ms = {:.0} ops/s",
        t.as_secs_f64() * 1e3,
        core_ops as f64 / t.as_secs_f64()
    );
}
