//! Stored records read back from a database file: every type the store and the names app keep
//! on disk (and the v3 state tree's pages), decoded from arbitrary bytes. The first byte picks the type. Decoding never
//! panics, and what decodes survives a round trip: encoding it and decoding again gives the
//! same value, in no more bytes than it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vc_codec::storage::{self, Stored};

fn round_trip<T: Stored + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = storage::from_bytes::<T>(bytes) {
        let again = storage::to_bytes(&value).expect("a decoded value encodes");
        assert!(again.len() <= bytes.len(), "{} grew on a round trip", T::KIND);
        assert_eq!(storage::from_bytes::<T>(&again).expect("re-reading"), value);
    }
}

/// A v3 state tree page (`vc_chash::state::page`): its stored form is canonical, so what
/// decodes encodes back to exactly the same bytes.
fn state_tree_page(bytes: &[u8]) {
    if let Some(page) = vc_chash::state::page::Page::decode(bytes) {
        assert_eq!(page.encode(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 10 {
        0 => round_trip::<vc_store::Meta>(bytes),
        1 => round_trip::<vc_store::ChainEntry>(bytes),
        2 => round_trip::<vc_store::StoredOp>(bytes),
        3 => round_trip::<vc_store::schema::UndoLog>(bytes),
        4 => round_trip::<vc_store::snapshot::Frame>(bytes),
        5 => round_trip::<vc_names::state::NamespaceRecord>(bytes),
        6 => round_trip::<vc_names::state::Preorder>(bytes),
        7 => round_trip::<vc_names::state::NameRecord>(bytes),
        8 => round_trip::<vc_names::state::Owned>(bytes),
        _ => state_tree_page(bytes),
    }
});
