//! The v3 state tree on redb: the newest tree in place, older ones rebuilt from the undo logs.
//!
//! The tree's shape and hashing are vc-chash's ([`vc_chash::state`]); this module only stores
//! its nodes, eight levels to an entry. A *page* at depth `g` (a multiple of 8) and position
//! `prefix` holds the 255 nodes of depths `g` to `g + 7` under that position; a block that
//! changes any of them rewrites the page once, in place:
//!
//! | table | key | value |
//! |---|---|---|
//! | `state_tree` | `g` `u16` ‖ the first `g` bits of the position (`g/8` bytes) | [`Page`]: a 32-byte bitmap of the non-empty slots, then each such node in slot order: `0x01` ‖ hash, or `0x02` ‖ path ‖ value hash |
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
//! 3,000 entries. The writer keeps the pages it has read in a [`NodeCache`], changed in place.
//!
//! The tree is canonical (a key set has one tree, whatever the order it was built in), so the
//! tree after an earlier block `m` is the newest one with the keys changed since `m` set back
//! to their values then, which the undo logs of the blocks after `m` hold. [`TreeRead::as_of`]
//! applies those changes to a copy of the pages they touch, in memory: O(k log n) for the `k`
//! keys changed since `m`, and a rollback applies them to the table itself. So an older
//! version costs no disk beyond the undo logs the store keeps anyway, and is available exactly
//! as far back as they reach (the undo window).

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use redb::{ReadableTable, Table, TableDefinition};
use vc_chash::Hash256;
use vc_chash::state::{self, Change, EMPTY, MAX_DEPTH, Node, NodeSource, NodeStore};

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

/// Levels of the tree in one page.
const LEVELS: u16 = 8;
/// Nodes in one page: 1 + 2 + ... + 128.
const SLOTS: usize = 255;
/// Bytes of a page's bitmap of non-empty slots.
const BITMAP: usize = 32;

/// Pages at a depth below this are always kept by the writer's cache: the 257 pages of depths
/// 0 and 8 (about 2 MB once a state has tens of thousands of keys), which nearly every block's
/// paths cross.
const CACHED_BELOW: u16 = 2 * LEVELS;

/// Page positions to values, hashed with [`PositionHasher`].
type ByPosition<V> = HashMap<(u16, Hash256), V, BuildHasherDefault<PositionHasher>>;

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

/// The non-empty nodes of one page: which of its [`SLOTS`] slots they fill (a bit each), and
/// the nodes in slot order. A page near the root is full (255 nodes); one near the leaves
/// holds a subtree of a few keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Page {
    filled: [u64; 4],
    nodes: Vec<Node>,
}

impl Page {
    fn is_filled(&self, slot: usize) -> bool {
        self.filled
            .get(slot / 64)
            .is_some_and(|w| w >> (slot % 64) & 1 == 1)
    }

    /// Where the node of `slot` is (or would go) in `nodes`: the filled slots before it.
    fn rank(&self, slot: usize) -> usize {
        let (word, bit) = (slot / 64, slot % 64);
        let below: u32 = self.filled.iter().take(word).map(|w| w.count_ones()).sum();
        let partial = self
            .filled
            .get(word)
            .map_or(0, |w| (w & ((1u64 << bit) - 1)).count_ones());
        (below + partial) as usize
    }

    fn get(&self, slot: usize) -> Node {
        if !self.is_filled(slot) {
            return Node::Empty;
        }
        self.nodes
            .get(self.rank(slot))
            .copied()
            .unwrap_or(Node::Empty)
    }

