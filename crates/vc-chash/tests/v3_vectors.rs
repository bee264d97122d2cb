//! Reproduces every line of `vectors/v3-vectors.txt`, which the independent Python reference
//! (`docs/reference/chash_reference.py vectors-v3`) generated from `docs/consensus-hash-v3.md`:
//! key paths, value hashes and state roots (section S), a 20-block v3 chain with state changes
//! (section C), state proofs of present and absent keys (section Q), which vc-chash must
//! encode identically and verify to the same answer, and v3 operation proofs (section P).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;

use vc_chash::history::{History, MemoryHistory};
use vc_chash::proof::{self, Proof};
use vc_chash::state::proof::{self as state_proof, Answer, StateProof};
use vc_chash::state::{self, MemoryState};
use vc_chash::{ConsensusHash, Hash256, Scheme, hex, v2};

const VECTORS: &str = include_str!("vectors/v3-vectors.txt");
const FIRST: u64 = 100;

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// One state change: namespace, key, and the new value or `None` for a deletion.
type Change = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// Parses a list of `ns:key:value` (hex; value `-` deletes), or `-` for none.
fn changes(list: &str) -> Vec<Change> {
    if list == "-" {
        return Vec::new();
    }
    list.split(',')
        .map(|entry| {
            let mut parts = entry.split(':');
            let mut next = || parts.next().expect("ns:key:value");
            let (ns, key, value) = (next(), next(), next());
            let value = (value != "-").then(|| hex::decode(value).unwrap());
            (hex::decode(ns).unwrap(), hex::decode(key).unwrap(), value)
        })
        .collect()
}

fn apply(st: &mut MemoryState, list: &[Change]) -> Hash256 {
    st.apply(
        list.iter()
            .map(|(ns, key, value)| (ns.as_slice(), key.as_slice(), value.clone())),
    )
}

fn v3_hash(ch: ConsensusHash) -> Hash256 {
    match ch {
        ConsensusHash::V2(h) => h,
        ConsensusHash::Legacy(_) => unreachable!("a v3 chain holds 32-byte hashes"),
    }
}

