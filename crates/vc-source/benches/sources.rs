//! `cargo xtask bench sources`: how fast each source delivers a chain (blocks and the outputs they
//! spend), against two references on the same chain:
//!
//! * the raw lower bound: deserializing the same block bytes already in memory, one thread;
//! * the naive baseline, as the Python original fetched: one thread doing `getblockhash`,
//!   `getblock <hash> 0` (hex) per block and `getrawtransaction` per input (`-txindex`).
//!
//! The chain is built on a fresh regtest node: wide blocks of two-input transactions spending
//! all four key types. Each figure is the median of `VC_BENCH_RUNS` (default 5) runs after one
//! warm-up run; MB/s counts serialized block bytes. Without a bitcoind (see `cargo xtask node`)
//! it says so and exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash, Network, Transaction, TxOut};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode};
use vc_source::prefetch::Prefetch;
use vc_source::{BlockSource, ChainView, SpentOutputs};
use vc_testnode::{Signer, TestNode};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One source's way of reading `range`, returning the bytes of block data it delivered.
type Reader<'a> = Box<dyn Fn() -> usize + 'a>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Every block with its spent outputs, one thread, straight from a source.
fn sequential(source: &dyn BlockSource, first: u64, last: u64, spent: bool) -> usize {
    let mut bytes = 0;
    for h in first..=last {
        let hash = source.block_hash(h).unwrap();
        let f = source.block(&hash).unwrap();
        if spent {
            let s = source.spent_outputs(&hash, &f.block).unwrap();
            assert_eq!(s.0.len(), f.block.txdata.len());
        }
        bytes += f.size;
    }
    bytes
}

/// Every block with its spent outputs through the prefetch pipeline.
fn pipelined(source: Arc<dyn BlockSource>, first: u64, last: u64, workers: usize) -> usize {
    Prefetch::new(source, first, last + 1, workers, 64)
        .map(|f| f.unwrap().size)
        .sum()
}

/// The naive baseline: one JSON-RPC call after another, a transaction lookup per input.
fn naive(node: &TestNode, first: u64, last: u64) -> usize {
    let rpc = node.rpc();
    let mut bytes = 0;
    for h in first..=last {
        let hash: BlockHash = node.block_hash(h);
        let hex: String = rpc
            .call("getblock", &[hash.to_string().into(), 0.into()])
            .unwrap();
        let raw = vc_chash::hex::decode(&hex).unwrap();
        let block: Block = deserialize(&raw).unwrap();
        let mut spent = Vec::with_capacity(block.txdata.len());
        for (i, tx) in block.txdata.iter().enumerate() {
            let mut outs: Vec<TxOut> = Vec::new();
            if i > 0 {
                for input in &tx.input {
                    let prev: Transaction = node.raw_transaction(&input.previous_output.txid);
                    outs.push(prev.output[input.previous_output.vout as usize].clone());
                }
            }
            spent.push(outs);
        }
        SpentOutputs(spent).check_shape(&block).unwrap();
        bytes += raw.len();
    }
    bytes
}

