//! Which blockchain each range of heights came from (`docs/migration.md` section 8).
//!
//! A virtual chain that migrated reads its first heights from chain A and the rest from chain
//! B. The store records each such **segment** in the `segments` table, keyed by its first
//! (virtual) height: the chain's identity, the range, the chain's own height of the segment's
//! first block, and for a segment opened by a migration the boundary record that bound it. A
//! chain that never migrated has no rows. Segments are bookkeeping: everything consensus
//! relevant is in the consensus hashes.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use vc_chash::Hash256;
use vc_chash::migration::{BoundaryRecord, ChainId};
use vc_codec::storage::Stored;

use crate::error::{DbContext, StoreError};
use crate::schema::{decode, encode};
use crate::store::View;
use crate::writer::Writer;

pub(crate) const SEGMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("segments");

/// One range of heights read from one blockchain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The first (virtual) height of the segment.
    pub first_height: u64,
    /// The last (virtual) height, once the segment is closed (frozen by a migration); `None`
    /// while the chain is still read.
    pub last_height: Option<u64>,
    /// The chain's network magic.
    pub magic: [u8; 4],
    /// The chain's genesis block hash (internal byte order).
    pub genesis: [u8; 32],
    /// The chain's own height of the segment's first block.
    pub chain_first: u64,
    /// For a segment a migration opened: the boundary record
    /// ([`vc_chash::migration::BoundaryRecord::encode`]) that bound it; empty for the first
    /// segment.
    pub binding: Vec<u8>,
}

impl Stored for Segment {
    const KIND: &'static str = "segment";
    const VERSION: u8 = 1;
}

impl Segment {
    /// The chain's identity.
    pub fn chain(&self) -> ChainId {
        ChainId {
            magic: self.magic,
            genesis: Hash256(self.genesis),
        }
    }

    /// The binding, decoded (`None` for the first segment, or bytes that are not one).
    pub fn boundary(&self) -> Option<BoundaryRecord> {
        BoundaryRecord::decode(&self.binding).ok()
    }

    /// The chain's own height of the virtual height `height` (`None` outside the segment).
    pub fn chain_height(&self, height: u64) -> Option<u64> {
        if height < self.first_height || self.last_height.is_some_and(|l| height > l) {
            return None;
        }
        self.chain_first.checked_add(height - self.first_height)
    }

    /// The virtual height of the chain's block at `chain_height` (`None` outside the segment).
    pub fn virtual_height(&self, chain_height: u64) -> Option<u64> {
        let v = self
            .first_height
            .checked_add(chain_height.checked_sub(self.chain_first)?)?;
        self.chain_height(v).map(|_| v)
    }
}

/// Checks that `segments` (oldest first) are what a live store holds for a chain whose blocks
/// run from `first_block` to `tip` (a snapshot's, before its import writes them): the first
/// starts at `first_block` with no binding; each later one starts right after the previous one,
/// which is closed, and carries a boundary record that names the previous segment's last height,
/// its own chain and its own first block, and whose `CH_A` is `ch_at` of that height; only the
/// last may be open, a closed one ends at or after its first height, and the last covers the
/// tip. Returns what is wrong.
pub(crate) fn check_chain(
    segments: &[Segment],
    first_block: u64,
    tip: u64,
    mut ch_at: impl FnMut(u64) -> Result<Option<Vec<u8>>, String>,
) -> Result<(), String> {
    let Some(last) = segments.last() else {
        return Err("an empty list of segments".into());
    };
    for (i, s) in segments.iter().enumerate() {
        let at = || format!("segment {} (from height {})", i + 1, s.first_height);
        if s.first_height > tip.saturating_add(1) {
            return Err(format!("{} starts above the tip {tip} + 1", at()));
        }
        if let Some(l) = s.last_height {
            if l < s.first_height {
                return Err(format!("{} ends at {l}, before it starts", at()));
            }
            if s.chain_first.checked_add(l - s.first_height).is_none() {
                return Err(format!("{}: its chain heights overflow", at()));
            }
        }
        let Some(prev) = i.checked_sub(1).and_then(|p| segments.get(p)) else {
            if s.first_height != first_block {
                return Err(format!(
                    "{} does not start at the first block {first_block}",
                    at()
                ));
            }
            if !s.binding.is_empty() {
                return Err(format!("{} is the first and carries a binding", at()));
            }
            continue;
        };
        let Some(prev_last) = prev.last_height else {
            return Err(format!("{} follows an open segment", at()));
        };
        if prev_last.checked_add(1) != Some(s.first_height) {
            return Err(format!(
                "{} does not follow the previous one, which ends at {prev_last}",
                at()
            ));
        }
        let Some(record) = s.boundary() else {
            return Err(format!("{}: its binding is not a boundary record", at()));
        };
        if record.announcement.last_height != prev_last
            || record.announcement.target != s.chain()
            || record.reveal_height != s.chain_first
        {
            return Err(format!(
                "{}: its boundary record names another last height, chain or first block",
                at()
            ));
        }
        if ch_at(prev_last)?.as_deref() != Some(record.ch_a.0.as_slice()) {
            return Err(format!(
                "{}: its boundary record's CH_A differs from the consensus hash at {prev_last}",
                at()
            ));
        }
    }
    if last.last_height.is_some_and(|l| l < tip) {
        return Err(format!(
            "the last segment ends at {:?}, below the tip {tip}",
            last.last_height
        ));
    }
    Ok(())
}

