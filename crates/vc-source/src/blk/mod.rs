//! A source that reads Bitcoin Core's `blocks/` directory directly: blk files for blocks, rev
//! files for the outputs they spend, `xor.dat` for the obfuscation key.
//!
//! Opening scans every blk file in parallel for block headers (seeking from record to record;
//! block bodies are not read), links them into a tree and picks the best chain by cumulative
//! work. Reading is safe while the node runs: [`BlkSource::refresh`] (also run by
//! [`ChainView::tip`]) scans what the node appended since, and a partly written record at the
//! end of the newest file is left for the next refresh.
//!
//! A block is only taken as the tip once its undo record exists. Core writes that record when it
//! connects the block, so a block the node stored but has not connected (it is still validating
//! it, or found it invalid) cannot become the tip, and neither can its descendants. What the
//! files cannot tell is a block the operator rejected by hand with `invalidateblock`: that lives
//! only in Core's block index database.
//!
//! Every problem with the files is a [`SourceError::File`] naming the file and byte offset: a
//! wrong or missing `xor.dat` key, another network's magic, a corrupt or truncated record, a
//! missing rev file.
//!
//! With [`BlkConfig::index_file`] the block index is kept on disk between runs (mainnet's
//! 900,000 headers lie in thousands of blk files; reading them back from one file is much
//! faster than seeking to each). The file is checked before use and rebuilt when it is damaged
//! or belongs to another directory ([`IndexOrigin`]).

mod files;
mod index;
mod persist;
mod rev;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Network, TxOut};

pub use files::XorKey;

use self::files::{FlatFile, Span, file_error, numbered_files, numbered_path};
use self::index::{ChainIndex, Loc};
use self::persist::{Refused, Scanned as ScannedFile};
use self::rev::{RevFile, read_spent, read_spent_at};
use crate::error::SourceError;
use crate::source::{
    BlockSource, ChainTip, ChainView, FetchedBlock, SpentOutputs, spent_outputs_via_block,
};

const NAME: &str = "blk-files";

/// How to open a blocks directory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlkConfig {
    /// Core's `blocks/` directory (`<datadir>/blocks`, `<datadir>/regtest/blocks`, ...).
    pub blocks_dir: PathBuf,
    /// The network the files must belong to.
    pub network: Network,
    /// Threads scanning files when opening (default: the machine's parallelism).
    pub threads: usize,
    /// Check each block's transactions against its header's merkle root (default on; see
    /// [`crate::body`]). The header is always checked against the hash asked for; this also
    /// catches a damaged body. The check is SHA-256 over every transaction, about as costly as
    /// deserializing the block (`docs/benchmarks.md`); off trusts the node's files as Core does
    /// when it reads them back.
    pub check_merkle_root: bool,
    /// Where to keep the block index between runs (default: nowhere, every open scans the blk
    /// files). Outside the blocks directory, which belongs to the node. See
    /// [`BlkSource::index_origin`].
    pub index_file: Option<PathBuf>,
}

impl BlkConfig {
    /// Defaults for `blocks_dir` on `network`.
    pub fn new(blocks_dir: impl Into<PathBuf>, network: Network) -> BlkConfig {
        BlkConfig {
            blocks_dir: blocks_dir.into(),
            network,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            check_merkle_root: true,
            index_file: None,
        }
    }

    /// Keeps the block index in `path` between runs.
    pub fn with_index_file(mut self, path: impl Into<PathBuf>) -> BlkConfig {
        self.index_file = Some(path.into());
        self
    }
}

/// Where [`BlkSource::open`] took its block index from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexOrigin {
    /// Scanned from the blk files: no index file configured, or none written yet.
    Scanned,
    /// Read from [`BlkConfig::index_file`]; only what the node appended since was scanned.
    Loaded,
    /// The index file was unusable for the reason given (damaged, truncated, another
    /// directory's or network's): the blk files were scanned again and the file rewritten.
    Rebuilt {
        /// What was wrong with the file.
        reason: String,
    },
}

/// Headers added since the index was read back before [`BlkSource::open`] writes it again.
const RESAVE_AFTER: usize = 1_000;

