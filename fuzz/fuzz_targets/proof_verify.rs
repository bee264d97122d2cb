//! Decoding and verifying arbitrary proof bytes never panics, and a proof that decodes
//! re-encodes to the same bytes (each proof has exactly one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_chash::proof::{self, Proof};
use vc_chash::{ConsensusHash, Hash256};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Proof::decode(data) {
        assert_eq!(p.encode(), data);
        let h = p.header();
        // Verify against the header's own parameters so the scheme code runs in full.
        for trusted in [ConsensusHash::Legacy([0; 16]), ConsensusHash::V2(Hash256::ZERO)] {
            let _ = proof::verify(data, h.first_block, h.trusted, &trusted, h.target);
        }
    }
});
