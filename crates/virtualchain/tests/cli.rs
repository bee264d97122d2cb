//! The `virtualchain chash` interface, end to end through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use vc_chash::hex;

fn virtualchain<S: AsRef<str>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .expect("run virtualchain")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The chain of section B of the legacy vectors: F = 100, block k holds `op-k-0 .. op-k-(k%3-1)`.
fn section_b_chain(dir: &Path) -> String {
    let mut text = String::new();
    for k in 100..108u64 {
        let ops: Vec<String> = (0..k % 3)
            .map(|i| format!("\"{}\"", hex::encode(format!("op-{k}-{i}").as_bytes())))
            .collect();
        text.push_str(&format!(
            "{{\"height\": {k}, \"block_hash\": \"{:064x}\", \"ops\": [{}]}}\n",
            k,
            ops.join(", ")
        ));
    }
    let path = dir.join("b.jsonl");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn compute_reproduces_the_legacy_chain_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_b_chain(dir.path());
    let out = virtualchain(&[
        "chash",
        "compute",
        "--scheme",
        "legacy",
        "--first-block",
        "100",
        "--input",
        &input,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let vectors = include_str!("../../vc-chash/tests/vectors/legacy-vectors.txt");
    let expected: Vec<String> = vectors
        .lines()
        .filter_map(|l| l.strip_prefix("B "))
        .map(|l| {
            let f: Vec<&str> = l
                .split_whitespace()
                .map(|kv| kv.split_once('=').unwrap().1)
                .collect();
            format!("{} {} {}", f[0], f[1], f[2])
        })
        .collect();
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), expected);
}

#[test]
fn compute_reads_standard_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args([
            "chash",
            "compute",
            "--scheme",
            "legacy",
            "--first-block",
            "5",
        ])
        .stdin(fs::File::open(write_tmp("{\"height\": 5, \"ops\": []}\n")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "5 5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456 2a9148d8b13939723d2aca16c75c6d68\n"
    );
}