/// Scan positions: where the next refresh continues in each blk file.
#[derive(Debug, Default)]
struct ScanState {
    next: BTreeMap<u32, ScannedFile>,
    /// The newest file at the last scan: it may have grown since.
    last: Option<u32>,
}

/// Blocks and spent outputs read from Core's files. See the [module docs](self).
pub struct BlkSource {
    config: BlkConfig,
    key: XorKey,
    magic: [u8; 4],
    index: RwLock<ChainIndex>,
    scan: Mutex<ScanState>,
    revs: Mutex<BTreeMap<u32, Arc<Mutex<RevFile>>>>,
    /// Open blk files, shared by readers.
    blks: Mutex<BTreeMap<u32, FlatFile>>,
    origin: IndexOrigin,
}

impl std::fmt::Debug for BlkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlkSource")
            .field("blocks_dir", &self.config.blocks_dir)
            .field("network", &self.config.network)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The headers found in one blk file (with their hashes), and where its next scan starts
/// (with the file's size).
type Scanned = (Vec<(Header, BlockHash, Loc)>, ScannedFile);

/// The headers of the records in one blk file from `from`, and where to continue.
fn scan_blk(
    path: PathBuf,
    number: u32,
    from: u64,
    key: XorKey,
    magic: [u8; 4],
    growing: bool,
) -> Result<Scanned, SourceError> {
    let file = FlatFile::open(path, key)?;
    let (spans, end) = file.scan(from, magic, 0, growing)?;
    let mut out = Vec::with_capacity(spans.len());
    for span in &spans {
        let (header, hash) = file.header(*span)?;
        out.push((
            header,
            hash,
            Loc {
                file: number,
                span: *span,
            },
        ));
    }
    // In the file the node is writing, the last record may have been read half written: read
    // it again next time (a block stored twice counts once).
    let next = match spans.last() {
        Some(last) if growing => last.offset - 8,
        _ => end,
    };
    Ok((
        out,
        ScannedFile {
            next,
            size: file.size,
        },
    ))
}

impl BlkSource {
    /// Opens `config.blocks_dir`: reads the key, scans every blk file in parallel (or reads the
    /// index file and scans what is new) and selects the best chain.
    pub fn open(config: BlkConfig) -> Result<BlkSource, SourceError> {
        let key = XorKey::load(&config.blocks_dir)?;
        let fresh = || (ChainIndex::new(config.network), ScanState::default());
        let ((index, scan), origin) = match &config.index_file {
            None => (fresh(), IndexOrigin::Scanned),
            Some(path) => match persist::load(path, &config.blocks_dir, config.network, key) {
                Ok(l) => (
                    (
                        l.index,
                        ScanState {
                            next: l.files,
                            last: l.last,
                        },
                    ),
                    IndexOrigin::Loaded,
                ),
                Err(Refused::Missing) => (fresh(), IndexOrigin::Scanned),
                Err(Refused::Unusable(reason)) => {
                    tracing::warn!(
                        file = %path.display(),
                        %reason,
                        "the block index file is unusable; scanning the blk files again"
                    );
                    (fresh(), IndexOrigin::Rebuilt { reason })
                }
            },
        };
        let loaded = index.len();
        let source = BlkSource {
            magic: config.network.magic().to_bytes(),
            index: RwLock::new(index),
            scan: Mutex::new(scan),
            revs: Mutex::new(BTreeMap::new()),
            blks: Mutex::new(BTreeMap::new()),
            key,
            config,
            origin,
        };
        source.refresh()?;
        source
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .shrink();
        if source.config.index_file.is_some()
            && (source.origin != IndexOrigin::Loaded
                || source.read_index().len() >= loaded + RESAVE_AFTER)
        {
            source.save_index()?;
        }
        if source.read_index().chain_len() == 0 {
            return Err(file_error(
                &source.config.blocks_dir,
                0,
                format!(
                    "no {} genesis block in the blk files: another network, a pruned node, or \
                     not a blocks directory",
                    source.config.network
                ),
            ));
        }
        let orphans = source.orphan_headers();
        if orphans > 0 {
            tracing::warn!(
                orphans,
                dir = %source.config.blocks_dir.display(),
                "blocks whose parent is in no blk file are ignored"
            );
        }
        Ok(source)
    }

