//! `index`, `status` and `recover`: running the engine and repairing after a deep fork.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bitcoin::{BlockHash, Network};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vc_chash::ConsensusHash;
use vc_engine::{BlockReport, Checkpoint, EngineConfig, Observer, ReorgReport, Stopped};
use vc_names::NamesConfig;
use vc_store::{Store, StoreError};

use crate::exit::InputError;
use crate::registry;
use crate::source::SourceSpec;

/// `virtualchain index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The application, for a new database (default: names); an existing database is indexed
    /// for the application it was made for.
    #[arg(long)]
    pub app: Option<String>,
    /// Where blocks come from: core://USER:PASS@HOST:PORT, core://HOST:PORT?cookie=PATH,
    /// core+rpc://... (no REST), blk:/path/to/blocks, or electrum://HOST:PORT /
    /// electrum+tls://HOST:PORT (light mode: needs --registry).
    /// The marker deployment of the names app: every operation pays the registry script
    /// (`default` for the built-in one, or the script in hex). Required for Electrum sources;
    /// part of consensus, so a database keeps the setting it was made with.
    #[arg(long)]
    pub registry: Option<String>,
    #[arg(long)]
    pub source: String,
    /// The database file (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Stop at this height.
    #[arg(long)]
    pub to: Option<u64>,
    /// Keep following the tip after catching up (Ctrl-C finishes the current commit and exits).
    #[arg(long)]
    pub follow: bool,
    /// The Bitcoin network.
    #[arg(long, default_value = "bitcoin")]
    pub network: Network,
    /// The application's first block (default: the application's own for mainnet, 1 elsewhere).
    #[arg(long)]
    pub first_block: Option<u64>,
    /// Confirmations before a block is processed (default: 6).
    #[arg(long)]
    pub confirmations: Option<u64>,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 5.0)]
    pub poll_secs: f64,
    /// The deepest reorganisation rolled back automatically.
    #[arg(long, default_value_t = vc_engine::DEFAULT_MAX_REORG_DEPTH)]
    pub max_reorg_depth: u64,
    /// Fetch threads.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Expected block hash at a height, HEIGHT:BLOCKHASH (repeatable).
    #[arg(long = "checkpoint", value_parser = parse_checkpoint)]
    pub checkpoints: Vec<Checkpoint>,
    /// Commit after every block (slower; used by crash tests to make every block a possible
    /// kill point).
    #[arg(long, hide = true)]
    pub commit_every_block: bool,
}

fn parse_checkpoint(s: &str) -> Result<Checkpoint, String> {
    let (h, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HEIGHT:BLOCKHASH"))?;
    Ok(Checkpoint {
        height: h.parse().map_err(|e| format!("height {h:?}: {e}"))?,
        block_hash: Some(
            hash.parse::<BlockHash>()
                .map_err(|e| format!("block hash {hash:?}: {e}"))?,
        ),
        consensus_hash: None,
    })
}

/// Opens an existing names database, reading its deployment from the file.
pub fn open_names_db(db: &Path) -> Result<(NamesConfig, Store)> {
    let (app, meta, store) = registry::open_db(db)?;
    if app.app_name() != vc_names::app::APP_NAME {
        return Err(InputError::Foreign(format!(
            "{} belongs to application {:?}, not {:?}",
            db.display(),
            meta.app_name,
            vc_names::app::APP_NAME
        ))
        .into());
    }
    Ok((registry::Names::config(&meta)?, store))
}

/// The application `index` runs on `db`: the one an existing database was made for (`--app`,
/// if given, must agree), else `--app` (default: names). A file that cannot be read without
/// crash recovery goes by `--app` too; opening it for writing checks its identity.
fn app_for_index(app: Option<&str>, db: &Path) -> Result<&'static dyn registry::CliApp> {
    let chosen = app.map(registry::by_cli_name).transpose()?;
    let stored = match std::fs::metadata(db) {
        Ok(m) if m.len() > 0 => Store::read_meta(db).ok(),
        _ => None,
    };
    match (chosen, stored) {
        (Some(chosen), Some(meta)) if chosen.app_name() != meta.app_name => {
            Err(InputError::Foreign(format!(
                "{} belongs to application {:?}, not {:?}",
                db.display(),
                meta.app_name,
                chosen.app_name()
            ))
            .into())
        }
        (_, Some(meta)) => registry::by_stored_name(&meta.app_name),
        (Some(chosen), None) => Ok(chosen),
        (None, None) => registry::by_cli_name("names"),
    }
}

/// Shows progress: a bar on a TTY, a log line every few seconds otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    tty: bool,
    last_log: Instant,
    blocks: u64,
    ops: u64,
    since: Instant,
    target: u64,
}

