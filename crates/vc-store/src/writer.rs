//! Writing blocks: atomic per block, batched per commit, reverted through undo logs.
//!
//! A [`Writer`] holds one redb write transaction at a time. Each block goes through a
//! [`BlockWriter`] that buffers the block's state changes and operations in memory; only
//! [`BlockWriter::finish`] applies them to the transaction, together with the undo log, the
//! chain-index entry and the accumulator nodes. A block that fails half-way (the application
//! returns an error, the process stops) therefore leaves nothing behind, and every commit ends on
//! a block boundary. [`Writer::commit_if_due`] batches blocks during catch-up and commits every
//! block near the tip.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redb::{ReadableTable, WriteTransaction};
use vc_chash::append::Appender;
use vc_chash::history::BlockSummary;
use vc_chash::{ConsensusHash, Hash256};

use crate::error::{DbContext, StoreError};
use crate::schema::{
    self, CHAIN, ChainEntry, LOCAL, META, META_KEY, MMR, Meta, OPS, STATE, StoredOp, UNDO,
    UndoEntry, UndoLog,
};
use crate::state::{RawEntry, StateAccess, StateRead, id_of, raw_key, raw_range};
use crate::store::{Store, load_mmr, mmr_prefix};
use crate::tree::{self, NodeCache, SMT, STATE_ROOTS, TreeWrite};

/// When a batching writer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPolicy {
    /// Commit after this many blocks.
    pub max_blocks: u32,
    /// Commit when the open transaction is this old, or [`CommitPolicy::interval_per_commit`]
    /// times as old as the last commit took, whichever is longer.
    pub max_interval: Duration,
    /// Stretches the interval to this many times the last commit's duration when that is
    /// longer than `max_interval`, so that committing takes at most `1 / (1 +
    /// interval_per_commit)` of a catch-up however much each commit writes. A v3 state tree
    /// over a large state rewrites most of its pages at every commit, whatever the number of
    /// blocks in it; committing it less often is what keeps its share small. 0 keeps the
    /// interval fixed.
    pub interval_per_commit: u32,
}

impl Default for CommitPolicy {
    /// 1,000 blocks or 2 seconds, whichever comes first; the 2 seconds stretched so that
    /// committing takes at most a tenth of the time (`interval_per_commit` 9).
    fn default() -> Self {
        CommitPolicy {
            max_blocks: 1_000,
            max_interval: Duration::from_secs(2),
            interval_per_commit: 9,
        }
    }
}

impl CommitPolicy {
    /// How old the open transaction may grow when the last commit took `last_commit`.
    pub fn interval_after(&self, last_commit: Duration) -> Duration {
        self.max_interval
            .max(last_commit.saturating_mul(self.interval_per_commit))
    }
}

/// Identifies a block being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Its height.
    pub height: u64,
    /// Its hash (internal byte order).
    pub block_hash: Hash256,
    /// Its parent's hash (internal byte order).
    pub prev_hash: Hash256,
}

/// Where a writer's time went since it was opened, or since [`Writer::take_timings`]: for an
/// operator's metrics, the debug log of each commit, and the benchmarks. Wall-clock durations,
/// never stored or hashed.
///
/// A v3 block's tree update may run on a second thread while the block's state, undo log and
/// operations are written: `tree_update` then overlaps `applying`, and only `tree_wait` of it
/// adds to the block's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterTimings {
    /// Blocks applied ([`BlockWriter::finish`] succeeded).
    pub blocks: u64,
    /// Time in [`BlockWriter::finish`] of those blocks: the block's writes and hashes, its tree
    /// update included.
    pub applying: Duration,
    /// v3: time in the blocks' state tree updates, wherever they ran (that of a block which
    /// then failed included).
    pub tree_update: Duration,
    /// v3: time blocks waited for their tree updates on the second thread, after writing their
    /// state, undo logs and operations (a block which then failed included).
    pub tree_wait: Duration,
    /// Commits made.
    pub commits: u64,
    /// Time in [`Writer::commit`], the tree pages' writing included.
    pub committing: Duration,
    /// v3: the part of `committing` spent writing the tree pages the transaction's blocks
    /// changed (kept in the writer's cache until the commit).
    pub tree_pages: Duration,
}

/// The single writer of a store. Dropping it without [`Writer::commit`] discards every block
/// applied since the last commit.
pub struct Writer<'s> {
    store: &'s Store,
    txn: Option<WriteTransaction>,
    opened: Instant,
    pending: u32,
    tip: Option<(u64, Hash256)>,
    /// The chain's position for the append step (the consensus rule, in vc-chash).
    appender: Appender,
    /// The namespace names in id order, as the open transaction's metadata lists them (a write
    /// to a new namespace appends to it).
    namespaces: Vec<String>,
    /// v3: the newest state tree's nodes, as this writer last wrote or read them.
    cache: NodeCache,
    /// v3: whether a block of at least [`DETACHED_MIN`] changes updates the tree on a second
    /// thread ([`Writer::set_tree_thread`]).
    tree_thread: bool,
    /// Where the time went ([`Writer::timings`]).
    timings: WriterTimings,
    /// How long the last commit took, which [`CommitPolicy::interval_per_commit`] scales.
    last_commit: Duration,
    /// Blocks whose tree update ran on another thread, and blocks of at least
    /// [`DETACHED_MIN`] changes whose update did not: for the tests to see both paths taken.
    #[cfg(test)]
    paths_taken: (u32, u32),
}

impl core::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("pending", &self.pending)
            .field("tip", &self.tip)
            .finish_non_exhaustive()
    }
}

/// Where a writer stands: the committed tip, the appender after it, the namespace names.
type Position = (Option<(u64, Hash256)>, Appender, Vec<String>);

