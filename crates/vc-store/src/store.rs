//! Opening a store, and consistent read views of it.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use redb::{Builder, ConcurrencyMode, Database, ReadTransaction, ReadableDatabase, ReadableTable};
use vc_chash::v2::mmr::{Mmr, peak_positions};
use vc_chash::{ConsensusHash, Hash256, Scheme, Seeds};
use vc_codec::storage::Stored;

use crate::error::{DbContext, MetaField, StoreError};
use crate::schema::{
    self, CHAIN, ChainEntry, LOCAL, META, META_KEY, MMR, Meta, OPS, SCHEMA_VERSION, SEEDS, STATE,
    StoredOp, UNDO,
};
use crate::state::{RawEntry, StateRead, id_of, raw_key, raw_range};
use crate::writer::Writer;

/// The default number of recent blocks whose undo logs are kept: all of them
/// ([`KEEP_ALL_UNDO`]), so that a fork of any depth is reverted with one undo log per block,
/// in time proportional to its depth, never by re-indexing from the first block. A block's undo
/// log holds only the previous values of the keys it changed (a few bytes for a block without
/// operations), so the logs grow like the operations table; `docs/benchmarks.md` gives the
/// figures. The one definition: the engine uses it too.
pub const DEFAULT_UNDO_WINDOW: u64 = KEEP_ALL_UNDO;

/// An undo window that keeps every block's undo log (no pruning).
pub const KEEP_ALL_UNDO: u64 = u64::MAX;

/// What an application instance is; checked against the file on every open. Build one with
/// [`StoreConfig::new`] and the `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The application's name.
    pub app_name: String,
    /// The application's version.
    pub app_version: String,
    /// The consensus-hash scheme.
    pub scheme: Scheme,
    /// The application's first block.
    pub first_block: u64,
    /// The Bitcoin network name (`bitcoin`, `testnet`, `testnet4`, `signet`, `regtest`).
    pub network: String,
    /// Seed consensus hashes (heights below the first block), as the application declares them.
    pub seeds: Vec<(u64, ConsensusHash)>,
    /// The application's parameters (see [`Meta::app_params`]): stored at creation, checked
    /// on every open. Empty by default.
    pub app_params: Vec<u8>,
    /// How many recent blocks keep undo logs (the deepest rollback possible; default: every
    /// block, [`KEEP_ALL_UNDO`]). Not stored: a node may change it between runs, and logs
    /// pruned under a smaller window stay pruned.
    pub undo_window: u64,
}

impl StoreConfig {
    /// A configuration with no namespaces, no seeds and the default undo window.
    pub fn new(
        app_name: impl Into<String>,
        app_version: impl Into<String>,
        scheme: Scheme,
        first_block: u64,
        network: impl Into<String>,
    ) -> Self {
        StoreConfig {
            app_name: app_name.into(),
            app_version: app_version.into(),
            scheme,
            first_block,
            network: network.into(),
            seeds: Vec::new(),
            app_params: Vec::new(),
            undo_window: DEFAULT_UNDO_WINDOW,
        }
    }

    /// Sets the seed consensus hashes.
    pub fn with_seeds(mut self, seeds: Vec<(u64, ConsensusHash)>) -> Self {
        self.seeds = seeds;
        self
    }

    /// Sets the application's parameters (see [`Meta::app_params`]).
    pub fn with_app_params(mut self, params: impl Into<Vec<u8>>) -> Self {
        self.app_params = params.into();
        self
    }

    /// Sets the undo window (at least 1).
    pub fn with_undo_window(mut self, blocks: u64) -> Self {
        self.undo_window = blocks.max(1);
        self
    }

    /// The seeds by height (a later entry for a height replaces an earlier one).
    pub(crate) fn normalized_seeds(&self) -> Vec<(u64, ConsensusHash)> {
        let map: std::collections::BTreeMap<u64, ConsensusHash> =
            self.seeds.iter().copied().collect();
        map.into_iter().collect()
    }

    pub(crate) fn meta(&self) -> Meta {
        Meta {
            schema_version: SCHEMA_VERSION,
            app_name: self.app_name.clone(),
            app_version: self.app_version.clone(),
            scheme: self.scheme.to_byte(),
            first_block: self.first_block,
            network: self.network.clone(),
            namespaces: Vec::new(),
            app_params: self.app_params.clone(),
        }
    }
}

