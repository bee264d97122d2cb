//! Reproduces every line of `vectors/migration-vectors.txt`, which the independent Python
//! reference (`docs/reference/migration_reference.py`) generated from `docs/migration.md`, and
//! checks the continuity rule: a proof from a trusted consensus hash on B authenticates a block
//! of A, and B's first block has `CH_A(H_A)` as its first prior.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;

use vc_chash::history::MemoryHistory;
use vc_chash::migration::{
    Announcement, BoundaryRecord, ChainId, PendingCommit, Reveal, commitment, decode_commit,
    encode_commit, reveal_matches,
};
use vc_chash::{ConsensusHash, Hash256, Scheme, hex, proof, v2};

const VECTORS: &str = include_str!("vectors/migration-vectors.txt");

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn h(s: &str) -> Hash256 {
    Hash256(hex::decode_array(s).unwrap())
}

#[test]
fn every_migration_vector_reproduces() {
    let mut n = 0;
    for line in VECTORS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f = fields(line);
        let ann = Announcement {
            last_height: f["h_a"].parse().unwrap(),
            target: ChainId {
                magic: hex::decode_array(f["magic"]).unwrap(),
                genesis: h(f["genesis"]),
            },
            anchor: h(f["anchor"]),
        };
        let ch_a = h(f["ch_a"]);
        let salt: [u8; 32] = hex::decode_array(f["salt"]).unwrap();
        let com = commitment(&ann, &ch_a, &salt);
        assert_eq!(com, h(f["commitment"]));
        assert_eq!(hex::encode(&ann.encode()), f["announce"]);
        assert_eq!(Announcement::decode(&ann.encode()).unwrap(), ann);
        assert_eq!(hex::encode(&encode_commit(&com)), f["commit"]);
        assert_eq!(
            decode_commit(&hex::decode(f["commit"]).unwrap()).unwrap(),
            com
        );
        let reveal = Reveal { ch_a, salt };
        assert_eq!(hex::encode(&reveal.encode()), f["reveal"]);
        assert_eq!(hex::encode(&ann.record()), f["announce_record"]);
        let boundary = BoundaryRecord {
            announcement: ann,
            ch_a,
            commit_height: f["commit_height"].parse().unwrap(),
            commit_txid: h(f["commit_txid"]),
            reveal_height: f["reveal_height"].parse().unwrap(),
            salt,
        };
        assert_eq!(hex::encode(&boundary.encode()), f["boundary_record"]);
        let commit = PendingCommit {
            height: boundary.commit_height,
            commitment: com,
        };
        assert_eq!(
            reveal_matches(&ann, &ch_a, &commit, &reveal, boundary.reveal_height, 4),
            Ok(())
        );
        n += 1;
    }
    assert_eq!(n, 3);
}

/// Eight blocks on A (F = 100 .. H_A = 107), then four of B from its block 40 as virtual
/// heights 108 .. 111, the first with the boundary record: a proof from the last hash of B
/// authenticates A's block 102, and block 108's priors start with CH_A(107).
#[test]
fn proofs_span_the_boundary() {
    for scheme in [Scheme::V2, Scheme::V3] {
        let mut chain = MemoryHistory::new(scheme, 100);
        let state = |i: u8| (scheme == Scheme::V3).then_some(Hash256([i; 32]));
        for i in 0..8u8 {
            chain.push_block_with_state(Hash256([i; 32]), &[vec![b'a', i]], state(i));
        }
        let (h_a, ch_a) = chain.tip().unwrap();
        assert_eq!(h_a, 107);
        let ConsensusHash::V2(ch_a) = ch_a else {
            panic!("a 32-byte hash")
        };
        let boundary = BoundaryRecord {
            announcement: Announcement {
                last_height: h_a,
                target: ChainId {
                    magic: [0xfa, 0xbf, 0xb5, 0xda],
                    genesis: Hash256([0xb0; 32]),
                },
                anchor: Hash256([0xb1; 32]),
            },
            ch_a,
            commit_height: 38,
            commit_txid: Hash256([0xc0; 32]),
            reveal_height: 40,
            salt: [5; 32],
        };
        let first_b = chain.push_block_with_state(
            Hash256([0xb2; 32]),
            &[boundary.encode(), vec![b'b', 0]],
            state(8),
        );
        assert_eq!(first_b.height, 108);
        assert_eq!(boundary.virtual_height(40), Some(108));
        for i in 1..4u8 {
            chain.push_block_with_state(Hash256([0xb2 + i; 32]), &[vec![b'b', i]], state(8));
        }
        let (n, trusted) = chain.tip().unwrap();
        assert_eq!(n, 111);
        let bytes = proof::prove(&chain, n, 102).unwrap().encode();
        let verified = proof::verify(&bytes, 100, n, &trusted, 102).unwrap();
        assert_eq!(verified.records, vec![vec![b'a', 2u8]]);
        let bytes = proof::prove(&chain, n, 108).unwrap().encode();
        let verified = proof::verify(&bytes, 100, n, &trusted, 108).unwrap();
        assert_eq!(
            BoundaryRecord::decode(&verified.records[0]).unwrap(),
            boundary
        );
        // CH(108) recomputed from the v2/v3 rule: its first prior is CH_A(H_A), and its
        // accumulator covers every hash of A.
        let ch = |k: u64| match chain_ch(&chain, k) {
            ConsensusHash::V2(x) => x,
            other => panic!("{other:?}"),
        };
        let priors: Vec<Hash256> = vc_chash::priors::prior_heights(108, 100).map(ch).collect();
        assert_eq!(priors[0], ch_a);
        let mut mmr = v2::mmr::Mmr::new();
        for k in 100..108 {
            mmr.push(ch(k), |_, _, _| {});
        }
        let recomputed = v2::Commitment {
            height: 108,
            block_hash: Hash256([0xb2; 32]),
            ops_hash: v2::ops_hash(&[boundary.encode(), vec![b'b', 0]]),
            priors_hash: v2::priors_hash(&priors),
            mmr_root: mmr.root(),
            state_root: state(8),
        };
        assert_eq!(recomputed.consensus_hash(), ch(108));
    }
}

fn chain_ch(chain: &MemoryHistory, k: u64) -> ConsensusHash {
    use vc_chash::History;
    chain.consensus_hash(k).unwrap().unwrap()
}