impl Progress {
    /// A progress display on stderr.
    pub fn new() -> Self {
        Progress {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_log: Instant::now(),
            blocks: 0,
            ops: 0,
            since: Instant::now(),
            target: 0,
        }
    }

    /// Blocks and accepted operations seen.
    pub fn totals(&self) -> (u64, u64) {
        (self.blocks, self.ops)
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn on_range(&mut self, from: u64, to: u64, chain_tip: u64) {
        self.target = to;
        if self.tty {
            self.finish();
            let bar = ProgressBar::new(to - from + 1);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} block {msg} [{bar:30}] {pos}/{len} · {per_sec} · ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        } else {
            tracing::info!(from, to, chain_tip, "indexing");
        }
    }

    fn on_block(&mut self, report: &BlockReport) {
        self.blocks += 1;
        self.ops += u64::from(report.accepted);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(report.info.height.to_string());
        } else if self.last_log.elapsed() >= Duration::from_secs(5) {
            let rate = self.blocks as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                height = report.info.height,
                target = self.target,
                blocks_per_s = format!("{rate:.1}"),
                "progress"
            );
            self.last_log = Instant::now();
        }
        for r in &report.rejected {
            tracing::debug!(height = report.info.height, txid = %r.txid, stage = %r.stage, "rejected: {}", r.reject);
        }
    }

    fn on_reorg(&mut self, reorg: &ReorgReport) {
        tracing::warn!(
            fork = reorg.fork_height,
            depth = reorg.depth,
            old_tip = reorg.old_tip,
            "reorganisation rolled back"
        );
    }
}

