//! The runs: the raw lower bound, our indexer from blk files and from Core REST, the naive
//! baseline, ord, and the consensus-hash-and-commit rate of empty blocks.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bitcoin::Block;
use bitcoin::consensus::deserialize;
use serde::Serialize;
use vc_chash::{Hash256, Scheme};
use vc_store::{BlockHeader, CommitPolicy, ReadOnlyStore, Store, StoreConfig};
use vc_testnode::TestNode;

use crate::chain::CachedChain;
use crate::measure::{self, Usage};
use crate::naive::decode_hex;

/// Every block of the chain, serialized, in height order.
pub struct Blocks {
    /// Block `h`'s bytes at index `h`.
    pub bytes: Vec<Vec<u8>>,
    /// Block `h`'s transaction count at index `h`.
    pub txs: Vec<u64>,
}

impl Blocks {
    /// Reads every block from the node (`getblock <hash> 0`).
    pub fn load(node: &TestNode, tip: u64) -> Result<Blocks> {
        let rpc = node.rpc();
        let mut bytes = Vec::with_capacity(tip as usize + 1);
        let mut txs = Vec::with_capacity(tip as usize + 1);
        for h in 0..=tip {
            let hash: String = rpc.call("getblockhash", &[h.into()])?;
            let hex: String = rpc.call("getblock", &[hash.into(), 0.into()])?;
            let raw = decode_hex(&format!("block {h}"), &hex)?;
            let block: Block = deserialize(&raw)?;
            txs.push(block.txdata.len() as u64);
            bytes.push(raw);
        }
        Ok(Blocks { bytes, txs })
    }

    /// Blocks, bytes and transactions of heights `from..=to`.
    pub fn span(&self, from: u64, to: u64) -> Span {
        let r = from as usize..=to as usize;
        Span {
            from,
            to,
            blocks: to - from + 1,
            bytes: self.bytes[r.clone()].iter().map(|b| b.len() as u64).sum(),
            transactions: self.txs[r].iter().sum(),
        }
    }
}

/// A range of heights a run processes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Span {
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
    /// Blocks.
    pub blocks: u64,
    /// Serialized bytes.
    pub bytes: u64,
    /// Transactions.
    pub transactions: u64,
}

/// One kind of run's figures: medians over its repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Short key (`raw`, `blk`, `rest`, `naive`, `ord`).
    pub key: String,
    /// What ran.
    pub label: String,
    /// The heights it processed.
    pub span: Span,
    /// Every repetition's wall-clock seconds.
    pub walls: Vec<f64>,
    /// Median wall-clock seconds.
    pub wall_secs: f64,
    /// Blocks per second (median wall).
    pub blocks_per_sec: f64,
    /// Serialized megabytes (10^6) per second.
    pub mb_per_sec: f64,
    /// Transactions per second.
    pub tx_per_sec: f64,
    /// Median CPU seconds of the indexer (for `raw`: its one thread's wall time).
    pub cpu_secs: f64,
    /// Median CPU seconds bitcoind spent serving it.
    pub bitcoind_cpu_secs: f64,
    /// Largest peak RSS over the repetitions, bytes (`None` for the in-process raw run).
    pub max_rss_bytes: Option<u64>,
    /// Database size on disk after the run, bytes (`None` for raw).
    pub db_bytes: Option<u64>,
    /// The 99th percentile of a concurrent `getblockchaininfo` loop's latencies over all
    /// repetitions, milliseconds (REST runs only: the polite-neighbour check).
    pub neighbour_p99_ms: Option<f64>,
    /// How many `getblockchaininfo` calls that percentile is over.
    pub neighbour_calls: Option<usize>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Figures of one repetition.
struct Rep {
    wall: f64,
    cpu: f64,
    bitcoind_cpu: f64,
    rss: Option<u64>,
    db: Option<u64>,
}

