//! Proof sizes at the scale DESIGN 3.4 sets: a v2 proof of block F+1 from trusted CH(F+10^6)
//! on a chain of empty blocks is at most 1,536 bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use vc_chash::Scheme;
use vc_chash::history::{History, MemoryHistory};
use vc_chash::proof::{self, retention_for};

fn proof_len(scheme: Scheme, first: u64, trusted: u64, target: u64) -> usize {
    // Keep only what this proof reads: a million blocks then cost ~32 MB, not hundreds.
    let mut chain =
        MemoryHistory::with_retention(scheme, first, retention_for(scheme, first, trusted, target));
    while chain.next_height() <= trusted {
        chain.push_block::<&[u8]>(vc_chash::Hash256([3; 32]), &[]);
    }
    let ch = chain.consensus_hash(trusted).unwrap().unwrap();
    let bytes = proof::prove(&chain, trusted, target).unwrap().encode();
    let verified = proof::verify(&bytes, first, trusted, &ch, target).unwrap();
    assert!(verified.records.is_empty());
    bytes.len()
}

#[test]
fn v2_proof_across_a_million_blocks_fits_in_1536_bytes() {
    let f = 373_601;
    let len = proof_len(Scheme::V2, f, f + 1_000_000, f + 1);
    eprintln!("v2 proof of F+1 from F+1,000,000: {len} bytes");
    assert!(len <= 1536, "{len} bytes");
}

#[test]
fn legacy_proof_walks_back_a_thousand_blocks() {
    let f = 100;
    let len = proof_len(Scheme::Legacy, f, f + 1000, f + 1);
    eprintln!("legacy proof of F+1 from F+1,000: {len} bytes");
    // 10 steps of at most 32 + 1 + 10 * 16 bytes, plus the target's priors and framing.
    assert!(len <= 28 + 1 + 10 * 193 + 1 + 16 + 4, "{len} bytes");
}

#[path = "common/million.rs"]
mod million;

/// Sizes (value excluded) of the state proofs of `count` present keys and `count` absent ones
/// at height `m`, each verified; returns (present max, absent max, absent-at-empty count).
fn state_proof_sizes(
    chain: &MemoryHistory,
    st: &vc_chash::state::MemoryState,
    trusted: &vc_chash::ConsensusHash,
    m: u64,
    count: u64,
) -> (usize, usize, usize) {
    let (mut present, mut absent, mut at_empty) = (0, 0, 0);
    for j in 0..count {
        // Spread over the key space: present keys below KEYS, absent ones above.
        let i = j.wrapping_mul(0x9E37_79B9) % million::KEYS;
        for (k, want) in [(i, true), (million::KEYS + i, false)] {
            let bytes = million::proof(chain, st, m, k);
            let verified = vc_chash::state::proof::verify(
                &bytes,
                million::F,
                million::N,
                trusted,
                m,
                million::NS,
                &million::key(k),
            )
            .unwrap();
            assert_eq!(verified.value.is_some(), want, "key {k}");
            let len = million::size_without_value(&bytes);
            if want {
                present = present.max(len);
            } else {
                absent = absent.max(len);
                at_empty += usize::from(million::absent_kind(&bytes) == Some(true));
            }
        }
    }
    (present, absent, at_empty)
}

#[test]
fn v3_state_proof_among_a_million_keys_fits_in_1536_bytes() {
    let st = million::state();
    let chain = million::chain(st.root());
    let trusted = chain.consensus_hash(million::N).unwrap().unwrap();
    let count = 200;
    let (present, absent, at_empty) = state_proof_sizes(&chain, &st, &trusted, million::N, count);
    eprintln!(
        "v3 state proof among 1,000,000 keys, m = n, largest of {count} (value excluded): \
         present {present} bytes, absent {absent} bytes ({at_empty} of {count} absent keys end \
         at an empty subtree)"
    );
    assert!(present <= 1536, "present: {present} bytes");
    assert!(absent <= 1536, "absent: {absent} bytes");
    // Below n the proof also carries the link from CH(m) to CH(n): block n's commitment and
    // the accumulator path across a million blocks, about 770 bytes more. Not within 1,536;
    // bounded here so that it does not grow unnoticed.
    let (present, absent, _) = state_proof_sizes(&chain, &st, &trusted, million::F, count);
    eprintln!(
        "v3 state proof among 1,000,000 keys, m = n - 1,000,000, largest of {count} (value \
         excluded): present {present} bytes, absent {absent} bytes"
    );
    assert!(present <= 1800, "present below n: {present} bytes");
    assert!(absent <= 1800, "absent below n: {absent} bytes");
}