fn load_position(store: &Store, txn: &WriteTransaction) -> Result<Position, StoreError> {
    let cfg = &store.config;
    let chain = txn.open_table(CHAIN).ctx("opening the chain table")?;
    let tip = match chain.last().ctx("reading the chain tip")? {
        Some((h, raw)) => {
            let height = h.value();
            let e: ChainEntry =
                schema::decode(raw.value(), || format!("chain entry at height {height}"))?;
            Some((height, Hash256(e.block_hash)))
        }
        None => None,
    };
    let next = tip.map_or(cfg.first_block, |(h, _)| h + 1);
    let mmr = if cfg.scheme.has_accumulator() {
        let table = txn.open_table(MMR).ctx("opening the mmr table")?;
        load_mmr(&table, next - cfg.first_block)?
    } else {
        Default::default()
    };
    let namespaces =
        crate::store::read_namespaces_from(&txn.open_table(META).ctx("opening the meta table")?)?;
    Ok((
        tip,
        Appender::resume(cfg.scheme, cfg.first_block, next, mmr),
        namespaces,
    ))
}

fn begin(store: &Store) -> Result<WriteTransaction, StoreError> {
    let mut txn = store.db.begin_write().ctx("starting a write")?;
    // Saves the allocator state with every commit, so that reopening after a crash does not
    // walk the whole file (ord's long crash repairs).
    txn.set_quick_repair(true);
    Ok(txn)
}

