//! An arbitrary merkle branch never panics the verifier; a branch verifies against the root it
//! leads to, and no longer does once any bit of a sibling or of the txid is flipped.
#![no_main]

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use libfuzzer_sys::fuzz_target;
use vc_source::electrum::merkle::{branch_root, verify_branch};

fuzz_target!(|data: &[u8]| {
    if data.len() < 34 {
        return;
    }
    let txid = Txid::from_byte_array(data[..32].try_into().expect("32 bytes"));
    let pos = u64::from(data[32]) | (u64::from(data[33]) << 8);
    let branch: Vec<[u8; 32]> = data[34..]
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    let Ok(root) = branch_root(txid, pos, &branch) else {
        return;
    };
    assert!(verify_branch(txid, pos, &branch, root).is_ok());
    let mut flipped = txid.to_byte_array();
    flipped[data[0] as usize % 32] ^= 1 << (data[1] % 8);
    assert!(verify_branch(Txid::from_byte_array(flipped), pos, &branch, root).is_err());
    if let Some(first) = branch.first() {
        let mut bad = branch.clone();
        let mut s = *first;
        s[data[2] as usize % 32] ^= 1 << (data[3] % 8);
        bad[0] = s;
        assert!(verify_branch(txid, pos, &bad, root).is_err());
    }
});
