//! The v3 state tree on redb: every version kept, so that state proofs can be served at any
//! height.
//!
//! The tree's shape and hashing are vc-chash's ([`vc_chash::state`]); this module only stores
//! its nodes, four levels to an entry. A *page* at depth `g` (a multiple of 4) and position
//! `prefix` holds the 15 nodes of depths `g` to `g + 3` under that position; a block that
//! changes any of them writes the whole page once, with the block's height, and a read at
//! height `h` takes the page's newest version at or below `h`:
//!
//! | table | key | value |
//! |---|---|---|
//! | `smt_pages` | `g` `u16` ‖ the first `g` bits of the position (`⌈g/8⌉` bytes) ‖ `!height` `u64` | [`Page`]: a `u16` bitmap of the non-empty slots, then each such node: `0x01` ‖ hash, or `0x02` ‖ path ‖ value hash |
//! | `smt_values` | path (32 bytes) ‖ `!height` `u64` | the key's value set at that height |
//!
//! Slot `2^r − 1 + i` holds the node at depth `g + r` whose bits `g .. g + r` of its position
//! read `i`. Heights are stored complemented (`!h`, big-endian) so that a page's newest
//! version sorts first: a read is one range seek. A block writes O(k log n / 4) pages for `k`
//! changed keys, only on the paths of those keys (and beside them), so a rollback finds every
//! page a block wrote from the keys its undo log names and removes them.

use std::cell::RefCell;
use std::collections::HashMap;

use redb::{ReadableTable, Table, TableDefinition};
use vc_chash::Hash256;
use vc_chash::state::{self, EMPTY, MAX_DEPTH, Node, NodeSource, NodeStore};

use crate::error::{DbContext, StoreError};

pub(crate) const SMT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_pages");
pub(crate) const SMT_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_values");
/// The table of the first v3 layout, one node to an entry: a file that has it was written by
/// an earlier build and is refused (its pages table would read as an empty tree).
const SMT_NODES_V0: &str = "smt";

/// Refuses a v3 file written with the first layout of the tree (one node to an entry).
pub(crate) fn check_layout(
    txn: &redb::ReadTransaction,
    path: &std::path::Path,
) -> Result<(), StoreError> {
    let old = txn
        .list_tables()
        .ctx("listing the tables")?
        .any(|t| redb::TableHandle::name(&t) == SMT_NODES_V0);
    if old {
        return Err(StoreError::Mismatch {
            path: path.display().to_string(),
            field: crate::MetaField::SchemaVersion,
            stored: "1 with the v3 state tree one node to an entry (an earlier build: reindex)"
                .into(),
            expected: "1 with the v3 state tree in pages of four levels".into(),
        });
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

/// The key of the page at `(top, prefix)` written at `height`.
pub(crate) fn page_key(top: u16, prefix: &Hash256, height: u64) -> Vec<u8> {
    let bytes = usize::from(top).div_ceil(8);
    let mut key = Vec::with_capacity(2 + bytes + 8);
    key.extend_from_slice(&top.to_be_bytes());
    key.extend_from_slice(&prefix.0[..bytes]);
    key.extend_from_slice(&(!height).to_be_bytes());
    key
}

/// The key of `path`'s value set at `height`.
pub(crate) fn value_key(path: &Hash256, height: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&path.0);
    key[32..].copy_from_slice(&(!height).to_be_bytes());
    key
}

/// The newest entry at or below `height` whose key starts with `position` (a key without its
/// height suffix), from a table whose keys end in a complemented height.
fn newest(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    position: &[u8],
    height: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut from = position.to_vec();
    from.extend_from_slice(&(!height).to_be_bytes());
    let mut to = position.to_vec();
    to.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut range = table
        .range(from.as_slice()..=to.as_slice())
        .ctx("reading the state tree")?;
    match range.next() {
        Some(entry) => Ok(Some(
            entry.ctx("reading the state tree")?.1.value().to_vec(),
        )),
        None => Ok(None),
    }
}

/// The page at `(top, prefix)` as of `height` (all empty where none was written).
fn page_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    top: u16,
    prefix: &Hash256,
    height: u64,
) -> Result<Page, StoreError> {
    let key = page_key(top, prefix, 0);
    let position = &key[..key.len() - 8];
    match newest(table, position, height)? {
        Some(v) => Page::decode(&v, || format!("at depth {top} as of block {height}")),
        None => Ok(Page::default()),
    }
}

