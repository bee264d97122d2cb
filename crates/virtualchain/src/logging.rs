//! Logs on stderr: text (coloured only on a terminal, and never with `NO_COLOR`) or JSON lines,
//! filtered by `RUST_LOG` (default `info`), and routed around the progress bar so a log line
//! never tears it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// The progress bar on screen, if any: log lines are printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Shows `bar` (log lines go above it) or, with `None`, forgets the bar.
pub fn set_bar(bar: Option<ProgressBar>) {
    if let Ok(mut slot) = BAR.lock() {
        *slot = bar;
    }
}

/// Starts logging in `format`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_writer(BarWriter)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// Makes one [`Line`] per log event.
#[derive(Clone, Copy, Debug)]
struct BarWriter;

impl<'a> MakeWriter<'a> for BarWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

/// One log event's bytes, written to stderr in one piece when dropped: above the progress bar
/// when one is shown.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        let bar = BAR.lock().ok().and_then(|slot| slot.clone());
        match bar {
            Some(bar) if !bar.is_hidden() => bar.suspend(write),
            _ => write(),
        }
    }
}
