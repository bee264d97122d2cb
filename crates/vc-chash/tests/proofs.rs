//! Property tests of fast-query proofs in both schemes: honest proofs verify, every single-byte
//! change is rejected, and arbitrary bytes never panic the decoder or verifier.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use proptest::prelude::*;
use vc_chash::history::{History, MemoryHistory};
use vc_chash::proof::{self, Proof, VerifyError, retention_for};
use vc_chash::{ConsensusHash, Hash256, Scheme};

/// A chain description: records per block and block hashes.
#[derive(Debug, Clone)]
struct ChainSpec {
    scheme: Scheme,
    first_block: u64,
    blocks: Vec<(Hash256, Vec<Vec<u8>>)>,
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![Just(Scheme::Legacy), Just(Scheme::V2)]
}

fn chain(max_blocks: usize) -> impl Strategy<Value = ChainSpec> {
    (
        scheme(),
        0u64..2_000_000,
        prop::collection::vec(
            (
                any::<[u8; 32]>(),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..5),
            ),
            1..max_blocks,
        ),
    )
        .prop_map(|(scheme, first_block, blocks)| ChainSpec {
            scheme,
            first_block,
            blocks: blocks.into_iter().map(|(h, r)| (Hash256(h), r)).collect(),
        })
}

fn build(spec: &ChainSpec) -> MemoryHistory {
    let mut h = MemoryHistory::new(spec.scheme, spec.first_block);
    for (hash, records) in &spec.blocks {
        h.push_block(*hash, records);
    }
    h
}

