//! `vc-bench`: the end-to-end indexing benchmark; see the library's docs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use vc_source::Source;

use anyhow::{Context, Result, ensure};
use clap::{Parser, Subcommand};
use vc_chash::Scheme;
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::{NamesApp, NamesConfig};
use vc_source::core::rpc::Auth;
use vc_testnode::TestNode;

use vc_bench::{chain, measure, naive, report, runs};

#[derive(Parser)]
#[command(about = "End-to-end indexing benchmark (see `cargo xtask bench index`)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the cached chain if missing, then run every measurement and write the report.
    Run {
        /// Cache directory (the chain goes under bench-chain/).
        #[arg(long)]
        cache: PathBuf,
        /// The `virtualchain` binary (a release build).
        #[arg(long)]
        cli: PathBuf,
        /// The `ord` binary.
        #[arg(long)]
        ord: PathBuf,
        /// Repetitions of each run (the report gives medians).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The Markdown report (its generated part is replaced).
        #[arg(long)]
        markdown: PathBuf,
        /// The JSON report.
        #[arg(long)]
        json: PathBuf,
        /// Run only these parts (comma-separated: raw, blk, rest, naive, ord, commit) and print
        /// the figures without writing the reports (for profiling and quick checks).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Generate the cached chain if it is missing.
    Chain {
        /// Cache directory.
        #[arg(long)]
        cache: PathBuf,
    },
    /// Run a command and write its wall time, CPU time and peak RSS to `--out`.
    Measure {
        /// Where the figures go (JSON).
        #[arg(long)]
        out: PathBuf,
        /// The command.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// The naive baseline's indexer: the names engine over one-call-at-a-time JSON-RPC.
    NaiveIndex {
        /// `http://HOST:PORT` of the node.
        #[arg(long)]
        url: String,
        /// The node's cookie file.
        #[arg(long)]
        cookie: PathBuf,
        /// The names deployment's first block.
        #[arg(long)]
        first_block: u64,
        /// The database (created).
        #[arg(long)]
        db: PathBuf,
    },
}

fn main() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Run {
            cache,
            cli,
            ord,
            reps,
            markdown,
            json,
            only,
        } => run(cache, cli, ord, reps.max(1), &markdown, &json, &only),
        Command::Chain { cache } => {
            chain::ensure(&cache)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Measure { out, argv } => {
            let status = measure::wrap(&argv, &out)?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Command::NaiveIndex {
            url,
            cookie,
            first_block,
            db,
        } => {
            let source =
                naive::NaiveSource::new(&url, Auth::CookieFile(cookie), bitcoin::Network::Regtest);
            let config = EngineConfig::default()
                .with_workers(1)
                .with_confirmations(1);
            let app = NamesApp::new(NamesConfig::regtest(first_block));
            let mut engine = Engine::open(app, &db, Source::blocks(source), config)?;
            engine.sync(None, &AtomicBool::new(false), &mut NoObserver)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn first_line(program: &PathBuf, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("{} (no version)", program.display()))
}

fn run(
    cache: PathBuf,
    cli: PathBuf,
    ord: PathBuf,
    reps: usize,
    markdown: &std::path::Path,
    json: &std::path::Path,
    only: &[String],
) -> Result<ExitCode> {
    const PARTS: [&str; 6] = ["raw", "blk", "rest", "naive", "ord", "commit"];
    if let Some(bad) = only.iter().find(|p| !PARTS.contains(&p.as_str())) {
        anyhow::bail!("--only: unknown part {bad:?}; choose from {PARTS:?}");
    }
    let wanted = |part: &str| only.is_empty() || only.iter().any(|p| p == part);
    ensure!(cli.exists(), "no virtualchain binary at {}", cli.display());
    ensure!(ord.exists(), "no ord binary at {}", ord.display());
    let chain = chain::ensure(&cache)?;
    let work = tempfile::tempdir()?;
    let datadir = work.path().join("node");
    chain::copy_tree(&chain.datadir, &datadir)?;
    // ord needs -txindex; every run gets the same node.
    let node = TestNode::start_in(&datadir, &["-txindex=1"])
        .context("no bitcoind: run `cargo xtask node` or set BITCOIND_EXE")?;
    // ord needs the transaction index caught up.
    node.wait_for_txindex();
    ensure!(
        node.height() == chain.info.tip_height,
        "the node is at {}, the cached chain at {}",
        node.height(),
        chain.info.tip_height
    );
    eprintln!("loading {} blocks into memory", chain.info.tip_height + 1);
    let blocks = runs::Blocks::load(&node, chain.info.tip_height)?;
    let bench = runs::Bench {
        chain: &chain,
        node: &node,
        blocks: &blocks,
        cli,
        ord: ord.clone(),
        work: work.path().to_path_buf(),
    };
    let mut results = Vec::new();
    if wanted("raw") {
        eprintln!("(1) raw");
        results.push(bench.raw(reps)?);
    }
    for (n, key) in [(2, "blk"), (3, "rest"), (4, "naive")] {
        if wanted(key) {
            eprintln!("({n}) {key}");
            results.push(bench.index(key, reps)?);
        }
    }
    if wanted("ord") {
        eprintln!("(5) ord");
        results.push(bench.ord(reps)?);
    }
    let mut commit = Vec::new();
    if wanted("commit") {
        eprintln!("consensus hash + commit of empty blocks");
        commit.push(runs::commit_rate(work.path(), Scheme::Legacy, reps)?);
        commit.push(runs::commit_rate(work.path(), Scheme::V2, reps)?);
    }
    let bitcoind = vc_testnode::bitcoind_exe()
        .map(|exe| first_line(&exe, "-version"))
        .unwrap_or_default();
    let goals = report::goals(&results, &commit);
    let r = report::Report {
        date: first_line(&PathBuf::from("date"), "-u"),
        machine: measure::machine(),
        repetitions: reps,
        bitcoind,
        ord: first_line(&ord, "--version"),
        chain: chain.info.clone(),
        chain_bytes: blocks.span(0, chain.info.tip_height).bytes,
        runs: results,
        commit,
        goals,
    };
    if only.is_empty() {
        report::write(&r, markdown, json)?;
    } else {
        eprintln!("--only: a partial run; the reports are left as they are");
    }
    eprint!("{}", report::markdown(&r));
    Ok(ExitCode::SUCCESS)
}
