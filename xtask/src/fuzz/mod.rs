//! `cargo xtask fuzz [--seconds N] [TARGET ...]`: run the cargo-fuzz targets in `fuzz/`.
//!
//! libFuzzer's instrumentation needs nightly compiler flags; on the stable toolchain this
//! machine has, `RUSTC_BOOTSTRAP=1` is the supported way to allow them (cargo-fuzz documents it).
//! cargo-fuzz itself is installed from crates.io at a pinned version when missing. The targets
//! are built once (AddressSanitizer, debug assertions) into a target directory in the machine
//! cache, so later runs rebuild only what changed. Each target starts from a seed corpus made
//! from the committed fixture chain (blocks, transactions, payloads, undo records, headers,
//! merkle branches), then runs for N seconds (default 20), one target per core. A crash fails
//! the command and leaves its input in `fuzz/artifacts/TARGET/`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};

use crate::{output, run};

mod seed;
use seed::seed;

/// The cargo-fuzz version installed when it is missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Parses the arguments and runs the targets; returns one line per target.
pub fn fuzz(root: &Path, args: &[String]) -> Result<Vec<String>> {
    let mut seconds = 20u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a number")?;
            }
            t if !t.starts_with('-') => targets.push(t.to_string()),
            other => {
                bail!("unknown option {other}; usage: cargo xtask fuzz [--seconds N] [TARGET ...]")
            }
        }
    }
    ensure_cargo_fuzz()?;
    let dir = root.join("fuzz");
    let all: Vec<String> = output_in(&dir, "cargo", &["fuzz", "list"])?
        .lines()
        .map(str::to_string)
        .collect();
    if targets.is_empty() {
        targets = all.clone();
    }
    for t in &targets {
        ensure!(
            all.contains(t),
            "unknown fuzz target {t}; the targets are {all:?}"
        );
    }
    seed(root)?;
    let target_dir = vc_testnode::cache_root()
        .context("HOME is not set; set VC_CACHE_DIR")?
        .join("build/fuzz-target");
    let target_dir = target_dir.to_string_lossy().into_owned();
    let status = Command::new("cargo")
        .current_dir(&dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "build", "--target-dir", &target_dir])
        .status()
        .context("starting cargo fuzz build")?;
    ensure!(status.success(), "cargo fuzz build failed: {status}");
    // libFuzzer runs on one thread, so the targets run side by side, one per core: N targets
    // take about N / cores times the per-target time. A failure is reported after the others
    // have run, the first in the targets' order.
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(targets.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(t) = targets.get(i) else {
                            break done;
                        };
                        done.push((i, run_target(&dir, &target_dir, t, seconds)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs one target for `seconds` from its corpus; returns its summary line.
fn run_target(dir: &Path, target_dir: &str, t: &str, seconds: u64) -> Result<String> {
    let corpus = dir.join("corpus").join(t);
    fs::create_dir_all(&corpus)?;
    let out = Command::new("cargo")
        .current_dir(dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--target-dir", target_dir, t])
        .arg(&corpus)
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-print_final_stats=1",
            "-rss_limit_mb=2048",
            "-timeout=10",
            // LeakSanitizer reports the 32 bytes glibc allocates the first time a thread
            // local with a destructor is touched on libFuzzer's thread (found in a
            // blk_files run): a one-time registration, not a leak that grows. Rust leaks
            // are not memory errors; the targets check panics and invariants.
            "-detect_leaks=0",
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting cargo fuzz run {t}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    if !out.status.success() {
        eprintln!("{log}");
        bail!(
            "fuzz target {t} failed ({}): the input is in fuzz/artifacts/{t}/; make it a \
             regression test in the owning crate",
            out.status
        );
    }
    let line = format!(
        "{t}: {} executions in {seconds} s ({}/s), corpus {} inputs, peak RSS {} MB",
        stat("stat::number_of_executed_units:"),
        stat("stat::average_exec_per_sec:"),
        fs::read_dir(&corpus).map_or(0, |d| d.count()),
        stat("stat::peak_rss_mb:"),
    );
    eprintln!("{line}");
    Ok(line)
}

fn output_in(dir: &Path, program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        out.status
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn ensure_cargo_fuzz() -> Result<()> {
    if output("cargo", ["fuzz", "--version"]).is_ok() {
        return Ok(());
    }
    eprintln!("installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io");
    run(
        "cargo",
        [
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            &format!("={CARGO_FUZZ_VERSION}"),
        ],
    )
}
