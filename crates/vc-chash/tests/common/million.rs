//! A state of 1,000,000 keys and a v3 chain of a million blocks over it, shared by
//! `tests/proof_size.rs` and `benches/chash.rs` (included with `#[path]`).
//!
//! Keys are `u64` big-endian in namespace `names`; values are 40 to 100 bytes. The chain runs
//! from `F` to `N = F + 1,000,000`; blocks `F` and `N` both commit the state's root (the state
//! is the same at both: only their proofs are read), the blocks between commit synthetic
//! roots. It keeps only what proofs of heights `F` and `N` from trusted `N` read.

#![allow(dead_code)] // each includer uses part of it

use vc_chash::Hash256;
use vc_chash::Scheme;
use vc_chash::history::{MemoryHistory, Retain};
use vc_chash::proof::retention_for;
use vc_chash::state::MemoryState;
use vc_chash::state::proof::{self as state_proof, Answer, StateProof};

/// How many keys the state holds.
pub const KEYS: u64 = 1_000_000;
/// The namespace every key is in.
pub const NS: &[u8] = b"names";
/// The chain's first block.
pub const F: u64 = 700_000;
/// The trusted height: `F + 1,000,000`.
pub const N: u64 = F + 1_000_000;

/// Key `i`'s bytes.
pub fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Key `i`'s value for a given `salt`: 40 to 100 bytes, like a name record (owner script,
/// zone-file hash, a few fields).
pub fn value(i: u64, salt: u64) -> Vec<u8> {
    let len = 40 + ((i.wrapping_mul(7919) ^ salt) % 61) as usize;
    let seed = i ^ salt.rotate_left(32);
    (0..len)
        .map(|j| (seed.rotate_left((j % 64) as u32) as u8) ^ (j as u8))
        .collect()
}

/// The state with keys `0..KEYS`, all set (salt 0).
pub fn state() -> MemoryState {
    let keys: Vec<[u8; 8]> = (0..KEYS).map(key).collect();
    let mut st = MemoryState::new();
    st.apply(
        keys.iter()
            .zip(0..)
            .map(|(k, i)| (NS, k.as_slice(), Some(value(i, 0)))),
    );
    assert_eq!(st.len() as u64, KEYS);
    st
}

fn merge<T: Ord + Clone>(
    a: &Option<std::collections::BTreeSet<T>>,
    b: &Option<std::collections::BTreeSet<T>>,
) -> Option<std::collections::BTreeSet<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b).cloned().collect()),
        _ => None,
    }
}

/// The v3 chain `F..=N` whose blocks `F` and `N` commit `root`.
pub fn chain(root: Hash256) -> MemoryHistory {
    let (a, b) = (
        retention_for(Scheme::V3, F, N, F),
        retention_for(Scheme::V3, F, N, N),
    );
    let retain = Retain {
        // A state proof reads the target's ops hash, which a block proof recomputes instead.
        ops_hashes: Some([F, N].into_iter().collect()),
        block_hashes: merge(&a.block_hashes, &b.block_hashes),
        records: Some(Default::default()),
        mmr_nodes: merge(&a.mmr_nodes, &b.mmr_nodes),
    };
    let mut h = MemoryHistory::with_retention(Scheme::V3, F, retain);
    while h.next_height() <= N {
        let height = h.next_height();
        let state_root = if height == F || height == N {
            root
        } else {
            let mut b = [0x5a; 32];
            b[..8].copy_from_slice(&height.to_be_bytes());
            Hash256(b)
        };
        h.push_block_with_state::<&[u8]>(Hash256([7; 32]), &[], Some(state_root));
    }
    h
}

/// Key `i`'s proof at height `m` from trusted `N`, encoded.
pub fn proof(chain: &MemoryHistory, st: &MemoryState, m: u64, i: u64) -> Vec<u8> {
    let k = key(i);
    state_proof::prove(
        chain,
        st,
        |_| st.get(NS, &k).map(<[u8]>::to_vec),
        N,
        m,
        NS,
        &k,
    )
    .expect("the chain keeps what the proof reads")
    .encode()
}

/// A proof's size without the value's bytes (the answer's tag and length stay counted).
pub fn size_without_value(bytes: &[u8]) -> usize {
    match StateProof::decode(bytes)
        .expect("an honest proof decodes")
        .answer
    {
        Answer::Present(v) => bytes.len() - v.len(),
        Answer::Empty | Answer::Other { .. } => bytes.len(),
    }
}

/// Whether an absent key's proof ends at an empty subtree (`Some(true)`) or at another key's
/// leaf (`Some(false)`); `None` for a present key.
pub fn absent_kind(bytes: &[u8]) -> Option<bool> {
    match StateProof::decode(bytes)
        .expect("an honest proof decodes")
        .answer
    {
        Answer::Present(_) => None,
        Answer::Empty => Some(true),
        Answer::Other { .. } => Some(false),
    }
}