fn main() {
    let Some(node) = TestNode::start_with(&["-txindex=1"]) else {
        println!(
            "sources bench: no bitcoind (run `cargo xtask node` or set BITCOIND_EXE); skipped"
        );
        return;
    };
    let blocks = env_or("VC_BENCH_BLOCKS", 300);
    let txs = env_or("VC_BENCH_TXS", 200) as usize;
    let runs = env_or("VC_BENCH_RUNS", 5).max(3) as usize;
    let started = Instant::now();
    let mut signer = Signer::new(77);
    vc_testnode::build_wide_chain(&node, &mut signer, blocks, txs);
    let last = node.height();
    let first = last - blocks + 1;
    // The naive baseline needs the transaction index to have caught up.
    loop {
        let info: serde_json::Value = node.rpc().call("getindexinfo", &[]).unwrap();
        if info["txindex"]["synced"].as_bool() == Some(true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "chain: {blocks} blocks of {txs} transactions (heights {first}..={last}), built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let core = |rest| {
        let mut c = CoreConfig::new(
            node.url(),
            CoreAuth::Cookie(node.cookie_file()),
            Network::Regtest,
        );
        c.rest = rest;
        Arc::new(CoreSource::connect(c).unwrap())
    };
    let rest = core(RestMode::Auto);
    let rpc = core(RestMode::Off);
    let blk =
        Arc::new(BlkSource::open(BlkConfig::new(node.blocks_dir(), Network::Regtest)).unwrap());
    let mut unchecked = BlkConfig::new(node.blocks_dir(), Network::Regtest);
    unchecked.check_merkle_root = false;
    let unchecked = BlkSource::open(unchecked).unwrap();
    let raw: Vec<Vec<u8>> = (first..=last)
        .map(|h| {
            let hash = rest.block_hash(h).unwrap();
            bitcoin::consensus::serialize(&rest.block(&hash).unwrap().block)
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    let readers: Vec<(&str, Reader)> = vec![
        (
            "raw: deserialize in memory, 1 thread",
            Box::new(|| {
                raw.iter()
                    .map(|b| {
                        let block: Block = deserialize(b).unwrap();
                        std::hint::black_box(&block);
                        b.len()
                    })
                    .sum()
            }),
        ),
        (
            "raw + body check (merkle root) in memory, 1 thread",
            Box::new(|| {
                raw.iter()
                    .map(|b| {
                        let block = vc_source::body::decode_block(b, true).unwrap();
                        std::hint::black_box(&block);
                        b.len()
                    })
                    .sum()
            }),
        ),
        (
            "blk files: blocks only, no body check, 1 thread",
            Box::new(|| sequential(&unchecked, first, last, false)),
        ),
        (
            "blk files: blocks only, 1 thread",
            Box::new(|| sequential(&*blk, first, last, false)),
        ),
        (
            "blk files: blocks + spent, 1 thread",
            Box::new(|| sequential(&*blk, first, last, true)),
        ),
        (
            "blk files: blocks + spent, prefetch",
            Box::new(|| pipelined(blk.clone(), first, last, threads)),
        ),
        (
            "core REST: blocks + spent, 1 thread",
            Box::new(|| sequential(&*rest, first, last, true)),
        ),
        (
            "core REST: blocks + spent, prefetch 8",
            Box::new(|| pipelined(rest.clone(), first, last, 8)),
        ),
        (
            "core JSON-RPC: getblock 0 + 3, prefetch 8",
            Box::new(|| pipelined(rpc.clone(), first, last, 8)),
        ),
        (
            "naive: getblock 0 + getrawtransaction per input, 1 thread",
            Box::new(|| naive(&node, first, last)),
        ),
    ];

    // VC_BENCH_ONLY=<substring> measures only the matching readers (and the raw bound).
    let only = std::env::var("VC_BENCH_ONLY").unwrap_or_default();
    let mut results = Vec::new();
    for (i, (name, read)) in readers.iter().enumerate() {
        if i > 0 && !name.contains(only.as_str()) {
            continue;
        }
        let bytes = read();
        // The naive baseline takes minutes a run: the minimum of three.
        let runs = if name.starts_with("naive") { 3 } else { runs };
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(read(), bytes);
                t.elapsed()
            })
            .collect();
        let m = median(times);
        eprintln!("{name}: {:.0} blocks/s", blocks as f64 / m.as_secs_f64());
        results.push((*name, bytes, m));
    }
    let per_sec = |m: Duration| blocks as f64 / m.as_secs_f64();
    let raw_rate = per_sec(results[0].2);
    let naive_rate = results
        .iter()
        .find(|r| r.0.starts_with("naive"))
        .map_or(f64::NAN, |r| per_sec(r.2));
    println!(
        "\nmedian of {runs} runs, {threads} threads available, {:.1} MB of blocks",
        results[0].1 as f64 / 1e6
    );
    println!(
        "{:<58} {:>10} {:>8} {:>8} {:>9}",
        "source", "blocks/s", "MB/s", "x raw", "x naive"
    );
    for (name, bytes, m) in &results {
        println!(
            "{:<58} {:>10.0} {:>8.1} {:>8.2} {:>9.1}",
            name,
            per_sec(*m),
            *bytes as f64 / 1e6 / m.as_secs_f64(),
            per_sec(*m) / raw_rate,
            per_sec(*m) / naive_rate
        );
    }
}
