//! `cargo xtask electrumx`: provision an ElectrumX for the Electrum tests, the second server
//! implementation next to electrs.
//!
//! spesmilo's `e-x` from PyPI at a pinned version with `plyvel` (LevelDB; its manylinux wheels
//! carry LevelDB, so nothing is compiled), in a virtualenv cached outside the clone next to
//! bitcoind and electrs (`$VC_CACHE_DIR/electrumx/VERSION`). Python 3 with `venv` must be
//! there; as root, xtask installs `python3-venv` with apt-get when it is missing.
//! `ELECTRUMX_EXE` (an `electrumx_server`) overrides all of it.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{output, run};

use vc_testnode::electrumx::{
    ELECTRUMX_EXE, ELECTRUMX_VERSION, PLYVEL_VERSION, electrumx_install_dir,
};

/// Debian packages for a virtualenv.
const PACKAGES: &[&str] = &["python3", "python3-venv"];

/// `electrumx_server`'s path: `ELECTRUMX_EXE`, or the cached virtualenv, created first if
/// missing.
pub fn provision() -> Result<PathBuf> {
    if let Some(exe) = env::var_os(ELECTRUMX_EXE) {
        let exe = PathBuf::from(exe);
        ensure!(exe.exists(), "ELECTRUMX_EXE is set to a missing file");
        eprintln!("electrumx: {} ({ELECTRUMX_EXE})", exe.display());
        return Ok(exe);
    }
    let root = electrumx_install_dir().context("HOME is not set; set VC_CACHE_DIR")?;
    let exe = root.join("bin/electrumx_server");
    if exe.exists() && check_installed(&root).is_ok() {
        eprintln!("electrumx: {} (cached)", exe.display());
        return Ok(exe);
    }
    if output("python3", ["-m", "venv", "--help"]).is_err() {
        crate::ensure_debian_packages(PACKAGES, "installing ElectrumX", ELECTRUMX_EXE)?;
    }
    eprintln!(
        "installing ElectrumX {ELECTRUMX_VERSION} into {} (a virtualenv, about a minute, once per machine)",
        root.display()
    );
    let root_s = root.to_string_lossy();
    run("python3", ["-m", "venv", "--clear", &root_s])?;
    let pip = root.join("bin/pip");
    run(
        &pip.to_string_lossy(),
        [
            "install",
            "-q",
            "--disable-pip-version-check",
            &format!("e-x=={ELECTRUMX_VERSION}"),
            &format!("plyvel=={PLYVEL_VERSION}"),
        ],
    )?;
    check_installed(&root)?;
    eprintln!("electrumx: {} (installed)", exe.display());
    Ok(exe)
}

/// Checks that the virtualenv at `root` imports ElectrumX at the pinned version and plyvel.
fn check_installed(root: &Path) -> Result<()> {
    let python = root.join("bin/python");
    let version = output(
        &python.to_string_lossy(),
        ["-c", "import electrumx, plyvel; print(electrumx.version)"],
    )?;
    ensure!(
        version.contains(ELECTRUMX_VERSION),
        "unexpected ElectrumX version: {version}"
    );
    Ok(())
}
