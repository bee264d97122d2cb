//! `render_py2_float` against the real CPython 2.7 interpreter: deterministic pseudo-random
//! floats of every kind (random bit patterns, decimal-looking values over the whole range,
//! integers from 1e11 to 1e16, exact ties at the 12th significant digit and their neighbours,
//! powers of ten and of two, subnormals, negatives) are written as bit patterns to a file, one
//! `python2.7` process prints `str(x)` for each, and every line must match byte for byte.
//!
//! The interpreter is `$PYTHON27` if set, else `python2.7` on `PATH`, else
//! `~/.pyenv/versions/2.7*/bin/python2.7`. Without one the test fails when `$CI` is set and is
//! skipped (loudly, on stderr) otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use vc_chash::legacy::record::render_py2_float;

/// Prints `str(x)` for each line of the file named by `sys.argv[1]`, which holds the bits of a
/// double as 16 hex digits.
const PY_SCRIPT: &str = "
import struct, sys
out = sys.stdout
for line in open(sys.argv[1]):
    out.write(str(struct.unpack('<d', struct.pack('<Q', int(line, 16)))[0]) + '\\n')
";

/// Pseudo-random test data from proptest's seeded ChaCha generator: the same samples on every
/// run and every platform.
struct Gen(TestRng);

impl Gen {
    fn new() -> Self {
        Gen(TestRng::from_seed(
            RngAlgorithm::ChaCha,
            b"vc-chash float vs Python 2.7 str",
        ))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform enough in `0..n` for test data.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An integer with exactly `digits` decimal digits (1..=19).
    fn with_digits(&mut self, digits: u32) -> u64 {
        let lo = 10u64.pow(digits - 1);
        lo + self.below(lo * 9)
    }

    /// An integer with `min..=max` decimal digits, each count equally likely.
    fn with_digits_in(&mut self, min: u32, max: u32) -> u64 {
        let digits = min + self.below(u64::from(max - min + 1)) as u32;
        self.with_digits(digits)
    }

    fn maybe_negate(&mut self, v: f64) -> f64 {
        if self.next() & 1 == 1 { -v } else { v }
    }
}

/// The value and its neighbours one and two units in the last place away (same sign).
fn with_neighbours(v: f64, out: &mut Vec<f64>) {
    let bits = v.to_bits();
    out.push(v);
    for d in 1..=2 {
        out.push(f64::from_bits(bits.wrapping_add(d)));
        if bits & !(1 << 63) >= d {
            out.push(f64::from_bits(bits - d));
        }
    }
}

fn samples() -> Vec<f64> {
    let mut rng = Gen::new();
    let mut out = Vec::with_capacity(200_000);

    // Random bit patterns: every exponent equally likely (a few infinities and NaNs among them).
    for _ in 0..30_000 {
        out.push(f64::from_bits(rng.next()));
    }
    // Subnormals, with fractions of every length.
    for _ in 0..5_000 {
        let bits = rng.next() >> (12 + rng.below(52));
        out.push(rng.maybe_negate(f64::from_bits(bits)));
    }
    // Decimal-looking values, 1 to 17 significant digits, over the whole range...
    for _ in 0..20_000 {
        let m = rng.with_digits_in(1, 17);
        let e = rng.below(650) as i64 - 340;
        out.push(rng.maybe_negate(format!("{m}e{e}").parse().unwrap()));
    }
    // ... and around the switches to exponential form (1e-4 and 1e11).
    for _ in 0..15_000 {
        let m = rng.with_digits_in(1, 17);
        let e = rng.below(24) as i64 - 8 - i64::from(m.ilog10() + 1);
        out.push(rng.maybe_negate(format!("{m}e{e}").parse().unwrap()));
    }
    // Integers, mostly from 1e11 to 1e16, where the small-integer step of dtoa applies.
    for _ in 0..20_000 {
        let m = rng.with_digits_in(12, 16);
        out.push(rng.maybe_negate(m as f64));
    }
    for _ in 0..3_000 {
        let m = rng.with_digits_in(1, 19);
        out.push(rng.maybe_negate(m as f64));
    }
    // Exact ties at the 12th significant digit: integers ending in 5, 50, 500, 5000 after 12
    // significant digits (the last beyond 2^53 sometimes), their neighbours, and the integers
    // 1 to 3 away.
    for _ in 0..3_000 {
        let p = rng.with_digits(12);
        for j in 1..=4u32 {
            let tie = p * 10u64.pow(j) + 5 * 10u64.pow(j - 1);
            with_neighbours(rng.maybe_negate(tie as f64), &mut out);
            for d in 1..=3 {
                out.push(rng.maybe_negate((tie - d) as f64));
                out.push(rng.maybe_negate((tie + d) as f64));
            }
        }
    }
    // Ties that are not integers: 12 digits and a half, and an odd 13-digit integer halved.
    for _ in 0..3_000 {
        let p = rng.with_digits(12);
        with_neighbours(rng.maybe_negate(p as f64 + 0.5), &mut out);
        let q = rng.with_digits(13) | 1;
        with_neighbours(rng.maybe_negate(q as f64 / 2.0), &mut out);
    }
    // Near-ties at every magnitude: 12 digits then 5, as decimal strings (not exact in binary).
    for _ in 0..5_000 {
        let p = rng.with_digits(12);
        let e = rng.below(640) as i64 - 330;
        let v: f64 = format!("{p}5e{e}").parse().unwrap();
        with_neighbours(rng.maybe_negate(v), &mut out);
    }
    // Powers of ten and of two, with neighbours.
    for e in -323..=308 {
        let v: f64 = format!("1e{e}").parse().unwrap();
        with_neighbours(v, &mut out);
        with_neighbours(-v, &mut out);
    }
    for bits in (0..2047u64).map(|e| e << 52) {
        with_neighbours(f64::from_bits(bits.max(1)), &mut out);
    }
    // The special values.
    out.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
    ]);
    out
}

