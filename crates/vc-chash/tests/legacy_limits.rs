//! What legacy (virtualchain v1) proofs cannot prove, shown by attacks that succeed, and what
//! the verifier refuses anyway. The legacy consensus hash sorts its Merkle leaves, so it binds
//! neither the order of a block's records nor which prior hash belongs to which height; v2
//! binds both (see `docs/consensus-hash-v2.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vc_chash::history::MemoryHistory;
use vc_chash::legacy::proof::walk_heights;
use vc_chash::priors::prior_heights;
use vc_chash::proof::{Proof, VerifyError, prove};
use vc_chash::{ConsensusHash, Hash256, History, Scheme};

fn chain(scheme: Scheme, blocks: u64) -> MemoryHistory {
    let mut h = MemoryHistory::new(scheme, 0);
    for height in 0..blocks {
        let records: Vec<Vec<u8>> = (0..1 + height % 3)
            .map(|i| format!("op {i} of block {height}").into_bytes())
            .collect();
        h.push_block(Hash256([height as u8; 32]), &records);
    }
    h
}

/// A server that permutes the trusted block's priors redirects the walk to another block, and
/// the proof of block m then authenticates the records of block m + d. This is the protocol
/// (Python virtualchain's SNV is the same), not this verifier: no check on the legacy hashes
/// can tell which sorted leaf was which height's.
#[test]
fn legacy_walks_can_be_redirected_to_another_block() {
    // Heights where every block of the walk and of the shifted walk has 8 priors.
    let h = chain(Scheme::Legacy, 600);
    let (n, m) = (599u64, 300u64);
    let walk = walk_heights(n, m);
    let k1 = walk[1];
    let priors: Vec<u64> = prior_heights(n, 0).collect();
    // Redirect the first jump from k1 to j, another prior height of n.
    let j = *priors.iter().filter(|&&p| p > k1).min().unwrap();
    let d = j - k1;
    let Proof::Legacy(mut forged) = prove(&h, n, m).unwrap() else {
        unreachable!()
    };
    let Proof::Legacy(shifted) = prove(&h, j, m + d).unwrap() else {
        unreachable!()
    };
    let (pk, pj) = (
        priors.iter().position(|&p| p == k1).unwrap(),
        priors.iter().position(|&p| p == j).unwrap(),
    );
    forged.steps[0].priors.swap(pk, pj);
    forged.steps.truncate(1);
    forged.steps.extend(shifted.steps);
    forged.target_priors = shifted.target_priors;
    forged.records = shifted.records;

    let trusted = h.consensus_hash(n).unwrap().unwrap();
    let verified = Proof::Legacy(forged).verify(0, n, &trusted, m).unwrap();
    assert_eq!(verified.height, m);
    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    let records = |height| sorted(h.records(height).unwrap().unwrap());
    assert_eq!(sorted(verified.records), records(m + d));
    assert_ne!(records(m + d), records(m));
}

/// Appending a copy of a record can leave the sorted, last-node-duplicating Merkle root
/// unchanged (CVE-2012-2459): the verifier refuses legacy blocks with repeated records.
#[test]
fn legacy_repeated_records_are_refused() {
    let mut h = MemoryHistory::new(Scheme::Legacy, 0);
    h.push_block(
        Hash256::ZERO,
        &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
    );
    let ch = h.consensus_hash(0).unwrap().unwrap();
    let Proof::Legacy(mut p) = prove(&h, 0, 0).unwrap() else {
        unreachable!()
    };
    // The record whose digest sorts last: its copy is the tree's own padding.
    let last = p
        .records
        .iter()
        .max_by_key(|r| vc_chash::legacy::record_digest(r))
        .unwrap()
        .clone();
    p.records.push(last);
    let root_unchanged = vc_chash::legacy::ops_hash(&p.records) == h.ops_hash(0).unwrap().unwrap();
    assert!(
        root_unchanged,
        "the duplicate should be invisible to the ops hash"
    );
    let e = Proof::Legacy(p).verify(0, 0, &ch, 0).unwrap_err();
    assert!(matches!(e, VerifyError::RepeatedRecord { .. }), "{e}");
}

/// The order of a legacy block's records is not committed, so the verifier returns them in the
/// order the ops hash sorts them: a server that reorders them changes nothing the client sees.
#[test]
fn legacy_records_come_back_in_committed_order() {
    let h = chain(Scheme::Legacy, 30);
    let ch: ConsensusHash = h.consensus_hash(29).unwrap().unwrap();
    let honest = prove(&h, 29, 26).unwrap();
    let Proof::Legacy(mut p) = honest.clone() else {
        unreachable!()
    };
    assert!(p.records.len() >= 2);
    p.records.reverse();
    let a = honest.verify(0, 29, &ch, 26).unwrap();
    let b = Proof::Legacy(p).verify(0, 29, &ch, 26).unwrap();
    assert_eq!(a, b);
}
