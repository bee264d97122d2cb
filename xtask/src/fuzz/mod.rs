//! `cargo xtask fuzz [--seconds N] [TARGET ...]`: run the cargo-fuzz targets in `fuzz/`.
//!
//! libFuzzer's instrumentation needs nightly compiler flags; on the stable toolchain this
//! machine has, `RUSTC_BOOTSTRAP=1` is the supported way to allow them (cargo-fuzz documents it).
//! cargo-fuzz itself is installed from crates.io at a pinned version when missing. The targets
//! are built once (AddressSanitizer, debug assertions) into a target directory in the machine
//! cache, so later runs rebuild only what changed. Each target starts from a seed corpus made
//! from the committed fixture chain (blocks, transactions, payloads, undo records, headers,
//! merkle branches), then runs for N seconds (default 20). A crash fails the command and
//! leaves its input in `fuzz/artifacts/TARGET/`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use vc_codec::carrier::{Carrier, CarrierRule};
use vc_source::BlockSource;
use vc_source::blk::{BlkConfig, BlkSource};

use crate::{output, run};

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
    let mut lines = Vec::new();
    for t in &targets {
        let corpus = dir.join("corpus").join(t);
        fs::create_dir_all(&corpus)?;
        let out = Command::new("cargo")
            .current_dir(&dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--target-dir", &target_dir, t])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
                "-rss_limit_mb=2048",
                "-timeout=10",
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
        lines.push(line);
    }
    Ok(lines)
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

/// Writes `bytes` as a seed of `target` (named by content, so reruns add nothing twice).
fn put(root: &Path, target: &str, bytes: &[u8]) -> Result<()> {
    let dir = root.join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir)?;
    let name = bitcoin::hashes::sha256::Hash::hash(bytes);
    fs::write(dir.join(format!("seed-{name}")), bytes)?;
    Ok(())
}

/// Seed corpora from the fixture chain (`testdata/regtest-chain`).
fn seed(root: &Path) -> Result<()> {
    let blocks_dir = root.join("testdata/regtest-chain/blocks");
    let source = BlkSource::open(BlkConfig::new(&blocks_dir, bitcoin::Network::Regtest))
        .context("opening the fixture chain")?;
    let tip = source.tip()?.height;
    let carrier = Carrier::new(CarrierRule::Legacy, 80).context("the legacy carrier")?;
    let mut headers = Vec::new();
    for h in 0..=tip {
        let hash = source.block_hash(h)?;
        let block = source.block(&hash)?.block;
        if h > 0 && h <= 64 {
            headers.extend(serialize(&block.header));
        }
        if block.txdata.len() < 2 {
            continue;
        }
        put(root, "block_body", &serialize(&block))?;
        let txids: Vec<bitcoin::Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        for (pos, tx) in block.txdata.iter().enumerate() {
            put(root, "tx_carrier", &serialize(tx))?;
            let mut m = txids[pos].to_byte_array().to_vec();
            m.extend((pos as u16).to_le_bytes());
            for s in vc_source::electrum::merkle::branch_for(&txids, pos) {
                m.extend(s);
            }
            put(root, "merkle_branch", &m)?;
            if let Ok(Some(c)) = carrier.extract(tx) {
                let data = c.data;
                put(root, "payload_decode", data)?;
                if data.starts_with(vc_names::wire::MAGIC) && data.len() > 2 {
                    put(root, "names_wire", &data[2..])?;
                }
            }
        }
    }
    put(root, "header_chain", &headers)?;
    // Fast-query proofs in both schemes over a synthetic 300-block history.
    for scheme in [vc_chash::Scheme::Legacy, vc_chash::Scheme::V2] {
        let mut history = vc_chash::history::MemoryHistory::new(scheme, 100);
        for h in 100u64..400 {
            let records: Vec<Vec<u8>> = (0..h % 3)
                .map(|i| format!("op-{h}-{i}").into_bytes())
                .collect();
            history.push_block(vc_chash::Hash256([h as u8; 32]), &records);
        }
        for (trusted, target) in [(399, 100), (399, 398), (250, 101), (120, 119)] {
            let proof = vc_chash::proof::prove(&history, trusted, target)
                .map_err(|e| anyhow::anyhow!("a seed proof: {e:?}"))?;
            put(root, "proof_verify", &proof.encode())?;
        }
    }
    // Undo records straight from the rev files (de-obfuscated with xor.dat), and the first
    // blk/rev pair as a blocks directory.
    let key = fs::read(blocks_dir.join("xor.dat")).unwrap_or_else(|_| vec![0; 8]);
    let plain = |name: &str| -> Result<Vec<u8>> {
        let mut bytes =
            fs::read(blocks_dir.join(name)).with_context(|| format!("reading {name}"))?;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= key.get(i % key.len().max(1)).copied().unwrap_or(0);
        }
        Ok(bytes)
    };
    let rev = plain("rev00000.dat")?;
    let mut at = 0;
    let mut records = 0;
    while at + 8 <= rev.len() && records < 200 {
        let size =
            u32::from_le_bytes([rev[at + 4], rev[at + 5], rev[at + 6], rev[at + 7]]) as usize;
        let (start, end) = (at + 8, at + 8 + size);
        if size == 0 || end + 32 > rev.len() {
            break;
        }
        put(root, "block_undo", &rev[start..end])?;
        at = end + 32;
        records += 1;
    }
    // The blk-file target reads files as Core wrote them (obfuscated with its own xor.dat,
    // which the fuzzed directory lacks): give it the plain bytes, trimmed to keep runs fast.
    let blk = plain("blk00000.dat")?;
    let blk = &blk[..blk.len().min(64 * 1024)];
    let rev = &rev[..rev.len().min(16 * 1024)];
    let mut dir_seed = (blk.len() as u32).to_le_bytes().to_vec();
    dir_seed.extend(blk);
    dir_seed.extend(rev);
    put(root, "blk_files", &dir_seed)?;
    Ok(())
}