    /// Where the block index came from when the source was opened.
    pub fn index_origin(&self) -> &IndexOrigin {
        &self.origin
    }

    /// Writes the block index to [`BlkConfig::index_file`] (nothing without one). Opening
    /// writes it when it scanned more than a few blocks; a long-running reader may call this
    /// now and then so that its next start scans less.
    pub fn save_index(&self) -> Result<(), SourceError> {
        let Some(path) = &self.config.index_file else {
            return Ok(());
        };
        let scan = lock(&self.scan);
        let index = self.read_index();
        persist::save(
            path,
            self.config.network,
            self.key,
            &index,
            &scan.next,
            scan.last,
        )
    }

    /// The heap memory the block index takes, in bytes.
    pub fn index_heap_bytes(&self) -> usize {
        self.read_index().heap_bytes()
    }

    /// The number of headers indexed (on any branch, orphans included).
    pub fn indexed_headers(&self) -> usize {
        self.read_index().len()
    }

    /// The key read from `xor.dat`.
    pub fn xor_key(&self) -> XorKey {
        self.key
    }

    /// The blocks directory.
    pub fn blocks_dir(&self) -> &Path {
        &self.config.blocks_dir
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, ChainIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scans what the node appended since the last scan and selects the best chain again.
    pub fn refresh(&self) -> Result<ChainTip, SourceError> {
        let mut scan = lock(&self.scan);
        let numbers = numbered_files(&self.config.blocks_dir, "blk")?;
        let Some(&last) = numbers.last() else {
            return Err(file_error(
                &self.config.blocks_dir,
                0,
                "no blk?????.dat files: not a blocks directory",
            ));
        };
        for (i, n) in numbers.iter().enumerate() {
            if *n != i as u32 {
                return Err(file_error(
                    &numbered_path(&self.config.blocks_dir, "blk", i as u32),
                    0,
                    "file is missing (pruned node, or an incomplete copy)",
                ));
            }
        }
        // The files to (re)scan: new ones, and the ones not scanned to their end.
        let todo: Vec<(u32, u64)> = numbers
            .iter()
            .filter_map(|n| match scan.next.get(n) {
                None => Some((*n, 0)),
                Some(at) if scan.last.is_some_and(|l| *n >= l) => Some((*n, at.next)),
                Some(_) => None,
            })
            .collect();
        // A few files per thread at a time, added in file order: the headers found wait in
        // memory only until their batch is indexed.
        let batch = self.config.threads.max(1) * 4;
        for chunk in todo.chunks(batch) {
            let results = self.scan_parallel(chunk, last)?;
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            index.reserve(results.iter().map(|r| r.0.len()).sum());
            for (n, (found, next)) in chunk.iter().map(|t| t.0).zip(results) {
                for (header, hash, loc) in found {
                    index.add_hashed(header, hash, loc);
                }
                scan.next.insert(n, next);
            }
        }
        scan.last = Some(last);
        drop(scan);
        self.select_tip()
    }

    fn scan_parallel(&self, todo: &[(u32, u64)], last: u32) -> Result<Vec<Scanned>, SourceError> {
        let results: Vec<Mutex<Option<Result<Scanned, SourceError>>>> =
            todo.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let threads = self.config.threads.clamp(1, todo.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(n, from)) = todo.get(i) else { break };
                        let path = numbered_path(&self.config.blocks_dir, "blk", n);
                        let r = scan_blk(path, n, from, self.key, self.magic, n == last);
                        *lock(&results[i]) = Some(r);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .unwrap_or_else(|| {
                        Err(file_error(
                            &self.config.blocks_dir,
                            0,
                            "a scanning thread stopped",
                        ))
                    })
            })
            .collect()
    }

    /// Picks the most-work block whose undo record exists (the genesis block needs none).
    fn select_tip(&self) -> Result<ChainTip, SourceError> {
        let mut excluded = BTreeSet::new();
        loop {
            let candidate = self.read_index().best(&excluded);
            let Some(hash) = candidate else {
                return Err(file_error(
                    &self.config.blocks_dir,
                    0,
                    format!(
                        "no block links to the {} genesis block",
                        self.config.network
                    ),
                ));
            };
            // The tip of the last selection was checked then: polling an idle node reads no block.
            let current = self.read_index().chain_tip() == Some(hash);
            let connected = current || {
                let block = self.block(&hash)?.block;
                match self.undo_of(&hash, &block)? {
                    Undo::Genesis | Undo::Found(_) => true,
                    Undo::Missing(_) => false,
                }
            };
            if connected {
                let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
                index.set_tip(hash);
                let height = index.chain_len() as u64 - 1;
                return Ok(ChainTip { height, hash });
            }
            tracing::debug!(block = %hash, "no undo record yet: not connected by the node");
            excluded.insert(hash);
        }
    }

    /// Blocks found in the files but not on the best chain, in file order.
    pub fn stale_blocks(&self) -> Vec<BlockHash> {
        self.read_index().stale()
    }

    /// Headers found whose parent block is in none of the files (a partial copy of a blocks
    /// directory, or a record the node was still writing).
    pub fn orphan_headers(&self) -> usize {
        self.read_index().orphan_count()
    }

    /// The height of `hash` if it is on the best chain.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.read_index().on_chain(hash)
    }

    fn blk_file(&self, n: u32) -> Result<FlatFile, SourceError> {
        let mut blks = lock(&self.blks);
        if let Some(f) = blks.get(&n) {
            return Ok(f.clone());
        }
        let f = FlatFile::open(numbered_path(&self.config.blocks_dir, "blk", n), self.key)?;
        blks.insert(n, f.clone());
        Ok(f)
    }

    fn rev_file(&self, n: u32) -> Result<Arc<Mutex<RevFile>>, SourceError> {
        let mut revs = lock(&self.revs);
        if let Some(r) = revs.get(&n) {
            return Ok(Arc::clone(r));
        }
        let rev = Arc::new(Mutex::new(RevFile::open(
            &self.config.blocks_dir,
            n,
            self.key,
            self.magic,
        )?));
        revs.insert(n, Arc::clone(&rev));
        Ok(rev)
    }

    /// Where block `hash`'s undo record is. `block` is needed only to tell the records of
    /// siblings apart: without it, a block with siblings is [`UndoAt::NeedsBlock`].
    fn undo_at(&self, hash: &BlockHash, block: Option<&Block>) -> Result<UndoAt, SourceError> {
        let (file, height, prev, has_siblings) = {
            let index = self.read_index();
            let entry = index.get(hash).ok_or_else(|| SourceError::NotFound {
                source_name: NAME,
                what: format!("block {hash}"),
            })?;
            if entry.height == 0 {
                return Ok(UndoAt::Genesis);
            }
            let prev = entry.header.prev_blockhash;
            (entry.loc.file, entry.height, prev, index.has_sibling(hash))
        };
        if has_siblings && block.is_none() {
            return Ok(UndoAt::NeedsBlock);
        }
        let rev = self.rev_file(file)?;
        let (known, rev_file) = {
            let rev = lock(&rev);
            (rev.located(hash), rev.file())
        };
        let span = match known {
            Some(span) => Some(span),
            None => {
                // Not matched yet: pair the file's best chain (computed outside the rev lock).
                let lone_chain = self.read_index().lone_chain_in_file(file);
                lock(&rev).locate(*hash, prev, block, &lone_chain, has_siblings)?
            }
        };
        Ok(match span {
            Some(span) => UndoAt::Found(rev_file, span),
            None => UndoAt::Missing(file_error(
                &rev_file.path,
                0,
                format!(
                    "no undo record for block {hash} (height {height}): the node has not \
                     connected it yet, or the file is incomplete"
                ),
            )),
        })
    }

    /// The outputs block `hash` spends, from its undo record.
    fn undo_of(&self, hash: &BlockHash, block: &Block) -> Result<Undo, SourceError> {
        Ok(match self.undo_at(hash, Some(block))? {
            UndoAt::Genesis => Undo::Genesis,
            UndoAt::Found(file, span) => Undo::Found(read_spent(&file, span, hash, block)?),
            UndoAt::Missing(e) => Undo::Missing(e),
            UndoAt::NeedsBlock => {
                return Err(SourceError::Mismatch {
                    source_name: NAME,
                    detail: format!("the undo record of block {hash} needs the block"),
                });
            }
        })
    }

    /// Where block `hash` is.
    fn loc_of(&self, hash: &BlockHash) -> Result<Loc, SourceError> {
        self.read_index()
            .get(hash)
            .map(|e| e.loc)
            .ok_or_else(|| SourceError::NotFound {
                source_name: NAME,
                what: format!("block {hash}"),
            })
    }

    fn past_tip(&self, height: u64, tip: usize) -> SourceError {
        SourceError::PastTip {
            source_name: NAME,
            height,
            tip: tip.saturating_sub(1) as u64,
        }
    }
}

