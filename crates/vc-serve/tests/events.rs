//! Live events over synthetic stores: `/v1/events` replays and follows a writer through
//! reorgs (a client that applies the events holds the store's chain), resumes from
//! `Last-Event-ID`, refuses bad starts and extra streams, and ends at shutdown; webhooks
//! deliver the same events in order through failures; a fork the indexer records is announced
//! before its rollbacks; CORS, `/`, and the health checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::Value;
use vc_chash::Scheme;
use vc_serve::{Cors, EventsConfig, RunningServer, ServeConfig, Server};
use vc_store::{LastFork, ReadOnlyStore, Store};
use vc_testnode::synthetic;

#[path = "support/sse.rs"]
mod sse;

use sse::{Log, Replica, Sse, delivered, receiver};

const FIRST: u64 = 100;

fn start_with(path: &std::path::Path, edit: impl FnOnce(&mut ServeConfig)) -> RunningServer {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.events.poll = Duration::from_millis(20);
    config.events.webhook_retry = Duration::from_millis(20);
    edit(&mut config);
    Server::bind(ReadOnlyStore::open(path).unwrap(), None, config)
        .unwrap()
        .spawn()
        .unwrap()
}

fn get(url: &str, headers: &[(&str, &str)], method: &str) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let req = ureq::http::Request::builder().method(method).uri(url);
    let req = headers.iter().fold(req, |r, (k, v)| r.header(*k, *v));
    let mut r = agent.run(req.body(()).unwrap()).unwrap();
    let hs = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    (
        r.status().as_u16(),
        hs,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn json(url: &str) -> Value {
    serde_json::from_str(&get(url, &[], "GET").2).unwrap()
}

/// Reads events into `replica` until it holds `height` with `hash` (display hex) at its top.
fn follow_to(stream: &mut Sse, replica: &mut Replica, height: u64, hash: &str) {
    while replica
        .tip()
        .is_none_or(|(h, b)| h != height || b.block_hash != hash)
    {
        let ev = stream.next().expect("the stream ended early");
        replica.apply(&ev);
    }
}

/// The replica holds exactly the server's chain.
fn assert_same(url: &str, replica: &Replica) {
    let tip = json(&format!("{url}/v1/tip"));
    let top = tip["tip"]["height"].as_u64().unwrap();
    assert_eq!(replica.tip().unwrap().0, top);
    assert_eq!(replica.blocks.keys().next(), Some(&FIRST));
    for (h, held) in &replica.blocks {
        let b = json(&format!("{url}/v1/blocks/{h}"));
        assert_eq!(b["block_hash"], held.block_hash.as_str(), "block {h}");
        assert_eq!(
            b["consensus_hash"],
            held.consensus_hash.as_str(),
            "block {h}"
        );
        let ops = json(&format!("{url}/v1/blocks/{h}/ops"));
        assert_eq!(
            ops["operations"].as_array().unwrap(),
            &held.operations,
            "ops of {h}"
        );
    }
}

fn tip_hash(url: &str) -> (u64, String) {
    let t = json(&format!("{url}/v1/tip"));
    (
        t["tip"]["height"].as_u64().unwrap(),
        t["tip"]["block_hash"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_client_applying_the_events_holds_the_store_through_reorgs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, _) = synthetic::create(&path, Scheme::V2, FIRST, 150).unwrap();
    let server = start_with(&path, |_| {});
    let url = server.url();
    let addr = server.local_addr().to_string();

    let mut stream = Sse::open(&addr, &format!("/v1/events?from={FIRST}"), &[]);
    assert_eq!(stream.status(), 200, "{}", stream.head);
    assert!(stream.head.to_lowercase().contains("text/event-stream"));
    let mut replica = Replica::default();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_same(&url, &replica);
    let ops: usize = replica.blocks.values().map(|b| b.operations.len()).sum();
    assert!(ops > 20, "the synthetic chain has operations ({ops})");

    // New blocks, then a reorg of 10 blocks onto a longer branch, then another of 3.
    synthetic::extend(&store, FIRST + 150, FIRST + 159, 0).unwrap();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    store.rollback_to(FIRST + 149).unwrap();
    synthetic::extend(&store, FIRST + 150, FIRST + 164, 1).unwrap();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_eq!(replica.rollbacks, 10);
    store.rollback_to(FIRST + 161).unwrap();
    synthetic::extend(&store, FIRST + 162, FIRST + 166, 2).unwrap();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_eq!(replica.rollbacks, 13);
    assert_same(&url, &replica);

    // A second client resumes from the id of a block the next reorg replaces: it first hears
    // that block rolled back, then the new branch.
    let stale = format!(
        "{}:{}",
        FIRST + 165,
        replica.blocks[&(FIRST + 165)].block_hash
    );
    store.rollback_to(FIRST + 163).unwrap();
    synthetic::extend(&store, FIRST + 164, FIRST + 170, 3).unwrap();
    let mut resumed = Sse::open(&addr, "/v1/events?from=100", &[("Last-Event-ID", &stale)]);
    let first = resumed.next().unwrap();
    assert_eq!(first.kind, "rollback");
    assert_eq!(first.data["height"], FIRST + 165);
    let next = resumed.next().unwrap();
    assert_eq!(
        (next.kind.as_str(), &next.data["height"]),
        ("apply", &Value::from(FIRST + 165))
    );

    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_same(&url, &replica);

    // Shutdown does not wait on the open streams, and ends them.
    let started = Instant::now();
    server.shutdown().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    while stream.next().is_some() {}
    drop(resumed);
}

#[test]
fn bad_starts_and_extra_streams_are_refused_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (_store, _) = synthetic::create(&path, Scheme::Legacy, FIRST, 20).unwrap();
    let server = start_with(&path, |c| c.events.max_streams = 1);
    let addr = server.local_addr().to_string();
    for (path, header) in [
        ("/v1/events?from=99", None),
        ("/v1/events?from=121", None),
        ("/v1/events?from=x", None),
        ("/v1/events?since=1", None),
        ("/v1/events", Some("120:00")),
        ("/v1/events", Some(&*format!("130:{}", "00".repeat(32)))),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
        let s = Sse::open(&addr, path, &headers);
        assert_eq!(s.status(), 400, "{path} {header:?}");
        let body = s.body();
        assert!(body.contains("\"code\":\"bad_request\""), "{body}");
    }
    // The tip's successor is a valid start (only what comes next); a second stream is not.
    let mut open = Sse::open(&addr, "/v1/events?from=120", &[]);
    assert_eq!(open.status(), 200);
    let s = Sse::open(&addr, "/v1/events", &[]);
    assert_eq!(s.status(), 503);
    assert!(s.body().contains("too_many_streams"));
    // "start": a client holding nothing gets everything.
    drop(open);
    let started = Instant::now();
    loop {
        open = Sse::open(&addr, "/v1/events", &[("Last-Event-ID", "start")]);
        if open.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the closed stream's slot was not freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(open.next().unwrap().data["height"], FIRST);
}

/// Records a fork in the store as the indexer does: with the rollback to `fork_height` in the
/// same transaction when `automatic`, alone otherwise.
fn record_fork(store: &Store, seq: u64, fork_height: u64, automatic: bool) {
    let tip = store.tip().unwrap().unwrap().height;
    let mut w = store.writer().unwrap();
    w.set_last_fork(LastFork::new(
        seq,
        fork_height,
        tip,
        tip + 1,
        14,
        3,
        automatic,
    ))
    .unwrap();
    if automatic {
        w.rollback_to(fork_height).unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn a_fork_the_indexer_records_is_announced_before_its_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, _) = synthetic::create(&path, Scheme::V2, FIRST, 40).unwrap();
    // A fork found before the server started is old news.
    record_fork(&store, 1, FIRST + 39, false);
    let (hook, hook_log) = receiver(0);
    let server = start_with(&path, |c| c.events.webhooks = vec![hook.clone()]);
    // Let the webhook start at the tip (it only sends what comes next).
    std::thread::sleep(Duration::from_millis(300));
    let url = server.url();
    let addr = server.local_addr().to_string();
    let mut stream = Sse::open(&addr, &format!("/v1/events?from={FIRST}"), &[]);
    let mut replica = Replica::default();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert!(replica.forks.is_empty());

    // Reverted automatically: the fork, then its 6 rollbacks, then the new branch.
    record_fork(&store, 2, FIRST + 33, true);
    synthetic::extend(&store, FIRST + 34, FIRST + 41, 1).unwrap();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_eq!(replica.rollbacks, 6);
    assert_eq!(replica.forks.len(), 1);
    let (rollbacks_before, f) = &replica.forks[0];
    assert_eq!(*rollbacks_before, 0, "the fork comes before its rollbacks");
    assert_eq!(
        (&f["seq"], &f["fork_height"], &f["depth"], &f["automatic"]),
        (
            &Value::from(2),
            &Value::from(FIRST + 33),
            &Value::from(6),
            &Value::Bool(true)
        )
    );
    assert_eq!(
        (&f["probe_requests"], &f["search_requests"]),
        (&Value::from(14), &Value::from(3))
    );
    assert_same(&url, &replica);

    // Beyond the indexer's limit: announced alone, the chain unchanged until it is reverted.
    record_fork(&store, 3, FIRST + 20, false);
    let ev = stream.next().unwrap();
    replica.apply(&ev);
    assert_eq!(
        (ev.kind.as_str(), &ev.data["depth"], &ev.data["automatic"]),
        ("fork", &Value::from(21), &Value::Bool(false))
    );
    store.rollback_to(FIRST + 20).unwrap();
    synthetic::extend(&store, FIRST + 21, FIRST + 45, 2).unwrap();
    let (h, hash) = tip_hash(&url);
    follow_to(&mut stream, &mut replica, h, &hash);
    assert_eq!((replica.rollbacks, replica.forks.len()), (6 + 21, 2));
    assert_same(&url, &replica);

    // The webhook got both forks too, in the same places.
    let reaches_tip = |d: &[Value]| d.last().is_some_and(|v| v["block_hash"] == hash.as_str());
    let started = Instant::now();
    while !reaches_tip(&delivered(&hook_log)) {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let kinds: Vec<Value> = delivered(&hook_log)
        .iter()
        .map(|v| v["type"].clone())
        .filter(|t| t != "apply")
        .collect();
    let mut want = vec![Value::from("fork")];
    want.extend(vec![Value::from("rollback"); 6]);
    want.push(Value::from("fork"));
    want.extend(vec![Value::from("rollback"); 21]);
    assert_eq!(kinds, want);
    server.shutdown().unwrap();
}

#[test]
fn webhooks_get_every_event_in_order_through_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, _) = synthetic::create(&path, Scheme::V2, FIRST, 10).unwrap();
    let (failing, failing_log) = receiver(3);
    let (healthy, healthy_log) = receiver(0);
    let server = start_with(&path, |c| {
        c.events.webhooks = vec![failing.clone(), healthy.clone()];
        c.events.buffer = 4;
    });
    // Let the webhooks start at the tip (they only send what comes next).
    std::thread::sleep(Duration::from_millis(300));
    let url = server.url();
    let wait_for = |log: &Log, done: &dyn Fn(&[Value]) -> bool| {
        let started = Instant::now();
        while !done(&delivered(log)) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{:?}",
                log.lock()
                    .unwrap()
                    .iter()
                    .map(|(s, v)| format!("{s} {} {}", v["type"], v["height"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    synthetic::extend(&store, FIRST + 10, FIRST + 19, 0).unwrap();
    wait_for(&healthy_log, &|d| d.len() == 10);
    // A reorg of 5 blocks: the healthy receiver hears them rolled back; the failing one may
    // still be behind, and then never hears of the replaced branch at all.
    store.rollback_to(FIRST + 14).unwrap();
    synthetic::extend(&store, FIRST + 15, FIRST + 21, 1).unwrap();
    let (_, tip) = tip_hash(&url);
    let reaches_tip = |d: &[Value]| {
        d.last()
            .is_some_and(|v| v["height"] == FIRST + 21 && v["block_hash"] == tip.as_str())
    };
    wait_for(&failing_log, &reaches_tip);
    wait_for(&healthy_log, &reaches_tip);

    // The failing receiver's first event was sent four times (three failures), and nothing
    // overtook it.
    let failing_all = failing_log.lock().unwrap().clone();
    let first_ok = delivered(&failing_log)[0].clone();
    assert_eq!(failing_all.len(), delivered(&failing_log).len() + 3);
    for (_, body) in &failing_all[..4] {
        assert_eq!(body, &first_ok);
    }
    assert_eq!(first_ok["height"], FIRST + 10);

    // Applying either receiver's events to the chain below the webhooks' start gives the
    // store's chain.
    let mut base = Replica::default();
    for h in FIRST..FIRST + 10 {
        let b = json(&format!("{url}/v1/blocks/{h}"));
        let ops = json(&format!("{url}/v1/blocks/{h}/ops"));
        base.blocks.insert(
            h,
            sse::Held {
                block_hash: b["block_hash"].as_str().unwrap().to_owned(),
                consensus_hash: b["consensus_hash"].as_str().unwrap().to_owned(),
                operations: ops["operations"].as_array().unwrap().clone(),
            },
        );
    }
    for (log, rollbacks) in [(&failing_log, None), (&healthy_log, Some(5))] {
        let mut replica = Replica {
            blocks: base.blocks.clone(),
            ..Replica::default()
        };
        for body in delivered(log) {
            replica.apply_body(&body);
        }
        if let Some(r) = rollbacks {
            assert_eq!(replica.rollbacks, r);
        }
        assert_same(&url, &replica);
    }
    server.shutdown().unwrap();
}

#[test]
fn cors_the_page_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let empty = dir.path().join("e.redb");
    let (store, _) = synthetic::create(&path, Scheme::V2, FIRST, 5).unwrap();
    let (_e, _) = synthetic::create(&empty, Scheme::V2, FIRST, 0).unwrap();
    let server = start_with(&path, |_| {});
    let url = server.url();
    let origin = ("Origin", "http://elsewhere.example:8000");
    let header =
        |hs: &[(String, String)], k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

    // Default: any origin may read /v1, and preflights are answered.
    let (s, hs, _) = get(&format!("{url}/v1/tip"), &[origin], "GET");
    assert_eq!(
        (s, header(&hs, "access-control-allow-origin")),
        (200, Some("*".into()))
    );
    let (s, hs, _) = get(
        &format!("{url}/v1/events"),
        &[
            origin,
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        "OPTIONS",
    );
    assert_eq!(s, 204);
    assert_eq!(
        header(&hs, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(
        header(&hs, "access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(
        header(&hs, "access-control-allow-headers").as_deref(),
        Some("last-event-id")
    );
    // Not on /metrics.
    let (_, hs, _) = get(&format!("{url}/metrics"), &[origin], "GET");
    assert_eq!(header(&hs, "access-control-allow-origin"), None);

    // The page: escaped values and the links.
    let (s, hs, page) = get(&format!("{url}/"), &[], "GET");
    assert_eq!(s, 200);
    assert!(
        header(&hs, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let (h, hash) = tip_hash(&url);
    let ch = json(&format!("{url}/v1/tip"))["tip"]["consensus_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    for want in [
        h.to_string(),
        hash,
        ch,
        "href=\"/v1/openapi.json\"".into(),
        "href=\"/metrics\"".into(),
    ] {
        assert!(page.contains(&want), "{want} not in {page}");
    }

    // Health: live, and ready with the tip.
    let (s, _, body) = get(&format!("{url}/healthz/live"), &[], "GET");
    assert_eq!(s, 200, "{body}");
    let (s, _, body) = get(&format!("{url}/healthz/ready"), &[], "GET");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s, &v["ready"], &v["tip"]["height"]),
        (200, &Value::Bool(true), &Value::from(h))
    );
    // No indexer recorded its source's tip: ready, and the lag is unknown.
    assert!(v["lag_blocks"].is_null() && v["chain_tip"].is_null(), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("unknown"), "{v}");
    // The indexer records what it saw of its source: ready only within --ready-lag.
    for (chain_tip, confirmations, lag, ready) in [
        (h + 10, 1, 10, false),
        (h + 5, 6, 0, true),
        (h + 2, 1, 2, true),
    ] {
        let mut w = store.writer().unwrap();
        w.set_source_tip(vc_store::SourceTip::new(chain_tip, confirmations))
            .unwrap();
        w.commit().unwrap();
        drop(w);
        let (s, _, body) = get(&format!("{url}/healthz/ready"), &[], "GET");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lag_blocks"], lag, "{v}");
        assert_eq!(v["chain_tip"], chain_tip, "{v}");
        assert_eq!((s == 200, &v["ready"]), (ready, &Value::Bool(ready)), "{v}");
    }
    server.shutdown().unwrap();

    // A listed origin only; others get no CORS headers. An empty store is not ready.
    let server = start_with(&empty, |c| {
        c.cors = Cors::Origins(vec!["http://ok.example".into()])
    });
    let url = server.url();
    let (_, hs, _) = get(
        &format!("{url}/v1/tip"),
        &[("Origin", "http://ok.example")],
        "GET",
    );
    assert_eq!(
        header(&hs, "access-control-allow-origin").as_deref(),
        Some("http://ok.example")
    );
    assert_eq!(header(&hs, "vary").as_deref(), Some("origin"));
    let (_, hs, _) = get(&format!("{url}/v1/tip"), &[origin], "GET");
    assert_eq!(header(&hs, "access-control-allow-origin"), None);
    let (s, _, body) = get(&format!("{url}/healthz/ready"), &[], "GET");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, &v["ready"]), (503, &Value::Bool(false)));
    assert!(v["reason"].as_str().unwrap().contains("no blocks"), "{v}");
    server.shutdown().unwrap();

    // --no-cors: none at all.
    let server = start_with(&path, |c| c.cors = Cors::Off);
    let (_, hs, _) = get(&format!("{}/v1/tip", server.url()), &[origin], "GET");
    assert_eq!(header(&hs, "access-control-allow-origin"), None);
    server.shutdown().unwrap();
    let _ = (Store::read_meta(&path), EventsConfig::default());
}