/// The newest block of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its height.
    pub height: u64,
    /// Its Bitcoin block hash (internal byte order).
    pub block_hash: Hash256,
    /// Its consensus hash.
    pub consensus_hash: ConsensusHash,
}

/// An application instance's database: one redb file.
#[derive(Debug)]
pub struct Store {
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    pub(crate) config: StoreConfig,
}

impl Store {
    /// Opens the store at `path`, creating it if the file does not exist (or is empty).
    ///
    /// An existing file must have been created for the same application: schema version, app
    /// name and version, application parameters, scheme, first block, network and seeds must
    /// all match, or
    /// the open fails with [`StoreError::Mismatch`] and the file is not written.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let exists = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if !exists {
            let db = builder().create(&path).ctx("creating the database file")?;
            let store = Store { db, path, config };
            store.init()?;
            return Ok(store);
        }
        // Check the identity through a read-only open first, so that a mismatch leaves the file
        // byte for byte as it was. A file that needs crash recovery cannot be opened read-only;
        // it is checked after the read-write open's repair instead.
        match builder().open_read_only(&path) {
            Err(e) if is_foreign(&e) => {
                return Err(StoreError::NotAStore {
                    path: path.display().to_string(),
                });
            }
            Ok(ro) => {
                let txn = ro.begin_read().ctx("starting a read")?;
                check_meta(&txn, &path, &config)?;
            }
            Err(redb::DatabaseError::RepairAborted) | Err(redb::DatabaseError::Storage(_)) => {
                tracing::warn!(path = %path.display(), "store needs recovery (unclean shutdown)");
            }
            Err(e) => return Err(e).ctx("opening the database file"),
        }
        let db = builder().open(&path).ctx("opening the database file")?;
        let txn = db.begin_read().ctx("starting a read")?;
        check_meta(&txn, &path, &config)?;
        drop(txn);
        Ok(Store { db, path, config })
    }

    /// Opens (or creates, when the backend is empty) a store on a redb storage backend instead
    /// of a file: an application's own storage, or a test's backend that fails on purpose to
    /// check what a failed write leaves behind. `name` stands for the file in messages
    /// ([`Store::path`]). The identity is checked as in [`Store::open`].
    ///
    /// The store is opened in redb's exclusive mode (a backend need not support locks), so no
    /// [`ReadOnlyStore`](crate::ReadOnlyStore) can follow it.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        name: impl Into<PathBuf>,
        config: StoreConfig,
    ) -> Result<Store, StoreError> {
        let path = name.into();
        let fresh = backend.len().map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })? == 0;
        let db = Builder::new()
            .create_with_backend(backend)
            .ctx("opening the database")?;
        let store = Store { db, path, config };
        if fresh {
            store.init()?;
        } else {
            let txn = store.db.begin_read().ctx("starting a read")?;
            check_meta(&txn, &store.path, &store.config)?;
        }
        Ok(store)
    }

    /// Reads the identity of the store at `path` without opening it for writing (a tool that
    /// serves several applications uses it to pick the right one). Fails on a file that needs
    /// crash recovery; open it with [`Store::open`] first.
    pub fn read_meta(path: impl AsRef<Path>) -> Result<Meta, StoreError> {
        Ok(crate::ReadOnlyStore::open(path)?.meta().clone())
    }

    /// [`Store::read_meta`] for a tool about to open the file for writing (an indexer that
    /// resumes it): a file an unclean shutdown left (a killed writer, a power cut) is first
    /// repaired, as opening it for writing would repair it, back to its last commit. Without
    /// that, such a tool could not learn what the file was made for until it had opened it
    /// with the right configuration.
    pub fn recover_meta(path: impl AsRef<Path>) -> Result<Meta, StoreError> {
        let path = path.as_ref();
        match Store::read_meta(path) {
            Err(StoreError::NeedsRecovery { .. }) => {
                tracing::warn!(path = %path.display(), "repairing the store after an unclean shutdown");
                drop(builder().open(path).ctx("repairing the database file")?);
                Store::read_meta(path)
            }
            other => other,
        }
    }

    /// Writes metadata and seeds and creates every table.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().ctx("starting the initial write")?;
        {
            let mut meta = txn.open_table(META).ctx("creating the meta table")?;
            meta.insert(META_KEY, schema::encode(&self.config.meta())?.as_slice())
                .ctx("writing metadata")?;
            let mut seeds = txn.open_table(SEEDS).ctx("creating the seeds table")?;
            for (height, ch) in &self.config.normalized_seeds() {
                seeds.insert(*height, ch.as_bytes()).ctx("writing seeds")?;
            }
            txn.open_table(CHAIN).ctx("creating the chain table")?;
            txn.open_table(OPS).ctx("creating the ops table")?;
            txn.open_table(STATE).ctx("creating the state table")?;
            txn.open_table(UNDO).ctx("creating the undo table")?;
            txn.open_table(MMR).ctx("creating the mmr table")?;
            if self.config.scheme.commits_state() {
                txn.open_table(crate::tree::SMT)
                    .ctx("creating the state tree")?;
                txn.open_table(crate::tree::STATE_ROOTS)
                    .ctx("creating the state roots")?;
            }
        }
        txn.commit().ctx("committing the initial write")?;
        tracing::info!(path = %self.path.display(), app = %self.config.app_name, "created store");
        Ok(())
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// A consistent read view of the last commit. Writers may continue while it is held.
    pub fn view(&self) -> Result<View, StoreError> {
        Ok(View::new(
            self.db.begin_read().ctx("starting a read")?,
            &self.path,
            self.config.scheme,
            self.config.first_block,
        ))
    }

    /// The newest committed block.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.view()?.tip()
    }

    /// Starts writing. Only one writer exists at a time (a second call waits for the first to
    /// be dropped).
    pub fn writer(&self) -> Result<Writer<'_>, StoreError> {
        Writer::new(self)
    }

    /// A node-local setting (for example an engine's branch pins): data that belongs to this
    /// node, not to consensus, and is not exported in snapshots.
    pub fn local(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.view()?.local(key)
    }

    /// Sets a node-local setting (committed at once). Waits for an active writer to finish.
    pub fn set_local(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().ctx("starting a write")?;
        {
            let mut table = txn.open_table(LOCAL).ctx("opening the local settings")?;
            table.insert(key, value).ctx("writing a local setting")?;
        }
        txn.commit().ctx("committing a local setting")
    }

    /// Reverts state and bookkeeping to the end of block `height` and commits.
    /// Returns how many blocks were reverted.
    pub fn rollback_to(&self, height: u64) -> Result<u64, StoreError> {
        let mut w = self.writer()?;
        let n = w.rollback_to(height)?;
        w.commit()?;
        Ok(n)
    }
}

