//! `index`, `status`, `ops`, `snapshot` and `recover`: running the engine, reading and backing
//! up its database, and repairing after a deep fork.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bitcoin::{BlockHash, Network};
use clap::{Args, Subcommand};
use vc_chash::ConsensusHash;
use vc_engine::{Checkpoint, EngineConfig, Stopped};
use vc_store::{Store, StoreError};

use crate::Globals;
use crate::exit::InputError;
use crate::metrics::IndexMetrics;
use crate::progress::Progress;
use crate::registry;

/// `virtualchain index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The application, for a new database: names (the default), contracts (the contract
    /// platform, docs/contracts.md), or a WebAssembly module (path/to/app.wasm, see
    /// docs/vm.md): its manifest states its name, magic, opcodes, first
    /// block and scheme, and its hash is part of the database's identity. An existing database
    /// is indexed for the application it was made for (with the module it stores).
    #[arg(long)]
    pub app: Option<String>,
    /// Where blocks come from: core://USER:PASS@HOST:PORT, core://HOST:PORT?cookie=PATH,
    /// core+rpc://... (no REST), blk:/path/to/blocks, or electrum://HOST:PORT /
    /// electrum+tls://HOST:PORT (light mode: needs --registry). Default: Bitcoin Core from
    /// the --bitcoin-* options (its cookie in ~/.bitcoin and the network's port). Repeatable:
    /// blocks are read from the first, and every other must agree with it at every processed
    /// height (block hash, and the operations' transactions and spent outputs where both can
    /// tell), under --agreement.
    #[arg(long)]
    pub source: Vec<String>,
    /// With several --source: `all` (every source agrees) or `majority` (more than half give
    /// the first source's answer). A disagreement stops the indexer, naming every source's
    /// answer, and commits nothing from that block.
    #[arg(long, default_value = "all", value_parser = parse_agreement)]
    pub agreement: vc_engine::Agreement,
    #[command(flatten)]
    pub core: crate::source::CoreArgs,
    /// Reach an Electrum source through a SOCKS5 proxy, such as Tor's: socks5://HOST:PORT (the
    /// same as ?proxy= in the source URL).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Keep each source's index between runs in this directory (created if missing): a blk
    /// source's block index, so that a restart reads it instead of scanning every blk file,
    /// and an Electrum source's validated headers, so that a restart validates only the new
    /// ones.
    #[arg(long, value_name = "DIR")]
    pub source_cache: Option<PathBuf>,
    /// The marker deployment of the names app: every operation pays the registry script
    /// (`default` for the built-in one, or the script in hex). Required for Electrum sources;
    /// part of consensus, so a database keeps the setting it was made with.
    #[arg(long)]
    pub registry: Option<String>,
    /// The consensus-hash scheme of a new database: legacy, v2 or v3 (default: the
    /// application's; legacy for names). v3 commits the whole state in every consensus hash,
    /// so that `light name` proves a name's current record or its absence. An existing
    /// database keeps its own.
    #[arg(long, value_name = "SCHEME")]
    pub scheme: Option<vc_chash::Scheme>,
    /// The source of the chain a migration moves the database to (docs/migration.md), in
    /// --source's syntax: read once the chain is frozen at the announced last block, to find
    /// the binding and then every later block.
    #[arg(long, value_name = "SOURCE")]
    pub migrate_to: Option<String>,
    /// The names app's migration authority, for a new database: an address, or a script in
    /// hex, whose key may announce, commit and reveal a migration (needs --scheme v2 or v3).
    /// Part of consensus, like --registry.
    #[arg(long, value_name = "ADDRESS|SCRIPT")]
    pub migration_authority: Option<String>,
    /// Confirmations K that make a migration's announcement and its binding final.
    #[arg(long, default_value_t = 6, requires = "migration_authority")]
    pub migration_confirmations: u64,
    /// Blocks W within which a migration's reveal must follow its commit.
    #[arg(long, default_value_t = 6, requires = "migration_authority")]
    pub migration_window: u64,
    /// The database file (created if missing; default: DATA_DIR/NETWORK/APP.redb).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Stop at this height.
    #[arg(long)]
    pub to: Option<u64>,
    /// Keep following the tip after catching up (Ctrl-C or SIGTERM finishes the current commit
    /// and exits 0).
    #[arg(long)]
    pub follow: bool,
    /// The application's first block, for a new database (default: the application's own for
    /// mainnet, 1 elsewhere); an existing database keeps its own.
    #[arg(long)]
    pub first_block: Option<u64>,
    /// Confirmations before a block is processed (default: 6).
    #[arg(long)]
    pub confirmations: Option<u64>,
    /// How often --follow polls the source: 5s, 500ms, 1m (a bare number is seconds).
    #[arg(long, alias = "poll-secs", default_value = "5s", value_parser = crate::units::parse_duration)]
    pub poll_interval: Duration,
    /// The deepest fork reverted automatically; a deeper one stops the indexer with the
    /// recovery commands (`recover revert` reverts any depth).
    #[arg(long, alias = "max-reorg-depth", default_value_t = vc_engine::DEFAULT_MAX_REORG_DEPTH)]
    pub max_auto_revert: u64,
    /// Threads fetching blocks from the source.
    #[arg(long, alias = "workers", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Expected block hash at a height, HEIGHT:BLOCKHASH (repeatable).
    #[arg(long = "checkpoint", value_parser = parse_checkpoint)]
    pub checkpoints: Vec<Checkpoint>,
    /// Serve Prometheus metrics (/metrics) and health (/healthz/live, /healthz/ready) on this
    /// address, for example 127.0.0.1:9334.
    #[arg(long, value_parser = crate::units::parse_listen)]
    pub metrics_addr: Option<SocketAddr>,
    /// /healthz/ready answers 200 while the database is at most this many blocks behind the
    /// newest block with enough confirmations.
    #[arg(long, default_value_t = 2)]
    pub ready_lag: u64,
    /// Commit after every block (slower; used by crash tests to make every block a possible
    /// kill point).
    #[arg(long, hide = true)]
    pub commit_every_block: bool,
}

