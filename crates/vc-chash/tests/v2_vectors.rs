//! Reproduces every line of `vectors/v2-vectors.txt`, which the independent Python reference
//! (`docs/reference/chash_reference.py vectors`) generated from `docs/consensus-hash-v2.md`:
//! ops hashes, MMR roots, a 20-block chain, and proof bytes for both schemes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vc_chash::history::{History, MemoryHistory};
use vc_chash::proof::{self, Proof};
use vc_chash::v2::{self, mmr::Mmr};
use vc_chash::{ConsensusHash, Hash256, Scheme, hex};

const VECTORS: &str = include_str!("vectors/v2-vectors.txt");

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn records_of(height: u64) -> Vec<Vec<u8>> {
    (0..height % 3)
        .map(|i| format!("op-{height}-{i}").into_bytes())
        .collect()
}

#[test]
fn every_v2_vector_reproduces() {
    let mut mmr = Mmr::new();
    let mut chains: BTreeMap<&str, MemoryHistory> = BTreeMap::new();
    chains.insert("v2", MemoryHistory::new(Scheme::V2, 100));
    chains.insert("legacy", MemoryHistory::new(Scheme::Legacy, 100));
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for line in VECTORS.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let kind = line.chars().next().unwrap();
        let f = fields(line);
        match kind {
            'A' => {
                let records: Vec<Vec<u8>> = match f["records"] {
                    "-" => Vec::new(),
                    list => list.split(',').map(|r| hex::decode(r).unwrap()).collect(),
                };
                assert_eq!(v2::ops_hash(&records).to_string(), f["ops_hash"], "{line}");
            }
            'M' => {
                let n: u64 = f["leaves"].parse().unwrap();
                assert_eq!(mmr.leaf_count(), n, "section M is consecutive");
                assert_eq!(mmr.root().to_string(), f["root"], "{line}");
                let leaf: [u8; 32] = Sha256::digest(n.to_be_bytes()).into();
                mmr.push(Hash256(leaf), |_, _, _| {});
            }
            'B' => {
                let height: u64 = f["height"].parse().unwrap();
                let block_hash = Hash256::from_display_hex(f["block_hash"]).unwrap();
                let expected_hash: [u8; 32] =
                    Sha256::digest(format!("block-{height}").as_bytes()).into();
                assert_eq!(block_hash, Hash256(expected_hash), "{line}");
                let records = records_of(height);
                // The commitment's parts, recomputed independently of MemoryHistory.
                let v2_chain = chains.get_mut("v2").unwrap();
                assert_eq!(v2_chain.next_height(), height);
                let mmr_root = v2_chain.mmr().root();
                assert_eq!(mmr_root.to_string(), f["mmr_root"], "{line}");
                let priors: Vec<Hash256> = vc_chash::priors::prior_heights(height, 100)
                    .map(|h| match v2_chain.consensus_hash(h).unwrap().unwrap() {
                        ConsensusHash::V2(c) => c,
                        ConsensusHash::Legacy(_) => unreachable!(),
                    })
                    .collect();
                assert_eq!(
                    v2::priors_hash(&priors).to_string(),
                    f["priors_hash"],
                    "{line}"
                );
                let summary = v2_chain.push_block(block_hash, &records);
                assert_eq!(summary.ops_hash.to_string(), f["ops_hash"], "{line}");
                assert_eq!(summary.consensus_hash.to_string(), f["ch"], "{line}");
                chains
                    .get_mut("legacy")
                    .unwrap()
                    .push_block(Hash256::ZERO, &records);
            }
            'P' => {
                let chain = &chains[f["scheme"]];
                let n: u64 = f["trusted"].parse().unwrap();
                let m: u64 = f["target"].parse().unwrap();
                let trusted = chain.consensus_hash(n).unwrap().unwrap();
                assert_eq!(trusted.to_string(), f["ch"], "{line}");
                let expected = hex::decode(f["proof"]).unwrap();
                let ours = proof::prove(chain, n, m).unwrap().encode();
                assert_eq!(hex::encode(&ours), f["proof"], "{line}");
                let verified = Proof::decode(&expected)
                    .unwrap()
                    .verify(100, n, &trusted, m)
                    .unwrap();
                let mut want = records_of(m);
                if chain.scheme() == Scheme::Legacy {
                    // Legacy records come back in the order its ops hash sorts them.
                    want.sort_by_key(|r| vc_chash::legacy::record_digest(r));
                }
                assert_eq!(verified.records, want, "{line}");
            }
            other => panic!("unrecognised vector line kind {other:?}: {line}"),
        }
        *counts.entry(kind).or_default() += 1;
    }
    let expected: BTreeMap<char, usize> = [('A', 7), ('M', 12), ('B', 20), ('P', 10)].into();
    assert_eq!(counts, expected);
}