/// Checks the file's identity against `config`.
fn check_meta(txn: &ReadTransaction, path: &Path, config: &StoreConfig) -> Result<(), StoreError> {
    let mismatch = |field: MetaField, stored: String, expected: String| StoreError::Mismatch {
        path: path.display().to_string(),
        field,
        stored,
        expected,
    };
    let not_a_store = || StoreError::NotAStore {
        path: path.display().to_string(),
    };
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Err(not_a_store()),
        Err(e) => return Err(e).ctx("opening the meta table"),
    };
    let raw = table
        .get(META_KEY)
        .ctx("reading metadata")?
        .ok_or_else(not_a_store)?;
    let raw = raw.value();
    // The schema version is checked first and on its own, so that a future layout of `Meta`
    // still gets a clear message.
    if raw.first() != Some(&Meta::VERSION) && raw.first() != Some(&schema::META_V1) {
        return Err(mismatch(
            MetaField::EncodingVersion,
            format!("{:?}", raw.first()),
            Meta::VERSION.to_string(),
        ));
    }
    let stored: Meta = schema::decode(raw, || "store metadata".into())?;
    let want = config.meta();
    let checks: [(MetaField, String, String); 7] = [
        (
            MetaField::SchemaVersion,
            stored.schema_version.to_string(),
            want.schema_version.to_string(),
        ),
        (
            MetaField::AppName,
            stored.app_name.clone(),
            want.app_name.clone(),
        ),
        (
            MetaField::AppVersion,
            stored.app_version.clone(),
            want.app_version.clone(),
        ),
        (
            MetaField::Scheme,
            scheme_name(stored.scheme),
            scheme_name(want.scheme),
        ),
        (
            MetaField::FirstBlock,
            stored.first_block.to_string(),
            want.first_block.to_string(),
        ),
        (
            MetaField::Network,
            stored.network.clone(),
            want.network.clone(),
        ),
        (
            MetaField::AppParams,
            vc_chash::hex::encode(&stored.app_params),
            vc_chash::hex::encode(&want.app_params),
        ),
    ];
    for (field, stored, expected) in checks {
        if stored != expected {
            return Err(mismatch(field, stored, expected));
        }
    }
    let seeds = txn.open_table(SEEDS).ctx("opening the seeds table")?;
    let mut stored_seeds = Vec::new();
    for row in seeds.iter().ctx("reading seeds")? {
        let (h, ch) = row.ctx("reading seeds")?;
        stored_seeds.push(format!(
            "{}:{}",
            h.value(),
            vc_chash::hex::encode(ch.value())
        ));
    }
    let want_seeds: Vec<String> = config
        .normalized_seeds()
        .iter()
        .map(|(h, ch)| format!("{h}:{}", vc_chash::hex::encode(ch.as_bytes())))
        .collect();
    if stored_seeds != want_seeds {
        return Err(mismatch(
            MetaField::Seeds,
            stored_seeds.join(","),
            want_seeds.join(","),
        ));
    }
    if config.scheme.commits_state() {
        crate::tree::check_layout(txn, path)?;
    }
    Ok(())
}

