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
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document ([`OPENAPI`]) |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /v1/events?from=H` | live `apply` and `rollback` events as Server-Sent Events ([`EventsConfig`]) |
//! | `GET /` | a small HTML page |
//! | `GET /healthz/live`, `GET /healthz/ready` | liveness and readiness |
//!
//! Errors are JSON (`{"code": "not_found", "message": "..."}`; see [`ApiError`]). Requests
//! carry no body; their URI length, the number answered at once and their time are limited
//! ([`ServeConfig`]). Shutdown is graceful: requests in progress are answered first, while event
//! streams and webhook deliveries end at once so that shutdown never waits on them. `/v1`
//! answers carry CORS headers for browsers ([`Cors`]).
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

mod cors;
mod error;
mod events;
mod health;
mod index;
mod metrics;
mod page;
mod render;
mod routes;
mod webhook;

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

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Where and how the server listens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The address to listen on (port 0: any free port; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// The longest a request may take before it is answered `503 timeout`.
    pub request_timeout: Duration,
    /// How many requests are answered at once; more get `503 overloaded` at once instead of
    /// queueing behind slow ones.
    pub max_in_flight: usize,
    /// The longest URI accepted, in bytes; requests may carry no body.
    pub max_request_bytes: usize,
    /// Threads answering requests (tokio workers); `None`: one per core.
    pub worker_threads: Option<usize>,
    /// Live events: `/v1/events` streams and webhooks.
    pub events: EventsConfig,
    /// Which browser origins may read `/v1/…` (CORS).
    pub cors: Cors,
}

impl ServeConfig {
    /// Defaults: 10 s per request, 1,024 requests at once, 2 KiB URIs, one worker per core.
    pub fn new(listen: SocketAddr) -> Self {
        ServeConfig {
            listen,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            max_request_bytes: 2048,
            worker_threads: None,
            events: EventsConfig::default(),
            cors: Cors::default(),
        }
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
    /// The server thread panicked.
    #[error("the server thread panicked")]
    Panicked,
}

/// A server bound to its address, not yet answering.
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    shared: Arc<routes::Shared>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

const RESERVED: [&str; 7] = [
    "events",
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
            config,
        });
        Ok(Server {
            listener,
            addr,
            shared,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
            .with_state(s.clone());
        match &s.config.cors {
            Cors::Off => api,
            cors => api.layer(middleware::from_fn_with_state(
                Arc::new(cors.clone()),
                cors::layer,
            )),
        }
    }

    /// Answers requests until `shutdown` completes, then finishes the requests in progress
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
        let shared = self.shared.clone();
        rt.block_on(async move {
            // Streams and webhooks end when shutdown starts, so it does not wait on them.
            let shutdown = events::start(&shared, shutdown);
            let listener =
                tokio::net::TcpListener::from_std(self.listener).map_err(ServeError::Io)?;
            tracing::info!(%addr, "serving");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServeError::Io)?;
            tracing::info!(%addr, "server stopped");
            Ok(())
        })
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

    /// Stops accepting, answers the requests in progress, and waits for the thread.
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
