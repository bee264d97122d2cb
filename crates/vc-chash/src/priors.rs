//! The geometric series of earlier blocks that every consensus hash mixes in.
//!
//! Block `k` of an application whose first block is `F` commits to the consensus hashes of the
//! blocks `k - (2^i - 1)` for `i = 1, 2, ...` while that height is at least `F`: offsets 1, 3, 7,
//! 15, ... Block `F` has none. Both schemes use the same series.

/// The heights whose consensus hashes block `height` mixes in, nearest first
/// (`height - 1`, `height - 3`, `height - 7`, ...), never below `first_block`.
///
/// Empty when `height <= first_block`.
///
/// ```
/// let p: Vec<u64> = vc_chash::priors::prior_heights(110, 100).collect();
/// assert_eq!(p, [109, 107, 103]);
/// ```
pub fn prior_heights(height: u64, first_block: u64) -> impl Iterator<Item = u64> + Clone {
    let span = height.saturating_sub(first_block);
    let mut offset: u64 = 1;
    core::iter::from_fn(move || {
        if offset == 0 || offset > span {
            return None;
        }
        let h = height - offset;
        // 1, 3, 7, ... ; after 2^64 - 1 the series ends (offset becomes 0 via checked ops).
        offset = offset
            .checked_mul(2)
            .and_then(|o| o.checked_add(1))
            .unwrap_or(0);
        Some(h)
    })
}

/// How many priors block `height` has: `floor(log2(height - first_block + 1))`.
pub fn prior_count(height: u64, first_block: u64) -> usize {
    let d = height.saturating_sub(first_block);
    if d == u64::MAX {
        return 64;
    }
    (u64::BITS - 1 - (d + 1).leading_zeros()) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn series() {
        assert_eq!(prior_heights(100, 100).count(), 0);
        assert_eq!(prior_heights(99, 100).count(), 0);
        assert_eq!(prior_heights(101, 100).collect::<Vec<_>>(), [100]);
        assert_eq!(prior_heights(102, 100).collect::<Vec<_>>(), [101]);
        assert_eq!(prior_heights(103, 100).collect::<Vec<_>>(), [102, 100]);
        assert_eq!(prior_heights(107, 100).collect::<Vec<_>>(), [106, 104, 100]);
        assert_eq!(prior_heights(u64::MAX, 0).count(), 64);
    }

    #[test]
    fn count_matches_series() {
        for f in [0u64, 5, 1000] {
            for h in f..f + 300 {
                assert_eq!(
                    prior_count(h, f),
                    prior_heights(h, f).count(),
                    "h={h} f={f}"
                );
            }
        }
        assert_eq!(prior_count(u64::MAX, 0), 64);
        assert_eq!(prior_count(u64::MAX - 1, 0), 63);
    }
}
