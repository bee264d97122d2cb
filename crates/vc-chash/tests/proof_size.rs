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
