//! Prometheus metrics, in the text exposition format, with no dependency: request counts by
//! route and status, a latency histogram per route, requests in flight and the store's height.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in microseconds (50 µs to 10 s).
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000,
    10_000_000,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts are computed at render time; these are per-bucket counts, plus one
    /// for everything above the last bound.
    buckets: [u64; BUCKETS_US.len() + 1],
    sum_us: u64,
    count: u64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
    work_running: AtomicI64,
    work_peak: AtomicI64,
    work_abandoned: AtomicU64,
    connections: AtomicI64,
    connections_refused: AtomicU64,
}

/// The status recorded for a request dropped before it was answered (its client left): nginx's
/// "client closed request".
pub(crate) const ABANDONED: u16 = 499;

/// One request in flight: counted in `vc_http_requests_in_flight` until dropped, and recorded
/// when dropped, as answered ([`InFlight::answered`]) or abandoned (499).
pub(crate) struct InFlight<'a> {
    metrics: &'a Metrics,
    route: String,
    started: Instant,
    status: u16,
}

impl InFlight<'_> {
    /// The request was answered with `status`.
    pub(crate) fn answered(&mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .record(&self.route, self.status, self.started.elapsed());
    }
}

/// One blocking task running, counted in `vc_work_running` until dropped.
pub(crate) struct Running<'a>(&'a Metrics);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.work_running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open connection, counted in `vc_http_connections` until dropped.
pub(crate) struct Connection(std::sync::Arc<crate::routes::Shared>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A connection was accepted; it is counted until the returned guard drops.
    pub(crate) fn connection(shared: &std::sync::Arc<crate::routes::Shared>) -> Connection {
        shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
        Connection(shared.clone())
    }

    /// A new connection was closed at once: the cap was reached with every connection busy.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A request starts; it is recorded when the returned guard drops.
    pub(crate) fn start(&self, route: String) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            metrics: self,
            route,
            started: Instant::now(),
            status: ABANDONED,
        }
    }

    /// A request's blocking work starts.
    pub(crate) fn work(&self) -> Running<'_> {
        let now = self.work_running.fetch_add(1, Ordering::Relaxed) + 1;
        self.work_peak.fetch_max(now, Ordering::Relaxed);
        Running(self)
    }

    /// A request's blocking work stopped early because the request was abandoned.
    pub(crate) fn work_abandoned(&self) {
        self.work_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one request.
    fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_default();
            let slot = BUCKETS_US
                .iter()
                .position(|&b| us <= b)
                .unwrap_or(BUCKETS_US.len());
            h.buckets[slot] += 1;
            h.sum_us = h.sum_us.saturating_add(us);
            h.count += 1;
        }
    }

    /// The exposition text. `height` is the store's tip, when it has one.
    pub(crate) fn render(&self, height: Option<u64>, app: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP vc_http_requests_total Requests answered, by route and HTTP status.\n\
             # TYPE vc_http_requests_total counter"
        );
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "vc_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vc_http_request_duration_seconds Time from request to response, by route.\n\
             # TYPE vc_http_request_duration_seconds histogram"
        );
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let mut cumulative = 0;
                for (i, bound) in BUCKETS_US.iter().enumerate() {
                    cumulative += h.buckets[i];
                    let _ = writeln!(
                        out,
                        "vc_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{}\"}} {cumulative}",
                        seconds(*bound)
                    );
                }
                let _ = writeln!(
                    out,
                    "vc_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                     vc_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                     vc_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count,
                    seconds(h.sum_us),
                    h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP vc_http_requests_in_flight Requests being answered.\n\
             # TYPE vc_http_requests_in_flight gauge\n\
             vc_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP vc_work_running Requests' blocking work (store reads) running now; each holds \
             a permit of max_in_flight until it has stopped.\n\
             # TYPE vc_work_running gauge\n\
             vc_work_running {}\n\
             # HELP vc_work_running_peak The most blocking work ever running at once.\n\
             # TYPE vc_work_running_peak gauge\n\
             vc_work_running_peak {}\n\
             # HELP vc_work_abandoned_total Blocking work stopped early because its request was \
             abandoned (client gone, or timed out).\n\
             # TYPE vc_work_abandoned_total counter\n\
             vc_work_abandoned_total {}\n\
             # HELP vc_http_connections Open connections.\n\
             # TYPE vc_http_connections gauge\n\
             vc_http_connections {}\n\
             # HELP vc_http_connections_refused_total New connections closed at once: the cap \
             was reached with every connection busy.\n\
             # TYPE vc_http_connections_refused_total counter\n\
             vc_http_connections_refused_total {}",
            self.work_running.load(Ordering::Relaxed),
            self.work_peak.load(Ordering::Relaxed),
            self.work_abandoned.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.connections_refused.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP vc_indexer_height The height of the store's newest committed block.\n\
             # TYPE vc_indexer_height gauge"
        );
        if let Some(h) = height {
            let _ = writeln!(out, "vc_indexer_height{{app=\"{app}\"}} {h}");
        }
        out
    }
}

/// Microseconds as a decimal number of seconds, without floating point.
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_everything() {
        let m = Metrics::default();
        for us in [10, 60, 60, 20_000_000] {
            m.record("/v1/tip", 200, Duration::from_micros(us));
        }
        m.record("/v1/tip", 404, Duration::from_micros(1));
        let text = m.render(Some(7), "names");
        assert!(text.contains("vc_http_requests_total{route=\"/v1/tip\",status=\"200\"} 4"));
        assert!(text.contains("vc_http_requests_total{route=\"/v1/tip\",status=\"404\"} 1"));
        assert!(text.contains("_bucket{route=\"/v1/tip\",le=\"0.000050\"} 2"));
        assert!(text.contains("_bucket{route=\"/v1/tip\",le=\"0.000100\"} 4"));
        assert!(text.contains("_bucket{route=\"/v1/tip\",le=\"10.000000\"} 4"));
        assert!(text.contains("_bucket{route=\"/v1/tip\",le=\"+Inf\"} 5"));
        assert!(text.contains("vc_http_request_duration_seconds_sum{route=\"/v1/tip\"} 20.000131"));
        assert!(text.contains("vc_http_requests_in_flight 0"));
        assert!(text.contains("vc_indexer_height{app=\"names\"} 7"));
    }

    #[test]
    fn gauges_are_released_by_their_guards() {
        let m = Metrics::default();
        {
            let mut answered = m.start("/v1/tip".into());
            answered.answered(200);
            let _dropped = m.start("/v1/tip".into());
            let _w1 = m.work();
            let _w2 = m.work();
            let text = m.render(None, "x");
            assert!(text.contains("vc_http_requests_in_flight 2"), "{text}");
            assert!(text.contains("vc_work_running 2"), "{text}");
        }
        let text = m.render(None, "x");
        assert!(text.contains("vc_http_requests_in_flight 0"), "{text}");
        assert!(text.contains("vc_work_running 0"), "{text}");
        assert!(text.contains("vc_work_running_peak 2"), "{text}");
        assert!(text.contains("vc_http_requests_total{route=\"/v1/tip\",status=\"200\"} 1"));
        assert!(text.contains("vc_http_requests_total{route=\"/v1/tip\",status=\"499\"} 1"));
    }
}
