//! What the server keeps in memory beside the store: consensus hash to height, and the
//! heights of the operations that touch each application key. Both follow the store's tip,
//! reorgs included.

use std::collections::{BTreeMap, BTreeSet};

use vc_chash::{ConsensusHash, Hash256, History};
use vc_store::{StoreError, StoredOp, Tip, View};

use crate::work::{Cancel, CheckedError};

/// Blocks read per step of a refresh; the request's abandonment is checked between steps.
const REFRESH_STEP: u64 = 2048;

/// What an application adds to the server: a collection of keyed state (the names app: names),
/// served at `/v1/{collection}/{key}` with the heights of every operation that touched the key.
pub trait Extension: Send + Sync + 'static {
    /// The URL segment of the collection (for example `names`); one path segment, not `tip`,
    /// `blocks`, `consensus`, `proofs` or `openapi.json`.
    fn collection(&self) -> &'static str;

    /// The staleness window of the application's consensus-hash freshness rule, if it has one:
    /// the default window of `/v1/consensus/{ch}/fresh`.
    fn staleness(&self) -> Option<u64>;

    /// The keys of the collection that an accepted operation touched.
    fn keys(&self, op: &StoredOp) -> Vec<String>;

    /// The current state of `key` as JSON, or `None` when the store has none.
    fn lookup(&self, view: &View, key: &str) -> Result<Option<serde_json::Value>, StoreError>;
}

/// The in-memory indexes, as of one store tip.
#[derive(Debug, Default)]
pub(crate) struct Index {
    tip: Option<(u64, Hash256)>,
    /// A refresh stopped part way (its request was abandoned): the index holds a prefix of the
    /// chain, and is at no tip until the next refresh completes it.
    partial: bool,
    by_height: BTreeMap<u64, ConsensusHash>,
    by_hash: BTreeMap<ConsensusHash, u64>,
    keys: BTreeMap<String, BTreeSet<u64>>,
}

impl Index {
    /// Whether the index describes exactly the chain of `view`'s tip.
    pub(crate) fn is_at(&self, tip: Option<(u64, Hash256)>) -> bool {
        !self.partial && self.tip == tip
    }

    /// Whether the index holds the chain of a view whose tip is `tip`: it is at that tip, or
    /// beyond it on the same chain (a consensus hash commits to every earlier block).
    pub(crate) fn serves(&self, tip: Option<&Tip>) -> bool {
        self.is_at(tip.map(|t| (t.height, t.block_hash)))
            || tip.is_some_and(|t| self.by_height.get(&t.height) == Some(&t.consensus_hash))
    }

    /// Brings the index to `view`'s tip (`tip`, read from `view` by the caller): drops the
    /// blocks a reorg replaced, then reads the new ones with range reads of
    /// [`REFRESH_STEP`] blocks. Between steps it stops if `cancel` is set, leaving the index
    /// consistent (a prefix of the chain) for the next refresh to continue.
    pub(crate) fn refresh(
        &mut self,
        view: &View,
        tip: Option<Tip>,
        ext: Option<&dyn Extension>,
        cancel: &Cancel,
    ) -> Result<(), CheckedError> {
        let tip_id = tip.map(|t| (t.height, t.block_hash));
        if self.is_at(tip_id) {
            return Ok(());
        }
        // The newest indexed block that the view still has: a consensus hash commits to every
        // earlier one, so everything below it matches too.
        let mut keep = None;
        for (&h, ch) in self.by_height.iter().rev() {
            if cancel.is_set() {
                return Err(CheckedError::Abandoned);
            }
            if tip.is_some_and(|t| h <= t.height) && view.consensus_hash(h)?.as_ref() == Some(ch) {
                keep = Some(h);
                break;
            }
        }
        let dropped: Vec<u64> = match keep {
            Some(h) => self.by_height.range(h + 1..).map(|(&h, _)| h).collect(),
            None => self.by_height.keys().copied().collect(),
        };
        if !dropped.is_empty() {
            tracing::info!(
                blocks = dropped.len(),
                from = dropped.first().copied().unwrap_or_default(),
                "index: dropping replaced blocks"
            );
        }
        for h in &dropped {
            if let Some(ch) = self.by_height.remove(h) {
                self.by_hash.remove(&ch);
            }
        }
        if let Some(first) = dropped.first() {
            self.keys.retain(|_, heights| {
                heights.retain(|h| h < first);
                !heights.is_empty()
            });
        }
        if let Some(t) = tip {
            let mut from = keep.map_or_else(|| view.first_block(), |h| h + 1);
            while from <= t.height {
                if cancel.is_set() {
                    self.partial = true;
                    return Err(CheckedError::Abandoned);
                }
                let to = from.saturating_add(REFRESH_STEP - 1).min(t.height);
                self.add(view, from, to, ext)?;
                from = to.saturating_add(1);
                if to == u64::MAX {
                    break;
                }
            }
        }
        self.tip = tip_id;
        self.partial = false;
        Ok(())
    }

    /// Indexes the blocks `from..=to` of `view`.
    fn add(
        &mut self,
        view: &View,
        from: u64,
        to: u64,
        ext: Option<&dyn Extension>,
    ) -> Result<(), StoreError> {
        for (h, entry) in view.chain_range(from, to)? {
            let ch = view.consensus_hash_of(h, &entry)?;
            self.by_height.insert(h, ch);
            // A consensus hash names one block; if two ever collide, the lower one wins, as it
            // did when both were indexed in order.
            self.by_hash.entry(ch).or_insert(h);
        }
        if let Some(ext) = ext {
            for (h, op) in view.ops_range(from, to)? {
                for key in ext.keys(&op) {
                    self.keys.entry(key).or_default().insert(h);
                }
            }
        }
        Ok(())
    }

    /// The height of the block whose consensus hash is `ch`.
    pub(crate) fn height_of(&self, ch: &ConsensusHash) -> Option<u64> {
        self.by_hash.get(ch).copied()
    }

    /// The heights of the operations that touched `key`, oldest first.
    pub(crate) fn key_heights(&self, key: &str) -> Vec<u64> {
        self.keys
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}
