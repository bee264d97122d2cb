//! The v3 state tree on redb: the newest tree in place, older ones rebuilt from the undo logs.
//!
//! The tree's shape and hashing are vc-chash's ([`vc_chash::state`]), and so are its pages
//! ([`vc_chash::state::page`]); this module only stores them, one page to an entry. A *page* at
//! depth `g` (a multiple of 8) and position `prefix` holds the 255 nodes of depths `g` to
//! `g + 7` under that position; a block that changes any of them rewrites the page once, in
//! place:
//!
//! | table | key | value |
//! |---|---|---|
//! | `state_tree` | `g` `u16` ‖ the first `g` bits of the position (`g/8` bytes) | [`Page::encode`]: a 32-byte bitmap of the non-empty slots, then each such node in slot order: `0x01` ‖ hash, or `0x02` ‖ path ‖ value hash |
//! | `state_roots` | height `u64` | the state root after that block |
//!
//! Slot `2^r − 1 + i` holds the node at depth `g + r` whose bits `g .. g + r` of its position
//! read `i`. Only the newest tree is stored: a block writes O(k log n / 8) pages for `k`
//! changed keys, over the pages it replaces, so the table holds one tree whatever the chain's
//! length. A node left below a leaf that moved up is never read again (a read stops at the
//! leaf), and the next subtree built there writes every node under it.
//!
//! Why eight levels: a block's cost is mostly redb's per entry written (a B-tree descent and a
//! copied page each), not hashing. Among a million keys (leaves near depth 21), a block of
//! 1,000 changes writes about 1,350 pages of eight levels (the 257 full pages of depths 0 and
//! 8, about 1,000 of depth 16 and a hundred deeper) where pages of four levels took about
//! 3,000 entries. The writer keeps the pages it has read in a [`NodeCache`], changed in place,
//! and writes the pages its blocks changed when it commits, once per write transaction: during
//! catch-up, where a transaction holds many blocks, a page that several of them change (the 257
//! upper pages, every block) is written once.
//!
//! A block of many changes updates the tree on a second thread while the writer writes its
//! state, undo log and operations ([`detached`]): that thread cannot read the write
//! transaction, so it reads the pages missing from the cache from the last commit, which holds
//! them as they are unless the transaction has written pages itself
//! ([`NodeCache::committed_pages`]).
//!
//! The tree is canonical (a key set has one tree, whatever the order it was built in), so the
//! tree after an earlier block `m` is the newest one with the keys changed since `m` set back
//! to their values then, which the undo logs of the blocks after `m` hold. [`TreeRead::as_of`]
//! applies those changes to a copy of the pages they touch, in memory: O(k log n) for the `k`
//! keys changed since `m`, and a rollback applies them to the table itself. So an older
//! version costs no disk beyond the undo logs the store keeps anyway, and is available exactly
//! as far back as they reach (the undo window).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use redb::{ReadableTable, Table, TableDefinition};
use vc_chash::Hash256;
use vc_chash::state::page::{LEVELS, Page, PagePath, PageStore};
use vc_chash::state::{self, Change, EMPTY, MAX_DEPTH, Node, NodeSource};

use crate::error::{DbContext, StoreError};
use crate::schema::{self, UndoLog};

pub(crate) const SMT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_tree");
pub(crate) const STATE_ROOTS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("state_roots");
/// The tables of earlier layouts, which kept every version: a file that has one was written by
/// an earlier build and is refused (its `smt_tree` would read as an empty tree).
const EARLIER_LAYOUTS: [(&str, &str); 3] = [
    ("smt", "one node to an entry, every version kept"),
    ("smt_pages", "in pages of four levels, every version kept"),
    ("smt_tree", "in pages of four levels"),
];

