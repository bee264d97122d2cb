//! Published snapshots: which files are listed, and what bounds a download (its place, a
//! client that stops reading, a client that leaves, shutdown).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vc_chash::{History, Scheme};
use vc_serve::{RunningServer, ServeConfig, Server, snapshot_file_name};
use vc_store::ReadOnlyStore;
use vc_testnode::synthetic;

const FIRST: u64 = 100;

fn serve(db: &Path, dir: &Path, tune: impl FnOnce(&mut ServeConfig)) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.snapshots.dir = Some(dir.to_path_buf());
    tune(&mut config);
    Server::bind(ReadOnlyStore::open(db).unwrap(), None, config)
        .unwrap()
        .spawn()
        .unwrap()
}

fn get(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url).call().unwrap();
    let status = r.status().as_u16();
    let mut body = Vec::new();
    r.body_mut()
        .with_config()
        .limit(1 << 30)
        .reader()
        .read_to_end(&mut body)
        .unwrap();
    (status, body)
}

/// A store of `blocks` blocks and its snapshot published in `dir`; the snapshot's height.
fn published(db: &Path, dir: &Path, blocks: u64) -> u64 {
    let (store, chs) = synthetic::create(db, Scheme::V2, FIRST, blocks).unwrap();
    let tip = FIRST + blocks - 1;
    let name = snapshot_file_name(tip, chs.last().unwrap());
    vc_store::snapshot::export(&store.view().unwrap(), &dir.join(name)).unwrap();
    tip
}

#[test]
fn only_snapshots_of_the_stores_chain_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.redb");
    let dir = tmp.path().join("pub");
    std::fs::create_dir(&dir).unwrap();
    let tip = published(&db, &dir, 300);
    let view = ReadOnlyStore::open(&db).unwrap().view().unwrap();
    let ch_200 = view.consensus_hash(200).unwrap().unwrap();
    drop(view);
    // Another branch's hash at a height, a name that is not a snapshot's, a directory.
    let other = "ab".repeat(32);
    std::fs::write(dir.join(format!("250-{other}.vcsnap")), b"x").unwrap();
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    std::fs::write(
        dir.join(format!("{}.partial", snapshot_file_name(200, &ch_200))),
        b"x",
    )
    .unwrap();
    std::fs::create_dir(dir.join(snapshot_file_name(200, &ch_200))).unwrap();
    let server = serve(&db, &dir, |_| {});
    let (status, body) = get(&format!("{}/v1/snapshots", server.url()));
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let list = v["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["height"], tip);
    assert_eq!(list[0]["path"], format!("/v1/snapshots/{tip}"));
    let (status, _) = get(&format!("{}/v1/snapshots/250", server.url()));
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{}/v1/snapshots/0250", server.url()));
    assert_eq!(status, 400);

    // Without a directory: an empty list.
    let bare = Server::bind(
        ReadOnlyStore::open(&db).unwrap(),
        None,
        ServeConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let (status, body) = get(&format!("{}/v1/snapshots", bare.url()));
    assert_eq!((status, body), (200, br#"{"snapshots":[]}"#.to_vec()));
}

/// Starts a download and reads only its head and a few bytes, keeping the connection open.
fn stalled(url: &str, path: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// Polls `url` until it answers 200 with the whole file, within 10 s.
fn eventually_downloads(url: &str, len: usize) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get(url);
        if status == 200 {
            assert_eq!(body.len(), len);
            return start.elapsed();
        }
        assert_eq!(status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the place was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_download_holds_its_place_until_its_client_leaves_or_stalls() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.redb");
    let dir = tmp.path().join("pub");
    std::fs::create_dir(&dir).unwrap();
    // Several MiB: more than the socket buffers and the server's few chunks hold.
    let tip = published(&db, &dir, 40_000);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let len = usize::try_from(std::fs::metadata(&file).unwrap().len()).unwrap();
    assert!(len > 4 << 20, "{len}");
    let path = format!("/v1/snapshots/{tip}");

    // One place; a slow client is dropped after 300 ms of reading nothing.
    let server = serve(&db, &dir, |c| {
        c.snapshots.max_downloads = 1;
        c.snapshots.slow_client = Duration::from_millis(300);
    });
    let url = format!("{}{path}", server.url());
    let first = stalled(&server.url(), &path);
    let (status, body) = get(&url);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "too_many_downloads");
    // The stalled client still holds its connection; its download is dropped all the same.
    eventually_downloads(&url, len);
    drop(first);

    // A client that leaves frees its place at once (well before the slow-client limit).
    let server = serve(&db, &dir, |c| {
        c.snapshots.max_downloads = 1;
        c.snapshots.slow_client = Duration::from_secs(3600);
    });
    let url = format!("{}{path}", server.url());
    let first = stalled(&server.url(), &path);
    assert_eq!(get(&url).0, 503);
    drop(first);
    eventually_downloads(&url, len);

    // The stalled connection itself is closed once a write has waited the write timeout:
    // reading drains what the socket buffers held, then meets the end of the stream.
    let server = serve(&db, &dir, |c| {
        c.snapshots.slow_client = Duration::from_secs(3600);
        c.write_timeout = Duration::from_millis(300);
    });
    let mut first = stalled(&server.url(), &path);
    std::thread::sleep(Duration::from_millis(1_500));
    let start = Instant::now();
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match first.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            // The 10 s read timeout of `stalled`: the server kept the connection.
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "the stalled connection stayed open ({received} bytes read)"
    );
    assert!(
        received < len,
        "the whole snapshot arrived: nothing stalled"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(server);
    let server = serve(&db, &dir, |c| {
        c.snapshots.max_downloads = 1;
        c.snapshots.slow_client = Duration::from_secs(3600);
    });

    // Shutdown does not wait on a stalled download.
    let _stuck = stalled(&server.url(), &path);
    let start = Instant::now();
    server.shutdown().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