impl<'s> Writer<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Self, StoreError> {
        let txn = begin(store)?;
        let (tip, appender, namespaces) = load_position(store, &txn)?;
        Ok(Writer {
            store,
            txn: Some(txn),
            opened: Instant::now(),
            pending: 0,
            tip,
            appender,
            namespaces,
            cache: NodeCache::default(),
            tree_thread: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            timings: WriterTimings::default(),
            last_commit: Duration::ZERO,
            #[cfg(test)]
            paths_taken: (0, 0),
        })
    }

    /// Throws away everything since the last commit (after a failure half-way through a block
    /// or a rollback) and goes back to the committed tip.
    fn discard_uncommitted(&mut self) {
        self.txn = None;
        self.pending = 0;
        self.cache.discard();
        match begin(self.store).and_then(|txn| Ok((load_position(self.store, &txn)?, txn))) {
            Ok(((tip, appender, namespaces), txn)) => {
                self.tip = tip;
                self.appender = appender;
                self.namespaces = namespaces;
                self.txn = Some(txn);
                self.opened = Instant::now();
            }
            Err(e) => {
                // The next call to `txn()` retries; until then the position is unknown, so make
                // every block fail its height check.
                tracing::error!(error = %e, "cannot reload the committed tip");
                self.appender = Appender::resume(
                    self.store.config.scheme,
                    u64::MAX,
                    u64::MAX,
                    Default::default(),
                );
            }
        }
        tracing::warn!(tip = ?self.tip.map(|t| t.0), "discarded uncommitted blocks after an error");
    }

    pub(crate) fn txn(&mut self) -> Result<&mut WriteTransaction, StoreError> {
        if self.txn.is_none() {
            self.txn = Some(begin(self.store)?);
            self.opened = Instant::now();
        }
        self.txn
            .as_mut()
            .ok_or_else(|| StoreError::Inconsistent("no write transaction".into()))
    }

    /// The newest block applied through this writer (committed or not): height and hash.
    pub fn tip(&self) -> Option<(u64, Hash256)> {
        self.tip
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> u64 {
        self.appender.next_height()
    }

    /// Blocks applied (or reverted) since the last commit.
    pub fn pending_blocks(&self) -> u32 {
        self.pending
    }

    /// v3: whether a block changing many keys (16 or more) updates the state tree on a second
    /// thread while its state, undo log and operations are written. On by default when the
    /// machine has more than one core; the result is the same either way, so turning it off
    /// only trades time for a core (and lets a benchmark compare the two).
    pub fn set_tree_thread(&mut self, on: bool) {
        self.tree_thread = on;
    }

    /// Where this writer's time went since it was opened or since the last
    /// [`Writer::take_timings`].
    pub fn timings(&self) -> WriterTimings {
        self.timings
    }

    /// Returns [`Writer::timings`] and starts counting again from zero.
    pub fn take_timings(&mut self) -> WriterTimings {
        std::mem::take(&mut self.timings)
    }

    /// Starts the next block. Its height must be the tip's plus one (the first block for an
    /// empty store) and its parent the tip's hash.
    pub fn begin_block(&mut self, header: BlockHeader) -> Result<BlockWriter<'_, 's>, StoreError> {
        let next = self.next_height();
        if header.height != next {
            return Err(StoreError::NotNext {
                height: header.height,
                reason: format!("the next block is {next}"),
            });
        }
        if let Some((tip, hash)) = self.tip
            && header.prev_hash != hash
        {
            return Err(StoreError::NotNext {
                height: header.height,
                reason: format!(
                    "its parent is {}, but block {tip} is {}",
                    header.prev_hash.reversed(),
                    hash.reversed()
                ),
            });
        }
        self.txn()?;
        Ok(BlockWriter {
            writer: self,
            header,
            overlay: BTreeMap::new(),
            journal: Vec::new(),
            new_namespaces: Vec::new(),
            ops: Vec::new(),
            claimed_state_root: None,
        })
    }

    /// Sets a node-local setting (see [`Store::local`]) in the open transaction: durable with
    /// the next [`Writer::commit`], which it makes due even when no block is pending.
    pub fn set_local(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.txn()?;
        let mut table = txn.open_table(LOCAL).ctx("opening the local settings")?;
        table.insert(key, value).ctx("writing a local setting")?;
        Ok(())
    }

    /// Makes everything applied so far durable (fsync). A no-op when nothing is pending. On
    /// failure nothing since the last commit is kept: the writer goes back to the committed
    /// tip.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let has_pages = self.cache.has_dirty();
        if let Err(e) = self.write_tree() {
            self.discard_uncommitted();
            return Err(e);
        }
        let tree_pages = match has_pages {
            true => started.elapsed(),
            false => Duration::ZERO,
        };
        if let Some(txn) = self.txn.take() {
            if let Err(e) = txn.commit().ctx("committing") {
                self.discard_uncommitted();
                return Err(e);
            }
            self.cache.committed();
            let took = started.elapsed();
            self.last_commit = took;
            self.timings.commits += 1;
            self.timings.committing += took;
            self.timings.tree_pages += tree_pages;
            tracing::debug!(
                blocks = self.pending,
                tip = ?self.tip.map(|t| t.0),
                // Whole microseconds: a float field prints every digit (1.0438699999999999).
                us = micros(took),
                tree_pages_us = micros(tree_pages),
                "committed"
            );
        }
        self.pending = 0;
        Ok(())
    }

    /// v3: writes the tree pages the blocks of the open transaction changed (kept in the
    /// writer's cache until now) into it.
    fn write_tree(&mut self) -> Result<(), StoreError> {
        if !self.cache.has_dirty() {
            return Ok(());
        }
        let txn = self
            .txn
            .as_ref()
            .ok_or_else(|| StoreError::Inconsistent("changed tree pages, no transaction".into()))?;
        let mut nodes = txn.open_table(SMT).ctx("opening the state tree")?;
        tree::write_dirty(&mut nodes, &mut self.cache)
    }

    /// Commits if `at_tip` (every block near the chain tip is committed on its own) or if the
    /// policy's block count or interval (stretched by the last commit's duration, see
    /// [`CommitPolicy::interval_after`]) is reached. Returns whether it committed.
    pub fn commit_if_due(
        &mut self,
        policy: &CommitPolicy,
        at_tip: bool,
    ) -> Result<bool, StoreError> {
        let due = self.pending > 0
            && (at_tip
                || self.pending >= policy.max_blocks
                || self.opened.elapsed() >= policy.interval_after(self.last_commit));
        if due {
            self.commit()?;
        }
        Ok(due)
    }

    /// Reverts state and bookkeeping to the end of block `target` (below the first block: to an
    /// empty chain), in the open transaction. Costs one undo log per reverted block. Returns the
    /// number of blocks reverted. Fails without changing anything when `target` is above the
    /// tip or older than the undo window.
    pub fn rollback_to(&mut self, target: u64) -> Result<u64, StoreError> {
        match self.try_rollback_to(target) {
            Err(e @ (StoreError::RollbackTooDeep { .. } | StoreError::RollbackAboveTip { .. })) => {
                Err(e)
            }
            Err(e) => {
                self.discard_uncommitted();
                Err(e)
            }
            ok => ok,
        }
    }

    fn try_rollback_to(&mut self, target: u64) -> Result<u64, StoreError> {
        let first = self.store.config.first_block;
        let Some((tip, _)) = self.tip else {
            return if target.saturating_add(1) >= first {
                Ok(0)
            } else {
                Err(StoreError::RollbackAboveTip { target, tip: None })
            };
        };
        if target > tip {
            return Err(StoreError::RollbackAboveTip {
                target,
                tip: Some(tip),
            });
        }
        if target == tip {
            return Ok(0);
        }
        let lowest = target.saturating_add(1).max(first);
        let scheme = self.store.config.scheme;
        let v2 = scheme.has_accumulator();
        let namespaces = self.namespaces.clone();
        // The blocks of the open transaction may have changed tree pages not yet written.
        self.write_tree()?;
        // Taken for the rollback, put back after it: the tree it sets back goes through it.
        let mut cache = self.cache.take();
        cache.clear();
        let current_mmr = self.appender.mmr().clone();
        let txn = self.txn()?;
        let (new_tip, new_mmr) = {
            let mut undo = txn.open_table(UNDO).ctx("opening the undo table")?;
            // Check the whole range first: nothing changes if any undo log is missing.
            let oldest = undo
                .first()
                .ctx("reading undo logs")?
                .map(|(k, _)| k.value());
            if oldest.is_none_or(|o| o > lowest) {
                return Err(StoreError::RollbackTooDeep {
                    target,
                    oldest: oldest.map_or(tip, |o| o.saturating_sub(1)),
                });
            }
            let mut state = txn.open_table(STATE).ctx("opening the state table")?;
            let mut ops = txn.open_table(OPS).ctx("opening the ops table")?;
            let mut chain = txn.open_table(CHAIN).ctx("opening the chain table")?;
            let mmr = txn.open_table(MMR).ctx("opening the mmr table")?;
            // v3: each key the reverted blocks changed, with its value at the target (the
            // oldest of their undo logs that names it holds it).
            let mut earlier = tree::Earlier::new();
            for height in (lowest..=tip).rev() {
                let log: UndoLog = {
                    let raw = undo
                        .get(height)
                        .ctx("reading an undo log")?
                        .ok_or_else(|| {
                            StoreError::Inconsistent(format!(
                                "undo log of block {height} is missing"
                            ))
                        })?;
                    schema::decode(raw.value(), || format!("undo log of block {height}"))?
                };
                for entry in log.entries.iter().rev() {
                    match &entry.previous {
                        Some(v) => state.insert(entry.key.as_slice(), v.as_slice()),
                        None => state.remove(entry.key.as_slice()),
                    }
                    .ctx("restoring state")?;
                }
                if scheme.commits_state() {
                    for entry in log.entries {
                        earlier.insert(
                            tree::tree_path(&namespaces, &entry.key)?,
                            (entry.key, entry.previous),
                        );
                    }
                }
            }
            if scheme.commits_state() {
                let mut nodes = txn.open_table(SMT).ctx("opening the state tree")?;
                tree::set_back(&mut nodes, &mut cache, &earlier)?;
                txn.open_table(STATE_ROOTS)
                    .ctx("opening the state roots")?
                    .retain_in(lowest..=tip, |_, _| false)
                    .ctx("removing state roots")?;
            }
            // One range deletion a table: redb rebuilds a page once for all its entries,
            // where a removal a key would rebuild its path every time.
            undo.retain_in(lowest..=tip, |_, _| false)
                .ctx("removing undo logs")?;
            ops.retain_in((lowest, 0)..=(tip, u32::MAX), |_, _| false)
                .ctx("removing operations")?;
            chain
                .retain_in(lowest..=tip, |_, _| false)
                .ctx("removing chain entries")?;
            let new_tip = if target >= first {
                let e = schema::required_chain_entry(&chain, target)?;
                Some((target, Hash256(e.block_hash)))
            } else {
                None
            };
            // The accumulator nodes of the reverted blocks stay in the table: nothing reads a
            // node beyond the tip's leaf count, and the blocks that replace them overwrite
            // them. Deleting them was half the cost of a shallow rollback.
            let new_mmr = if v2 {
                mmr_prefix(&mmr, &current_mmr, lowest - first)?
            } else {
                Default::default()
            };
            (new_tip, new_mmr)
        };
        self.tip = new_tip;
        self.cache = cache;
        self.appender = Appender::resume(self.store.config.scheme, first, lowest, new_mmr);
        self.pending += 1;
        let reverted = tip - lowest + 1;
        tracing::info!(from = tip, to = target, reverted, "rolled back");
        Ok(reverted)
    }
}