/// Refuses a v3 file written with an earlier layout of the tree.
pub(crate) fn check_layout(
    txn: &redb::ReadTransaction,
    path: &std::path::Path,
) -> Result<(), StoreError> {
    for table in txn.list_tables().ctx("listing the tables")? {
        let name = redb::TableHandle::name(&table);
        if let Some((_, layout)) = EARLIER_LAYOUTS.iter().find(|(n, _)| *n == name) {
            return Err(StoreError::Mismatch {
                path: path.display().to_string(),
                field: crate::MetaField::SchemaVersion,
                stored: format!("1 with the v3 state tree {layout} (an earlier build: reindex)"),
                expected: "1 with the v3 state tree in pages of eight levels, in place".into(),
            });
        }
    }
    Ok(())
}

/// Pages at a depth below this are always kept by the writer's cache: the 257 pages of depths
/// 0 and 8 (about 2 MB once a state has tens of thousands of keys), which nearly every block's
/// paths cross.
const CACHED_BELOW: u16 = 2 * LEVELS;

/// Page positions to values, hashed with [`PositionHasher`].
type ByPosition<V> = HashMap<(u16, Hash256), V, BuildHasherDefault<PositionHasher>>;

/// A set of page positions, hashed as [`ByPosition`] keys are.
type PositionSet = HashSet<(u16, Hash256), BuildHasherDefault<PositionHasher>>;

/// A cheap hasher for page positions, in place of std's SipHash (which took about 40% of the
/// tree's own instructions): a position is a depth and a prefix of SHA-256 key paths, whose
/// bits are already uniform, so a multiply-and-rotate over its bytes spreads them. Positions
/// are keys of the writer's caches only, never of anything stored or hashed for consensus.
#[derive(Default)]
struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(26) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }

    fn write_usize(&mut self, n: usize) {
        self.write(&n.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0 ^ self.0 >> 29
    }
}

/// The key of the page at `(top, prefix)`.
pub(crate) fn page_key(top: u16, prefix: &Hash256) -> Vec<u8> {
    let bytes = usize::from(top).div_ceil(8);
    let mut key = Vec::with_capacity(2 + bytes);
    key.extend_from_slice(&top.to_be_bytes());
    key.extend_from_slice(&prefix.0[..bytes]);
    key
}

/// The newest page at `(top, prefix)` (all empty where none is stored).
fn page_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    top: u16,
    prefix: &Hash256,
) -> Result<Page, StoreError> {
    match table
        .get(page_key(top, prefix).as_slice())
        .ctx("reading the state tree")?
    {
        Some(v) => Page::decode(v.value()).ok_or_else(|| {
            StoreError::Inconsistent(format!(
                "malformed state tree page at depth {top}, position {}",
                vc_chash::hex::encode(&prefix.0)
            ))
        }),
        None => Ok(Page::default()),
    }
}

/// The tree path of a full state key (namespace id and key bytes).
pub(crate) fn tree_path(namespaces: &[String], raw: &[u8]) -> Result<Hash256, StoreError> {
    let id = raw
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let name = id.and_then(|i| namespaces.get(i)).ok_or_else(|| {
        StoreError::Inconsistent(format!(
            "state key {} is in no known namespace",
            vc_chash::hex::encode(raw)
        ))
    })?;
    Ok(state::key_path(
        name.as_bytes(),
        raw.get(2..).unwrap_or_default(),
    ))
}

/// Every entry of the state table as a tree leaf, `(path, value hash)`, in path order: what
/// the tree over that state holds.
pub(crate) fn state_leaves(
    state: &impl ReadableTable<&'static [u8], &'static [u8]>,
    namespaces: &[String],
) -> Result<Vec<(Hash256, Hash256)>, StoreError> {
    let mut leaves = Vec::new();
    for row in state.iter().ctx("reading state")? {
        let (k, v) = row.ctx("reading state")?;
        leaves.push((
            tree_path(namespaces, k.value())?,
            state::value_hash(v.value()),
        ));
    }
    leaves.sort_unstable();
    Ok(leaves)
}

/// The keys changed after some block, by tree path: each key's full store key and its value
/// then (`None`: absent). Built by [`changed_since`].
pub(crate) type Earlier = BTreeMap<Hash256, (Vec<u8>, Option<Vec<u8>>)>;

