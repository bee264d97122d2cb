//! `index`, `status`, `names` and `recover` through the binary, over the committed fixture's block
//! files (no node needed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run virtualchain")
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

/// `virtualchain index` of the names app over the fixture's block files into `db`.
fn index_command(first: &str, db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
    c.args([
        "index",
        "--app",
        "names",
        "--network",
        "regtest",
        "--first-block",
        first,
    ])
    .args(["--confirmations", "1", "--source"])
    .arg(format!("blk:{}", fixture().join("blocks").display()))
    .arg("--db")
    .arg(db)
    .env("RUST_LOG", "warn");
    c
}

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap()
}

#[test]
fn index_status_show_and_recover_over_the_fixture() {
    let m = manifest();
    let first = m["names"]["first_block"].as_u64().unwrap().to_string();
    let tip = m["names"]["tip_height"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let db_s = db.to_str().unwrap();
    let source = format!("blk:{}", fixture().join("blocks").display());
    let index = |to: Option<u64>| {
        let mut c = index_command(&first, &db);
        if let Some(t) = to {
            c.args(["--to", &t.to_string()]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // In two runs: up to the middle, then the rest.
    index(Some(tip - 20));
    assert!(ok(&["status", "--db", db_s]).contains(&format!("tip:             {}", tip - 20)));
    index(None);
    let status = ok(&["status", "--db", db_s]);
    let ch = m["names"]["consensus_hash"].as_str().unwrap();
    assert!(
        status.contains(&format!("consensus hash:  {ch}")),
        "{status}"
    );
    assert!(
        status.contains("names:           2 (1 revoked)"),
        "{status}"
    );

    let foo: serde_json::Value =
        serde_json::from_str(&ok(&["names", "show", "foo.test", "--db", db_s])).unwrap();
    let want = m["names"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "foo.test")
        .unwrap();
    assert_eq!(foo["owner_script"], want["owner_script"]);
    assert_eq!(foo["value_hash"], "ab".repeat(20));
    let missing = run(&["names", "show", "nobody.test", "--db", db_s]);
    assert!(!missing.status.success());
    assert_eq!(ok(&["names", "list", "--db", db_s]).lines().count(), 2);

    // recover reindex: back to below a height, then index re-applies to the same hash.
    let out = ok(&[
        "recover",
        "reindex",
        "--db",
        db_s,
        "--from",
        &(tip - 5).to_string(),
    ]);
    assert!(out.contains("rolled back 6 blocks"), "{out}");
    assert!(ok(&["status", "--db", db_s]).contains(&format!("tip:             {}", tip - 6)));
    index(None);
    assert!(ok(&["status", "--db", db_s]).contains(&format!("consensus hash:  {ch}")));

    // recover revert: to the end of a height, then index re-applies to the same hash.
    let out = ok(&[
        "recover",
        "revert",
        "--db",
        db_s,
        "--to",
        &(tip - 10).to_string(),
    ]);
    assert!(out.contains("reverted 10 blocks"), "{out}");
    assert!(ok(&["status", "--db", db_s]).contains(&format!("tip:             {}", tip - 10)));
    index(None);
    assert!(ok(&["status", "--db", db_s]).contains(&format!("consensus hash:  {ch}")));

    // recover split pins the branch; the same chain still indexes (nothing to do).
    let out = ok(&[
        "recover",
        "split",
        "--db",
        db_s,
        "--fork-height",
        &(tip - 3).to_string(),
    ]);
    assert!(out.contains(&format!("height {}", tip - 2)), "{out}");
    index(None);

    // Another network than the database's is refused by name, before the source is opened.
    let o = run(&[
        "index",
        "--app",
        "names",
        "--network",
        "testnet",
        "--source",
        &source,
        "--db",
        db_s,
    ]);
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is a regtest database; --network testnet disagrees"),
        "{err}"
    );
}

/// Starts `index` with `--follow` (polling every 0.2 s), its stderr to `stderr`, and returns it
/// once it has had 5 s to reach the fixture's tip (its blocks take well under a second) and is
/// polling, holding the file open for writing.
fn following(mut index: Command, stderr: std::process::Stdio) -> std::process::Child {
    let mut child = index
        .args(["--follow", "--poll-interval", "200ms"])
        .stderr(stderr)
        .spawn()
        .unwrap();
    // The writer holds the file, so progress cannot be read from outside meanwhile.
    std::thread::sleep(std::time::Duration::from_secs(5));
    if let Some(status) = child.try_wait().unwrap() {
        panic!("--follow exited on its own: {status}");
    }
    child
}

#[test]
fn ctrl_c_while_following_exits_cleanly_with_everything_committed() {
    let m = manifest();
    let first = m["names"]["first_block"].as_u64().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    // Press Ctrl-C once it polls.
    let child = following(index_command(&first, &db), std::process::Stdio::piped());
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ch = m["names"]["consensus_hash"].as_str().unwrap();
    assert!(
        ok(&["status", "--db", db.to_str().unwrap()]).contains(&format!("consensus hash:  {ch}"))
    );
}

/// A killed `index` leaves a file that needs crash recovery: the read-only `status` refuses it
/// (exit 74). The next `index`, given only the source and the file, as for any existing
/// database, must repair it and resume it with what it was made for (v3, the fixture's first
/// block and regtest, none of them a default), and end where an uninterrupted run ends.
#[test]
fn a_killed_index_resumes_without_its_creation_flags() {
    let m = manifest();
    let first = m["names_v3"]["first_block"].as_u64().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.redb");
    let db = dir.path().join("killed.redb");
    let o = index_command(&first, &reference)
        .args(["--scheme", "v3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut index = index_command(&first, &db);
    index.args(["--scheme", "v3"]);
    let mut child = following(index, std::process::Stdio::null());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let db_s = db.to_str().unwrap();
    assert_eq!(
        run(&["status", "--db", db_s]).status.code(),
        Some(74),
        "a killed writer's file should need recovery"
    );
    let source = format!("blk:{}", fixture().join("blocks").display());
    ok(&[
        "index",
        "--confirmations",
        "1",
        "--source",
        &source,
        "--db",
        db_s,
    ]);
    let status = |p: &Path| ok(&["status", "--verify", "--db", p.to_str().unwrap()]);
    let ch = |s: String| {
        s.lines()
            .find(|l| l.starts_with("consensus hash:"))
            .map(str::to_owned)
    };
    let want = ch(status(&reference));
    assert!(want.is_some());
    assert_eq!(ch(status(&db)), want);
}

#[path = "support/serve.rs"]
mod serve_support;

/// `serve` over the fixture's names database, and `light` against it: proven (0), refuted (1),
/// unreachable or malformed (2).
#[test]
fn serve_and_light_over_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let m = manifest();
    let first = m["names"]["first_block"].as_u64().unwrap().to_string();
    let out = index_command(&first, &db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tip = m["names"]["tip_height"].as_u64().unwrap();
    let ch = m["names"]["consensus_hash"].as_str().unwrap();
    let (mut server, url) = serve_support::serve(&db);
    let trusted = format!("{tip}:{ch}");

    let light = |args: &[&str]| run(&[&["light"], args].concat());
    let o = light(&[
        "verify",
        "--server",
        &url,
        "--trusted",
        &trusted,
        "--height",
        &first,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("proven: block {first}")));

    let o = light(&["name", "foo.test", "--server", &url, "--trusted", &trusted]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("foo.test: 4 proven operations"), "{text}");
    for kind in ["register", "update", "transfer", "renew"] {
        assert!(text.contains(kind), "{text}");
    }
    // The replayed owner is the one `names show` reports.
    let show: serde_json::Value = serde_json::from_str(&ok(&[
        "names",
        "show",
        "foo.test",
        "--db",
        db.to_str().unwrap(),
    ]))
    .unwrap();
    let owner = show["owner_script"].as_str().unwrap();
    assert!(text.contains(&format!("state: owner {owner}")), "{text}");

    // A consensus hash the server's chain does not have: refuted.
    let mut wrong = ch.to_owned();
    wrong.replace_range(0..1, if ch.starts_with('0') { "1" } else { "0" });
    let o = light(&[
        "verify",
        "--server",
        &url,
        "--trusted",
        &format!("{tip}:{wrong}"),
        "--height",
        &first,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("refuted: "));
    // Unreachable, or an answer that is an error: 2.
    let o = light(&[
        "verify",
        "--server",
        "http://127.0.0.1:1",
        "--trusted",
        &trusted,
        "--height",
        &first,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = light(&[
        "verify",
        "--server",
        &url,
        "--trusted",
        &format!("{}:{ch}", tip + 5),
        "--height",
        &first,
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = light(&[
        "name",
        "nobody.test",
        "--server",
        &url,
        "--trusted",
        &trusted,
    ]);
    assert_eq!(o.status.code(), Some(2));
    // A malformed trusted hash is a usage error: 2.
    let o = light(&[
        "verify",
        "--server",
        &url,
        "--trusted",
        "12:zz",
        "--height",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));

    server.kill().unwrap();
    let _ = server.wait();
}