/// Runs a command that must fail with exit code 1 and a stderr line containing `needle`.
fn fails_with<S: AsRef<str> + std::fmt::Debug>(args: &[S], needle: &str) {
    let out = virtualchain(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{args:?}");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
}

fn write_tmp(text: &str) -> std::path::PathBuf {
    let file = tempfile::NamedTempFile::new().unwrap();
    let (_, path) = file.keep().unwrap();
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn prove_and_verify_both_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_b_chain(dir.path());
    for scheme in ["legacy", "v2"] {
        let out = virtualchain(&[
            "chash",
            "compute",
            "--scheme",
            scheme,
            "--first-block",
            "100",
            "--input",
            &input,
        ]);
        let lines = stdout(&out);
        let tip = lines.lines().last().unwrap();
        let ch = tip.split_whitespace().nth(2).unwrap();
        let proof = dir.path().join(format!("{scheme}.proof"));
        let proof = proof.to_str().unwrap();
        let out = virtualchain(&[
            "chash",
            "prove",
            "--scheme",
            scheme,
            "--first-block",
            "100",
            "--trusted",
            "107",
            "--height",
            "101",
            "--input",
            &input,
            "--out",
            proof,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let trusted = format!("107:{ch}");
        // --trusted takes N:CH here too, like everywhere else: the same proof, and a CH the
        // input disagrees with is refused.
        let prove_with = |trusted: &str, out: &str| {
            virtualchain(&[
                "chash",
                "prove",
                "--scheme",
                scheme,
                "--first-block",
                "100",
                "--trusted",
                trusted,
                "--height",
                "101",
                "--input",
                &input,
                "--out",
                out,
            ])
        };
        let again = dir.path().join(format!("{scheme}-again.proof"));
        let out = prove_with(&trusted, again.to_str().unwrap());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(fs::read(&again).unwrap(), fs::read(proof).unwrap());
        let out = prove_with(&format!("107:{}", "0".repeat(ch.len())), "/dev/null");
        assert!(
            stderr(&out).contains("disagrees with the input"),
            "{}",
            stderr(&out)
        );
        let verify_args = |trusted: &str, proof: &str| -> Vec<String> {
            [
                "chash",
                "verify",
                "--scheme",
                scheme,
                "--first-block",
                "100",
                "--trusted",
                trusted,
                "--height",
                "101",
                "--proof",
                proof,
            ]
            .map(String::from)
            .to_vec()
        };
        let out = virtualchain(&verify_args(&trusted, proof));
        assert!(out.status.success(), "{}", stderr(&out));
        // The same with --json: one object naming what was proven.
        let mut json_args = verify_args(&trusted, proof);
        json_args.push("--json".into());
        let answer: serde_json::Value =
            serde_json::from_str(&stdout(&virtualchain(&json_args))).unwrap();
        assert_eq!(answer["proven"], true);
        assert_eq!(answer["height"], 101);
        assert_eq!(answer["records"].as_array().unwrap().len(), 2);
        // 101 % 3 = 2 records: in block order for v2, in the order the legacy ops hash sorts
        // them (it commits no order) for legacy.
        let mut want = [b"op-101-0".to_vec(), b"op-101-1".to_vec()];
        if scheme == "legacy" {
            want.sort_by_key(|r| vc_chash::legacy::record_digest(r));
        }
        assert_eq!(
            stdout(&out),
            format!("{}\n{}\n", hex::encode(&want[0]), hex::encode(&want[1]))
        );

        // A flipped byte in the proof: exit 1 with a one-line reason.
        let mut bytes = fs::read(proof).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let bad = dir.path().join("bad.proof");
        fs::write(&bad, bytes).unwrap();
        fails_with(
            &verify_args(&trusted, bad.to_str().unwrap()),
            "proof rejected",
        );
        // Another trusted hash of the right scheme.
        let other = format!("107:{}", "0".repeat(ch.len()));
        fails_with(&verify_args(&other, proof), "differs from the trusted");
        // A hash of the other scheme's length.
        let wrong_len = format!("107:{}", "0".repeat(96 - ch.len()));
        fails_with(&verify_args(&wrong_len, proof), "hex characters but the");
        // Malformed --trusted values are verification failures too: exit 1, one line.
        fails_with(&verify_args("107", proof), "expected N:CH");
        fails_with(&verify_args("x:00", proof), "--trusted height");
        fails_with(&verify_args("107:zz", proof), "--trusted consensus hash");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let compute = |scheme: &'static str, first: &'static str, text: &str| {
        let path = write_tmp(text);
        let args = [
            "chash",
            "compute",
            "--scheme",
            scheme,
            "--first-block",
            first,
            "--input",
        ];
        let mut args: Vec<String> = args.map(String::from).to_vec();
        args.push(path.to_str().unwrap().to_string());
        args
    };
    let one = "{\"height\": 1, \"ops\": []}\n";
    fails_with(
        &compute(
            "legacy",
            "1",
            &format!("{one}{{\"height\": 3, \"ops\": []}}\n"),
        ),
        "line 2: expected height 2, found 3",
    );
    fails_with(&compute("v2", "1", one), "needs \"block_hash\"");
    fails_with(
        &compute("legacy", "1", "{\"height\": 1, \"ops\": [\"zz\"]}\n"),
        "ops[0]",
    );
    fails_with(
        &compute("legacy", "1", "{\"height\": 1, \"ops\": 5}\n"),
        "line 1",
    );
    let short = write_tmp(one);
    fails_with(
        &[
            "chash",
            "prove",
            "--scheme",
            "legacy",
            "--first-block",
            "1",
            "--trusted",
            "5",
            "--height",
            "1",
            "--input",
            short.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        "before the trusted height 5",
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["chash", "--help"],
        vec!["chash", "compute", "--help"],
        vec!["chash", "prove", "--help"],
        vec!["chash", "verify", "--help"],
    ] {
        let out = virtualchain(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
}
