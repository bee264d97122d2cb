//! The blk source's block index kept on disk (`BlkConfig::index_file`), on copies of the
//! committed fixture: it reads back the chain the scan found, follows what the node appends
//! after it was written, and a damaged, truncated or outdated file is set aside and rebuilt,
//! never trusted and never a panic. No node needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::{BlockHash, Network};
use vc_source::blk::{BlkConfig, BlkSource, IndexOrigin};
use vc_source::{BlockSource, ChainView};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain/blocks")
}

/// A writable copy of the fixture's blocks directory, and a directory for the index.
fn copy() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    (dir, tempfile::tempdir().unwrap())
}

fn open(dir: &Path, index: &Path) -> BlkSource {
    BlkSource::open(BlkConfig::new(dir, Network::Regtest).with_index_file(index)).unwrap()
}

/// What a source says about its chain: every hash and header, the tip, the stale blocks.
fn view(source: &BlkSource) -> (Vec<BlockHash>, Vec<Header>, Vec<BlockHash>) {
    let tip = source.tip().unwrap();
    let hashes = (0..=tip.height)
        .map(|h| source.block_hash(h).unwrap())
        .collect();
    let headers = source.headers(0, tip.height as usize + 1).unwrap();
    (hashes, headers, source.stale_blocks())
}

fn rebuilt(source: &BlkSource) -> String {
    match source.index_origin() {
        IndexOrigin::Rebuilt { reason } => reason.clone(),
        other => panic!("expected a rebuilt index, got {other:?}"),
    }
}

#[test]
fn a_saved_index_reads_back_the_chain_the_scan_found() {
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    let scanned = BlkSource::open(BlkConfig::new(dir.path(), Network::Regtest)).unwrap();
    let first = open(dir.path(), &file);
    assert_eq!(first.index_origin(), &IndexOrigin::Scanned);
    assert!(file.exists(), "opening wrote the index");
    let again = open(dir.path(), &file);
    assert_eq!(again.index_origin(), &IndexOrigin::Loaded);
    assert_eq!(view(&again), view(&scanned));
    assert_eq!(again.indexed_headers(), scanned.indexed_headers());
    assert_eq!(again.orphan_headers(), scanned.orphan_headers());
    // Blocks and their undo data are found where the loaded index says.
    let tip = again.tip().unwrap();
    for h in [1, tip.height / 2, tip.height] {
        let hash = again.block_hash(h).unwrap();
        let block = again.block(&hash).unwrap().block;
        let spent = again.spent_outputs(&hash, &block).unwrap();
        assert_eq!(spent.0.len(), block.txdata.len());
    }
    assert!(again.index_heap_bytes() > 0);
}

#[test]
fn blocks_the_node_appended_after_the_index_was_saved_are_scanned() {
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    let full = view(&BlkSource::open(BlkConfig::new(dir.path(), Network::Regtest)).unwrap());
    // The newest blk file as the node had written it an hour ago: half of it.
    let last = dir.path().join("blk00004.dat");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();
    let before = open(dir.path(), &file);
    let old_tip = before.tip().unwrap().height;
    assert!(old_tip < full.0.len() as u64 - 1);
    drop(before);
    std::fs::write(&last, &bytes).unwrap();
    let after = open(dir.path(), &file);
    assert_eq!(after.index_origin(), &IndexOrigin::Loaded);
    assert_eq!(view(&after), full);
}

#[test]
fn a_flipped_byte_anywhere_in_the_index_is_caught_and_the_index_rebuilt() {
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    let good = view(&open(dir.path(), &file));
    let saved = std::fs::read(&file).unwrap();
    // Every byte of the preamble and the file table, then a spread over the records and the
    // checksum.
    let mut positions: Vec<usize> = (0..140).collect();
    positions.extend((140..saved.len()).step_by(997));
    positions.extend(saved.len() - 32..saved.len());
    for at in positions {
        let mut bad = saved.clone();
        bad[at] ^= 0x20;
        std::fs::write(&file, &bad).unwrap();
        let source = open(dir.path(), &file);
        let reason = rebuilt(&source);
        assert!(!reason.is_empty(), "byte {at}");
        assert_eq!(view(&source), good, "byte {at}: {reason}");
        assert_eq!(std::fs::read(&file).unwrap(), saved, "byte {at}: rewritten");
    }
}

#[test]
fn a_truncated_or_foreign_index_file_is_rebuilt() {
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    let good = view(&open(dir.path(), &file));
    let saved = std::fs::read(&file).unwrap();
    for (bytes, needle) in [
        (saved[..saved.len() / 2].to_vec(), "truncated"),
        (saved[..saved.len() - 1].to_vec(), "truncated"),
        (Vec::new(), "truncated"),
        (b"not an index at all".to_vec(), "not a block index"),
        ([saved.clone(), vec![0]].concat(), "follow its checksum"),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let source = open(dir.path(), &file);
        let reason = rebuilt(&source);
        assert!(reason.contains(needle), "{reason}, expected {needle}");
        assert_eq!(view(&source), good);
    }
}

#[test]
fn an_index_of_another_copy_of_the_directory_is_rebuilt() {
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    open(dir.path(), &file);
    // The directory now holds a shorter copy (a node re-synced, or another datadir).
    let last = dir.path().join("blk00004.dat");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 3]).unwrap();
    let scanned = view(&BlkSource::open(BlkConfig::new(dir.path(), Network::Regtest)).unwrap());
    let source = open(dir.path(), &file);
    assert!(rebuilt(&source).contains("shorter"), "{}", rebuilt(&source));
    assert_eq!(view(&source), scanned);
    // Same length, other blocks: the first blk file replaced by the second.
    let (dir, idx) = copy();
    let file = idx.path().join("blk.idx");
    open(dir.path(), &file);
    let mut other = std::fs::read(dir.path().join("blk00001.dat")).unwrap();
    let len = std::fs::metadata(dir.path().join("blk00000.dat"))
        .unwrap()
        .len() as usize;
    other.resize(len.max(other.len()), 0);
    std::fs::write(dir.path().join("blk00000.dat"), &other).unwrap();
    match BlkSource::open(BlkConfig::new(dir.path(), Network::Regtest).with_index_file(&file)) {
        Ok(source) => assert!(
            rebuilt(&source).contains("another block"),
            "{}",
            rebuilt(&source)
        ),
        // Without its genesis block the directory is refused, as it is without an index.
        Err(e) => assert!(e.to_string().contains("genesis"), "{e}"),
    }
}
