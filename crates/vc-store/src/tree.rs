//! The v3 state tree on redb: every version kept, so that state proofs can be served at any
//! height.
//!
//! The tree's shape and hashing are vc-chash's ([`vc_chash::state`]); this module only stores
//! its nodes. Each node is written at its position with the height of the block that wrote it,
//! and a read at height `h` takes the newest entry at or below `h`:
//!
//! | table | key | value |
//! |---|---|---|
//! | `smt` | depth `u16` ‖ the first `depth` bits of the path (`⌈depth/8⌉` bytes) ‖ `!height` `u64` | `0x00` empty, `0x01` ‖ hash, `0x02` ‖ path ‖ value hash |
//! | `smt_values` | path (32 bytes) ‖ `!height` `u64` | the key's value set at that height |
//!
//! Heights are stored complemented (`!h`, big-endian) so that a position's newest entry sorts
//! first: a read is one range seek. A block writes O(k log n) entries for `k` changed keys, and
//! only on the paths of those keys (and their siblings), so a rollback finds every entry a block
//! wrote from the keys its undo log names and removes them.

use std::collections::HashMap;

use redb::{ReadableTable, Table, TableDefinition};
use vc_chash::Hash256;
use vc_chash::state::{self, EMPTY, MAX_DEPTH, Node, NodeSource, NodeStore};

use crate::error::{DbContext, StoreError};

pub(crate) const SMT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt");
pub(crate) const SMT_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("smt_values");

/// The largest number of nodes the writer's cache of the newest tree keeps before it starts
/// over (about 100 bytes each).
const CACHE_LIMIT: usize = 1 << 18;

/// The key of the node at `(depth, prefix)` written at `height`.
pub(crate) fn node_key(depth: u16, prefix: &Hash256, height: u64) -> Vec<u8> {
    let bytes = usize::from(depth).div_ceil(8);
    let mut key = Vec::with_capacity(2 + bytes + 8);
    key.extend_from_slice(&depth.to_be_bytes());
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

pub(crate) fn encode_node(node: &Node) -> Vec<u8> {
    match node {
        Node::Empty => vec![0],
        Node::Inner(h) => {
            let mut v = Vec::with_capacity(33);
            v.push(1);
            v.extend_from_slice(&h.0);
            v
        }
        Node::Leaf { path, value_hash } => {
            let mut v = Vec::with_capacity(65);
            v.push(2);
            v.extend_from_slice(&path.0);
            v.extend_from_slice(&value_hash.0);
            v
        }
    }
}

pub(crate) fn decode_node(bytes: &[u8], at: impl FnOnce() -> String) -> Result<Node, StoreError> {
    let hash = |b: &[u8]| <[u8; 32]>::try_from(b).ok().map(Hash256);
    let node = match bytes.split_first() {
        Some((0, [])) => Some(Node::Empty),
        Some((1, rest)) => hash(rest).map(Node::Inner),
        Some((2, rest)) if rest.len() == 64 => match (hash(&rest[..32]), hash(&rest[32..])) {
            (Some(path), Some(value_hash)) => Some(Node::Leaf { path, value_hash }),
            _ => None,
        },
        _ => None,
    };
    node.ok_or_else(|| StoreError::Inconsistent(format!("malformed state tree node {}", at())))
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

/// The node at `(depth, prefix)` as of `height`.
pub(crate) fn node_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    depth: u16,
    prefix: &Hash256,
    height: u64,
) -> Result<Node, StoreError> {
    let key = node_key(depth, prefix, 0);
    let position = &key[..key.len() - 8];
    match newest(table, position, height)? {
        Some(v) => decode_node(&v, || format!("at depth {depth} as of block {height}")),
        None => Ok(Node::Empty),
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

/// The tree as it was after block `height`, for reading.
pub(crate) struct TreeAt<'t, T> {
    pub(crate) table: &'t T,
    pub(crate) height: u64,
}

impl<T: ReadableTable<&'static [u8], &'static [u8]>> NodeSource for TreeAt<'_, T> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        node_at(self.table, depth, prefix, self.height)
    }
}