/// One block being applied. Changes are buffered until [`BlockWriter::finish`]; dropping it
/// discards them.
pub struct BlockWriter<'w, 's> {
    writer: &'w mut Writer<'s>,
    header: BlockHeader,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Every overlay change with what the overlay held before it, for [`BlockWriter::revert`].
    journal: Vec<JournalEntry>,
    /// Namespaces first written in this block, ids after the writer's.
    new_namespaces: Vec<String>,
    ops: Vec<StoredOp>,
    /// Snapshot import (v3): the state root the block committed, taken as given because the
    /// state arrives after the blocks; checked against the imported state at the end.
    claimed_state_root: Option<Hash256>,
}

/// An overlay change: the raw key and what the overlay held for it before (`None`: nothing).
type JournalEntry = (Vec<u8>, Option<Option<Vec<u8>>>);

/// A point in a block's changes that [`BlockWriter::revert`] goes back to (an operation's
/// start, so that a rejected operation leaves no trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Savepoint {
    journal: usize,
    namespaces: usize,
    ops: usize,
}

impl core::fmt::Debug for BlockWriter<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("header", &self.header)
            .field("changes", &self.overlay.len())
            .field("ops", &self.ops.len())
            .finish()
    }
}

impl BlockWriter<'_, '_> {
    /// The block being applied.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    fn txn(&self) -> Result<&WriteTransaction, StoreError> {
        self.writer
            .txn
            .as_ref()
            .ok_or_else(|| StoreError::Inconsistent("no write transaction".into()))
    }

    /// The id of namespace `ns`, `None` if it has never been written (then it is empty).
    fn namespace_id(&self, ns: &str) -> Option<u16> {
        id_of(&self.writer.namespaces, ns).or_else(|| {
            let i = self.new_namespaces.iter().position(|n| n == ns)?;
            u16::try_from(self.writer.namespaces.len() + i).ok()
        })
    }

    fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let before = self.overlay.insert(key.clone(), value);
        self.journal.push((key, before));
    }

    /// The current position in this block's changes.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            journal: self.journal.len(),
            namespaces: self.new_namespaces.len(),
            ops: self.ops.len(),
        }
    }

    /// Takes back every state change and operation made since `savepoint`.
    pub fn revert(&mut self, savepoint: Savepoint) {
        while self.journal.len() > savepoint.journal {
            let Some((key, before)) = self.journal.pop() else {
                break;
            };
            match before {
                Some(v) => self.overlay.insert(key, v),
                None => self.overlay.remove(&key),
            };
        }
        self.new_namespaces.truncate(savepoint.namespaces);
        self.ops.truncate(savepoint.ops);
    }

    /// Records an accepted operation. Operations must come in increasing `vtxindex`; their
    /// records, in this order, are what the block's consensus hash covers.
    pub fn add_op(&mut self, op: StoredOp) -> Result<(), StoreError> {
        if let Some(last) = self.ops.last()
            && op.vtxindex <= last.vtxindex
        {
            return Err(StoreError::NotNext {
                height: self.header.height,
                reason: format!(
                    "operation vtxindex {} after vtxindex {}",
                    op.vtxindex, last.vtxindex
                ),
            });
        }
        self.ops.push(op);
        Ok(())
    }

    /// The operations added so far.
    pub fn ops(&self) -> &[StoredOp] {
        &self.ops
    }

    /// Snapshot import: commit `root` as the block's state root instead of updating the tree
    /// (the block must then change no state).
    pub(crate) fn claim_state_root(&mut self, root: Hash256) {
        self.claimed_state_root = Some(root);
    }

    /// Applies the block to the transaction: state changes with their undo log, operations,
    /// chain-index entry, consensus hash and accumulator nodes. Returns the block's hashes.
    ///
    /// If this fails, every block since the last commit is discarded with it (the transaction
    /// may hold part of the block), and the writer goes back to the committed tip.
    pub fn finish(self) -> Result<BlockSummary, StoreError> {
        let BlockWriter {
            writer,
            header,
            overlay,
            new_namespaces,
            ops,
            claimed_state_root,
            ..
        } = self;
        let started = Instant::now();
        match apply_block(
            writer,
            header,
            overlay,
            &new_namespaces,
            ops,
            claimed_state_root,
        ) {
            Ok(summary) => {
                writer.timings.blocks += 1;
                writer.timings.applying += started.elapsed();
                Ok(summary)
            }
            Err(e) => {
                writer.discard_uncommitted();
                Err(e)
            }
        }
    }
}

