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
    /// The database (read-only; `virtualchain index --follow` may write it meanwhile).
    #[arg(long)]
    db: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8339")]
    listen: SocketAddr,
    /// The longest a request may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// How many requests are answered at once; more are refused with 503.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
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
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    if !args.db.exists() {
        return Err(InputError::Missing(args.db.display().to_string()).into());
    }
    let store = ReadOnlyStore::open(&args.db)
        .with_context(|| format!("opening {} read-only", args.db.display()))?;
    let meta = store.meta().clone();
    // The application's own endpoints, when this build carries it; the generic ones always.
    let extension: Option<Arc<dyn Extension>> = match registry::by_stored_name(&meta.app_name) {
        Ok(app) => app
            .extension(&meta)
            .with_context(|| format!("reading {}", args.db.display()))?,
        Err(_) => None,
    };
    let mut config = ServeConfig::new(args.listen);
    config.request_timeout = Duration::from_millis(args.timeout_ms.max(1));
    config.max_in_flight = args.max_in_flight.max(1);
    config.worker_threads = args.threads;
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
        db = %args.db.display(),
        app = %meta.app_name,
        url = %format!("http://{}", server.local_addr()),
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
