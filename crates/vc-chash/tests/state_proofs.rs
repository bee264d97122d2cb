//! v3 state proofs over random chains with random state changes (sets and deletions): honest
//! proofs of present and absent keys verify at every height against a later trusted hash, and
//! every single-byte change of a proof, and every answer to another question, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use proptest::prelude::*;
use vc_chash::history::MemoryHistory;
use vc_chash::state::proof::{self as state_proof, Answer, StateProof};
use vc_chash::state::{self, MemoryState};
use vc_chash::{ConsensusHash, Hash256, Scheme, VerifyError};

const NS: &[u8] = b"names";

fn key(i: u8) -> Vec<u8> {
    vec![b'k', i]
}

/// A v3 chain whose block `F + i` applies `blocks[i]`, with the state after every block.
fn build(first: u64, blocks: &[Vec<(u8, Option<u8>)>]) -> (MemoryHistory, Vec<MemoryState>) {
    let mut chain = MemoryHistory::new(Scheme::V3, first);
    let mut st = MemoryState::new();
    let mut states = Vec::new();
    for (i, changes) in blocks.iter().enumerate() {
        let keys: Vec<(Vec<u8>, Option<Vec<u8>>)> = changes
            .iter()
            .map(|(k, v)| (key(*k), v.map(|v| vec![v; 3])))
            .collect();
        let root = st.apply(keys.iter().map(|(k, v)| (NS, k.as_slice(), v.clone())));
        let records: Vec<Vec<u8>> = changes.iter().map(|(k, _)| vec![*k]).collect();
        chain.push_block_with_state(Hash256([i as u8; 32]), &records, Some(root));
        states.push(st.clone());
    }
    (chain, states)
}

fn prove(
    chain: &MemoryHistory,
    states: &[MemoryState],
    first: u64,
    n: u64,
    m: u64,
    k: &[u8],
) -> StateProof {
    let st = &states[(m - first) as usize];
    state_proof::prove(
        chain,
        st,
        |_| st.get(NS, k).map(<[u8]>::to_vec),
        n,
        m,
        NS,
        k,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn honest_state_proofs_verify_and_every_mutation_fails(
        first in 0u64..1000,
        blocks in prop::collection::vec(
            prop::collection::vec((0u8..24, prop::option::of(0u8..3)), 0..6),
            1..40,
        ),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..28), 1..6),
    ) {
        let (chain, states) = build(first, &blocks);
        let (n, trusted) = chain.tip().unwrap();
        for (mi, _ni, k) in picks {
            let m = first + mi.index(blocks.len()) as u64;
            let k = key(k);
            let proof = prove(&chain, &states, first, n, m, &k);
            let bytes = proof.encode();
            prop_assert_eq!(StateProof::decode(&bytes).unwrap(), proof.clone());
            let ok = state_proof::verify(&bytes, first, n, &trusted, m, NS, &k).unwrap();
            let expected = states[(m - first) as usize].get(NS, &k).map(<[u8]>::to_vec);
            prop_assert_eq!(&ok.value, &expected);
            prop_assert_eq!(ok.state_root, states[(m - first) as usize].root());
            prop_assert_eq!(Some(ok.consensus_hash), vc_chash::History::consensus_hash(&chain, m).unwrap());
            // Every single-byte change is refused.
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x01;
                prop_assert!(
                    state_proof::verify(&bad, first, n, &trusted, m, NS, &k).is_err(),
                    "flipping byte {} of {} was accepted", i, bytes.len()
                );
            }
            // Truncations are refused.
            for len in 0..bytes.len() {
                prop_assert!(state_proof::verify(&bytes[..len], first, n, &trusted, m, NS, &k).is_err());
            }
            // The same proof answers no other question.
            let other_key = [k.as_slice(), b"x"].concat();
            prop_assert_eq!(
                state_proof::verify(&bytes, first, n, &trusted, m, NS, &other_key),
                Err(VerifyError::KeyMismatch)
            );
            prop_assert!(state_proof::verify(&bytes, first, n, &trusted, m, b"other", &k).is_err());
            if m > first {
                prop_assert!(state_proof::verify(&bytes, first, n, &trusted, m - 1, NS, &k).is_err());
            }
        }
    }
}

