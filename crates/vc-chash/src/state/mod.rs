//! The v3 state commitment: a sparse Merkle tree over the application's whole state.
//!
//! Specified in `docs/consensus-hash-v3.md`. Every state entry (namespace `S`, key `K`, value
//! `V`) is a leaf at a 256-bit **path** `H(0x08 || u32 len(S) || S || K)`. The tree is the
//! *compact* binary tree over those paths: a subtree holding no leaf is the empty hash (32 zero
//! bytes), a subtree holding exactly one leaf is that leaf, and any other subtree is an inner
//! node over its two halves (split on the next path bit, most significant first):
//!
//! ```text
//! path(S, K)       = H(0x08 || u32 len(S) || S || K)
//! value_hash(V)    = H(0x09 || V)
//! leaf(path, vh)   = H(0x0A || path || vh)
//! node(l, r)       = H(0x0B || l || r)
//! empty            = 32 zero bytes
//! state_root       = the tree's root (empty for an empty state)
//! ```
//!
//! The shape depends only on the set of paths, so two nodes with the same state have the same
//! root whatever order the changes came in. A leaf sits at depth `1 + (the longest prefix it
//! shares with another path)`, about `log2(n) + 1` for `n` keys.
//!
//! The tree's nodes live wherever a node keeps them: [`NodeSource`] reads a node by position and
//! [`NodeStore`] writes one. [`update`] applies a block's changes in O(k log n) node reads and
//! writes for `k` changed keys; [`prove_path`] reads the path of one key; [`StatePath::root`]
//! folds a path back into the root a verifier compares. [`MemoryState`] keeps a whole tree in
//! memory.

mod memory;
pub mod page;
pub mod proof;

use alloc::vec::Vec;
use core::fmt;

use crate::digest::{Tagged, tagged_pair};
use crate::types::Hash256;

pub use memory::MemoryState;

/// Domain tags of the state commitment (continuing v2's `0x00..=0x07`).
pub mod tag {
    /// A state key's path.
    pub const KEY_PATH: u8 = 0x08;
    /// A state value's hash.
    pub const VALUE: u8 = 0x09;
    /// A state leaf.
    pub const LEAF: u8 = 0x0A;
    /// An inner node of the state tree.
    pub const NODE: u8 = 0x0B;
    /// A v3 consensus hash.
    pub const CONSENSUS_V3: u8 = 0x0C;
}

/// The number of bits in a path, and the deepest a leaf can be.
pub const MAX_DEPTH: u16 = 256;

/// The hash of an empty subtree (and the root of an empty state).
pub const EMPTY: Hash256 = Hash256::ZERO;

/// The path of key `key` in namespace `namespace`: `H(0x08 || u32 len(S) || S || K)`.
pub fn key_path(namespace: &[u8], key: &[u8]) -> Hash256 {
    let mut t = Tagged::new(tag::KEY_PATH);
    t.u32(namespace.len() as u32).update(namespace).update(key);
    Hash256(t.finish())
}

/// The hash of a state value: `H(0x09 || V)`.
pub fn value_hash(value: &[u8]) -> Hash256 {
    let mut t = Tagged::new(tag::VALUE);
    t.update(value);
    Hash256(t.finish())
}

/// A leaf's hash: `H(0x0A || path || value_hash)`.
pub fn leaf_hash(path: &Hash256, value_hash: &Hash256) -> Hash256 {
    Hash256(tagged_pair(tag::LEAF, &path.0, &value_hash.0))
}

/// An inner node's hash: `H(0x0B || left || right)`.
pub fn node_hash(left: &Hash256, right: &Hash256) -> Hash256 {
    Hash256(tagged_pair(tag::NODE, &left.0, &right.0))
}

/// Bit `depth` of `path`, most significant bit of byte 0 first; `true` means the right half.
pub fn bit(path: &Hash256, depth: u16) -> bool {
    let i = usize::from(depth);
    path.0[i / 8] & (0x80 >> (i % 8)) != 0
}

/// The first `depth` bits of `path`, the rest zeroed: the position of the subtree at `depth`
/// that `path` runs through.
pub fn prefix(path: &Hash256, depth: u16) -> Hash256 {
    let mut out = Hash256::ZERO;
    let d = usize::from(depth.min(MAX_DEPTH));
    let full = d / 8;
    out.0[..full].copy_from_slice(&path.0[..full]);
    if d % 8 != 0 {
        out.0[full] = path.0[full] & !(0xFFu8 >> (d % 8));
    }
    out
}

