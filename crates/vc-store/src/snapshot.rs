//! Snapshot files: a whole application instance in one portable file.
//!
//! ```text
//! file  = "VCSNAP" 0x00 0x02 || frame* || end frame
//! frame = u32 length (big-endian) || Frame (version byte || postcard)
//! ```
//!
//! Frames come in order: one [`Frame::Header`] (metadata, seeds, tip), every block from the
//! first with its chain entry and operations ([`Frame::Block`], followed for v3 by the block's
//! [`Frame::StateRoot`]), the undo logs of the reorg window ([`Frame::Undo`]), the state in
//! batches ([`Frame::State`]), after a cross-chain migration the segments ([`Frame::Segments`]:
//! which chain each range of heights came from; absent otherwise, and a snapshot without it
//! imports with no segments), and [`Frame::End`] with the SHA-256 of every byte before it
//! (corruption, not trust: trust comes from the consensus hashes).
//!
//! Segments are bookkeeping, not consensus, but an import checks them as the live store keeps
//! them (contiguous from the first block, only the last open, the last covering the tip, each
//! later one's boundary record naming the previous one's last height and the consensus hash
//! there) and refuses the snapshot otherwise.
//!
//! [`import`] rebuilds a store from a snapshot in a temporary file next to the target: every
//! block goes through the normal writer, so each consensus hash is recomputed from the records
//! and compared with the one the snapshot carries, and the hash at the trusted height must equal
//! the trusted one. Any mismatch, a truncated or corrupt file, or another application's snapshot
//! is refused and leaves no database behind.
//!
//! The state: under v3 every consensus hash commits the state root, so the import also proves
//! the state. It recomputes the root of the imported state from scratch, walks the imported tree
//! at the tip and recomputes every hash in it, and requires both to equal the root the tip's
//! consensus hash commits (and every block's tree root to equal the root its consensus hash
//! commits). With the trusted height at the tip, the imported state is then exactly the trusted
//! one. (Older versions of the tree are checked only through their roots: a damaged inner node
//! there would make proofs fail a client's verification, never pass it.) Under legacy and v2 the
//! consensus hashes commit to operations, not state: such a snapshot's state is as good as the
//! node that made it, and [`crate::replay`] re-derives nothing more. Re-index from the
//! operations when that matters.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vc_chash::{ConsensusHash, Hash256};
use vc_codec::storage::Stored;

use crate::error::{DbContext, StoreError};
use crate::schema::{
    self, CHAIN, ChainEntry, META, META_KEY, Meta, STATE, StoredOp, UNDO, UndoLog,
};
use crate::segments::{self, Segment};
use crate::store::{Store, StoreConfig, View};
use crate::tree;
use crate::writer::{BlockHeader, CommitPolicy};

/// The first 8 bytes of every snapshot file: format 2, whose header carries the application's
/// parameters.
pub const MAGIC: [u8; 8] = *b"VCSNAP\x00\x02";

/// The magic of format 1 (before application parameters), refused with a clear message.
const MAGIC_V1: [u8; 8] = *b"VCSNAP\x00\x01";

/// The largest frame accepted (a block with many large operations fits well below it).
pub const MAX_FRAME: u32 = 64 << 20;

/// State entries per [`Frame::State`].
const STATE_BATCH: usize = 4096;

/// One unit of a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The application instance and the tip.
    Header {
        /// The store's metadata.
        meta: Meta,
        /// Seed consensus hashes: height and bytes.
        seeds: Vec<(u64, Vec<u8>)>,
        /// The tip height (`None` for an empty chain).
        tip: Option<u64>,
    },
    /// One block of the chain index with its operations.
    Block {
        /// The height.
        height: u64,
        /// The chain entry as stored (consensus hash included, to be checked).
        entry: ChainEntry,
        /// The accepted operations.
        ops: Vec<StoredOp>,
    },
    /// One block's undo log.
    Undo {
        /// The height.
        height: u64,
        /// The log.
        log: UndoLog,
    },
    /// Raw state entries (full keys with namespace ids).
    State(Vec<(Vec<u8>, Vec<u8>)>),
    /// The end, with the SHA-256 of every byte before this frame.
    End([u8; 32]),
    /// v3: the state root the block before it committed (follows each [`Frame::Block`]).
    StateRoot {
        /// The height.
        height: u64,
        /// The state root.
        root: [u8; 32],
    },
    /// v3, written by earlier builds only: raw state tree entries with every version. An
    /// import skips it (it builds the tree from the state).
    Tree(Vec<(Vec<u8>, Vec<u8>)>),
    /// v3, written by earlier builds only: raw state tree values with every version. An
    /// import skips it.
    TreeValues(Vec<(Vec<u8>, Vec<u8>)>),
    /// After a cross-chain migration: every segment, oldest first (see [`crate::Segment`]).
    /// Written only when there are segments, so a chain that never migrated makes the same
    /// file as before; a snapshot without it imports with no segments.
    Segments(Vec<Segment>),
}