/// A chain and two heights `first <= m <= n <= tip` chosen from it.
fn chain_and_heights(max_blocks: usize) -> impl Strategy<Value = (ChainSpec, u64, u64)> {
    chain(max_blocks).prop_flat_map(|spec| {
        let len = spec.blocks.len() as u64;
        (Just(spec), 0..len, 0..len).prop_map(|(spec, a, b)| {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let f = spec.first_block;
            (spec, f + hi, f + lo)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn honest_proofs_verify((spec, n, m) in chain_and_heights(120)) {
        let history = build(&spec);
        let trusted = history.consensus_hash(n).unwrap().unwrap();
        let bytes = proof::prove(&history, n, m).unwrap().encode();
        let mut want = spec.blocks[(m - spec.first_block) as usize].1.clone();
        if spec.scheme == Scheme::Legacy {
            // Legacy commits no order: records come back sorted as the ops hash sorts them,
            // and a repeated record (indistinguishable from Merkle padding) is refused.
            want.sort_by_key(|r| vc_chash::legacy::record_digest(r));
            if want.windows(2).any(|w| w[0] == w[1]) {
                let r = proof::verify(&bytes, spec.first_block, n, &trusted, m);
                prop_assert!(matches!(r, Err(VerifyError::RepeatedRecord { .. })), "got {:?}", r);
                return Ok(());
            }
        }
        let v = proof::verify(&bytes, spec.first_block, n, &trusted, m).unwrap();
        prop_assert_eq!(&v.records, &want);
        prop_assert_eq!(Some(v.consensus_hash), history.consensus_hash(m).unwrap());
        prop_assert_eq!(Some(v.ops_hash), history.ops_hash(m).unwrap());
        if spec.scheme == Scheme::V2 {
            prop_assert_eq!(v.block_hash, history.block_hash(m).unwrap());
        }
        // The decoded proof re-encodes to the same bytes.
        prop_assert_eq!(Proof::decode(&bytes).unwrap().encode(), bytes.clone());

        // A history that retained only what this proof needs yields the same proof.
        let mut lean = MemoryHistory::with_retention(
            spec.scheme,
            spec.first_block,
            retention_for(spec.scheme, spec.first_block, n, m),
        );
        for (hash, records) in &spec.blocks {
            lean.push_block(*hash, records);
        }
        prop_assert_eq!(proof::prove(&lean, n, m).unwrap().encode(), bytes);
    }

    #[test]
    fn every_single_byte_change_is_rejected(
        (spec, n, m) in chain_and_heights(80),
        xor in 1u8..=255,
    ) {
        let history = build(&spec);
        let trusted = history.consensus_hash(n).unwrap().unwrap();
        let bytes = proof::prove(&history, n, m).unwrap().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= xor;
            prop_assert!(
                proof::verify(&bad, spec.first_block, n, &trusted, m).is_err(),
                "mutation at byte {} of {} accepted", i, bytes.len()
            );
        }
        // Truncations and extensions too.
        for len in 0..bytes.len() {
            prop_assert!(proof::verify(&bytes[..len], spec.first_block, n, &trusted, m).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(proof::verify(&longer, spec.first_block, n, &trusted, m).is_err());
    }

    #[test]
    fn wrong_questions_are_rejected((spec, n, m) in chain_and_heights(60)) {
        let history = build(&spec);
        let f = spec.first_block;
        let trusted = history.consensus_hash(n).unwrap().unwrap();
        let bytes = proof::prove(&history, n, m).unwrap().encode();
        // A legacy block with a repeated record is refused as such whatever the question (the
        // verifier checks the records before the walk), as honest_proofs_verify shows.
        let mut records = spec.blocks[(m - f) as usize].1.clone();
        records.sort();
        let repeated = spec.scheme == Scheme::Legacy && records.windows(2).any(|w| w[0] == w[1]);
        let refused = |r: &Result<_, VerifyError>, expected: fn(&VerifyError) -> bool| match r {
            Err(VerifyError::RepeatedRecord { .. }) => repeated,
            Err(e) => expected(e),
            Ok(_) => false,
        };
        // Another trusted hash (here: the one of a different block, or a flipped one).
        let mut wrong = trusted.as_bytes().to_vec();
        wrong[0] ^= 1;
        let wrong = ConsensusHash::from_slice(spec.scheme, &wrong).unwrap();
        let r = proof::verify(&bytes, f, n, &wrong, m);
        prop_assert!(
            refused(&r, |e| matches!(e, VerifyError::HashMismatch { .. })),
            "got {:?}", r
        );
        // Different parameters than the proof answers.
        let r = proof::verify(&bytes, f, n + 1, &trusted, m);
        prop_assert!(
            refused(&r, |e| matches!(e, VerifyError::ParameterMismatch { .. })),
            "got {:?}", r
        );
        let r = proof::verify(&bytes, f.wrapping_add(1), n, &trusted, m);
        prop_assert!(
            refused(&r, |e| matches!(e, VerifyError::ParameterMismatch { .. })),
            "got {:?}", r
        );
        // The other scheme's hash.
        let other = match trusted {
            ConsensusHash::Legacy(_) => ConsensusHash::V2(Hash256::ZERO),
            ConsensusHash::V2(_) => ConsensusHash::Legacy([0; 16]),
        };
        let r = proof::verify(&bytes, f, n, &other, m);
        prop_assert!(matches!(r, Err(VerifyError::SchemeMismatch { .. })), "got {:?}", r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        f in any::<u64>(), n in any::<u64>(), m in any::<u64>(),
        legacy in any::<bool>(),
    ) {
        let trusted = if legacy {
            ConsensusHash::Legacy([0; 16])
        } else {
            ConsensusHash::V2(Hash256::ZERO)
        };
        let _ = Proof::decode(&bytes);
        let _ = proof::verify(&bytes, f, n, &trusted, m);
    }

    #[test]
    fn well_headed_garbage_never_panics(
        scheme in scheme(),
        f in 0u64..1000, dn in 0u64..5000, dm in 0u64..5000,
        body in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        // A valid header followed by random bytes reaches the scheme decoders and verifiers.
        let (n, m) = (f + dn.max(dm), f + dn.min(dm));
        let mut bytes = b"vc\x01".to_vec();
        bytes.push(scheme.to_byte());
        for v in [f, n, m] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        let trusted = ConsensusHash::from_slice(scheme, &vec![0u8; scheme.hash_len()]).unwrap();
        prop_assert!(proof::verify(&bytes, f, n, &trusted, m).is_err());
    }
}

#[test]
fn retention_for_any_heights_never_panics() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        for (f, n, m) in [
            (10, 5, 3),
            (10, 20, 3),
            (10, 5, 30),
            (0, u64::MAX, 0),
            (u64::MAX, 0, 0),
        ] {
            let _ = retention_for(scheme, f, n, m);
        }
    }
}

#[test]
fn proving_outside_the_chain_fails_cleanly() {
    let mut h = MemoryHistory::new(Scheme::V2, 10);
    for i in 0..5u8 {
        h.push_block(Hash256([i; 32]), &[[i]]);
    }
    assert!(proof::prove(&h, 14, 9).is_err());
    assert!(proof::prove(&h, 13, 14).is_err());
    assert!(proof::prove(&h, 20, 12).is_err());
}