/// The newest tree's nodes by position, kept by the writer across blocks so that the upper
/// levels, which every block touches, are not read back from the table each time. Only valid
/// for the writer's own newest version; cleared whenever the writer goes back.
#[derive(Default)]
pub(crate) struct NodeCache(HashMap<(u16, Hash256), Node>, Option<Hash256>);

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
}

/// The tree being updated by block `height`, in the block's write transaction.
pub(crate) struct TreeWrite<'a, 't> {
    pub(crate) table: &'a mut Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) height: u64,
    pub(crate) cache: &'a mut NodeCache,
}

impl NodeSource for TreeWrite<'_, '_> {
    type Error = StoreError;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, StoreError> {
        if let Some(node) = self.cache.0.get(&(depth, *prefix)) {
            return Ok(*node);
        }
        node_at(&*self.table, depth, prefix, self.height)
    }
}

impl NodeStore for TreeWrite<'_, '_> {
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), StoreError> {
        self.table
            .insert(
                node_key(depth, prefix, self.height).as_slice(),
                encode_node(node).as_slice(),
            )
            .ctx("writing the state tree")?;
        if self.cache.0.len() >= CACHE_LIMIT {
            self.cache.0.clear();
        }
        self.cache.0.insert((depth, *prefix), *node);
        Ok(())
    }
}

/// Removes every tree entry that block `height` wrote, given the paths of the keys it changed
/// (from its undo log): the entries on each path and beside it, down to where the block wrote
/// nothing on the path (a block that changes a node changes every node above it).
pub(crate) fn remove_block(
    nodes: &mut Table<'_, &'static [u8], &'static [u8]>,
    values: &mut Table<'_, &'static [u8], &'static [u8]>,
    height: u64,
    paths: &[Hash256],
) -> Result<(), StoreError> {
    // Find every entry first: the keys share the upper levels, so removing as we go would hide
    // the deeper levels of the later keys.
    let mut doomed = std::collections::BTreeSet::new();
    for path in paths {
        values
            .remove(value_key(path, height).as_slice())
            .ctx("removing state tree values")?;
        for depth in 0..=MAX_DEPTH {
            let on = node_key(depth, &state::prefix(path, depth), height);
            if nodes
                .get(on.as_slice())
                .ctx("reading the state tree")?
                .is_none()
            {
                break;
            }
            doomed.insert(on);
            if depth < MAX_DEPTH {
                // The two children of a node on the path: one on it, one beside it.
                let mut beside = state::prefix(path, depth + 1);
                let i = usize::from(depth);
                beside.0[i / 8] ^= 0x80 >> (i % 8);
                doomed.insert(node_key(depth + 1, &beside, height));
            }
        }
    }
    for key in doomed {
        nodes
            .remove(key.as_slice())
            .ctx("removing state tree nodes")?;
    }
    Ok(())
}

/// The state root after block `height`.
pub(crate) fn root_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    height: u64,
) -> Result<Hash256, StoreError> {
    Ok(node_at(table, 0, &EMPTY, height)?.hash())
}

/// Checks that a raw `smt` entry from outside (a snapshot) has a well-formed key and node.
pub(crate) fn check_entry(key: &[u8], value: &[u8]) -> Result<(), String> {
    let depth = key
        .get(..2)
        .map(|d| u16::from_be_bytes([d[0], d[1]]))
        .filter(|d| *d <= MAX_DEPTH)
        .ok_or_else(|| {
            format!(
                "state tree key {} has no valid depth",
                vc_chash::hex::encode(key)
            )
        })?;
    if key.len() != 2 + usize::from(depth).div_ceil(8) + 8 {
        return Err(format!(
            "state tree key {} has the wrong length for depth {depth}",
            vc_chash::hex::encode(key)
        ));
    }
    decode_node(value, || {
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
    let root = walk_at(table, height, 0, &EMPTY, &mut leaves)?;
    Ok((root, leaves))
}

fn walk_at(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    height: u64,
    depth: u16,
    prefix: &Hash256,
    leaves: &mut Vec<(Hash256, Hash256)>,
) -> Result<Hash256, StoreError> {
    match node_at(table, depth, prefix, height)? {
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
            let l = walk_at(table, height, depth + 1, prefix, leaves)?;
            let r = walk_at(table, height, depth + 1, &right, leaves)?;
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