impl Stored for Frame {
    const KIND: &'static str = "snapshot frame";
    const VERSION: u8 = 1;
}

/// What an export or import did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The tip height (`None` for an empty chain).
    pub tip: Option<u64>,
    /// Blocks written or verified.
    pub blocks: u64,
    /// State entries.
    pub state_entries: u64,
    /// Bytes of the snapshot file.
    pub bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

struct FrameWriter<'p, W: Write> {
    out: W,
    hash: Sha256,
    bytes: u64,
    path: &'p Path,
}

impl<W: Write> FrameWriter<'_, W> {
    fn raw(&mut self, b: &[u8]) -> Result<(), StoreError> {
        self.out.write_all(b).map_err(io_err(self.path))?;
        self.hash.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn frame(&mut self, f: &Frame) -> Result<(), StoreError> {
        let body = schema::encode(f)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| StoreError::Snapshot {
                path: self.path.display().to_string(),
                reason: format!(
                    "a frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                    body.len()
                ),
            })?;
        self.raw(&len.to_be_bytes())?;
        self.raw(&body)
    }
}

/// Writes everything in `view` to `path` (replacing it).
pub fn export(view: &View, path: &Path) -> Result<SnapshotSummary, StoreError> {
    let meta: Meta = {
        let t = view
            .txn
            .open_table(schema::META)
            .ctx("opening the meta table")?;
        let raw = t
            .get(schema::META_KEY)
            .ctx("reading metadata")?
            .ok_or_else(|| StoreError::Inconsistent("metadata is missing".into()))?;
        schema::decode(raw.value(), || "store metadata".into())?
    };
    let seeds: Vec<(u64, Vec<u8>)> = view
        .seeds()?
        .iter()
        .map(|(h, ch)| (h, ch.as_bytes().to_vec()))
        .collect();
    let tip = view.tip()?.map(|t| t.height);
    let file = File::create(path).map_err(io_err(path))?;
    let mut w = FrameWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
        path,
    };
    w.raw(&MAGIC)?;
    w.frame(&Frame::Header { meta, seeds, tip })?;
    let mut summary = SnapshotSummary {
        tip,
        blocks: 0,
        state_entries: 0,
        bytes: 0,
    };
    let chain = view.txn.open_table(CHAIN).ctx("opening the chain table")?;
    for row in chain.iter().ctx("reading the chain index")? {
        let (h, raw) = row.ctx("reading the chain index")?;
        let height = h.value();
        let entry: ChainEntry =
            schema::decode(raw.value(), || format!("chain entry at height {height}"))?;
        let ops = view.ops(height)?;
        w.frame(&Frame::Block { height, entry, ops })?;
        if let Some(root) = view.tree_root(height)? {
            w.frame(&Frame::StateRoot {
                height,
                root: root.0,
            })?;
        }
        summary.blocks += 1;
    }
    let undo = view.txn.open_table(UNDO).ctx("opening the undo table")?;
    for row in undo.iter().ctx("reading undo logs")? {
        let (h, raw) = row.ctx("reading undo logs")?;
        let height = h.value();
        let log: UndoLog = schema::decode(raw.value(), || format!("undo log of block {height}"))?;
        w.frame(&Frame::Undo { height, log })?;
    }
    let state = view.txn.open_table(STATE).ctx("opening the state table")?;
    let mut batch = Vec::with_capacity(STATE_BATCH);
    for row in state.iter().ctx("reading state")? {
        let (k, v) = row.ctx("reading state")?;
        batch.push((k.value().to_vec(), v.value().to_vec()));
        summary.state_entries += 1;
        if batch.len() == STATE_BATCH {
            w.frame(&Frame::State(std::mem::take(&mut batch)))?;
        }
    }
    if !batch.is_empty() {
        w.frame(&Frame::State(batch))?;
    }
    let segments = view.segments()?;
    if !segments.is_empty() {
        w.frame(&Frame::Segments(segments))?;
    }
    let digest: [u8; 32] = w.hash.clone().finalize().into();
    w.frame(&Frame::End(digest))?;
    w.out.flush().map_err(io_err(path))?;
    w.out
        .into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?
        .sync_all()
        .map_err(io_err(path))?;
    summary.bytes = w.bytes;
    tracing::info!(path = %path.display(), blocks = summary.blocks, bytes = summary.bytes, "exported snapshot");
    Ok(summary)
}

