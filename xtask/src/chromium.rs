//! Headless Chromium for the CORS browser test (`crates/virtualchain/tests/browser.rs`):
//! `CHROMIUM_EXE`, else Debian's `chromium` package, installed with apt-get when running as
//! root.

use std::env;
use std::path::PathBuf;

use anyhow::{Result, ensure};

/// Where Debian's package puts the browser.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

/// `chromium`'s path: `CHROMIUM_EXE`, or Debian's package, installed first if missing.
pub fn provision() -> Result<PathBuf> {
    if let Some(exe) = env::var_os("CHROMIUM_EXE") {
        eprintln!("chromium: {} (CHROMIUM_EXE)", PathBuf::from(&exe).display());
        return Ok(exe.into());
    }
    crate::ensure_debian_packages(&["chromium"], "the CORS browser test", "CHROMIUM_EXE")?;
    let exe = PathBuf::from(DEBIAN_CHROMIUM);
    ensure!(
        exe.is_file(),
        "the chromium package has no {DEBIAN_CHROMIUM}"
    );
    eprintln!("chromium: {}", exe.display());
    Ok(exe)
}
