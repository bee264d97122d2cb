//! The v3 state tree on redb: the newest tree in place, older ones rebuilt from the undo logs.
//!
//! The tree's shape and hashing are vc-chash's ([`vc_chash::state`]); this module only stores
//! its nodes, four levels to an entry. A *page* at depth `g` (a multiple of 4) and position
//! `prefix` holds the 15 nodes of depths `g` to `g + 3` under that position; a block that
//! changes any of them rewrites the page once, in place:
//!
//! | table | key | value |
//! |---|---|---|
//! | `smt_tree` | `g` `u16` ‖ the first `g` bits of the position (`⌈g/8⌉` bytes) | [`Page`]: a `u16` bitmap of the non-empty slots, then each such node: `0x01` ‖ hash, or `0x02` ‖ path ‖ value hash |
//! | `state_roots` | height `u64` | the state root after that block |
//!
//! Slot `2^r − 1 + i` holds the node at depth `g + r` whose bits `g .. g + r` of its position
//! read `i`. Only the newest tree is stored: a block writes O(k log n / 4) pages for `k`
//! changed keys, over the pages it replaces, so the table holds one tree whatever the chain's
//! length. A node left below a leaf that moved up is never read again (a read stops at the
//! leaf), and the next subtree built there writes every node under it.
//!
//! The tree is canonical (a key set has one tree, whatever the order it was built in), so the
//! tree after an earlier block `m` is the newest one with the keys changed since `m` set back
//! to their values then, which the undo logs of the blocks after `m` hold. [`TreeRead::as_of`]
//! applies those changes to a copy of the pages they touch, in memory: O(k log n) for the `k`
//! keys changed since `m`, and a rollback applies them to the table itself. So an older
//! version costs no disk beyond the undo logs the store keeps anyway, and is available exactly
//! as far back as they reach (the undo window).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use redb::{ReadableTable, Table, TableDefinition};
use vc_chash::Hash256;
use vc_chash::state::{self, Change, EMPTY, MAX_DEPTH, Node, NodeSource, NodeStore};

use crate::error::{DbContext, StoreError};
use crate::schema::{self, UndoLog};

pub(crate) const SMT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_tree");
pub(crate) const STATE_ROOTS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("state_roots");
/// The tables of earlier layouts, which kept every version: a file that has one was written by
/// an earlier build and is refused (its `smt_tree` would read as an empty tree).
const EARLIER_LAYOUTS: [(&str, &str); 2] = [
    ("smt", "one node to an entry, every version kept"),
    ("smt_pages", "in pages of four levels, every version kept"),
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
                expected: "1 with the v3 state tree in place, older versions from the undo logs"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Levels of the tree in one page.
const LEVELS: u16 = 4;
/// Nodes in one page: 1 + 2 + 4 + 8.
const SLOTS: usize = 15;

/// The largest number of pages the writer's cache of the newest tree keeps before it drops
/// all but the top three levels of pages (a few hundred bytes each).
const CACHE_LIMIT: usize = 1 << 16;

/// Pages of depth at most this stay in the writer's cache when it is trimmed: 273 pages,
/// which every block's paths cross.
const CACHE_KEEP_DEPTH: u16 = 8;

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

/// The 15 nodes of one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Page([Option<Node>; SLOTS]);

impl Page {
    fn get(&self, slot: usize) -> Node {
        self.0.get(slot).copied().flatten().unwrap_or(Node::Empty)
    }

    fn set(&mut self, slot: usize, node: &Node) {
        if let Some(s) = self.0.get_mut(slot) {
            *s = (*node != Node::Empty).then_some(*node);
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut bitmap = 0u16;
        let mut body = Vec::with_capacity(2 + 4 * 65);
        body.extend_from_slice(&[0, 0]);
        for (slot, node) in self.0.iter().enumerate() {
            match node {
                Some(Node::Inner(h)) => {
                    bitmap |= 1 << slot;
                    body.push(1);
                    body.extend_from_slice(&h.0);
                }
                Some(Node::Leaf { path, value_hash }) => {
                    bitmap |= 1 << slot;
                    body.push(2);
                    body.extend_from_slice(&path.0);
                    body.extend_from_slice(&value_hash.0);
                }
                Some(Node::Empty) | None => {}
            }
        }
        body[..2].copy_from_slice(&bitmap.to_be_bytes());
        body
    }

    fn decode(bytes: &[u8], at: impl FnOnce() -> String) -> Result<Page, StoreError> {
        Page::parse(bytes)
            .ok_or_else(|| StoreError::Inconsistent(format!("malformed state tree page {}", at())))
    }

    fn parse(bytes: &[u8]) -> Option<Page> {
        let (bitmap, mut rest) = bytes.split_first_chunk::<2>()?;
        let bitmap = u16::from_be_bytes(*bitmap);
        if bitmap >> SLOTS != 0 {
            return None;
        }
        let hash = |b: &[u8]| <[u8; 32]>::try_from(b).ok().map(Hash256);
        let mut page = Page::default();
        for slot in 0..SLOTS {
            if bitmap & (1 << slot) == 0 {
                continue;
            }
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
            page.0[slot] = Some(node);
        }
        rest.is_empty().then_some(page)
    }
}

/// Where the node at `(depth, prefix)` is stored: its page's depth and position, and its slot.
fn locate(depth: u16, prefix: &Hash256) -> (u16, Hash256, usize) {
    let depth = depth.min(MAX_DEPTH);
    let top = depth - depth % LEVELS;
    let mut index = 0usize;
    for d in top..depth {
        index = index << 1 | usize::from(state::bit(prefix, d));
    }
    let slot = (1usize << (depth - top)) - 1 + index;
    (top, state::prefix(prefix, top), slot)
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
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(page_at(self.table, top, &at)?)
            }
        };
        page.set(slot, node);
        Ok(())
    }
}