impl StateRead for BlockWriter<'_, '_> {
    fn get_raw(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(id) = self.namespace_id(ns) else {
            return Ok(None);
        };
        let raw = raw_key(id, key);
        if let Some(pending) = self.overlay.get(&raw) {
            return Ok(pending.clone());
        }
        let state = self
            .txn()?
            .open_table(STATE)
            .ctx("opening the state table")?;
        Ok(state
            .get(raw.as_slice())
            .ctx("reading state")?
            .map(|v| v.value().to_vec()))
    }

    fn range_raw(
        &self,
        ns: &str,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let Some(id) = self.namespace_id(ns) else {
            return Ok(Vec::new());
        };
        let (lo, hi) = raw_range(id, start, end);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        {
            let state = self
                .txn()?
                .open_table(STATE)
                .ctx("opening the state table")?;
            schema::scan_state(&state, &lo, hi.as_deref(), |k, v| {
                merged.insert(k.to_vec(), v.to_vec());
                Ok(())
            })?;
        }
        let pending = match &hi {
            Some(hi) => self.overlay.range(lo.clone()..hi.clone()),
            None => self.overlay.range(lo.clone()..),
        };
        for (k, v) in pending {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged
            .into_iter()
            .map(|(k, v)| (k.get(2..).unwrap_or_default().to_vec(), v))
            .collect())
    }
}

impl StateAccess for BlockWriter<'_, '_> {
    fn put_raw(&mut self, ns: &str, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        let id = match self.namespace_id(ns) {
            Some(id) => id,
            None => {
                let id = u16::try_from(self.writer.namespaces.len() + self.new_namespaces.len())
                    .map_err(|_| StoreError::TooManyNamespaces(ns.to_owned()))?;
                self.new_namespaces.push(ns.to_owned());
                id
            }
        };
        self.set(raw_key(id, key), Some(value));
        Ok(())
    }

    fn delete_raw(&mut self, ns: &str, key: &[u8]) {
        // A namespace never written holds nothing to remove.
        if let Some(id) = self.namespace_id(ns) {
            self.set(raw_key(id, key), None);
        }
    }

    /// The consensus hash of an earlier block at `height` (committed or applied through this
    /// writer), `None` if the store has no block there. Applications use it for staleness
    /// checks while a block is being applied.
    fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, StoreError> {
        let chain = self
            .txn()?
            .open_table(CHAIN)
            .ctx("opening the chain table")?;
        let Some(entry) = schema::chain_entry(&chain, height)? else {
            return Ok(None);
        };
        let scheme = self.writer.store.config.scheme;
        ConsensusHash::from_slice(scheme, &entry.consensus_hash)
            .map(Some)
            .ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "chain entry at height {height} has a {}-byte consensus hash",
                    entry.consensus_hash.len()
                ))
            })
    }
}

