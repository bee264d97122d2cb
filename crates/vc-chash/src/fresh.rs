//! Staleness: whether a consensus hash named by an operation is recent enough.
//!
//! Writers embed a recent consensus hash in their operations so that readers can reject
//! operations made on another fork or from a stale view. An operation in block `b` naming `ch` is
//! *fresh* iff `ch` is the consensus hash of some block in `[b - S, b - 1]`, or an application
//! seed hash at a height in that range (BNS: `S = 24`).

use alloc::collections::BTreeMap;

use crate::history::History;
use crate::types::ConsensusHash;

/// An application's seed hashes: consensus hashes it declares for heights (usually before its
/// first block) that count as fresh like computed ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seeds(BTreeMap<u64, ConsensusHash>);

impl Seeds {
    /// No seeds.
    pub fn new() -> Self {
        Seeds::default()
    }

    /// Declares `ch` as the seed hash at `height`, replacing any earlier one there.
    pub fn insert(&mut self, height: u64, ch: ConsensusHash) {
        self.0.insert(height, ch);
    }

    /// The seed hash at `height`.
    pub fn get(&self, height: u64) -> Option<&ConsensusHash> {
        self.0.get(&height)
    }

    /// All seeds, by height.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &ConsensusHash)> {
        self.0.iter().map(|(h, c)| (*h, c))
    }
}

impl FromIterator<(u64, ConsensusHash)> for Seeds {
    fn from_iter<T: IntoIterator<Item = (u64, ConsensusHash)>>(iter: T) -> Self {
        Seeds(iter.into_iter().collect())
    }
}

/// The heights whose hashes an operation in block `height` may name under window `window`:
/// `[height - window, height - 1]`, or `None` when there are none (block 0, or window 0).
fn heights(window: u64, height: u64) -> Option<core::ops::RangeInclusive<u64>> {
    let hi = height.checked_sub(1)?;
    (window > 0).then(|| height.saturating_sub(window)..=hi)
}

/// Whether `ch`, named by an operation in block `height`, is fresh under window `window`: equal
/// to the consensus hash (or seed hash) of a block in `[height - window, height - 1]`.
///
/// Reads at most `window` consensus hashes, nearest first.
pub fn is_fresh<H: History>(
    history: &H,
    seeds: &Seeds,
    window: u64,
    height: u64,
    ch: &ConsensusHash,
) -> Result<bool, H::Error> {
    let Some(range) = heights(window, height) else {
        return Ok(false);
    };
    if seeds.0.range(range.clone()).any(|(_, s)| s == ch) {
        return Ok(true);
    }
    for h in range.rev() {
        if history.consensus_hash(h)?.as_ref() == Some(ch) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every consensus hash an operation in block `height` may name under window `window`, nearest
/// height first (at one height, the seed before the block's own hash): what [`is_fresh`]
/// accepts, as a list, for an application that must try each one (BNS's name updates match a
/// hash computed with a fresh consensus hash). `lookup` gives the consensus hash of an earlier
/// block, `None` where there is none.
pub fn window<E>(
    mut lookup: impl FnMut(u64) -> Result<Option<ConsensusHash>, E>,
    seeds: &Seeds,
    window: u64,
    height: u64,
) -> Result<alloc::vec::Vec<(u64, ConsensusHash)>, E> {
    let mut out = alloc::vec::Vec::new();
    let Some(range) = heights(window, height) else {
        return Ok(out);
    };
    for h in range.rev() {
        if let Some(seed) = seeds.get(h) {
            out.push((h, *seed));
        }
        if let Some(ch) = lookup(h)? {
            out.push((h, ch));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::MemoryHistory;
    use crate::types::{Hash256, Scheme};

    #[test]
    fn window_bounds() {
        let mut h = MemoryHistory::new(Scheme::Legacy, 100);
        for _ in 0..50 {
            h.push_block::<&[u8]>(Hash256::ZERO, &[]);
        }
        let ch_110 = h.consensus_hash(110).unwrap().unwrap();
        let seeds = Seeds::new();
        // Fresh from 111 (window start) through 134 (110 = 134 - 24).
        assert!(!is_fresh(&h, &seeds, 24, 110, &ch_110).unwrap());
        assert!(is_fresh(&h, &seeds, 24, 111, &ch_110).unwrap());
        assert!(is_fresh(&h, &seeds, 24, 134, &ch_110).unwrap());
        assert!(!is_fresh(&h, &seeds, 24, 135, &ch_110).unwrap());
        assert!(!is_fresh(&h, &seeds, 0, 111, &ch_110).unwrap());
        assert!(!is_fresh(&h, &seeds, 24, 0, &ch_110).unwrap());
    }

    #[test]
    fn the_window_lists_what_is_fresh_nearest_first() {
        let mut h = MemoryHistory::new(Scheme::Legacy, 100);
        for _ in 0..50 {
            h.push_block::<&[u8]>(Hash256::ZERO, &[]);
        }
        let seed = ConsensusHash::Legacy([7; 16]);
        let seeds: Seeds = [(99u64, seed)].into_iter().collect();
        for (height, win) in [
            (110u64, 24u64),
            (101, 5),
            (100, 3),
            (149, 1),
            (0, 24),
            (120, 0),
        ] {
            let list = window(|x| h.consensus_hash(x), &seeds, win, height).unwrap();
            let heights: alloc::vec::Vec<u64> = list.iter().map(|(x, _)| *x).collect();
            let mut sorted = heights.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(heights, sorted);
            for (_, ch) in &list {
                assert!(is_fresh(&h, &seeds, win, height, ch).unwrap());
            }
            // Every block hash in range is listed.
            let lo = height.saturating_sub(win).max(100);
            let blocks = list.iter().filter(|(_, c)| *c != seed).count() as u64;
            assert_eq!(
                blocks,
                if win == 0 || height <= lo {
                    0
                } else {
                    height - lo
                }
            );
        }
    }

    #[test]
    fn seeds_count_in_their_window() {
        let h = MemoryHistory::new(Scheme::Legacy, 100);
        let seed = ConsensusHash::Legacy([7; 16]);
        let seeds: Seeds = [(95u64, seed)].into_iter().collect();
        assert!(is_fresh(&h, &seeds, 24, 100, &seed).unwrap());
        assert!(is_fresh(&h, &seeds, 24, 119, &seed).unwrap());
        assert!(!is_fresh(&h, &seeds, 24, 120, &seed).unwrap());
        assert!(!is_fresh(&h, &seeds, 24, 95, &seed).unwrap());
        assert!(!is_fresh(&h, &seeds, 24, 100, &ConsensusHash::Legacy([8; 16])).unwrap());
    }
}