    /// Sets the node of `slot`, and says whether that changed the page.
    fn set(&mut self, slot: usize, node: &Node) -> bool {
        if slot >= SLOTS {
            return false;
        }
        let at = self.rank(slot);
        let mask = 1u64 << (slot % 64);
        match (self.is_filled(slot), *node != Node::Empty) {
            (true, true) => match self.nodes.get_mut(at) {
                Some(n) if n != node => {
                    *n = *node;
                    true
                }
                _ => false,
            },
            (true, false) => {
                self.nodes.remove(at);
                self.filled[slot / 64] &= !mask;
                true
            }
            (false, true) => {
                self.nodes.insert(at, *node);
                self.filled[slot / 64] |= mask;
                true
            }
            (false, false) => false,
        }
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The length of [`Page::encode`]'s output.
    fn encoded_len(&self) -> usize {
        BITMAP
            + self
                .nodes
                .iter()
                .map(|n| match n {
                    Node::Inner(_) => 33,
                    Node::Leaf { .. } => 65,
                    Node::Empty => 0,
                })
                .sum::<usize>()
    }

    /// The stored form: the 32-byte bitmap (slot `s` is bit `0x80 >> s % 8` of byte `s / 8`),
    /// then each node in slot order.
    #[cfg(test)]
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; self.encoded_len()];
        self.encode_into(&mut out);
        out
    }

    /// Writes [`Page::encode`]'s output into `out`, which is [`Page::encoded_len`] long.
    fn encode_into(&self, out: &mut [u8]) {
        let (bitmap, mut rest) = out.split_at_mut(BITMAP.min(out.len()));
        for (i, byte) in bitmap.iter_mut().enumerate() {
            let word = self.filled.get(i / 8).copied().unwrap_or(0) >> (i % 8 * 8);
            // Slot `8i + j` is bit `j` of the word's byte, and bit `7 - j` of the stored byte.
            *byte = (word as u8).reverse_bits();
        }
        for node in &self.nodes {
            let parts: [&[u8]; 3] = match node {
                Node::Inner(h) => [&[1], &h.0, &[]],
                Node::Leaf { path, value_hash } => [&[2], &path.0, &value_hash.0],
                Node::Empty => [&[], &[], &[]],
            };
            for part in parts {
                let Some((dst, after)) = rest.split_at_mut_checked(part.len()) else {
                    return;
                };
                dst.copy_from_slice(part);
                rest = after;
            }
        }
    }

    fn decode(bytes: &[u8], at: impl FnOnce() -> String) -> Result<Page, StoreError> {
        Page::parse(bytes)
            .ok_or_else(|| StoreError::Inconsistent(format!("malformed state tree page {}", at())))
    }

    fn parse(bytes: &[u8]) -> Option<Page> {
        let (bitmap, mut rest) = bytes.split_first_chunk::<BITMAP>()?;
        let mut page = Page::default();
        for (i, byte) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let slot = i * 8 + bit;
                    page.filled[slot / 64] |= 1 << (slot % 64);
                }
            }
        }
        if page.is_filled(SLOTS) {
            return None;
        }
        let hash = |b: &[u8]| <[u8; 32]>::try_from(b).ok().map(Hash256);
        let count: u32 = page.filled.iter().map(|w| w.count_ones()).sum();
        page.nodes.reserve(count as usize);
        for _ in 0..count {
            let (tag, after) = rest.split_first()?;
            let node = match tag {
                1 => {
                    let (h, after) = after.split_at_checked(32)?;
                    rest = after;
                    Node::Inner(hash(h)?)
                }
                2 => {
                    let (p, after) = after.split_at_checked(32)?;
                    let (v, after) = after.split_at_checked(32)?;
                    rest = after;
                    Node::Leaf {
                        path: hash(p)?,
                        value_hash: hash(v)?,
                    }
                }
                _ => return None,
            };
            page.nodes.push(node);
        }
        rest.is_empty().then_some(page)
    }
}

/// Where the node at `(depth, prefix)` is stored: its page's depth and position, and its slot.
fn locate(depth: u16, prefix: &Hash256) -> (u16, Hash256, usize) {
    let (top, slot) = page_slot(depth, prefix);
    (top, state::prefix(prefix, top), slot)
}

/// The depth of the page holding the node at `(depth, prefix)`, and the node's slot there.
/// A page's depth is a multiple of 8, so its position is the prefix's first `top / 8` bytes
/// and the slot comes from the next byte's first `depth - top` bits.
fn page_slot(depth: u16, prefix: &Hash256) -> (u16, usize) {
    const _: () = assert!(LEVELS == 8);
    let depth = depth.min(MAX_DEPTH);
    let top = depth - depth % LEVELS;
    let below = depth - top;
    let index = match below {
        0 => 0,
        _ => prefix
            .0
            .get(usize::from(top / 8))
            .map_or(0, |b| usize::from(b >> (8 - below))),
    };
    (top, (1usize << below) - 1 + index)
}