fn scheme_name(b: u8) -> String {
    Scheme::from_byte(b).map_or_else(|| format!("unknown ({b})"), |s| s.name().to_owned())
}

/// A consistent, read-only view of a store as of one commit (a redb read transaction).
///
/// It implements [`vc_chash::History`], so proofs can be built straight from it.
pub struct View {
    pub(crate) txn: ReadTransaction,
    /// The file, for errors.
    pub(crate) path: std::sync::Arc<str>,
    pub(crate) scheme: Scheme,
    pub(crate) first_block: u64,
    /// The namespace names in id order, read from the metadata on first use.
    namespaces: OnceCell<Vec<String>>,
}

impl core::fmt::Debug for View {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("View")
            .field("path", &self.path)
            .field("scheme", &self.scheme)
            .field("first_block", &self.first_block)
            .finish_non_exhaustive()
    }
}

impl View {
    pub(crate) fn new(txn: ReadTransaction, path: &Path, scheme: Scheme, first_block: u64) -> View {
        View {
            txn,
            path: path.display().to_string().into(),
            scheme,
            first_block,
            namespaces: OnceCell::new(),
        }
    }

    /// Runs redb reads, turning a panic on damaged bytes into [`StoreError::Damaged`].
    pub(crate) fn guard<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        crate::guard::guard(&self.path, what, f)
    }

    /// The namespace names in id order.
    pub(crate) fn namespace_names(&self) -> Result<&[String], StoreError> {
        Ok(match self.namespaces.get() {
            Some(names) => names,
            None => {
                let names = read_namespaces(&self.txn)?;
                self.namespaces.get_or_init(|| names)
            }
        })
    }

    /// The id of namespace `name` in this view, `None` if nothing was ever written to it.
    fn namespace_id(&self, name: &str) -> Result<Option<u16>, StoreError> {
        Ok(id_of(self.namespace_names()?, name))
    }

    /// The newest block in this view.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.guard("reading the chain tip", || {
            let chain = self.txn.open_table(CHAIN).ctx("opening the chain table")?;
            let Some((h, raw)) = chain.last().ctx("reading the chain tip")? else {
                return Ok(None);
            };
            let height = h.value();
            let entry: ChainEntry =
                schema::decode(raw.value(), || format!("chain entry at height {height}"))?;
            Ok(Some(Tip {
                height,
                block_hash: Hash256(entry.block_hash),
                consensus_hash: self.consensus_hash_of(height, &entry)?,
            }))
        })
    }

    /// The consensus hash an entry of the chain index holds, checked against the store's scheme
    /// (`height` names the block in the error).
    pub fn consensus_hash_of(
        &self,
        height: u64,
        entry: &ChainEntry,
    ) -> Result<ConsensusHash, StoreError> {
        ConsensusHash::from_slice(self.scheme, &entry.consensus_hash).ok_or_else(|| {
            StoreError::Inconsistent(format!(
                "chain entry at height {height} has a {}-byte consensus hash",
                entry.consensus_hash.len()
            ))
        })
    }

    /// The chain-index entry of block `height`.
    pub fn chain_entry(&self, height: u64) -> Result<Option<ChainEntry>, StoreError> {
        self.guard("reading the chain index", || {
            let chain = self.txn.open_table(CHAIN).ctx("opening the chain table")?;
            schema::chain_entry(&chain, height)
        })
    }

    /// The accepted operations of block `height`, in block order.
    pub fn ops(&self, height: u64) -> Result<Vec<StoredOp>, StoreError> {
        self.guard("reading operations", || {
            let ops = self.txn.open_table(OPS).ctx("opening the ops table")?;
            let mut out = Vec::new();
            for row in ops
                .range((height, 0)..=(height, u32::MAX))
                .ctx("reading operations")?
            {
                let (k, v) = row.ctx("reading operations")?;
                let (h, vtx) = k.value();
                out.push(schema::decode(v.value(), || {
                    format!("operation at height {h}, vtxindex {vtx}")
                })?);
            }
            Ok(out)
        })
    }

    /// The chain-index entries of blocks `from..=to` that this view holds, in height order:
    /// one range read instead of a lookup per block.
    pub fn chain_range(&self, from: u64, to: u64) -> Result<Vec<(u64, ChainEntry)>, StoreError> {
        self.guard("reading the chain index", || {
            let chain = self.txn.open_table(CHAIN).ctx("opening the chain table")?;
            let mut out = Vec::new();
            if from > to {
                return Ok(out);
            }
            for row in chain.range(from..=to).ctx("reading the chain index")? {
                let (h, raw) = row.ctx("reading the chain index")?;
                let height = h.value();
                out.push((
                    height,
                    schema::decode(raw.value(), || format!("chain entry at height {height}"))?,
                ));
            }
            Ok(out)
        })
    }

    /// The accepted operations of blocks `from..=to`, each with its height, in chain and block
    /// order.
    pub fn ops_range(&self, from: u64, to: u64) -> Result<Vec<(u64, StoredOp)>, StoreError> {
        self.guard("reading operations", || {
            let ops = self.txn.open_table(OPS).ctx("opening the ops table")?;
            let mut out = Vec::new();
            if from > to {
                return Ok(out);
            }
            for row in ops
                .range((from, 0)..=(to, u32::MAX))
                .ctx("reading operations")?
            {
                let (k, v) = row.ctx("reading operations")?;
                let (h, vtx) = k.value();
                out.push((
                    h,
                    schema::decode(v.value(), || {
                        format!("operation at height {h}, vtxindex {vtx}")
                    })?,
                ));
            }
            Ok(out)
        })
    }

    /// The seed consensus hashes.
    pub fn seeds(&self) -> Result<Seeds, StoreError> {
        self.guard("reading seeds", || {
            let seeds = self.txn.open_table(SEEDS).ctx("opening the seeds table")?;
            let mut out = Seeds::new();
            for row in seeds.iter().ctx("reading seeds")? {
                let (h, ch) = row.ctx("reading seeds")?;
                let ch = ConsensusHash::from_slice(self.scheme, ch.value()).ok_or_else(|| {
                    StoreError::Inconsistent(format!(
                        "seed at height {} has the wrong length",
                        h.value()
                    ))
                })?;
                out.insert(h.value(), ch);
            }
            Ok(out)
        })
    }

    /// A node-local setting as of this view's commit (see [`Store::local`]).
    pub fn local(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.guard("reading a local setting", || {
            let table = match self.txn.open_table(LOCAL) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e).ctx("opening the local settings"),
            };
            Ok(table
                .get(key)
                .ctx("reading a local setting")?
                .map(|v| v.value().to_vec()))
        })
    }

    /// The heights whose undo logs are kept (the blocks a rollback can revert), oldest first.
    pub fn undo_heights(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.guard("reading undo logs", || {
            let undo = self.txn.open_table(UNDO).ctx("opening the undo table")?;
            let first = undo
                .first()
                .ctx("reading undo logs")?
                .map(|(k, _)| k.value());
            let last = undo
                .last()
                .ctx("reading undo logs")?
                .map(|(k, _)| k.value());
            Ok(first.zip(last))
        })
    }

    /// The v2 accumulator after block `height` (its peaks from the `mmr` table).
    pub fn mmr_after(&self, height: u64) -> Result<Mmr, StoreError> {
        self.guard("reading accumulator peaks", || {
            load_mmr(
                &self.txn.open_table(MMR).ctx("opening the mmr table")?,
                height
                    .checked_add(1)
                    .and_then(|n| n.checked_sub(self.first_block))
                    .unwrap_or(0),
            )
        })
    }
}