/// Runs `index`.
pub fn index(args: IndexArgs) -> Result<ExitCode> {
    let app = app_for_index(args.app.as_deref(), &args.db)?;
    let source = SourceSpec::parse(&args.source)?.connect(args.network)?;
    let options = registry::CreateOptions {
        network: args.network,
        first_block: args.first_block,
        registry: args.registry.clone(),
    };
    let mut engine_config = EngineConfig::default()
        .with_workers(args.workers)
        .with_poll_interval(Duration::from_secs_f64(args.poll_secs.max(0.05)))
        .with_max_reorg_depth(args.max_reorg_depth);
    if let Some(k) = args.confirmations {
        engine_config = engine_config.with_confirmations(k);
    }
    for checkpoint in args.checkpoints {
        engine_config = engine_config.with_checkpoint(checkpoint);
    }
    if args.commit_every_block {
        engine_config.commit.max_blocks = 1;
    }
    let mut engine = app.open_engine(&options, &args.db, source, engine_config)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: the user insists. Nothing committed is lost either way.
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut progress = Progress::new();
    let result = if args.follow {
        engine.follow(args.to, &stop, &mut progress)
    } else {
        engine.sync(args.to, &stop, &mut progress)
    };
    progress.finish();
    let outcome = result?;
    let (blocks, ops) = progress.totals();
    match outcome.tip {
        Some(tip) => eprintln!(
            "indexed {blocks} blocks ({ops} operations, {} reorganisations); tip {} ({}), consensus hash {}",
            outcome.reorgs,
            tip.height,
            tip.block_hash.reversed(),
            tip.consensus_hash
        ),
        None => eprintln!(
            "nothing to index yet (the chain is below the first block or lacks confirmations)"
        ),
    }
    if outcome.stopped == Stopped::Interrupted {
        eprintln!("interrupted; everything indexed so far is committed");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `status`.
pub fn status(db: &Path) -> Result<ExitCode> {
    let (app, meta, store) = registry::open_db(db)?;
    let view = store.view()?;
    match view.tip()? {
        Some(tip) => {
            let ops: u64 = view
                .chain_range(meta.first_block, tip.height)?
                .iter()
                .map(|(_, e)| u64::from(e.op_count))
                .sum();
            println!("app:             {} {}", meta.app_name, meta.app_version);
            println!("network:         {}", meta.network);
            println!("first block:     {}", meta.first_block);
            println!(
                "tip:             {} {}",
                tip.height,
                tip.block_hash.reversed()
            );
            println!("consensus hash:  {}", tip.consensus_hash);
            println!("blocks:          {}", tip.height + 1 - meta.first_block);
            println!("operations:      {ops}");
            // The application's own lines (the names app: its registry and name counts).
            for (label, value) in app.status(&meta, &store)? {
                println!("{:<17}{value}", format!("{label}:"));
            }
            if let Some((lo, hi)) = view.undo_heights()? {
                println!("rollback window: blocks {lo} to {hi}");
            }
        }
        None => println!(
            "empty database (nothing indexed yet); first block {}",
            meta.first_block
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ops`.
pub fn ops(db: &Path, height: u64) -> Result<ExitCode> {
    let (app, meta, store) = registry::open_db(db)?;
    for op in store.view()?.ops(height)? {
        println!("{}", app.op_json(&meta, &op)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `virtualchain recover`: the three ways out of a fork deeper than the automatic limit.
#[derive(Debug, Subcommand)]
pub enum RecoverCommand {
    /// Re-index from a height: roll the database back to just below HEIGHT so that the next
    /// `index` run applies the new branch. If the undo logs do not reach that far, the file is
    /// moved aside and the next run re-indexes from the first block.
    Reindex {
        /// The database.
        #[arg(long)]
        db: PathBuf,
        /// The first height to apply again (the fork height + 1).
        #[arg(long)]
        from: u64,
    },
    /// Accept a checkpoint: replace the database with a snapshot the application's developers
    /// publish for the new branch, verified against a trusted HEIGHT:CONSENSUS_HASH.
    Checkpoint {
        /// The database (moved aside, then rebuilt from the snapshot).
        #[arg(long)]
        db: PathBuf,
        /// The snapshot file.
        #[arg(long)]
        snapshot: PathBuf,
        /// HEIGHT:CONSENSUS_HASH the snapshot must reproduce.
        #[arg(long)]
        trusted: String,
    },
    /// Continue as a separate deployment on the old branch: pin the database to the block it has
    /// above the fork, so that it never rolls back onto the new branch. Point it at a node that
    /// follows the old branch (`bitcoin-cli invalidateblock <first block of the new branch>`).
    Split {
        /// The database.
        #[arg(long)]
        db: PathBuf,
        /// The fork height (the last block both branches share).
        #[arg(long)]
        fork_height: u64,
    },
}

fn aside(db: &Path, tag: &str) -> Result<PathBuf> {
    let mut moved = db.as_os_str().to_owned();
    moved.push(format!(".{tag}"));
    let moved = PathBuf::from(moved);
    std::fs::rename(db, &moved)
        .with_context(|| format!("moving {} to {}", db.display(), moved.display()))?;
    Ok(moved)
}

/// Runs `recover`.
pub fn recover(cmd: RecoverCommand) -> Result<ExitCode> {
    match cmd {
        RecoverCommand::Reindex { db, from } => {
            let (_, meta, store) = registry::open_db(&db)?;
            let target = from.saturating_sub(1);
            match store.rollback_to(target) {
                Ok(n) => {
                    println!(
                        "rolled back {n} blocks; the next `virtualchain index` applies the chain from height {from}"
                    );
                }
                Err(StoreError::RollbackTooDeep { .. }) => {
                    drop(store);
                    let moved = aside(&db, &format!("before-reindex-{from}"))?;
                    println!(
                        "the undo logs do not reach height {from}; moved the database to {} — the next `virtualchain index` re-indexes from the first block ({})",
                        moved.display(),
                        meta.first_block
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        RecoverCommand::Checkpoint {
            db,
            snapshot,
            trusted,
        } => {
            let (h, ch) = trusted
                .split_once(':')
                .with_context(|| format!("--trusted {trusted:?} is not HEIGHT:CONSENSUS_HASH"))?;
            let trusted = (
                h.parse::<u64>().with_context(|| format!("height {h:?}"))?,
                ch.parse::<ConsensusHash>()
                    .map_err(|e| anyhow::anyhow!("consensus hash {ch:?}: {e}"))?,
            );
            let (_, meta, store) = registry::open_db(&db)?;
            let store_cfg = store.config().clone();
            drop(store);
            let moved = aside(&db, "before-checkpoint")?;
            match vc_store::snapshot::import(&snapshot, &db, store_cfg, trusted) {
                Ok((_, summary)) => println!(
                    "installed the checkpoint: {} blocks up to {} verified against {}; the old database is at {}",
                    summary.blocks,
                    trusted.0,
                    trusted.1,
                    moved.display()
                ),
                Err(e) => {
                    std::fs::rename(&moved, &db).ok();
                    return Err(anyhow::Error::new(e).context(format!(
                        "the snapshot was refused; {} is unchanged (network {})",
                        db.display(),
                        meta.network
                    )));
                }
            }
        }
        RecoverCommand::Split { db, fork_height } => {
            let (_, _, store) = registry::open_db(&db)?;
            let (height, hash) = vc_engine::pin_branch(&store, fork_height)?;
            println!(
                "pinned {} to block {hash} at height {height}: it will never roll back onto another branch. Keep the node on this branch, for example with `bitcoin-cli invalidateblock <the other branch's block at height {height}>`",
                db.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