#[test]
fn every_v3_vector_reproduces() {
    let mut chain = MemoryHistory::new(Scheme::V3, FIRST);
    let mut state = MemoryState::new();
    // The state after each block of section C, by height, for the proofs of section Q.
    let mut states: BTreeMap<u64, MemoryState> = BTreeMap::new();
    // Each block's records, for the operation proofs of section P.
    let mut records_at: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in VECTORS.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let kind = line.chars().next().unwrap();
        let f = fields(line);
        let label = match kind {
            'S' => {
                let sub = line.split_whitespace().nth(1).unwrap();
                match sub {
                    "path" => {
                        let (ns, key) = (
                            hex::decode(f["ns"]).unwrap(),
                            hex::decode(f["key"]).unwrap(),
                        );
                        assert_eq!(state::key_path(&ns, &key).to_string(), f["path"], "{line}");
                    }
                    "value" => {
                        let value = hex::decode(f["value"]).unwrap();
                        assert_eq!(
                            state::value_hash(&value).to_string(),
                            f["value_hash"],
                            "{line}"
                        );
                    }
                    "root" => {
                        let list = changes(f["entries"]);
                        let mut st = MemoryState::new();
                        assert_eq!(apply(&mut st, &list).to_string(), f["root"], "{line}");
                        // The same root from scratch, and from the entries one block each in
                        // reverse order: the root depends on the state alone.
                        let mut leaves = st.leaves();
                        assert_eq!(state::root_of(&mut leaves).to_string(), f["root"], "{line}");
                        let mut one_by_one = MemoryState::new();
                        for change in list.iter().rev() {
                            apply(&mut one_by_one, std::slice::from_ref(change));
                        }
                        assert_eq!(one_by_one.root().to_string(), f["root"], "{line}");
                    }
                    other => panic!("unrecognised S line {other:?}: {line}"),
                }
                format!("S {sub}")
            }
            'C' => {
                let height: u64 = f["height"].parse().unwrap();
                assert_eq!(chain.next_height(), height, "section C is consecutive");
                let block_hash = Hash256::from_display_hex(f["block_hash"]).unwrap();
                let records: Vec<Vec<u8>> = match f["records"] {
                    "-" => Vec::new(),
                    list => list.split(',').map(|r| hex::decode(r).unwrap()).collect(),
                };
                // The commitment's parts, recomputed independently of MemoryHistory.
                assert_eq!(chain.mmr().root().to_string(), f["mmr_root"], "{line}");
                let priors: Vec<Hash256> = vc_chash::priors::prior_heights(height, FIRST)
                    .map(|h| v3_hash(chain.consensus_hash(h).unwrap().unwrap()))
                    .collect();
                assert_eq!(
                    v2::priors_hash(&priors).to_string(),
                    f["priors_hash"],
                    "{line}"
                );
                assert_eq!(v2::ops_hash(&records).to_string(), f["ops_hash"], "{line}");
                let root = apply(&mut state, &changes(f["changes"]));
                assert_eq!(root.to_string(), f["state_root"], "{line}");
                let mut leaves = state.leaves();
                assert_eq!(state::root_of(&mut leaves), root, "{line}");
                let summary = chain.push_block_with_state(block_hash, &records, Some(root));
                assert_eq!(summary.ops_hash.to_string(), f["ops_hash"], "{line}");
                assert_eq!(summary.consensus_hash.to_string(), f["ch"], "{line}");
                states.insert(height, state.clone());
                records_at.insert(height, records);
                "C".to_string()
            }
            'Q' => {
                let n: u64 = f["trusted"].parse().unwrap();
                let m: u64 = f["target"].parse().unwrap();
                let (ns, key) = (
                    hex::decode(f["ns"]).unwrap(),
                    hex::decode(f["key"]).unwrap(),
                );
                let trusted = chain.consensus_hash(n).unwrap().unwrap();
                assert_eq!(trusted.to_string(), f["ch"], "{line}");
                let tree = &states[&m];
                let ours = state_proof::prove(
                    &chain,
                    tree,
                    |_| tree.get(&ns, &key).map(<[u8]>::to_vec),
                    n,
                    m,
                    &ns,
                    &key,
                )
                .unwrap();
                assert_eq!(hex::encode(&ours.encode()), f["proof"], "{line}");
                let expected = hex::decode(f["proof"]).unwrap();
                let decoded = StateProof::decode(&expected).unwrap();
                assert_eq!(decoded, ours, "{line}");
                assert_eq!(decoded.siblings.len().to_string(), f["depth"], "{line}");
                let answer = match &decoded.answer {
                    Answer::Present(_) => "present",
                    Answer::Empty => "absent-empty",
                    Answer::Other { .. } => "absent-leaf",
                };
                assert_eq!(answer, f["answer"], "{line}");
                let verified =
                    state_proof::verify(&expected, FIRST, n, &trusted, m, &ns, &key).unwrap();
                let value = verified.value.as_deref().map(hex::encode);
                assert_eq!(value.as_deref().unwrap_or("-"), f["value"], "{line}");
                assert_eq!(verified.state_root, states[&m].root(), "{line}");
                // A proof for one question answers no other.
                let mut other_key = key.clone();
                other_key.push(0);
                assert!(
                    state_proof::verify(&expected, FIRST, n, &trusted, m, &ns, &other_key).is_err(),
                    "{line}"
                );
                format!("Q {answer} {}", if m == n { "m=n" } else { "m<n" })
            }
            'P' => {
                let n: u64 = f["trusted"].parse().unwrap();
                let m: u64 = f["target"].parse().unwrap();
                let trusted = chain.consensus_hash(n).unwrap().unwrap();
                assert_eq!(trusted.to_string(), f["ch"], "{line}");
                let ours = proof::prove(&chain, n, m).unwrap().encode();
                assert_eq!(hex::encode(&ours), f["proof"], "{line}");
                let verified = Proof::decode(&hex::decode(f["proof"]).unwrap())
                    .unwrap()
                    .verify(FIRST, n, &trusted, m)
                    .unwrap();
                assert_eq!(verified.records, records_at[&m], "{line}");
                assert_eq!(verified.state_root, Some(states[&m].root()), "{line}");
                "P".to_string()
            }
            other => panic!("unrecognised vector line kind {other:?}: {line}"),
        };
        *counts.entry(label).or_default() += 1;
    }
    let seen: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(
        seen,
        [
            "C",
            "P",
            "Q absent-empty m<n",
            "Q absent-empty m=n",
            "Q absent-leaf m<n",
            "Q absent-leaf m=n",
            "Q present m<n",
            "Q present m=n",
            "S path",
            "S root",
            "S value",
        ]
    );
    assert_eq!(counts["C"], 20);
    assert_eq!(counts["P"], 5);
    assert_eq!(counts["S path"], 10);
    assert_eq!(counts["S value"], 4);
    assert_eq!(counts["S root"], 11);
    assert_eq!(
        counts
            .iter()
            .filter(|(k, _)| k.starts_with('Q'))
            .map(|(_, v)| v)
            .sum::<usize>(),
        48
    );
}
