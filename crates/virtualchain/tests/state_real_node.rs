//! v3 state proofs against a real regtest bitcoind: the names history (register, transfer,
//! revoke) indexed under scheme v3, served by `virtualchain serve`, and proven by
//! `virtualchain light name` one state proof at a time: every name's record at every height of
//! the history is what the chain says, and a server that hides the transfer (with an older
//! version, another key's proof, a forged absence or a stale root) is refuted with exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use vc_chash::state::proof::{Answer, StateProof};
use vc_chash::{ConsensusHash, History, Scheme};
use vc_light::{LightClient, Trusted};
use vc_names::scenario::Scenario;
use vc_names::state::NameRecord;
use vc_testnode::TestNode;

#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

#[path = "support/serve.rs"]
mod serve_support;

use common::{Node, core};
use serve_support::serve;

fn light_name(url: &str, name: &str, trusted: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["light", "name", name, "--server", url, "--trusted", trusted])
        .args(["--scheme", "v3"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The name's proven record at `height`, trusting the consensus hash there.
fn proven(client: &LightClient, first: u64, trusted: &Trusted, name: &str) -> Option<NameRecord> {
    let v = client
        .state(first, trusted, "names", name.as_bytes(), trusted.height)
        .unwrap();
    v.value
        .map(|bytes| vc_codec::storage::from_bytes(&bytes).unwrap())
}

/// How a lying proxy changes the server's state proof of `foo.test`.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// The proof the server gave for an older height, as it is.
    OlderProof,
    /// The current proof with the answer and path of the older version spliced in.
    OlderVersion,
    /// Another key's (baz.test's) proof, relabelled as foo.test's.
    OtherKey,
    /// The current proof saying the key is absent.
    ForgedAbsence,
    /// A proof against the previous block's consensus hash, relabelled as against the tip.
    StaleRoot,
}

/// A loopback proxy in front of `upstream` that tells `lie` about `foo.test`'s state and
/// passes everything else through.
fn lying_proxy(upstream: String, lie: Lie, before_transfer: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = Arc::new(LightClient::new(&upstream, Duration::from_secs(10)).unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let target = format!("/v1/state/names/{}", vc_chash::hex::encode(b"foo.test"));
                let body = if path.starts_with(&target) {
                    lie_about(&client, &path, lie, before_transfer)
                } else {
                    client.get(&path).unwrap()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    url
}

fn lie_about(client: &LightClient, path: &str, lie: Lie, before: u64) -> Vec<u8> {
    let honest = StateProof::decode(&client.get(path).unwrap()).unwrap();
    let n = honest.trusted;
    let fetch = |key: &str, trusted: u64, height: u64| {
        let p = format!(
            "/v1/state/names/{}?trusted={trusted}&height={height}",
            vc_chash::hex::encode(key.as_bytes())
        );
        StateProof::decode(&client.get(&p).unwrap()).unwrap()
    };
    let lied = match lie {
        Lie::OlderProof => fetch("foo.test", n, before),
        Lie::OlderVersion => {
            let old = fetch("foo.test", n, before);
            StateProof {
                siblings: old.siblings,
                answer: old.answer,
                ..honest
            }
        }
        Lie::OtherKey => StateProof {
            key: b"foo.test".to_vec(),
            ..fetch("baz.test", n, n)
        },
        Lie::ForgedAbsence => StateProof {
            answer: Answer::Empty,
            ..honest
        },
        Lie::StaleRoot => StateProof {
            trusted: n,
            target: n,
            link: None,
            ..fetch("foo.test", n - 1, n - 1)
        },
    };
    lied.encode()
}

#[test]
fn light_name_proves_each_state_of_a_v3_history_and_refutes_a_server_hiding_the_transfer() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names-v3.redb");
    let miner = Node(&node);
    let mut s =
        Scenario::start_with_scheme(&miner, core(&node, true), &db, 6, None, Scheme::V3).unwrap();
    s.run_history().unwrap();
    let (a, b, c) = (
        s.wallet(2).script(),
        s.wallet(3).script(),
        s.wallet(4).script(),
    );
    let store = s.engine().store();
    assert_eq!(store.config().scheme, Scheme::V3);
    let first = store.config().first_block;
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap().height;
    let ch = |h: u64| -> ConsensusHash { view.consensus_hash(h).unwrap().unwrap() };

    let (mut server, url) = serve(&db);
    let client = LightClient::new(&url, Duration::from_secs(10)).unwrap();

    // Every height of the history, each trusted in turn: foo.test is absent, then a's, then
    // b's (the transfer), never back; baz.test is absent, then c's and active, then revoked.
    let mut foo_owners: Vec<Option<Vec<u8>>> = Vec::new();
    let mut baz_states: Vec<Option<bool>> = Vec::new();
    let mut transfer = None;
    for h in first..=tip {
        let trusted = Trusted {
            height: h,
            consensus_hash: ch(h),
        };
        let record = proven(&client, first, &trusted, "foo.test");
        let owner = record.map(|r| r.owner);
        if foo_owners.last().and_then(|o| o.as_ref()) == Some(&a.to_bytes())
            && owner.as_ref() == Some(&b.to_bytes())
        {
            transfer = Some(h);
        }
        if foo_owners.last() != Some(&owner) {
            foo_owners.push(owner);
        }
        let baz = proven(&client, first, &trusted, "baz.test");
        if let Some(r) = &baz {
            assert_eq!(r.owner, c.to_bytes());
        }
        let state = baz.map(|r| r.revoked);
        if baz_states.last() != Some(&state) {
            baz_states.push(state);
        }
        assert_eq!(
            proven(&client, first, &trusted, "bar.test"),
            None,
            "underpaid"
        );
        assert_eq!(proven(&client, first, &trusted, "nope.test"), None);
    }
    assert_eq!(
        foo_owners,
        vec![None, Some(a.to_bytes()), Some(b.to_bytes())]
    );
    assert_eq!(baz_states, vec![None, Some(false), Some(true)]);
    let transfer = transfer.unwrap();

    // The command line, at the tip and just before the transfer.
    let at = |h: u64| format!("{h}:{}", ch(h));
    let o = light_name(&url, "foo.test", &at(tip));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("proven: the state of foo.test"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains(&format!("owner {}", vc_chash::hex::encode(b.as_bytes()))),
        "{}",
        text(&o)
    );
    let o = light_name(&url, "foo.test", &at(transfer - 1));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("owner {}", vc_chash::hex::encode(a.as_bytes()))),
        "{}",
        text(&o)
    );
    let o = light_name(&url, "baz.test", &at(tip));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("revoked"),
        "{}",
        text(&o)
    );
    let o = light_name(&url, "nope.test", &at(tip));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no such name"),
        "{}",
        text(&o)
    );

    // The generic command: any namespace and key, at any height up to the trusted one.
    let o = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["light", "state", "names", "foo.test", "--server", &url])
        .args([
            "--trusted",
            &at(tip),
            "--height",
            &(transfer - 1).to_string(),
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let Answer::Present(bytes) = view
        .state_proof("names", b"foo.test", tip, transfer - 1)
        .unwrap()
        .answer
    else {
        panic!("foo.test was registered before its transfer")
    };
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&vc_chash::hex::encode(&bytes)),
        "{}",
        text(&o)
    );

    // A server hiding the transfer is refuted, whichever way it lies.
    for lie in [
        Lie::OlderProof,
        Lie::OlderVersion,
        Lie::OtherKey,
        Lie::ForgedAbsence,
        Lie::StaleRoot,
    ] {
        let proxy = lying_proxy(url.clone(), lie, transfer - 1);
        let o = light_name(&proxy, "foo.test", &at(tip));
        assert_eq!(o.status.code(), Some(1), "{lie:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("refuted"),
            "{lie:?}: {}",
            text(&o)
        );
    }
    server.kill().unwrap();
    let _ = server.wait();
}
