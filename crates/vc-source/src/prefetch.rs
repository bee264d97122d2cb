//! An ordered, parallel, memory-bounded fetch pipeline over a range of heights.
//!
//! `workers` threads each take the next height, fetch its hash, block and spent outputs from the
//! source, and hand the result to the consumer, which receives blocks strictly in height order.
//! [`Prefetch::selective`] fetches spent outputs only for the blocks a selector picks (an engine
//! needs them only for blocks that carry its application's operations), and runs the selector on
//! the worker threads.
//! [`Prefetch::scanned`] reads each block's bytes and scans them in place ([`crate::scan`]),
//! yielding only the transactions an application may want, with their spent outputs.
//! [`Prefetch::watched`] does the same over a watching source ([`WatchSource::watched`]),
//! yielding [`WatchedBlock`]s.
//!
//! This is where blocks are validated, once for every backend (see [`crate::valid`]): a
//! [`Fetched`] can only be made here, after its block matched the hash the chain view gave,
//! its merkle root and its spent outputs' shape; a [`WatchedBlock`]'s header must hash to the
//! hash of its height.
//! A worker never runs more than `window` heights ahead of the consumer, so at most `window`
//! blocks are in memory however slow the consumer is.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use bitcoin::{Block, BlockHash, ScriptBuf, Transaction};

use crate::error::SourceError;
use crate::scan::{ScanFilter, ScannedBody, Scanner};
use crate::source::{BlockSource, SpentOutputs, WatchSource, WatchedBlock, WatchedTx};
use crate::valid;

/// One fetched and validated block with everything an engine needs. Only
/// [`Prefetch`] makes one, after the checks in [`crate::valid`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Fetched {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// The block.
    pub block: Block,
    /// Serialized size in bytes.
    pub size: usize,
    /// The outputs its inputs spend; `None` when a [`Prefetch::selective`] selector declined
    /// the block.
    pub spent: Option<SpentOutputs>,
}

/// One block scanned and validated, reduced to the transactions an application may want. Only
/// [`Prefetch::scanned`] makes one, after the checks in [`crate::valid`] (the merkle root and
/// uniqueness of every transaction, checked from the bytes).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ScannedBlock {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its header.
    pub header: bitcoin::block::Header,
    /// Serialized size in bytes.
    pub size: usize,
    /// Its transaction count.
    pub tx_count: usize,
    /// The candidates the selector kept, by position, each with its spent outputs.
    pub txs: Vec<WatchedTx>,
}

thread_local! {
    /// Each worker's block buffer and scanner, reused from block to block (and freed by the
    /// worker, never by the consumer).
    static SCRATCH: RefCell<(Vec<u8>, Scanner)> = RefCell::new((Vec::new(), Scanner::new()));
}