/// The keys blocks `height + 1 ..= tip` changed, with their values after block `height`:
/// the oldest of those blocks' undo logs that names a key holds its value then. Fails with
/// [`StoreError::StateTooOld`] when an undo log it needs was pruned, and with
/// [`StoreError::StateTooCostly`] when those logs hold more than `limit` changes.
pub(crate) fn changed_since(
    undo: &impl ReadableTable<u64, &'static [u8]>,
    namespaces: &[String],
    height: u64,
    tip: u64,
    limit: u64,
) -> Result<Earlier, StoreError> {
    let mut earlier = Earlier::new();
    let mut read = 0u64;
    if height >= tip {
        return Ok(earlier);
    }
    let mut next = tip;
    for row in undo.range(height + 1..=tip).ctx("reading undo logs")?.rev() {
        let (h, raw) = row.ctx("reading undo logs")?;
        let h = h.value();
        if h != next {
            break;
        }
        let log: UndoLog = schema::decode(raw.value(), || format!("undo log of block {h}"))?;
        read = read.saturating_add(log.entries.len() as u64);
        if read > limit {
            return Err(StoreError::StateTooCostly { height, limit });
        }
        for entry in log.entries {
            earlier.insert(
                tree_path(namespaces, &entry.key)?,
                (entry.key, entry.previous),
            );
        }
        next = h - 1;
    }
    if next != height {
        let oldest = undo
            .first()
            .ctx("reading undo logs")?
            .map_or(tip, |(k, _)| k.value().saturating_sub(1));
        return Err(StoreError::StateTooOld { height, oldest });
    }
    Ok(earlier)
}

/// `earlier`'s values as tree changes, in path order.
fn changes(earlier: &Earlier) -> Vec<Change> {
    earlier
        .iter()
        .map(|(path, (_, value))| Change {
            path: *path,
            value_hash: value.as_deref().map(state::value_hash),
        })
        .collect()
}

/// A tree update's failure as a store error.
fn tree_error(what: &str, e: state::TreeError<StoreError>) -> StoreError {
    match e {
        state::TreeError::Store(e) => e,
        other => StoreError::Inconsistent(format!("state tree, {what}: {other}")),
    }
}

/// A tree for reading: the newest, or an earlier one as the pages its changes touch, held in
/// memory over the newest ([`ReadPages`]). The [`PagePath`] keeps the pages on the path of the
/// last node read, one per page depth: a proof reads down one path, and a walk (depth first)
/// comes back to each page after each subtree below it.
pub(crate) type TreeRead<'t, T> = PagePath<ReadPages<'t, T>>;

/// The newest tree.
pub(crate) fn read_newest<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
) -> TreeRead<'_, T> {
    PagePath::new(ReadPages {
        table,
        changed: ByPosition::default(),
        taken_changed: Vec::new(),
    })
}

/// The tree after an earlier block: the newest with `earlier` (see [`changed_since`]) set
/// back, in memory.
pub(crate) fn read_as_of<'t, T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &'t T,
    earlier: &Earlier,
) -> Result<TreeRead<'t, T>, StoreError> {
    let mut tree = read_newest(table);
    if !earlier.is_empty() {
        state::update(&mut tree, &changes(earlier))
            .map_err(|e| tree_error("setting back later changes", e))?;
    }
    Ok(tree)
}

/// A tree's pages for reading, as a [`PageStore`]: the newest from the table, except the
/// pages an update changed, which stay in memory and are never written to the table.
pub(crate) struct ReadPages<'t, T> {
    table: &'t T,
    /// The pages where this tree differs from the newest.
    changed: ByPosition<Page>,
    /// The positions of the pages taken out of `changed` and not yet given back.
    taken_changed: Vec<(u16, Hash256)>,
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> PageStore for ReadPages<'_, T> {
    type Error = StoreError;

    fn take(&mut self, top: u16, position: &Hash256) -> Result<Page, StoreError> {
        match self.changed.remove(&(top, *position)) {
            Some(page) => {
                self.taken_changed.push((top, *position));
                Ok(page)
            }
            None => page_at(self.table, top, position),
        }
    }

    fn give_back(&mut self, top: u16, position: Hash256, page: Page, changed: bool) {
        let was_changed = match self
            .taken_changed
            .iter()
            .position(|p| *p == (top, position))
        {
            Some(i) => {
                self.taken_changed.swap_remove(i);
                true
            }
            None => false,
        };
        if changed || was_changed {
            self.changed.insert((top, position), page);
        }
    }
}