/// Where a block's undo record is.
enum UndoAt {
    Genesis,
    Found(FlatFile, Span),
    Missing(SourceError),
    /// The block has siblings: the whole block is needed to tell their records apart.
    NeedsBlock,
}

enum Undo {
    Genesis,
    Found(Vec<Vec<TxOut>>),
    Missing(SourceError),
}

impl ChainView for BlkSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn network(&self) -> Network {
        self.config.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.refresh()
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        let index = self.read_index();
        usize::try_from(height)
            .ok()
            .and_then(|h| index.chain_hash(h))
            .ok_or_else(|| self.past_tip(height, index.chain_len()))
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        let index = self.read_index();
        let len = index.chain_len();
        let end = start.saturating_add(count as u64);
        if end > len as u64 {
            return Err(self.past_tip(end - 1, len));
        }
        // Both bounds fit in usize: they are at most the chain's length.
        (start as usize..end as usize)
            .map(|h| {
                index
                    .chain_header(h)
                    .ok_or_else(|| self.past_tip(h as u64, len))
            })
            .collect()
    }
}

impl BlockSource for BlkSource {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        let loc = self.loc_of(hash)?;
        let file = self.blk_file(loc.file)?;
        let bytes = file.read(loc.span.offset, loc.span.len as usize)?;
        let fetched = FetchedBlock::decode(&bytes, self.config.check_merkle_root)
            .map_err(|e| file_error(&file.path, loc.span.offset, format!("block {hash}: {e}")))?;
        let got = fetched.block.block_hash();
        if got != *hash {
            return Err(file_error(
                &file.path,
                loc.span.offset,
                format!("the record indexed as block {hash} now holds block {got}"),
            ));
        }
        Ok(fetched)
    }

    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        let spent = match self.undo_of(hash, block)? {
            Undo::Genesis => SpentOutputs(vec![Vec::new(); block.txdata.len()]),
            Undo::Missing(e) => return Err(e),
            Undo::Found(spent) => SpentOutputs(spent),
        };
        spent
            .check_shape(block)
            .map_err(|detail| SourceError::Mismatch {
                source_name: NAME,
                detail: format!("spent outputs of block {hash}: {detail}"),
            })?;
        Ok(spent)
    }

    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        let loc = self.loc_of(hash)?;
        self.blk_file(loc.file)?
            .read_into(loc.span.offset, loc.span.len as usize, buf)?;
        Ok(true)
    }

    /// Decodes only the coins of `positions` from the undo record (the others are skipped),
    /// except for a block with siblings, whose record is told apart with the whole block.
    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        match self.undo_at(hash, None)? {
            UndoAt::Found(file, span) => read_spent_at(&file, span, hash, inputs, positions),
            UndoAt::Missing(e) => Err(e),
            UndoAt::Genesis | UndoAt::NeedsBlock => spent_outputs_via_block(self, hash, positions),
        }
    }
}
