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

use vc_bench::{chain, measure, naive, report, runs, scale, v3, wasm};

#[derive(Parser)]
#[command(about = "End-to-end indexing benchmark (see `cargo xtask bench index`)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the cached chains if missing, then run every measurement (the scheme
    /// comparison of `schemes` included) and write the reports.
    Run {
        /// Cache directory (the chain goes under bench-chain/).
        #[arg(long)]
        cache: PathBuf,
        /// The `virtualchain` binary (a release build).
        #[arg(long)]
        cli: PathBuf,
        /// The `ord` binary (without it, run (5) is skipped).
        #[arg(long)]
        ord: Option<PathBuf>,
        /// The names module for the bench chain (`names-bench.wasm`, from `cargo xtask
        /// guests`): without it, the part `wasm` is skipped.
        #[arg(long)]
        names_wasm: Option<PathBuf>,
        /// The chains to run on (comma-separated: small, mainnet).
        #[arg(long, value_delimiter = ',', default_value = "small,mainnet")]
        chains: Vec<String>,
        /// Parts to leave out while still writing the reports (comma-separated, as --only).
        #[arg(long, value_delimiter = ',')]
        skip: Vec<String>,
        /// The previous indexer's `virtualchain` binary: each chain is indexed once with it
        /// from the blk files, and every height's hashes must equal run (2)'s.
        #[arg(long)]
        reference_cli: Option<PathBuf>,
        /// Repetitions of each run (the report gives medians).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The Markdown report (its generated part is replaced).
        #[arg(long)]
        markdown: PathBuf,
        /// The JSON report.
        #[arg(long)]
        json: PathBuf,
        /// Run only these parts (comma-separated: raw, floor, blk, rest, naive, ord, commit,
        /// schemes, wasm; naive and ord run on the small chain only, schemes on the small
        /// chains made for each scheme, as `vc-bench schemes`, wasm on the small chain, as
        /// `vc-bench wasm`) and print the figures without
        /// writing the reports (for profiling and quick checks).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Index the cached chains made for the legacy, v2 and v3 schemes, each under its own
    /// scheme, and compare them (see `vc_bench::v3`); with --markdown and --json, write the
    /// figures there.
    Schemes {
        /// Cache directory (the chains go under bench-chain/).
        #[arg(long)]
        cache: PathBuf,
        /// Which chain: `small`, `mainnet` or `tiny`.
        #[arg(long, default_value = "small")]
        shape: String,
        /// The `virtualchain` binary (a release build).
        #[arg(long)]
        cli: PathBuf,
        /// Repetitions of each scheme (the report gives medians).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The Markdown report (its `vc-bench schemes` part is replaced).
        #[arg(long, requires = "json")]
        markdown: Option<PathBuf>,
        /// The JSON report (its `schemes` member is replaced).
        #[arg(long, requires = "markdown")]
        json: Option<PathBuf>,
    },
    /// The names rules as a WebAssembly module against the native app on the small chain
    /// (see `vc_bench::wasm`): the same consensus hash at every height and the same state, or
    /// nothing is reported; then the speed ratio, the fuel and the time in the VM. With
    /// --markdown and --json, write the figures there.
    Wasm {
        /// Cache directory (the chain goes under bench-chain/).
        #[arg(long)]
        cache: PathBuf,
        /// The `virtualchain` binary (a release build).
        #[arg(long)]
        cli: PathBuf,
        /// The module: `names-bench.wasm` from `cargo xtask guests`.
        #[arg(long)]
        module: PathBuf,
        /// Repetitions of each application, interleaved (the report gives medians).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// The Markdown report (its `vc-bench wasm` part is replaced).
        #[arg(long, requires = "json")]
        markdown: Option<PathBuf>,
        /// The JSON report (its `wasm` member is replaced).
        #[arg(long, requires = "markdown")]
        json: Option<PathBuf>,
    },
    /// Mainnet scale, simulated (see `vc_bench::scale`): the blk index, the Electrum header
    /// cache and a deep first block on a synthetic directory of mainnet's length; with
    /// --markdown and --json, write the figures there.
    Scale {
        /// Cache directory (the directory goes under bench-chain/).
        #[arg(long)]
        cache: PathBuf,
        /// Blocks above the genesis block.
        #[arg(long, default_value_t = 900_000)]
        blocks: u64,
        /// Repetitions of each measurement (the report gives medians).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// A `target/criterion` directory holding a `deep_rollback` run to quote.
        #[arg(long)]
        criterion: Option<PathBuf>,
        /// The Markdown report (its `vc-bench scale` part is replaced).
        #[arg(long, requires = "json")]
        markdown: Option<PathBuf>,
        /// The JSON report (its `scale` member is replaced).
        #[arg(long, requires = "markdown")]
        json: Option<PathBuf>,
    },
    /// Open a blocks directory once with the blk source and write the figures (a part of
    /// `scale`, run as its own process for its peak RSS).
    ScaleOpen {
        /// The blocks directory.
        #[arg(long)]
        blocks: PathBuf,
        /// The block index file.
        #[arg(long)]
        index: Option<PathBuf>,
        /// Where the figures go (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a cached chain if it is missing.
    Chain {
        /// Cache directory.
        #[arg(long)]
        cache: PathBuf,
        /// Which chain: `small`, `mainnet` or `tiny`.
        #[arg(long, default_value = "small")]
        shape: String,
        /// The consensus-hash scheme whose hashes its names operations carry.
        #[arg(long, default_value = "legacy")]
        scheme: Scheme,
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
            names_wasm,
            chains,
            skip,
            reference_cli,
            reps,
            markdown,
            json,
            only,
        } => run(&Options {
            cache,
            cli,
            ord,
            names_wasm,
            chains,
            skip,
            reference_cli,
            reps: reps.max(1),
            markdown,
            json,
            only,
        }),
        Command::Schemes {
            cache,
            shape,
            cli,
            reps,
            markdown,
            json,
        } => {
            let shape = chain::Shape::named(&shape)
                .with_context(|| format!("no chain shape called {shape:?}"))?;
            let r = v3::measure(&cache, &shape, &cli, reps.max(1))?;
            if let (Some(md), Some(json)) = (markdown, json) {
                v3::write(&r, &md, &json)?;
            }
            eprint!("{}", v3::markdown(&r));
            Ok(ExitCode::SUCCESS)
        }
        Command::Wasm {
            cache,
            cli,
            module,
            reps,
            markdown,
            json,
        } => {
            let r = wasm::measure(&cache, &cli, &module, reps.max(1))?;
            if let (Some(md), Some(json)) = (markdown, json) {
                wasm::write(&r, &md, &json)?;
            }
            eprint!("{}", wasm::markdown(&r));
            Ok(ExitCode::SUCCESS)
        }
        Command::Scale {
            cache,
            blocks,
            reps,
            criterion,
            markdown,
            json,
        } => {
            let r = scale::measure(&cache, blocks, reps.max(1), criterion.as_deref())?;
            if let (Some(md), Some(json)) = (markdown, json) {
                scale::write(&r, &md, &json)?;
            }
            eprint!("{}", scale::markdown(&r));
            Ok(ExitCode::SUCCESS)
        }
        Command::ScaleOpen { blocks, index, out } => {
            let opened = scale::open_once(&blocks, index.as_deref())?;
            std::fs::write(out, serde_json::to_vec(&opened)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Chain {
            cache,
            shape,
            scheme,
        } => {
            let shape = chain::Shape::named(&shape)
                .with_context(|| format!("no chain shape called {shape:?}"))?;
            chain::ensure(&cache, &shape, scheme)?;
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

/// What `vc-bench run` was asked to do.
struct Options {
    cache: PathBuf,
    cli: PathBuf,
    ord: Option<PathBuf>,
    names_wasm: Option<PathBuf>,
    chains: Vec<String>,
    skip: Vec<String>,
    reference_cli: Option<PathBuf>,
    reps: usize,
    markdown: PathBuf,
    json: PathBuf,
    only: Vec<String>,
}

const PARTS: [&str; 9] = [
    "raw", "floor", "blk", "rest", "naive", "ord", "commit", "schemes", "wasm",
];

impl Options {
    fn wanted(&self, part: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|p| p == part))
            && !self.skip.iter().any(|p| p == part)
            && (part != "ord" || self.ord.is_some())
            && (part != "wasm" || self.names_wasm.is_some())
    }
}

fn run(o: &Options) -> Result<ExitCode> {
    if let Some(bad) = o
        .only
        .iter()
        .chain(&o.skip)
        .find(|p| !PARTS.contains(&p.as_str()))
    {
        anyhow::bail!("--only/--skip: unknown part {bad:?}; choose from {PARTS:?}");
    }
    ensure!(
        o.cli.exists(),
        "no virtualchain binary at {}",
        o.cli.display()
    );
    if let Some(ord) = &o.ord {
        ensure!(ord.exists(), "no ord binary at {}", ord.display());
    }
    if let Some(module) = &o.names_wasm {
        ensure!(module.exists(), "no names module at {}", module.display());
    }
    let shapes = o
        .chains
        .iter()
        .map(|c| chain::Shape::named(c).with_context(|| format!("no chain called {c:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut chains = Vec::new();
    // The runs on a chain's node (`--only schemes` or `--only commit` starts none).
    if PARTS[..6].iter().any(|p| o.wanted(p)) {
        for shape in &shapes {
            chains.push(run_chain(o, shape)?);
        }
    }
    let mut commit = Vec::new();
    if o.wanted("commit") {
        eprintln!("consensus hash + commit of empty blocks");
        let work = tempfile::tempdir()?;
        commit.push(runs::commit_rate(work.path(), Scheme::Legacy, o.reps)?);
        commit.push(runs::commit_rate(work.path(), Scheme::V2, o.reps)?);
    }
    let schemes = if o.wanted("schemes") {
        eprintln!("the small chain under each scheme (vc-bench schemes)");
        Some(v3::measure(&o.cache, &chain::Shape::SMALL, &o.cli, o.reps)?)
    } else {
        None
    };
    let names_wasm = match &o.names_wasm {
        Some(module) if o.wanted("wasm") => {
            eprintln!("the names module against the native app (vc-bench wasm)");
            Some(wasm::measure(&o.cache, &o.cli, module, o.reps)?)
        }
        None if o.only.is_empty() || o.only.iter().any(|p| p == "wasm") => {
            eprintln!("part wasm skipped: no --names-wasm (cargo xtask guests builds it)");
            None
        }
        _ => None,
    };
    let bitcoind = vc_testnode::bitcoind_exe()
        .map(|exe| first_line(&exe, "-version"))
        .unwrap_or_default();
    let r = report::Report {
        date: first_line(&PathBuf::from("date"), "-u"),
        machine: measure::machine(),
        repetitions: o.reps,
        bitcoind,
        ord: o
            .ord
            .as_ref()
            .map_or_else(|| "ord not run".into(), |ord| first_line(ord, "--version")),
        chains,
        goals: report::commit_goals(&commit),
        commit,
    };
    if o.only.is_empty() {
        report::write(&r, &o.markdown, &o.json)?;
        if let Some(schemes) = &schemes {
            v3::write(schemes, &o.markdown, &o.json)?;
        }
        if let Some(names_wasm) = &names_wasm {
            wasm::write(names_wasm, &o.markdown, &o.json)?;
        }
    } else {
        eprintln!("--only: a partial run; the reports are left as they are");
    }
    eprint!("{}", report::markdown(&r));
    if let Some(schemes) = &schemes {
        eprint!("{}", v3::markdown(schemes));
    }
    if let Some(names_wasm) = &names_wasm {
        eprint!("{}", wasm::markdown(names_wasm));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every run on the chain of `shape`, on a node started on a copy of it (removed after).
fn run_chain(o: &Options, shape: &chain::Shape) -> Result<report::ChainReport> {
    let chain = chain::ensure(&o.cache, shape, Scheme::Legacy)?;
    let work = tempfile::tempdir_in(o.cache.join("bench-chain"))?;
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
    eprintln!(
        "chain {}: loading {} blocks into memory",
        shape.version,
        chain.info.tip_height + 1
    );
    let blocks = runs::Blocks::load(&node, chain.info.tip_height)?;
    let bench = runs::Bench {
        chain: &chain,
        node: &node,
        blocks: &blocks,
        cli: o.cli.clone(),
        ord: o.ord.clone().unwrap_or_default(),
        work: work.path().to_path_buf(),
    };
    // The naive fetcher and ord take minutes on the small chain: they run there only.
    let small = *shape == chain::Shape::SMALL;
    let mut results = Vec::new();
    if o.wanted("raw") {
        eprintln!("(1) raw");
        results.push(bench.raw(o.reps)?);
    }
    if o.wanted("floor") {
        eprintln!("(1b) SHA-256d floor");
        results.push(bench.floor(o.reps)?);
    }
    for (n, key) in [(2, "blk"), (3, "rest"), (4, "naive")] {
        if o.wanted(key) && (small || key != "naive") {
            eprintln!("({n}) {key}");
            results.push(bench.index(key, o.reps)?);
        }
    }
    let mut reference_heights = None;
    if let Some(reference) = &o.reference_cli
        && o.wanted("blk")
    {
        eprintln!("previous indexer: {}", reference.display());
        reference_heights = Some(bench.compare_with(reference, &bench.db_of("blk"))?);
    }
    if o.wanted("ord") && small {
        eprintln!("(5) ord");
        results.push(bench.ord(o.reps)?);
    }
    Ok(report::ChainReport {
        goals: report::goals(&results),
        chain: chain.info.clone(),
        chain_bytes: blocks.span(0, chain.info.tip_height).bytes,
        runs: results,
        reference_heights,
    })
}