/// The value `path` had as of `height` (when the tree holds it then).
pub(crate) fn value_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    path: &Hash256,
    height: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    newest(table, &path.0, height)
}

/// The tree as it was after block `height`, for reading. It keeps the pages on the path of
/// the last node it read, one per page depth: a proof reads down one path, and a walk
/// (depth first) comes back to each page after each subtree below it.
pub(crate) struct TreeAt<'t, T> {
    table: &'t T,
    height: u64,
    path: RefCell<Vec<(u16, Hash256, Page)>>,
}

impl<'t, T: ReadableTable<&'static [u8], &'static [u8]>> TreeAt<'t, T> {
    pub(crate) fn new(table: &'t T, height: u64) -> Self {
        TreeAt {
            table,
            height,
            path: RefCell::new(Vec::new()),
        }
    }
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> NodeSource for TreeAt<'_, T> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        let (top, at, slot) = locate(depth, prefix);
        let mut path = self.path.borrow_mut();
        // The kept pages are in depth order, one per depth.
        let level = path.partition_point(|(t, _, _)| *t < top);
        if let Some((t, p, page)) = path.get(level)
            && *t == top
            && *p == at
        {
            return Ok(page.get(slot));
        }
        let page = page_at(self.table, top, &at, self.height)?;
        let node = page.get(slot);
        path.truncate(level);
        path.push((top, at, page));
        Ok(node)
    }
}

/// The newest tree's pages by position, kept by the writer across blocks so that the upper
/// levels, which every block touches, are not read back from the table each time. Only valid
/// for the writer's own newest version; cleared whenever the writer goes back.
#[derive(Default)]
pub(crate) struct NodeCache(HashMap<(u16, Hash256), Page>, Option<Hash256>);

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

/// The tree being updated by block `height`, in the block's write transaction. The pages it
/// changes are held until [`TreeWrite::flush`] writes each once.
pub(crate) struct TreeWrite<'a, 't> {
    table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    height: u64,
    cache: RefCell<&'a mut NodeCache>,
    dirty: HashMap<(u16, Hash256), Page>,
}