/// The newest tree's pages by position, kept by the writer across blocks so that the pages a
/// block reaches are not read back from the table each time (a read from redb costs several
/// microseconds). Only valid for the writer's own newest version: cleared whenever the writer
/// goes back or discards a transaction, since a [`TreeWrite`] changes these pages in place.
///
/// The pages a block changes stay here, *dirty*, until [`write_dirty`] writes them into the
/// same write transaction: the writer does so before it commits (and before a rollback), so a
/// page that several blocks of one transaction change is written once. Until then the table
/// lags the cache; nothing reads the table inside the writer's transaction meanwhile. A page
/// absent from the cache is therefore the same in the write transaction and in the last commit,
/// unless the transaction wrote pages (early, or before a rollback) and the cache dropped some
/// since: the cache notes when it wrote, and a [`detached`] update reads the last commit only
/// when it did not.
///
/// Pages at depth below [`CACHED_BELOW`] (which nearly every block crosses) are always kept;
/// deeper ones up to a bound, past which about half of the clean ones are dropped (a dirty page
/// is kept until it is written). A transaction whose blocks leave more dirty pages than that
/// bound has them written at once, so the bound holds whatever the transaction's length.
pub(crate) struct NodeCache {
    pages: ByPosition<Page>,
    /// The pages changed since they were last written to the table (put in key order when
    /// written: a set kept in order cost a block of 1,000 changes about 1,300 ordered inserts).
    dirty: PositionSet,
    /// Whether the open write transaction has written pages (early, or before a rollback):
    /// the cache may have dropped some of them since, so a page missing from it can differ
    /// from the last commit's. See [`NodeCache::committed_pages`].
    wrote_in_txn: bool,
    /// How many pages deeper than [`CACHED_BELOW`] to keep at most.
    limit: usize,
    root: Option<Hash256>,
}

impl Default for NodeCache {
    fn default() -> Self {
        NodeCache::with_limit(DEFAULT_CACHED_PAGES)
    }
}

/// Deeper pages the writer keeps by default: 2^18. A tree of a million keys has about 150,000
/// pages, so all of them stay (about 200 MB); a block of 1,000 random changes then took 32 ms
/// against 37 ms with 2^14 pages (`million_keys`), since a page read from redb costs a B-tree
/// descent where a cached one costs a few cache misses.
pub(crate) const DEFAULT_CACHED_PAGES: usize = 1 << 18;

impl NodeCache {
    /// A cache keeping at most `limit` pages deeper than [`CACHED_BELOW`].
    pub(crate) fn with_limit(limit: usize) -> Self {
        NodeCache {
            pages: ByPosition::default(),
            dirty: PositionSet::default(),
            wrote_in_txn: false,
            limit,
            root: None,
        }
    }

    /// Forgets every page, the dirty ones too, within the open transaction (whose table may
    /// hold pages it wrote): for a rollback, or after a failure, before the transaction is
    /// discarded.
    pub(crate) fn clear(&mut self) {
        self.pages.clear();
        self.dirty.clear();
        self.root = None;
    }

    /// Takes every page out, for a rollback to go through, and leaves an empty cache with the
    /// same bound, which still knows whether the open transaction wrote pages (a rollback that
    /// fails without discarding the transaction does not put the pages back).
    pub(crate) fn take(&mut self) -> NodeCache {
        let empty = NodeCache {
            wrote_in_txn: self.wrote_in_txn,
            ..NodeCache::with_limit(self.limit)
        };
        std::mem::replace(self, empty)
    }

    /// Forgets every page, for a writer whose transaction was discarded: the table is the last
    /// commit's again.
    pub(crate) fn discard(&mut self) {
        self.clear();
        self.wrote_in_txn = false;
    }

