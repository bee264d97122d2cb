//! What the indexer last learned of its source's chain, kept as a node-local setting so that a
//! reader of the same file (`virtualchain serve`'s `/healthz/ready`) can tell how far behind
//! the database is. Not consensus data: it is never hashed and never exported in snapshots.

use crate::error::StoreError;
use crate::store::View;
use crate::writer::Writer;

/// The source's tip height and the confirmations the indexer requires, as of the indexer's
/// last commit or poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceTip {
    /// The source's newest block.
    pub chain_tip: u64,
    /// The confirmations a block needs before the indexer applies it.
    pub confirmations: u64,
}

impl SourceTip {
    /// The local-settings key.
    pub const KEY: &'static str = "engine.source_tip";

    /// The source's tip `chain_tip`, with blocks applied after `confirmations`.
    pub fn new(chain_tip: u64, confirmations: u64) -> Self {
        SourceTip {
            chain_tip,
            confirmations,
        }
    }

    /// The newest height with enough confirmations, if any block has them.
    pub fn confirmed(&self) -> Option<u64> {
        (self.chain_tip + 1).checked_sub(self.confirmations.max(1))
    }

    /// How many confirmed blocks a database whose tip is `tip` has not applied yet.
    pub fn lag(&self, tip: Option<u64>) -> u64 {
        match (self.confirmed(), tip) {
            (None, _) => 0,
            (Some(target), Some(tip)) => target.saturating_sub(tip),
            (Some(target), None) => target + 1,
        }
    }

    /// 16 bytes: the tip and the confirmations, little-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.chain_tip.to_le_bytes());
        out[8..].copy_from_slice(&self.confirmations.to_le_bytes());
        out
    }

    /// The inverse of [`SourceTip::encode`]; `None` for any other length.
    pub fn decode(bytes: &[u8]) -> Option<SourceTip> {
        let tip: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let conf: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16)
            .then(|| SourceTip::new(u64::from_le_bytes(tip), u64::from_le_bytes(conf)))
    }
}

impl View {
    /// The source tip the indexer recorded, as of this view's commit (`None` if it never did,
    /// or the record is not one).
    pub fn source_tip(&self) -> Result<Option<SourceTip>, StoreError> {
        Ok(self
            .local(SourceTip::KEY)?
            .and_then(|b| SourceTip::decode(&b)))
    }
}

impl Writer<'_> {
    /// Records the source's tip in the open transaction (durable with the next commit).
    pub fn set_source_tip(&mut self, tip: SourceTip) -> Result<(), StoreError> {
        self.set_local(SourceTip::KEY, &tip.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_tip_round_trips_and_measures_the_lag() {
        let t = SourceTip::new(105, 6);
        assert_eq!(SourceTip::decode(&t.encode()), Some(t));
        assert_eq!(SourceTip::decode(&[0; 15]), None);
        assert_eq!(t.confirmed(), Some(100));
        assert_eq!(t.lag(Some(100)), 0);
        assert_eq!(t.lag(Some(97)), 3);
        assert_eq!(t.lag(Some(103)), 0);
        assert_eq!(t.lag(None), 101);
        assert_eq!(SourceTip::new(3, 6).confirmed(), None);
        assert_eq!(SourceTip::new(3, 6).lag(None), 0);
    }
}