/// The newest tree's pages by position, kept by the writer across blocks so that the upper
/// levels, which every block touches, are not read back from the table each time. Only valid
/// for the writer's own newest version; cleared whenever the writer goes back.
#[derive(Default)]
pub(crate) struct NodeCache(ByPosition<Page>, Option<Hash256>);

impl NodeCache {
    pub(crate) fn clear(&mut self) {
        self.0.clear();
        self.1 = None;
    }

    /// The newest state root, when this writer has computed it: a block that changes no
    /// state commits it again without reading the tree.
    pub(crate) fn root(&self) -> Option<Hash256> {
        self.1
    }

    pub(crate) fn set_root(&mut self, root: Hash256) {
        self.1 = Some(root);
    }

    fn keep(&mut self, top: u16, prefix: Hash256, page: Page) {
        if self.0.len() >= CACHE_LIMIT {
            self.0.retain(|(t, _), _| *t <= CACHE_KEEP_DEPTH);
        }
        self.0.insert((top, prefix), page);
    }
}

/// The newest tree being changed in a write transaction (a block, or a rollback). The pages it
/// changes are held until [`TreeWrite::flush`] writes each once.
pub(crate) struct TreeWrite<'a, 't> {
    table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    cache: RefCell<&'a mut NodeCache>,
    dirty: ByPosition<Page>,
}

impl<'a, 't> TreeWrite<'a, 't> {
    pub(crate) fn new(
        table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
        cache: &'a mut NodeCache,
    ) -> Self {
        TreeWrite {
            table,
            cache: RefCell::new(cache),
            dirty: ByPosition::default(),
        }
    }

    /// `f` of the newest version of the page at `(top, prefix)`: from the cache, else read
    /// from the table into it.
    fn with_newest<R>(
        &self,
        top: u16,
        prefix: &Hash256,
        f: impl FnOnce(&Page) -> R,
    ) -> Result<R, StoreError> {
        if let Some(page) = self.cache.borrow().0.get(&(top, *prefix)) {
            return Ok(f(page));
        }
        let page = page_at(&*self.table, top, prefix)?;
        let out = f(&page);
        self.cache.borrow_mut().keep(top, *prefix, page);
        Ok(out)
    }

    /// Applies `changes` (sorted by path, each path once), writes every changed page once, in
    /// key order (an emptied page is removed), and returns the new root.
    pub(crate) fn apply(mut self, changes: &[Change], what: &str) -> Result<Hash256, StoreError> {
        let root = state::update(&mut self, changes).map_err(|e| tree_error(what, e))?;
        let cache = self.cache.into_inner();
        let mut dirty: Vec<_> = self.dirty.into_iter().collect();
        dirty.sort_unstable_by_key(|(position, _)| *position);
        for ((top, prefix), page) in dirty {
            let key = page_key(top, &prefix);
            if page == Page::default() {
                self.table
                    .remove(key.as_slice())
                    .ctx("writing the state tree")?;
            } else {
                self.table
                    .insert(key.as_slice(), page.encode().as_slice())
                    .ctx("writing the state tree")?;
            }
            cache.keep(top, prefix, page);
        }
        cache.set_root(root);
        Ok(root)
    }
}

impl NodeSource for TreeWrite<'_, '_> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        let (top, at, slot) = locate(depth, prefix);
        if let Some(page) = self.dirty.get(&(top, at)) {
            return Ok(page.get(slot));
        }
        self.with_newest(top, &at, |page| page.get(slot))
    }
}

impl NodeStore for TreeWrite<'_, '_> {
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), StoreError> {
        let (top, at, slot) = locate(depth, prefix);
        if !self.dirty.contains_key(&(top, at)) {
            let page = self.with_newest(top, &at, Page::clone)?;
            self.dirty.insert((top, at), page);
        }
        if let Some(page) = self.dirty.get_mut(&(top, at)) {
            page.set(slot, node);
        }
        Ok(())
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
        for top in [0u16, 4, 8, 252] {
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
        page.set(14, &Node::Inner(h(4)));
        let bytes = page.encode();
        assert_eq!(bytes.len(), 2 + 33 + 65 + 33);
        assert_eq!(Page::parse(&bytes), Some(page.clone()));
        page.set(14, &Node::Empty);
        assert_eq!(page.get(14), Node::Empty);
        assert_eq!(Page::parse(&page.encode()), Some(page));
        // Truncated, trailing bytes, a bit beyond the 15 slots, an unknown tag.
        assert_eq!(Page::parse(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Page::parse(&[bytes.as_slice(), &[0]].concat()), None);
        assert_eq!(Page::parse(&[0x80, 0x00]), None);
        assert_eq!(Page::parse(&[0x00, 0x01, 3]), None);
        assert_eq!(Page::parse(&[0x00]), None);
    }
}