/// Whether the page at `(top, position)` holds nodes under `prefix`.
fn page_holds(top: u16, position: &Hash256, prefix: &Hash256) -> bool {
    let bytes = usize::from(top / 8);
    position.0.get(..bytes) == prefix.0.get(..bytes)
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
        Some(v) => Page::decode(v.value(), || {
            format!(
                "at depth {top}, position {}",
                vc_chash::hex::encode(&prefix.0)
            )
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
/// memory over the newest. It keeps the pages on the path of the last node it read, one per
/// page depth: a proof reads down one path, and a walk (depth first) comes back to each page
/// after each subtree below it.
pub(crate) struct TreeRead<'t, T> {
    table: &'t T,
    path: RefCell<Vec<(u16, Hash256, Page)>>,
    /// The pages where the earlier tree differs from the newest.
    changed: ByPosition<Page>,
}

impl<'t, T: ReadableTable<&'static [u8], &'static [u8]>> TreeRead<'t, T> {
    /// The newest tree.
    pub(crate) fn newest(table: &'t T) -> Self {
        TreeRead {
            table,
            path: RefCell::new(Vec::new()),
            changed: ByPosition::default(),
        }
    }

    /// The tree after an earlier block: the newest with `earlier` (see [`changed_since`])
    /// set back.
    pub(crate) fn as_of(table: &'t T, earlier: &Earlier) -> Result<Self, StoreError> {
        let mut tree = TreeRead::newest(table);
        if !earlier.is_empty() {
            state::update(&mut tree, &changes(earlier))
                .map_err(|e| tree_error("setting back later changes", e))?;
        }
        Ok(tree)
    }
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> NodeSource for TreeRead<'_, T> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        let (top, at, slot) = locate(depth, prefix);
        if let Some(page) = self.changed.get(&(top, at)) {
            return Ok(page.get(slot));
        }
        let mut path = self.path.borrow_mut();
        // The kept pages are in depth order, one per depth.
        let level = path.partition_point(|(t, _, _)| *t < top);
        if let Some((t, p, page)) = path.get(level)
            && *t == top
            && *p == at
        {
            return Ok(page.get(slot));
        }
        let page = page_at(self.table, top, &at)?;
        let node = page.get(slot);
        path.truncate(level);
        path.push((top, at, page));
        Ok(node)
    }
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> NodeStore for TreeRead<'_, T> {
    /// Writes go to the in-memory pages, never to the table.
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), StoreError> {
        let (top, at, slot) = locate(depth, prefix);
        let page = match self.changed.entry((top, at)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(page_at(self.table, top, &at)?),
        };
        page.set(slot, node);
        Ok(())
    }
}

/// The newest tree's pages by position, kept by the writer across blocks so that the pages a
/// block reaches are not read back from the table each time (a read from redb costs several
/// microseconds). Only valid for the writer's own newest version: cleared whenever the writer
/// goes back or discards a transaction, since a [`TreeWrite`] changes these pages in place.
///
/// Pages at depth below [`CACHED_BELOW`] (which nearly every block crosses) are always kept;
/// deeper ones up to a bound, past which about half of them are dropped.
pub(crate) struct NodeCache {
    pages: ByPosition<Page>,
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
            limit,
            root: None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.pages.clear();
        self.root = None;
    }

    /// The newest state root, when this writer has computed it: a block that changes no
    /// state commits it again without reading the tree.
    pub(crate) fn root(&self) -> Option<Hash256> {
        self.root
    }

    /// Drops about half of the deeper pages when there are more than the limit (which ones
    /// does not matter: a dropped page is read again when needed).
    fn trim(&mut self) {
        if self.pages.len() <= self.limit.saturating_add(UPPER_PAGES) {
            return;
        }
        let mut keep = false;
        self.pages.retain(|(top, _), _| {
            keep = !keep;
            *top < CACHED_BELOW || keep
        });
    }
}

/// The most pages there are at depth below [`CACHED_BELOW`]: 1 + 256.
const UPPER_PAGES: usize = 257;

