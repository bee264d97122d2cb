//! The server's limits, probed as an attacker would: every request's work is bounded before
//! the store is read, and every refusal is JSON. (docs/security.md lists each limit with the
//! test that proves it.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vc_chash::Scheme;
use vc_serve::{Extension, RunningServer, ServeConfig, Server};
use vc_store::{ReadOnlyStore, StoreError, StoredOp, View};
use vc_testnode::synthetic;

const FIRST: u64 = 100;

/// An application with a staleness window of 24 blocks and no state.
struct Stale24;

impl Extension for Stale24 {
    fn collection(&self) -> &'static str {
        "things"
    }
    fn staleness(&self) -> Option<u64> {
        Some(24)
    }
    fn keys(&self, _: &StoredOp) -> Vec<String> {
        Vec::new()
    }
    fn lookup(&self, _: &View, _: &str) -> Result<Option<Value>, StoreError> {
        Ok(None)
    }
}

fn serve(
    path: &std::path::Path,
    ext: Option<Arc<dyn Extension>>,
    tune: impl FnOnce(&mut ServeConfig),
) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    tune(&mut config);
    Server::bind(ReadOnlyStore::open(path).unwrap(), ext, config)
        .unwrap()
        .spawn()
        .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, JSON body); panics unless the body is JSON.
fn json(url: &str) -> (u16, Value) {
    let mut r = agent().get(url).call().unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.body_mut().read_to_vec().unwrap();
    assert!(
        ct.starts_with("application/json"),
        "{url}: {ct}: {}",
        String::from_utf8_lossy(&body)
    );
    (r.status().as_u16(), serde_json::from_slice(&body).unwrap())
}

#[test]
fn a_fresh_window_beyond_the_limit_is_refused_before_any_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (_store, chs) = synthetic::create(&path, Scheme::V2, FIRST, 60).unwrap();
    let ch = chs[10];

    // With the application's staleness window (24), that is the limit.
    let server = serve(&path, Some(Arc::new(Stale24)), |_| {});
    let url = server.url();
    let fresh = |q: &str| json(&format!("{url}/v1/consensus/{ch}/fresh?{q}"));
    assert_eq!(fresh(&format!("height={}", FIRST + 20)).1["window"], 24);
    assert_eq!(fresh(&format!("height={}&window=24", FIRST + 20)).0, 200);
    for q in [
        "height=120&window=25".to_owned(),
        "height=120&window=18446744073709551615".to_owned(),
        // Refused for the window even where the height is beyond the store.
        "height=500001&window=18446744073709551615".to_owned(),
    ] {
        let (s, v) = fresh(&q);
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("bad_request")),
            "{q}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("limit of 24"),
            "{v}"
        );
    }
    server.shutdown().unwrap();

    // Without one, the configured limit (default 1,024).
    let server = serve(&path, None, |_| {});
    let url = server.url();
    let fresh = |q: &str| json(&format!("{url}/v1/consensus/{ch}/fresh?{q}")).0;
    assert_eq!(fresh("height=150&window=1024"), 200);
    assert_eq!(fresh("height=150&window=1025"), 400);
    server.shutdown().unwrap();
    let server = serve(&path, None, |c| c.max_fresh_window = 5);
    let url = server.url();
    let fresh = |q: &str| json(&format!("{url}/v1/consensus/{ch}/fresh?{q}")).0;
    assert_eq!(fresh("height=115&window=5"), 200);
    assert_eq!(fresh("height=115&window=6"), 400);
    server.shutdown().unwrap();
}

