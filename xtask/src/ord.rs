//! `cargo xtask bench index` needs ord, the end-to-end benchmark's peer.
//!
//! `cargo install ord --locked` at a pinned version, once per machine, cached outside the clone
//! (`$VC_CACHE_DIR/ord/VERSION`), with its build directory in the cache too so an interrupted
//! build resumes. `ORD_EXE` overrides it. ord is only for the benchmark: CI never builds it.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{output, run_with_env};

/// The pinned ord release (the newest on crates.io when the benchmark was written; its
/// rust-version is the toolchain's).
pub const ORD_VERSION: &str = "0.29.1";

/// `ord`'s path: `ORD_EXE`, or the cached install, installed first if missing.
pub fn provision() -> Result<PathBuf> {
    if let Some(exe) = env::var_os("ORD_EXE") {
        let exe = PathBuf::from(exe);
        check_runs(&exe, None).context("ORD_EXE is set but does not run")?;
        eprintln!("ord: {} (ORD_EXE)", exe.display());
        return Ok(exe);
    }
    let cache = vc_testnode::cache_root().context("HOME is not set; set VC_CACHE_DIR")?;
    let root = cache.join("ord").join(ORD_VERSION);
    let exe = root.join("bin/ord");
    if exe.exists() && check_runs(&exe, Some(ORD_VERSION)).is_ok() {
        eprintln!("ord: {} (cached)", exe.display());
        return Ok(exe);
    }
    let target = cache.join("build/ord");
    eprintln!(
        "installing ord {ORD_VERSION} into {} (about 20 minutes on 2 cores, once per machine)",
        root.display()
    );
    let (root_s, target_s) = (root.to_string_lossy(), target.to_string_lossy());
    run_with_env(
        "cargo",
        [
            "install",
            "ord",
            "--locked",
            "--version",
            &format!("={ORD_VERSION}"),
            "--root",
            &root_s,
        ],
        &[("CARGO_TARGET_DIR", &target_s)],
    )?;
    check_runs(&exe, Some(ORD_VERSION))?;
    eprintln!("ord: {} (built)", exe.display());
    Ok(exe)
}

fn check_runs(exe: &Path, version: Option<&str>) -> Result<()> {
    let out = output(&exe.to_string_lossy(), ["--version"])?;
    ensure!(out.starts_with("ord"), "unexpected --version output: {out}");
    if let Some(v) = version {
        ensure!(out.contains(v), "expected ord {v}, found {out}");
    }
    Ok(())
}
