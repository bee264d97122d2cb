//! An HTTP server for virtualchain stores: the untrusted, highly available node that light
//! clients query.
//!
//! It opens a store read-only ([`vc_store::ReadOnlyStore`]), so it can run beside the indexer
//! that writes the same file, and answers from one consistent commit per request:
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /v1/tip` | the application and its newest block |
//! | `GET /v1/blocks/{height}` | block hash, parent, consensus hash, ops hash, operation count |
//! | `GET /v1/blocks/{height}/ops` | the accepted operations with their transaction context |
//! | `GET /v1/consensus/{ch}` | the height of a consensus hash |
//! | `GET /v1/consensus/{ch}/fresh?height=H[&window=W]` | whether `ch` is fresh at `H` |
//! | `GET /v1/proofs/{m}?trusted={n}[&format=json]` | the proof of block `m`'s records against `CH(n)` |
//! | `GET /v1/{collection}/{key}` | an application's state of one key and the heights that touched it ([`Extension`]) |
//! | `GET /v1/snapshots` | the published snapshots: height, consensus hash, size ([`SnapshotsConfig`]) |
//! | `GET /v1/snapshots/{height}` | one snapshot's bytes, streamed, with HTTP ranges for resuming |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document ([`OPENAPI`]) |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /v1/events?from=H` | live `apply`, `rollback` and `fork` events as Server-Sent Events ([`EventsConfig`]) |
//! | `GET /` | a small HTML page |
//! | `GET /healthz/live`, `GET /healthz/ready` | liveness and readiness |
//!
//! Errors are JSON (`{"code": "not_found", "message": "..."}`; see [`ApiError`]), hyper's own
//! answers to malformed heads included. Anyone may connect, so every request's work is bounded
//! before it starts ([`ServeConfig`] lists each limit with its default; `docs/security.md` has
//! the threat model and the tests): the freshness window, requests answered at once (blocking
//! work holds its permit until it has stopped, and stops when its request is abandoned or times
//! out), request time, URI and head size, the time to send a request head (also the idle
//! timeout), and open connections (with headroom under the open-file limit). Shutdown gives
//! requests in progress [`ServeConfig::shutdown_grace`], then drops them; event streams and
//! webhook deliveries end at once, so shutdown never waits on them. `/v1` answers carry CORS
//! headers for browsers ([`Cors`]).
//!
//! A proof is verified with [`vc_chash::verify`] against a consensus hash the client trusts;
//! nothing the server says needs to be believed. The light client that does so is the
//! `vc-light` crate, which depends on none of this crate's server stack.
//!
//! ```no_run
//! use vc_serve::{ServeConfig, Server};
//! use vc_store::ReadOnlyStore;
//!
//! let store = ReadOnlyStore::open("names.redb")?;
//! let server = Server::bind(store, None, ServeConfig::new("127.0.0.1:8339".parse()?))?;
//! println!("serving on http://{}", server.local_addr());
//! server.run(async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;
mod cors;
mod error;
mod events;
mod health;
mod index;
mod metrics;
mod page;
mod render;
mod routes;
mod snapshots;
mod webhook;
mod work;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::sync::{Semaphore, oneshot};
use vc_store::ReadOnlyStore;

pub use cors::Cors;
pub use error::ApiError;
pub use events::{EventsConfig, REORG_MEMORY};
pub use index::Extension;
pub use routes::OPENAPI;
pub use snapshots::{SnapshotsConfig, file_name as snapshot_file_name};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The default [`ServeConfig::max_fresh_window`].
pub const DEFAULT_MAX_FRESH_WINDOW: u64 = 1024;

/// The default [`ServeConfig::max_state_changes`].
pub const DEFAULT_MAX_STATE_CHANGES: u64 = 10_000;

/// The largest [`ServeConfig::max_in_flight`] accepted.
pub const MAX_IN_FLIGHT: usize = 1 << 20;