#[test]
fn heights_have_one_spelling_and_errors_echo_little() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (_store, chs) = synthetic::create(&path, Scheme::V2, FIRST, 60).unwrap();
    let server = serve(&path, Some(Arc::new(Stale24)), |_| {});
    let url = server.url();
    let ch = chs[10];

    assert_eq!(json(&format!("{url}/v1/blocks/{}", FIRST + 3)).0, 200);
    for bad in [
        "+103",
        "0103",
        "00",
        "1%2B2",
        "%20103",
        "103%20",
        "18446744073709551616",
    ] {
        for path in [
            format!("/v1/blocks/{bad}"),
            format!("/v1/blocks/{bad}/ops"),
            format!("/v1/proofs/{bad}"),
            format!("/v1/proofs/110?trusted={bad}"),
            format!("/v1/consensus/{ch}/fresh?height={bad}"),
            format!("/v1/consensus/{ch}/fresh?height=110&window={bad}"),
        ] {
            let (s, v) = json(&format!("{url}{path}"));
            assert_eq!(
                (s, v["code"].as_str()),
                (400, Some("bad_request")),
                "{path}: {v}"
            );
        }
    }
    assert_eq!(json(&format!("{url}/v1/blocks/0")).0, 404);

    // A path segment that is not UTF-8 once decoded: JSON, not text.
    for path in ["/v1/blocks/%FF", "/v1/things/%C3%28", "/v1/consensus/%80"] {
        let (s, v) = json(&format!("{url}{path}"));
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("bad_request")),
            "{path}: {v}"
        );
    }

    // The 404 handler echoes at most 64 characters of the path.
    let long = format!("/v2/{}", "x".repeat(1900));
    let (s, v) = json(&format!("{url}{long}"));
    assert_eq!((s, v["code"].as_str()), (404, Some("no_route")));
    let message = v["message"].as_str().unwrap();
    assert!(message.len() < 100, "{message}");
    assert!(message.contains("/v2/xxx"), "{message}");
    // Long URIs: refused, or not found, without an echo.
    let (s, v) = json(&format!("{url}/v2/{}", "x".repeat(60_000)));
    assert!([400, 404, 414, 431].contains(&s), "{s} {v}");
    assert!(v.to_string().len() < 300, "{v}");
    server.shutdown().unwrap();
}
/// A metric's value, `None` when `/metrics` does not answer (503 while the permits are taken).
fn try_metric(url: &str, name: &str) -> Option<i64> {
    let mut r = agent().get(&format!("{url}/metrics")).call().ok()?;
    if r.status() != 200 {
        return None;
    }
    let text = r.body_mut().read_to_string().ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn metric(url: &str, name: &str) -> i64 {
    try_metric(url, name).unwrap_or_else(|| panic!("no metric {name}"))
}

/// A store of `n` blocks, and the consensus hash of its first block: a `fresh` request naming
/// it at the tip with a window of `n` reads every block's consensus hash.
fn big_store(dir: &std::path::Path, n: u64) -> (std::path::PathBuf, vc_chash::ConsensusHash) {
    let path = dir.join("big.redb");
    let (_store, chs) = synthetic::create(&path, Scheme::V2, FIRST, n).unwrap();
    (path, chs[0])
}

/// Polls `/metrics` until `done` holds (retrying 503s), for at most 20 s.
fn settle(url: &str, done: impl Fn(&dyn Fn(&str) -> Option<i64>) -> Option<bool>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let get = |name: &str| try_metric(url, name);
        if done(&get) == Some(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not settle"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn abandoned_work_stops_and_holds_its_permit_until_it_has() {
    const BLOCKS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (path, ch) = big_store(dir.path(), BLOCKS);
    let server = serve(&path, None, |c| {
        c.max_in_flight = 4;
        c.max_fresh_window = u64::MAX;
    });
    let url = server.url();
    let expensive = format!(
        "/v1/consensus/{ch}/fresh?height={}&window={BLOCKS}",
        FIRST + BLOCKS
    );
    let started = std::time::Instant::now();
    assert_eq!(json(&format!("{url}{expensive}")).1["fresh"], true);
    eprintln!("one expensive request: {:?}", started.elapsed());

    // 100 requests sent, and their connections closed at once; then 100 sent, and closed
    // while the first ones are at work.
    let send = || {
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        c.write_all(format!("GET {expensive} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .unwrap();
        c
    };
    for _ in 0..100 {
        drop(send());
    }
    let held: Vec<TcpStream> = (0..100).map(|_| send()).collect();
    // Closed once the work holds every permit (the metrics request is refused then).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while agent()
        .get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .status()
        != 503
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the work never filled the permits"
        );
    }
    drop(held);
    // When idle, the only request in flight and the only work running are the metrics
    // request's own; no more than 4 pieces of work ever ran at once, the rest were refused,
    // and the abandoned work stopped early.
    settle(&url, |m| {
        Some(m("vc_http_requests_in_flight")? == 1 && m("vc_work_running")? == 1)
    });
    let text = agent()
        .get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let count = |status: u16| -> i64 {
        let prefix = format!(
            "vc_http_requests_total{{route=\"/v1/consensus/{{ch}}/fresh\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0)
    };
    // The bound: never more than the 4 permits' worth of work at once. How many of the held
    // requests got a permit depends on the machine's speed (a permit freed by finished work
    // goes to the next request to arrive), so the counts are bounded, not exact: most are
    // refused, few ran, and the ones whose clients left stopped early.
    assert!(metric(&url, "vc_work_running_peak") <= 4, "{text}");
    assert!(metric(&url, "vc_work_abandoned_total") >= 1, "{text}");
    let ran = count(200) - 1 + count(499);
    assert!(ran <= 20, "{ran} of the held requests ran: {text}");
    assert!(count(503) >= 80, "{text}");
    assert!(count(499) >= 1, "{text}");
    server.shutdown().unwrap();
}

#[test]
fn timed_out_work_stops() {
    const BLOCKS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (path, ch) = big_store(dir.path(), BLOCKS);
    let server = serve(&path, None, |c| {
        c.request_timeout = Duration::from_millis(1);
        c.max_fresh_window = u64::MAX;
    });
    let url = server.url();
    let (s, v) = json(&format!(
        "{url}/v1/consensus/{ch}/fresh?height={}&window={BLOCKS}",
        FIRST + BLOCKS
    ));
    assert_eq!((s, v["code"].as_str()), (503, Some("timeout")));
    settle(&url, |m| {
        Some(m("vc_work_abandoned_total")? >= 1 && m("vc_work_running")? <= 1)
    });
    server.shutdown().unwrap();
}

/// Reads what the server sends until it closes the connection (or 15 s pass: `None`).
fn read_to_close(c: &mut TcpStream) -> Option<Vec<u8>> {
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(out),
            Err(_) => return None,
        }
    }
}

/// The status and JSON body of a raw answer.
fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text:?}"));
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    (status, serde_json::from_str(body).unwrap())
}

