//! Proofs served per second, and their latency, with many concurrent clients on loopback.
//!
//! `cargo xtask bench serve [-- --blocks N --clients C --seconds S]` (defaults: 100,000 blocks,
//! 64 clients, 10 s per scheme). For each scheme it writes a synthetic store of N blocks, serves
//! it with `vc_serve::Server` (tokio, one worker per core) and runs C client threads in the same
//! process, each with its own keep-alive connection, asking for proofs of random (m, n) pairs
//! over the whole chain. One reply in 64 is verified against the store's consensus hash, and a
//! wrong one fails the run. Client and server share the machine's cores, as they would on one
//! host; the figures include the clients' own cost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vc_chash::{ConsensusHash, Scheme};
use vc_serve::{ServeConfig, Server};
use vc_store::ReadOnlyStore;
use vc_testnode::synthetic::{self, mix};

const FIRST: u64 = 1_000;

struct Options {
    blocks: u64,
    clients: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        blocks: 100_000,
        clients: 64,
        seconds: 10,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = || args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match args[i].as_str() {
            "--blocks" => o.blocks = value().expect("--blocks N"),
            "--clients" => o.clients = value().expect("--clients N") as usize,
            "--seconds" => o.seconds = value().expect("--seconds N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

struct Outcome {
    scheme: Scheme,
    proofs: u64,
    bytes: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    verified: u64,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn run(scheme: Scheme, o: &Options) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.redb");
    let started = Instant::now();
    let (store, chs) = synthetic::create(&path, scheme, FIRST, o.blocks).unwrap();
    drop(store);
    println!(
        "{scheme:?}: wrote {} blocks in {:.1} s ({} MB on disk)",
        o.blocks,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() / 1_000_000
    );
    let chs: Arc<Vec<ConsensusHash>> = Arc::new(chs);
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.max_in_flight = o.clients * 4;
    let server = Server::bind(ReadOnlyStore::open(&path).unwrap(), None, config)
        .unwrap()
        .spawn()
        .unwrap();
    let url = server.url();
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let threads: Vec<_> = (0..o.clients)
        .map(|t| {
            let (url, chs, blocks) = (url.clone(), chs.clone(), o.blocks);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut lat = Vec::with_capacity(100_000);
                let (mut bytes, mut verified) = (0u64, 0u64);
                let mut i = (t as u64) << 40;
                while Instant::now() < deadline {
                    i += 1;
                    let r = mix(i);
                    let n = FIRST + r % blocks;
                    let m = FIRST + mix(r) % (n - FIRST + 1);
                    let sent = Instant::now();
                    let mut resp = agent
                        .get(&format!("{url}/v1/proofs/{m}?trusted={n}"))
                        .call()
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                    let body = resp.body_mut().read_to_vec().unwrap();
                    lat.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    bytes += body.len() as u64;
                    if i.is_multiple_of(64) {
                        vc_chash::verify(&body, FIRST, n, &chs[(n - FIRST) as usize], m)
                            .expect("a served proof verifies");
                        verified += 1;
                    }
                }
                (lat, bytes, verified)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let (mut bytes, mut verified) = (0, 0);
    for t in threads {
        let (l, b, v) = t.join().unwrap();
        latencies_us.extend(l);
        bytes += b;
        verified += v;
    }
    let elapsed = start.elapsed();
    server.shutdown().unwrap();
    latencies_us.sort_unstable();
    Outcome {
        scheme,
        proofs: latencies_us.len() as u64,
        bytes,
        elapsed,
        latencies_us,
        verified,
    }
}

fn main() {
    let o = options();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "proof server: {} blocks, {} clients, {} s per scheme, {cores} cores",
        o.blocks, o.clients, o.seconds
    );
    let mut json = Vec::new();
    let mut rows = vec![
        "| scheme | proofs | proofs/s | p50 | p99 | mean proof size | verified |".to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let r = run(scheme, &o);
        let rate = r.proofs as f64 / r.elapsed.as_secs_f64();
        let (p50, p99) = (
            percentile(&r.latencies_us, 0.50),
            percentile(&r.latencies_us, 0.99),
        );
        rows.push(format!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} B | {} |",
            r.scheme.name(),
            r.proofs,
            rate,
            f64::from(p50) / 1000.0,
            f64::from(p99) / 1000.0,
            r.bytes / r.proofs.max(1),
            r.verified
        ));
        json.push(serde_json::json!({
            "scheme": r.scheme.name(),
            "blocks": o.blocks,
            "clients": o.clients,
            "seconds": r.elapsed.as_secs_f64(),
            "proofs": r.proofs,
            "proofs_per_second": rate,
            "p50_us": p50,
            "p99_us": p99,
            "mean_proof_bytes": r.bytes / r.proofs.max(1),
            "verified": r.verified,
            "cores": cores,
        }));
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-serve.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", out.display());
}
