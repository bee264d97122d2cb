//! `virtualchain chash` under v3, end to end through the binary, against the v3 vectors that the
//! independent Python reference wrote: `compute` prints every block's state root, `state-prove`
//! writes the reference's proofs byte for byte, and v3 operation proofs round-trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Output;

use vc_chash::hex;

const VECTORS: &str = include_str!("../../vc-chash/tests/vectors/v3-vectors.txt");

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `chash state-prove` over the section C chain in `input`, writing to `out`.
fn state_prove(input: &str, trusted: &str, height: &str, ns: &str, key: &str, out: &str) -> Output {
    cli::run(&[
        "chash",
        "state-prove",
        "--first-block",
        "100",
        "--input",
        input,
        "--trusted",
        trusted,
        "--height",
        height,
        "--namespace",
        ns,
        "--key",
        key,
        "--out",
        out,
    ])
}

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// The vectors' section C chain as `chash` input: records, and state changes with the
/// namespace as text.
fn section_c_chain(dir: &Path) -> String {
    let mut text = String::new();
    for line in VECTORS.lines().filter(|l| l.starts_with("C ")) {
        let f = fields(line);
        let ops: Vec<String> = match f["records"] {
            "-" => Vec::new(),
            list => list.split(',').map(|r| format!("\"{r}\"")).collect(),
        };
        let state: Vec<String> = match f["changes"] {
            "-" => Vec::new(),
            list => list
                .split(',')
                .map(|c| {
                    let mut parts = c.split(':');
                    let ns =
                        String::from_utf8(hex::decode(parts.next().unwrap()).unwrap()).unwrap();
                    let key = parts.next().unwrap();
                    let value = match parts.next().unwrap() {
                        "-" => "null".to_string(),
                        v => format!("\"{v}\""),
                    };
                    format!("{{\"ns\": \"{ns}\", \"key\": \"{key}\", \"value\": {value}}}")
                })
                .collect(),
        };
        text.push_str(&format!(
            "{{\"height\": {}, \"block_hash\": \"{}\", \"ops\": [{}], \"state\": [{}]}}\n",
            f["height"],
            f["block_hash"],
            ops.join(", "),
            state.join(", ")
        ));
    }
    let path = dir.join("c.jsonl");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn compute_prints_the_v3_vectors_state_roots() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_c_chain(dir.path());
    let out = cli::ok(&[
        "chash",
        "compute",
        "--scheme",
        "v3",
        "--first-block",
        "100",
        "--input",
        &input,
    ]);
    let expected: Vec<String> = VECTORS
        .lines()
        .filter(|l| l.starts_with("C "))
        .map(|l| {
            let f = fields(l);
            format!(
                "{} {} {} {}",
                f["height"], f["ops_hash"], f["ch"], f["state_root"]
            )
        })
        .collect();
    assert_eq!(expected.len(), 20);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn state_prove_writes_the_v3_vectors_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_c_chain(dir.path());
    let out_path = dir.path().join("q.proof");
    let out_path = out_path.to_str().unwrap();
    let mut checked = 0;
    for line in VECTORS.lines().filter(|l| l.starts_with("Q ")) {
        let f = fields(line);
        let ns = String::from_utf8(hex::decode(f["ns"]).unwrap()).unwrap();
        let trusted = format!("{}:{}", f["trusted"], f["ch"]);
        let out = state_prove(&input, &trusted, f["target"], &ns, f["key"], out_path);
        assert!(out.status.success(), "{line}: {}", stderr(&out));
        assert_eq!(
            hex::encode(&fs::read(out_path).unwrap()),
            f["proof"],
            "{line}"
        );
        checked += 1;
    }
    assert_eq!(checked, 48);
}

#[test]
fn state_prove_refuses_a_trusted_hash_the_input_does_not_give() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_c_chain(dir.path());
    let out_path = dir.path().join("q.proof");
    let wrong = format!("119:{}", "ab".repeat(32));
    let out = state_prove(
        &input,
        &wrong,
        "110",
        "names",
        "",
        out_path.to_str().unwrap(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("disagrees with the input"),
        "{}",
        stderr(&out)
    );
    assert!(!out_path.exists());
}

#[test]
fn state_changes_need_the_v3_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_c_chain(dir.path());
    for scheme in ["legacy", "v2"] {
        let out = cli::run(&[
            "chash",
            "compute",
            "--scheme",
            scheme,
            "--first-block",
            "100",
            "--input",
            &input,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains("only the v3 scheme commits"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn v3_operation_proofs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = section_c_chain(dir.path());
    let tip = VECTORS.lines().rfind(|l| l.starts_with("C ")).unwrap();
    let trusted = format!("119:{}", fields(tip)["ch"]);
    for height in ["119", "104", "100"] {
        let proof = dir.path().join(format!("op-{height}.proof"));
        let proof = proof.to_str().unwrap();
        cli::ok(&[
            "chash",
            "prove",
            "--scheme",
            "v3",
            "--first-block",
            "100",
            "--input",
            &input,
            "--trusted",
            &trusted,
            "--height",
            height,
            "--out",
            proof,
        ]);
        let out = cli::ok(&[
            "--json",
            "chash",
            "verify",
            "--scheme",
            "v3",
            "--first-block",
            "100",
            "--trusted",
            &trusted,
            "--height",
            height,
            "--proof",
            proof,
        ]);
        let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = VECTORS
            .lines()
            .find(|l| l.starts_with(&format!("C height={height} ")))
            .unwrap();
        let f = fields(row);
        assert_eq!(answer["state_root"], f["state_root"], "{height}");
        let records: Vec<&str> = match f["records"] {
            "-" => Vec::new(),
            list => list.split(',').collect(),
        };
        assert_eq!(answer["records"], serde_json::json!(records), "{height}");
    }
}