struct FrameReader<'p> {
    input: BufReader<File>,
    hash: Sha256,
    offset: u64,
    path: &'p Path,
}

impl FrameReader<'_> {
    fn bad(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Snapshot {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad(format!("truncated at byte offset {}", self.offset))
            } else {
                io_err(self.path)(e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The next frame, and the digest of every byte before it.
    fn next(&mut self) -> Result<(Frame, [u8; 32]), StoreError> {
        let before: [u8; 32] = self.hash.clone().finalize().into();
        let at = self.offset;
        let mut len = [0u8; 4];
        self.exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_FRAME {
            return Err(self.bad(format!(
                "frame at byte offset {at} claims {len} bytes (limit {MAX_FRAME})"
            )));
        }
        let mut body = vec![0u8; len as usize];
        self.exact(&mut body)?;
        self.hash.update(len.to_be_bytes());
        self.hash.update(&body);
        let frame = vc_codec::storage::from_bytes::<Frame>(&body)
            .map_err(|e| self.bad(format!("frame at byte offset {at}: {e}")))?;
        Ok((frame, before))
    }
}

/// Builds a new store at `db_path` from the snapshot at `snapshot_path`, for the application
/// `config`, checking every consensus hash and the trusted `(height, consensus hash)`.
///
/// `db_path` must not exist. On any failure nothing is left at `db_path`.
pub fn import(
    snapshot_path: &Path,
    db_path: &Path,
    config: StoreConfig,
    trusted: (u64, ConsensusHash),
) -> Result<(Store, SnapshotSummary), StoreError> {
    if std::fs::metadata(db_path).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::Snapshot {
            path: snapshot_path.display().to_string(),
            reason: format!(
                "refusing to import over the existing database {}",
                db_path.display()
            ),
        });
    }
    let mut tmp = db_path.as_os_str().to_owned();
    tmp.push(".importing");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = import_into(snapshot_path, &tmp, config.clone(), trusted);
    match result {
        Ok(summary) => {
            std::fs::rename(&tmp, db_path).map_err(io_err(db_path))?;
            let store = Store::open(db_path, config)?;
            tracing::info!(path = %db_path.display(), blocks = summary.blocks, "imported snapshot");
            Ok((store, summary))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn describe(m: &Meta) -> String {
    format!(
        "{} {} (schema {}, scheme byte {}, first block {}, {}, namespaces [{}])",
        m.app_name,
        m.app_version,
        m.schema_version,
        m.scheme,
        m.first_block,
        m.network,
        m.namespaces.join(", ")
    )
}

fn import_into(
    snapshot_path: &Path,
    tmp: &Path,
    config: StoreConfig,
    trusted: (u64, ConsensusHash),
) -> Result<SnapshotSummary, StoreError> {
    let file = File::open(snapshot_path).map_err(io_err(snapshot_path))?;
    let mut r = FrameReader {
        input: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        offset: 0,
        path: snapshot_path,
    };
    let mut magic = [0u8; 8];
    r.exact(&mut magic)?;
    if magic == MAGIC_V1 {
        return Err(r.bad(
            "a snapshot of format 1, made before stores kept application parameters: export it again with this version",
        ));
    }
    if magic != MAGIC {
        return Err(r.bad(format!(
            "not a snapshot file (magic {})",
            vc_chash::hex::encode(&magic)
        )));
    }
    r.hash.update(magic);

    let (meta, seeds, tip) = match r.next()?.0 {
        Frame::Header { meta, seeds, tip } => (meta, seeds, tip),
        _ => return Err(r.bad("the first frame is not a header")),
    };
    // The namespace list is the snapshot's own id map, written into the new store below.
    let want = Meta {
        namespaces: meta.namespaces.clone(),
        ..config.meta()
    };
    if meta != want {
        return Err(r.bad(format!(
            "made for {}, not for {}",
            describe(&meta),
            describe(&want)
        )));
    }
    let want_seeds: Vec<(u64, Vec<u8>)> = config
        .normalized_seeds()
        .iter()
        .map(|(h, ch)| (*h, ch.as_bytes().to_vec()))
        .collect();
    if seeds != want_seeds {
        return Err(r.bad("its seed consensus hashes differ from the application's"));
    }
    if tip.is_none_or(|t| trusted.0 > t) || trusted.0 < config.first_block {
        return Err(r.bad(format!(
            "the trusted height {} is not among its blocks (tip {tip:?})",
            trusted.0
        )));
    }

    let store = Store::open(tmp, config.clone())?;
    let mut summary = SnapshotSummary {
        tip,
        blocks: 0,
        state_entries: 0,
        bytes: 0,
    };
    let mut trusted_seen = false;
    // v3: every block's claimed state root, checked against the imported tree at the end.
    let mut roots: Vec<(u64, Hash256)> = Vec::new();
    let mut w = store.writer()?;
    let policy = CommitPolicy::default();
    let mut frame = r.next()?;
    while let (Frame::Block { height, entry, ops }, _) = frame {
        let mut block = w
            .begin_block(BlockHeader {
                height,
                block_hash: Hash256(entry.block_hash),
                prev_hash: Hash256(entry.prev_hash),
            })
            .map_err(|e| r.bad(format!("block {height}: {e}")))?;
        for op in ops {
            block
                .add_op(op)
                .map_err(|e| r.bad(format!("block {height}: {e}")))?;
        }
        if config.scheme.commits_state() {
            match r.next()?.0 {
                Frame::StateRoot { height: h, root } if h == height => {
                    block.claim_state_root(Hash256(root));
                    roots.push((height, Hash256(root)));
                }
                _ => return Err(r.bad(format!("block {height} is not followed by its state root"))),
            }
        }
        let got = block.finish()?;
        if got.ops_hash.0 != entry.ops_hash
            || got.consensus_hash.as_bytes() != entry.consensus_hash.as_slice()
        {
            return Err(r.bad(format!(
                "block {height}: carries consensus hash {}, its records give {}",
                vc_chash::hex::encode(&entry.consensus_hash),
                got.consensus_hash
            )));
        }
        if height == trusted.0 {
            if got.consensus_hash != trusted.1 {
                return Err(r.bad(format!(
                    "block {height}: consensus hash {} differs from the trusted {}",
                    got.consensus_hash, trusted.1
                )));
            }
            trusted_seen = true;
        }
        summary.blocks += 1;
        w.commit_if_due(&policy, false)?;
        frame = r.next()?;
    }
    if w.tip().map(|t| t.0) != tip {
        return Err(r.bad(format!(
            "the header says the tip is {tip:?}, the blocks end at {:?}",
            w.tip().map(|t| t.0)
        )));
    }
    if !trusted_seen {
        return Err(r.bad(format!("no block at the trusted height {}", trusted.0)));
    }
    w.commit()?;
    drop(w);

    // Undo logs and state go in one transaction, replacing the writer's empty undo logs.
    let namespaces = meta.namespaces.len();
    let txn = store.db.begin_write().ctx("starting a write")?;
    {
        let mut meta_table = txn.open_table(META).ctx("opening the meta table")?;
        meta_table
            .insert(META_KEY, schema::encode(&meta)?.as_slice())
            .ctx("writing metadata")?;
        drop(meta_table);
        let mut undo = txn.open_table(UNDO).ctx("opening the undo table")?;
        undo.retain(|_, _| false).ctx("clearing undo logs")?;
        let mut state = txn.open_table(STATE).ctx("opening the state table")?;
        let mut segments_seen = false;
        let check_key = |r: &FrameReader<'_>, key: &[u8]| {
            let ns = key
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            if ns.is_none_or(|n| n >= namespaces) {
                return Err(r.bad(format!(
                    "state key {} is in no declared namespace",
                    vc_chash::hex::encode(key)
                )));
            }
            Ok(())
        };
        loop {
            match frame {
                (Frame::Undo { height, log }, _) => {
                    if tip.is_none_or(|t| height > t) {
                        return Err(r.bad(format!("undo log of block {height} above the tip")));
                    }
                    for e in &log.entries {
                        check_key(&r, &e.key)?;
                    }
                    undo.insert(height, schema::encode(&log)?.as_slice())
                        .ctx("writing an undo log")?;
                }
                (Frame::State(entries), _) => {
                    for (k, v) in entries {
                        check_key(&r, &k)?;
                        state
                            .insert(k.as_slice(), v.as_slice())
                            .ctx("writing state")?;
                        summary.state_entries += 1;
                    }
                }
                // Written by earlier builds, which kept every version of the tree: the import
                // builds the tree from the imported state instead.
                (Frame::Tree(_) | Frame::TreeValues(_), _) if config.scheme.commits_state() => {}
                (Frame::Segments(list), _) => {
                    if segments_seen {
                        return Err(r.bad("a second segments frame"));
                    }
                    segments_seen = true;
                    let chain = txn.open_table(CHAIN).ctx("opening the chain table")?;
                    let ch_at = |height: u64| -> Result<Option<Vec<u8>>, String> {
                        let Some(raw) = chain.get(height).map_err(|e| e.to_string())? else {
                            return Ok(None);
                        };
                        let entry: ChainEntry = schema::decode(raw.value(), || {
                            format!("chain entry at height {height}")
                        })
                        .map_err(|e| e.to_string())?;
                        Ok(Some(entry.consensus_hash))
                    };
                    let tip = tip.unwrap_or(0);
                    segments::check_chain(&list, config.first_block, tip, ch_at)
                        .map_err(|e| r.bad(format!("its segments: {e}")))?;
                    drop(chain);
                    segments::write_all(&txn, &list)?;
                }
                (Frame::End(digest), before) => {
                    if digest != before {
                        return Err(r.bad(format!(
                            "checksum mismatch: the file is corrupt (end frame at byte offset {})",
                            r.offset
                        )));
                    }
                    break;
                }
                _ => return Err(r.bad(format!("unexpected frame before byte offset {}", r.offset))),
            }
            frame = r.next()?;
        }
        let mut extra = [0u8; 1];
        if r.input.read(&mut extra).map_err(io_err(snapshot_path))? != 0 {
            return Err(r.bad(format!(
                "bytes after the end frame at byte offset {}",
                r.offset
            )));
        }
        drop(state);
        drop(undo);
        if config.scheme.commits_state() {
            check_imported_state(&txn, &meta.namespaces, &roots).map_err(|e| r.bad(e))?;
        }
    }
    txn.commit().ctx("committing the imported state")?;
    summary.bytes = r.offset;
    Ok(summary)
}

/// v3: builds the state tree from the imported state and checks it against the state roots
/// the (verified) blocks committed: the tree at the tip must have the tip's root, and each
/// imported undo log, applied backwards from the tip, must give the root of the block before
/// it (so that rollbacks and proofs at those heights are exact).
fn check_imported_state(
    txn: &redb::WriteTransaction,
    namespaces: &[String],
    roots: &[(u64, Hash256)],
) -> Result<(), String> {
    let Some((tip, root)) = roots.last() else {
        return Ok(());
    };
    let changes: Vec<_> = {
        let state = txn.open_table(STATE).map_err(|e| e.to_string())?;
        tree::state_leaves(&state, namespaces)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(path, value_hash)| vc_chash::state::Change {
                path,
                value_hash: Some(value_hash),
            })
            .collect()
    };
    let mut nodes = txn.open_table(tree::SMT).map_err(|e| e.to_string())?;
    let mut cache = tree::NodeCache::default();
    let built = tree::TreeWrite::new(&mut nodes, &mut cache)
        .apply(&changes, "building the imported tree")
        .and_then(|root| tree::write_dirty(&mut nodes, &mut cache).map(|()| root))
        .map_err(|e| e.to_string())?;
    if built != *root {
        return Err(format!(
            "the imported state's root is {built}, the tip {tip}'s consensus hash commits {root}"
        ));
    }
    let undo = txn.open_table(UNDO).map_err(|e| e.to_string())?;
    let mut tree = tree::read_newest(&nodes);
    let first = roots.first().map_or(*tip, |(h, _)| *h);
    for row in undo.range(..=*tip).map_err(|e| e.to_string())?.rev() {
        let (h, raw) = row.map_err(|e| e.to_string())?;
        let height = h.value();
        let log: UndoLog = schema::decode(raw.value(), || format!("undo log of block {height}"))
            .map_err(|e| e.to_string())?;
        let mut back = Vec::with_capacity(log.entries.len());
        for e in &log.entries {
            back.push(vc_chash::state::Change {
                path: tree::tree_path(namespaces, &e.key).map_err(|e| e.to_string())?,
                value_hash: e.previous.as_deref().map(vc_chash::state::value_hash),
            });
        }
        back.sort_unstable_by_key(|c| c.path);
        let found = vc_chash::state::update(&mut tree, &back)
            .map_err(|e| format!("the undo log of block {height}: {e}"))?;
        let Some(before) = height.checked_sub(1) else {
            continue;
        };
        let want = if before < first {
            vc_chash::state::EMPTY
        } else {
            match usize::try_from(before - first)
                .ok()
                .and_then(|i| roots.get(i))
            {
                Some((h, r)) if *h == before => *r,
                _ => return Err(format!("no state root for block {before}")),
            }
        };
        if found != want {
            return Err(format!(
                "the undo log of block {height} sets the state back to root {found}, block {before} committed {want}"
            ));
        }
    }
    Ok(())
}
