//! The corruption campaign: at least 500 random single-point corruptions of a real names
//! database (bit flips, 16 random bytes, a zeroed 4 KiB page), each on its own copy. `status`
//! on every copy must print exactly what it prints for the intact file (exit 0), or exit 74:
//! never a panic, never a different answer with exit 0. No node needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Corruptions tried.
const CASES: u64 = 2_000;
/// The seed: the campaign is the same on every run.
const SEED: u64 = 0x5eed_c0ff_ee00_0020;

/// splitmix64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn status(db: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["status", "--db"])
        .arg(db)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Applies corruption number `case` to `bytes`; returns its description.
fn corrupt(bytes: &mut [u8], case: u64) -> String {
    let r = mix(SEED ^ case);
    let len = bytes.len() as u64;
    match case % 3 {
        0 => {
            let bit = mix(r) % (len * 8);
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            format!("bit {bit} flipped")
        }
        1 => {
            let at = (mix(r) % (len - 16)) as usize;
            for (i, b) in bytes[at..at + 16].iter_mut().enumerate() {
                *b = mix(r ^ (i as u64 + 1)) as u8;
            }
            format!("16 random bytes at {at}")
        }
        _ => {
            let page = mix(r) % len.div_ceil(4096);
            let at = (page * 4096) as usize;
            let end = (at + 4096).min(bytes.len());
            bytes[at..end].fill(0);
            format!("page at {at} zeroed")
        }
    }
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[derive(Default, Debug)]
struct Tally {
    harmless: u64,
    detected: u64,
    failures: Vec<String>,
}

#[test]
fn no_corruption_gives_a_panic_or_a_wrong_answer() {
    let dir = scratch();
    let db = dir.path().join("names.redb");
    let demo = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["demo", "--db"])
        .arg(&db)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let (code, expected, stderr) = status(&db);
    assert_eq!(code, 0, "{stderr}");
    let intact = std::fs::read(&db).unwrap();

    let tally = Mutex::new(Tally::default());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let (tally, intact, expected, dir) = (&tally, &intact, &expected, dir.path());
            s.spawn(move || {
                let copy: PathBuf = dir.join(format!("copy-{t}.redb"));
                for case in (t..CASES).step_by(threads) {
                    let mut bytes = intact.clone();
                    let what = corrupt(&mut bytes, case);
                    std::fs::write(&copy, &bytes).unwrap();
                    let (code, out, err) = status(&copy);
                    let mut tally = tally.lock().unwrap();
                    match code {
                        0 if out == *expected => tally.harmless += 1,
                        74 => tally.detected += 1,
                        0 => tally.failures.push(format!(
                            "case {case} ({what}): exit 0 with a wrong answer:\n{out}"
                        )),
                        _ => tally.failures.push(format!(
                            "case {case} ({what}): exit {code}: {}",
                            err.lines().last().unwrap_or_default()
                        )),
                    }
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "corruption campaign: {CASES} corruptions of a {} byte database: {} detected (exit 74), {} harmless (identical output), {} failures",
        intact.len(),
        tally.detected,
        tally.harmless,
        tally.failures.len()
    );
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert_eq!(tally.detected + tally.harmless, CASES);
}
