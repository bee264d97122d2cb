//! A whole state tree in memory.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::convert::Infallible;

use super::page::{self, Page, PagePath, PageStore};
use super::{
    Change, EMPTY, Node, NodeSource, NodeStore, StatePath, TreeError, key_path, prove_path, update,
    value_hash,
};
use crate::types::Hash256;

/// An application's state with its tree, all in memory: for tests, tools, reference checks and
/// small servers. Keeps the current version only, its nodes in [pages](super::page) of eight
/// levels; [`MemoryState::apply`] updates them through a [`PagePath`].
///
/// ```
/// use vc_chash::state::{self, MemoryState};
///
/// let mut st = MemoryState::new();
/// st.apply([(b"names".as_slice(), b"alice".as_slice(), Some(b"owner-1".to_vec()))]);
/// let root = st.root();
/// let (path, value) = st.prove(b"names", b"alice");
/// assert_eq!(value.as_deref(), Some(b"owner-1".as_slice()));
/// assert_eq!(path.root(&state::key_path(b"names", b"alice")), Ok(root));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    pub(super) pages: BTreeMap<(u16, Hash256), Page>,
    values: BTreeMap<Hash256, Vec<u8>>,
    root: Hash256,
}

impl NodeSource for MemoryState {
    type Error = Infallible;
    fn node(&self, depth: u16, prefix: &Hash256) -> Result<Node, Infallible> {
        let (top, at, slot) = page::locate(depth, prefix);
        Ok(self
            .pages
            .get(&(top, at))
            .map_or(Node::Empty, |p| p.get(slot)))
    }
}

impl NodeStore for MemoryState {
    fn set_node(&mut self, depth: u16, prefix: &Hash256, node: &Node) -> Result<(), Infallible> {
        let (top, at, slot) = page::locate(depth, prefix);
        let page = self.pages.entry((top, at)).or_default();
        page.set(slot, node);
        if page.is_empty() {
            self.pages.remove(&(top, at));
        }
        Ok(())
    }
}

/// A [`MemoryState`]'s pages as a [`PageStore`]: a page taken out leaves an empty one in its
/// entry (moving it costs no removal from the map), and an empty page given back is dropped.
struct Pages<'a>(&'a mut BTreeMap<(u16, Hash256), Page>);

impl PageStore for Pages<'_> {
    type Error = Infallible;
    fn take(&mut self, top: u16, position: &Hash256) -> Result<Page, Infallible> {
        Ok(self
            .0
            .get_mut(&(top, *position))
            .map(core::mem::take)
            .unwrap_or_default())
    }

    fn give_back(&mut self, top: u16, position: Hash256, page: Page, _changed: bool) {
        if page.is_empty() {
            self.0.remove(&(top, position));
        } else {
            // Replaces the empty page `take` left, without removing the entry.
            self.0.insert((top, position), page);
        }
    }
}

impl MemoryState {
    /// An empty state (root [`EMPTY`]).
    pub fn new() -> Self {
        MemoryState {
            root: EMPTY,
            ..MemoryState::default()
        }
    }

    /// The state root.
    pub fn root(&self) -> Hash256 {
        self.root
    }

    /// How many keys the state holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the state holds no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `key` in `namespace`.
    pub fn get(&self, namespace: &[u8], key: &[u8]) -> Option<&[u8]> {
        self.values
            .get(&key_path(namespace, key))
            .map(Vec::as_slice)
    }

    /// Applies one block's changes, `(namespace, key, Some(value))` to set and
    /// `(namespace, key, None)` to delete, and returns the new root. When a key appears more
    /// than once, its last change counts.
    pub fn apply<'a>(
        &mut self,
        changes: impl IntoIterator<Item = (&'a [u8], &'a [u8], Option<Vec<u8>>)>,
    ) -> Hash256 {
        let mut by_path: BTreeMap<Hash256, Option<Vec<u8>>> = BTreeMap::new();
        for (namespace, key, value) in changes {
            by_path.insert(key_path(namespace, key), value);
        }
        let list: Vec<Change> = by_path
            .iter()
            .map(|(path, value)| Change {
                path: *path,
                value_hash: value.as_deref().map(value_hash),
            })
            .collect();
        let mut paged = PagePath::new(Pages(&mut self.pages));
        let updated = update(&mut paged, &list);
        paged.finish();
        self.root = match updated {
            Ok(root) => root,
            Err(TreeError::Store(never)) => match never {},
            // Paths come sorted and distinct from the map, and the tree is only ever built by
            // `update`, so neither can happen; keep the old root rather than panic.
            Err(TreeError::Unsorted { .. } | TreeError::Corrupt { .. }) => self.root,
        };
        for (path, value) in by_path {
            match value {
                Some(v) => {
                    self.values.insert(path, v);
                }
                None => {
                    self.values.remove(&path);
                }
            }
        }
        self.root
    }

    /// The path of `key` in `namespace` and its value, if present.
    pub fn prove(&self, namespace: &[u8], key: &[u8]) -> (StatePath, Option<Vec<u8>>) {
        let path = key_path(namespace, key);
        let state_path = match prove_path(self, &path) {
            Ok(p) => p,
            Err(TreeError::Store(never)) => match never {},
            Err(_) => StatePath {
                siblings: Vec::new(),
                terminal: super::Terminal::Empty,
            },
        };
        (state_path, self.values.get(&path).cloned())
    }

    /// Every `(path, value hash)` of the state, for checking a root from scratch with
    /// [`super::root_of`].
    pub fn leaves(&self) -> Vec<(Hash256, Hash256)> {
        self.values
            .iter()
            .map(|(p, v)| (*p, value_hash(v)))
            .collect()
    }
}
