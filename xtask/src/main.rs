//! Project automation, run as `cargo xtask <command>`:
//!
//! * `ci`: everything CI checks: formatting, clippy with `-D warnings`, all tests (with a real
//!   regtest bitcoind, electrs and ElectrumX, provisioned as `node`, `electrs` and `electrumx`
//!   do, Debian's headless `chromium` for the CORS browser test and `tmux` for the terminal
//!   test), docs without warnings, vc-chash's dependency and no-default-features rules, every fuzz target for 20 s, the
//!   cross-check against the independent Python reference, and the demo.
//! * `deps`: only the dependency rules `ci` checks (vc-chash, vc-light, vc-source's backend
//!   features).
//! * `demo`: the main job on the embedded example chain: compute consensus hashes, prove an old
//!   block from the newest hash, verify the proof.
//! * `bench`: the benchmarks (`docs/benchmarks.md` records their figures); `bench sources`
//!   runs a regtest node provisioned as `node` does, `bench electrum` also an electrs, `bench
//!   serve` the proof server under 64 concurrent clients, `bench scale` the blk index, the
//!   Electrum header cache and a deep first block on a synthetic 900,000-block directory.
//! * `node`: provision a regtest-capable `bitcoind` (built once from source, cached outside the
//!   clone; `BITCOIND_EXE` overrides) and print its path.
//! * `electrs`: provision `electrs` for the Electrum tests (`cargo install electrs --locked` at a
//!   pinned version, cached outside the clone; `ELECTRS_EXE` overrides) and print its path.
//! * `electrumx`: provision ElectrumX, the second Electrum server of the tests (`e-x` and
//!   `plyvel` from PyPI in a virtualenv, cached outside the clone; `ELECTRUMX_EXE` overrides)
//!   and print its `electrumx_server`.
//! * `fuzz [--seconds N] [TARGET ...]`: run the cargo-fuzz targets (on stable, through
//!   `RUSTC_BOOTSTRAP=1`; cargo-fuzz installed if missing), seeded from the fixture chain.
//! * `guests`: build the WebAssembly guest modules (`guests/*`) from source with Debian's
//!   `rustc` for `wasm32-unknown-unknown` and print their directory (what `VC_VM_GUESTS` names
//!   for the vc-vm tests; `ci` builds them and sets it, with `VC_REQUIRE_WASM=1`).
//! * `fixture`: regenerate `testdata/regtest-chain/` (a small real regtest chain as Core stored
//!   it) with that node.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

mod chromium;
mod electrs;
mod electrumx;
mod fixture;
mod fuzz;
mod guests;
mod node;
mod ord;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root()?;
    env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("deps") => {
            step("vc-chash dependency rules", check_chash_dependencies)?;
            step("vc-light dependency rules", check_light_dependencies)?;
            step("vc-source backend features", check_source_features)
        }
        Some("demo") => release_cli(&root).and_then(|cli| demo(&root, &cli)),
        Some("bench") => bench(&args[1..]),
        Some("node") => node::provision().map(|exe| println!("{}", exe.display())),
        Some("electrs") => electrs::provision().map(|exe| println!("{}", exe.display())),
        Some("electrumx") => electrumx::provision().map(|exe| println!("{}", exe.display())),
        Some("fuzz") => fuzz::fuzz(&root, &args[1..]).map(|lines| {
            for l in lines {
                println!("{l}");
            }
        }),
        Some("fixture") => fixture::generate(&root, &node::provision()?),
        Some("guests") => guests::build(&root).map(|dir| println!("{}", dir.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | deps | demo | node | electrs | electrumx | fuzz [--seconds N] [TARGET ...] | fixture | guests | bench [chash | store | sources | electrum | serve | index | scale] [-- args]>"
            );
            bail!("unknown or missing command")
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(Path::to_path_buf)
        .context("xtask lives one level below the workspace root")
}

/// Runs a command, echoing it, and fails if it fails.
fn run<I, S>(program: &str, args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_env(program, args, &[])
}

