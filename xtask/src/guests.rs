//! `cargo xtask guests`: builds the WebAssembly guest modules (`guests/*`, on the
//! `vc-vm-guest` SDK) from source and prints the directory they are in; the vc-vm tests read
//! them from `VC_VM_GUESTS`.
//!
//! The rustup toolchain here has no `wasm32-unknown-unknown` target, and none can be
//! downloaded; Debian's `rustc` (1.63) with `libstd-rust-dev-wasm32` has it, and is installed
//! with apt-get when missing (as root), with `lld` for its linker `rust-lld`. `VC_GUEST_RUSTC`
//! names another compiler that has the target. The SDK and the guests need nothing but core and alloc, so plain `rustc` calls
//! build them: the SDK as an rlib, each guest as a `cdylib` linked against it. Rust 1.63 still
//! wants `default_alloc_error_handler` (stable since 1.68) for a `no_std` module that
//! allocates: it is turned on from the command line, with `RUSTC_BOOTSTRAP=1`, so that the
//! sources stay plain stable Rust.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::{ensure_debian_packages, run_with_env};

/// Debian's compiler, which has the wasm32 target once `libstd-rust-dev-wasm32` (and `lld`, its
/// linker) is installed.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// The flags every guest crate is compiled with: optimized, aborting on panic, no symbols or
/// debug info (they would only enlarge the module, and its hash is its identity), bulk memory.
const FLAGS: &[&str] = &[
    "--edition",
    "2021",
    "--target",
    "wasm32-unknown-unknown",
    // The interpreter pays for every call and every instruction: full optimisation, one
    // codegen unit, and more inlining than LLVM's default (fewer, larger functions: a module
    // with half the functions to instantiate, and fewer calls run). On the names module this
    // took the bench chain from 0.46 to 0.52 of native in CPU time (`vc-bench wasm`,
    // docs/benchmarks.md) when every call instantiated the module; with instances reused, the
    // calls saved still count: LLVM's default threshold (or 300) runs 11-13% more of the VM's
    // instructions on the bench chain (callgrind), for 10% less fuel.
    "-C",
    "opt-level=3",
    "-C",
    "codegen-units=1",
    "-C",
    "llvm-args=-inline-threshold=1000",
    "-C",
    "panic=abort",
    "-C",
    "strip=symbols",
    "-C",
    "debuginfo=0",
    "-Zcrate-attr=feature(default_alloc_error_handler)",
    // Bulk memory (allowed by the VM, `docs/vm.md` section 1): copies and fills become one
    // `memory.copy`/`memory.fill` instead of a byte loop in the interpreter (a fifth of the
    // names guest's fuel).
    "-C",
    "target-feature=+bulk-memory",
];

/// Builds every guest into `<target dir>/guests/<name>.wasm` and returns that directory.
pub fn build(root: &Path) -> Result<PathBuf> {
    let rustc = match env::var_os("VC_GUEST_RUSTC") {
        Some(r) => PathBuf::from(r),
        None => {
            ensure_debian_packages(
                // `lld`: the wasm32 target links with `rust-lld`, which Debian's rustc only
                // suggests (a link to `lld-14` on bookworm).
                &["rustc", "libstd-rust-dev-wasm32", "lld"],
                "building the WebAssembly guests",
                "VC_GUEST_RUSTC",
            )?;
            PathBuf::from(DEBIAN_RUSTC)
        }
    };
    let rustc = rustc.to_string_lossy().into_owned();
    let out = crate::target_dir(root).join("guests");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let env = [("RUSTC_BOOTSTRAP", "1")];

    let sdk = out.join("libvc_vm_guest.rlib");
    let sdk_src = root.join("crates/vc-vm-guest/src/lib.rs");
    let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
    args.extend([
        "--crate-type".into(),
        "rlib".into(),
        "--crate-name".into(),
        "vc_vm_guest".into(),
        sdk_src.to_string_lossy().into_owned(),
        "-o".into(),
        sdk.to_string_lossy().into_owned(),
    ]);
    run_with_env(&rustc, &args, &env)?;

    let mut built = 0;
    let mut guests: Vec<_> = fs::read_dir(root.join("guests"))
        .context("reading guests/")?
        .collect::<Result<_, _>>()?;
    guests.sort_by_key(|e| e.file_name());
    for entry in guests {
        let src = entry.path().join("src/lib.rs");
        if !src.exists() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let wasm = out.join(format!("{name}.wasm"));
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--crate-type".into(),
            "cdylib".into(),
            // Across the SDK and the guest, so that the SDK's small functions inline too.
            "-C".into(),
            "lto=fat".into(),
            "--crate-name".into(),
            name.replace('-', "_"),
            // A small stack: the module's initial memory must fit its manifest's.
            "-C".into(),
            "link-arg=-zstack-size=65536".into(),
            "--extern".into(),
            format!("vc_vm_guest={}", sdk.display()),
            src.to_string_lossy().into_owned(),
            "-o".into(),
            wasm.to_string_lossy().into_owned(),
        ]);
        run_with_env(&rustc, &args, &env)?;
        eprintln!("guest {name}: {} bytes", fs::metadata(&wasm)?.len());
        built += 1;
    }
    ensure!(built > 0, "no guest under guests/");
    Ok(out)
}
