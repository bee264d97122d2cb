//! The last fork the indexer's fork watch found, kept as a node-local setting so that a reader
//! of the same file (`virtualchain serve`'s events feed) can announce it. Not consensus data:
//! it is never hashed and never exported in snapshots.

use crate::error::StoreError;
use crate::store::View;
use crate::writer::Writer;

/// A fork the indexer detected: where its database and the source parted, and what finding it
/// cost. Each detection gets the next [`LastFork::seq`], so a reader tells a new one from the
/// one it already reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastFork {
    /// How many forks this file has recorded, this one included (1 for the first).
    pub seq: u64,
    /// The highest height the database and the source agree on.
    pub fork_height: u64,
    /// The database's tip when the fork was found.
    pub tip: u64,
    /// The source's tip height then.
    pub source_tip: u64,
    /// Source requests the geometric probes made (detection).
    pub probe_requests: u32,
    /// Source requests the bisection made (locating the fork point).
    pub search_requests: u32,
    /// Whether the indexer reverted it on its own (within its automatic limit); otherwise it
    /// stopped and waits for `recover`.
    pub automatic: bool,
}

/// The encoded length: four `u64`s, two `u32`s and a flag.
const LEN: usize = 4 * 8 + 2 * 4 + 1;

impl LastFork {
    /// The local-settings key.
    pub const KEY: &'static str = "engine.last_fork";

    /// The `seq`-th fork recorded: the database at `tip` leaves the source's chain (whose tip
    /// is `source_tip`) above `fork_height`, found in `probe_requests` and located in
    /// `search_requests` requests, reverted on its own if `automatic`.
    pub fn new(
        seq: u64,
        fork_height: u64,
        tip: u64,
        source_tip: u64,
        probe_requests: u32,
        search_requests: u32,
        automatic: bool,
    ) -> Self {
        LastFork {
            seq,
            fork_height,
            tip,
            source_tip,
            probe_requests,
            search_requests,
            automatic,
        }
    }

    /// How many of the database's blocks were off the source's chain.
    pub fn depth(&self) -> u64 {
        self.tip.saturating_sub(self.fork_height)
    }

    /// The fields little-endian, in declaration order, the flag as one byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        for n in [self.seq, self.fork_height, self.tip, self.source_tip] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.probe_requests.to_le_bytes());
        out.extend_from_slice(&self.search_requests.to_le_bytes());
        out.push(u8::from(self.automatic));
        out
    }

    /// The inverse of [`LastFork::encode`]; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<LastFork> {
        if bytes.len() != LEN {
            return None;
        }
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
        };
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
        };
        let automatic = match bytes.last()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        Some(LastFork::new(
            u64_at(0)?,
            u64_at(8)?,
            u64_at(16)?,
            u64_at(24)?,
            u32_at(32)?,
            u32_at(36)?,
            automatic,
        ))
    }
}

impl View {
    /// The last fork the indexer recorded, as of this view's commit (`None` if it never did,
    /// or the record is not one).
    pub fn last_fork(&self) -> Result<Option<LastFork>, StoreError> {
        Ok(self
            .local(LastFork::KEY)?
            .and_then(|b| LastFork::decode(&b)))
    }
}

impl Writer<'_> {
    /// Records a detected fork in the open transaction (durable with the next commit, and
    /// atomic with a rollback made in the same transaction).
    pub fn set_last_fork(&mut self, fork: LastFork) -> Result<(), StoreError> {
        self.set_local(LastFork::KEY, &fork.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_record_round_trips_and_refuses_other_bytes() {
        for f in [
            LastFork::new(1, 100, 2_100, 2_101, 14, 10, false),
            LastFork::new(u64::MAX, 0, 5, 3, 0, u32::MAX, true),
        ] {
            let bytes = f.encode();
            assert_eq!(LastFork::decode(&bytes), Some(f));
            assert_eq!(LastFork::decode(&bytes[1..]), None);
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(LastFork::decode(&longer), None);
            let mut flag = bytes;
            if let Some(last) = flag.last_mut() {
                *last = 2;
            }
            assert_eq!(LastFork::decode(&flag), None);
        }
        assert_eq!(
            LastFork::new(1, 100, 2_100, 2_101, 14, 10, false).depth(),
            2_000
        );
    }
}
