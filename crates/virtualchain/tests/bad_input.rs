//! Bad input to the CLI: each kind gets a one-line message on standard error and its own
//! non-zero exit code (the table in `src/exit.rs` and `virtualchain --help`), and no file is
//! created or changed on the way. No node needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Runs the binary; returns (exit code, standard error).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run virtualchain");
    (
        out.status.code().expect("an exit code, not a signal"),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs the binary with extra environment variables; returns (exit code, standard error).
fn run_with_env(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .env("RUST_LOG", "off")
        .output()
        .expect("run virtualchain");
    (
        out.status.code().expect("an exit code, not a signal"),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Asserts exit code `code` and a single `error: ` line containing `needle`.
fn refused(args: &[&str], code: i32, needle: &str) {
    let (got, stderr) = run(args);
    assert_eq!(got, code, "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{args:?}: {stderr}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn unknown_flags_and_missing_arguments_are_usage_errors() {
    refused(&["--bogus"], 2, "--bogus");
    // Clap's suggestion stays, on the same line.
    refused(
        &["index", "--sourc", "x"],
        2,
        "tip: a similar argument exists: '--source'",
    );
    refused(&["status", "--db"], 2, "--db");
    // No source at all: Core as ord finds it, and here no node runs (exit 69, naming the way
    // out).
    let home = tempfile::tempdir().unwrap();
    let (code, err) = run_with_env(&["index", "--app", "names"], &[("HOME", home.path())]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains("no cookie file") && err.contains("--source"),
        "{err}"
    );
    refused(
        &["names", "send", "renew", "x.id"],
        2,
        "--wif (or VIRTUALCHAIN_WIF) is required",
    );
    let (code, _) = run(&["--help"]);
    assert_eq!(code, 0);
}

#[test]
fn a_missing_database_is_missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nothing.redb");
    refused(&["status", "--db", s(&db)], 66, "does not exist");
    refused(&["names", "list", "--db", s(&db)], 66, "does not exist");
    assert!(!db.exists(), "reading a missing database created it");
}

#[test]
fn a_foreign_file_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.redb");
    std::fs::write(&text, b"not a database, just notes\n").unwrap();
    refused(
        &["status", "--db", s(&text)],
        78,
        "not a virtualchain-rs store",
    );
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain");
    let blocks = fixture.join("blocks");
    refused(
        &[
            "index",
            "--app",
            "names",
            "--source",
            &format!("blk:{}", s(&blocks)),
            "--network",
            "regtest",
            "--db",
            s(&text),
        ],
        78,
        "not a virtualchain-rs store",
    );
    assert!(std::fs::read(&text).unwrap() == b"not a database, just notes\n");
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.redb");
    let config =
        vc_store::StoreConfig::new("someone-else", "1", vc_chash::Scheme::V2, 0, "regtest");
    drop(vc_store::Store::open(&db, config).unwrap());
    let before = std::fs::read(&db).unwrap();
    refused(&["status", "--db", s(&db)], 78, "someone-else");
    assert!(std::fs::read(&db).unwrap() == before, "the file changed");
}

#[test]
fn an_unreadable_blocks_directory_is_missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for blocks in [dir.path().join("absent"), file, empty] {
        let (code, stderr) = run(&[
            "index",
            "--app",
            "names",
            "--source",
            &format!("blk:{}", s(&blocks)),
            "--db",
            s(&db),
        ]);
        assert_eq!(code, 66, "{blocks:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!db.exists(), "a database was created for {blocks:?}");
    }
}

#[test]
fn an_unreachable_node_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    refused(
        &[
            "index",
            "--app",
            "names",
            "--source",
            "core://user:pass@127.0.0.1:9",
            "--db",
            s(&db),
        ],
        69,
        "127.0.0.1:9",
    );
    assert!(!db.exists());
}

#[test]
fn invalid_keys_and_data_are_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let (code, stderr) = run(&["demo", "--db", s(&db)]);
    assert_eq!(code, 0, "{stderr}");
    let status = || {
        let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
            .args(["status", "--db", s(&db)])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let before = status();
    let send = |wif: &str| {
        vec![
            "names".to_string(),
            "send".into(),
            "--db".into(),
            s(&db).into(),
            "--source".into(),
            "core://user:pass@127.0.0.1:9".into(),
            "--wif".into(),
            wif.into(),
            "--dry-run".into(),
            "renew".into(),
            "muneeb.id".into(),
        ]
    };
    for wif in [
        "not-a-key",
        "cVt4o7BGAig1UXywgGSmARhxMdzP5qvQsxKkSsc1XEkw3tDTQFpy0",
    ] {
        let args = send(wif);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, 65, "");
    }
    // Not hex (an odd digit, a multi-byte character across a digit pair), then not a
    // transaction.
    refused(&["names", "decode", "abc"], 65, "not hex");
    refused(&["names", "decode", "0é0"], 65, "not hex");
    refused(&["names", "decode", "0011"], 65, "not a transaction");
    assert_eq!(status(), before, "the database changed");
}

#[test]
fn a_symlink_loop_or_a_directory_is_unreadable_input_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    let b = dir.path().join("b.redb");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    for cmd in [&["status", "--db"][..], &["names", "list", "--db"][..]] {
        let args: Vec<&str> = cmd.iter().copied().chain([s(&a)]).collect();
        let (code, stderr) = run(&args);
        assert_eq!(code, 66, "{stderr}");
        assert!(!stderr.contains("does not exist"), "{stderr}");
        assert!(stderr.contains("symbolic links"), "{stderr}");
    }
    let (code, stderr) = run(&["status", "--db", s(dir.path())]);
    assert_eq!(code, 66, "{stderr}");
    assert!(stderr.contains("directory"), "{stderr}");
}

#[test]
fn block_files_of_another_network_are_a_wrong_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain");
    let (code, stderr) = run(&[
        "index",
        "--app",
        "names",
        "--network",
        "testnet",
        "--source",
        &format!("blk:{}", s(&fixture.join("blocks"))),
        "--db",
        s(&db),
    ]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("regtest"), "{stderr}");
}

#[test]
fn a_garbage_proof_file_is_bad_data_not_a_refutation() {
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("proof.bin");
    std::fs::write(&proof, b"\x00 certainly not a proof").unwrap();
    let (code, stderr) = run(&[
        "chash",
        "verify",
        "--scheme",
        "legacy",
        "--first-block",
        "0",
        "--trusted",
        "5:2a9148d8b13939723d2aca16c75c6d68",
        "--height",
        "3",
        "--proof",
        s(&proof),
    ]);
    assert_eq!(code, 65, "{stderr}");
    assert!(stderr.contains("not a proof"), "{stderr}");
}
