//! Connections: the accept loop and what bounds each connection.
//!
//! - **A cap on open connections**, below the process's open-file limit with headroom
//!   ([`connection_cap`]). At the cap, a new connection evicts the one that has waited longest
//!   for a request head (idle keep-alive or slow senders); when every connection is busy
//!   answering, the new one is closed at once. Either is logged, at most every 10 s.
//! - **A header-read timeout**: a connection must send a complete request head within
//!   [`ServeConfig::header_read_timeout`] of being opened or answered, else it is closed; so it
//!   is also the keep-alive idle timeout.
//! - **A write timeout**: a write that waits [`ServeConfig::write_timeout`] with no byte taken
//!   by the peer fails, and the connection is closed ([`WriteDeadline`]), so that a client that
//!   stops reading an answer does not keep its connection forever.
//! - **A head size limit**: hyper buffers at most [`ServeConfig::max_header_bytes`] per
//!   connection, and answers `431` beyond it.
//! - **JSON errors**: the answers hyper writes itself (400, 414, 431, empty) are rewritten as
//!   JSON on their way out ([`JsonErrors`]).
//! - **Shutdown with a deadline**: connections are asked to finish (graceful), and whatever is
//!   left after [`ServeConfig::shutdown_grace`] is dropped, which abandons its requests' work.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

#[cfg(doc)]
use crate::ServeConfig;
use crate::error::code_of_status;
use crate::metrics::Metrics;
use crate::routes::Shared;

/// The open-file headroom kept for everything that is not a connection (the store, the
/// runtime, logs): 32 files, plus 1/32 of the limit.
fn headroom(limit: u64) -> u64 {
    32 + limit / 32
}

/// The soft limit on open files of this process, where the platform has one.
pub(crate) fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit};
        // `rlim_t` is `u64` on Linux, not on every unix.
        #[allow(clippy::useless_conversion)]
        getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .and_then(|(soft, _)| u64::try_from(soft).ok())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The most connections held open at once: `configured`, and at most the open-file limit less
/// its [`headroom`]. At least 1.
pub(crate) fn connection_cap(configured: usize, open_files: Option<u64>) -> usize {
    let by_files = open_files.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(headroom(n))).unwrap_or(usize::MAX)
    });
    configured.min(by_files).max(1)
}

/// The open connections, for eviction at the cap.
#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    /// Since when it has been waiting for a request head; `None` while it answers one.
    waiting_since: Option<Instant>,
    kill: Arc<Notify>,
}

type Conns = Arc<Mutex<Registry>>;

fn lock(conns: &Conns) -> std::sync::MutexGuard<'_, Registry> {
    conns.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Makes room for one more connection under `cap`: evicts the connection waiting longest
    /// for a request head if need be. `false` when all are busy answering.
    fn make_room(&mut self, cap: usize) -> bool {
        if self.open.len() < cap {
            return true;
        }
        let oldest = self
            .open
            .iter()
            .filter_map(|(id, e)| e.waiting_since.map(|t| (t, *id)))
            .min();
        match oldest.and_then(|(_, id)| self.open.remove(&id)) {
            Some(evicted) => {
                evicted.kill.notify_one();
                true
            }
            None => false,
        }
    }

    fn add(&mut self) -> (u64, Arc<Notify>) {
        let id = self.next;
        self.next += 1;
        let kill = Arc::new(Notify::new());
        self.open.insert(
            id,
            Entry {
                waiting_since: Some(Instant::now()),
                kill: kill.clone(),
            },
        );
        (id, kill)
    }

    fn set_busy(&mut self, id: u64, busy: bool) {
        if let Some(e) = self.open.get_mut(&id) {
            e.waiting_since = (!busy).then(Instant::now);
        }
    }
}

/// Marks a connection busy answering a request until dropped.
struct Busy {
    conns: Conns,
    id: u64,
}

impl Busy {
    fn new(conns: &Conns, id: u64) -> Busy {
        lock(conns).set_busy(id, true);
        Busy {
            conns: conns.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.conns).set_busy(self.id, false);
    }
}

/// Logs at most once per period, with the number of events since the last line.
struct RateLimited {
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    const PERIOD: Duration = Duration::from_secs(10);

    fn new() -> Self {
        RateLimited {
            last: None,
            count: 0,
        }
    }