/// Writes `segments` in `txn` (replacing any with the same first heights).
pub(crate) fn write_all(
    txn: &redb::WriteTransaction,
    segments: &[Segment],
) -> Result<(), StoreError> {
    let mut table = txn.open_table(SEGMENTS).ctx("opening the segments")?;
    for s in segments {
        table
            .insert(s.first_height, encode(s)?.as_slice())
            .ctx("writing a segment")?;
    }
    Ok(())
}

impl View {
    /// Every segment, oldest first (empty for a chain that never migrated).
    pub fn segments(&self) -> Result<Vec<Segment>, StoreError> {
        self.guard("reading the segments", || {
            let table = match self.txn.open_table(SEGMENTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e).ctx("opening the segments"),
            };
            let mut out = Vec::new();
            for row in table.iter().ctx("reading the segments")? {
                let (k, v) = row.ctx("reading the segments")?;
                out.push(decode(v.value(), || format!("segment at {}", k.value()))?);
            }
            Ok(out)
        })
    }
}

impl Writer<'_> {
    /// Records `segment` (replacing the one with the same first height) in the open
    /// transaction.
    pub fn put_segment(&mut self, segment: &Segment) -> Result<(), StoreError> {
        let bytes = encode(segment)?;
        let txn = self.txn()?;
        let mut table = txn.open_table(SEGMENTS).ctx("opening the segments")?;
        table
            .insert(segment.first_height, bytes.as_slice())
            .ctx("writing a segment")?;
        Ok(())
    }

    /// Removes, in the open transaction, every segment that starts above `height` (after a
    /// rollback to `height` took their blocks away). Returns how many were removed.
    pub fn remove_segments_above(&mut self, height: u64) -> Result<usize, StoreError> {
        let txn = self.txn()?;
        let mut table = txn.open_table(SEGMENTS).ctx("opening the segments")?;
        let doomed: Vec<u64> = table
            .range(height.saturating_add(1)..)
            .ctx("reading the segments")?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .ctx("reading the segments")?;
        for k in &doomed {
            table.remove(*k).ctx("removing a segment")?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vc_chash::Scheme;

    use super::*;
    use crate::{BlockHeader, Store, StoreConfig};

    fn segment(first: u64, last: Option<u64>, chain_first: u64) -> Segment {
        Segment {
            first_height: first,
            last_height: last,
            magic: [0xfa, 0xbf, 0xb5, 0xda],
            genesis: [6; 32],
            chain_first,
            binding: Vec::new(),
        }
    }

    #[test]
    fn segments_map_heights_and_are_removed_above_a_height() {
        let a = segment(100, Some(120), 100);
        let b = segment(121, None, 40);
        assert_eq!(a.chain_height(120), Some(120));
        assert_eq!(a.chain_height(121), None);
        assert_eq!(b.chain_height(121), Some(40));
        assert_eq!(b.chain_height(130), Some(49));
        assert_eq!(b.virtual_height(39), None);
        assert_eq!(b.virtual_height(45), Some(126));
        assert_eq!(a.virtual_height(121), None);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path().join("s.redb"),
            StoreConfig::new("t", "1", Scheme::V2, 100, "regtest"),
        )
        .unwrap();
        assert_eq!(store.view().unwrap().segments().unwrap(), vec![]);
        let mut w = store.writer().unwrap();
        let block = w
            .begin_block(BlockHeader {
                height: 100,
                block_hash: Hash256([1; 32]),
                prev_hash: Hash256([0; 32]),
            })
            .unwrap();
        block.finish().unwrap();
        w.put_segment(&a).unwrap();
        w.put_segment(&b).unwrap();
        w.commit().unwrap();
        assert_eq!(
            store.view().unwrap().segments().unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(w.remove_segments_above(120).unwrap(), 1);
        w.commit().unwrap();
        assert_eq!(store.view().unwrap().segments().unwrap(), vec![a]);
    }
}