/// Reads the peaks of an accumulator with `leaves` leaves.
pub(crate) fn load_mmr(
    table: &impl ReadableTable<(u8, u64), [u8; 32]>,
    leaves: u64,
) -> Result<Mmr, StoreError> {
    mmr_prefix(table, &Mmr::new(), leaves)
}

/// The accumulator over the first `leaves` leaves of `current` (after a rollback): the peaks
/// the two share, the tall ones when few blocks were reverted, are taken from `current`; the
/// others are read from the table.
pub(crate) fn mmr_prefix(
    table: &impl ReadableTable<(u8, u64), [u8; 32]>,
    current: &Mmr,
    leaves: u64,
) -> Result<Mmr, StoreError> {
    let known: Vec<((u8, u64), Hash256)> = peak_positions(current.leaf_count())
        .zip(current.peaks().iter().copied())
        .collect();
    let mut peaks = Vec::new();
    for (level, index) in peak_positions(leaves) {
        if let Some((_, hash)) = known.iter().find(|(p, _)| *p == (level, index)) {
            peaks.push(*hash);
            continue;
        }
        let node = table
            .get((level, index))
            .ctx("reading accumulator peaks")?
            .ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "accumulator node ({level}, {index}) of {leaves} leaves is missing"
                ))
            })?;
        peaks.push(Hash256(node.value()));
    }
    Mmr::from_peaks(leaves, peaks)
        .ok_or_else(|| StoreError::Inconsistent(format!("wrong peak count for {leaves} leaves")))
}