fn run_with_env<I, S>(program: &str, args: I, envs: &[(&str, &str)]) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    eprintln!("$ {program} {}", shown.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(&args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting {program}"))?;
    ensure!(
        status.success(),
        "{program} {} failed: {status}",
        shown.join(" ")
    );
    Ok(())
}

fn output<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {program}"))?;
    ensure!(out.status.success(), "{program} failed: {}", out.status);
    Ok(String::from_utf8(out.stdout)?)
}

/// Installs the Debian `packages` that are missing when running as root (apt-get); otherwise
/// fails naming them, what needs them (`what`) and the environment variable (`exe_env`) that
/// points at an existing binary instead.
fn ensure_debian_packages(packages: &[&str], what: &str, exe_env: &str) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            output("dpkg-query", ["-W", "-f=${Status}", p])
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "{what} needs the Debian packages {missing:?}: run `sudo apt-get install {}`, \
             or set {exe_env} to an existing binary",
            missing.join(" ")
        );
    }
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    if run("apt-get", &args).is_err() {
        run("apt-get", ["update", "-q"])?;
        run("apt-get", &args)?;
    }
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("\n==> {name}");
    let start = Instant::now();
    f().with_context(|| format!("ci step '{name}'"))?;
    eprintln!("<== {name}: ok ({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}

fn ci(root: &Path) -> Result<()> {
    step("format", || run("cargo", ["fmt", "--all", "--check"]))?;
    step("clippy", || {
        run(
            "cargo",
            [
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    step("vc-chash dependency rules", check_chash_dependencies)?;
    step("vc-light dependency rules", check_light_dependencies)?;
    step("vc-source backend features", check_source_features)?;
    step("docs", || {
        run_with_env(
            "cargo",
            ["doc", "--workspace", "--no-deps", "--all-features"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    // One debug build of everything the tests run, the `virtualchain` binary included; the
    // steps below run that binary, so that nothing is built twice with other features.
    step("build the tests", || {
        run(
            "cargo",
            [
                "test",
                "--workspace",
                "--all-features",
                "--no-run",
                "--quiet",
            ],
        )
    })?;
    let cli = target_dir(root).join("debug").join("virtualchain");
    step("CLI reference (docs/cli.md) is current", || {
        check_cli_reference(root, &cli)
    })?;
    step("vc-chash on a no_std target", check_chash_no_std_target)?;
    step("packages carry only what builds from them", || {
        check_packages(root)
    })?;
    // The vc-vm tests run the guest modules, built from source (never skipped in CI); the
    // VM's fuzz target is seeded with them.
    let mut guests = PathBuf::new();
    step("guest modules", || {
        guests = guests::build(root)?;
        Ok(())
    })?;
    // Every fuzz target, briefly (issue 8: about 20 s each fits the CI budget).
    step("fuzz (20 s per target)", || {
        fuzz::fuzz(root, &["--seconds".into(), "20".into()]).map(|_| ())
    })?;
    step("reference cross-check", || {
        reference_cross_check(root, &cli)
    })?;
    step("demo", || demo(root, &cli))?;
    // README's main job: the names app over the committed fixture chain.
    step("names demo", || run(&cli.to_string_lossy(), ["demo"]))?;
    // Tests against a real node and a real electrs must run in CI, never skip: provision both
    // (cached after the first build) and make a missing one a failure.
    let mut bitcoind = PathBuf::new();
    step("bitcoind", || {
        bitcoind = node::provision()?;
        Ok(())
    })?;
    let mut electrs = PathBuf::new();
    step("electrs", || {
        electrs = electrs::provision()?;
        Ok(())
    })?;
    let mut electrumx = PathBuf::new();
    step("electrumx", || {
        electrumx = electrumx::provision()?;
        Ok(())
    })?;
    // The CORS test runs in a real browser: headless Chromium, never skipped in CI.
    let mut chromium = PathBuf::new();
    step("chromium", || {
        chromium = chromium::provision()?;
        Ok(())
    })?;
    // The progress bar's terminal test runs the binary under tmux, never skipped in CI.
    step("tmux", || {
        if output("tmux", ["-V"]).is_err() {
            ensure_debian_packages(&["tmux"], "the progress bar's terminal test", "PATH")?;
        }
        Ok(())
    })?;
    let mut totals = (0, 0);
    step("tests", || {
        let exe = bitcoind.to_string_lossy();
        let electrs_exe = electrs.to_string_lossy();
        let chromium_exe = chromium.to_string_lossy();
        let electrumx_exe = electrumx.to_string_lossy();
        let guests_dir = guests.to_string_lossy();
        let envs = [
            ("VC_VM_GUESTS", &*guests_dir),
            ("VC_REQUIRE_WASM", "1"),
            ("BITCOIND_EXE", &*exe),
            ("VC_REQUIRE_BITCOIND", "1"),
            ("ELECTRS_EXE", &*electrs_exe),
            ("VC_REQUIRE_ELECTRS", "1"),
            ("CHROMIUM_EXE", &*chromium_exe),
            ("VC_REQUIRE_CHROMIUM", "1"),
            ("VC_REQUIRE_TMUX", "1"),
            ("ELECTRUMX_EXE", &*electrumx_exe),
            ("VC_REQUIRE_ELECTRUMX", "1"),
        ];
        // The engine's differential campaign runs on its own, uncaptured, so that its
        // summary and its "N random scenarios equal a fresh index" line show.
        let campaign = "random_scenarios_equal_a_fresh_index";
        totals = cargo_test(
            &[
                "test",
                "--workspace",
                "--all-features",
                "--",
                "--skip",
                campaign,
            ],
            &envs,
        )?;
        let (passed, failed) = cargo_test(
            &[
                "test",
                "-p",
                "vc-engine",
                "--all-features",
                "--test",
                "campaign",
                "--",
                "--nocapture",
            ],
            &envs,
        )?;
        totals = (totals.0 + passed, totals.1 + failed);
        Ok(())
    })?;
    // The run's closing line: the whole suite's count.
    println!("tests: {} passed, {} failed", totals.0, totals.1);
    ensure!(totals.0 > 0, "no test ran");
    Ok(())
}

/// Runs `cargo test`, passing its output through, and returns the summed
/// `(passed, failed)` of every `test result:` line.
fn cargo_test(args: &[&str], envs: &[(&str, &str)]) -> Result<(u64, u64)> {
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test output")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                match (words.next().map(str::parse::<u64>), words.next()) {
                    (Some(Ok(n)), Some("passed")) => passed += n,
                    (Some(Ok(n)), Some("failed")) => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    ensure!(
        status.success(),
        "cargo test failed: {status} ({failed} failed)"
    );
    Ok((passed, failed))
}

/// docs/cli.md is what `virtualchain reference` prints: the reference cannot drift from the
/// command's definitions.
fn check_cli_reference(root: &Path, cli: &Path) -> Result<()> {
    let mut cmd = Command::new(cli);
    cmd.arg("reference");
    // The reference shows each option's variable; values set here must not leak into it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VIRTUALCHAIN_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().context("running `virtualchain reference`")?;
    ensure!(
        out.status.success(),
        "`virtualchain reference` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(root.join("docs/cli.md")).context("reading docs/cli.md")?;
    ensure!(
        committed == out.stdout,
        "docs/cli.md is out of date: regenerate it with \
         `cargo run -p virtualchain -- reference > docs/cli.md`"
    );
    Ok(())
}

/// Every publishable crate's package holds both licence files and no test, benchmark or
/// example that needs what a package cannot carry: the unpublished vc-testnode, or files of
/// the repository outside the crate (`../../testdata`).
fn check_packages(root: &Path) -> Result<()> {
    let crates = [
        "vc-chash",
        "vc-codec",
        "vc-source",
        "vc-store",
        "vc-engine",
        "vc-names",
        "vc-serve",
        "vc-light",
        "virtualchain",
        "vc-vm",
        "vc-vm-guest",
        "vc-contracts",
    ];
    for name in crates {
        let list = output("cargo", ["package", "--list", "--allow-dirty", "-p", name])?;
        let files: Vec<&str> = list.lines().map(str::trim).collect();
        for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
            ensure!(
                files.contains(&licence),
                "the {name} package has no {licence}"
            );
        }
        let dir = root.join("crates").join(name);
        for file in files.iter().filter(|f| {
            (f.starts_with("tests/") || f.starts_with("benches/") || f.starts_with("examples/"))
                && f.ends_with(".rs")
        }) {
            let text = fs::read_to_string(dir.join(file))
                .with_context(|| format!("reading {name}/{file}"))?;
            ensure!(
                !text.contains("vc_testnode") && !text.contains("\"../../testdata"),
                "{name}/{file} is packaged but needs vc-testnode or the repository's testdata/: \
                 exclude it in {name}/Cargo.toml"
            );
        }
        eprintln!("{name}: {} files, self-contained", files.len());
    }
    Ok(())
}

/// The host build alone does not prove that vc-chash is `no_std`: build it for a target without
/// `std` when the toolchain has one installed (rustup targets come from outside the package
/// registries, so CI cannot add one; it says so loudly instead).
fn check_chash_no_std_target() -> Result<()> {
    let installed = output("rustup", ["target", "list", "--installed"]).unwrap_or_default();
    let no_std = installed
        .lines()
        .map(str::trim)
        .find(|t| t.contains("-none") || *t == "wasm32-unknown-unknown" || t.starts_with("thumb"));
    match no_std {
        Some(target) => {
            run(
                "cargo",
                [
                    "build",
                    "-p",
                    "vc-chash",
                    "--no-default-features",
                    "--target",
                    target,
                ],
            )?;
            eprintln!("vc-chash builds for the no_std target {target}");
        }
        None => eprintln!(
            "SKIPPED: no no_std target is installed (rustup target list --installed: {}); \
             vc-chash's no_std build was checked on the host only. \
             `rustup target add thumbv7em-none-eabi` enables this check.",
            installed.split_whitespace().collect::<Vec<_>>().join(", ")
        ),
    }
    Ok(())
}

/// vc-chash must stay a light-client crate: no_std, and only sha2 and ripemd as normal deps.
fn check_chash_dependencies() -> Result<()> {
    run(
        "cargo",
        ["build", "-p", "vc-chash", "--no-default-features"],
    )?;
    let tree = output(
        "cargo",
        [
            "tree", "-p", "vc-chash", "-e", "normal", "--prefix", "depth", "--format", "{p}",
        ],
    )?;
    let direct: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.strip_prefix('1'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ensure!(
        direct.iter().all(|d| ["sha2", "ripemd"].contains(d)),
        "vc-chash has normal dependencies beyond sha2 and ripemd: {direct:?}"
    );
    for banned in [
        "bitcoin",
        "redb",
        "tokio",
        "reqwest",
        "electrum-client",
        "ureq",
    ] {
        ensure!(
            !tree.lines().any(|l| l
                .trim_start_matches(char::is_numeric)
                .starts_with(&format!("{banned} "))),
            "vc-chash depends on {banned}"
        );
    }
    eprintln!("vc-chash normal dependencies: {direct:?}");
    Ok(())
}

/// The light-client rule (DESIGN.md section 2): vc-light is vc-chash and a small blocking HTTP
/// client with TLS, so its normal dependencies hold no async runtime, server stack or database,
/// and its TLS is rustls on ring, not aws-lc (which needs a C/cmake toolchain).
fn check_light_dependencies() -> Result<()> {
    let crates = normal_crates(&["-p", "vc-light"])?;
    for banned in ["tokio", "axum", "hyper", "redb", "aws-lc-rs", "aws-lc-sys"] {
        ensure!(
            !crates.iter().any(|c| c == banned),
            "vc-light depends on {banned} (`cargo tree -p vc-light -e normal -i {banned}` shows how)"
        );
    }
    eprintln!(
        "vc-light: {} crates, none of tokio, axum, hyper, redb, aws-lc",
        crates.len()
    );
    Ok(())
}

/// The crates in `cargo tree -e normal` of `args` (a package, its features), by name, once each.
fn normal_crates(args: &[&str]) -> Result<Vec<String>> {
    let mut all = vec![
        "tree", "-e", "normal", "--prefix", "none", "--format", "{p}",
    ];
    all.extend_from_slice(args);
    let tree = output("cargo", &all)?;
    let mut crates: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    crates.sort_unstable();
    crates.dedup();
    Ok(crates)
}

/// vc-source's backends are features: each builds alone, TLS (rustls, ring) comes only with
/// `electrum`, and `blk` and `mem` compile no HTTP or Electrum client at all.
fn check_source_features() -> Result<()> {
    const TLS: [&str; 5] = ["rustls", "ring", "aws-lc-rs", "aws-lc-sys", "webpki-roots"];
    let rules: [(&str, &[&str]); 4] = [
        ("core", &["electrum-client"]),
        ("blk", &["ureq", "electrum-client"]),
        ("mem", &["ureq", "electrum-client"]),
        ("electrum", &["ureq"]),
    ];
    for (feature, banned) in rules {
        let args = [
            "-p",
            "vc-source",
            "--no-default-features",
            "--features",
            feature,
        ];
        run("cargo", ["check"].iter().chain(&args))?;
        let crates = normal_crates(&args)?;
        let no_tls: &[&str] = if feature == "electrum" { &[] } else { &TLS };
        for b in banned.iter().chain(no_tls) {
            ensure!(
                !crates.iter().any(|c| c == b),
                "vc-source with only `{feature}` depends on {b} (`cargo tree {} -e normal -i {b}` \
                 shows how)",
                args.join(" ")
            );
        }
        eprintln!("vc-source with only `{feature}`: {} crates", crates.len());
    }
    Ok(())
}

fn python() -> Result<&'static str> {
    if Command::new("python3").arg("--version").output().is_ok() {
        return Ok("python3");
    }
    // A fresh Debian machine run as root: install it; otherwise say what is missing.
    if is_root() {
        run("apt-get", ["update", "-q"])?;
        run("apt-get", ["install", "-y", "-q", "python3"])?;
        return Ok("python3");
    }
    bail!("python3 is needed for the reference cross-check: install it (apt-get install python3)")
}

fn is_root() -> bool {
    output("id", ["-u"])
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// The cargo target directory of the workspace at `root`: `CARGO_TARGET_DIR` (relative to
/// `root`, where cargo runs), else `target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    root.join(
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from),
    )
}

/// The release `virtualchain` binary of the workspace at `root`, built first.
fn release_cli(root: &Path) -> Result<PathBuf> {
    run(
        "cargo",
        ["build", "--release", "--quiet", "-p", "virtualchain"],
    )?;
    Ok(target_dir(root).join("release").join("virtualchain"))
}

/// `virtualchain chash compute` must agree line for line with the independent Python reference
/// (`docs/reference/chash_reference.py`) on long random chains, in every scheme (v3 with random
/// state changes, deletions included); and the reference must verify, and reproduce byte for
/// byte, the state proofs that `virtualchain chash state-prove` makes, and refuse every one-byte
/// change of them.
fn reference_cross_check(root: &Path, cli: &Path) -> Result<()> {
    let py = python()?;
    let bin = cli.to_str().context("binary path")?;
    let reference = root.join("docs/reference/chash_reference.py");
    let reference = reference.to_str().context("reference path")?;
    // The reference falls back to its own RIPEMD-160 where OpenSSL 3 hides it: check that.
    run(py, [reference, "selftest"])?;
    let dir = root.join("target/xtask-reference");
    fs::create_dir_all(&dir)?;
    let chains: [(&[&str], u64, u64, u64); 6] = [
        (&["legacy", "v2"], 0, 3_000, 1),
        (&["legacy", "v2"], 373_601, 40_000, 2),
        (&["legacy", "v2"], 7, 1, 3),
        (&["v3"], 0, 3_000, 4),
        (&["v3"], 373_601, 20_000, 5),
        (&["v3"], 7, 1, 6),
    ];
    for (schemes, first, blocks, seed) in chains {
        let with_state = schemes == ["v3"];
        let input = dir.join(format!("chain-{seed}.jsonl"));
        let input = input.to_str().context("input path")?;
        let (first, blocks_s, seed_s) = (first.to_string(), blocks.to_string(), seed.to_string());
        let mut generate = vec![reference, "generate", "--first-block", &first];
        generate.extend(["--blocks", &blocks_s, "--seed", &seed_s]);
        if with_state {
            generate.push("--state");
        }
        fs::write(input, output(py, generate)?)?;
        for scheme in schemes {
            let args = [
                "--scheme",
                scheme,
                "--first-block",
                &first,
                "--input",
                input,
            ];
            let ours = output(bin, ["chash", "compute"].iter().chain(&args))?;
            let theirs = output(py, [reference, "compute"].iter().chain(&args))?;
            ensure!(
                ours.lines().count() as u64 == blocks,
                "expected {blocks} lines of output"
            );
            if let Some((i, (a, b))) = ours
                .lines()
                .zip(theirs.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
            {
                bail!(
                    "{scheme} chain {seed}: line {} differs:\n  ours:      {a}\n  reference: {b}",
                    i + 1
                );
            }
            ensure!(
                ours == theirs,
                "{scheme} chain {seed}: outputs differ in length"
            );
            let what = if with_state {
                " with state changes"
            } else {
                ""
            };
            eprintln!("{scheme}: {blocks} blocks{what} from F={first} agree with the reference");
        }
    }
    state_proof_cross_check(py, bin, reference, &dir, 0, "chain-4.jsonl")
}

/// `virtualchain chash state-prove` answers questions the reference picks over a v3 chain
/// (present and absent keys, at the trusted height and below it); the reference checks each
/// proof (see `state-check` in `chash_reference.py`).
fn state_proof_cross_check(
    py: &str,
    bin: &str,
    reference: &str,
    dir: &Path,
    first: u64,
    chain: &str,
) -> Result<()> {
    let input = dir.join(chain);
    let input = input.to_str().context("input path")?;
    let first = first.to_string();
    let questions = output(
        py,
        [
            reference,
            "state-questions",
            "--first-block",
            &first,
            "--input",
            input,
            "--count",
            "60",
            "--seed",
            "7",
        ],
    )?;
    let questions_path = dir.join("state-questions.jsonl");
    fs::write(&questions_path, &questions)?;
    let proofs = dir.join("state-proofs");
    fs::create_dir_all(&proofs)?;
    for (i, line) in questions.lines().enumerate() {
        let q: serde_json::Value = serde_json::from_str(line)?;
        let field = |name: &str| -> Result<String> {
            Ok(match &q[name] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => bail!("question {i}: {name} is {other}"),
            })
        };
        let out = proofs.join(format!("q-{i}.bin"));
        output(
            bin,
            [
                "chash",
                "state-prove",
                "--first-block",
                &first,
                "--input",
                input,
                "--trusted",
                &field("trusted")?,
                "--height",
                &field("height")?,
                "--namespace",
                &field("ns")?,
                "--key",
                &field("key")?,
                "--out",
                out.to_str().context("proof path")?,
            ],
        )?;
    }
    let summary = output(
        py,
        [
            reference,
            "state-check",
            "--first-block",
            &first,
            "--input",
            input,
            "--questions",
            questions_path.to_str().context("questions path")?,
            "--proofs",
            proofs.to_str().context("proofs path")?,
        ],
    )?;
    eprint!("v3 ({chain}): {summary}");
    Ok(())
}

/// The main job on the embedded example chain, run with the `virtualchain` binary `cli`.
fn demo(root: &Path, cli: &Path) -> Result<()> {
    let bin = cli.to_str().context("binary path")?;
    let input = root.join("examples/demo-chain.jsonl");
    let input = input.to_str().context("input path")?;
    let dir = root.join("target/xtask-demo");
    fs::create_dir_all(&dir)?;
    for scheme in ["legacy", "v2"] {
        eprintln!(
            "\n-- {scheme}: consensus hashes of the demo chain (first block 100), last 3 lines:"
        );
        let hashes = output(
            bin,
            [
                "chash",
                "compute",
                "--scheme",
                scheme,
                "--first-block",
                "100",
                "--input",
                input,
            ],
        )?;
        for line in hashes
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            println!("{line}");
        }
        let tip = hashes.lines().last().context("empty demo output")?;
        let mut fields = tip.split_whitespace();
        let (n, ch) = (
            fields.next().context("height")?,
            fields.nth(1).context("consensus hash")?,
        );
        let proof = dir.join(format!("{scheme}.proof"));
        let proof = proof.to_str().context("proof path")?;
        run(
            bin,
            [
                "chash",
                "prove",
                "--scheme",
                scheme,
                "--first-block",
                "100",
                "--trusted",
                n,
                "--height",
                "105",
                "--input",
                input,
                "--out",
                proof,
            ],
        )?;
        let size = fs::metadata(proof)?.len();
        eprintln!(
            "-- {scheme}: proof of block 105 from trusted CH({n}) = {ch}: {size} bytes; verifying:"
        );
        let trusted = format!("{n}:{ch}");
        let records = output(
            bin,
            [
                "chash",
                "verify",
                "--scheme",
                scheme,
                "--first-block",
                "100",
                "--trusted",
                &trusted,
                "--height",
                "105",
                "--proof",
                proof,
            ],
        )?;
        println!("verified records of block 105 ({scheme}):");
        for r in records.lines() {
            println!("  {r}");
            if let Some(text) = ascii(r) {
                println!("    = {text:?}");
            }
        }
        ensure!(!records.is_empty(), "the demo's block 105 has records");
    }
    Ok(())
}

/// The text of a hex record when it is printable ASCII.
fn ascii(hex: &str) -> Option<String> {
    let text = String::from_utf8(vc_chash::hex::decode(hex).ok()?).ok()?;
    text.chars()
        .all(|c| c.is_ascii_graphic() || c == ' ')
        .then_some(text)
}

/// The benchmark suites: name, package, bench target (criterion, except `sources`, whose runs
/// each read a whole chain from a live node and report medians themselves).
const BENCHES: &[(&str, &str, &str)] = &[
    ("chash", "vc-chash", "chash"),
    ("store", "vc-store", "store"),
    ("sources", "vc-source", "sources"),
    ("electrum", "vc-source", "electrum"),
    ("serve", "vc-serve", "serve"),
];

/// `cargo xtask bench [SUITE] [-- CRITERION ARGS]`: every suite, or the one named.
fn bench(args: &[String]) -> Result<()> {
    let (suite, extra) = match args.split_first() {
        Some((name, rest)) if !name.starts_with('-') => (Some(name.as_str()), rest),
        _ => (None, args),
    };
    // `cargo xtask bench -- ARGS` passes the separator through; criterion must not see it.
    let extra = match extra.split_first() {
        Some((sep, rest)) if sep == "--" => rest,
        _ => extra,
    };
    let selected: Vec<_> = BENCHES
        .iter()
        .filter(|(name, _, _)| suite.is_none_or(|s| s == *name))
        .collect();
    let index = suite.is_none_or(|s| s == INDEX_SUITE);
    let scale = suite.is_none_or(|s| s == SCALE_SUITE);
    if selected.is_empty() && !index && !scale {
        let mut names: Vec<&str> = BENCHES.iter().map(|b| b.0).collect();
        names.extend([INDEX_SUITE, SCALE_SUITE]);
        bail!("unknown benchmark suite {suite:?}; choose one of {names:?}");
    }
    for (name, package, target) in selected {
        let mut cmd = vec!["bench", "-p", package, "--bench", target, "--"];
        cmd.extend(extra.iter().map(String::as_str));
        if *name == "sources" {
            // Runs a real node: provision it, and fail rather than skip without one.
            let exe = node::provision()?;
            let exe = exe.to_string_lossy();
            run_with_env(
                "cargo",
                cmd,
                &[("BITCOIND_EXE", &exe), ("VC_REQUIRE_BITCOIND", "1")],
            )?;
        } else if *name == "electrum" {
            let exe = node::provision()?;
            let exe = exe.to_string_lossy();
            let electrs = electrs::provision()?;
            let electrs = electrs.to_string_lossy();
            run_with_env(
                "cargo",
                cmd,
                &[
                    ("BITCOIND_EXE", &exe),
                    ("VC_REQUIRE_BITCOIND", "1"),
                    ("ELECTRS_EXE", &electrs),
                    ("VC_REQUIRE_ELECTRS", "1"),
                ],
            )?;
        } else {
            run("cargo", cmd)?;
        }
    }
    if index {
        // Arguments after `--` are criterion's unless the suite was named.
        bench_index(if suite.is_some() { extra } else { &[] })?;
    }
    if scale {
        bench_scale(if suite.is_some() { extra } else { &[] })?;
    }
    Ok(())
}

/// Mainnet scale, simulated: `vc-bench scale` (see `crates/vc-bench/src/scale.rs`).
const SCALE_SUITE: &str = "scale";

/// `cargo xtask bench scale [-- VC-BENCH SCALE ARGS]`: builds the release `vc-bench` and runs
/// `vc-bench scale` (generating the synthetic directory once, cached), which rewrites its part
/// of `docs/benchmarks.md` and the `scale` member of `docs/benchmarks.json`. The rollback
/// figure is quoted from criterion's last `deep_rollback` run (`cargo xtask bench store`).
fn bench_scale(extra: &[String]) -> Result<()> {
    run("cargo", ["build", "--release", "-p", "vc-bench"])?;
    let cache = vc_testnode::cache_root().context("HOME is not set; set VC_CACHE_DIR")?;
    let cache = cache.to_string_lossy().into_owned();
    let target = target_dir(&workspace_root()?);
    let criterion = target.join("criterion").to_string_lossy().into_owned();
    let mut args = vec![
        "scale",
        "--cache",
        &cache,
        "--criterion",
        &criterion,
        "--markdown",
        "docs/benchmarks.md",
        "--json",
        "docs/benchmarks.json",
    ];
    args.extend(extra.iter().map(String::as_str));
    let bench = target.join("release").join("vc-bench");
    run(&bench.to_string_lossy(), args)
}

/// The end-to-end suite: not criterion, but `vc-bench run` (see `crates/vc-bench`).
const INDEX_SUITE: &str = "index";

/// `cargo xtask bench index [-- VC-BENCH RUN ARGS]`: provisions bitcoind and ord, builds the
/// guest modules (for the part `wasm`), the release `virtualchain` and `vc-bench`, and runs the end-to-end benchmark (the scheme
/// comparison of `vc-bench schemes` included, as its part `schemes`), which rewrites the
/// generated parts of `docs/benchmarks.md` and `docs/benchmarks.json`.
fn bench_index(extra: &[String]) -> Result<()> {
    let bitcoind = node::provision()?;
    // `-- --skip ord` (or naive,ord) runs without provisioning ord.
    let skips_ord = extra
        .windows(2)
        .any(|w| w[0] == "--skip" && w[1].split(',').any(|p| p == "ord"));
    let ord = if skips_ord {
        None
    } else {
        Some(ord::provision()?)
    };
    // `-- --skip wasm` runs without building the guest modules.
    let skips_wasm = extra
        .windows(2)
        .any(|w| w[0] == "--skip" && w[1].split(',').any(|p| p == "wasm"));
    let names_wasm = if skips_wasm {
        None
    } else {
        Some(guests::build(&workspace_root()?)?.join("names-bench.wasm"))
    };
    run(
        "cargo",
        ["build", "--release", "-p", "virtualchain", "-p", "vc-bench"],
    )?;
    let cache = vc_testnode::cache_root().context("HOME is not set; set VC_CACHE_DIR")?;
    let release = target_dir(&workspace_root()?).join("release");
    let (cache, cli) = (
        cache.to_string_lossy().into_owned(),
        release.join("virtualchain").to_string_lossy().into_owned(),
    );
    let ord = ord.map(|o| o.to_string_lossy().into_owned());
    let mut args = vec![
        "run",
        "--cache",
        &cache,
        "--cli",
        &cli,
        "--markdown",
        "docs/benchmarks.md",
        "--json",
        "docs/benchmarks.json",
    ];
    if let Some(ord) = &ord {
        args.extend(["--ord", ord.as_str()]);
    }
    let names_wasm = names_wasm.map(|p| p.to_string_lossy().into_owned());
    if let Some(module) = &names_wasm {
        args.extend(["--names-wasm", module.as_str()]);
    }
    args.extend(extra.iter().map(String::as_str));
    let bench = release.join("vc-bench");
    run_with_env(
        &bench.to_string_lossy(),
        args,
        &[("BITCOIND_EXE", &bitcoind.to_string_lossy())],
    )
}
