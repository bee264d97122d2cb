//! The replay verifier (the Python virtualchain's `state_engine_verify`): recompute every
//! block's ops hash and consensus hash from the stored records, compare with what the store
//! says, and check the result against a consensus hash from a trusted node.

use core::convert::Infallible;
use core::fmt;

use redb::ReadableTable;
use vc_chash::append::Appender;
use vc_chash::{ConsensusHash, Hash256, hex};

use crate::error::{DbContext, StoreError};
use crate::schema::{self, CHAIN, ChainEntry, OPS, STATE, StoredOp};
use crate::store::{Tip, View};
use crate::tree::{self, SMT};

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
    /// v3: a node of the state tree at the tip stores another hash than its children's
    /// (`expected` the stored one, `found` the recomputed one), or the tree's root, recomputed,
    /// differs from the one the tip committed.
    StateTree,
    /// v3: the state at the tip (every key and value) has another root than the tip
    /// committed, or other keys than the tree.
    State,
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
    view.guard("replaying the chain", || verify_inner(view, trusted))
}

fn verify_inner(view: &View, trusted: (u64, ConsensusHash)) -> Result<ReplayReport, StoreError> {
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
        let state_root = view.tree_root(height)?;
        let hashed = appender
            .append(
                height,
                Hash256(entry.block_hash),
                &records,
                state_root,
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
    if let Some(tip) = tip
        && view.scheme.commits_state()
    {
        return Ok(report(blocks, state_divergence(view, tip)?));
    }
    Ok(report(blocks, None))
}

/// v3: recomputes every hash of the state tree at the tip, and the root of the state itself,
/// and compares both with the root the tip committed.
fn state_divergence(view: &View, tip: u64) -> Result<Option<Divergence>, StoreError> {
    let Some(committed) = view.tree_root(tip)? else {
        return Err(StoreError::Inconsistent(format!(
            "no state root for the tip {tip}"
        )));
    };
    let diverged = |kind, found: Hash256| Divergence {
        height: tip,
        kind,
        expected: hex::encode(&committed.0),
        found: hex::encode(&found.0),
    };
    let nodes = view.txn.open_table(SMT).ctx("opening the state tree")?;
    let walked = tree::walk(&tree::read_newest(&nodes))?;
    if let Some((stored, computed)) = walked.bad_node {
        return Ok(Some(Divergence {
            height: tip,
            kind: DivergenceKind::StateTree,
            expected: hex::encode(&stored.0),
            found: hex::encode(&computed.0),
        }));
    }
    if walked.root != committed {
        return Ok(Some(diverged(DivergenceKind::StateTree, walked.root)));
    }
    let names = view.namespace_names()?;
    let state = view.txn.open_table(STATE).ctx("opening the state table")?;
    let mut leaves = tree::state_leaves(&state, names)?;
    let root = vc_chash::state::root_of(&mut leaves);
    if root != committed || leaves != walked.leaves {
        return Ok(Some(diverged(DivergenceKind::State, root)));
    }
    Ok(None)
}

/// Recomputes the newest block's hashes from its stored inputs and compares them with the
/// stored ones: the ops hash from the block's stored records, the consensus hash from that ops
/// hash, the stored consensus hashes of the earlier blocks it commits to (and, for v2, the
/// block hash and the stored accumulator), and the operation count from the stored rows.
/// Cheap: one block's operations and O(log n) chain entries.
///
/// Returns the verified tip (`None` for an empty store), or [`StoreError::Damaged`] naming
/// what disagrees.
pub fn verify_tip(view: &View) -> Result<Option<Tip>, StoreError> {
    view.guard("verifying the tip", || {
        let Some(tip) = view.tip()? else {
            return Ok(None);
        };
        let height = tip.height;
        let damaged = |detail: String| StoreError::Damaged {
            path: view.path.to_string(),
            what: format!("verifying block {height}, the tip"),
            detail,
        };
        if height < view.first_block {
            return Err(damaged(format!(
                "the tip is below the first block {}",
                view.first_block
            )));
        }
        let entry = view
            .chain_entry(height)?
            .ok_or_else(|| damaged("the tip's chain entry is missing".into()))?;
        let ops = view.ops(height)?;
        if u32::try_from(ops.len()).ok() != Some(entry.op_count) {
            return Err(damaged(format!(
                "its chain entry counts {} operations, the store holds {}",
                entry.op_count,
                ops.len()
            )));
        }
        let records: Vec<Vec<u8>> = ops.into_iter().flat_map(|op| op.records).collect();
        let mmr = if view.scheme.has_accumulator() {
            // The accumulator before the tip.
            match height.checked_sub(1) {
                Some(below) if below >= view.first_block => view.mmr_after(below)?,
                _ => Default::default(),
            }
        } else {
            Default::default()
        };
        let mut appender = Appender::resume(view.scheme, view.first_block, height, mmr);
        let hashed = appender
            .append(
                height,
                Hash256(entry.block_hash),
                &records,
                view.tree_root(height)?,
                |h| {
                    use vc_chash::History;
                    view.consensus_hash(h)
                },
                |_, _, _| {},
            )
            .map_err(|e| match e {
                vc_chash::append::AppendError::Read { source, .. } => source,
                other => damaged(other.to_string()),
            })?;
        if hashed.ops_hash.0 != entry.ops_hash {
            return Err(damaged(format!(
                "stored ops hash {}, recomputed {}",
                hex::encode(&entry.ops_hash),
                hex::encode(&hashed.ops_hash.0)
            )));
        }
        if hashed.consensus_hash != tip.consensus_hash {
            return Err(damaged(format!(
                "stored consensus hash {}, recomputed {}",
                tip.consensus_hash, hashed.consensus_hash
            )));
        }
        if hashed.mmr_root.map(|r| r.0) != entry.mmr_root {
            return Err(damaged(
                "the stored accumulator root differs from the recomputed one".into(),
            ));
        }
        Ok(Some(tip))
    })
}

/// The number of accepted operations in blocks `from..=to`: the sum of the chain entries'
/// counts, checked against the stored operation rows. An entry or row that does not read is
/// an error, and the two disagreeing is [`StoreError::Damaged`]; nothing is skipped.
pub fn operation_count(view: &View, from: u64, to: u64) -> Result<u64, StoreError> {
    view.guard("counting operations", || {
        let counted: u64 = view
            .chain_range(from, to)?
            .iter()
            .map(|(_, e)| u64::from(e.op_count))
            .sum();
        let ops = view.txn.open_table(OPS).ctx("opening the ops table")?;
        let mut rows = 0u64;
        if from <= to {
            for row in ops
                .range((from, 0)..=(to, u32::MAX))
                .ctx("reading operations")?
            {
                row.ctx("reading operations")?;
                rows += 1;
            }
        }
        if rows != counted {
            return Err(StoreError::Damaged {
                path: view.path.to_string(),
                what: "counting operations".into(),
                detail: format!(
                    "the chain index counts {counted} operations in blocks {from} to {to}, the store holds {rows}"
                ),
            });
        }
        Ok(rows)
    })
}
