//! `virtualchain serve`: the proof server over a database, beside the indexer writing it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use vc_serve::{Extension, ServeConfig, Server};
use vc_store::ReadOnlyStore;

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
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    registry::existing_file(&args.db)?;
    let store = ReadOnlyStore::open(&args.db)
        .with_context(|| format!("opening {} read-only", args.db.display()))?;
    // A damaged file is reported, never served: redb's integrity check and the tip's hash.
    store
        .verify()
        .with_context(|| format!("verifying {}", args.db.display()))?;
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
    let server = Server::bind(store, extension, config)?;
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