fn parse_agreement(s: &str) -> Result<vc_engine::Agreement, String> {
    s.parse()
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

/// The application `index` runs on `db`: the one an existing database was made for (`--app`,
/// if given, must agree), else `--app` (default: names); and the database's metadata, if it
/// has any. A file an unclean shutdown left (a killed `index`) is repaired first, so that it
/// resumes with what it was made for, as a cleanly closed one does.
fn app_for_index(
    app: Option<&str>,
    db: &Path,
) -> Result<(&'static dyn registry::CliApp, Option<vc_store::Meta>)> {
    let chosen = app.map(registry::by_cli_name).transpose()?;
    let stored = match std::fs::metadata(db) {
        Ok(m) if m.len() > 0 => Store::recover_meta(db).ok(),
        _ => None,
    };
    let app = match (chosen, &stored) {
        (Some(chosen), Some(meta)) if !chosen.owns(&meta.app_name) => {
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
    }?;
    Ok((app, stored))
}

/// The default database name for `--app`: the application's name, or a module's file stem.
fn default_db_name(app: Option<&str>) -> String {
    match app {
        Some(a) if registry::is_module_path(a) => Path::new(a)
            .file_stem()
            .map_or_else(|| "wasm".into(), |s| s.to_string_lossy().into_owned()),
        Some(a) => a.to_owned(),
        None => "names".to_owned(),
    }
}

/// Runs `index`.
pub fn index(args: IndexArgs, globals: &Globals) -> Result<ExitCode> {
    // First of all, so that a signal at any moment after start-up finds it: Ctrl-C, SIGTERM
    // and SIGHUP finish the block in progress, commit, and exit 0.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // A second signal: the user insists. Nothing committed is lost either way.
                std::process::exit(130);
            }
        })
        .context("installing the signal handler")?;
    }
    let db = globals.db(args.db.clone(), &default_db_name(args.app.as_deref()))?;
    let (app, stored) = app_for_index(args.app.as_deref(), &db)?;
    // An existing database knows its network, first block and application parameters; flags
    // that disagree are refused when it is opened.
    let mut options = match &stored {
        Some(meta) => app.stored_options(meta)?,
        None => registry::CreateOptions {
            network: Network::Bitcoin,
            first_block: None,
            registry: None,
            scheme: None,
            migration: None,
            module: None,
        },
    };
    if let Some(path) = args.app.as_deref().filter(|a| registry::is_module_path(a)) {
        options.module = Some(PathBuf::from(path));
    }
    if let Some(network) = globals.network {
        if stored.is_some() && network != options.network {
            return Err(InputError::Foreign(format!(
                "{} is a {} database; --network {network} disagrees",
                db.display(),
                options.network
            ))
            .into());
        }
        options.network = network;
    }
    if args.first_block.is_some() {
        options.first_block = args.first_block;
    }
    if args.registry.is_some() {
        options.registry = args.registry.clone();
    }
    if let Some(authority) = &args.migration_authority {
        let script =
            match authority.parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>() {
                Ok(a) => a
                    .require_network(options.network)
                    .with_context(|| {
                        format!("--migration-authority is not a {} address", options.network)
                    })?
                    .script_pubkey(),
                Err(_) => bitcoin::ScriptBuf::from_bytes(
                    vc_chash::hex::decode(authority).map_err(|_| InputError::Invalid {
                        what: "--migration-authority",
                        detail: format!("{authority:?} is neither an address nor a script in hex"),
                    })?,
                ),
            };
        options.migration = Some(
            vc_engine::MigrationPolicy::new(script)
                .with_confirmations(args.migration_confirmations)
                .with_window(args.migration_window),
        );
    }
    if let Some(scheme) = args.scheme {
        if stored.is_some() && Some(scheme) != options.scheme {
            return Err(InputError::Foreign(format!(
                "{} is a {} database; --scheme {scheme} disagrees",
                db.display(),
                options.scheme.map_or("?".into(), |s| s.to_string())
            ))
            .into());
        }
        options.scheme = Some(scheme);
    }
    let confirmations = args
        .confirmations
        .unwrap_or(EngineConfig::default().confirmations);
    let metrics = Arc::new(IndexMetrics::new(confirmations, args.ready_lag));
    if let Some(addr) = args.metrics_addr {
        let bound = crate::metrics::serve(addr, Arc::clone(&metrics))?;
        tracing::info!(url = %format!("http://{bound}/metrics"), "serving metrics and health");
    }
    if let Some(dir) = &args.source_cache {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the source cache {}", dir.display()))?;
    }
    let connect = |url: Option<&str>| -> Result<vc_engine::prelude::Source> {
        let spec = args.core.spec(url, options.network)?;
        let source = crate::source::with_proxy(spec, args.proxy.as_deref())?
            .connect(options.network, args.source_cache.as_deref())?;
        Ok(crate::metered::metered(source, &metrics))
    };
    let (source, witnesses) = match args.source.split_first() {
        Some((first, rest)) => (
            connect(Some(first))?,
            rest.iter()
                .map(|url| connect(Some(url)))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => (connect(None)?, Vec::new()),
    };
    let mut engine_config = EngineConfig::default()
        .with_workers(usize::from(args.threads))
        .with_poll_interval(args.poll_interval.max(Duration::from_millis(50)))
        .with_max_reorg_depth(args.max_auto_revert)
        .with_confirmations(confirmations);
    for witness in witnesses {
        engine_config = engine_config.with_witness(witness);
    }
    engine_config = engine_config.with_agreement(args.agreement);
    for checkpoint in args.checkpoints {
        engine_config = engine_config.with_checkpoint(checkpoint);
    }
    if let Some(url) = &args.migrate_to {
        engine_config = engine_config.with_migration_target(connect(Some(url))?);
    }
    if args.commit_every_block {
        engine_config.commit.max_blocks = 1;
    }
    if stored.is_none() {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        tracing::info!(
            db = %db.display(),
            network = %options.network,
            first_block = ?options.first_block,
            "creating a new database"
        );
    }
    let mut engine = app.open_engine(&options, &db, source, engine_config)?;
    if stop.load(Ordering::SeqCst) {
        tracing::info!("stopped by a signal before indexing began");
        return Ok(ExitCode::SUCCESS);
    }
    let tip = stored.as_ref().and(engine.tip()?);
    let mut progress = Progress::new(Arc::clone(&metrics), confirmations, tip);
    let started = Instant::now();
    let result = if args.follow {
        engine.follow(args.to, &stop, &mut progress)
    } else {
        engine.sync(args.to, &stop, &mut progress)
    };
    progress.finish();
    drop(engine);
    let outcome = result?;
    summary(&metrics, &outcome, started.elapsed());
    if outcome.stopped == Stopped::Interrupted {
        tracing::info!("stopped by a signal; everything indexed so far is committed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's summary line: blocks, operations accepted and rejected (by code), and the tip.
fn summary(metrics: &IndexMetrics, outcome: &vc_engine::SyncOutcome, elapsed: Duration) {
    let (blocks, accepted) = metrics.totals();
    let rejected = metrics.rejected();
    let rejected_total: u64 = rejected.values().sum();
    let by_code = if rejected.is_empty() {
        String::new()
    } else {
        let codes: Vec<String> = rejected.iter().map(|(c, n)| format!("{c} {n}")).collect();
        format!(" ({})", codes.join(", "))
    };
    let tip = match outcome.tip {
        Some(tip) => format!(
            "tip {} ({}), consensus hash {}",
            tip.height,
            tip.block_hash.reversed(),
            tip.consensus_hash
        ),
        None => "nothing indexed yet (the chain is below the first block or lacks confirmations)"
            .to_owned(),
    };
    tracing::info!(
        blocks,
        accepted,
        rejected = rejected_total,
        reorgs = outcome.reorgs,
        seconds = format!("{:.1}", elapsed.as_secs_f64()),
        "indexed {blocks} blocks in {:.1} s: {accepted} operations accepted, {rejected_total} rejected{by_code}, {} reorganisations; {tip}",
        elapsed.as_secs_f64(),
        outcome.reorgs,
    );
    if accepted == 0 && rejected_total > 0 {
        tracing::warn!(
            "every operation of this run was rejected: check --first-block and --network (RUST_LOG=vc_engine=debug lists each rejection)"
        );
    }
}

/// What `status` reports, read from a verified view.
struct StatusReport {
    tip: vc_store::Tip,
    operations: u64,
    app_lines: Vec<(&'static str, String)>,
    rollback: Option<(u64, u64)>,
    segments: Vec<vc_store::Segment>,
}

/// A segment as `status` prints it: its heights, its chain, and the chain's own heights.
fn segment_line(s: &vc_store::Segment, tip: u64) -> String {
    let last = s.last_height.unwrap_or(tip);
    let state = if s.last_height.is_some() {
        "frozen"
    } else {
        "followed"
    };
    let first_own = s.chain_first;
    let last_own = s.chain_height(last).unwrap_or(first_own);
    format!(
        "{}..{last} from chain {} (its blocks {first_own}..{last_own}, {state})",
        s.first_height,
        s.chain()
    )
}

fn segment_json(s: &vc_store::Segment, tip: u64) -> serde_json::Value {
    let boundary = s.boundary();
    serde_json::json!({
        "first_height": s.first_height,
        "last_height": s.last_height.unwrap_or(tip),
        "frozen": s.last_height.is_some(),
        "magic": vc_chash::hex::encode(&s.magic),
        "genesis": vc_chash::Hash256(s.genesis).reversed().to_string(),
        "chain_first": s.chain_first,
        "binding": boundary.map(|b| serde_json::json!({
            "last_height": b.announcement.last_height,
            "consensus_hash": b.ch_a.to_string(),
            "anchor": b.announcement.anchor.reversed().to_string(),
            "commit_height": b.commit_height,
            "commit_txid": b.commit_txid.reversed().to_string(),
            "reveal_height": b.reveal_height,
        })),
    })
}

/// Runs `status`: read-only, and nothing is answered from a file that fails a check. Every
/// run checks the file ([`vc_store::ReadOnlyStore::verify`]: redb's page checksums, then the
/// tip's consensus hash recomputed from its stored inputs) and the operation count against the
/// stored rows, because a damaged page is otherwise read without complaint; `verify` adds the
/// replay of every block's consensus hash from the stored records.
pub fn status(db: &Path, verify: bool, json: bool) -> Result<ExitCode> {
    let (app, store) = registry::open_read_only(db)?;
    store
        .verify()
        .with_context(|| format!("checking {}", db.display()))?;
    let meta = store.meta();
    let view = store.view()?;
    let tip = vc_store::replay::verify_tip(&view)?;
    if verify && let Some(tip) = &tip {
        let report = vc_store::replay::verify(&view, (tip.height, tip.consensus_hash))?;
        if let Some(d) = report.divergence {
            return Err(StoreError::Damaged {
                path: db.display().to_string(),
                what: "replaying every block".into(),
                detail: d.to_string(),
            }
            .into());
        }
    }
    let report = match tip {
        Some(tip) => Some(StatusReport {
            operations: vc_store::replay::operation_count(&view, meta.first_block, tip.height)?,
            app_lines: app.status(meta, &view)?,
            rollback: view.undo_heights()?,
            segments: view.segments()?,
            tip,
        }),
        None => None,
    };
    if json {
        let mut out = serde_json::json!({
            "app": meta.app_name,
            "version": meta.app_version,
            "network": meta.network,
            "first_block": meta.first_block,
            "scheme": store.scheme().name(),
            "verified": verify,
            "tip": null,
            "consensus_hash": null,
            "blocks": 0,
            "operations": 0,
        });
        if let Some(r) = &report {
            out["tip"] = serde_json::json!({
                "height": r.tip.height,
                "hash": r.tip.block_hash.reversed().to_string(),
            });
            out["consensus_hash"] = r.tip.consensus_hash.to_string().into();
            out["blocks"] = (r.tip.height + 1 - meta.first_block).into();
            out["operations"] = r.operations.into();
            out["rollback_window"] = r.rollback.map_or(serde_json::Value::Null, |(lo, hi)| {
                serde_json::json!([lo, hi])
            });
            let lines: serde_json::Map<String, serde_json::Value> = r
                .app_lines
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
                .collect();
            out["app_status"] = lines.into();
            if !r.segments.is_empty() {
                out["segments"] = r
                    .segments
                    .iter()
                    .map(|s| segment_json(s, r.tip.height))
                    .collect::<Vec<_>>()
                    .into();
            }
        }
        outln!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    match report {
        Some(r) => {
            outln!("app:             {} {}", meta.app_name, meta.app_version);
            outln!("network:         {}", meta.network);
            outln!("first block:     {}", meta.first_block);
            outln!(
                "tip:             {} {}",
                r.tip.height,
                r.tip.block_hash.reversed()
            );
            outln!("consensus hash:  {}", r.tip.consensus_hash);
            outln!("blocks:          {}", r.tip.height + 1 - meta.first_block);
            outln!("operations:      {}", r.operations);
            // The application's own lines (the names app: its registry and name counts).
            for (label, value) in &r.app_lines {
                outln!("{:<17}{value}", format!("{label}:"));
            }
            if let Some((lo, hi)) = r.rollback {
                outln!("rollback window: blocks {lo} to {hi}");
            }
            for s in &r.segments {
                outln!("segment:         {}", segment_line(s, r.tip.height));
            }
        }
        None => outln!(
            "empty database (nothing indexed yet); first block {}",
            meta.first_block
        ),
    }
    if verify {
        outln!("verified:        every block's consensus hash, replayed from the stored records");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ops` (read-only).
pub fn ops(db: &Path, height: u64) -> Result<ExitCode> {
    let (app, store) = registry::open_read_only(db)?;
    for op in store.view()?.ops(height)? {
        outln!("{}", app.op_json(store.meta(), &op)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `virtualchain snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: Option<SnapshotCommand>,
    /// The database (default: DATA_DIR/NETWORK/names.redb).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The snapshot file to write (replaced if it exists).
    #[arg(long, value_name = "FILE", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,
    /// Write it into this directory as HEIGHT-CONSENSUSHASH.vcsnap, the name under which
    /// `serve --snapshot-dir` publishes it.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `virtualchain snapshot fetch`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Download a snapshot another node's `serve --snapshot-dir` publishes, resumably and in
    /// bounded memory, and create a database from it only if replaying it reproduces the
    /// trusted HEIGHT:CONSENSUS_HASH; `index` then continues from the next height.
    Fetch(crate::fetch::FetchArgs),
}

/// Runs `snapshot` and `snapshot fetch`.
pub fn snapshot_command(args: SnapshotArgs, globals: &Globals, json: bool) -> Result<ExitCode> {
    if let Some(SnapshotCommand::Fetch(fetch)) = args.command {
        return crate::fetch::fetch(fetch, globals, json);
    }
    let db = globals.db(args.db, "names")?;
    match (args.out, args.out_dir) {
        (Some(out), None) => snapshot(&db, Target::File(&out), json),
        (None, Some(dir)) => snapshot(&db, Target::Dir(&dir), json),
        _ => Err(InputError::Usage("snapshot needs --out FILE or --out-dir DIR").into()),
    }
}

/// Where `snapshot` writes.
pub enum Target<'a> {
    /// This file.
    File(&'a Path),
    /// This directory, under the published name.
    Dir(&'a Path),
}

/// Runs `snapshot`: checks the file (a damaged one is refused, never exported), then writes
/// the snapshot of one consistent commit to `target`, through a temporary file renamed at the
/// end so that a failure leaves no partial snapshot.
pub fn snapshot(db: &Path, target: Target<'_>, json: bool) -> Result<ExitCode> {
    let (_, store) = registry::open_read_only(db)?;
    store
        .verify()
        .with_context(|| format!("verifying {}", db.display()))?;
    let view = store.view()?;
    let tip = view.tip()?;
    let out = match (target, &tip) {
        (Target::File(out), _) => out.to_path_buf(),
        (Target::Dir(dir), Some(t)) => {
            dir.join(vc_serve::snapshot_file_name(t.height, &t.consensus_hash))
        }
        (Target::Dir(_), None) => {
            return Err(InputError::Config(format!(
                "{} is empty: there is nothing to publish",
                db.display()
            ))
            .into());
        }
    };
    let out = out.as_path();
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let summary = match vc_store::snapshot::export(&view, &partial) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow::Error::new(e).context(format!("writing {}", out.display())));
        }
    };
    std::fs::rename(&partial, out)
        .with_context(|| format!("moving {} to {}", partial.display(), out.display()))?;
    let (height, ch) = match tip {
        Some(t) => (Some(t.height), Some(t.consensus_hash.to_string())),
        None => (None, None),
    };
    answer(
        json,
        match (&height, &ch) {
            (Some(h), Some(ch)) => format!(
                "wrote {}: {} blocks, {} state entries, {} bytes, up to block {h} with consensus hash {ch} (install it with: virtualchain recover checkpoint --snapshot {} --trusted {h}:{ch})",
                out.display(),
                summary.blocks,
                summary.state_entries,
                summary.bytes,
                out.display()
            ),
            _ => format!("wrote {}: an empty database", out.display()),
        },
        serde_json::json!({
            "file": out.display().to_string(),
            "blocks": summary.blocks,
            "state_entries": summary.state_entries,
            "bytes": summary.bytes,
            "tip_height": height,
            "consensus_hash": ch,
        }),
    );
    Ok(ExitCode::SUCCESS)
}

/// `virtualchain recover`: the three ways out of a fork deeper than the automatic limit
/// (revert, checkpoint, split), and re-indexing.
#[derive(Debug, Subcommand)]
pub enum RecoverCommand {
    /// Revert to the fork: roll the database back to the end of block HEIGHT (the last block
    /// both branches share) through its undo logs, one per reverted block, so any depth takes
    /// time proportional to the depth; the next `index` run applies the new branch above it.
    /// Nothing changes if the undo logs do not reach that far (a database made with a smaller
    /// undo window): then use `recover reindex`.
    Revert {
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
        /// The fork height: the last block to keep.
        #[arg(long, value_name = "HEIGHT")]
        to: u64,
    },
    /// Re-index from a height: roll the database back to just below HEIGHT so that the next
    /// `index` run applies the new branch. If the undo logs do not reach that far, the file is
    /// moved aside and the next run re-indexes from the first block.
    Reindex {
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
        /// The first height to apply again (the fork height + 1).
        #[arg(long)]
        from: u64,
    },
    /// Accept a checkpoint: replace the database with a snapshot the application's developers
    /// publish for the new branch, verified against a trusted HEIGHT:CONSENSUS_HASH.
    Checkpoint {
        /// The database, moved aside, then rebuilt from the snapshot (default:
        /// DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
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
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
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

/// Prints a result: `json` when asked for JSON, else `text`.
fn answer(json: bool, text: String, value: serde_json::Value) {
    if json {
        outln!("{value}");
    } else {
        outln!("{text}");
    }
}

/// Runs `recover`.
pub fn recover(cmd: RecoverCommand, globals: &Globals, json: bool) -> Result<ExitCode> {
    match cmd {
        RecoverCommand::Revert { db, to } => {
            let db = globals.db(db, "names")?;
            let (_, _, store) = registry::open_db(&db)?;
            let started = Instant::now();
            let n = store.rollback_to(to).with_context(|| {
                format!(
                    "reverting {} to height {to} (`virtualchain recover reindex --from {}` re-indexes instead)",
                    db.display(),
                    to + 1
                )
            })?;
            let seconds = started.elapsed().as_secs_f64();
            answer(
                json,
                format!(
                    "reverted {n} blocks in {seconds:.2} s; the database ends at height {to}, and the next `virtualchain index` applies the chain from height {}",
                    to + 1
                ),
                serde_json::json!({"reverted": n, "tip_height": to, "next_height": to + 1, "seconds": seconds}),
            );
        }
        RecoverCommand::Reindex { db, from } => {
            let db = globals.db(db, "names")?;
            let (_, meta, store) = registry::open_db(&db)?;
            let target = from.saturating_sub(1);
            match store.rollback_to(target) {
                Ok(n) => answer(
                    json,
                    format!(
                        "rolled back {n} blocks; the next `virtualchain index` applies the chain from height {from}"
                    ),
                    serde_json::json!({"rolled_back": n, "next_height": from}),
                ),
                Err(StoreError::RollbackTooDeep { .. }) => {
                    drop(store);
                    let moved = aside(&db, &format!("before-reindex-{from}"))?;
                    answer(
                        json,
                        format!(
                            "the undo logs do not reach height {from}; moved the database to {} — the next `virtualchain index` re-indexes from the first block ({})",
                            moved.display(),
                            meta.first_block
                        ),
                        serde_json::json!({
                            "moved_to": moved.display().to_string(),
                            "next_height": meta.first_block,
                        }),
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
            let db = globals.db(db, "names")?;
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
                Ok((_, summary)) => answer(
                    json,
                    format!(
                        "installed the checkpoint: {} blocks up to {} verified against {}; the old database is at {}",
                        summary.blocks,
                        trusted.0,
                        trusted.1,
                        moved.display()
                    ),
                    serde_json::json!({
                        "blocks": summary.blocks,
                        "trusted_height": trusted.0,
                        "trusted_consensus_hash": trusted.1.to_string(),
                        "moved_to": moved.display().to_string(),
                    }),
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
            let db = globals.db(db, "names")?;
            let (_, _, store) = registry::open_db(&db)?;
            let (height, hash) = vc_engine::pin_branch(&store, fork_height)?;
            answer(
                json,
                format!(
                    "pinned {} to block {hash} at height {height}: it will never roll back onto another branch. Keep the node on this branch, for example with `bitcoin-cli invalidateblock <the other branch's block at height {height}>`",
                    db.display()
                ),
                serde_json::json!({"pinned_height": height, "pinned_block": hash.to_string()}),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