fn apply_block(
    writer: &mut Writer<'_>,
    header: BlockHeader,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    new_namespaces: &[String],
    ops: Vec<StoredOp>,
    claimed_state_root: Option<Hash256>,
) -> Result<BlockSummary, StoreError> {
    {
        let height = header.height;
        let window = writer.store.config.undo_window;
        let records: Vec<Vec<u8>> = ops.iter().flat_map(|o| o.records.iter().cloned()).collect();
        let txn = writer
            .txn
            .as_ref()
            .ok_or_else(|| StoreError::Inconsistent("no write transaction".into()))?;
        let mut appender = writer.appender.clone();
        let mut namespaces = writer.namespaces.clone();
        if !new_namespaces.is_empty() {
            let mut meta_table = txn.open_table(META).ctx("opening the meta table")?;
            let mut meta: Meta = match meta_table.get(META_KEY).ctx("reading metadata")? {
                Some(raw) => schema::decode(raw.value(), || "store metadata".into())?,
                None => return Err(StoreError::Inconsistent("metadata is missing".into())),
            };
            namespaces.extend(new_namespaces.iter().cloned());
            meta.namespaces.clone_from(&namespaces);
            meta_table
                .insert(META_KEY, schema::encode(&meta)?.as_slice())
                .ctx("writing metadata")?;
        }
        let scheme = writer.store.config.scheme;
        // v3: a large block's tree update runs on another thread while the state, the undo
        // log and the operations are written, its changes taken from the overlay (a key set
        // to its present value, or an absent one deleted, changes nothing in the tree).
        let detached = match claimed_state_root {
            None if scheme.commits_state()
                && writer.tree_thread
                && overlay.len() >= DETACHED_MIN =>
            {
                writer
                    .cache
                    .committed_pages(&writer.store.db)?
                    .map(|committed| {
                        let changes = tree_changes(
                            &namespaces,
                            overlay.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
                        )?;
                        Ok::<_, StoreError>((committed, changes))
                    })
                    .transpose()?
            }
            _ => None,
        };
        #[cfg(test)]
        if detached.is_some() {
            writer.paths_taken.0 += 1;
        } else if overlay.len() >= DETACHED_MIN && writer.tree_thread {
            writer.paths_taken.1 += 1;
        }
        let (written, detached_root) = match detached {
            Some((committed, changes)) => {
                let cache = &mut writer.cache;
                let what = format!("block {height}");
                let timings = &mut writer.timings;
                std::thread::scope(|scope| {
                    let worker = scope.spawn(|| {
                        let started = Instant::now();
                        let root = tree::detached(&committed, cache, &changes, &what);
                        (root, started.elapsed())
                    });
                    let written = write_state_undo_ops(txn, &overlay, height, window, &ops);
                    let waited = Instant::now();
                    let joined = worker.join().map(|(root, took)| {
                        timings.tree_update += took;
                        root
                    });
                    timings.tree_wait += waited.elapsed();
                    (written, Some(joined))
                })
            }
            None => (
                write_state_undo_ops(txn, &overlay, height, window, &ops),
                None,
            ),
        };
        let log = written?;
        let summary = {
            let detached_root = match detached_root {
                Some(Ok(root)) => {
                    let root = root?;
                    let mut nodes = txn.open_table(SMT).ctx("opening the state tree")?;
                    TreeWrite::new(&mut nodes, &mut writer.cache).settle()?;
                    Some(root)
                }
                Some(Err(_)) => {
                    return Err(StoreError::Inconsistent(format!(
                        "block {height}: the state tree's update stopped (a panic)"
                    )));
                }
                None => None,
            };
            let state_root = if !scheme.commits_state() {
                None
            } else if let Some(root) = claimed_state_root {
                if !log.entries.is_empty() {
                    return Err(StoreError::Inconsistent(format!(
                        "block {height} claims its state root and changes state"
                    )));
                }
                Some(root)
            } else if detached_root.is_some() {
                detached_root
            } else {
                let started = Instant::now();
                let root =
                    update_tree(txn, &mut writer.cache, &namespaces, height, &log, &overlay)?;
                writer.timings.tree_update += started.elapsed();
                Some(root)
            };
            if let Some(root) = state_root {
                txn.open_table(STATE_ROOTS)
                    .ctx("opening the state roots")?
                    .insert(height, root.0)
                    .ctx("writing the state root")?;
            }

            let mut chain = txn.open_table(CHAIN).ctx("opening the chain table")?;
            let mut nodes = Vec::new();
            let hashed = appender.append(
                height,
                header.block_hash,
                &records,
                state_root,
                |h| {
                    let Some(e) = schema::chain_entry(&chain, h)? else {
                        return Ok(None);
                    };
                    ConsensusHash::from_slice(scheme, &e.consensus_hash)
                        .map(Some)
                        .ok_or_else(|| {
                            StoreError::Inconsistent(format!(
                                "chain entry {h} has a malformed consensus hash"
                            ))
                        })
                },
                |level, index, hash| nodes.push(((level, index), hash.0)),
            )?;
            let entry = ChainEntry {
                block_hash: header.block_hash.0,
                prev_hash: header.prev_hash.0,
                ops_hash: hashed.ops_hash.0,
                consensus_hash: hashed.consensus_hash.as_bytes().to_vec(),
                mmr_root: hashed.mmr_root.map(|r| r.0),
                op_count: u32::try_from(ops.len()).unwrap_or(u32::MAX),
            };
            chain
                .insert(height, schema::encode(&entry)?.as_slice())
                .ctx("writing the chain index")?;
            if !nodes.is_empty() {
                let mut mmr = txn.open_table(MMR).ctx("opening the mmr table")?;
                for (pos, hash) in nodes {
                    mmr.insert(pos, hash).ctx("writing accumulator nodes")?;
                }
            }
            hashed.summary()
        };
        writer.appender = appender;
        writer.namespaces = namespaces;
        writer.tip = Some((height, header.block_hash));
        writer.pending += 1;
        Ok(summary)
    }
}

/// `d` in whole microseconds, for a log field.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The fewest state changes for which a v3 block's tree update runs on another thread (see
/// [`tree::detached`]): below it, starting the thread and a read transaction (about 70 µs)
/// costs about what the overlap gains. Measured interleaved (15 rounds of 50 blocks, the
/// commit untimed), with the thread against without: at 8 changes 221 against 213 µs among
/// 10,000 keys and 344 against 368 µs among 1,000,000; at 16 changes 331 against 388 µs and
/// 550 against 656 µs; at 32 changes 477 against 640 µs and 732 against 1,027 µs.
const DETACHED_MIN: usize = 16;

/// Writes a block's state changes, its undo log (pruning the logs past the window) and its
/// operations; returns the undo log: the keys whose value changed, with their values before.
fn write_state_undo_ops(
    txn: &WriteTransaction,
    overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    height: u64,
    window: u64,
    ops: &[StoredOp],
) -> Result<UndoLog, StoreError> {
    let mut state = txn.open_table(STATE).ctx("opening the state table")?;
    let mut log = UndoLog::default();
    for (key, new) in overlay {
        let previous = state
            .get(key.as_slice())
            .ctx("reading state")?
            .map(|v| v.value().to_vec());
        if previous.as_deref() == new.as_deref() {
            continue;
        }
        match new {
            Some(v) => state.insert(key.as_slice(), v.as_slice()),
            None => state.remove(key.as_slice()),
        }
        .ctx("writing state")?;
        log.entries.push(UndoEntry {
            key: key.clone(),
            previous,
        });
    }
    let mut undo = txn.open_table(UNDO).ctx("opening the undo table")?;
    undo.insert(height, schema::encode(&log)?.as_slice())
        .ctx("writing the undo log")?;
    if let Some(cut) = height.checked_sub(window) {
        undo.retain_in(..=cut, |_, _| false)
            .ctx("pruning undo logs")?;
    }
    let mut ops_table = txn.open_table(OPS).ctx("opening the ops table")?;
    for op in ops {
        ops_table
            .insert((height, op.vtxindex), schema::encode(op)?.as_slice())
            .ctx("writing operations")?;
    }
    Ok(log)
}

