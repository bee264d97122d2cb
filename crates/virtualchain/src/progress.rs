//! What `index` shows while it runs: a progress bar on a terminal (blocks, blocks/s, ETA; at
//! the tip, the block it waits for), a log line every few seconds otherwise, and the metrics
//! the engine's reports feed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};
use vc_engine::{BlockReport, CommitReport, ForkReport, Observer, ReorgReport};

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

    /// The bar, created on first use: one bar for the whole run, restyled between catching up
    /// and waiting (replacing it would leave the old one's line behind).
    fn bar(&mut self) -> ProgressBar {
        if let Some(bar) = &self.bar {
            return bar.clone();
        }
        let bar = ProgressBar::with_draw_target(
            Some(0),
            ProgressDrawTarget::term_like(Box::new(ShortTerm(console::Term::buffered_stderr()))),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        logging::set_bar(Some(bar.clone()));
        self.bar = Some(bar.clone());
        bar
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Standard error for the bar, two columns narrower than the terminal. indicatif pads its line
/// to the full width to park the cursor at the edge; the terminal's echo of a Ctrl-C (`^C`)
/// then wraps to a new line, the bar's clearing hits that line instead of the bar's, and the
/// bar stays on screen after the process ends. Two spare columns hold the echo.
#[derive(Debug)]
struct ShortTerm(console::Term);

impl TermLike for ShortTerm {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(2).max(20)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
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
        if self.tty {
            let bar = self.bar();
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
            bar.set_length(to - from + 1);
            bar.reset();
            bar.set_message(from.to_string());
        } else {
            tracing::info!(from, to, chain_tip, "indexing blocks {from} to {to}");
        }
    }

    fn on_block(&mut self, report: &BlockReport) {
        let height = report.info.height;
        self.range_blocks += 1;
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

    fn on_fork(&mut self, fork: &ForkReport) {
        // The engine logs the detection (heights and request counts); this counts it.
        self.metrics.fork(fork.depth, fork.requests());
    }

    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.metrics.reorg(reorg.fork_height, reorg.depth);
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
        // The next block to apply, and the chain height at which it has its confirmations.
        let next = self.metrics.tip_height().map_or(0, |h| h + 1);
        let needs = next + self.confirmations.saturating_sub(1);
        let message = format!(
            "waiting for block {} (applied once the chain reaches {}; its tip is {})",
            grouped(next),
            grouped(needs),
            grouped(chain_tip)
        );
        if self.tty {
            let bar = self.bar();
            if !self.waiting_logged {
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} · {elapsed}") {
                    bar.set_style(style);
                }
                bar.reset();
                self.waiting_logged = true;
            }
            bar.set_message(message);
        } else if !self.waiting_logged {
            tracing::info!(next, chain_tip, "{message}");
            self.waiting_logged = true;
        }
    }
}
