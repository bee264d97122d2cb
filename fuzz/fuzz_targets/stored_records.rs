//! Stored records read back from a database file: every type the store and the names app keep
//! on disk, decoded from arbitrary bytes. The first byte picks the type. Decoding never
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

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 9 {
        0 => round_trip::<vc_store::Meta>(bytes),
        1 => round_trip::<vc_store::ChainEntry>(bytes),
        2 => round_trip::<vc_store::StoredOp>(bytes),
        3 => round_trip::<vc_store::schema::UndoLog>(bytes),
        4 => round_trip::<vc_store::snapshot::Frame>(bytes),
        5 => round_trip::<vc_names::state::NamespaceRecord>(bytes),
        6 => round_trip::<vc_names::state::Preorder>(bytes),
        7 => round_trip::<vc_names::state::NameRecord>(bytes),
        _ => round_trip::<vc_names::state::Owned>(bytes),
    }
});
