//! Pages of eight levels: how a store keeps the tree's nodes in few, large entries (storage,
//! not consensus; `docs/consensus-hash-v3.md` section 6).
//!
//! A *page* at depth `g` (a multiple of 8) and position `prefix` holds the 255 nodes of depths
//! `g` to `g + 7` under that position. Slot `2^r − 1 + i` holds the node at depth `g + r` whose
//! bits `g .. g + r` of its position read `i`. The deepest position (depth 256) is slot 0 of a
//! page of its own.
//!
//! A change to one key rewrites about `log2(n) / 8` pages instead of `log2(n)` nodes, and a
//! walk down one path reads as many. [`PagePath`] runs [`update`](super::update) over pages:
//! it holds the pages of the current path out of a [`PageStore`] (a map, a database's table
//! behind a cache), so a node read or written costs no lookup in it, and gives each page back
//! once, saying whether it changed.
//!
//! [`Page::encode`] is the stored form `vc-store` writes: a 32-byte bitmap of the non-empty
//! slots (slot `s` is bit `0x80 >> s % 8` of byte `s / 8`), then each such node in slot order,
//! `0x01` ‖ hash for an inner node or `0x02` ‖ path ‖ value hash for a leaf.
//!
//! ```
//! use vc_chash::Hash256;
//! use vc_chash::state::Node;
//! use vc_chash::state::page::{self, Page};
//!
//! // The node at depth 11 whose position starts with the bits 1010 1010 101.
//! let mut prefix = [0u8; 32];
//! prefix[..2].copy_from_slice(&[0xAA, 0xA0]);
//! let prefix = Hash256(prefix);
//! let (top, slot) = page::slot(11, &prefix);
//! assert_eq!((top, slot), (8, 7 + 0b101));
//! let mut page = Page::default();
//! assert!(page.set(slot, &Node::Inner(Hash256([7; 32]))));
//! assert_eq!(Page::decode(&page.encode()), Some(page));
//! ```

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::{MAX_DEPTH, Node, NodeSource, NodeStore, prefix as prefix_of};
use crate::types::Hash256;

/// Levels of the tree in one page.
pub const LEVELS: u16 = 8;
/// Nodes in one page: 1 + 2 + ... + 128.
pub const SLOTS: usize = 255;
/// Bytes of a stored page's bitmap of non-empty slots.
pub const BITMAP: usize = 32;