    /// Notes that the write transaction committed: the last commit's table now holds every
    /// page this cache has, as the cache has it.
    pub(crate) fn committed(&mut self) {
        self.wrote_in_txn = false;
    }

    /// The last commit's tree table, from which a [`detached`] update may read the pages
    /// missing from this cache: `None` when the open transaction has written pages (a page
    /// the cache has dropped since may differ from the commit's) or when no commit has the
    /// table yet. Only the writer's own transaction writes the table, and a page it changes
    /// stays in the cache until written; so otherwise every page absent from the cache is, in
    /// the write transaction, as the last commit left it.
    pub(crate) fn committed_pages(
        &self,
        db: &redb::Database,
    ) -> Result<Option<CommittedPages>, StoreError> {
        if self.wrote_in_txn {
            return Ok(None);
        }
        let read =
            redb::ReadableDatabase::begin_read(db).ctx("starting a read of the state tree")?;
        match read.open_table(SMT) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e).ctx("opening the committed state tree"),
        }
    }

    /// Whether some page changed since it was last written to the table.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The newest state root, when this writer has computed it: a block that changes no
    /// state commits it again without reading the tree.
    pub(crate) fn root(&self) -> Option<Hash256> {
        self.root
    }

    /// Drops about half of the clean deeper pages when there are more than the limit (which
    /// ones does not matter: a dropped page is read again when needed). Dirty pages stay.
    fn trim(&mut self) {
        if self.pages.len() <= self.limit.saturating_add(UPPER_PAGES) {
            return;
        }
        let mut keep = false;
        let dirty = &self.dirty;
        self.pages.retain(|position, _| {
            keep = !keep;
            position.0 < CACHED_BELOW || keep || dirty.contains(position)
        });
    }
}

/// The most pages there are at depth below [`CACHED_BELOW`]: 1 + 256.
const UPPER_PAGES: usize = 257;

/// The newest tree being changed in a write transaction (a block, or a rollback), in the
/// writer's cache: [`TreeWrite::apply`] runs the update through a [`PagePath`] over the cache
/// and marks the pages it changed dirty, for [`write_dirty`] to write once.
pub(crate) struct TreeWrite<'a, 't> {
    table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    cache: &'a mut NodeCache,
}

/// The writer's cache over the table, as a [`PageStore`]: a page missing from the cache is
/// read from the table; a page given back stays in the cache, and a changed one is noted.
struct CachedPages<'r, 'c, T> {
    table: &'r T,
    cache: &'c mut NodeCache,
    changed: Vec<(u16, Hash256)>,
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> PageStore for CachedPages<'_, '_, T> {
    type Error = StoreError;

    /// A cached page is moved out and leaves an empty one in its entry until it comes back:
    /// cheaper than removing the entry and inserting it again.
    fn take(&mut self, top: u16, position: &Hash256) -> Result<Page, StoreError> {
        match self.cache.pages.get_mut(&(top, *position)) {
            Some(page) => Ok(std::mem::take(page)),
            None => page_at(self.table, top, position),
        }
    }

    fn give_back(&mut self, top: u16, position: Hash256, page: Page, changed: bool) {
        if changed {
            self.changed.push((top, position));
        }
        // Replaces the empty page `take` left, without removing the entry.
        self.cache.pages.insert((top, position), page);
    }
}

impl<'a, 't> TreeWrite<'a, 't> {
    pub(crate) fn new(
        table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
        cache: &'a mut NodeCache,
    ) -> Self {
        TreeWrite { table, cache }
    }

    /// Applies `changes` (sorted by path, each path once) in the cache, marks every page it
    /// changed dirty, and returns the new root. The table is written by [`write_dirty`]. On
    /// failure the cache is cleared, dirty pages included, since its pages may be half
    /// changed: the caller must then discard the transaction.
    pub(crate) fn apply(self, changes: &[Change], what: &str) -> Result<Hash256, StoreError> {
        let TreeWrite { table, cache } = self;
        let root = apply_cached(&*table, cache, changes, what)?;
        TreeWrite { table, cache }.settle()?;
        Ok(root)
    }

