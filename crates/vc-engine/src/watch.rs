//! The geometric fork watch: on every poll, the database's block hashes at the tip and at
//! tip−1, tip−2, tip−4, ..., tip−2^k (down to the first block) are compared with the source's,
//! so that a fork of any depth is seen at once, even one the tip's parent hides (a source that
//! switched chains while the node was down and now serves a block that links to nothing the
//! engine asks about). The probes cost at most `⌈log2 n⌉ + 2` requests for a chain of `n` blocks.
//!
//! Agreement is monotonic on an honest source (a block commits to its parent: once two chains
//! differ at a height they differ above it), so the highest agreeing probe and the lowest
//! disagreeing probe above it bracket the fork point, and a bisection between them finds it:
//! a fork `d` blocks below the tip lies between probes `2^(j-1)` and `2^j` below it with
//! `2^(j-1) < d`, so the search costs at most `⌈log2 d⌉ - 1` more requests. A source whose
//! answers are not monotonic (it agrees at a height and disagrees below it) is lying or
//! inconsistent: the engine stops rather than roll back on its word.
//!
//! The hashes on the database's side are read from its chain table, where every block's hash
//! already is: the watch persists nothing.

use crate::error::EngineError;

/// A fork the watch found: where the database and the source part, and what finding it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForkReport {
    /// The highest height where the database and the source agree (the first block less one
    /// when they agree nowhere).
    pub fork_height: u64,
    /// The database's tip.
    pub tip: u64,
    /// How many of the database's blocks are not on the source's chain.
    pub depth: u64,
    /// The source's tip height.
    pub source_tip: u64,
    /// Requests the geometric probes made (detection).
    pub probe_requests: u32,
    /// Further requests the bisection made (locating the fork point).
    pub search_requests: u32,
    /// Whether the engine rolls it back on its own (within the automatic limit).
    pub automatic: bool,
}

impl ForkReport {
    /// Every request the detection and the location made.
    pub fn requests(&self) -> u32 {
        self.probe_requests + self.search_requests
    }
}

/// The heights the watch compares for a database whose newest block is `top`, from the top
/// down: `top`, `top - 1`, `top - 2`, `top - 4`, ..., and `first` (no duplicates, none below
/// `first`). Empty when `top < first`.
pub fn probe_heights(top: u64, first: u64) -> Vec<u64> {
    let mut heights = Vec::new();
    if top < first {
        return heights;
    }
    heights.push(top);
    let mut offset = 1u64;
    while let Some(h) = top.checked_sub(offset).filter(|h| *h > first) {
        heights.push(h);
        offset = offset.saturating_mul(2);
    }
    if top > first {
        heights.push(first);
    }
    heights
}

/// What the watch found, before the engine decides what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The highest agreeing height (`first - 1`, saturating, when none agrees).
    pub fork_height: u64,
    /// Probe requests.
    pub probes: u32,
    /// Bisection requests.
    pub search: u32,
}

/// Runs the watch over `first..=top`: `agrees(h)` compares the database's block at `h` with
/// the source's (one request). Returns `None` when every probe agrees, else the fork point
/// and the requests made. The probes are asked from the deepest up, so that a source
/// reorganising while it is asked still answers monotonically.
pub(crate) fn watch(
    top: u64,
    first: u64,
    mut agrees: impl FnMut(u64) -> Result<bool, EngineError>,
) -> Result<Option<Found>, EngineError> {
    let heights = probe_heights(top, first);
    let mut answers = Vec::with_capacity(heights.len());
    for &h in heights.iter().rev() {
        answers.push((h, agrees(h)?));
    }
    let probes = u32::try_from(answers.len()).unwrap_or(u32::MAX);
    // `answers` runs from the deepest probe up. Find the first disagreement; everything
    // above it must disagree too.
    let Some(i) = answers.iter().position(|(_, ok)| !ok) else {
        return Ok(None);
    };
    if let Some(&(h, _)) = answers.get(i..).and_then(|a| a.iter().find(|(_, ok)| *ok)) {
        let (bad, _) = answers[i];
        return Err(EngineError::InconsistentSource {
            agrees_at: h,
            differs_at: bad,
        });
    }
    let mut hi = answers[i].0;
    let Some(&(lo, _)) = i.checked_sub(1).and_then(|j| answers.get(j)) else {
        // The deepest probe, the first block, disagrees: nothing is shared.
        return Ok(Some(Found {
            fork_height: first.saturating_sub(1),
            probes,
            search: 0,
        }));
    };
    let mut lo = lo;
    let mut search = 0u32;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        search += 1;
        if agrees(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(Found {
        fork_height: lo,
        probes,
        search,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{probe_heights, watch};

    #[test]
    fn the_probes_are_the_tip_and_powers_of_two_below_it() {
        assert_eq!(probe_heights(100, 0), [100, 99, 98, 96, 92, 84, 68, 36, 0]);
        assert_eq!(probe_heights(10, 10), [10]);
        assert_eq!(probe_heights(11, 10), [11, 10]);
        assert_eq!(probe_heights(12, 10), [12, 11, 10]);
        assert!(probe_heights(9, 10).is_empty());
        for n in [1u64, 2, 3, 1_000, 1_000_000, 1 << 40] {
            let probes = probe_heights(n - 1, 0).len() as u32;
            let ceil_log2 = n.next_power_of_two().ilog2();
            assert!(probes <= ceil_log2 + 2, "{n} blocks: {probes} probes");
        }
    }

    #[test]
    fn every_fork_is_found_in_logarithmic_requests() {
        for first in [0u64, 7] {
            for top in first..first + 300 {
                for fork in (first.saturating_sub(1))..=top {
                    let mut calls = 0u32;
                    let found = watch(top, first, |h| {
                        calls += 1;
                        Ok(h <= fork)
                    })
                    .unwrap();
                    if fork == top {
                        assert_eq!(found, None);
                        continue;
                    }
                    let found = found.unwrap();
                    assert_eq!(found.fork_height, fork.max(first.saturating_sub(1)));
                    assert_eq!(found.probes + found.search, calls);
                    let n = top - first + 1;
                    let ceil_log2 = n.next_power_of_two().ilog2();
                    assert!(found.probes <= ceil_log2 + 2, "top {top}: {found:?}");
                    let depth = top - fork;
                    // A fork `d` below the tip lies between the probes `2^(j-1)` and `2^j` below
                    // it, with `2^(j-1) <= d - 1`: `j - 1` bisection steps.
                    let bound = if depth <= 1 { 0 } else { (depth - 1).ilog2() };
                    assert!(found.search <= bound, "depth {depth}: {found:?}");
                }
            }
        }
    }

    #[test]
    fn a_source_that_agrees_above_a_disagreement_is_refused() {
        let err = watch(100, 0, |h| Ok(h != 36)).unwrap_err();
        assert!(
            matches!(
                err,
                crate::EngineError::InconsistentSource {
                    agrees_at: 68,
                    differs_at: 36
                }
            ),
            "{err:?}"
        );
    }
}