/// The non-empty nodes of one page: which of its [`SLOTS`] slots they fill (a bit each), and
/// the nodes in slot order. A page near the root is full; one near the leaves holds a subtree
/// of a few keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
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

    /// The node of `slot` ([`Node::Empty`] for an empty slot or one beyond [`SLOTS`]).
    pub fn get(&self, slot: usize) -> Node {
        if !self.is_filled(slot) {
            return Node::Empty;
        }
        self.nodes
            .get(self.rank(slot))
            .copied()
            .unwrap_or(Node::Empty)
    }

    /// Sets the node of `slot` (a slot beyond [`SLOTS`] is ignored) and says whether that
    /// changed the page.
    pub fn set(&mut self, slot: usize, node: &Node) -> bool {
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

    /// Whether every slot is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The length of the stored form.
    pub fn encoded_len(&self) -> usize {
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

    /// The stored form (see the module's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; self.encoded_len()];
        self.encode_into(&mut out);
        out
    }

    /// Writes the stored form into `out`, which must be [`Page::encoded_len`] long (a shorter
    /// one gets what fits).
    pub fn encode_into(&self, out: &mut [u8]) {
        let (bitmap, mut rest) = out.split_at_mut(BITMAP.min(out.len()));
        for (i, byte) in bitmap.iter_mut().enumerate() {
            let word = self.filled.get(i / 8).copied().unwrap_or(0) >> (i % 8 * 8);
            // Slot `8i + j` is bit `j` of that byte of the word, and bit `7 - j` when stored.
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

    /// Reads a stored page; `None` if `bytes` is not exactly one (truncated, trailing bytes,
    /// a bit set beyond the 255 slots, an unknown node tag).
    pub fn decode(bytes: &[u8]) -> Option<Page> {
        let (bitmap, mut rest) = bytes.split_first_chunk::<BITMAP>()?;
        let mut page = Page::default();
        for (i, byte) in bitmap.iter().enumerate() {
            let word = u64::from(byte.reverse_bits()) << (i % 8 * 8);
            if let Some(w) = page.filled.get_mut(i / 8) {
                *w |= word;
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

/// The depth of the page holding the node at `(depth, prefix)`, and the node's slot there. A
/// page's depth is a multiple of 8, so its position is the prefix's first `top / 8` bytes and
/// the slot comes from the next byte's first `depth - top` bits.
pub fn slot(depth: u16, prefix: &Hash256) -> (u16, usize) {
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

/// Where the node at `(depth, prefix)` is stored: its page's depth and position, and its slot.
pub fn locate(depth: u16, prefix: &Hash256) -> (u16, Hash256, usize) {
    let (top, slot) = slot(depth, prefix);
    (top, prefix_of(prefix, top), slot)
}

/// Whether the page at depth `top` and position `position` holds nodes under `prefix`.
pub fn holds(top: u16, position: &Hash256, prefix: &Hash256) -> bool {
    let bytes = usize::from(top / 8);
    position.0.get(..bytes) == prefix.0.get(..bytes)
}

/// Where a [`PagePath`] takes pages from and gives them back to.
pub trait PageStore {
    /// The store's own error.
    type Error;

    /// Takes out the page at depth `top` and position `position` (an empty page where there
    /// is none). It comes back through [`PageStore::give_back`] before it is taken again.
    fn take(&mut self, top: u16, position: &Hash256) -> Result<Page, Self::Error>;

    /// Gives back a page taken out, with whether its nodes were changed meanwhile.
    fn give_back(&mut self, top: u16, position: Hash256, page: Page, changed: bool);
}

/// A page on a [`PagePath`]'s current path.
#[derive(Debug)]
struct Held {
    top: u16,
    position: Hash256,
    page: Page,
    changed: bool,
}

/// A [`NodeStore`] over the pages of a [`PageStore`], for [`update`](super::update) and
/// [`prove_path`](super::prove_path): the pages on the current path are held out of the store,
/// one per page depth, so that the nodes a depth-first walk reads and writes there cost no
/// lookup in it. A page goes back when the walk reaches another at its depth, and all of them
/// when [`PagePath::finish`] is called.
#[derive(Debug)]
pub struct PagePath<S> {
    store: RefCell<S>,
    held: RefCell<Vec<Held>>,
}

impl<S: PageStore> PagePath<S> {
    /// Starts with no page held.
    pub fn new(store: S) -> Self {
        PagePath {
            store: RefCell::new(store),
            held: RefCell::new(Vec::new()),
        }
    }

    /// Gives every held page back and returns the store.
    pub fn finish(self) -> S {
        let mut store = self.store.into_inner();
        for h in self.held.into_inner() {
            store.give_back(h.top, h.position, h.page, h.changed);
        }
        store
    }

    /// The index in `held` of the page holding `(top, prefix)`'s nodes, after making it the
    /// deepest held page: those at its depth and below go back, and it is taken out.
    fn hold(&self, held: &mut Vec<Held>, top: u16, prefix: &Hash256) -> Result<usize, S::Error> {
        let level = held.partition_point(|h| h.top < top);
        if let Some(h) = held.get(level)
            && h.top == top
            && holds(top, &h.position, prefix)
        {
            return Ok(level);
        }
        let mut store = self.store.borrow_mut();
        for h in held.drain(level..) {
            store.give_back(h.top, h.position, h.page, h.changed);
        }
        let position = prefix_of(prefix, top);
        let page = store.take(top, &position)?;
        held.push(Held {
            top,
            position,
            page,
            changed: false,
        });
        Ok(level)
    }
}

impl<S: PageStore> NodeSource for PagePath<S> {
    type Error = S::Error;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, S::Error> {
        let (top, slot) = slot(depth, prefix);
        let mut held = self.held.borrow_mut();
        let level = self.hold(&mut held, top, prefix)?;
        Ok(held.get(level).map_or(Node::Empty, |h| h.page.get(slot)))
    }
}

impl<S: PageStore> NodeStore for PagePath<S> {
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), S::Error> {
        let (top, slot) = slot(depth, prefix);
        let mut held = core::mem::take(self.held.get_mut());
        let level = self.hold(&mut held, top, prefix);
        if let Ok(level) = level
            && let Some(h) = held.get_mut(level)
        {
            h.changed |= h.page.set(slot, node);
        }
        *self.held.get_mut() = held;
        level.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state;

    fn h(b: u8) -> Hash256 {
        Hash256([b; 32])
    }

    #[test]
    fn every_node_of_a_page_has_its_own_slot() {
        let path = h(0b1011_0110);
        for top in [0u16, 8, 16, 248] {
            let mut slots = alloc::collections::BTreeSet::new();
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
                    assert!(holds(t, &at, &p));
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
        assert_eq!(Page::decode(&page.encode()), Some(page.clone()));
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
        assert_eq!(bytes[0], 0x80);
        assert_eq!(bytes[1], 0x40);
        assert_eq!(bytes[BITMAP - 1], 0x02);
        assert_eq!(Page::decode(&bytes), Some(page.clone()));
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
        assert_eq!(Page::decode(&page.encode()), Some(page.clone()));
        page.set(0, &Node::Empty);
        page.set(9, &Node::Empty);
        assert!(page.is_empty());
        assert_eq!(page, Page::default());
        // Truncated, trailing bytes, a bit beyond the 255 slots, an unknown tag, a short bitmap.
        assert_eq!(Page::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Page::decode(&[bytes.as_slice(), &[0]].concat()), None);
        let mut beyond = [0u8; BITMAP];
        beyond[BITMAP - 1] = 1;
        assert_eq!(Page::decode(&beyond), None);
        let mut unknown = vec![0x80];
        unknown.extend_from_slice(&[0; BITMAP - 1]);
        unknown.push(3);
        assert_eq!(Page::decode(&unknown), None);
        assert_eq!(Page::decode(&[0x00; BITMAP - 1]), None);
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
                assert_eq!(Page::decode(&page.encode()).as_ref(), Some(&page));
            }
            for (s, want) in model.iter().enumerate() {
                assert_eq!(page.get(s), *want, "slot {s} after round {round}");
            }
        }
        assert_eq!(page.get(SLOTS), Node::Empty);
    }
}
