use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

fn k(i: u16) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

/// Checks every invariant of a state: the incremental root equals the root from scratch, and
/// every key in `0..universe` has a path that folds back to the root, present or absent.
fn check(st: &MemoryState, universe: u16) {
    assert_eq!(st.root(), root_of(&mut st.leaves()));
    for i in 0..universe {
        let (path, value) = st.prove(b"ns", &k(i));
        let p = key_path(b"ns", &k(i));
        assert_eq!(path.root(&p), Ok(st.root()), "key {i}");
        match (&path.terminal, value) {
            (Terminal::Present(vh), Some(v)) => assert_eq!(*vh, value_hash(&v)),
            (Terminal::Empty | Terminal::Other { .. }, None) => {}
            (t, v) => panic!("key {i}: terminal {t:?} with value {v:?}"),
        }
    }
}

#[test]
fn an_empty_state_has_the_empty_root_and_proves_absence() {
    let st = MemoryState::new();
    assert_eq!(st.root(), EMPTY);
    let (path, value) = st.prove(b"ns", b"x");
    assert_eq!(path.siblings.len(), 0);
    assert_eq!(path.terminal, Terminal::Empty);
    assert_eq!(value, None);
}

#[test]
fn one_key_is_the_root_leaf_and_deleting_it_empties_the_tree() {
    let mut st = MemoryState::new();
    let root = st.apply([(b"ns".as_slice(), b"a".as_slice(), Some(b"1".to_vec()))]);
    assert_eq!(root, leaf_hash(&key_path(b"ns", b"a"), &value_hash(b"1")));
    let root = st.apply([(b"ns".as_slice(), b"a".as_slice(), None)]);
    assert_eq!(root, EMPTY);
    assert!(st.pages.is_empty(), "no node is left behind");
}

#[test]
fn namespaces_separate_equal_keys() {
    assert_ne!(key_path(b"a", b"bc"), key_path(b"ab", b"c"));
    assert_ne!(key_path(b"a", b"x"), key_path(b"b", b"x"));
}

#[test]
fn paths_that_do_not_fit_are_refused() {
    let mut st = MemoryState::new();
    for i in 0..50 {
        st.apply([(b"ns".as_slice(), k(i).as_slice(), Some(vec![1]))]);
    }
    let p = key_path(b"ns", &k(3));
    let (path, _) = st.prove(b"ns", &k(3));
    // Claiming another key's leaf with this key's own path.
    let mut lie = path.clone();
    lie.terminal = Terminal::Other {
        path: p,
        value_hash: value_hash(&[1]),
    };
    assert_eq!(lie.root(&p), Err(PathError::OtherIsSelf));
    // An absent key's proof that ends at a leaf off its path.
    let absent = key_path(b"ns", &k(1000));
    let (apath, _) = st.prove(b"ns", &k(1000));
    if let Terminal::Other { .. } = apath.terminal {
        let mut lie = apath.clone();
        lie.terminal = Terminal::Other {
            path: Hash256([0xEE; 32]),
            value_hash: value_hash(&[1]),
        };
        assert!(matches!(
            lie.root(&absent),
            Err(PathError::OtherOffPath { .. }) | Ok(_)
        ));
    }
    // A path one level longer, through an empty sibling.
    let mut lie = path.clone();
    lie.siblings.push(EMPTY);
    assert!(matches!(lie.root(&p), Err(PathError::NotCanonical { .. })));
    // Deeper than any tree.
    let lie = StatePath {
        siblings: vec![Hash256([1; 32]); 257],
        terminal: Terminal::Empty,
    };
    assert_eq!(lie.root(&p), Err(PathError::TooDeep(257)));
}

#[test]
fn unsorted_changes_are_refused() {
    let mut st = MemoryState::new();
    let a = Change {
        path: Hash256([2; 32]),
        value_hash: Some(Hash256([1; 32])),
    };
    let b = Change {
        path: Hash256([1; 32]),
        value_hash: None,
    };
    assert_eq!(
        update(&mut st, &[a, b]),
        Err(TreeError::Unsorted { index: 1 })
    );
    assert_eq!(
        update(&mut st, &[a, a]),
        Err(TreeError::Unsorted { index: 1 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random blocks of sets and deletions over a small key universe (so that keys come back
    /// after deletion and leaves move up and down): every block's incremental root equals the
    /// root from scratch, and every key's path verifies.
    #[test]
    fn incremental_roots_equal_roots_from_scratch(
        blocks in prop::collection::vec(
            prop::collection::vec((0u16..64, prop::option::of(0u8..4)), 0..12),
            1..24,
        )
    ) {
        let mut st = MemoryState::new();
        for block in &blocks {
            let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                block.iter().map(|(i, v)| (k(*i), v.map(|v| vec![v]))).collect();
            st.apply(changes.iter().map(|(key, v)| (b"ns".as_slice(), key.as_slice(), v.clone())));
            check(&st, 70);
        }
    }

    /// The root depends on the state only, not on how changes were grouped into blocks.
    #[test]
    fn the_root_does_not_depend_on_batching(keys in prop::collection::btree_set(0u16..2000, 1..80)) {
        let mut one = MemoryState::new();
        let keyed: Vec<Vec<u8>> = keys.iter().map(|i| k(*i)).collect();
        one.apply(keyed.iter().map(|key| (b"ns".as_slice(), key.as_slice(), Some(key.clone()))));
        let mut many = MemoryState::new();
        for key in keyed.iter().rev() {
            many.apply([(b"ns".as_slice(), key.as_slice(), Some(key.clone()))]);
        }
        prop_assert_eq!(one.root(), many.root());
        prop_assert_eq!(one.pages, many.pages);
    }
}