fn summarize(key: &str, label: &str, span: Span, reps: &[Rep]) -> RunResult {
    let walls: Vec<f64> = reps.iter().map(|r| r.wall).collect();
    let wall = median(&walls);
    let cpu = median(&reps.iter().map(|r| r.cpu).collect::<Vec<_>>());
    let bcpu = median(&reps.iter().map(|r| r.bitcoind_cpu).collect::<Vec<_>>());
    RunResult {
        key: key.into(),
        label: label.into(),
        span,
        walls,
        wall_secs: wall,
        blocks_per_sec: span.blocks as f64 / wall,
        mb_per_sec: span.bytes as f64 / 1e6 / wall,
        tx_per_sec: span.transactions as f64 / wall,
        cpu_secs: cpu,
        bitcoind_cpu_secs: bcpu,
        max_rss_bytes: reps.iter().filter_map(|r| r.rss).max(),
        db_bytes: reps.iter().filter_map(|r| r.db).max(),
        neighbour_p99_ms: None,
        neighbour_calls: None,
    }
}

/// The `q` quantile (0 to 1) of `v`, nearest rank.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1));
    s.get(rank - 1).copied()
}

/// Everything the runs share.
pub struct Bench<'a> {
    /// The chain.
    pub chain: &'a CachedChain,
    /// The node serving it (started on a copy of the cached data directory, with -txindex).
    pub node: &'a TestNode,
    /// The chain's blocks in memory.
    pub blocks: &'a Blocks,
    /// The `virtualchain` binary (release build).
    pub cli: PathBuf,
    /// The `ord` binary.
    pub ord: PathBuf,
    /// Scratch space: databases and logs.
    pub work: PathBuf,
}

/// An indexing run's command line and where its database ends up.
struct Job {
    argv: Vec<String>,
    db: PathBuf,
}

