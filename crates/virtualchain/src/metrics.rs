//! The indexer's own metrics and health, in Prometheus' text format, served on
//! `index --metrics-addr`:
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` | the `vc_index_*` metrics below |
//! | `/healthz/live` | 200 while the process runs |
//! | `/healthz/ready` | 200 when the database is within `--ready-lag` blocks of the source's tip (less the confirmations), else 503; a JSON body says where it is |
//!
//! The listener is small on purpose: a thread per connection up to [`MAX_CONNECTIONS`], a
//! request head of at most [`MAX_HEAD`] bytes read within [`READ_TIMEOUT`], one answer, then the
//! connection closes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Connections answered at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with Prometheus' cumulative buckets.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(self.counts.iter()) {
            out.push_str(&format!(
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}\n",
            self.count
        ));
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        out.push_str(&format!("{name}_sum{braces} {}\n", self.sum));
        out.push_str(&format!("{name}_count{braces} {}\n", self.count));
    }
}

/// Per-method source statistics.
#[derive(Clone, Debug, Default)]
struct Calls {
    latency: Histogram,
    errors: u64,
}

/// What the indexer has done, shared by the engine's observer, the metered source and the
/// metrics listener.
#[derive(Debug)]
pub struct IndexMetrics {
    started: Instant,
    confirmations: u64,
    ready_lag: u64,
    blocks: AtomicU64,
    bytes: AtomicU64,
    accepted: AtomicU64,
    tip: AtomicU64,
    has_tip: AtomicU64,
    chain_tip: AtomicU64,
    has_chain_tip: AtomicU64,
    last_block_unix: AtomicU64,
    reorgs: AtomicU64,
    deepest_reorg: AtomicU64,
    forks: AtomicU64,
    deepest_fork: AtomicU64,
    fork_requests: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rejected: BTreeMap<String, u64>,
    source: BTreeMap<&'static str, Calls>,
    commit: Histogram,
    reorg_depth: Histogram,
    last_block: Option<Instant>,
}

impl IndexMetrics {
    /// Empty metrics; `ready_lag` is how far behind the confirmed tip still counts as ready.
    pub fn new(confirmations: u64, ready_lag: u64) -> Self {
        IndexMetrics {
            started: Instant::now(),
            confirmations,
            ready_lag,
            blocks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            tip: AtomicU64::new(0),
            has_tip: AtomicU64::new(0),
            chain_tip: AtomicU64::new(0),
            has_chain_tip: AtomicU64::new(0),
            last_block_unix: AtomicU64::new(0),
            reorgs: AtomicU64::new(0),
            deepest_reorg: AtomicU64::new(0),
            forks: AtomicU64::new(0),
            deepest_fork: AtomicU64::new(0),
            fork_requests: AtomicU64::new(0),
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves the counters half-written: recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The database's tip is `height` (from the database at start).
    pub fn set_tip(&self, height: u64) {
        self.tip.store(height, Ordering::Relaxed);
        self.has_tip.store(1, Ordering::Relaxed);
    }

    /// A block was applied.
    pub fn block(&self, height: u64, size: usize, accepted: u32, rejected: &[String]) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
        self.accepted
            .fetch_add(u64::from(accepted), Ordering::Relaxed);
        self.set_tip(height);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_block_unix.store(unix, Ordering::Relaxed);
        let mut inner = self.inner();
        inner.last_block = Some(Instant::now());
        for code in rejected {
            *inner.rejected.entry(code.clone()).or_default() += 1;
        }
    }

    /// The source's tip is `height`.
    pub fn chain_tip(&self, height: u64) {
        self.chain_tip.store(height, Ordering::Relaxed);
        self.has_chain_tip.store(1, Ordering::Relaxed);
    }

    /// A reorganisation of `depth` blocks was rolled back to `fork_height`.
    pub fn reorg(&self, fork_height: u64, depth: u64) {
        self.reorgs.fetch_add(1, Ordering::Relaxed);
        self.deepest_reorg.fetch_max(depth, Ordering::Relaxed);
        self.set_tip(fork_height);
        self.inner().reorg_depth.observe(depth as f64);
    }

    /// The fork watch found a fork `depth` blocks deep, with `requests` source requests.
    pub fn fork(&self, depth: u64, requests: u32) {
        self.forks.fetch_add(1, Ordering::Relaxed);
        self.deepest_fork.fetch_max(depth, Ordering::Relaxed);
        self.fork_requests
            .store(u64::from(requests), Ordering::Relaxed);
    }

    /// A commit took `elapsed`.
    pub fn commit(&self, elapsed: Duration) {
        self.inner().commit.observe(elapsed.as_secs_f64());
    }

    /// A source request `method` took `elapsed`, and failed if `failed`.
    pub fn source_call(&self, method: &'static str, elapsed: Duration, failed: bool) {
        let mut inner = self.inner();
        let calls = inner.source.entry(method).or_default();
        calls.latency.observe(elapsed.as_secs_f64());
        if failed {
            calls.errors += 1;
        }
    }

    /// Operations rejected this run, by code.
    pub fn rejected(&self) -> BTreeMap<String, u64> {
        self.inner().rejected.clone()
    }

    /// Blocks and accepted operations this run.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.blocks.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
        )
    }

    /// How many blocks the database is behind the newest block with enough confirmations, once
    /// the source's tip is known.
    pub fn lag(&self) -> Option<u64> {
        let chain_tip = self.chain_tip_height()?;
        Some(vc_store::SourceTip::new(chain_tip, self.confirmations).lag(self.tip_height()))
    }

    /// The database's tip, once known (the newest block applied, or the one it had at start).
    pub fn tip_height(&self) -> Option<u64> {
        (self.has_tip.load(Ordering::Relaxed) != 0).then(|| self.tip.load(Ordering::Relaxed))
    }

    /// The source's tip, once known.
    fn chain_tip_height(&self) -> Option<u64> {
        (self.has_chain_tip.load(Ordering::Relaxed) != 0)
            .then(|| self.chain_tip.load(Ordering::Relaxed))
    }

    /// The readiness answer: (ready, JSON body).
    pub fn readiness(&self) -> (bool, String) {
        let lag = self.lag();
        let ready = lag.is_some_and(|l| l <= self.ready_lag);
        let tip = self.tip_height();
        let chain_tip = self.chain_tip_height();
        let reason = match lag {
            None => "the source's tip is not known yet".to_owned(),
            Some(l) if l <= self.ready_lag => format!(
                "caught up: {l} blocks behind (at most {} allowed)",
                self.ready_lag
            ),
            Some(l) => format!(
                "catching up: {l} blocks behind (at most {} allowed)",
                self.ready_lag
            ),
        };
        let body = serde_json::json!({
            "ready": ready,
            "tip_height": tip,
            "chain_tip_height": chain_tip,
            "confirmations": self.confirmations,
            "lag_blocks": lag,
            "max_lag_blocks": self.ready_lag,
            "reason": reason,
        });
        (ready, body.to_string())
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        gauge(
            "vc_index_blocks_total",
            "counter",
            "Blocks applied by this process.",
            self.blocks.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_block_bytes_total",
            "counter",
            "Serialized bytes of the blocks applied (0 for watched blocks).",
            self.bytes.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_operations_accepted_total",
            "counter",
            "Operations accepted.",
            self.accepted.load(Ordering::Relaxed).to_string(),
        );
        if let Some(tip) = self.tip_height() {
            gauge(
                "vc_index_tip_height",
                "gauge",
                "The database's newest block.",
                tip.to_string(),
            );
        }
        if let Some(chain_tip) = self.chain_tip_height() {
            gauge(
                "vc_index_chain_tip_height",
                "gauge",
                "The source's newest block, at the last poll.",
                chain_tip.to_string(),
            );
        }
        if let Some(lag) = self.lag() {
            gauge(
                "vc_index_lag_blocks",
                "gauge",
                "Blocks with enough confirmations not yet applied.",
                lag.to_string(),
            );
        }
        gauge(
            "vc_index_reorgs_total",
            "counter",
            "Reorganisations rolled back.",
            self.reorgs.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_reorg_depth_max",
            "gauge",
            "The deepest reorganisation rolled back by this process.",
            self.deepest_reorg.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_forks_detected_total",
            "counter",
            "Forks the geometric fork watch detected (rolled back or not).",
            self.forks.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_fork_depth_max",
            "gauge",
            "The deepest fork detected by this process.",
            self.deepest_fork.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_fork_requests",
            "gauge",
            "Source requests the last fork's detection and location took.",
            self.fork_requests.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "vc_index_uptime_seconds",
            "gauge",
            "Seconds since the process started.",
            format!("{:.3}", self.started.elapsed().as_secs_f64()),
        );
        let unix = self.last_block_unix.load(Ordering::Relaxed);
        if unix != 0 {
            gauge(
                "vc_index_last_block_timestamp_seconds",
                "gauge",
                "Unix time when the last block was applied.",
                unix.to_string(),
            );
        }
        let inner = self.inner();
        if let Some(at) = inner.last_block {
            out.push_str(&format!(
                "# HELP vc_index_seconds_since_last_block Seconds since the last block was applied.\n# TYPE vc_index_seconds_since_last_block gauge\nvc_index_seconds_since_last_block {:.3}\n",
                at.elapsed().as_secs_f64()
            ));
        }
        out.push_str("# HELP vc_index_operations_rejected_total Operations rejected, by code.\n# TYPE vc_index_operations_rejected_total counter\n");
        for (code, n) in &inner.rejected {
            out.push_str(&format!(
                "vc_index_operations_rejected_total{{code=\"{}\"}} {n}\n",
                label(code)
            ));
        }
        out.push_str("# HELP vc_index_source_request_seconds Source requests by method.\n# TYPE vc_index_source_request_seconds histogram\n");
        for (method, calls) in &inner.source {
            calls.latency.render(
                &mut out,
                "vc_index_source_request_seconds",
                &format!("method=\"{method}\""),
            );
        }
        out.push_str("# HELP vc_index_source_errors_total Failed source requests by method.\n# TYPE vc_index_source_errors_total counter\n");
        for (method, calls) in &inner.source {
            out.push_str(&format!(
                "vc_index_source_errors_total{{method=\"{method}\"}} {}\n",
                calls.errors
            ));
        }
        out.push_str("# HELP vc_index_commit_seconds Commit time (after a reorganisation: the rollback and its commit).\n# TYPE vc_index_commit_seconds histogram\n");
        inner.commit.render(&mut out, "vc_index_commit_seconds", "");
        out.push_str("# HELP vc_index_reorg_depth Depth of the reorganisations rolled back.\n# TYPE vc_index_reorg_depth histogram\n");
        inner
            .reorg_depth
            .render(&mut out, "vc_index_reorg_depth", "");
        out
    }
}

/// A label value escaped for the text format.
fn label(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '\\' => vec!['\\', '\\'],
            '"' => vec!['\\', '"'],
            '\n' => vec!['\\', 'n'],
            c if c.is_control() => vec!['?'],
            c => vec![c],
        })
        .collect()
}

/// Serves `metrics` on `addr` from a background thread; returns the bound address.
pub fn serve(addr: SocketAddr, metrics: Arc<IndexMetrics>) -> Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("listening on {addr} for metrics"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("listening on {addr} for metrics"))?;
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::SeqCst);
                    drop(conn);
                    continue;
                }
                let metrics = Arc::clone(&metrics);
                let held = Arc::clone(&open);
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        answer(conn, &metrics);
                        held.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // No thread to answer with; the connection was dropped with the closure.
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
        .context("starting the metrics thread")?;
    Ok(local)
}

/// Reads one request head and answers it.
fn answer(mut conn: TcpStream, metrics: &IndexMetrics) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(READ_TIMEOUT));
    let started = Instant::now();
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD || started.elapsed() > READ_TIMEOUT {
            let _ = reply(
                &mut conn,
                431,
                "text/plain",
                "request head too large or too slow\n",
            );
            return;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let _ = match (method, path) {
        ("GET", "/metrics") => reply(
            &mut conn,
            200,
            "text/plain; version=0.0.4",
            &metrics.render(),
        ),
        ("GET", "/healthz/live") => reply(&mut conn, 200, "application/json", "{\"live\":true}"),
        ("GET", "/healthz/ready") => {
            let (ready, body) = metrics.readiness();
            reply(
                &mut conn,
                if ready { 200 } else { 503 },
                "application/json",
                &body,
            )
        }
        ("GET", _) => reply(
            &mut conn,
            404,
            "application/json",
            "{\"code\":\"not_found\",\"message\":\"paths: /metrics, /healthz/live, /healthz/ready\"}",
        ),
        _ => reply(
            &mut conn,
            405,
            "application/json",
            "{\"code\":\"method_not_allowed\",\"message\":\"only GET\"}",
        ),
    };
}

fn reply(conn: &mut TcpStream, status: u16, kind: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::IndexMetrics;

    #[test]
    fn a_detected_fork_is_counted_with_its_depth_and_requests() {
        let m = IndexMetrics::new(6, 2);
        m.fork(2_000, 24);
        m.fork(10, 17);
        let text = m.render();
        for line in [
            "vc_index_forks_detected_total 2",
            "vc_index_fork_depth_max 2000",
            "vc_index_fork_requests 17",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