/// `prefix` with bit `depth` set.
fn with_bit(prefix: &Hash256, depth: u16) -> Hash256 {
    let mut out = *prefix;
    let i = usize::from(depth);
    out.0[i / 8] |= 0x80 >> (i % 8);
    out
}

/// `prefix` with bit `depth` flipped.
fn flip_bit(prefix: &Hash256, depth: u16) -> Hash256 {
    let mut out = *prefix;
    let i = usize::from(depth);
    out.0[i / 8] ^= 0x80 >> (i % 8);
    out
}

/// One node of the tree, as a store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// An empty subtree.
    Empty,
    /// A subtree holding exactly one entry.
    Leaf {
        /// The entry's path.
        path: Hash256,
        /// The hash of the entry's value.
        value_hash: Hash256,
    },
    /// A subtree holding two or more entries: the hash of its two halves.
    Inner(Hash256),
}

impl Node {
    /// The node's hash.
    pub fn hash(&self) -> Hash256 {
        match self {
            Node::Empty => EMPTY,
            Node::Leaf { path, value_hash } => leaf_hash(path, value_hash),
            Node::Inner(h) => *h,
        }
    }
}

/// Read access to a state tree's nodes by position.
///
/// A position is a depth (0 for the root, at most [`MAX_DEPTH`]) and the first `depth` bits of
/// a path (the rest zero, as [`prefix`] gives). A position the tree does not use reads as
/// [`Node::Empty`] or as whatever a store last wrote there: [`update`] and [`prove_path`] only
/// read positions that the tree's current shape reaches, and a store need not clear the others.
pub trait NodeSource {
    /// The store's own error.
    type Error;

    /// The node at `(depth, prefix)`.
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, Self::Error>;
}

/// Write access to a state tree's nodes, for [`update`].
pub trait NodeStore: NodeSource {
    /// Sets the node at `(depth, prefix)` (writing [`Node::Empty`] must make the position read
    /// as empty).
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), Self::Error>;
}

/// One key's change in a block: its new value's hash, or `None` when the key is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key's path ([`key_path`]).
    pub path: Hash256,
    /// The hash of the key's new value ([`value_hash`]), or `None` for a deletion.
    pub value_hash: Option<Hash256>,
}

/// Why [`update`] or [`prove_path`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError<E> {
    /// Reading or writing a node failed.
    Store(E),
    /// The changes are not sorted by path, or a path repeats.
    Unsorted {
        /// The index of the first change out of order.
        index: usize,
    },
    /// The store holds a shape no tree has: an inner node below the deepest level.
    Corrupt {
        /// The depth of the impossible node.
        depth: u16,
    },
}