fn small_store(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("s.redb");
    synthetic::create(&path, Scheme::V2, FIRST, 20).unwrap();
    path
}

#[test]
fn idle_connections_beyond_the_cap_do_not_lock_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&small_store(dir.path()), None, |c| c.max_connections = 20);
    let url = server.url();
    let silent: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A new client is served: it evicts a connection that has sent nothing.
    assert_eq!(json(&format!("{url}/v1/tip")).0, 200);
    let open = metric(&url, "vc_http_connections");
    assert!(open <= 21, "{open} connections open");
    drop(silent);
    server.shutdown().unwrap();
}

#[test]
fn a_slow_request_head_is_dropped_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&small_store(dir.path()), None, |c| {
        c.header_read_timeout = Duration::from_millis(300);
    });
    // Half a request head, then silence: closed, not held.
    let mut slow = TcpStream::connect(server.local_addr()).unwrap();
    slow.write_all(b"GET /v1/tip HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .unwrap();
    assert!(
        read_to_close(&mut slow).is_some(),
        "the connection was held"
    );
    // An idle keep-alive connection too, after its answer.
    let mut idle = TcpStream::connect(server.local_addr()).unwrap();
    idle.write_all(b"GET /v1/tip HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let raw = read_to_close(&mut idle).expect("the idle connection was held");
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    server.shutdown().unwrap();
}

#[test]
fn oversized_and_malformed_heads_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&small_store(dir.path()), None, |_| {});
    // 300 KB of a header that never ends: refused once the 16 KiB buffer is full.
    let mut big = TcpStream::connect(server.local_addr()).unwrap();
    let _ = big.write_all(b"GET /v1/tip HTTP/1.1\r\nhost: x\r\nx-big: ");
    let chunk = vec![b'a'; 4096];
    for _ in 0..75 {
        if big.write_all(&chunk).is_err() {
            break;
        }
    }
    let (status, v) = parse_answer(&read_to_close(&mut big).unwrap());
    assert_eq!(status, 431, "{v}");
    assert!(v["message"].as_str().unwrap().contains("16384"), "{v}");

    let mut garbage = TcpStream::connect(server.local_addr()).unwrap();
    garbage.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let (status, v) = parse_answer(&read_to_close(&mut garbage).unwrap());
    assert_eq!((status, v["code"].as_str()), (400, Some("bad_request")));
    server.shutdown().unwrap();
}

#[test]
fn shutdown_ends_whatever_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&small_store(dir.path()), None, |_| {});
    let mut half = TcpStream::connect(server.local_addr()).unwrap();
    half.write_all(b"GET /v1/tip HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.local_addr()).unwrap());
    }
    std::thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    server.shutdown().unwrap();
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}");
    // 1 s of grace, and half a second for work: 2 s is the promise; generous for a loaded machine.
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
}