/// The lies a server could tell about one key, each refused with a named step.
#[test]
fn lies_about_a_key_are_refused() {
    let blocks: Vec<Vec<(u8, Option<u8>)>> = vec![
        vec![(1, Some(1)), (2, Some(1)), (3, Some(1))],
        vec![(1, Some(2))], // "transfer" of key 1
        vec![(2, None)],    // "revoke" of key 2
        vec![(4, Some(1)), (5, Some(1))],
    ];
    let first = 100;
    let (chain, states) = build(first, &blocks);
    let (n, trusted) = chain.tip().unwrap();

    // An older version: key 1 as it was at block 100, presented as the state at n.
    let old = prove(&chain, &states, first, n, first, &key(1));
    let mut lie = prove(&chain, &states, first, n, n, &key(1));
    lie.answer = old.answer.clone();
    assert!(lie.verify(first, n, &trusted, n, NS, &key(1)).is_err());

    // A forged absence of a present key: empty terminal.
    let mut lie = prove(&chain, &states, first, n, n, &key(1));
    lie.answer = Answer::Empty;
    assert!(lie.verify(first, n, &trusted, n, NS, &key(1)).is_err());

    // Another key's path and value, presented as key 1's.
    let three = prove(&chain, &states, first, n, n, &key(3));
    let mut lie = three.clone();
    lie.key = key(1);
    assert!(lie.verify(first, n, &trusted, n, NS, &key(1)).is_err());

    // A revoked key said to be present with its old value.
    let before = prove(&chain, &states, first, n, first, &key(2));
    let mut lie = prove(&chain, &states, first, n, n, &key(2));
    lie.answer = before.answer.clone();
    lie.siblings = before.siblings.clone();
    assert!(lie.verify(first, n, &trusted, n, NS, &key(2)).is_err());

    // A swapped sibling.
    let mut lie = prove(&chain, &states, first, n, n, &key(4));
    if lie.siblings.len() >= 2 {
        lie.siblings.swap(0, 1);
        assert!(lie.verify(first, n, &trusted, n, NS, &key(4)).is_err());
    }

    // A root from another height: an honest proof at n - 1 offered as the state at n.
    let stale = prove(&chain, &states, first, n - 1, n - 1, &key(4));
    assert!(stale.verify(first, n, &trusted, n, NS, &key(4)).is_err());

    // The honest answers.
    let ok = prove(&chain, &states, first, n, n, &key(1))
        .verify(first, n, &trusted, n, NS, &key(1))
        .unwrap();
    assert_eq!(ok.value, Some(vec![2; 3]));
    let gone = prove(&chain, &states, first, n, n, &key(2))
        .verify(first, n, &trusted, n, NS, &key(2))
        .unwrap();
    assert_eq!(gone.value, None);
    // A legacy-sized trusted hash is another scheme.
    assert!(matches!(
        prove(&chain, &states, first, n, n, &key(1)).verify(
            first,
            n,
            &ConsensusHash::Legacy([0; 16]),
            n,
            NS,
            &key(1)
        ),
        Err(VerifyError::SchemeMismatch { .. })
    ));
}

/// A state proof of one key among 1,000,000 at the trusted height stays far below the 1,536
/// bytes the scheme promises, present or absent.
#[test]
fn a_proof_among_a_million_keys_is_small() {
    let mut st = MemoryState::new();
    let keys: Vec<[u8; 8]> = (0..1_000_000u64).map(u64::to_be_bytes).collect();
    st.apply(keys.iter().map(|k| (NS, k.as_slice(), Some(vec![1u8; 40]))));
    let mut chain = MemoryHistory::new(Scheme::V3, 0);
    chain.push_block_with_state(Hash256([1; 32]), &[b"r"], Some(st.root()));
    let (n, trusted) = chain.tip().unwrap();
    let mut largest = 0;
    for probe in [0u64, 1, 77, 999_999, 2_000_000, 3_000_001] {
        let k = probe.to_be_bytes();
        let proof = state_proof::prove(
            &chain,
            &st,
            |_| st.get(NS, &k).map(<[u8]>::to_vec),
            n,
            n,
            NS,
            &k,
        )
        .unwrap();
        let bytes = proof.encode();
        let value_len = match &proof.answer {
            Answer::Present(v) => v.len(),
            _ => 0,
        };
        largest = largest.max(bytes.len() - value_len);
        let ok = state_proof::verify(&bytes, 0, n, &trusted, n, NS, &k).unwrap();
        assert_eq!(ok.value.is_some(), probe < 1_000_000);
    }
    assert!(largest <= 1_536, "largest proof {largest} bytes");
    assert_eq!(st.root(), state::root_of(&mut st.leaves()));
}