impl Bench<'_> {
    fn first(&self) -> u64 {
        self.chain.info.first_block
    }

    fn tip(&self) -> u64 {
        self.chain.info.tip_height
    }

    fn bitcoind_cpu(&self) -> Result<f64> {
        let pid = self.node.pid().context("bitcoind is not running")?;
        measure::process_cpu_secs(pid)
    }

    /// Run (1): deserialize every block the indexer processes from bytes in memory, one
    /// thread.
    pub fn raw(&self, reps: usize) -> Result<RunResult> {
        self.in_memory(
            "raw",
            "raw lower bound: deserialize blocks from memory (1 thread)",
            reps,
            |bytes| {
                let block: Block = deserialize(bytes)?;
                black_box(&block);
                Ok(block.txdata.len() as u64)
            },
        )
    }

    /// Run (1b): the floor of a checked scan, double SHA-256 over every byte of every block
    /// the indexer processes, from memory, one thread (`sha2`, with SHA-NI where the CPU has
    /// it).
    pub fn floor(&self, reps: usize) -> Result<RunResult> {
        use sha2::{Digest, Sha256};
        self.in_memory(
            "floor",
            "SHA-256d floor: double SHA-256 of every block's bytes from memory (1 thread)",
            reps,
            |bytes| {
                black_box(Sha256::digest(Sha256::digest(bytes)));
                Ok(0)
            },
        )
    }

    /// `reps` timed passes of `each` over the bytes of every block the indexer processes, on
    /// this thread. `each` returns the block's transaction count (or 0 if it does not look).
    fn in_memory(
        &self,
        key: &str,
        label: &str,
        reps: usize,
        each: impl Fn(&[u8]) -> Result<u64>,
    ) -> Result<RunResult> {
        let span = self.blocks.span(self.first(), self.tip());
        let mut out = Vec::new();
        for _ in 0..reps {
            let started = Instant::now();
            let mut txs = 0u64;
            for bytes in &self.blocks.bytes[self.first() as usize..=self.tip() as usize] {
                txs += each(bytes)?;
            }
            let wall = started.elapsed().as_secs_f64();
            ensure!(
                txs == 0 || txs == span.transactions,
                "{key} run miscounted transactions"
            );
            out.push(Rep {
                wall,
                cpu: wall,
                bitcoind_cpu: 0.0,
                rss: None,
                db: None,
            });
        }
        Ok(summarize(key, label, span, &out))
    }

    fn index_job(&self, tag: &str, source: &str) -> Job {
        let db = self.work.join(format!("{tag}.redb"));
        let argv = [
            self.cli.to_string_lossy().into_owned(),
            "index".into(),
            "--app".into(),
            "names".into(),
            "--network".into(),
            "regtest".into(),
            "--first-block".into(),
            self.first().to_string(),
            "--confirmations".into(),
            "1".into(),
            "--source".into(),
            source.into(),
            "--db".into(),
            db.to_string_lossy().into_owned(),
        ]
        .to_vec();
        Job { argv, db }
    }

    /// Checks that a run's database ends on the chain's tip with the generator's consensus
    /// hash.
    fn check_db(&self, db: &Path) -> Result<()> {
        let store = ReadOnlyStore::open(db)?;
        let tip = store.tip()?.context("the run indexed nothing")?;
        ensure!(
            tip.height == self.tip(),
            "{} ends at height {}, the chain at {}",
            db.display(),
            tip.height,
            self.tip()
        );
        ensure!(
            tip.consensus_hash.to_string() == self.chain.info.consensus_hash,
            "{} ends on consensus hash {}, the generator's is {}",
            db.display(),
            tip.consensus_hash,
            self.chain.info.consensus_hash
        );
        Ok(())
    }

    fn run_job(&self, tag: &str, job: &Job, rep: usize) -> Result<Rep> {
        if job.db.exists() {
            std::fs::remove_file(&job.db)?;
        }
        let log = self.work.join(format!("{tag}-{rep}.log"));
        let before = self.bitcoind_cpu()?;
        let usage: Usage = measure::measured(&job.argv, &[], &log)?;
        let bitcoind_cpu = self.bitcoind_cpu()? - before;
        let db = measure::disk_usage(&job.db)?;
        Ok(Rep {
            wall: usage.wall_secs,
            cpu: usage.cpu_secs(),
            bitcoind_cpu,
            rss: Some(usage.max_rss_bytes),
            db: Some(db),
        })
    }

    /// Runs (2), (3), (4): `reps` repetitions of `virtualchain index` (or the naive baseline
    /// under the same engine) into a new database, each checked against the generator.
    pub fn index(&self, key: &str, reps: usize) -> Result<RunResult> {
        let cookie = self.node.cookie_file();
        let (label, job) = match key {
            "blk" => (
                "virtualchain index, blk files",
                self.index_job("blk", &format!("blk:{}", self.node.blocks_dir().display())),
            ),
            "rest" => (
                "virtualchain index, Core REST",
                self.index_job(
                    "rest",
                    &format!(
                        "core://127.0.0.1:{}?cookie={}",
                        self.node.rpc_port(),
                        cookie.display()
                    ),
                ),
            ),
            "naive" => {
                let db = self.work.join("naive.redb");
                let argv = vec![
                    std::env::current_exe()?.to_string_lossy().into_owned(),
                    "naive-index".into(),
                    "--url".into(),
                    self.node.url(),
                    "--cookie".into(),
                    cookie.to_string_lossy().into_owned(),
                    "--first-block".into(),
                    self.first().to_string(),
                    "--db".into(),
                    db.to_string_lossy().into_owned(),
                ];
                (
                    "naive: 1 thread of getblockhash + getblock + getrawtransaction per input, same engine",
                    Job { argv, db },
                )
            }
            other => anyhow::bail!("no indexing run called {other:?}"),
        };
        let mut out = Vec::new();
        let mut latencies = Vec::new();
        for rep in 0..reps {
            // While the indexer reads over REST, a neighbour asks the same node for
            // getblockchaininfo in a loop: how long it waits is the politeness figure.
            let neighbour = key == "rest";
            let done = AtomicBool::new(false);
            let (r, lat) = std::thread::scope(|s| {
                let probe = s.spawn(|| {
                    let mut lat = Vec::new();
                    while neighbour && !done.load(Ordering::SeqCst) {
                        let t = Instant::now();
                        let ok = self
                            .node
                            .rpc()
                            .call::<serde_json::Value>("getblockchaininfo", &[])
                            .is_ok();
                        if ok {
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    lat
                });
                let r = self.run_job(key, &job, rep);
                done.store(true, Ordering::SeqCst);
                (r, probe.join().unwrap_or_default())
            });
            out.push(r?);
            latencies.extend(lat);
            self.check_db(&job.db)?;
            eprintln!("  {key} #{rep}: {:.2} s", out[rep].wall);
        }
        let mut result = summarize(key, label, self.blocks.span(self.first(), self.tip()), &out);
        if !latencies.is_empty() {
            result.neighbour_p99_ms = quantile(&latencies, 0.99);
            result.neighbour_calls = Some(latencies.len());
        }
        Ok(result)
    }

    /// The correctness gate: indexes the chain once from the blk files with `reference` (the
    /// previous indexer's binary) and compares every height's block hash, ops hash and
    /// consensus hash with the database `db` of the current indexer. Returns the number of
    /// heights compared.
    pub fn compare_with(&self, reference: &Path, db: &Path) -> Result<u64> {
        let mut job = self.index_job(
            "reference",
            &format!("blk:{}", self.node.blocks_dir().display()),
        );
        job.argv[0] = reference.to_string_lossy().into_owned();
        let _ = self.run_job("reference", &job, 0)?;
        self.check_db(&job.db)?;
        let ours = ReadOnlyStore::open(db)?.view()?;
        let theirs = ReadOnlyStore::open(&job.db)?.view()?;
        let (a, b) = (
            ours.chain_range(self.first(), self.tip())?,
            theirs.chain_range(self.first(), self.tip())?,
        );
        ensure!(
            a.len() == b.len() && a.len() as u64 == self.tip() - self.first() + 1,
            "{} heights indexed, the reference indexed {}",
            a.len(),
            b.len()
        );
        for ((h, x), (_, y)) in a.iter().zip(&b) {
            ensure!(
                x.block_hash == y.block_hash
                    && x.ops_hash == y.ops_hash
                    && x.consensus_hash == y.consensus_hash,
                "height {h}: the indexer and the reference disagree (consensus hash {} against {})",
                vc_chash::hex::encode(&x.consensus_hash),
                vc_chash::hex::encode(&y.consensus_hash)
            );
        }
        Ok(a.len() as u64)
    }

    /// The database the last repetition of run `key` left.
    pub fn db_of(&self, key: &str) -> PathBuf {
        self.work.join(format!("{key}.redb"))
    }

    /// Run (5): ord with its runes index, from an empty data directory to the tip.
    pub fn ord(&self, reps: usize) -> Result<RunResult> {
        let mut out = Vec::new();
        for rep in 0..reps {
            let dir = self.work.join("ord");
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let argv = self.ord_argv(&dir, &["index", "update"]);
            let log = self.work.join(format!("ord-{rep}.log"));
            let before = self.bitcoind_cpu()?;
            let usage = measure::measured(&argv, &[], &log)?;
            let bitcoind_cpu = self.bitcoind_cpu()? - before;
            self.check_ord(&dir)?;
            out.push(Rep {
                wall: usage.wall_secs,
                cpu: usage.cpu_secs(),
                bitcoind_cpu,
                rss: Some(usage.max_rss_bytes),
                db: Some(measure::disk_usage(&dir)?),
            });
            eprintln!("  ord #{rep}: {:.2} s", usage.wall_secs);
        }
        Ok(summarize(
            "ord",
            "ord index update --index-runes (JSON-RPC, -txindex)",
            self.blocks.span(0, self.tip()),
            &out,
        ))
    }

    fn ord_argv(&self, dir: &Path, command: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.ord.to_string_lossy().into_owned(),
            "--regtest".into(),
            "--bitcoin-rpc-url".into(),
            format!("127.0.0.1:{}", self.node.rpc_port()),
            "--cookie-file".into(),
            self.node.cookie_file().to_string_lossy().into_owned(),
            "--data-dir".into(),
            dir.to_string_lossy().into_owned(),
            "--index-runes".into(),
        ];
        argv.extend(command.iter().map(|s| (*s).to_string()));
        argv
    }

    /// Checks that ord indexed up to the tip (`ord index info`).
    fn check_ord(&self, dir: &Path) -> Result<()> {
        let argv = self.ord_argv(dir, &["index", "info"]);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()?;
        ensure!(
            out.status.success(),
            "ord index info failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("ord index info: {}", String::from_utf8_lossy(&out.stdout)))?;
        let blocks = info["blocks_indexed"]
            .as_u64()
            .context("ord index info without blocks_indexed")?;
        ensure!(
            blocks == self.tip() + 1,
            "ord indexed {blocks} blocks, the chain has {}",
            self.tip() + 1
        );
        Ok(())
    }
}

/// The consensus-hash-and-commit rate of empty blocks.
#[derive(Clone, Debug, Serialize)]
pub struct CommitRate {
    /// The scheme.
    pub scheme: String,
    /// Blocks per repetition.
    pub blocks: u64,
    /// Empty blocks per second while catching up (committed by the engine's policy: every
    /// 1,000 blocks or 2 s, stretched when commits are slow), median.
    pub catch_up_blocks_per_sec: f64,
    /// Empty blocks per second at the tip, each committed (durably) on its own, median.
    pub at_tip_blocks_per_sec: f64,
}

fn fake_hash(height: u64) -> Hash256 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&height.to_le_bytes());
    b[31] = 0xbe;
    Hash256(b)
}

