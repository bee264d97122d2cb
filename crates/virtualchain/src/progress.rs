//! What `index` shows while it runs: a progress bar on a terminal (blocks, blocks/s, ETA; at
//! the tip, the block it waits for), a log line every few seconds otherwise, and the metrics
//! the engine's reports feed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use vc_engine::{BlockReport, CommitReport, Observer, ReorgReport};

use crate::logging;
use crate::metrics::IndexMetrics;

/// Shows progress and feeds the metrics.
pub struct Progress {
    metrics: Arc<IndexMetrics>,
    bar: Option<ProgressBar>,
    tty: bool,
    last_log: Instant,
    since: Instant,
    range_blocks: u64,
    target: u64,
    confirmations: u64,
    /// The newest block applied (or in the database at start).
    last_height: Option<u64>,
    /// Whether the "waiting" line for the current tip was already logged.
    waiting_logged: bool,
}

impl Progress {
    /// A progress display on stderr feeding `metrics`; `tip` is the database's tip at start.
    pub fn new(metrics: Arc<IndexMetrics>, confirmations: u64, tip: Option<u64>) -> Self {
        if let Some(tip) = tip {
            metrics.set_tip(tip);
        }
        Progress {
            metrics,
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_log: Instant::now(),
            since: Instant::now(),
            range_blocks: 0,
            target: 0,
            confirmations,
            last_height: tip,
            waiting_logged: false,
        }
    }

    /// Removes the bar, leaving no line behind.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            logging::set_bar(None);
            bar.finish_and_clear();
        }
    }

    fn show(&mut self, bar: ProgressBar) {
        self.finish();
        bar.enable_steady_tick(Duration::from_millis(200));
        logging::set_bar(Some(bar.clone()));
        self.bar = Some(bar);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `n` with thousands separators.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Observer for Progress {
    fn on_range(&mut self, from: u64, to: u64, chain_tip: u64) {
        self.target = to;
        self.range_blocks = 0;
        self.since = Instant::now();
        self.waiting_logged = false;
        self.metrics.chain_tip(chain_tip);
        if self.tty {
            let bar = ProgressBar::new(to - from + 1);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} block {msg} [{bar:30}] {pos}/{len} blocks · {rate} · ETA {eta}",
            ) {
                let style = style
                    .with_key(
                        "rate",
                        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0} blocks/s", state.per_sec());
                        },
                    )
                    .progress_chars("=> ");
                bar.set_style(style);
            }
            self.show(bar);
        } else {
            tracing::info!(from, to, chain_tip, "indexing blocks {from} to {to}");
        }
    }

    fn on_block(&mut self, report: &BlockReport) {
        let height = report.info.height;
        self.range_blocks += 1;
        self.last_height = Some(height);
        let codes: Vec<String> = report
            .rejected
            .iter()
            .map(|r| r.reject.code.to_string())
            .collect();
        self.metrics
            .block(height, report.size, report.accepted, &codes);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(height.to_string());
        } else if self.last_log.elapsed() >= Duration::from_secs(5) {
            let rate = self.range_blocks as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                height,
                target = self.target,
                blocks_per_s = format!("{rate:.1}"),
                "at block {height} of {}",
                self.target
            );
            self.last_log = Instant::now();
        }
        // The engine logs each rejection at debug level; the run's summary counts them by code.
    }

    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.metrics.reorg(reorg.fork_height, reorg.depth);
        self.last_height = Some(reorg.fork_height);
        tracing::warn!(
            fork = reorg.fork_height,
            depth = reorg.depth,
            old_tip = reorg.old_tip,
            "reorganisation: rolled back {} blocks to height {}",
            reorg.depth,
            reorg.fork_height
        );
    }

    fn on_commit(&mut self, commit: &CommitReport) {
        self.metrics.commit(commit.elapsed);
    }

    fn on_caught_up(&mut self, chain_tip: u64) {
        self.metrics.chain_tip(chain_tip);
        // The next block to apply, and the chain height at which it has its confirmations.
        let next = self.last_height.map_or(0, |h| h + 1);
        let needs = next + self.confirmations.saturating_sub(1);
        let message = format!(
            "waiting for block {} (applied once the chain reaches {}; its tip is {})",
            grouped(next),
            grouped(needs),
            grouped(chain_tip)
        );
        if self.tty {
            let showing = self
                .bar
                .as_ref()
                .is_some_and(|b| b.length().is_none() && b.message() == message);
            if !showing {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} · {elapsed}") {
                    bar.set_style(style);
                }
                bar.set_message(message);
                self.show(bar);
            }
        } else if !self.waiting_logged {
            tracing::info!(next, chain_tip, "{message}");
            self.waiting_logged = true;
        }
    }
}
