//! A verified bootstrap through the binary: `snapshot --out-dir`, `serve --snapshot-dir` and
//! `snapshot fetch`, over the committed fixture's block files (no node needed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve_support;

use cli::{ok, run};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};

/// Asserts that `o` exited with `code`, showing its stderr otherwise.
fn exits(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap()
}

fn first_block() -> String {
    manifest()["names"]["first_block"]
        .as_u64()
        .unwrap()
        .to_string()
}

/// Indexes the fixture into `db`, up to `to`.
fn index(db: &Path, to: Option<u64>) {
    let source = format!("blk:{}", fixture().join("blocks").display());
    let first = first_block();
    let mut args = vec![
        "--network",
        "regtest",
        "index",
        "--app",
        "names",
        "--first-block",
        &first,
        "--confirmations",
        "1",
        "--source",
        &source,
        "--db",
        db.to_str().unwrap(),
    ];
    let to = to.map(|t| t.to_string());
    if let Some(t) = &to {
        args.extend(["--to", t]);
    }
    ok(&args);
}

fn status(db: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["--json", "status", "--db", db.to_str().unwrap()])).unwrap()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A database indexed up to `to`, its snapshot published in `dir/pub`, and a server.
struct Published {
    db: PathBuf,
    file: PathBuf,
    trusted: String,
    height: u64,
}

fn publish(dir: &Path, to: u64) -> Published {
    let db = dir.join("server.redb");
    index(&db, Some(to));
    let pub_dir = dir.join("pub");
    std::fs::create_dir_all(&pub_dir).unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "snapshot",
        "--db",
        db.to_str().unwrap(),
        "--out-dir",
        pub_dir.to_str().unwrap(),
    ]))
    .unwrap();
    let height = out["tip_height"].as_u64().unwrap();
    let ch = out["consensus_hash"].as_str().unwrap().to_owned();
    let file = PathBuf::from(out["file"].as_str().unwrap());
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        format!("{height}-{ch}.vcsnap")
    );
    Published {
        db,
        file,
        trusted: format!("{height}:{ch}"),
        height,
    }
}

fn fetch(url: &str, trusted: &str, db: &Path, extra: &[&str]) -> Output {
    let first = first_block();
    let mut args = vec![
        "--network",
        "regtest",
        "snapshot",
        "fetch",
        url,
        "--trusted",
        trusted,
        "--first-block",
        &first,
        "--db",
        db.to_str().unwrap(),
        "--timeout",
        "10s",
    ];
    args.extend(extra);
    run(&args)
}

/// Files beside `db` left by a fetch (partial downloads, ETags, imports in progress).
fn leftovers(db: &Path) -> Vec<String> {
    let name = db.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&name))
        .collect()
}

