//! `virtualchain serve`: the proof server over a database, beside the indexer writing it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use vc_serve::{Cors, Extension, ServeConfig, ServeError, Server};
use vc_store::ReadOnlyStore;

use crate::exit::InputError;
use crate::registry;

/// Serve a database over HTTP: blocks, operations, consensus hashes, state and proofs.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The database, read-only (`virtualchain index --follow` may write it meanwhile; default:
    /// DATA_DIR/NETWORK/names.redb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The address to listen on: IP:PORT or HOST:PORT (localhost:8339).
    #[arg(long, default_value = "127.0.0.1:8339", value_parser = crate::units::parse_listen)]
    listen: SocketAddr,
    /// The longest a request may take: 10s, 500ms (a bare number is seconds; 1ms to 1h).
    #[arg(long, alias = "timeout-ms", default_value = "10s", value_parser = duration_up_to_an_hour)]
    timeout: Duration,
    /// How many requests are answered at once; more are refused with 503 (1 to 1,048,576).
    #[arg(long, default_value_t = 1024, value_parser = usize_in(1, vc_serve::MAX_IN_FLIGHT))]
    max_in_flight: usize,
    /// Worker threads (default: one per core; 1 to 1,024).
    #[arg(long, value_parser = usize_in(1, vc_serve::MAX_WORKER_THREADS))]
    threads: Option<usize>,
    /// The most connections open at once (1 to 1,048,576); lowered to leave headroom under the
    /// open-file limit (`ulimit -n`).
    #[arg(long, default_value_t = 4096, value_parser = usize_in(1, 1 << 20))]
    max_connections: usize,
    /// The longest a connection may take to send a request head; also the keep-alive idle
    /// timeout (10s, 500ms; a bare number is seconds; 1ms to 1h).
    #[arg(long, alias = "header-timeout-ms", default_value = "10s", value_parser = duration_up_to_an_hour)]
    header_timeout: Duration,
    /// The longest a write may wait for a client that stopped reading before its connection
    /// is closed (30s, 500ms; a bare number is seconds; 1ms to 1h).
    #[arg(long, default_value = "30s", value_parser = duration_up_to_an_hour)]
    write_timeout: Duration,
    /// The largest freshness window for an application without a staleness window of its own
    /// (0 to 1,000,000 blocks).
    #[arg(long, default_value_t = vc_serve::DEFAULT_MAX_FRESH_WINDOW, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    max_fresh_window: u64,
    /// v3: the most state changes a state proof at an earlier height may set back (the tree
    /// then is rebuilt in memory from the undo logs above it); deeper requests get 400.
    #[arg(long, default_value_t = vc_serve::DEFAULT_MAX_STATE_CHANGES)]
    max_state_changes: u64,
    /// POST every live event (apply, rollback) as JSON to this http:// URL, in order, retried
    /// with back-off until accepted (repeatable).
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// How many `/v1/events` streams may be open at once; more are refused with 503.
    #[arg(long, default_value_t = 256)]
    max_event_streams: usize,
    /// A browser origin (`scheme://host[:port]`) allowed to read `/v1` (repeatable; default:
    /// any origin).
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        conflicts_with = "no_cors"
    )]
    cors_origins: Vec<String>,
    /// Send no CORS headers: browsers may not read the API from other origins.
    #[arg(long)]
    no_cors: bool,
    /// /healthz/ready answers 200 while the database is at most this many blocks behind the
    /// newest block with enough confirmations that the indexer last saw.
    #[arg(long, default_value_t = 2)]
    ready_lag: u64,
    /// Publish the snapshots in this directory (`virtualchain snapshot --out-dir DIR` writes
    /// them as HEIGHT-CONSENSUSHASH.vcsnap) under /v1/snapshots, those whose consensus hash
    /// the database holds at their height.
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
    /// How many snapshot downloads may run at once; more are refused with 503 (1 to 1,024).
    #[arg(long, default_value_t = 8, value_parser = usize_in(1, 1024))]
    max_snapshot_downloads: usize,
}

/// The longest timeout accepted: one hour.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A duration from 1 ms to an hour (the units of every duration option).
fn duration_up_to_an_hour(s: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration(s)?;
    if d < Duration::from_millis(1) || d > MAX_TIMEOUT {
        return Err(format!("{s:?} is not between 1ms and 1h"));
    }
    Ok(d)
}

/// A `usize` flag in `lo..=hi`, refused (exit 2) outside it.
fn usize_in(lo: usize, hi: usize) -> clap::builder::RangedU64ValueParser<usize> {
    let bound = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    clap::builder::RangedU64ValueParser::<usize>::new().range(bound(lo)..=bound(hi))
}

pub fn serve(args: ServeArgs, globals: &crate::Globals) -> Result<ExitCode> {
    let db = globals.db(args.db.clone(), "names")?;
    registry::existing_file(&db)?;
    let store =
        ReadOnlyStore::open(&db).with_context(|| format!("opening {} read-only", db.display()))?;
    // A damaged file is reported, never served: redb's integrity check and the tip's hash.
    store
        .verify()
        .with_context(|| format!("verifying {}", db.display()))?;
    let meta = store.meta().clone();
    // The application's own endpoints, when this build carries it; the generic ones always.
    let extension: Option<Arc<dyn Extension>> = match registry::by_stored_name(&meta.app_name) {
        Ok(app) => app
            .extension(&meta)
            .with_context(|| format!("reading {}", db.display()))?,
        Err(_) => None,
    };
    let mut config = ServeConfig::new(args.listen);
    config.request_timeout = args.timeout;
    config.max_in_flight = args.max_in_flight;
    config.worker_threads = args.threads;
    config.max_connections = args.max_connections;
    config.header_read_timeout = args.header_timeout;
    config.write_timeout = args.write_timeout;
    config.max_fresh_window = args.max_fresh_window;
    config.max_state_changes = args.max_state_changes;
    config.ready_lag = args.ready_lag;
    if let Some(dir) = &args.snapshot_dir
        && !dir.is_dir()
    {
        return Err(
            InputError::Missing(format!("the snapshot directory {}", dir.display())).into(),
        );
    }
    config.snapshots.dir = args.snapshot_dir;
    config.snapshots.max_downloads = args.max_snapshot_downloads;
    config.events.webhooks = args.webhooks;
    config.events.max_streams = args.max_event_streams.max(1);
    config.cors = if args.no_cors {
        Cors::Off
    } else if args.cors_origins.is_empty() || args.cors_origins.iter().any(|o| o == "*") {
        Cors::Any
    } else {
        Cors::Origins(args.cors_origins)
    };
    let server = Server::bind(store, extension, config).map_err(|e| match e {
        ServeError::Webhook(detail) => anyhow::Error::new(InputError::Invalid {
            what: "--webhook",
            detail,
        }),
        e => e.into(),
    })?;
    tracing::info!(
        db = %db.display(),
        app = %meta.app_name,
        url = %format!("http://{}", server.local_addr()),
        max_connections = server.max_connections(),
        "serving; Ctrl-C or SIGTERM stops after the requests in progress"
    );
    server.run(shutdown_signal())?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