/// The newest tree being changed in a write transaction (a block, or a rollback), in the
/// writer's cache: [`TreeWrite::apply`] then writes each page it changed once.
///
/// An update walks the tree depth first, so the pages it reads are those on one path from the
/// root: they are held out of the cache, one per page depth, and a node read or written there
/// costs no hash-map lookup. A page goes back to the cache when the walk leaves it.
pub(crate) struct TreeWrite<'a, 't> {
    table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    cache: RefCell<&'a mut NodeCache>,
    /// The pages on the current path, in depth order: position, page, and whether this write
    /// changed it.
    path: RefCell<Vec<PathPage>>,
    /// The pages this write changed.
    changed: RefCell<Vec<(u16, Hash256)>>,
}

/// A page on a [`TreeWrite`]'s current path.
struct PathPage {
    position: (u16, Hash256),
    page: Page,
    changed: bool,
}

impl<'a, 't> TreeWrite<'a, 't> {
    pub(crate) fn new(
        table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
        cache: &'a mut NodeCache,
    ) -> Self {
        TreeWrite {
            table,
            cache: RefCell::new(cache),
            path: RefCell::default(),
            changed: RefCell::default(),
        }
    }

    /// The index in `path` of the page at `(top, prefix)`, after making it the deepest page
    /// there: the pages at its depth and below go back to the cache, and it comes out of the
    /// cache, or from the table the first time.
    fn enter(
        &self,
        path: &mut Vec<PathPage>,
        top: u16,
        prefix: &Hash256,
    ) -> Result<usize, StoreError> {
        let level = path.partition_point(|p| p.position.0 < top);
        if let Some(p) = path.get(level)
            && p.position.0 == top
            && page_holds(top, &p.position.1, prefix)
        {
            return Ok(level);
        }
        self.leave(path, level);
        let at = state::prefix(prefix, top);
        let cached = self.cache.borrow_mut().pages.remove(&(top, at));
        let page = match cached {
            Some(page) => page,
            None => page_at(&*self.table, top, &at)?,
        };
        path.push(PathPage {
            position: (top, at),
            page,
            changed: false,
        });
        Ok(level)
    }

    /// Returns the pages of `path` from `level` down to the cache.
    fn leave(&self, path: &mut Vec<PathPage>, level: usize) {
        if level >= path.len() {
            return;
        }
        let mut changed = self.changed.borrow_mut();
        let mut cache = self.cache.borrow_mut();
        for p in path.drain(level..) {
            if p.changed {
                changed.push(p.position);
            }
            cache.pages.insert(p.position, p.page);
        }
    }

    /// Applies `changes` (sorted by path, each path once), writes every changed page once, in
    /// key order (an emptied page is removed), and returns the new root. On failure the
    /// writer's cache is cleared, since its pages may be half changed.
    pub(crate) fn apply(mut self, changes: &[Change], what: &str) -> Result<Hash256, StoreError> {
        let written = state::update(&mut self, changes)
            .map_err(|e| tree_error(what, e))
            .and_then(|root| self.write_changed().map(|()| root));
        let cache = self.cache.into_inner();
        match written {
            Ok(root) => {
                cache.root = Some(root);
                cache.trim();
                Ok(root)
            }
            Err(e) => {
                cache.clear();
                Err(e)
            }
        }
    }

    /// Writes every page this write changed, in key order.
    fn write_changed(&mut self) -> Result<(), StoreError> {
        let mut path = std::mem::take(self.path.get_mut());
        self.leave(&mut path, 0);
        let mut changed = std::mem::take(self.changed.get_mut());
        changed.sort_unstable();
        changed.dedup();
        let cache = self.cache.get_mut();
        for position in &changed {
            if let Some(page) = cache.pages.get(position) {
                write_page(self.table, position, page)?;
            }
        }
        Ok(())
    }
}

/// Writes `page` at `position`, or removes the entry when the page is empty.
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

impl NodeSource for TreeWrite<'_, '_> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        let (top, slot) = page_slot(depth, prefix);
        let mut path = self.path.borrow_mut();
        let level = self.enter(&mut path, top, prefix)?;
        Ok(path.get(level).map_or(Node::Empty, |p| p.page.get(slot)))
    }
}

impl NodeStore for TreeWrite<'_, '_> {
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), StoreError> {
        let (top, slot) = page_slot(depth, prefix);
        let mut path = std::mem::take(self.path.get_mut());
        let entered = self.enter(&mut path, top, prefix);
        if let Ok(level) = entered
            && let Some(p) = path.get_mut(level)
        {
            p.changed |= p.page.set(slot, node);
        }
        *self.path.get_mut() = path;
        entered.map(|_| ())
    }
}