#[test]
fn a_fetched_snapshot_equals_the_servers_database_and_index_continues_from_it() {
    let m = manifest();
    let tip = m["names"]["tip_height"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = publish(dir.path(), tip - 30);
    let (child, url) = serve_support::serve_with(
        &p.db,
        &["--snapshot-dir", dir.path().join("pub").to_str().unwrap()],
    );
    let _server = Served(child);

    let listing: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{url}/v1/snapshots"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let listed = &listing["snapshots"][0];
    assert_eq!(listed["height"], p.height);
    assert_eq!(listed["bytes"], std::fs::metadata(&p.file).unwrap().len());

    let db = dir.path().join("client").join("names.redb");
    let o = fetch(&url, &p.trusted, &db, &["--retries", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("continues from {}", p.height + 1))
    );
    // The same database: tip, consensus hash, operations, application state, and every block.
    assert_eq!(status(&db), status(&p.db));
    let names = |d: &Path| ok(&["names", "list", "--db", d.to_str().unwrap()]);
    assert_eq!(names(&db), names(&p.db));
    ok(&[
        "compare",
        "--db",
        db.to_str().unwrap(),
        "--db",
        p.db.to_str().unwrap(),
    ]);
    assert_eq!(leftovers(&db), vec!["names.redb".to_owned()]);

    // A second fetch over it is refused: it creates databases, it never replaces one.
    let o = fetch(&url, &p.trusted, &db, &[]);
    exits(&o, 78);

    // `index` continues from the snapshot to the fixture's tip and its consensus hash.
    index(&db, None);
    let s = status(&db);
    assert_eq!(s["tip"]["height"], tip);
    assert_eq!(s["consensus_hash"], m["names"]["consensus_hash"]);
}

#[test]
fn tampered_snapshots_and_untrusted_hashes_are_refused_leaving_nothing() {
    let m = manifest();
    let tip = m["names"]["tip_height"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = publish(dir.path(), tip - 10);
    let bytes = std::fs::read(&p.file).unwrap();
    let name = p.file.file_name().unwrap().to_owned();

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let truncated = bytes[..bytes.len() - 7].to_vec();
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"more");
    for (what, body) in [
        ("a flipped byte", flipped),
        ("a truncated file", truncated),
        ("bytes after the end", appended),
    ] {
        // Published under the honest name, so that the server lists it.
        let pub_dir = dir.path().join(format!("pub-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&pub_dir).unwrap();
        std::fs::write(pub_dir.join(&name), body).unwrap();
        let (child, url) =
            serve_support::serve_with(&p.db, &["--snapshot-dir", pub_dir.to_str().unwrap()]);
        let _server = Served(child);
        let db = dir.path().join(format!("{}.redb", what.replace(' ', "-")));
        let o = fetch(&url, &p.trusted, &db, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(65), "{what}: {err}");
        assert!(err.contains("refused"), "{what}: {err}");
        assert!(leftovers(&db).is_empty(), "{what}: {:?}", leftovers(&db));
    }

    // The honest snapshot, but a consensus hash the user trusts that it does not reproduce:
    // refused before any download.
    let (child, url) = serve_support::serve_with(
        &p.db,
        &["--snapshot-dir", dir.path().join("pub").to_str().unwrap()],
    );
    let _server = Served(child);
    let wrong = format!("{}:{}", p.height, "00".repeat(16));
    let db = dir.path().join("wrong.redb");
    let o = fetch(&url, &wrong, &db, &[]);
    exits(&o, 65);
    assert!(leftovers(&db).is_empty());
    // A height the server publishes no snapshot at: unavailable.
    let o = fetch(
        &url,
        &format!("{}:{}", p.height - 1, "00".repeat(16)),
        &db,
        &[],
    );
    exits(&o, 69);
    // Another application instance (first block) than the server's: refused before any
    // download.
    let o = run(&[
        "--network",
        "regtest",
        "snapshot",
        "fetch",
        &url,
        "--trusted",
        &p.trusted,
        "--first-block",
        "1",
        "--db",
        db.to_str().unwrap(),
    ]);
    exits(&o, 78);
    assert!(leftovers(&db).is_empty());
    // Another deployment the server's /v1/tip does not show (the names app's registry
    // parameter): downloaded, refused on import.
    let o = fetch(&url, &p.trusted, &db, &["--registry", "default"]);
    exits(&o, 65);
    assert!(String::from_utf8_lossy(&o.stderr).contains("made for"));
    assert!(leftovers(&db).is_empty());
}

/// A server of `p`'s snapshot file with ranges, which cuts the body of its first download after
/// `at` bytes. It records each download's `Range` header.
struct CuttingServer {
    url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn cutting_server(p: &Published, at: usize) -> CuttingServer {
    let (file, height) = (p.file.clone(), p.height);
    let st = status(&p.db);
    let tip = serde_json::json!({
        "app": {
            "name": st["app"],
            "version": st["version"],
            "first_block": st["first_block"],
            "network": st["network"],
        },
    })
    .to_string();
    let ch = p.trusted.split_once(':').unwrap().1.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let body = std::fs::read(&file).unwrap();
        let mut downloads = 0usize;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
                    range = Some(v.trim().to_owned());
                }
            }
            if line.contains("/v1/tip ") {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{tip}",
                    tip.len()
                );
                continue;
            }
            if line.contains("/v1/snapshots ") {
                let list = format!(
                    r#"{{"snapshots":[{{"height":{height},"consensus_hash":"{ch}","bytes":{}}}]}}"#,
                    body.len()
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{list}",
                    list.len()
                );
                continue;
            }
            seen.lock().unwrap().push(range.clone());
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let part = &body[start..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\n".to_owned()
            };
            let _ = write!(
                stream,
                "{head}etag: \"t1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                part.len()
            );
            let n = if downloads == 0 {
                at.min(part.len())
            } else {
                part.len()
            };
            downloads += 1;
            let _ = stream.write_all(&part[..n]);
            let _ = stream.flush();
            // Dropping the stream cuts the transfer short of its Content-Length.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    CuttingServer { url, ranges }
}

#[test]
fn an_interrupted_transfer_resumes_in_the_same_run_and_after_a_kill() {
    let m = manifest();
    let tip = m["names"]["tip_height"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = publish(dir.path(), tip);
    let len = std::fs::metadata(&p.file).unwrap().len() as usize;
    let at = len / 3;

    // Cut once: the same run resumes from the byte it had.
    let s = cutting_server(&p, at);
    let db = dir.path().join("resumed.redb");
    let o = fetch(&s.url, &p.trusted, &db, &["--retries", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        *s.ranges.lock().unwrap(),
        vec![None, Some(format!("bytes={at}-"))]
    );
    assert_eq!(status(&db), status(&p.db));

    // Cut, and no retries: the run fails and keeps what it has; the next run resumes it.
    let s = cutting_server(&p, at);
    let db = dir.path().join("killed.redb");
    let o = fetch(&s.url, &p.trusted, &db, &["--retries", "0"]);
    exits(&o, 69);
    let partial: Vec<String> = leftovers(&db);
    assert!(
        partial.iter().any(|n| n.ends_with(".partial")),
        "{partial:?}"
    );
    let partial_path = dir
        .path()
        .join(partial.iter().find(|n| n.ends_with(".partial")).unwrap());
    assert_eq!(std::fs::metadata(&partial_path).unwrap().len() as usize, at);
    assert!(!db.exists());
    let o = fetch(&s.url, &p.trusted, &db, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        *s.ranges.lock().unwrap(),
        vec![None, Some(format!("bytes={at}-"))]
    );
    assert_eq!(status(&db), status(&p.db));
    assert_eq!(leftovers(&db), vec!["killed.redb".to_owned()]);
}

#[test]
fn the_real_server_answers_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let p = publish(
        dir.path(),
        manifest()["names"]["tip_height"].as_u64().unwrap(),
    );
    let (child, url) = serve_support::serve_with(
        &p.db,
        &["--snapshot-dir", dir.path().join("pub").to_str().unwrap()],
    );
    let _server = Served(child);
    let bytes = std::fs::read(&p.file).unwrap();
    let path = format!("{url}/v1/snapshots/{}", p.height);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut full = agent.get(&path).call().unwrap();
    assert_eq!(full.status().as_u16(), 200);
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let mut got = Vec::new();
    full.body_mut().as_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, bytes);

    let mut part = agent
        .get(&path)
        .header("Range", "bytes=100-")
        .header("If-Range", &etag)
        .call()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-{}/{}", bytes.len() - 1, bytes.len())
    );
    let mut got = Vec::new();
    part.body_mut().as_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, bytes[100..]);

    // Another file than the one the range was for: the whole file.
    let r = agent
        .get(&path)
        .header("Range", "bytes=100-")
        .header("If-Range", "\"old\"")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = agent
        .get(&path)
        .header("Range", &format!("bytes={}-", bytes.len()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    let r = agent
        .get(&format!("{url}/v1/snapshots/{}", p.height - 1))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
