//! The read-only commands (`status`, `ops`, `names show`, `names list`) never write the
//! database: its bytes stay identical, they work on a read-only file and beside a running
//! `index --follow`, and a file that needs recovery is reported (exit 74), never repaired.
//! Also `status --json` and `status --verify`, and a reader that closes the pipe early
//! (`| head`). No node needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

fn demo_db(dir: &Path) -> PathBuf {
    let db = dir.join("names.redb");
    ok(&["demo", "--db", db.to_str().unwrap()]);
    db
}

/// Every read-only command on `db`.
fn read_commands(db: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        v(&["status", "--db", db]),
        v(&["status", "--json", "--db", db]),
        v(&["status", "--verify", "--db", db]),
        v(&["names", "list", "--db", db]),
        v(&["names", "show", "foo.test", "--db", db]),
        v(&["ops", "--height", "382", "--db", db]),
    ]
}

#[test]
fn read_only_commands_leave_the_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path());
    let before = std::fs::read(&db).unwrap();
    for args in read_commands(db.to_str().unwrap()) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args);
        assert!(
            o.status.code() == Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            std::fs::read(&db).unwrap() == before,
            "{args:?} changed the file's bytes"
        );
    }
}

#[test]
fn status_json_is_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path());
    let text = ok(&["status", "--db", db.to_str().unwrap()]);
    let json = ok(&["status", "--json", "--db", db.to_str().unwrap()]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap();
    assert_eq!(v["app"], "vc-names");
    assert_eq!(v["network"], "regtest");
    assert_eq!(v["first_block"], m["names"]["first_block"]);
    assert_eq!(v["tip"]["height"], m["names"]["tip_height"]);
    assert_eq!(v["consensus_hash"], m["names"]["consensus_hash"]);
    assert!(v["version"].is_string() && v["scheme"].is_string(), "{v}");
    let hash = v["tip"]["hash"].as_str().unwrap();
    assert!(text.contains(hash), "{text}");
    let ops = v["operations"].as_u64().unwrap();
    assert!(
        text.contains(&format!("operations:      {ops}\n")),
        "{text}"
    );
}

/// Makes `path` unwritable even for root where the file system allows it (`chattr +i`), else
/// by mode. Returns whether it is now unwritable for this process.
fn make_read_only(path: &Path) -> bool {
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::OpenOptions::new().write(true).open(path).is_err()
}

fn undo_read_only(path: &Path) {
    let _ = Command::new("chattr")
        .arg("-i")
        .arg(path)
        .stderr(Stdio::null())
        .status();
}

#[test]
fn read_only_commands_work_on_a_read_only_file() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = demo_db(dir.path());
    let expected = ok(&["status", "--db", db.to_str().unwrap()]);
    if !make_read_only(&db) {
        eprintln!("SKIPPED: cannot make a file unwritable here (root without chattr)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        for args in read_commands(db.to_str().unwrap()) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&args);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(ok(&["status", "--db", db.to_str().unwrap()]), expected);
    });
    undo_read_only(&db);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// `index --follow` over the fixture's block files, writing `db`.
fn follow(db: &Path) -> std::process::Child {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["index", "--app", "names", "--network", "regtest"])
        .args(["--first-block", &m["names"]["first_block"].to_string()])
        .args(["--confirmations", "1", "--poll-secs", "0.2", "--follow"])
        .arg("--source")
        .arg(format!("blk:{}", fixture().join("blocks").display()))
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn status_works_beside_index_follow_and_reports_a_crashed_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = demo_db(reference_dir.path());
    let expected = ok(&["status", "--db", reference.to_str().unwrap()]);
    let mut indexer = follow(&db);
    let s = db.to_str().unwrap();
    // Caught up: status answers what the finished chain gives, while the indexer runs.
    let started = Instant::now();
    loop {
        let o = run(&["status", "--db", s]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout) == expected {
            break;
        }
        assert!(indexer.try_wait().unwrap().is_none(), "the indexer stopped");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "status never matched beside the indexer: exit {:?}: {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in read_commands(s) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?} beside the indexer: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Killed without a chance to close: the file needs recovery, which only a writer does.
    indexer.kill().unwrap();
    indexer.wait().unwrap();
    let before = std::fs::read(&db).unwrap();
    let o = run(&["status", "--db", s]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(74) {
        assert!(stderr.contains("virtualchain index"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    } else {
        // The kill came between commits after a clean state was recorded.
        assert_eq!(o.status.code(), Some(0), "{stderr}");
    }
    assert!(
        std::fs::read(&db).unwrap() == before,
        "status repaired the file"
    );
}

/// A reader that stops reading (`virtualchain status | head -1`) ends every read-only command
/// quietly with success; the output used to end in a panic ("failed printing to stdout") and
/// exit 101. A full disk is still an I/O error (74).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path());
    for args in read_commands(db.to_str().unwrap()) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
            .args(&args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
            .args(["status", "--db", db.to_str().unwrap()])
            .env("RUST_LOG", "off")
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(74));
        assert!(String::from_utf8_lossy(&o.stderr).contains("writing to standard output"));
    }
}