/// Sets the keys `earlier` names back to their values there (a rollback, in the write
/// transaction) and returns the root then.
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

    fn h(b: u8) -> Hash256 {
        Hash256([b; 32])
    }

    #[test]
    fn every_node_of_a_page_has_its_own_slot() {
        let path = h(0b1011_0110);
        for top in [0u16, 8, 16, 248] {
            let mut slots = std::collections::BTreeSet::new();
            for depth in top..top + LEVELS {
                // Every position at this depth under the page's position.
                for i in 0..1u32 << (depth - top) {
                    let mut p = state::prefix(&path, top);
                    for b in 0..depth - top {
                        if i >> (depth - top - 1 - b) & 1 == 1 {
                            let d = usize::from(top + b);
                            p.0[d / 8] |= 0x80 >> (d % 8);
                        }
                    }
                    let (t, at, slot) = locate(depth, &p);
                    assert_eq!((t, at), (top, state::prefix(&path, top)));
                    assert!(slot < SLOTS);
                    assert!(slots.insert(slot), "slot {slot} twice");
                }
            }
            assert_eq!(slots.len(), SLOTS);
        }
        // The deepest position has a page of its own.
        assert_eq!(locate(MAX_DEPTH, &path), (MAX_DEPTH, path, 0));
    }

    #[test]
    fn pages_round_trip_and_malformed_ones_are_refused() {
        let mut page = Page::default();
        assert_eq!(Page::parse(&page.encode()), Some(page.clone()));
        page.set(0, &Node::Inner(h(1)));
        page.set(
            9,
            &Node::Leaf {
                path: h(2),
                value_hash: h(3),
            },
        );
        page.set(254, &Node::Inner(h(4)));
        let bytes = page.encode();
        assert_eq!(bytes.len(), BITMAP + 33 + 65 + 33);
        assert_eq!(Page::parse(&bytes), Some(page.clone()));
        assert_eq!(
            page.get(9),
            Node::Leaf {
                path: h(2),
                value_hash: h(3)
            }
        );
        assert_eq!(page.get(10), Node::Empty);
        page.set(254, &Node::Empty);
        assert_eq!(page.get(254), Node::Empty);
        assert_eq!(Page::parse(&page.encode()), Some(page.clone()));
        page.set(0, &Node::Empty);
        page.set(9, &Node::Empty);
        assert!(page.is_empty());
        assert_eq!(page, Page::default());
        // Truncated, trailing bytes, a bit beyond the 255 slots, an unknown tag, a short bitmap.
        assert_eq!(Page::parse(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Page::parse(&[bytes.as_slice(), &[0]].concat()), None);
        let mut beyond = [0u8; BITMAP];
        beyond[BITMAP - 1] = 1;
        assert_eq!(Page::parse(&beyond), None);
        let mut unknown = vec![0x80];
        unknown.extend_from_slice(&[0; BITMAP - 1]);
        unknown.push(3);
        assert_eq!(Page::parse(&unknown), None);
        assert_eq!(Page::parse(&[0x00; BITMAP - 1]), None);
    }

    #[test]
    fn a_page_agrees_with_an_array_of_its_slots() {
        let mut page = Page::default();
        let mut model = [Node::Empty; SLOTS];
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        for round in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (x % SLOTS as u64) as usize;
            let node = match x >> 60 {
                0..=5 => Node::Empty,
                6..=10 => Node::Inner(h(x as u8)),
                _ => Node::Leaf {
                    path: h(x as u8),
                    value_hash: h((x >> 8) as u8),
                },
            };
            assert_eq!(page.set(slot, &node), model[slot] != node, "slot {slot}");
            model[slot] = node;
            if round % 1_000 == 0 {
                let parsed = Page::parse(&page.encode()).unwrap();
                assert_eq!(parsed, page);
            }
            for (s, want) in model.iter().enumerate() {
                assert_eq!(page.get(s), *want, "slot {s} after round {round}");
            }
        }
        assert_eq!(page.get(SLOTS), Node::Empty);
    }
}
