//! A malicious server lying about v3 state: a proxy in front of an honest server rewrites each
//! state proof it forwards (an older version of the entry, another key's path, a forged
//! absence, a forged value, a swapped or altered sibling, a root from another height, a changed
//! link, a truncation, a flipped byte). Over a thousand randomized lies, and the light client
//! refutes every one; the honest proofs through the same proxy verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use vc_chash::state::EMPTY;
use vc_chash::state::proof::{Answer, StateProof};
use vc_chash::{Hash256, Scheme};
use vc_light::{LightClient, LightError, Trusted};
use vc_serve::{ServeConfig, Server};
use vc_store::ReadOnlyStore;
use vc_testnode::synthetic::{self, STATE_NAMESPACE, mix};

#[path = "support/liar.rs"]
mod liar;
use liar::Liar;

const FIRST: u64 = 50;
const BLOCKS: u64 = 400;

fn flip(h: &mut Hash256, r: u64) {
    h.0[(r % 32) as usize] ^= 1 << (r % 8);
}

/// One lie about the honest proof of `key` at `m` against `n`, or `None` when it does not
/// apply to this proof.
fn lie(
    kind: u64,
    r: u64,
    honest: &StateProof,
    fetch: &dyn Fn(&[u8], u64, u64) -> StateProof,
) -> Option<(&'static str, Vec<u8>)> {
    let (key, n, m) = (honest.key.clone(), honest.trusted, honest.target);
    let mut p = honest.clone();
    let name = match kind {
        0 => {
            // The entry as it was at an earlier height, with that height's path.
            let earlier = FIRST + r % (m - FIRST + 1);
            let old = fetch(&key, n, earlier);
            if old.answer == p.answer && old.siblings == p.siblings {
                return None;
            }
            p.answer = old.answer;
            p.siblings = old.siblings;
            "older version"
        }
        1 => {
            // An earlier height's honest proof, as it is.
            if m == FIRST {
                return None;
            }
            return Some((
                "older proof",
                fetch(&key, n, FIRST + r % (m - FIRST)).encode(),
            ));
        }
        2 => {
            // Another key's proof, relabelled.
            let other = format!("key{}", r % 97).into_bytes();
            if other == key {
                return None;
            }
            p = StateProof {
                key: key.clone(),
                ..fetch(&other, n, m)
            };
            "another key's path"
        }
        3 => {
            if !matches!(p.answer, Answer::Present(_)) {
                return None;
            }
            p.answer = if r.is_multiple_of(2) {
                Answer::Empty
            } else {
                Answer::Other {
                    path: Hash256([(r % 251) as u8; 32]),
                    value_hash: Hash256([1; 32]),
                }
            };
            "forged absence"
        }
        4 => {
            match &mut p.answer {
                Answer::Present(v) if !v.is_empty() => {
                    let i = (r as usize >> 8) % v.len();
                    v[i] ^= 1 << (r % 8);
                }
                Answer::Present(v) => v.push(1),
                _ => p.answer = Answer::Present(format!("forged {r}").into_bytes()),
            }
            "wrong value"
        }
        5 => {
            let present: Vec<usize> = (0..p.siblings.len())
                .filter(|i| p.siblings[*i] != EMPTY)
                .collect();
            if present.len() < 2 {
                return None;
            }
            let a = present[(r % present.len() as u64) as usize];
            let b = present[((r >> 16) % present.len() as u64) as usize];
            if a == b || p.siblings[a] == p.siblings[b] {
                return None;
            }
            p.siblings.swap(a, b);
            "swapped sibling"
        }
        6 => {
            if p.siblings.is_empty() {
                return None;
            }
            let i = (r % p.siblings.len() as u64) as usize;
            if p.siblings[i] == EMPTY {
                p.siblings[i] = Hash256([7; 32]);
            } else {
                flip(&mut p.siblings[i], r >> 8);
            }
            "altered sibling"
        }
        7 => {
            // A whole proof against another trusted height, relabelled as against n.
            if n == FIRST {
                return None;
            }
            let other_n = m.max(FIRST) + (r % (n - m.max(FIRST)).max(1));
            if other_n == n {
                return None;
            }
            let mut q = fetch(&key, other_n, m.min(other_n));
            q.trusted = n;
            if m == n {
                q.link = None;
            }
            p = q;
            "root from another height"
        }
        8 => {
            let link = p.link.as_mut()?;
            match r % 4 {
                0 => flip(link.state_root.as_mut()?, r >> 8),
                1 => flip(&mut link.block_hash, r >> 8),
                2 => {
                    let s = link.path.siblings.first_mut()?;
                    flip(s, r >> 8);
                }
                _ => flip(&mut link.priors_hash, r >> 8),
            }
            "link altered"
        }
        9 => {
            let bytes = p.encode();
            let cut = (r % bytes.len() as u64) as usize;
            return Some(("truncated", bytes[..cut].to_vec()));
        }
        10 => {
            let mut bytes = p.encode();
            let i = (r % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << ((r >> 8) % 8);
            return Some(("byte flipped", bytes));
        }
        11 => {
            match (r % 3, &mut p.answer) {
                (0, _) => {
                    p.siblings.pop()?;
                }
                (1, _) => p.siblings.push(Hash256([3; 32])),
                (_, Answer::Other { path, .. }) => flip(path, r >> 8),
                _ => return None,
            }
            "path depth or other leaf changed"
        }
        12 => {
            flip(
                match r % 4 {
                    0 => &mut p.block_hash,
                    1 => &mut p.ops_hash,
                    2 => &mut p.priors_hash,
                    _ => &mut p.mmr_root,
                },
                r >> 8,
            );
            "block fields altered"
        }
        _ => return None,
    };
    Some((name, p.encode()))
}

#[test]
fn a_thousand_state_lies_are_all_refuted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (_store, chs) = synthetic::create(&path, Scheme::V3, FIRST, BLOCKS).unwrap();
    let server = Server::bind(
        ReadOnlyStore::open(&path).unwrap(),
        None,
        ServeConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let honest = LightClient::new(&server.url(), Duration::from_secs(10)).unwrap();
    let fetch = |key: &[u8], n: u64, m: u64| {
        let p = format!(
            "/v1/state/{STATE_NAMESPACE}/{}?trusted={n}&height={m}",
            vc_chash::hex::encode(key)
        );
        StateProof::decode(&honest.get(&p).unwrap()).unwrap()
    };
    let liar = Liar::start();
    let client = LightClient::new(&liar.url, Duration::from_secs(10)).unwrap();
    let mut refuted: BTreeMap<&'static str, u32> = BTreeMap::new();
    let (mut done, mut present, mut absent) = (0, 0, 0);
    let mut i = 0u64;
    while done < 1_200 {
        i += 1;
        let r = mix(i);
        let n = FIRST + r % BLOCKS;
        let m = FIRST + mix(r) % (n - FIRST + 1);
        let key = format!("key{}", mix(r ^ 3) % 110).into_bytes();
        let trusted = Trusted {
            height: n,
            consensus_hash: chs[(n - FIRST) as usize],
        };
        let proof = fetch(&key, n, m);
        // Through the liar, the honest proof verifies: the proxy is sound.
        if i % 40 == 1 {
            liar.tell(proof.encode());
            let ok = client
                .state(FIRST, &trusted, STATE_NAMESPACE, &key, m)
                .unwrap();
            if ok.value.is_some() {
                present += 1;
            } else {
                absent += 1;
            }
        }
        let Some((what, bytes)) = lie(mix(r ^ 7) % 13, mix(r ^ 11), &proof, &fetch) else {
            continue;
        };
        if bytes == proof.encode() {
            continue;
        }
        liar.tell(bytes);
        match client.state(FIRST, &trusted, STATE_NAMESPACE, &key, m) {
            Err(LightError::Refuted { .. } | LightError::MalformedProof { .. }) => {
                *refuted.entry(what).or_default() += 1;
                done += 1;
            }
            other => panic!("lie {what:?} (key {key:?}, m {m}, n {n}) was not refuted: {other:?}"),
        }
    }
    eprintln!(
        "refuted {done} lies: {refuted:?}; honest checks: {present} present, {absent} absent"
    );
    assert!(
        refuted.len() >= 12,
        "every kind of lie was drawn: {refuted:?}"
    );
    assert!(present > 0 && absent > 0);
}

/// A v3 server proves a block's records: the proof carries the state roots of the target and
/// the trusted block (the server's history used to leave them out, so every v3 operation
/// proof failed with "history has no state root").
#[test]
fn a_v3_server_proves_operations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.redb");
    let (_store, chs) = synthetic::create(&path, Scheme::V3, FIRST, 40).unwrap();
    let server = Server::bind(
        ReadOnlyStore::open(&path).unwrap(),
        None,
        ServeConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap()
    .spawn()
    .unwrap();
    let client = LightClient::new(&server.url(), Duration::from_secs(10)).unwrap();
    let n = FIRST + 39;
    let trusted = Trusted {
        height: n,
        consensus_hash: chs[39],
    };
    for m in [FIRST, FIRST + 17, n] {
        let block = client.verify(FIRST, &trusted, m).unwrap();
        assert_eq!(block.height, m);
        assert!(block.state_root.is_some());
    }
}

/// Earlier trees are rebuilt from the undo logs: a store keeping the last 20 proves state at
/// every height they reach (the verified value equal to the archive store's), and answers 404
/// with what it keeps for a height older than that, never a 500 or a wrong proof. A server's
/// `max_state_changes` bounds the work: deeper requests get 400.
#[test]
fn state_proofs_reach_as_far_back_as_the_undo_logs() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("all.redb");
    let (_all, chs) = synthetic::create(&archive, Scheme::V3, FIRST, 100).unwrap();
    let pruned = dir.path().join("window.redb");
    let store = vc_store::Store::open(
        &pruned,
        synthetic::config(Scheme::V3, FIRST).with_undo_window(20),
    )
    .unwrap();
    synthetic::extend(&store, FIRST, FIRST + 99, 0).unwrap();
    drop(store);
    let serve = |path: &std::path::Path| {
        Server::bind(
            ReadOnlyStore::open(path).unwrap(),
            None,
            ServeConfig::new("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap()
        .spawn()
        .unwrap()
    };
    let (all, window) = (serve(&archive), serve(&pruned));
    // A server that sets back at most 3 changes: one block above the tip's parent holds 1 to
    // 3 (`synthetic::state_changes`), so a proof at the parent passes and one 30 blocks down
    // is refused before any tree work.
    let mut strict_config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    strict_config.max_state_changes = 3;
    let strict = Server::bind(ReadOnlyStore::open(&archive).unwrap(), None, strict_config)
        .unwrap()
        .spawn()
        .unwrap();
    let tip = FIRST + 99;
    let trusted = Trusted {
        height: tip,
        consensus_hash: chs[99],
    };
    let reach = tip - 20;
    for m in [FIRST, reach - 1, reach, tip - 1, tip] {
        for key in ["key3", "key17", "key99"] {
            let from = |server: &vc_serve::RunningServer| {
                LightClient::new(&server.url(), Duration::from_secs(10))
                    .unwrap()
                    .state(FIRST, &trusted, STATE_NAMESPACE, key.as_bytes(), m)
            };
            let expected = from(&all).unwrap();
            if m == tip - 1 {
                assert_eq!(from(&strict).unwrap().value, expected.value);
            }
            if m + 30 <= tip {
                let text = from(&strict).unwrap_err().to_string();
                assert!(
                    text.contains("400") && text.contains("max-state-changes"),
                    "{key} at {m}: {text}"
                );
            }
            match from(&window) {
                Ok(got) => {
                    assert!(m >= reach, "{key} at {m}: proven beyond the undo logs");
                    assert_eq!(got.value, expected.value, "{key} at {m}");
                }
                Err(e) => {
                    assert!(m < reach, "{key} at {m}: {e}");
                    let text = e.to_string();
                    assert!(
                        text.contains("404") && text.contains("no longer kept"),
                        "{key} at {m}: {text}"
                    );
                }
            }
        }
    }
}