    /// Counts an event; `Some(events)` when a line is due.
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::PERIOD)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Accepts and serves connections until `shutdown` completes, then drains them for at most
/// the configured grace and drops the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) {
    let config = shared.config.clone();
    let conns: Conns = Arc::default();
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refused = RateLimited::new();
    let mut evicted = RateLimited::new();
    let mut accept_errors = RateLimited::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of files or memory: wait a little rather than spin.
                        if let Some(n) = accept_errors.hit() {
                            tracing::warn!(error = %e, errors = n, "accepting a connection failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (full, room) = {
                    let mut registry = lock(&conns);
                    let full = registry.open.len() >= cap;
                    (full, registry.make_room(cap))
                };
                if !room {
                    shared.metrics.connection_refused();
                    if let Some(n) = refused.hit() {
                        tracing::warn!(cap, refused = n, "connection cap reached with every connection busy; closing new connections");
                    }
                    drop(stream);
                    continue;
                }
                if full && let Some(n) = evicted.hit() {
                    tracing::info!(cap, evicted = n, "connection cap reached; closing the connections idle longest");
                }
                let (id, kill) = lock(&conns).add();
                tasks.spawn(connection(
                    stream,
                    id,
                    kill,
                    conns.clone(),
                    router.clone(),
                    shared.clone(),
                    stopping.clone(),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = tasks.len(),
            "closing the connections still open after the shutdown grace"
        );
        tasks.shutdown().await;
    }
}

/// Serves one connection until it ends, is evicted, or the server stops.
async fn connection(
    stream: TcpStream,
    id: u64,
    kill: Arc<Notify>,
    conns: Conns,
    router: Router,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
) {
    let _open = Metrics::connection(&shared);
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteDeadline::new(
        JsonErrors::new(stream, config.max_header_bytes),
        config.write_timeout,
    ));
    let busy_conns = conns.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::new(&busy_conns, id);
        let mut router = router.clone();
        async move {
            let response = tower_service::Service::call(&mut router, req).await;
            drop(busy);
            response
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        () = kill.notified() => tracing::debug!("connection evicted at the cap"),
        () = async { let _ = stopping.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            // The server drops this task when the grace is over.
            let _ = conn.as_mut().await;
        }
    }
    lock(&conns).open.remove(&id);
}

/// The connection's stream, with hyper's own error answers (`400`, `414`, `431` with an empty
/// body, written when a request head cannot be parsed) rewritten as JSON errors like the
/// server's others.
struct JsonErrors<S> {
    inner: S,
    max_header_bytes: usize,
    /// A rewritten answer not yet written in full.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonErrors<S> {
    fn new(inner: S, max_header_bytes: usize) -> Self {
        JsonErrors {
            inner,
            max_header_bytes,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The JSON answer replacing `head` when it is one of hyper's empty error answers.
fn rewrite(head: &[u8], max_header_bytes: usize) -> Option<Vec<u8>> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if end != head.len() || !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    if !text
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let (status, reason, message) = match text.get(9..12)? {
        "400" => (
            400,
            "Bad Request",
            "the request is not valid HTTP/1.1".to_owned(),
        ),
        "414" => (
            414,
            "URI Too Long",
            "the request's URI is too long".to_owned(),
        ),
        "431" => (
            431,
            "Request Header Fields Too Large",
            format!(
                "the request head is larger than this server's limit of {max_header_bytes} bytes"
            ),
        ),
        _ => return None,
    };
    let body =
        serde_json::json!({ "code": code_of_status(status), "message": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = rewrite(buf, this.max_header_bytes) {
            this.pending = answer;
            // Written on this call as far as the socket takes it, and by the next write, flush
            // or shutdown otherwise.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] once one has waited `timeout`
/// without the peer taking a byte. Any progress starts the wait over, so a slow reader keeps
/// its connection; one that reads nothing loses it.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Since when the pending write, flush or shutdown has been waiting.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// `poll`'s result, or the timeout's error once it has been pending for `timeout`.
    fn within<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        // Polling the timer registers this task to be woken when it expires.
        if waiting.as_mut().poll(cx).is_ready() {
            self.waiting = None;
            tracing::debug!(?timeout, "closing a connection whose peer stopped reading");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took nothing written for the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.within(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.within(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.within(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_cap_leaves_headroom_under_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 1024 - 64);
        assert_eq!(connection_cap(4096, Some(256)), 256 - 40);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(4096, None), 4096);
        assert_eq!(connection_cap(4096, Some(10)), 1);
        assert_eq!(connection_cap(0, None), 1);
    }

    #[test]
    fn only_hyper_s_empty_errors_are_rewritten() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(rewrite(hyper, 16384).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 431 "), "{json}");
        assert!(json.contains("content-type: application/json"));
        assert!(json.ends_with("limit of 16384 bytes\"}"), "{json}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(rewrite(ours, 16384), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(rewrite(ok, 16384), None);
    }

    #[test]
    fn the_cap_evicts_the_longest_waiting_and_spares_busy_connections() {
        let mut r = Registry::default();
        let (a, _) = r.add();
        let (b, _) = r.add();
        r.set_busy(a, true);
        assert!(r.make_room(2));
        assert!(r.open.contains_key(&a) && !r.open.contains_key(&b));
        r.add();
        let ids: Vec<u64> = r.open.keys().copied().collect();
        for id in ids {
            r.set_busy(id, true);
        }
        assert!(!r.make_room(2));
    }
}
