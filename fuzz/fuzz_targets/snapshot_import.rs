//! A snapshot file from an untrusted peer, imported under the trusted consensus hash of the
//! names app's fixture chain. The fuzzer writes everything up to the end frame; the target
//! appends an end frame with the right digest, so inputs reach the block, undo and state
//! checks instead of stopping at the digest. Nothing panics; a refused import leaves no
//! database (and no temporary file) behind; an accepted one holds what the trusted consensus
//! hash proves of the fixture's chain up to the trusted height: the ops hash and consensus hash
//! at every height, with block hashes that link (each block's parent is the block before it).
//! The fixture's names app is legacy, whose consensus hash commits no block hash, so the block
//! hashes themselves (the first block's parent hash above all, which no scheme commits) are the
//! snapshot's: a fuzzer changes them freely where nothing links them.
//!
//! `cargo xtask fuzz` seeds the real snapshot of the fixture, without its end frame.
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use bitcoin::Network;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use vc_chash::ConsensusHash;
use vc_codec::storage;
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::{NamesApp, NamesConfig};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_store::snapshot::{self, Frame};
use vc_store::{ChainEntry, StoreConfig};

struct Fixture {
    config: StoreConfig,
    trusted: (u64, ConsensusHash),
    first: u64,
    chain: Vec<ChainEntry>,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/regtest-chain");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{root}/chain.json")).expect("chain.json"),
        )
        .expect("chain.json is JSON");
        let first = manifest["names"]["first_block"].as_u64().expect("first_block");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let source = BlkSource::open(BlkConfig::new(format!("{root}/blocks"), Network::Regtest))
            .expect("the fixture chain");
        let config = EngineConfig::default().with_confirmations(1);
        let mut engine = Engine::open(
            NamesApp::new(NamesConfig::regtest(first)),
            dir.path().join("fixture.redb"),
            vc_source::Source::blocks(source),
            config,
        )
        .expect("opening the engine");
        engine
            .sync(None, &AtomicBool::new(false), &mut NoObserver)
            .expect("indexing the fixture");
        let view = engine.store().view().expect("a view");
        let tip = view.tip().expect("tip").expect("a tip");
        let chain = (first..=tip.height)
            .map(|h| view.chain_entry(h).expect("entry").expect("an entry"))
            .collect();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work directory");
        Fixture {
            config: engine.store().config().clone(),
            trusted: (tip.height, tip.consensus_hash),
            first,
            chain,
            work,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let snap = f.work.join("snap");
    let db = f.work.join("db");
    let tmp = f.work.join("db.importing");
    let _ = std::fs::remove_file(&db);

    let mut file = data.to_vec();
    let end = storage::to_bytes(&Frame::End(Sha256::digest(data).into())).expect("end frame");
    file.extend((end.len() as u32).to_be_bytes());
    file.extend(end);
    std::fs::write(&snap, &file).expect("writing the snapshot");

    match snapshot::import(&snap, &db, f.config.clone(), f.trusted) {
        Err(_) => {
            assert!(!db.exists(), "a refused import left a database");
            assert!(!tmp.exists(), "a refused import left its temporary file");
        }
        Ok((store, _)) => {
            let view = store.view().expect("a view");
            let mut parent = None;
            for (i, want) in f.chain.iter().enumerate() {
                let h = f.first + i as u64;
                let got = view.chain_entry(h).expect("reading").expect("an entry");
                assert_eq!(
                    (&got.ops_hash, &got.consensus_hash, &got.mmr_root, got.op_count),
                    (&want.ops_hash, &want.consensus_hash, &want.mmr_root, want.op_count),
                    "an accepted snapshot differs at height {h}"
                );
                if let Some(parent) = parent {
                    assert_eq!(got.prev_hash, parent, "block {h} does not link");
                }
                parent = Some(got.block_hash);
            }
        }
    }
});
