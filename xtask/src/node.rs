//! `cargo xtask node`: provision a wallet-less `bitcoind` for tests and benchmarks.
//!
//! DESIGN section 4: Debian ships no bitcoind, so it is built from the Bitcoin Core source that
//! the crates.io package `libbitcoinkernel-sys` vendors, once per machine, and cached outside the
//! clone (`$VC_CACHE_DIR`, else `$XDG_CACHE_HOME/virtualchain-rs`, else
//! `~/.cache/virtualchain-rs`), keyed by the package version. `BITCOIND_EXE` overrides all of it.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{output, run};

use vc_testnode::{KERNEL_PACKAGE, KERNEL_VERSION};

/// Debian packages the build needs.
const BUILD_PACKAGES: &[&str] = &[
    "cmake",
    "g++",
    "make",
    "libboost-dev",
    "libevent-dev",
    "pkg-config",
];

fn cache_dir() -> Result<PathBuf> {
    vc_testnode::cache_root().context("HOME is not set; set VC_CACHE_DIR")
}

fn install_dir() -> Result<PathBuf> {
    vc_testnode::bitcoind_install_dir().context("HOME is not set; set VC_CACHE_DIR")
}

/// `bitcoind`'s path: `BITCOIND_EXE`, or the cached build, built first if missing.
pub fn provision() -> Result<PathBuf> {
    if let Some(exe) = env::var_os("BITCOIND_EXE") {
        let exe = PathBuf::from(exe);
        check_runs(&exe).context("BITCOIND_EXE is set but does not run")?;
        eprintln!("bitcoind: {} (BITCOIND_EXE)", exe.display());
        return Ok(exe);
    }
    let bin = install_dir()?.join("bin");
    let exe = bin.join("bitcoind");
    if exe.exists() && check_runs(&exe).is_ok() {
        eprintln!("bitcoind: {} (cached)", exe.display());
        return Ok(exe);
    }
    build(&bin)?;
    check_runs(&exe)?;
    eprintln!("bitcoind: {} (built)", exe.display());
    Ok(exe)
}

fn check_runs(exe: &Path) -> Result<()> {
    let version = output(&exe.to_string_lossy(), ["-version"])?;
    ensure!(
        version.contains("Bitcoin Core"),
        "unexpected -version output: {version}"
    );
    Ok(())
}

/// Lets cargo download the package into its registry cache (without compiling it) and returns
/// the vendored Bitcoin Core source directory.
fn kernel_source() -> Result<PathBuf> {
    let dir = cache_dir()?.join("kernel-source-fetch");
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"kernel-source-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\n{KERNEL_PACKAGE} = \"={KERNEL_VERSION}\"\n\n[workspace]\n"
        ),
    )?;
    fs::write(dir.join("src/lib.rs"), "")?;
    let manifest = dir.join("Cargo.toml");
    let meta = output(
        "cargo",
        [
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            &manifest.to_string_lossy(),
        ],
    )?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    let path = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == KERNEL_PACKAGE && p["version"] == KERNEL_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .context("cargo metadata does not list the kernel package")?;
    let source = Path::new(path)
        .parent()
        .context("manifest path has no parent")?
        .join("bitcoin");
    ensure!(
        source.join("CMakeLists.txt").exists(),
        "no Bitcoin Core source at {}",
        source.display()
    );
    Ok(source)
}

fn build(bin: &Path) -> Result<()> {
    crate::ensure_debian_packages(BUILD_PACKAGES, "building bitcoind", "BITCOIND_EXE")?;
    let source = kernel_source()?;
    let build = cache_dir()?
        .join("build")
        .join(format!("bitcoind-kernel-{KERNEL_VERSION}"));
    fs::create_dir_all(&build)?;
    eprintln!(
        "building bitcoind from {} in {} (about 10 minutes on 2 cores, once per machine)",
        source.display(),
        build.display()
    );
    let (src, dst) = (source.to_string_lossy(), build.to_string_lossy());
    run(
        "cmake",
        [
            "-S",
            &src,
            "-B",
            &dst,
            "-DBUILD_DAEMON=ON",
            "-DBUILD_CLI=ON",
            "-DENABLE_WALLET=OFF",
            "-DBUILD_GUI=OFF",
            "-DBUILD_TESTS=OFF",
            "-DBUILD_BENCH=OFF",
            "-DBUILD_FUZZ_BINARY=OFF",
            "-DBUILD_KERNEL_LIB=OFF",
            "-DBUILD_UTIL_CHAINSTATE=OFF",
            "-DENABLE_IPC=OFF",
            "-DWITH_ZMQ=OFF",
            "-DWITH_EMBEDDED_ASMAP=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
            // -O1 rather than Core's -O2: the tests' node mines and validates a few hundred
            // tiny regtest blocks, and a brand-new CI machine compiles about a quarter faster
            // (validation.cpp: 21.6 s at -O1 against 30.6 s at -O2, measured alternately).
            "-DCMAKE_CXX_FLAGS_RELEASE=-O1",
            "-DWITH_CCACHE=OFF",
        ],
    )?;
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    run(
        "cmake",
        [
            "--build",
            &dst,
            "-j",
            &jobs,
            "--target",
            "bitcoind",
            "bitcoin-cli",
        ],
    )?;
    // Install by copy + rename so that a stopped build never leaves a half-written binary.
    fs::create_dir_all(bin)?;
    for name in ["bitcoind", "bitcoin-cli"] {
        let tmp = bin.join(format!(".{name}.partial"));
        fs::copy(build.join("bin").join(name), &tmp)
            .with_context(|| format!("copying {name} from the build"))?;
        fs::rename(&tmp, bin.join(name))?;
    }
    Ok(())
}