fn scan_one(
    source: &dyn BlockSource,
    height: u64,
    filter: &ScanFilter,
    select: &TxSelector,
    threads: usize,
) -> Result<ScannedBlock, SourceError> {
    let name = source.name();
    let hash = source.block_hash(height)?;
    let scanned = SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let (buf, scanner) = &mut *scratch;
        if !source.block_bytes(&hash, buf)? {
            return Ok(None);
        }
        match scanner.scan(buf, filter, threads) {
            Ok(body) => Ok::<_, SourceError>(Some(body)),
            Err(e) => {
                // Refused bytes are read again the long way below, so that the error is the
                // backend's own (a file and offset, a mismatch), as for any other block.
                tracing::debug!(source = name, height, %hash, "scan refused the block: {e}");
                Ok(None)
            }
        }
    })?;
    // A source without bytes gives a decoded block: its spent outputs are then read for the
    // whole block, as before, rather than decoding it a second time.
    let (mut body, full) = match scanned {
        Some(body) => {
            valid::check_scanned(name, height, &hash, &body.header)?;
            (body, None)
        }
        None => {
            let fetched = source.block(&hash)?;
            valid::check_block(name, height, &hash, &fetched)?;
            let body = ScannedBody::from_block(&fetched.block, fetched.size, filter);
            (body, Some(fetched.block))
        }
    };
    body.candidates.retain(|(_, tx)| select(tx));
    if filter.witnesses()
        && body
            .candidates
            .iter()
            .any(|(_, tx)| tx.input.iter().any(|i| !i.witness.is_empty()))
    {
        match &full {
            Some(block) => valid::check_witnesses(name, height, &hash, block)?,
            None => {
                // The scanner decoded only the candidates: decode the whole block from the
                // bytes it scanned (still in this worker's buffer) for the witness root.
                let block: Block = SCRATCH
                    .with(|cell| bitcoin::consensus::deserialize(&cell.borrow().0))
                    .map_err(|e| SourceError::Unverified {
                        source_name: name,
                        height,
                        violation: crate::error::Violation::WitnessCommitment,
                        detail: format!("block {hash} does not decode again: {e}"),
                    })?;
                valid::check_witnesses(name, height, &hash, &block)?;
            }
        }
    }
    let positions: Vec<u32> = body.candidates.iter().map(|c| c.0).collect();
    let mut spent = match full {
        _ if positions.is_empty() => Vec::new(),
        Some(block) => {
            let all = source.spent_outputs(&hash, &block)?;
            valid::check_spent(name, height, &block, &all)?;
            let mut all = all.0;
            positions
                .iter()
                .map(|&p| {
                    all.get_mut(p as usize)
                        .map(std::mem::take)
                        .unwrap_or_default()
                })
                .collect()
        }
        None => {
            let spent = source.spent_outputs_at(&hash, &body.inputs, &positions)?;
            valid::check_spent_at(name, height, &body.inputs, &positions, &spent)?;
            spent
        }
    }
    .into_iter();
    let txs = body
        .candidates
        .into_iter()
        .map(|(index, tx)| WatchedTx {
            index,
            tx,
            spent: spent.next(),
        })
        .collect();
    Ok(ScannedBlock {
        height,
        hash,
        header: body.header,
        size: body.size,
        tx_count: body.inputs.len(),
        txs,
    })
}

/// Decides, on a worker thread, whether a block's spent outputs are needed.
pub type Selector = Arc<dyn Fn(&Block) -> bool + Send + Sync>;

/// Decides, on a worker thread, whether a watched transaction's spent outputs are needed.
pub type TxSelector = Arc<dyn Fn(&Transaction) -> bool + Send + Sync>;

/// What a worker does for one height.
type FetchFn<T> = Arc<dyn Fn(u64) -> Result<T, SourceError> + Send + Sync>;

struct Shared {
    /// The consumer's position: the next height it will take.
    consumed: Mutex<u64>,
    cv: Condvar,
    next: AtomicU64,
    stop: AtomicBool,
}

/// Fetches `start..end` in parallel and yields the blocks in order (an iterator). Dropping it
/// stops the workers.
pub struct Prefetch<T = Fetched> {
    rx: Receiver<(u64, Result<T, SourceError>)>,
    pending: BTreeMap<u64, Result<T, SourceError>>,
    position: u64,
    end: u64,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    failed: bool,
}

impl<T> std::fmt::Debug for Prefetch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("position", &self.position)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

fn fetch_one(
    source: &dyn BlockSource,
    height: u64,
    select: Option<&Selector>,
) -> Result<Fetched, SourceError> {
    let hash = source.block_hash(height)?;
    let fetched = source.block(&hash)?;
    valid::check_block(source.name(), height, &hash, &fetched)?;
    let spent = match select {
        Some(select) if !select(&fetched.block) => None,
        _ => {
            let spent = source.spent_outputs(&hash, &fetched.block)?;
            valid::check_spent(source.name(), height, &fetched.block, &spent)?;
            Some(spent)
        }
    };
    Ok(Fetched {
        height,
        hash,
        block: fetched.block,
        size: fetched.size,
        spent,
    })
}

impl Prefetch<Fetched> {
    /// Starts `workers` threads over `start..end`, at most `window` blocks ahead, fetching
    /// every block's spent outputs.
    pub fn new(
        source: Arc<dyn BlockSource>,
        start: u64,
        end: u64,
        workers: usize,
        window: usize,
    ) -> Prefetch {
        Prefetch::start(
            start,
            end,
            workers,
            window,
            Arc::new(move |h| fetch_one(source.as_ref(), h, None)),
        )
    }

    /// Like [`Prefetch::new`], but fetches spent outputs only for the blocks `select` returns
    /// `true` for (the others have `spent: None`).
    pub fn selective(
        source: Arc<dyn BlockSource>,
        start: u64,
        end: u64,
        workers: usize,
        window: usize,
        select: Selector,
    ) -> Prefetch {
        Prefetch::start(
            start,
            end,
            workers,
            window,
            Arc::new(move |h| fetch_one(source.as_ref(), h, Some(&select))),
        )
    }
}