impl<E: fmt::Display> fmt::Display for TreeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::Store(e) => write!(f, "state tree store: {e}"),
            TreeError::Unsorted { index } => write!(
                f,
                "state change {index} is not after the one before it in path order"
            ),
            TreeError::Corrupt { depth } => {
                write!(f, "the state tree has an inner node at depth {depth}")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for TreeError<E> {}

/// Applies `changes` (sorted by path, each path once) to the tree in `store` and returns the
/// new root.
///
/// Reads and writes O(k log n) nodes for `k` changes among `n` keys: only the paths of the
/// changed keys are visited, and every node whose content changes is written once, at its
/// position. Deleting an absent key and setting a key to its present value change nothing.
/// When a store fails, the nodes already written are the caller's to discard (a store
/// transaction's abort).
pub fn update<S: NodeStore>(
    store: &mut S,
    changes: &[Change],
) -> Result<Hash256, TreeError<S::Error>> {
    if let Some(index) = changes
        .windows(2)
        .position(|w| w[0].path >= w[1].path)
        .map(|i| i + 1)
    {
        return Err(TreeError::Unsorted { index });
    }
    let root = store.node(0, &EMPTY).map_err(TreeError::Store)?;
    Ok(update_at(store, 0, &EMPTY, root, changes)?.hash())
}

/// The new node at `(depth, prefix)`, currently `current`, after `changes` (all under this
/// position); writes it and whatever changed below it.
fn update_at<S: NodeStore>(
    store: &mut S,
    depth: u16,
    prefix: &Hash256,
    current: Node,
    changes: &[Change],
) -> Result<Node, TreeError<S::Error>> {
    if changes.is_empty() {
        return Ok(current);
    }
    let new = match current {
        Node::Inner(_) => {
            if depth >= MAX_DEPTH {
                return Err(TreeError::Corrupt { depth });
            }
            let split = changes.partition_point(|c| !bit(&c.path, depth));
            let (left_changes, right_changes) = changes.split_at(split);
            let left_prefix = *prefix;
            let right_prefix = with_bit(prefix, depth);
            let left = store
                .node(depth + 1, &left_prefix)
                .map_err(TreeError::Store)?;
            let left = update_at(store, depth + 1, &left_prefix, left, left_changes)?;
            let right = store
                .node(depth + 1, &right_prefix)
                .map_err(TreeError::Store)?;
            let right = update_at(store, depth + 1, &right_prefix, right, right_changes)?;
            join(&left, &right)
        }
        Node::Empty | Node::Leaf { .. } => {
            let mut leaves: Vec<(Hash256, Hash256)> = Vec::with_capacity(changes.len() + 1);
            let existing = match current {
                Node::Leaf { path, value_hash } => Some((path, value_hash)),
                _ => None,
            };
            let mut existing_placed = false;
            for change in changes {
                if let Some((path, value_hash)) = existing
                    && !existing_placed
                    && path <= change.path
                {
                    existing_placed = true;
                    if path < change.path {
                        leaves.push((path, value_hash));
                    }
                }
                if let Some(value_hash) = change.value_hash {
                    leaves.push((change.path, value_hash));
                }
            }
            if let (Some(leaf), false) = (existing, existing_placed) {
                leaves.push(leaf);
            }
            build(store, depth, prefix, &leaves)?
        }
    };
    if new != current {
        store
            .set_node(depth, prefix, &new)
            .map_err(TreeError::Store)?;
    }
    Ok(new)
}

/// The node over two halves: empty, the one leaf if the other half is empty, or an inner node.
fn join(left: &Node, right: &Node) -> Node {
    match (left, right) {
        (Node::Empty, Node::Empty) => Node::Empty,
        (Node::Empty, leaf @ Node::Leaf { .. }) | (leaf @ Node::Leaf { .. }, Node::Empty) => *leaf,
        (l, r) => Node::Inner(node_hash(&l.hash(), &r.hash())),
    }
}

/// Builds the subtree at `(depth, prefix)` over `leaves` (sorted, distinct, all under this
/// position), writes every node below it (empty halves included, so that nothing written
/// there before shows through), and returns its top node unwritten.
fn build<S: NodeStore>(
    store: &mut S,
    depth: u16,
    prefix: &Hash256,
    leaves: &[(Hash256, Hash256)],
) -> Result<Node, TreeError<S::Error>> {
    match leaves {
        [] => Ok(Node::Empty),
        [(path, value_hash)] => Ok(Node::Leaf {
            path: *path,
            value_hash: *value_hash,
        }),
        _ => {
            if depth >= MAX_DEPTH {
                // Two distinct 256-bit paths differ before the last bit: only repeated paths,
                // which `update` refuses, could get here.
                return Err(TreeError::Corrupt { depth });
            }
            let split = leaves.partition_point(|(p, _)| !bit(p, depth));
            let left_prefix = *prefix;
            let right_prefix = with_bit(prefix, depth);
            let left = build(store, depth + 1, &left_prefix, &leaves[..split])?;
            let right = build(store, depth + 1, &right_prefix, &leaves[split..])?;
            store
                .set_node(depth + 1, &left_prefix, &left)
                .map_err(TreeError::Store)?;
            store
                .set_node(depth + 1, &right_prefix, &right)
                .map_err(TreeError::Store)?;
            Ok(Node::Inner(node_hash(&left.hash(), &right.hash())))
        }
    }
}

/// The root of the tree over `leaves` (path and value hash, in any order, paths distinct),
/// computed from scratch without a store: what [`update`] must agree with.
pub fn root_of(leaves: &mut [(Hash256, Hash256)]) -> Hash256 {
    leaves.sort_unstable();
    root_at(0, leaves)
}

fn root_at(depth: u16, leaves: &[(Hash256, Hash256)]) -> Hash256 {
    match leaves {
        [] => EMPTY,
        [(path, value_hash)] => leaf_hash(path, value_hash),
        _ if depth >= MAX_DEPTH => EMPTY,
        _ => {
            let split = leaves.partition_point(|(p, _)| !bit(p, depth));
            node_hash(
                &root_at(depth + 1, &leaves[..split]),
                &root_at(depth + 1, &leaves[split..]),
            )
        }
    }
}

/// Where a key's path ends in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// At the key's own leaf: the key is present with this value hash.
    Present(Hash256),
    /// At an empty subtree: the key is absent.
    Empty,
    /// At another key's leaf, which shares the path's first `depth` bits: the key is absent.
    Other {
        /// The other leaf's path.
        path: Hash256,
        /// The other leaf's value hash.
        value_hash: Hash256,
    },
}