    /// Keeps the cache within its bound after an update: a long transaction over a large state
    /// could otherwise keep more dirty pages than the bound, so past it they are written now,
    /// in the same transaction; then clean pages are dropped as needed.
    pub(crate) fn settle(self) -> Result<(), StoreError> {
        let TreeWrite { table, cache } = self;
        if cache.dirty.len() > cache.limit {
            write_dirty(table, cache)?;
        }
        cache.trim();
        Ok(())
    }
}

/// The last commit's tree table, read by a [`detached`] update.
pub(crate) type CommittedPages = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Runs an update in the writer's cache, reading missing pages from `table`; marks the pages
/// it changed dirty. On failure the cache is cleared.
fn apply_cached<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    cache: &mut NodeCache,
    changes: &[Change],
    what: &str,
) -> Result<Hash256, StoreError> {
    let mut paged = PagePath::new(CachedPages {
        table,
        cache,
        changed: Vec::new(),
    });
    let updated = state::update(&mut paged, changes).map_err(|e| tree_error(what, e));
    let CachedPages { cache, changed, .. } = paged.finish();
    match updated {
        Ok(root) => {
            cache.dirty.extend(changed);
            cache.root = Some(root);
            Ok(root)
        }
        Err(e) => {
            cache.clear();
            Err(e)
        }
    }
}

/// [`TreeWrite::apply`] away from the write transaction, so that it can run on another thread
/// while the block's other writes go on: pages missing from the cache are read from
/// `committed` (see [`NodeCache::committed_pages`]). The caller must then
/// [`settle`](TreeWrite::settle) the cache in the write transaction. On failure the cache is
/// cleared.
pub(crate) fn detached(
    committed: &CommittedPages,
    cache: &mut NodeCache,
    changes: &[Change],
    what: &str,
) -> Result<Hash256, StoreError> {
    apply_cached(committed, cache, changes, what)
}

/// Writes every dirty page of `cache` into `table` once, in key order (an emptied page is
/// removed), so that the table holds the cache's tree. On failure the cache is cleared, since
/// the table then holds part of the pages: the caller must discard the transaction.
pub(crate) fn write_dirty(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    cache: &mut NodeCache,
) -> Result<(), StoreError> {
    let mut dirty: Vec<(u16, Hash256)> = std::mem::take(&mut cache.dirty).into_iter().collect();
    // Key order (a page's key is its depth, then its prefix's bytes): redb inserts in order.
    dirty.sort_unstable();
    cache.wrote_in_txn |= !dirty.is_empty();
    let written = dirty.iter().try_for_each(|position| {
        let page = cache.pages.get(position).ok_or_else(|| {
            StoreError::Inconsistent(format!(
                "the state tree page at depth {} changed and left the writer's cache",
                position.0
            ))
        })?;
        write_page(table, position, page)
    });
    if written.is_err() {
        cache.clear();
    }
    written
}

/// Writes `page` at `position`, straight into redb's buffer, or removes the entry when the
/// page is empty.
fn write_page(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    (top, prefix): &(u16, Hash256),
    page: &Page,
) -> Result<(), StoreError> {
    let key = page_key(*top, prefix);
    if page.is_empty() {
        table.remove(key.as_slice()).ctx("writing the state tree")?;
    } else {
        let mut value = table
            .insert_reserve(key.as_slice(), page.encoded_len())
            .ctx("writing the state tree")?;
        page.encode_into(value.as_mut());
    }
    Ok(())
}

/// Sets the keys `earlier` names back to their values there (a rollback, in the write
/// transaction) and returns the root then. The pages it changes are left dirty in `cache`.
pub(crate) fn set_back(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    cache: &mut NodeCache,
    earlier: &Earlier,
) -> Result<Hash256, StoreError> {
    TreeWrite::new(table, cache).apply(&changes(earlier), "rolling back")
}

/// The state root after block `height`, as the `state_roots` table holds it.
pub(crate) fn root_at(
    roots: &impl ReadableTable<u64, [u8; 32]>,
    height: u64,
) -> Result<Option<Hash256>, StoreError> {
    Ok(roots
        .get(height)
        .ctx("reading a state root")?
        .map(|r| Hash256(r.value())))
}