/// Runs `python -c ...` and returns its stdout if it reports version 2.7.
fn is_python27(python: &OsString) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"2.7")
}

/// `$PYTHON27`, else `python2.7` on `PATH`, else the newest `~/.pyenv/versions/2.7*`.
fn find_python27() -> Option<OsString> {
    if let Some(explicit) = std::env::var_os("PYTHON27") {
        assert!(
            is_python27(&explicit),
            "PYTHON27={} does not run as Python 2.7",
            explicit.to_string_lossy()
        );
        return Some(explicit);
    }
    let on_path = OsString::from("python2.7");
    if is_python27(&on_path) {
        return Some(on_path);
    }
    let versions = PathBuf::from(std::env::var_os("HOME")?).join(".pyenv/versions");
    let mut pyenv: Vec<PathBuf> = std::fs::read_dir(versions)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
        .map(|e| e.path().join("bin/python2.7"))
        .collect();
    pyenv.sort();
    pyenv
        .into_iter()
        .rev()
        .map(OsString::from)
        .find(is_python27)
}

fn render(v: f64) -> String {
    let mut out = Vec::new();
    render_py2_float(v, &mut out);
    String::from_utf8(out).expect("ASCII")
}

#[test]
fn random_floats_render_as_cpython_27_str() {
    let Some(python) = find_python27() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no Python 2.7 interpreter was found (set PYTHON27, put python2.7 on \
             PATH, or install 2.7 with pyenv): the float rendering cannot be checked"
        );
        eprintln!(
            "\n*** SKIPPED random_floats_render_as_cpython_27_str: no Python 2.7 interpreter \
             (set PYTHON27, put python2.7 on PATH, or install 2.7 with pyenv) ***\n"
        );
        return;
    };
    let started = Instant::now();
    let samples = samples();
    let mut input = String::with_capacity(samples.len() * 17);
    for v in &samples {
        writeln!(input, "{:016x}", v.to_bits()).unwrap();
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("py27-float-{}.txt", std::process::id()));
    std::fs::write(&path, input).unwrap();
    let output = Command::new(&python)
        .arg("-c")
        .arg(PY_SCRIPT)
        .arg(&path)
        .output();
    std::fs::remove_file(&path).unwrap();
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "{} failed: {}",
        python.to_string_lossy(),
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = String::from_utf8(output.stdout).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(expected.len(), samples.len(), "one line per sample");

    let mut mismatches = 0;
    let mut report = String::new();
    for (v, want) in samples.iter().zip(&expected) {
        let got = render(*v);
        if got != *want {
            mismatches += 1;
            if mismatches <= 20 {
                writeln!(
                    report,
                    "  bits {:016x} ({v:e}): python {want:?}, ours {got:?}",
                    v.to_bits()
                )
                .unwrap();
            }
        }
    }
    assert!(
        mismatches == 0,
        "{mismatches} of {} floats render differently from CPython 2.7 str(); first ones:\n{report}",
        samples.len()
    );
    println!(
        "{} random floats render as CPython 2.7 str() ({:.2} s)",
        samples.len(),
        started.elapsed().as_secs_f64()
    );
}