impl Prefetch<ScannedBlock> {
    /// Like [`Prefetch::new`], but scans each block's bytes in place ([`crate::scan`]) for the
    /// candidates `filter` picks, keeps those `select` accepts (decoded), and fetches spent
    /// outputs only for them. Blocks are hashed on up to `hash_threads` threads each when large.
    /// A source without bytes ([`BlockSource::block_bytes`]) is read whole and filtered the
    /// same way.
    pub fn scanned(
        source: Arc<dyn BlockSource>,
        range: std::ops::Range<u64>,
        workers: usize,
        window: usize,
        filter: ScanFilter,
        select: TxSelector,
        hash_threads: usize,
    ) -> Prefetch<ScannedBlock> {
        Prefetch::start(
            range.start,
            range.end,
            workers,
            window,
            Arc::new(move |h| scan_one(source.as_ref(), h, &filter, &select, hash_threads)),
        )
    }
}

impl Prefetch<WatchedBlock> {
    /// Like [`Prefetch::new`] over [`WatchSource::watched`]: each height's transactions that
    /// pay one of `scripts`, with spent outputs for those `select` picks.
    pub fn watched(
        source: Arc<dyn WatchSource>,
        start: u64,
        end: u64,
        workers: usize,
        window: usize,
        scripts: Vec<ScriptBuf>,
        select: TxSelector,
    ) -> Prefetch<WatchedBlock> {
        Prefetch::start(
            start,
            end,
            workers,
            window,
            Arc::new(move |h| {
                let w = source.watched(h, &scripts, &*select)?;
                let got = w.header.block_hash();
                if got != w.hash || w.height != h {
                    return Err(SourceError::Unverified {
                        source_name: source.name(),
                        height: h,
                        violation: crate::Violation::BlockHash,
                        detail: format!(
                            "asked for height {h}, got block {} at height {} whose header hashes to {got}",
                            w.hash, w.height
                        ),
                    });
                }
                Ok(w)
            }),
        )
    }
}

impl<T: Send + 'static> Prefetch<T> {
    fn start(
        start: u64,
        end: u64,
        workers: usize,
        window: usize,
        fetch: FetchFn<T>,
    ) -> Prefetch<T> {
        let window = window.max(1) as u64;
        let shared = Arc::new(Shared {
            consumed: Mutex::new(start),
            cv: Condvar::new(),
            next: AtomicU64::new(start),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = sync_channel(window as usize);
        let workers = (0..workers.max(1))
            .map(|_| {
                let (shared, tx) = (Arc::clone(&shared), tx.clone());
                let fetch = Arc::clone(&fetch);
                std::thread::spawn(move || {
                    loop {
                        let height = shared.next.fetch_add(1, Ordering::SeqCst);
                        if height >= end || shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        {
                            // Wait until the consumer is within `window` of this height.
                            let mut consumed =
                                shared.consumed.lock().unwrap_or_else(|p| p.into_inner());
                            while height >= *consumed + window
                                && !shared.stop.load(Ordering::SeqCst)
                            {
                                consumed =
                                    shared.cv.wait(consumed).unwrap_or_else(|p| p.into_inner());
                            }
                        }
                        if shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let result = fetch(height);
                        if tx.send((height, result)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Prefetch {
            rx,
            pending: BTreeMap::new(),
            position: start,
            end,
            shared,
            workers,
            failed: false,
        }
    }
}

impl<T> Iterator for Prefetch<T> {
    type Item = Result<T, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.end || self.failed {
            return None;
        }
        loop {
            if let Some(r) = self.pending.remove(&self.position) {
                self.position += 1;
                *self
                    .shared
                    .consumed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = self.position;
                self.shared.cv.notify_all();
                if r.is_err() {
                    self.failed = true;
                    self.shared.stop.store(true, Ordering::SeqCst);
                }
                return Some(r);
            }
            match self.rx.recv() {
                Ok((h, r)) => {
                    self.pending.insert(h, r);
                }
                Err(_) => return None,
            }
        }
    }
}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cv.notify_all();
        // Unblock workers waiting to send.
        while self.rx.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}
