//! `cargo xtask electrs`: provision an `electrs` for the Electrum tests.
//!
//! DESIGN section 4: `cargo install electrs --locked` at a pinned version (it needs
//! `libclang-dev` for its RocksDB bindings), once per machine, cached outside the clone next to
//! bitcoind (`$VC_CACHE_DIR/electrs/VERSION`), with the build directory kept in the cache too so
//! an interrupted build resumes. `ELECTRS_EXE` overrides all of it.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{output, run_with_env};

use vc_testnode::electrs::{ELECTRS_EXE, ELECTRS_VERSION, electrs_install_dir};

/// Debian packages the build needs beyond a C++ compiler: bindgen's libclang.
const BUILD_PACKAGES: &[&str] = &["libclang-dev", "g++", "make"];

/// `electrs`'s path: `ELECTRS_EXE`, or the cached install, installed first if missing.
pub fn provision() -> Result<PathBuf> {
    if let Some(exe) = env::var_os(ELECTRS_EXE) {
        let exe = PathBuf::from(exe);
        check_runs(&exe).context("ELECTRS_EXE is set but does not run")?;
        eprintln!("electrs: {} ({ELECTRS_EXE})", exe.display());
        return Ok(exe);
    }
    let root = electrs_install_dir().context("HOME is not set; set VC_CACHE_DIR")?;
    let exe = root.join("bin/electrs");
    if exe.exists() && check_runs(&exe).is_ok() {
        eprintln!("electrs: {} (cached)", exe.display());
        return Ok(exe);
    }
    crate::ensure_debian_packages(BUILD_PACKAGES, "building electrs", ELECTRS_EXE)?;
    let target = vc_testnode::cache_root()
        .context("HOME is not set; set VC_CACHE_DIR")?
        .join("build/electrs-target");
    eprintln!(
        "installing electrs {ELECTRS_VERSION} into {} (about 14 minutes on 2 cores, once per machine)",
        root.display()
    );
    let (root_s, target_s) = (root.to_string_lossy(), target.to_string_lossy());
    run_with_env(
        "cargo",
        [
            "install",
            "electrs",
            "--locked",
            "--version",
            &format!("={ELECTRS_VERSION}"),
            "--root",
            &root_s,
        ],
        &[
            ("CARGO_TARGET_DIR", &target_s),
            // Unoptimised: the tests' electrs indexes a few hundred regtest blocks, and a
            // brand-new CI machine then compiles RocksDB's C++ about a third faster
            // (db_impl.cc: 21.7 s at -O0 against 34.3 s at -O2, measured alternately).
            ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"),
        ],
    )?;
    check_runs(&exe)?;
    eprintln!("electrs: {} (built)", exe.display());
    Ok(exe)
}

fn check_runs(exe: &Path) -> Result<()> {
    let version = output(&exe.to_string_lossy(), ["--version"])?;
    ensure!(
        version.contains(ELECTRS_VERSION),
        "unexpected --version output: {version}"
    );
    Ok(())
}