/// The largest [`ServeConfig::worker_threads`] accepted.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The smallest [`ServeConfig::max_header_bytes`] accepted (hyper's minimum buffer).
pub const MIN_HEADER_BYTES: usize = 8192;

/// The largest [`ServeConfig::max_header_bytes`] accepted.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The longest [`ServeConfig::request_timeout`] and [`ServeConfig::header_read_timeout`]
/// accepted: one hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest [`ServeConfig::shutdown_grace`] accepted.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Where and how the server listens, and its limits (docs/security.md lists each with its
/// test). [`Server::bind`] refuses values outside the documented bounds.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The address to listen on (port 0: any free port; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// The longest a request may take before it is answered `503 timeout`; its work stops at
    /// its next check. Default 10 s; 1 ms to [`MAX_TIMEOUT`].
    pub request_timeout: Duration,
    /// How many requests are answered at once; more get `503 overloaded` at once instead of
    /// queueing behind slow ones. A request's work holds its place until it has stopped, even
    /// when the request was abandoned. Default 1,024; 1 to [`MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// The longest URI accepted, in bytes; requests may carry no body. Default 2 KiB.
    pub max_request_bytes: usize,
    /// Threads answering requests (tokio workers); `None`: one per core. At most
    /// [`MAX_WORKER_THREADS`].
    pub worker_threads: Option<usize>,
    /// The largest `window` of `/v1/consensus/{ch}/fresh` for an application without a
    /// staleness window of its own (with one, its window is the limit). A request reads up to
    /// `window` consensus hashes; larger windows are refused with `400` before any read.
    /// Default [`DEFAULT_MAX_FRESH_WINDOW`].
    pub max_fresh_window: u64,
    /// v3: the most state changes a state proof at an earlier height may set back. The tree
    /// after block `m` is rebuilt in memory from the undo logs of the blocks above it, at a
    /// cost (time and memory) linear in the changes they hold; a request over the limit is
    /// refused with `400` before any tree work. Default [`DEFAULT_MAX_STATE_CHANGES`].
    pub max_state_changes: u64,
    /// The most connections open at once. The server also keeps headroom under the process's
    /// open-file limit (32 files plus 1/32 of the limit), whichever is lower. At the cap, a new
    /// connection evicts the one waiting longest for a request head; if all are answering, the
    /// new one is closed at once. Default 4,096; at least 1.
    pub max_connections: usize,
    /// The longest a connection may take to send a complete request head, counted from when it
    /// opened or got its previous answer: the slow-sender timeout and the keep-alive idle
    /// timeout. Default 10 s; 1 ms to [`MAX_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// The longest a write to a connection may wait with no byte taken before the connection
    /// is closed: a peer that stops reading an answer (a snapshot download, an event stream)
    /// fills its socket's buffer, and would otherwise hold the connection open for good.
    /// Default 30 s; 1 ms to [`MAX_TIMEOUT`].
    pub write_timeout: Duration,
    /// The most bytes of a request head buffered per connection; beyond it: `431`. Default
    /// 16 KiB; [`MIN_HEADER_BYTES`] to [`MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// After shutdown is asked, how long connections get to finish their requests before they
    /// are dropped (and their work abandoned). Default 1 s; at most [`MAX_SHUTDOWN_GRACE`].
    /// Shutdown takes at most this plus half a second.
    pub shutdown_grace: Duration,
    /// Live events: `/v1/events` streams and webhooks.
    pub events: EventsConfig,
    /// Published snapshots: `/v1/snapshots` ([`SnapshotsConfig`]).
    pub snapshots: SnapshotsConfig,
    /// Which browser origins may read `/v1/…` (CORS).
    pub cors: Cors,
    /// `/healthz/ready` answers 200 while the store is at most this many blocks behind the
    /// newest block with enough confirmations that its indexer last saw. Default 2.
    pub ready_lag: u64,
}