/// What [`walk`] found: the root recomputed from the leaves, every leaf's `(path, value
/// hash)` in path order, and the first inner node (depth first) whose stored hash differs from
/// its children's: `(stored, recomputed)`.
pub(crate) struct Walked {
    pub(crate) root: Hash256,
    pub(crate) leaves: Vec<(Hash256, Hash256)>,
    pub(crate) bad_node: Option<(Hash256, Hash256)>,
}

/// Walks the whole tree, recomputing every inner node's hash from its children. Fails on a
/// shape no tree has (a leaf off its position, an inner node below the deepest level).
pub(crate) fn walk<T: ReadableTable<&'static [u8], &'static [u8]>>(
    tree: &TreeRead<'_, T>,
) -> Result<Walked, StoreError> {
    let mut walked = Walked {
        root: EMPTY,
        leaves: Vec::new(),
        bad_node: None,
    };
    walked.root = walk_at(tree, 0, &EMPTY, &mut walked)?;
    Ok(walked)
}

fn walk_at<T: ReadableTable<&'static [u8], &'static [u8]>>(
    tree: &TreeRead<'_, T>,
    depth: u16,
    prefix: &Hash256,
    walked: &mut Walked,
) -> Result<Hash256, StoreError> {
    match tree.node(depth, prefix)? {
        Node::Empty => Ok(EMPTY),
        Node::Leaf { path, value_hash } => {
            if state::prefix(&path, depth) != *prefix {
                return Err(StoreError::Inconsistent(format!(
                    "state tree leaf {path} sits at depth {depth} off its path"
                )));
            }
            walked.leaves.push((path, value_hash));
            Ok(state::leaf_hash(&path, &value_hash))
        }
        Node::Inner(stored) => {
            if depth >= MAX_DEPTH {
                return Err(StoreError::Inconsistent(format!(
                    "state tree inner node at depth {depth}"
                )));
            }
            let mut right = *prefix;
            let i = usize::from(depth);
            right.0[i / 8] |= 0x80 >> (i % 8);
            let l = walk_at(tree, depth + 1, prefix, walked)?;
            let r = walk_at(tree, depth + 1, &right, walked)?;
            let computed = state::node_hash(&l, &r);
            if computed != stored && walked.bad_node.is_none() {
                walked.bad_node = Some((stored, computed));
            }
            Ok(computed)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The writer keeps changed pages dirty until it commits; a cache bounded to 8 deeper
    /// pages must write them within the transaction once there are more, and the table must
    /// then hold the whole tree, the same as one built from scratch.
    #[test]
    fn a_cache_past_its_bound_writes_its_dirty_pages_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("tree.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let mut table = txn.open_table(SMT).unwrap();
        let mut cache = NodeCache::with_limit(8);
        let mut leaves = Vec::new();
        let mut root = EMPTY;
        let mut wrote_early = false;
        for block in 0..20u8 {
            let mut changes: Vec<Change> = (0..50u8)
                .map(|i| {
                    let path = state::key_path(b"names", &[block, i]);
                    let value_hash = state::value_hash(&[i]);
                    leaves.push((path, value_hash));
                    Change {
                        path,
                        value_hash: Some(value_hash),
                    }
                })
                .collect();
            changes.sort_unstable_by_key(|c| c.path);
            let before = redb::ReadableTableMetadata::len(&table).unwrap();
            root = TreeWrite::new(&mut table, &mut cache)
                .apply(&changes, "a test block")
                .unwrap();
            assert!(
                cache.dirty.len() <= 8,
                "block {block}: {}",
                cache.dirty.len()
            );
            wrote_early |= redb::ReadableTableMetadata::len(&table).unwrap() != before;
        }
        assert!(wrote_early, "no page was written before the end");
        write_dirty(&mut table, &mut cache).unwrap();
        assert!(!cache.has_dirty());
        let walked = walk(&read_newest(&table)).unwrap();
        assert!(walked.bad_node.is_none());
        assert_eq!(walked.root, root);
        assert_eq!(root, state::root_of(&mut leaves));
    }
}