impl<'a, 't> TreeWrite<'a, 't> {
    pub(crate) fn new(
        table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
        height: u64,
        cache: &'a mut NodeCache,
    ) -> Self {
        TreeWrite {
            table,
            height,
            cache: RefCell::new(cache),
            dirty: HashMap::new(),
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
        let page = page_at(&*self.table, top, prefix, self.height)?;
        let out = f(&page);
        self.cache.borrow_mut().keep(top, *prefix, page);
        Ok(out)
    }

    /// Writes every changed page, in key order, at this block's height.
    pub(crate) fn flush(self) -> Result<(), StoreError> {
        let cache = self.cache.into_inner();
        let mut dirty: Vec<_> = self.dirty.into_iter().collect();
        dirty.sort_unstable_by_key(|(position, _)| *position);
        for ((top, prefix), page) in dirty {
            self.table
                .insert(
                    page_key(top, &prefix, self.height).as_slice(),
                    page.encode().as_slice(),
                )
                .ctx("writing the state tree")?;
            cache.keep(top, prefix, page);
        }
        Ok(())
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

/// Removes every page that block `height` wrote, given the paths of the keys it changed (from
/// its undo log): the pages on each path and the one beside it below each, down to where the
/// block wrote no page on the path (a block that changes a node changes every node above it,
/// so every page above it too).
pub(crate) fn remove_block(
    pages: &mut Table<'_, &'static [u8], &'static [u8]>,
    values: &mut Table<'_, &'static [u8], &'static [u8]>,
    height: u64,
    paths: &[Hash256],
) -> Result<(), StoreError> {
    // Find every page first: the keys share the upper pages, so removing as we go would hide
    // the deeper pages of the later keys.
    let mut doomed = std::collections::BTreeSet::new();
    for path in paths {
        values
            .remove(value_key(path, height).as_slice())
            .ctx("removing state tree values")?;
        for top in (0..=MAX_DEPTH).step_by(usize::from(LEVELS)) {
            let on = page_key(top, &state::prefix(path, top), height);
            if pages
                .get(on.as_slice())
                .ctx("reading the state tree")?
                .is_none()
            {
                break;
            }
            doomed.insert(on);
            if top + LEVELS <= MAX_DEPTH {
                // The page under the path's node at depth top + 3 that is not on the path:
                // written when that node's subtree was rebuilt.
                let below = top + LEVELS;
                let mut beside = state::prefix(path, below);
                let i = usize::from(below - 1);
                beside.0[i / 8] ^= 0x80 >> (i % 8);
                doomed.insert(page_key(below, &beside, height));
            }
        }
    }
    for key in doomed {
        pages
            .remove(key.as_slice())
            .ctx("removing state tree pages")?;
    }
    Ok(())
}

/// The state root after block `height`.
pub(crate) fn root_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    height: u64,
) -> Result<Hash256, StoreError> {
    Ok(TreeAt::new(table, height).node(0, &EMPTY)?.hash())
}

/// Checks that a raw `smt_pages` entry from outside (a snapshot) has a well-formed key and
/// page.
pub(crate) fn check_entry(key: &[u8], value: &[u8]) -> Result<(), String> {
    let top = key
        .get(..2)
        .map(|d| u16::from_be_bytes([d[0], d[1]]))
        .filter(|d| *d <= MAX_DEPTH && d % LEVELS == 0)
        .ok_or_else(|| {
            format!(
                "state tree key {} has no valid page depth",
                vc_chash::hex::encode(key)
            )
        })?;
    if key.len() != 2 + usize::from(top).div_ceil(8) + 8 {
        return Err(format!(
            "state tree key {} has the wrong length for depth {top}",
            vc_chash::hex::encode(key)
        ));
    }
    Page::decode(value, || {
        format!("under key {}", vc_chash::hex::encode(key))
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Walks the whole tree as of `height`, recomputing every inner node's hash from its children,
/// and returns the recomputed root with every leaf's `(path, value hash)` in path order. Fails
/// on a node whose stored hash differs from its children's, or a leaf off its position.
pub(crate) fn walk(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    height: u64,
) -> Result<(Hash256, Vec<(Hash256, Hash256)>), StoreError> {
    let mut leaves = Vec::new();
    let tree = TreeAt::new(table, height);
    let root = walk_at(&tree, 0, &EMPTY, &mut leaves)?;
    Ok((root, leaves))
}

fn walk_at<T: ReadableTable<&'static [u8], &'static [u8]>>(
    tree: &TreeAt<'_, T>,
    depth: u16,
    prefix: &Hash256,
    leaves: &mut Vec<(Hash256, Hash256)>,
) -> Result<Hash256, StoreError> {
    match tree.node(depth, prefix)? {
        Node::Empty => Ok(EMPTY),
        Node::Leaf { path, value_hash } => {
            if state::prefix(&path, depth) != *prefix {
                return Err(StoreError::Inconsistent(format!(
                    "state tree leaf {path} sits at depth {depth} off its path"
                )));
            }
            leaves.push((path, value_hash));
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
            let l = walk_at(tree, depth + 1, prefix, leaves)?;
            let r = walk_at(tree, depth + 1, &right, leaves)?;
            let computed = state::node_hash(&l, &r);
            if computed != stored {
                return Err(StoreError::Inconsistent(format!(
                    "state tree node at depth {depth} stores {stored}, its children hash to {computed}"
                )));
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
        assert!(check_entry(&page_key(4, &h(0xF0), 7), &bytes).is_ok());
        assert!(check_entry(&page_key(5, &h(0xF0), 7), &bytes).is_err());
        assert!(check_entry(&page_key(4, &h(0xF0), 7)[1..], &bytes).is_err());
    }
}