impl ServeConfig {
    /// The defaults: 10 s per request, 1,024 requests at once, 2 KiB URIs, one worker per
    /// core, freshness windows of at most 1,024 blocks (when the application has none), 4,096
    /// connections, 10 s to send a request head, 30 s for a stalled write, 16 KiB heads, 1 s
    /// of shutdown grace.
    pub fn new(listen: SocketAddr) -> Self {
        ServeConfig {
            listen,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            max_request_bytes: 2048,
            worker_threads: None,
            max_fresh_window: DEFAULT_MAX_FRESH_WINDOW,
            max_state_changes: DEFAULT_MAX_STATE_CHANGES,
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(1),
            events: EventsConfig::default(),
            snapshots: SnapshotsConfig::default(),
            cors: Cors::default(),
            ready_lag: 2,
        }
    }

    /// Why this configuration is refused, if it is.
    fn check(&self) -> Result<(), String> {
        let ms = Duration::from_millis(1);
        let bad = |what: &str, range: String| Err(format!("{what} must be {range}"));
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return bad("max_in_flight", format!("1 to {MAX_IN_FLIGHT}"));
        }
        if self
            .worker_threads
            .is_some_and(|n| !(1..=MAX_WORKER_THREADS).contains(&n))
        {
            return bad("worker_threads", format!("1 to {MAX_WORKER_THREADS}"));
        }
        if !(ms..=MAX_TIMEOUT).contains(&self.request_timeout) {
            return bad("request_timeout", "1 ms to 1 hour".into());
        }
        if !(ms..=MAX_TIMEOUT).contains(&self.header_read_timeout) {
            return bad("header_read_timeout", "1 ms to 1 hour".into());
        }
        if !(ms..=MAX_TIMEOUT).contains(&self.write_timeout) {
            return bad("write_timeout", "1 ms to 1 hour".into());
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return bad(
                "max_header_bytes",
                format!("{MIN_HEADER_BYTES} to {MAX_HEADER_BYTES}"),
            );
        }
        if self.shutdown_grace > MAX_SHUTDOWN_GRACE {
            return bad("shutdown_grace", "at most 60 s".into());
        }
        if self.snapshots.max_downloads == 0 {
            return bad("snapshots.max_downloads", "at least 1".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections", "at least 1".into());
        }
        Ok(())
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listening socket could not be opened.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("starting the server's runtime: {0}")]
    Runtime(std::io::Error),
    /// Accepting or serving connections failed.
    #[error("serving: {0}")]
    Io(std::io::Error),
    /// A webhook URL is not `http://HOST[:PORT]/PATH`.
    #[error("{0}")]
    Webhook(String),
    /// The extension's collection name collides with a built-in endpoint.
    #[error("extension collection {0:?} is not a free path segment under /v1")]
    Collection(String),
    /// A [`ServeConfig`] value is out of its documented bounds.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The server thread panicked.
    #[error("the server thread panicked")]
    Panicked,
}

/// A server bound to its address, not yet answering.
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    shared: Arc<routes::Shared>,
    max_connections: usize,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long the runtime waits, at shutdown, for blocking work whose requests were dropped.
const SHUTDOWN_STRAGGLERS: Duration = Duration::from_millis(500);

const RESERVED: [&str; 8] = [
    "events",
    "snapshots",
    "tip",
    "blocks",
    "consensus",
    "proofs",
    "openapi.json",
    "metrics",
];

