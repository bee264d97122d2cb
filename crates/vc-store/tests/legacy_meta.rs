//! Files written before `Meta::app_params` existed (metadata encoding version 1) still open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use redb::ReadableDatabase;
use serde::Serialize;
use vc_chash::{Hash256, Scheme};
use vc_codec::storage::{self, Stored};
use vc_store::{BlockHeader, ReadOnlyStore, Store, StoreConfig, StoreError};

/// The version-1 layout of the store metadata, as earlier builds wrote it.
#[derive(Serialize, serde::Deserialize)]
struct MetaV1 {
    schema_version: u32,
    app_name: String,
    app_version: String,
    scheme: u8,
    first_block: u64,
    network: String,
    namespaces: Vec<String>,
}

impl Stored for MetaV1 {
    const KIND: &'static str = "store metadata (version 1)";
    const VERSION: u8 = 1;
}

const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");

/// A store with one block, whose metadata is then rewritten in the version-1 layout.
fn old_file(path: &std::path::Path, config: &StoreConfig) {
    let store = Store::open(path, config.clone()).unwrap();
    let mut w = store.writer().unwrap();
    let header = BlockHeader {
        height: 10,
        block_hash: Hash256([1; 32]),
        prev_hash: Hash256([0; 32]),
    };
    w.begin_block(header).unwrap().finish().unwrap();
    w.commit().unwrap();
    drop(store);
    let mut builder = redb::Builder::new();
    builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    let db = builder.open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(META).unwrap();
        let old = MetaV1 {
            schema_version: vc_store::schema::SCHEMA_VERSION,
            app_name: config.app_name.clone(),
            app_version: config.app_version.clone(),
            scheme: config.scheme.to_byte(),
            first_block: config.first_block,
            network: config.network.clone(),
            namespaces: Vec::new(),
        };
        t.insert("meta", storage::to_bytes(&old).unwrap().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
    // The rewrite really is version 1.
    let rtxn = db.begin_read().unwrap();
    let t = rtxn.open_table(META).unwrap();
    assert_eq!(t.get("meta").unwrap().unwrap().value().first(), Some(&1));
}

#[test]
fn a_version_1_metadata_file_opens_with_empty_params() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let config = StoreConfig::new("app", "1", Scheme::V2, 10, "regtest");
    old_file(&path, &config);

    let reader = ReadOnlyStore::open(&path).unwrap();
    assert_eq!(reader.meta().app_name, "app");
    assert!(reader.meta().app_params.is_empty());
    assert_eq!(reader.tip().unwrap().map(|t| t.height), Some(10));
    drop(reader);

    let store = Store::open(&path, config.clone()).unwrap();
    assert_eq!(store.tip().unwrap().map(|t| t.height), Some(10));
    drop(store);

    // An old file has no parameters, so an application that now declares some is refused.
    match Store::open(&path, config.with_app_params(vec![1])) {
        Err(StoreError::Mismatch { field, .. }) => {
            assert_eq!(field, vc_store::MetaField::AppParams)
        }
        other => panic!("got {other:?}"),
    }
}
