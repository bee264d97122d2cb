//! The append step over random chains of every scheme: a store-like appender (resumed from only
//! its next height and accumulator peaks, reading earlier hashes from a map) and
//! [`MemoryHistory`] give the same hashes and accumulator nodes, and both equal the scheme's
//! definition written out from its primitives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;
use std::convert::Infallible;

use proptest::prelude::*;
use vc_chash::append::Appender;
use vc_chash::history::{History, MemoryHistory};
use vc_chash::priors::prior_heights;
use vc_chash::v2::mmr::Mmr;
use vc_chash::{ConsensusHash, Hash256, Scheme, legacy, v2};

type Block = (Hash256, Vec<Vec<u8>>);

fn chain() -> impl Strategy<Value = (Scheme, u64, Vec<Block>, usize)> {
    (
        prop_oneof![Just(Scheme::Legacy), Just(Scheme::V2), Just(Scheme::V3)],
        0u64..2_000_000,
        prop::collection::vec(
            (
                any::<[u8; 32]>().prop_map(Hash256),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..5),
            ),
            1..150,
        ),
        1usize..40,
    )
}

/// The consensus hash of block `height` as `docs/` defines it, from the earlier ones.
fn by_definition(
    scheme: Scheme,
    first: u64,
    height: u64,
    block: &Block,
    earlier: &[ConsensusHash],
) -> (Hash256, ConsensusHash) {
    let prior = |h: u64| earlier[(h - first) as usize];
    match scheme {
        Scheme::Legacy => {
            let ops = legacy::ops_hash(&block.1);
            let priors: Vec<[u8; 16]> = prior_heights(height, first)
                .map(|h| match prior(h) {
                    ConsensusHash::Legacy(c) => c,
                    ConsensusHash::V2(_) => panic!("mixed schemes"),
                })
                .collect();
            (
                ops,
                ConsensusHash::Legacy(legacy::consensus_hash(&ops, &priors)),
            )
        }
        Scheme::V2 | Scheme::V3 => {
            let ops = v2::ops_hash(&block.1);
            let priors: Vec<Hash256> = prior_heights(height, first)
                .map(|h| match prior(h) {
                    ConsensusHash::V2(c) => c,
                    ConsensusHash::Legacy(_) => panic!("mixed schemes"),
                })
                .collect();
            let mut mmr = Mmr::new();
            for ch in earlier {
                match ch {
                    ConsensusHash::V2(c) => mmr.push(*c, |_, _, _| {}),
                    ConsensusHash::Legacy(_) => panic!("mixed schemes"),
                }
            }
            let ch = v2::Commitment {
                height,
                block_hash: block.0,
                ops_hash: ops,
                priors_hash: v2::priors_hash(&priors),
                mmr_root: mmr.root(),
                state_root: state_root(scheme, block),
            }
            .consensus_hash();
            (ops, ConsensusHash::V2(ch))
        }
    }
}

/// The state root a v3 block commits in these chains (any value will do: the append step takes
/// it as given).
fn state_root(scheme: Scheme, block: &Block) -> Option<Hash256> {
    scheme.commits_state().then(|| {
        let mut root = block.0;
        root.0[0] ^= 0x5A;
        root
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn append_step_equals_memory_history((scheme, first, blocks, resume_every) in chain()) {
        let mut memory = MemoryHistory::new(scheme, first);
        // What a store keeps: consensus hashes by height and accumulator nodes by position.
        let mut stored: BTreeMap<u64, ConsensusHash> = BTreeMap::new();
        let mut nodes: BTreeMap<(u8, u64), Hash256> = BTreeMap::new();
        let mut appender = Appender::new(scheme, first);
        let mut earlier = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            let height = first + i as u64;
            if i % resume_every == 0 {
                // Start again from what was stored, as a store does when it reopens.
                let leaves = if scheme.has_accumulator() { i as u64 } else { 0 };
                let peaks = vc_chash::v2::mmr::peak_positions(leaves)
                    .map(|p| nodes[&p])
                    .collect();
                let mmr = Mmr::from_peaks(leaves, peaks).unwrap();
                appender = Appender::resume(scheme, first, height, mmr);
            }
            let appended = appender
                .append(
                    height,
                    block.0,
                    &block.1,
                    state_root(scheme, block),
                    |h| Ok::<_, Infallible>(stored.get(&h).copied()),
                    |level, index, hash| {
                        assert!(nodes.insert((level, index), *hash).is_none(), "node made twice");
                    },
                )
                .unwrap();
            let summary = memory.push_block_with_state(block.0, &block.1, state_root(scheme, block));
            prop_assert_eq!(appended.summary(), summary);
            let (ops, ch) = by_definition(scheme, first, height, block, &earlier);
            prop_assert_eq!(appended.ops_hash, ops);
            prop_assert_eq!(appended.consensus_hash, ch);
            prop_assert_eq!(appended.height, height);
            match scheme {
                Scheme::Legacy => prop_assert_eq!(appended.mmr_root, None),
                Scheme::V2 | Scheme::V3 => prop_assert_eq!(appended.mmr_root, Some(memory.mmr().root())),
            }
            prop_assert_eq!(appended.state_root, state_root(scheme, block));
            prop_assert_eq!(memory.state_root(height).unwrap(), state_root(scheme, block));
            prop_assert_eq!(appender.next_height(), memory.next_height());
            stored.insert(height, ch);
            earlier.push(ch);
        }
        // The accumulator nodes reported are the ones MemoryHistory keeps.
        for ((level, index), hash) in &nodes {
            prop_assert_eq!(memory.mmr_node(*level, *index).unwrap(), Some(*hash));
        }
        if scheme.has_accumulator() {
            prop_assert_eq!(nodes.len() as u64, 2 * blocks.len() as u64 - u64::from(blocks.len().count_ones()));
        } else {
            prop_assert!(nodes.is_empty());
        }
    }
}