impl Server {
    /// Binds the listening socket. `extension` adds the application's state lookups.
    pub fn bind(
        store: ReadOnlyStore,
        extension: Option<Arc<dyn Extension>>,
        config: ServeConfig,
    ) -> Result<Server, ServeError> {
        config.check().map_err(ServeError::Config)?;
        if let Some(ext) = &extension {
            let c = ext.collection();
            if c.is_empty() || c.contains(['/', '{', '}', '?', '#']) || RESERVED.contains(&c) {
                return Err(ServeError::Collection(c.to_owned()));
            }
        }
        for url in &config.events.webhooks {
            webhook::check_url(url).map_err(ServeError::Webhook)?;
        }
        let bind = |source| ServeError::Bind {
            addr: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(routes::Shared {
            store,
            ext: extension,
            index: RwLock::default(),
            metrics: metrics::Metrics::default(),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            events: events::Hub::new(&config.events),
            snapshot_downloads: Arc::new(Semaphore::new(config.snapshots.max_downloads)),
            config,
        });
        let max_connections =
            conn::connection_cap(shared.config.max_connections, conn::open_file_limit());
        Ok(Server {
            listener,
            addr,
            shared,
            max_connections,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The most connections it will hold open: [`ServeConfig::max_connections`], lowered to
    /// keep headroom under the process's open-file limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    fn router(&self) -> Router {
        let s = &self.shared;
        let mut api = Router::new()
            .route("/v1/tip", get(routes::tip))
            .route("/v1/blocks/{height}", get(routes::block))
            .route("/v1/blocks/{height}/ops", get(routes::block_ops))
            .route("/v1/consensus/{ch}", get(routes::consensus))
            .route("/v1/consensus/{ch}/fresh", get(routes::fresh))
            .route("/v1/proofs/{m}", get(routes::proof))
            .route("/v1/state/{namespace}/{key}", get(routes::state))
            .route("/v1/snapshots", get(snapshots::list))
            .route("/v1/snapshots/{height}", get(snapshots::download))
            .route("/v1/openapi.json", get(routes::openapi))
            .route("/metrics", get(routes::metrics))
            .route("/", get(page::index));
        if let Some(ext) = &s.ext {
            api = api.route(
                &format!("/v1/{}/{{key}}", ext.collection()),
                get(routes::lookup),
            );
        }
        let api = api
            .route_layer(middleware::from_fn_with_state(s.clone(), routes::guard))
            // Outside the guard: streams outlive the request timeout and have their own cap;
            // health checks answer even when the server is overloaded.
            .route("/v1/events", get(events::events))
            .route("/healthz/live", get(health::live))
            .route("/healthz/ready", get(health::ready))
            .fallback(routes::no_route)
            .method_not_allowed_fallback(routes::not_allowed)
            .layer(middleware::map_response(routes::jsonify))
            .with_state(s.clone());
        match &s.config.cors {
            Cors::Off => api,
            cors => api.layer(middleware::from_fn_with_state(
                Arc::new(cors.clone()),
                cors::layer,
            )),
        }
    }

    /// Answers requests until `shutdown` completes, then gives the requests in progress
    /// [`ServeConfig::shutdown_grace`] to finish, drops what is left (its work is abandoned)
    /// and returns. Blocks the calling thread.
    pub fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all().thread_name("vc-serve");
        if let Some(n) = self.shared.config.worker_threads {
            rt.worker_threads(n.max(1));
        }
        let rt = rt.build().map_err(ServeError::Runtime)?;
        let router = self.router();
        let addr = self.addr;
        let cap = self.max_connections;
        let shared = self.shared.clone();
        let result = rt.block_on(async move {
            // Streams and webhooks end when shutdown starts, so it does not wait on them.
            let shutdown = events::start(&shared, shutdown);
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(ServeError::Io)?;
            tracing::info!(%addr, max_connections = cap, "serving");
            conn::serve(listener, router, self.shared, cap, shutdown).await;
            Ok(())
        });
        // Work still running was abandoned with its connection and stops at its next check;
        // the runtime does not wait longer for it.
        rt.shutdown_timeout(SHUTDOWN_STRAGGLERS);
        tracing::info!(%addr, "server stopped");
        result
    }

    /// Answers requests on a thread of its own until [`RunningServer::shutdown`] (or drop).
    pub fn spawn(self) -> Result<RunningServer, ServeError> {
        let addr = self.addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vc-serve".into())
            .spawn(move || {
                self.run(async move {
                    let _ = stopped.await;
                })
            })
            .map_err(ServeError::Runtime)?;
        Ok(RunningServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A server answering on its own thread.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, gives the requests in progress [`ServeConfig::shutdown_grace`] to
    /// finish, and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ServeError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!(error = %e, "server stopped with an error");
        }
    }
}