/// How every handle on a store file is opened: one process writes, and any number of others
/// may open the file read-only and follow its commits (see [`ReadOnlyStore`]).
pub(crate) fn builder() -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    b
}

/// Whether opening failed because the file is not a redb database at all: redb reports a
/// magic-number mismatch as invalid data, before reading anything else. Such a file is
/// refused as [`StoreError::NotAStore`] and never opened for writing.
pub(crate) fn is_foreign(e: &redb::DatabaseError) -> bool {
    matches!(e, redb::DatabaseError::Storage(redb::StorageError::Io(io))
        if io.kind() == std::io::ErrorKind::InvalidData)
}

impl StateRead for View {
    fn get_raw(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.guard("reading state", || {
            let Some(id) = self.namespace_id(ns)? else {
                return Ok(None);
            };
            let state = self.txn.open_table(STATE).ctx("opening the state table")?;
            Ok(state
                .get(raw_key(id, key).as_slice())
                .ctx("reading state")?
                .map(|v| v.value().to_vec()))
        })
    }

    fn range_raw(
        &self,
        ns: &str,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<Vec<RawEntry>, StoreError> {
        self.guard("scanning state", || {
            let Some(id) = self.namespace_id(ns)? else {
                return Ok(Vec::new());
            };
            let state = self.txn.open_table(STATE).ctx("opening the state table")?;
            let (lo, hi) = raw_range(id, start, end);
            let mut out = Vec::new();
            schema::scan_state(&state, &lo, hi.as_deref(), |k, v| {
                out.push((k.get(2..).unwrap_or_default().to_vec(), v.to_vec()));
                Ok(())
            })?;
            Ok(out)
        })
    }
}

/// The namespace names in id order, as the metadata in `table`'s transaction lists them.
pub(crate) fn read_namespaces_from(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<String>, StoreError> {
    let raw = meta
        .get(META_KEY)
        .ctx("reading metadata")?
        .ok_or_else(|| StoreError::Inconsistent("metadata is missing".into()))?;
    let meta: Meta = schema::decode(raw.value(), || "store metadata".into())?;
    Ok(meta.namespaces)
}

fn read_namespaces(txn: &ReadTransaction) -> Result<Vec<String>, StoreError> {
    read_namespaces_from(&txn.open_table(META).ctx("opening the meta table")?)
}