/// The path from the root to where a key's path ends: the siblings top-down (one per level,
/// [`EMPTY`] for an empty one) and the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePath {
    /// `siblings[i]` is the hash of the sibling of the path's node at depth `i + 1`; the
    /// terminal is at depth `siblings.len()`.
    pub siblings: Vec<Hash256>,
    /// What the path ends at.
    pub terminal: Terminal,
}

/// Why a [`StatePath`] does not fit the key it is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Deeper than [`MAX_DEPTH`].
    TooDeep(usize),
    /// The terminal is another key's leaf, but with the key's own path.
    OtherIsSelf,
    /// The terminal is another key's leaf that does not share the key's path down to it.
    OtherOffPath {
        /// The depth of the terminal.
        depth: u16,
    },
    /// The last sibling is empty, which a canonical tree never has above a leaf or an empty
    /// subtree (the subtree would have been collapsed).
    NotCanonical {
        /// The depth of the terminal.
        depth: u16,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::TooDeep(d) => write!(f, "state path of depth {d} exceeds {MAX_DEPTH}"),
            PathError::OtherIsSelf => f.write_str(
                "the state path ends at a leaf said to be another key's, with this key's path",
            ),
            PathError::OtherOffPath { depth } => write!(
                f,
                "the state path ends at depth {depth} at a leaf whose path does not lead there"
            ),
            PathError::NotCanonical { depth } => write!(
                f,
                "the state path ends at depth {depth} beside an empty sibling, which no tree has"
            ),
        }
    }
}

impl core::error::Error for PathError {}

impl StatePath {
    /// The depth of the terminal.
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    /// The root this path leads to for the key at `path`, after checking that it fits that key
    /// and has the canonical shape.
    pub fn root(&self, path: &Hash256) -> Result<Hash256, PathError> {
        let depth = u16::try_from(self.siblings.len())
            .ok()
            .filter(|d| *d <= MAX_DEPTH)
            .ok_or(PathError::TooDeep(self.siblings.len()))?;
        let mut node = match &self.terminal {
            Terminal::Present(value_hash) => leaf_hash(path, value_hash),
            Terminal::Empty => EMPTY,
            Terminal::Other {
                path: other,
                value_hash,
            } => {
                if other == path {
                    return Err(PathError::OtherIsSelf);
                }
                if prefix(other, depth) != prefix(path, depth) {
                    return Err(PathError::OtherOffPath { depth });
                }
                leaf_hash(other, value_hash)
            }
        };
        if self.siblings.last() == Some(&EMPTY) {
            return Err(PathError::NotCanonical { depth });
        }
        for (i, sibling) in self.siblings.iter().enumerate().rev() {
            // `i < depth <= MAX_DEPTH`, so it fits.
            let level = i as u16;
            node = if bit(path, level) {
                node_hash(sibling, &node)
            } else {
                node_hash(&node, sibling)
            };
        }
        Ok(node)
    }
}

/// Reads the path of the key at `path` from the tree in `source`, root first.
pub fn prove_path<S: NodeSource>(
    source: &S,
    path: &Hash256,
) -> Result<StatePath, TreeError<S::Error>> {
    let mut siblings = Vec::new();
    let mut depth: u16 = 0;
    let mut node = source.node(0, &EMPTY).map_err(TreeError::Store)?;
    loop {
        let terminal = match node {
            Node::Empty => Terminal::Empty,
            Node::Leaf {
                path: leaf_path,
                value_hash,
            } if leaf_path == *path => Terminal::Present(value_hash),
            Node::Leaf {
                path: leaf_path,
                value_hash,
            } => Terminal::Other {
                path: leaf_path,
                value_hash,
            },
            Node::Inner(_) => {
                if depth >= MAX_DEPTH {
                    return Err(TreeError::Corrupt { depth });
                }
                let child = prefix(path, depth + 1);
                let sibling = flip_bit(&child, depth);
                siblings.push(
                    source
                        .node(depth + 1, &sibling)
                        .map_err(TreeError::Store)?
                        .hash(),
                );
                node = source.node(depth + 1, &child).map_err(TreeError::Store)?;
                depth += 1;
                continue;
            }
        };
        return Ok(StatePath { siblings, terminal });
    }
}

#[cfg(test)]
mod tests;
