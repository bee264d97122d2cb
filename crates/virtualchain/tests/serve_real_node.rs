//! `virtualchain serve` in one process over the database that `virtualchain index --follow`
//! writes in another, against a real regtest bitcoind: a client verifies proofs the whole time,
//! a reorg replaces the block that revoked a name, and afterwards every served consensus hash
//! equals an independent index of the node, and `virtualchain light name` proves the new
//! history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use vc_chash::ConsensusHash;
use vc_light::{LightClient, Trusted};
use vc_testnode::TestNode;

#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

#[path = "support/revoked.rs"]
mod revoked;

use revoked::{index_cmd, wait_for};

#[path = "support/serve.rs"]
mod serve_support;

use serve_support::serve;

fn json(client: &LightClient, path: &str) -> Value {
    client.get_json(path).unwrap()
}

fn tip(client: &LightClient) -> Option<(u64, ConsensusHash)> {
    let v = json(client, "/v1/tip");
    let t = v.get("tip")?.as_object()?;
    Some((
        t["height"].as_u64().unwrap(),
        t["consensus_hash"].as_str().unwrap().parse().unwrap(),
    ))
}

#[test]
fn serve_answers_correctly_while_the_indexer_follows_a_reorg() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (first, revoke_height, sink) = revoked::revoked_history(&node, dir.path());

    // The follower creates the database; the server opens it once it exists.
    let db = dir.path().join("follow.redb");
    let mut follower = revoked::start_follower(&node, &db, first);
    let (mut server, url) = serve(&db);
    let client = LightClient::new(&url, Duration::from_secs(10)).unwrap();
    let node_tip = node.height();
    wait_for("the follower to reach the node's tip", || {
        tip(&client).is_some_and(|(h, _)| h == node_tip)
    });
    let before = json(&client, "/v1/names/baz.test");
    assert_eq!(before["state"]["revoked"], true);
    assert_eq!(
        before["history"].as_array().unwrap().last().unwrap(),
        revoke_height
    );
    let (old_height, old_tip_ch) = tip(&client).unwrap();

    // A client verifies proofs against whatever tip the server states, the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let proven = Arc::new(AtomicU64::new(0));
    let raced = Arc::new(AtomicU64::new(0));
    let hammer = {
        let (stop, proven, raced, url) = (stop.clone(), proven.clone(), raced.clone(), url.clone());
        std::thread::spawn(move || {
            let client = LightClient::new(&url, Duration::from_secs(10)).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (n, ch) = tip(&client).unwrap();
                let m = first + vc_testnode::synthetic::mix(i) % (n - first + 1);
                let trusted = Trusted {
                    height: n,
                    consensus_hash: ch,
                };
                match client.verify(first, &trusted, m) {
                    Ok(b) => {
                        assert_eq!(b.height, m);
                        proven.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Only a reorg between the two requests may explain a failure: the
                        // hash the server now states for n must differ from the one used.
                        let now = client.get_json(&format!("/v1/blocks/{n}"));
                        let same = now
                            .ok()
                            .and_then(|v| v["consensus_hash"].as_str().map(str::to_owned))
                            == Some(ch.to_string());
                        assert!(!same, "proof of {m} against {n} failed with no reorg: {e}");
                        raced.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    // The reorg: the revocation's block and the two after it are replaced by four empty
    // blocks (generateblock with no transactions, so the revocation is not mined again).
    std::thread::sleep(Duration::from_millis(300));
    node.invalidate(&node.block_at(revoke_height).block_hash());
    for _ in 0..(old_height - revoke_height + 2) {
        node.mine_with(&sink, &[]);
    }
    let new_height = node.height();
    assert!(new_height > old_height);
    wait_for("the follower to reach the new tip", || {
        tip(&client).is_some_and(|(h, _)| h == new_height)
    });
    // A few more blocks on top, still followed and served (empty too: generatetoaddress would
    // mine the revocation again from the mempool).
    for _ in 0..3 {
        node.mine_with(&sink, &[]);
    }
    let final_height = node.height();
    wait_for("the follower to reach the final tip", || {
        tip(&client).is_some_and(|(h, _)| h == final_height)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    assert!(
        proven.load(Ordering::Relaxed) >= 20,
        "only {} proofs verified",
        proven.load(Ordering::Relaxed)
    );

    // The served chain equals an independent index of the node.
    let reference = dir.path().join("reference.redb");
    let out = index_cmd(&node, &reference, first, false).output().unwrap();
    assert!(out.status.success());
    let store = vc_store::ReadOnlyStore::open(&reference).unwrap();
    let view = store.view().unwrap();
    for h in first..=final_height {
        let want = vc_chash::History::consensus_hash(&view, h)
            .unwrap()
            .unwrap();
        let got = json(&client, &format!("/v1/blocks/{h}"));
        assert_eq!(got["consensus_hash"], want.to_string(), "block {h}");
        assert_eq!(json(&client, &format!("/v1/consensus/{want}"))["height"], h);
    }
    let (s, _) = (client.get_json(&format!("/v1/consensus/{old_tip_ch}")), ());
    assert!(
        s.is_err(),
        "the replaced tip's consensus hash is still served"
    );

    // The name's history lost the revocation, and the light client proves it.
    let after = json(&client, "/v1/names/baz.test");
    assert_eq!(after["state"]["revoked"], false);
    assert!(
        !after["history"]
            .as_array()
            .unwrap()
            .contains(&Value::from(revoke_height))
    );
    let (n, ch) = tip(&client).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["light", "name", "baz.test", "--server", &url])
        .args(["--trusted", &format!("{n}:{ch}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("active") && !stdout.contains("revoke "),
        "{stdout}"
    );
    // Against the replaced branch's tip, the same server's proofs are refuted (exit 1).
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args([
            "light",
            "verify",
            "--server",
            &url,
            "--height",
            &first.to_string(),
        ])
        .args(["--trusted", &format!("{old_height}:{old_tip_ch}")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM: the server stops gracefully with status 0.
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
    follower.kill().unwrap();
    let _ = follower.wait();
    eprintln!(
        "served {} verified proofs during the reorg ({} raced with it)",
        proven.load(Ordering::Relaxed),
        raced.load(Ordering::Relaxed)
    );
}
