//! `virtualchain compare` through the binary: two `serve` instances (and their databases) that
//! diverge at a planted height, and servers that answer nonsense.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/serve.rs"]
mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output};

use vc_chash::{History, Scheme};
use vc_testnode::synthetic;

fn compare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .arg("compare")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VIRTUALCHAIN_DB")
        .output()
        .expect("run virtualchain")
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A store of blocks `first..=tip`, on branch 1 from `fork` on (branch 0 below it).
fn store(path: &Path, first: u64, tip: u64, fork: Option<u64>) {
    let (s, _) = synthetic::create(path, Scheme::V2, first, 0).unwrap();
    let fork = fork.unwrap_or(tip + 1);
    if fork > first {
        synthetic::extend(&s, first, (fork - 1).min(tip), 0).unwrap();
    }
    if fork <= tip {
        synthetic::extend(&s, fork.max(first), tip, 1).unwrap();
    }
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(db: &Path) -> (Served, String) {
    let (child, url) = serve_support::serve(db);
    (Served(child), url)
}

#[test]
fn two_servers_diverging_at_a_planted_height_are_found_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (first, tip, planted) = (100u64, 2_099u64, 1_337u64);
    let a = dir.path().join("a.redb");
    let b = dir.path().join("b.redb");
    store(&a, first, tip, None);
    store(&b, first, tip, Some(planted));
    let (_sa, ua) = serve(&a);
    let (_sb, ub) = serve(&b);
    let n = tip - first + 1;
    let bound = 2 * (u64::BITS - (n - 1).leading_zeros()) as u64 + 4;

    let o = compare(&["--json", "--server", &ua, "--server", &ub]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["result"], "diverged");
    assert_eq!(v["first_divergence"], planted);
    assert_eq!(v["last_agreeing"], planted - 1);
    assert_eq!(v["same_bitcoin_block"], false);
    assert_eq!(v["request_bound"], bound);
    for node in v["nodes"].as_array().unwrap() {
        let r = node["requests"].as_u64().unwrap();
        assert!(r <= bound, "{r} requests, bound {bound}: {v}");
    }
    // The answers are the stores' own.
    let ra = vc_store::ReadOnlyStore::open(&a).unwrap();
    let want = ra.view().unwrap().consensus_hash(planted).unwrap().unwrap();
    assert_eq!(v["answers"][0]["consensus_hash"], want.to_string());
    let agreed = ra
        .view()
        .unwrap()
        .consensus_hash(planted - 1)
        .unwrap()
        .unwrap();
    assert_eq!(
        v["last_agreeing_answer"]["consensus_hash"],
        agreed.to_string()
    );
    drop(ra);

    // The text form says the same.
    let o = compare(&["--server", &ua, "--server", &ub]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("diverged at height {planted}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("last agreeing height {}", planted - 1)),
        "{text}"
    );
    assert!(text.contains("different Bitcoin blocks"), "{text}");

    // A server against a database, and two databases: the same answer.
    for args in [
        vec!["--json", "--server", &ua, "--db", b.to_str().unwrap()],
        vec![
            "--json",
            "--db",
            a.to_str().unwrap(),
            "--db",
            b.to_str().unwrap(),
        ],
    ] {
        let o = compare(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(json_of(&o)["first_divergence"], planted, "{args:?}");
    }

    // A server against itself agrees.
    let o = compare(&["--json", "--server", &ua, "--db", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_of(&o)["agree_up_to"], tip);
}

/// The nodes come from the command line only: a `VIRTUALCHAIN_DB` in the environment or a `db`
/// in the configuration file (for the commands that work on one database) adds no third node.
#[test]
fn the_environment_and_the_file_add_no_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    let other = dir.path().join("other.redb");
    store(&a, 10, 60, None);
    store(&other, 10, 60, Some(30));
    let (_s1, u1) = serve(&a);
    let (_s2, u2) = serve(&a);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("virtualchain.toml"),
        format!(
            "db = {:?}\nserver = \"http://127.0.0.1:9\"\n",
            other.to_str().unwrap()
        ),
    )
    .unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
        c.args(["--data-dir", data.to_str().unwrap(), "compare", "--json"])
            .args(["--server", &u1, "--server", &u2])
            .env("RUST_LOG", "warn")
            .env_remove("VIRTUALCHAIN_DB")
            .env_remove("VIRTUALCHAIN_SERVER");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    for env in [
        vec![],
        vec![("VIRTUALCHAIN_DB", other.to_str().unwrap())],
        vec![("VIRTUALCHAIN_SERVER", "http://127.0.0.1:9")],
    ] {
        let o = run(&env);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{env:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(json_of(&o)["result"], "agree", "{env:?}");
    }
}

/// A served v3 database compares with its own file: a v3 hash has a v2 hash's shape, and the
/// server's answers were refused as "not a v3 hash".
#[test]
fn a_served_v3_database_agrees_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    drop(synthetic::create(&a, Scheme::V3, 10, 50).unwrap());
    let (_sa, ua) = serve(&a);
    let o = compare(&["--json", "--server", &ua, "--db", a.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn divergence_at_the_first_block_and_at_the_tip() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    store(&a, 10, 500, None);
    for (planted, last) in [(10u64, serde_json::Value::Null), (500, 499.into())] {
        let b = dir.path().join(format!("b{planted}.redb"));
        store(&b, 10, 500, Some(planted));
        let o = compare(&[
            "--json",
            "--db",
            a.to_str().unwrap(),
            "--db",
            b.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let v = json_of(&o);
        assert_eq!(v["first_divergence"], planted);
        assert_eq!(v["last_agreeing"], last);
    }
}

#[test]
fn differing_tips_and_applications_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.redb");
    let short = dir.path().join("short.redb");
    let other = dir.path().join("other.redb");
    let empty = dir.path().join("empty.redb");
    store(&long, 100, 400, None);
    store(&short, 100, 250, None);
    store(&other, 101, 400, None);
    drop(synthetic::create(&empty, Scheme::V2, 100, 0).unwrap());
    let db = |p: &Path| p.to_str().unwrap().to_owned();

    // One is behind: they agree on what both have.
    let o = compare(&["--db", &db(&long), "--db", &db(&short)]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("agree on every block up to 250"), "{text}");
    assert!(text.contains("tips differ"), "{text}");

    // A different first block is another application instance.
    let o = compare(&["--json", "--db", &db(&long), "--db", &db(&other)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["result"], "different_apps");

    // An empty database has nothing to disagree with.
    let o = compare(&["--json", "--db", &db(&long), "--db", &db(&empty)]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_of(&o)["result"], "nothing_in_common");

    // Not two nodes: exit 2.
    assert_eq!(compare(&["--db", &db(&long)]).status.code(), Some(2));
    let o = compare(&["--db", &db(&long), "--db", &db(&long), "--db", &db(&long)]);
    assert_eq!(o.status.code(), Some(2));
}

/// A server that answers `/v1/tip` honestly-looking and every other request with `block`.
fn hostile(tip: &'static str, block: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let body = if line.contains("/v1/tip") { tip } else { block };
            let (status, body) = body.split_once('|').unwrap_or(("200 OK", body));
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

const TIP: &str = r#"{"app":{"name":"synthetic","version":"1.0.0","scheme":"v2","first_block":100,"network":"regtest"},"tip":{"height":400}}"#;

#[test]
fn malformed_and_unreachable_servers_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    store(&a, 100, 400, None);
    let ch = "ab".repeat(32);
    let wrong_height: &'static str = Box::leak(
        format!(
            r#"{{"height":1,"block_hash":"{}","consensus_hash":"{ch}"}}"#,
            "00".repeat(32)
        )
        .into_boxed_str(),
    );
    let short_ch: &'static str = Box::leak(
        format!(
            r#"{{"height":400,"block_hash":"{}","consensus_hash":"abcd"}}"#,
            "00".repeat(32)
        )
        .into_boxed_str(),
    );
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", hostile(TIP, "<html>hello</html>")),
        ("block at another height", hostile(TIP, wrong_height)),
        ("a consensus hash of the wrong size", hostile(TIP, short_ch)),
        (
            "no block below its own tip",
            hostile(TIP, r#"404 Not Found|{"code":"not_found","message":"no"}"#),
        ),
        (
            "a server error",
            hostile(
                TIP,
                r#"500 Internal Server Error|{"code":"internal","message":"\u001b[2Jboom"}"#,
            ),
        ),
        ("a tip without fields", hostile(r#"{"app":{}}"#, "{}")),
        (
            "a tip below its first block",
            hostile(
                r#"{"app":{"name":"synthetic","version":"1","scheme":"v2","first_block":100,"network":"regtest"},"tip":{"height":5}}"#,
                "{}",
            ),
        ),
        (
            "an unknown scheme",
            hostile(
                r#"{"app":{"name":"synthetic","version":"1","scheme":"v9","first_block":100,"network":"regtest"},"tip":{"height":400}}"#,
                "{}",
            ),
        ),
        ("unreachable", {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            drop(l);
            url
        }),
    ];
    for (what, url) in cases {
        let o = compare(&[
            "--timeout",
            "10s",
            "--server",
            &url,
            "--db",
            a.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "{what}: terminal escapes printed: {err}"
        );
    }
}
