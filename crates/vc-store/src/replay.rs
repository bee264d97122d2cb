//! The replay verifier (the Python virtualchain's `state_engine_verify`): recompute every
//! block's ops hash and consensus hash from the stored records, compare with what the store
//! says, and check the result against a consensus hash from a trusted node.

use core::convert::Infallible;
use core::fmt;

use redb::ReadableTable;
use vc_chash::append::Appender;
use vc_chash::{ConsensusHash, Hash256, hex};

use crate::error::{DbContext, StoreError};
use crate::schema::{self, CHAIN, ChainEntry, OPS, StoredOp};
use crate::store::View;

/// What disagreed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The stored ops hash differs from the one recomputed from the stored records.
    OpsHash,
    /// The stored consensus hash differs from the recomputed one.
    ConsensusHash,
    /// The block's parent hash is not the previous block's hash.
    ParentLink,
    /// The block's operation count does not match its rows.
    OpCount,
    /// The recomputed consensus hash at the trusted height differs from the trusted one.
    Trusted,
}

/// The first place where the store and the replay disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The block.
    pub height: u64,
    /// What disagreed.
    pub kind: DivergenceKind,
    /// The stored (or trusted) value, in hex.
    pub expected: String,
    /// The recomputed value, in hex.
    pub found: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block {}: {:?} differs: expected {}, recomputed {}",
            self.height, self.kind, self.expected, self.found
        )
    }
}

/// The outcome of a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// Blocks recomputed (stops at the first divergence).
    pub blocks: u64,
    /// The store's tip, if any.
    pub tip: Option<u64>,
    /// The first divergence, or `None` when every block and the trusted hash agree.
    pub divergence: Option<Divergence>,
}

impl ReplayReport {
    /// Whether the store agrees with itself and with the trusted hash.
    pub fn is_ok(&self) -> bool {
        self.divergence.is_none()
    }
}

/// Recomputes every block of `view` from its first block and compares. `trusted` is a
/// `(height, consensus hash)` from a node the operator trusts; its height must be in the store.
pub fn verify(view: &View, trusted: (u64, ConsensusHash)) -> Result<ReplayReport, StoreError> {
    let tip = view.tip()?.map(|t| t.height);
    let first = view.first_block;
    if tip.is_none_or(|t| trusted.0 > t) || trusted.0 < first {
        return Err(StoreError::Inconsistent(format!(
            "the trusted height {} is not in the store (blocks {first}..={})",
            trusted.0,
            tip.map_or("none".into(), |t| t.to_string())
        )));
    }
    let chain = view.txn.open_table(CHAIN).ctx("opening the chain table")?;
    let ops = view.txn.open_table(OPS).ctx("opening the ops table")?;
    let mut appender = Appender::new(view.scheme, first);
    let mut recomputed: Vec<ConsensusHash> = Vec::new();
    let mut previous: Option<Hash256> = None;
    let mut blocks = 0u64;
    let report = |blocks, divergence| ReplayReport {
        blocks,
        tip,
        divergence,
    };
    for row in chain.iter().ctx("reading the chain index")? {
        let (h, raw) = row.ctx("reading the chain index")?;
        let height = h.value();
        let entry: ChainEntry =
            schema::decode(raw.value(), || format!("chain entry at height {height}"))?;
        let diverged = |kind, expected: &[u8], found: &[u8]| {
            Some(Divergence {
                height,
                kind,
                expected: hex::encode(expected),
                found: hex::encode(found),
            })
        };
        if let Some(prev) = previous
            && entry.prev_hash != prev.0
        {
            return Ok(report(
                blocks,
                diverged(DivergenceKind::ParentLink, &prev.0, &entry.prev_hash),
            ));
        }
        let mut records = Vec::new();
        let mut count = 0u32;
        for op_row in ops
            .range((height, 0)..=(height, u32::MAX))
            .ctx("reading operations")?
        {
            let (k, v) = op_row.ctx("reading operations")?;
            let (_, vtx) = k.value();
            let op: StoredOp = schema::decode(v.value(), || {
                format!("operation at height {height}, vtxindex {vtx}")
            })?;
            records.extend(op.records);
            count += 1;
        }
        if count != entry.op_count {
            return Ok(report(
                blocks,
                diverged(
                    DivergenceKind::OpCount,
                    &entry.op_count.to_be_bytes(),
                    &count.to_be_bytes(),
                ),
            ));
        }
        let hashed = appender
            .append(
                height,
                Hash256(entry.block_hash),
                &records,
                |p| {
                    let i = usize::try_from(p - first).ok();
                    Ok::<_, Infallible>(i.and_then(|i| recomputed.get(i).copied()))
                },
                |_, _, _| {},
            )
            .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        blocks += 1;
        if hashed.ops_hash.0 != entry.ops_hash {
            return Ok(report(
                blocks,
                diverged(DivergenceKind::OpsHash, &entry.ops_hash, &hashed.ops_hash.0),
            ));
        }
        if hashed.consensus_hash.as_bytes() != entry.consensus_hash.as_slice() {
            return Ok(report(
                blocks,
                diverged(
                    DivergenceKind::ConsensusHash,
                    &entry.consensus_hash,
                    hashed.consensus_hash.as_bytes(),
                ),
            ));
        }
        if height == trusted.0 && hashed.consensus_hash != trusted.1 {
            return Ok(report(
                blocks,
                diverged(
                    DivergenceKind::Trusted,
                    trusted.1.as_bytes(),
                    hashed.consensus_hash.as_bytes(),
                ),
            ));
        }
        recomputed.push(hashed.consensus_hash);
        previous = Some(Hash256(entry.block_hash));
    }
    Ok(report(blocks, None))
}