/// Applies `n` empty blocks (consensus hash, chain entry, undo log; v2 also its accumulator)
/// to a new store in `dir`, committing every block if `each`, else by the engine's policy.
fn empty_blocks(dir: &Path, scheme: Scheme, n: u64, each: bool) -> Result<f64> {
    let path = dir.join("commit.redb");
    if path.exists() {
        std::fs::remove_file(&path)?;
    }
    let store = Store::open(&path, StoreConfig::new("bench", "1", scheme, 0, "regtest"))?;
    let policy = CommitPolicy::default();
    let started = Instant::now();
    let mut w = store.writer()?;
    for height in 0..n {
        let b = w.begin_block(BlockHeader {
            height,
            block_hash: fake_hash(height),
            prev_hash: if height == 0 {
                Hash256::ZERO
            } else {
                fake_hash(height - 1)
            },
        })?;
        b.finish()?;
        if each {
            w.commit()?;
        } else {
            w.commit_if_due(&policy, false)?;
        }
    }
    w.commit()?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The consensus-hash-and-commit rates for `scheme`, medians of `reps`.
pub fn commit_rate(dir: &Path, scheme: Scheme, reps: usize) -> Result<CommitRate> {
    const CATCH_UP: u64 = 100_000;
    const AT_TIP: u64 = 500;
    let mut catch_up = Vec::new();
    let mut at_tip = Vec::new();
    for _ in 0..reps {
        catch_up.push(empty_blocks(dir, scheme, CATCH_UP, false)?);
        at_tip.push(empty_blocks(dir, scheme, AT_TIP, true)?);
    }
    Ok(CommitRate {
        scheme: format!("{scheme:?}"),
        blocks: CATCH_UP,
        catch_up_blocks_per_sec: median(&catch_up),
        at_tip_blocks_per_sec: median(&at_tip),
    })
}
