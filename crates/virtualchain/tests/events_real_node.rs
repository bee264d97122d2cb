//! Live events across a real reorg: `virtualchain index --follow` writes a database from a
//! regtest bitcoind, `virtualchain serve --webhook URL` reads it in another process, and a
//! client follows `/v1/events` from the first block while a reorg replaces the block that
//! revoked a name. Applying the stream's events (and, separately, the webhook's) to an empty map
//! gives exactly the database's chain: every block's hash, consensus hash and operations, and
//! the tip. The indexer's fork detection arrives as one `fork` event before the rollbacks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vc_light::LightClient;
use vc_testnode::TestNode;

#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

#[path = "support/revoked.rs"]
mod revoked;

use revoked::wait_for;

#[path = "support/serve.rs"]
mod serve_support;

#[path = "../../vc-serve/tests/support/sse.rs"]
mod sse;

use sse::{Replica, Sse, delivered, receiver};

/// The replica holds exactly the served database's chain, from the first block to the tip.
fn assert_same(client: &LightClient, first: u64, replica: &Replica) {
    let tip = client.get_json("/v1/tip").unwrap();
    let (height, hash) = (
        tip["tip"]["height"].as_u64().unwrap(),
        tip["tip"]["block_hash"].as_str().unwrap(),
    );
    let (top, held) = replica.tip().unwrap();
    assert_eq!((top, held.block_hash.as_str()), (height, hash));
    assert_eq!(replica.blocks.len() as u64, height - first + 1);
    for (h, held) in &replica.blocks {
        let b = client.get_json(&format!("/v1/blocks/{h}")).unwrap();
        assert_eq!(b["block_hash"], held.block_hash.as_str(), "block {h}");
        assert_eq!(
            b["consensus_hash"],
            held.consensus_hash.as_str(),
            "block {h}"
        );
        let ops = client.get_json(&format!("/v1/blocks/{h}/ops")).unwrap();
        assert_eq!(
            ops["operations"].as_array().unwrap(),
            &held.operations,
            "block {h}"
        );
    }
}

#[test]
fn the_event_stream_replays_to_the_database_across_a_real_reorg() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (first, revoke_height, sink) = revoked::revoked_history(&node, dir.path());

    let db = dir.path().join("follow.redb");
    let mut follower = revoked::start_follower(&node, &db, first);
    let (hook, hook_log) = receiver(0);
    let (mut server, url) = serve_support::serve_with(&db, &["--webhook", &hook]);
    let client = LightClient::new(&url, Duration::from_secs(10)).unwrap();

    // The stream, from the first block, applied by a thread as it comes.
    let addr = url.trim_start_matches("http://").to_owned();
    let mut stream = Sse::open(&addr, &format!("/v1/events?from={first}"), &[]);
    assert_eq!(stream.status(), 200, "{}", stream.head);
    let replica = Arc::new(Mutex::new(Replica::default()));
    let reader = {
        let replica = replica.clone();
        std::thread::spawn(move || {
            while let Some(ev) = stream.next() {
                replica.lock().unwrap().apply(&ev);
            }
        })
    };
    let holds = |height: u64| {
        let tip = client.get_json("/v1/tip").unwrap();
        let hash = tip["tip"]["block_hash"].as_str().unwrap().to_owned();
        let r = replica.lock().unwrap();
        r.tip()
            .is_some_and(|(h, b)| h == height && b.block_hash == hash)
    };
    let node_tip = node.height();
    wait_for("the stream to reach the node's tip", || holds(node_tip));
    let revoking_ops = replica.lock().unwrap().blocks[&revoke_height]
        .operations
        .len();
    assert!(revoking_ops >= 1, "the revocation's block has operations");
    let old_height = node_tip;

    // The reorg: the revocation's block and those after it are replaced by empty blocks, one
    // more than they were.
    node.invalidate(&node.block_at(revoke_height).block_hash());
    for _ in 0..(old_height - revoke_height + 2) {
        node.mine_with(&sink, &[]);
    }
    for _ in 0..2 {
        node.mine_with(&sink, &[]);
    }
    let final_height = node.height();
    wait_for("the stream to reach the new tip", || holds(final_height));
    {
        let r = replica.lock().unwrap();
        assert_eq!(
            r.rollbacks,
            old_height - revoke_height + 1,
            "one rollback per replaced block"
        );
        assert!(r.blocks[&revoke_height].operations.is_empty());
        assert_same(&client, first, &r);
        // The indexer's fork detection, announced once, before the rollbacks.
        assert_eq!(r.forks.len(), 1, "{:?}", r.forks);
        let (rollbacks_before, fork) = &r.forks[0];
        assert_eq!(*rollbacks_before, 0, "{fork}");
        assert_eq!(fork["fork_height"], revoke_height - 1, "{fork}");
        assert_eq!(fork["depth"], old_height - revoke_height + 1, "{fork}");
        assert_eq!(fork["automatic"], true, "{fork}");
    }
    let names = client.get_json("/v1/names/baz.test").unwrap();
    assert_eq!(names["state"]["revoked"], false);
    // The server's readiness knows the node's tip, as the indexer recorded it in the file.
    let ready = client.get_json("/healthz/ready").unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["chain_tip"], final_height, "{ready}");
    assert_eq!(ready["lag_blocks"], 0, "{ready}");

    // The webhook saw the same history from the tip at the server's start: applied to the
    // database's chain below that point, it gives the same chain.
    wait_for("the webhook to reach the new tip", || {
        delivered(&hook_log)
            .last()
            .is_some_and(|v| v["height"] == final_height)
    });
    let bodies = delivered(&hook_log);
    let start = bodies[0]["height"].as_u64().unwrap();
    let mut hooked = Replica::default();
    {
        let r = replica.lock().unwrap();
        // Below the webhook's start the chain never changed (the reorg is above it).
        hooked.blocks = r
            .blocks
            .range(..start)
            .map(|(h, b)| (*h, b.clone()))
            .collect();
    }
    assert!(
        start <= revoke_height,
        "the webhook starts at the tip the server first saw"
    );
    for body in &bodies {
        hooked.apply_body(body);
    }
    assert_eq!(hooked.rollbacks, old_height - revoke_height + 1);
    assert_eq!(hooked.forks.len(), 1, "{:?}", hooked.forks);
    assert_same(&client, first, &hooked);

    // SIGTERM with the stream still open: serve exits 0 promptly, ending the stream.
    let started = Instant::now();
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    reader.join().unwrap();
    follower.kill().unwrap();
    let _ = follower.wait();
    let r = replica.lock().unwrap();
    eprintln!(
        "stream: {} applies, {} rollbacks; webhook: {} events",
        r.applies,
        r.rollbacks,
        bodies.len()
    );
}
