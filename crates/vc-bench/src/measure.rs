//! Measuring a process: wall time, CPU seconds and peak RSS of a child, CPU seconds of a
//! running process (bitcoind), and a file tree's size on disk.
//!
//! Peak RSS and CPU time of a child come from `getrusage(RUSAGE_CHILDREN)`, which covers every
//! child a process has waited for. To get one command's figures, the benchmark runs each
//! command under `vc-bench measure`, a wrapper with exactly that one child, which writes the
//! figures as JSON.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// What one command cost.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// Wall-clock seconds from spawn to exit.
    pub wall_secs: f64,
    /// CPU seconds in user mode.
    pub user_secs: f64,
    /// CPU seconds in the kernel.
    pub sys_secs: f64,
    /// Peak resident set size in bytes.
    pub max_rss_bytes: u64,
}

impl Usage {
    /// User plus system CPU seconds.
    pub fn cpu_secs(&self) -> f64 {
        self.user_secs + self.sys_secs
    }
}

fn secs(t: nix::sys::time::TimeVal) -> f64 {
    t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6
}

/// The wrapper's side: runs `argv` with inherited stdio, writes its [`Usage`] to `out` and
/// returns its exit status.
pub fn wrap(argv: &[String], out: &Path) -> Result<ExitStatus> {
    let Some((program, args)) = argv.split_first() else {
        bail!("measure: no command");
    };
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("starting {program}"))?;
    let wall_secs = started.elapsed().as_secs_f64();
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let usage = Usage {
        wall_secs,
        user_secs: secs(ru.user_time()),
        sys_secs: secs(ru.system_time()),
        // Linux reports kilobytes.
        max_rss_bytes: u64::try_from(ru.max_rss()).unwrap_or(0) * 1024,
    };
    fs::write(out, serde_json::to_vec(&usage)?)?;
    Ok(status)
}

/// The benchmark's side: runs `argv` under the wrapper (this executable), with stdout and
/// stderr to `log`, and returns its [`Usage`]; a failing command is an error that names the
/// log.
pub fn measured(argv: &[String], envs: &[(&str, &str)], log: &Path) -> Result<Usage> {
    let out = log.with_extension("usage.json");
    let log_file = fs::File::create(log)?;
    let status = Command::new(std::env::current_exe()?)
        .arg("measure")
        .arg("--out")
        .arg(&out)
        .arg("--")
        .args(argv)
        .envs(envs.iter().copied())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()?;
    if !status.success() {
        let tail = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        bail!(
            "{} failed ({status}); log {}:\n{}",
            argv.join(" "),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(serde_json::from_slice(&fs::read(&out)?)?)
}

/// CPU seconds (user + system) a running process has used so far, from `/proc/PID/stat`.
pub fn process_cpu_secs(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("a /proc stat line without a command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3rd field of the line) ... utime (14th), stime (15th).
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("a short /proc stat line")?
            .parse::<u64>()? as f64)
    };
    let hz = clock_ticks();
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on; read through getconf to check.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// Bytes a file or directory tree occupies on disk (allocated blocks, not apparent sizes).
pub fn disk_usage(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut total = 0;
        for entry in fs::read_dir(path)? {
            total += disk_usage(&entry?.path())?;
        }
        Ok(total)
    } else {
        Ok(meta.blocks() * 512)
    }
}

/// The machine: CPU model, logical cores and memory, from `/proc`.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "{model}, {cores} logical cores, {:.1} GiB RAM",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}