/// State changes (full store keys with their new values, `None` deleting) as tree changes,
/// sorted by path.
fn tree_changes<'k>(
    namespaces: &[String],
    keys: impl Iterator<Item = (&'k [u8], Option<&'k [u8]>)>,
) -> Result<Vec<vc_chash::state::Change>, StoreError> {
    let mut changes = Vec::with_capacity(keys.size_hint().0);
    for (key, new) in keys {
        changes.push(vc_chash::state::Change {
            path: tree::tree_path(namespaces, key)?,
            value_hash: new.map(vc_chash::state::value_hash),
        });
    }
    changes.sort_unstable_by_key(|c| c.path);
    Ok(changes)
}

/// v3: applies the block's state changes (the keys its undo log names, with their new values
/// from the overlay) to the state tree and returns the new state root.
fn update_tree(
    txn: &WriteTransaction,
    cache: &mut NodeCache,
    namespaces: &[String],
    height: u64,
    log: &UndoLog,
    overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<Hash256, StoreError> {
    if log.entries.is_empty()
        && let Some(root) = cache.root()
    {
        return Ok(root);
    }
    let mut nodes = txn.open_table(SMT).ctx("opening the state tree")?;
    let changes = tree_changes(
        namespaces,
        log.entries.iter().map(|entry| {
            let new = overlay.get(&entry.key).and_then(Option::as_deref);
            (entry.key.as_slice(), new)
        }),
    )?;
    TreeWrite::new(&mut nodes, cache).apply(&changes, &format!("block {height}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use vc_chash::Scheme;
    use vc_chash::state::MemoryState;

    use super::*;
    use crate::StoreConfig;

    /// xorshift64.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Applies the next block, putting the keys `0..keys` of namespace `ns`.
    fn put_keys(w: &mut Writer<'_>, keys: u32) {
        let height = w.next_height();
        let prev = w.tip().map_or(Hash256::ZERO, |t| t.1);
        let mut b = w
            .begin_block(BlockHeader {
                height,
                block_hash: Hash256([height as u8; 32]),
                prev_hash: prev,
            })
            .unwrap();
        for k in 0..keys {
            b.put_raw("ns", &k.to_be_bytes(), vec![height as u8; 20])
                .unwrap();
        }
        b.finish().unwrap();
    }

    /// A large v3 block's tree update runs on another thread, reading the pages its cache
    /// lacks from the last commit; that is only right while the open transaction has written
    /// no page the cache has since dropped. Random blocks (small, and from just under to well
    /// over the threshold, with deletions, rewrites of present values and deletions of absent
    /// keys), commits, rollbacks inside and across transactions, rollbacks refused as too deep
    /// and discarded writers, under caches bounded to 8 and 64 pages (so that pages are written
    /// early, inside the transaction, and dropped) and the default bound: after every block
    /// the writer's root must equal an in-memory tree of the same state, and after the last
    /// commit the replay verifier must find the file's tree whole.
    #[test]
    fn a_tree_update_on_another_thread_equals_the_state_it_commits() {
        let mut taken = (0, 0);
        for (seed, limit) in [(1u64, 8usize), (2, 64), (3, tree::DEFAULT_CACHED_PAGES)] {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig::new("test-app", "1.0.0", Scheme::V3, 10, "regtest")
                .with_undo_window(6);
            let store = Store::open(dir.path().join("db"), config).unwrap();
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            // The state after each block, from the first; and the same as last committed.
            let mut states: Vec<MemoryState> = Vec::new();
            let mut committed: Vec<MemoryState> = Vec::new();
            let mut w = store.writer().unwrap();
            w.cache = NodeCache::with_limit(limit);
            w.set_tree_thread(true);
            for step in 0..300 {
                match next(&mut x) % 20 {
                    0..=12 => {
                        let height = 10 + states.len() as u64;
                        let mut state = states.last().cloned().unwrap_or_else(MemoryState::new);
                        let count = [0, 3, 15, 16, 17, 60, 150][(next(&mut x) % 7) as usize];
                        let mut b = w
                            .begin_block(BlockHeader {
                                height,
                                block_hash: Hash256([(step % 251) as u8 + 1; 32]),
                                prev_hash: w.tip().map_or(Hash256::ZERO, |t| t.1),
                            })
                            .unwrap();
                        let mut changes = BTreeMap::new();
                        for _ in 0..count {
                            let r = next(&mut x);
                            let key = format!("k{}", r % 400).into_bytes();
                            let value = match r >> 60 {
                                0..=2 => None,
                                3 => state.get(b"names", &key).map(<[u8]>::to_vec),
                                _ => Some((r >> 20).to_be_bytes()[..(r % 9) as usize].to_vec()),
                            };
                            match &value {
                                Some(v) => b.put_raw("names", &key, v.clone()).unwrap(),
                                None => b.delete_raw("names", &key),
                            }
                            changes.insert(key, value);
                        }
                        b.finish().unwrap();
                        let root = state.apply(
                            changes
                                .iter()
                                .map(|(k, v)| (b"names".as_slice(), k.as_slice(), v.clone())),
                        );
                        assert_eq!(w.cache.root(), Some(root), "seed {seed}, step {step}");
                        states.push(state);
                    }
                    13..=15 => {
                        w.commit().unwrap();
                        committed.clone_from(&states);
                    }
                    16..=18 if !states.is_empty() => {
                        let depth = next(&mut x) % 9;
                        let target = (10 + states.len() as u64).saturating_sub(1 + depth).max(9);
                        match w.rollback_to(target) {
                            Ok(_) => states.truncate((target + 1).saturating_sub(10) as usize),
                            Err(StoreError::RollbackTooDeep { .. }) => {}
                            Err(e) => panic!("seed {seed}, step {step}: {e}"),
                        }
                    }
                    16..=18 => {}
                    _ => {
                        taken.0 += w.paths_taken.0;
                        taken.1 += w.paths_taken.1;
                        drop(w);
                        states.clone_from(&committed);
                        w = store.writer().unwrap();
                        w.cache = NodeCache::with_limit(limit);
                        w.set_tree_thread(true);
                    }
                }
            }
            w.commit().unwrap();
            taken.0 += w.paths_taken.0;
            taken.1 += w.paths_taken.1;
            drop(w);
            let view = store.view().unwrap();
            let tip = view.tip().unwrap().unwrap();
            let report = crate::replay::verify(&view, (tip.height, tip.consensus_hash)).unwrap();
            assert!(report.is_ok(), "seed {seed}: {report:?}");
            let root = states
                .last()
                .map_or(vc_chash::state::EMPTY, MemoryState::root);
            assert_eq!(view.tree_root(tip.height).unwrap(), Some(root));
        }
        // Both paths were taken: on another thread, and in the transaction after early writes
        // or a rollback.
        assert!(taken.0 > 40 && taken.1 > 10, "{taken:?}");
    }

    /// The timings count what happened: blocks and commits, v3's tree work on the thread and
    /// in the transaction, and its pages at the commit; a v2 writer spends nothing on a tree,
    /// and a failed block or an empty commit counts nothing.
    #[test]
    fn timings_count_blocks_commits_and_the_tree() {
        for scheme in [Scheme::V2, Scheme::V3] {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig::new("test-app", "1.0.0", scheme, 10, "regtest");
            let store = Store::open(dir.path().join("db"), config).unwrap();
            let mut w = store.writer().unwrap();
            for (on, keys) in [(true, 40u32), (false, 40), (true, 3), (true, 0)] {
                w.set_tree_thread(on);
                put_keys(&mut w, keys);
            }
            // A block at the wrong height fails and is not counted.
            let wrong = BlockHeader {
                height: 99,
                block_hash: Hash256([99; 32]),
                prev_hash: Hash256::ZERO,
            };
            assert!(w.begin_block(wrong).is_err());
            let t = w.timings();
            assert_eq!((t.blocks, t.commits), (4, 0), "{scheme}");
            assert!(t.applying > Duration::ZERO);
            assert_eq!(t.committing, Duration::ZERO);
            w.commit().unwrap();
            // Nothing pending: no commit.
            w.commit().unwrap();
            let t = w.take_timings();
            assert_eq!((t.blocks, t.commits), (4, 1), "{scheme}");
            assert!(t.committing >= t.tree_pages);
            if scheme.commits_state() {
                assert!(t.tree_update > Duration::ZERO);
                assert!(t.tree_update <= t.applying && t.tree_wait <= t.applying);
                assert!(t.tree_pages > Duration::ZERO);
            } else {
                assert_eq!(t.tree_update, Duration::ZERO);
                assert_eq!(t.tree_wait, Duration::ZERO);
                assert_eq!(t.tree_pages, Duration::ZERO);
            }
            assert_eq!(w.timings(), WriterTimings::default());
        }
    }

    /// The interval stretches to `interval_per_commit` times the last commit's duration when
    /// that is longer, and never shrinks below `max_interval`; 0 keeps it fixed. A writer
    /// whose last commit was slow keeps its transaction open past `max_interval`.
    #[test]
    fn a_slow_commit_stretches_the_interval() {
        let ms = Duration::from_millis;
        let policy = CommitPolicy {
            max_blocks: 1_000,
            max_interval: ms(2_000),
            interval_per_commit: 9,
        };
        assert_eq!(policy.interval_after(Duration::ZERO), ms(2_000));
        assert_eq!(policy.interval_after(ms(100)), ms(2_000));
        assert_eq!(policy.interval_after(ms(1_000)), ms(9_000));
        assert_eq!(CommitPolicy::default(), policy);
        let fixed = CommitPolicy {
            interval_per_commit: 0,
            ..policy
        };
        assert_eq!(fixed.interval_after(ms(1_000)), ms(2_000));
        assert_eq!(
            policy.interval_after(Duration::MAX),
            Duration::MAX,
            "saturates"
        );

        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new("test-app", "1.0.0", Scheme::V3, 10, "regtest");
        let store = Store::open(dir.path().join("db"), config).unwrap();
        let mut w = store.writer().unwrap();
        let short = CommitPolicy {
            max_blocks: 1_000,
            max_interval: ms(1),
            interval_per_commit: 1_000,
        };
        for _ in 0..2 {
            put_keys(&mut w, 1);
            std::thread::sleep(ms(5));
            // As if the last commit had taken a second: 1,000 seconds to the next.
            w.last_commit = ms(1_000);
            assert!(!w.commit_if_due(&short, false).unwrap());
            // At the tip every block is committed whatever the interval.
            assert!(w.commit_if_due(&short, true).unwrap());
        }
        put_keys(&mut w, 0);
        std::thread::sleep(ms(5));
        w.last_commit = ms(1_000);
        let fixed = CommitPolicy {
            interval_per_commit: 0,
            ..short
        };
        assert!(w.commit_if_due(&fixed, false).unwrap());
        assert_eq!(w.pending_blocks(), 0);
    }
}
