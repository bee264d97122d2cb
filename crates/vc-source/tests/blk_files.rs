//! The blk-file source on the committed fixture (`testdata/regtest-chain`, made by
//! `cargo xtask fixture`): it reads what the node reported, and every kind of damage to the
//! files is a typed error naming the file and offset. No node needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::hashes::{Hash, sha256};
use bitcoin::{BlockHash, Network};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::prefetch::Prefetch;
use vc_source::{BlockSource, ChainView, SourceError, SpentOutputs};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

struct Manifest {
    tip: (u64, BlockHash),
    blocks: Vec<(BlockHash, usize, usize, String)>,
    stale: Vec<BlockHash>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixture().join("chain.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hash = |v: &serde_json::Value| v.as_str().unwrap().parse::<BlockHash>().unwrap();
    Manifest {
        tip: (
            v["tip"]["height"].as_u64().unwrap(),
            hash(&v["tip"]["hash"]),
        ),
        blocks: v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    hash(&b["hash"]),
                    b["txs"].as_u64().unwrap() as usize,
                    b["size"].as_u64().unwrap() as usize,
                    b["spent_sha256"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        stale: v["stale"].as_array().unwrap().iter().map(hash).collect(),
    }
}

/// The digest `chain.json` records (see xtask/src/fixture.rs).
fn spent_digest(spent: &SpentOutputs) -> String {
    let mut bytes = Vec::new();
    for list in &spent.0 {
        bytes.extend(bitcoin::consensus::serialize(list));
    }
    sha256::Hash::hash(&bytes).to_string()
}

fn open(dir: &Path) -> Result<BlkSource, SourceError> {
    BlkSource::open(BlkConfig::new(dir, Network::Regtest))
}

/// The newest file with `prefix` (`blk` or `rev`): the one the node was still writing.
fn last_file(dir: &Path, prefix: &str) -> PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".dat"))
        .collect();
    names.sort();
    dir.join(names.last().unwrap())
}

/// A writable copy of the fixture's blocks directory.
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture().join("blocks")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn key(dir: &Path) -> [u8; 8] {
    std::fs::read(dir.join("xor.dat"))
        .unwrap()
        .try_into()
        .unwrap()
}

/// The records of a flat file: (offset of the record's magic, payload length), found the
/// simple way (de-obfuscate everything, skip zeros on disk).
fn records(path: &Path, key: [u8; 8], trailer: usize) -> Vec<(u64, usize)> {
    let raw = std::fs::read(path).unwrap();
    let plain: Vec<u8> = raw
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 8])
        .collect();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= raw.len() {
        // Zeros on disk are a gap, unless they are an obfuscated magic's first bytes (a key
        // byte equal to the magic byte).
        if raw[at] == 0 && plain[at..at + 4] != [0xfa, 0xbf, 0xb5, 0xda] {
            at += 1;
            continue;
        }
        assert_eq!(plain[at..at + 4], [0xfa, 0xbf, 0xb5, 0xda], "magic at {at}");
        let len = u32::from_le_bytes(plain[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at as u64, len));
        at += 8 + len + trailer;
    }
    out
}

fn file_error(e: SourceError) -> (String, u64, String) {
    match e {
        SourceError::File {
            path,
            offset,
            detail,
        } => (path, offset, detail),
        other => panic!("expected a file error, got {other}"),
    }
}

/// Asserts that opening fails with a file error on `file` at `offset`, naming `needle`.
fn open_fails(dir: &Path, file: &str, offset: u64, needle: &str) {
    let (path, at, detail) = file_error(open(dir).unwrap_err());
    assert!(path.ends_with(file), "{path}, expected {file}");
    assert_eq!(at, offset, "{detail}");
    assert!(detail.contains(needle), "{detail}");
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_fixture_reads_as_the_node_reported_it() {
    let m = manifest();
    let source = open(&fixture().join("blocks")).unwrap();
    assert_eq!(source.tip().unwrap().height, m.tip.0);
    assert_eq!(source.tip().unwrap().hash, m.tip.1);
    assert_eq!(source.orphan_headers(), 0);
    let mut scripts = BTreeSet::new();
    let mut op_returns = 0;
    for (h, (hash, txs, size, digest)) in m.blocks.iter().enumerate() {
        assert_eq!(source.block_hash(h as u64).unwrap(), *hash, "height {h}");
        let f = source.block(hash).unwrap();
        assert_eq!((f.block.txdata.len(), f.size), (*txs, *size), "block {h}");
        let spent = source.spent_outputs(hash, &f.block).unwrap();
        assert_eq!(spent_digest(&spent), *digest, "spent outputs of block {h}");
        for out in spent.0.iter().flatten() {
            let s = &out.script_pubkey;
            let kind = if s.is_p2pkh() {
                "p2pkh"
            } else if s.is_p2sh() {
                "p2sh"
            } else if s.is_p2wpkh() {
                "p2wpkh"
            } else if s.is_p2tr() {
                "p2tr"
            } else {
                "other"
            };
            scripts.insert(kind);
        }
        let outputs = f.block.txdata.iter().flat_map(|t| &t.output);
        op_returns += outputs.filter(|o| o.script_pubkey.is_op_return()).count();
    }
    assert_eq!(
        scripts,
        BTreeSet::from(["p2pkh", "p2sh", "p2tr", "p2wpkh"]),
        "every key type is spent"
    );
    assert!(op_returns > 100, "{op_returns} OP_RETURN outputs");

    let headers = source.headers(0, m.blocks.len()).unwrap();
    let hashes: Vec<BlockHash> = headers.iter().map(|h| h.block_hash()).collect();
    assert_eq!(hashes, m.blocks.iter().map(|b| b.0).collect::<Vec<_>>());
    assert!(matches!(
        source.block_hash(m.tip.0 + 1),
        Err(SourceError::PastTip { height, tip, .. }) if height == m.tip.0 + 1 && tip == m.tip.0
    ));
    assert!(matches!(
        source.headers(m.tip.0, 2),
        Err(SourceError::PastTip { .. })
    ));

    // The stale blocks are in the files, readable by hash, and not on the chain.
    assert_eq!(source.stale_blocks(), m.stale);
    for s in &m.stale {
        assert_eq!(source.height_of(s), None);
        assert_eq!(source.block(s).unwrap().block.block_hash(), *s);
    }

    // The prefetch pipeline over the files yields the same chain in order.
    let source: Arc<dyn BlockSource> = Arc::new(source);
    let got: Vec<BlockHash> = Prefetch::new(source, 0, m.tip.0 + 1, 3, 8)
        .map(|f| f.unwrap().hash)
        .collect();
    assert_eq!(got, hashes);
}

#[test]
fn a_wrong_or_missing_xor_key_is_named() {
    let dir = copy();
    let mut k = key(dir.path());
    k[3] ^= 0xff;
    std::fs::write(dir.path().join("xor.dat"), k).unwrap();
    let (path, offset, detail) = file_error(open(dir.path()).unwrap_err());
    assert!(
        path.ends_with("blk00000.dat") && offset == 0,
        "{path} {offset}"
    );
    assert!(detail.contains("xor.dat"), "{detail}");

    std::fs::remove_file(dir.path().join("xor.dat")).unwrap();
    let (path, offset, detail) = file_error(open(dir.path()).unwrap_err());
    assert!(
        path.ends_with("blk00000.dat") && offset == 0,
        "{path} {offset}"
    );
    assert!(detail.contains("xor.dat"), "{detail}");

    std::fs::write(dir.path().join("xor.dat"), [1, 2, 3]).unwrap();
    let (path, _, detail) = file_error(open(dir.path()).unwrap_err());
    assert!(
        path.ends_with("xor.dat") && detail.contains("3 bytes"),
        "{path}: {detail}"
    );
}

#[test]
fn another_networks_files_are_named() {
    // A wrong setting, not a damaged file: the network mismatch is its own error.
    let e = BlkSource::open(BlkConfig::new(fixture().join("blocks"), Network::Testnet));
    match e.unwrap_err() {
        SourceError::WrongNetwork {
            expected, found, ..
        } => {
            assert_eq!(expected, Network::Testnet);
            assert!(
                found.starts_with("regtest") && found.contains("blk00000.dat"),
                "{found}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_truncated_file_is_named_with_the_record_offset() {
    let dir = copy();
    let path = dir.path().join("blk00001.dat");
    let recs = records(&path, key(dir.path()), 0);
    let (start, len) = recs[2];
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(start + 8 + len as u64 / 2).unwrap();
    open_fails(dir.path(), "blk00001.dat", start, "truncated");
}

#[test]
fn a_partly_written_last_file_is_read_up_to_its_last_whole_record_and_followed() {
    let m = manifest();
    let dir = copy();
    let path = last_file(dir.path(), "blk");
    let full = std::fs::read(&path).unwrap();
    let recs = records(&path, key(dir.path()), 0);
    let (start, len) = *recs.last().unwrap();
    // The node has written the last block's record header and half its bytes.
    std::fs::write(&path, &full[..(start + 8) as usize + len / 2]).unwrap();
    let source = open(dir.path()).unwrap();
    let tip = source.tip().unwrap();
    assert_eq!(tip.height, m.tip.0 - 1);
    assert_eq!(tip.hash, m.blocks[m.tip.0 as usize - 1].0);
    // The node finishes the write: the next refresh sees the block.
    std::fs::write(&path, &full).unwrap();
    assert_eq!(source.tip().unwrap().hash, m.tip.1);
    let block = source.block(&m.tip.1).unwrap();
    let spent = source.spent_outputs(&m.tip.1, &block.block).unwrap();
    assert_eq!(spent_digest(&spent), m.blocks[m.tip.0 as usize].3);
}

#[test]
fn zero_gaps_between_records_are_skipped() {
    let m = manifest();
    let dir = copy();
    let path = dir.path().join("blk00001.dat");
    let full = std::fs::read(&path).unwrap();
    let (start, _) = records(&path, key(dir.path()), 0)[3];
    // 4096 zero bytes on disk (a multiple of 8 keeps the rest aligned with the key).
    let mut gapped = full[..start as usize].to_vec();
    gapped.extend(std::iter::repeat_n(0u8, 4096));
    gapped.extend_from_slice(&full[start as usize..]);
    std::fs::write(&path, gapped).unwrap();
    let source = open(dir.path()).unwrap();
    assert_eq!(source.tip().unwrap().hash, m.tip.1);
    for (h, (hash, ..)) in m.blocks.iter().enumerate() {
        assert_eq!(source.block_hash(h as u64).unwrap(), *hash);
        source.block(hash).unwrap();
    }
}

/// A key equal to the regtest magic makes every record at an offset of 0 or 4 (mod 8) start
/// with 4 zero bytes on disk: after a gap of zeros, the reader must find such a record where
/// it starts, not where its first non-zero byte is.
#[test]
fn a_record_whose_obfuscated_start_is_zero_is_found_after_a_gap() {
    let m = manifest();
    let dir = copy();
    let old = key(dir.path());
    let new = [0xfa, 0xbf, 0xb5, 0xda, 0xfa, 0xbf, 0xb5, 0xda];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "xor.dat" {
            continue;
        }
        // Only the records are obfuscated: preallocated zeros stay zeros.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let trailer = if name.starts_with("rev") { 32 } else { 0 };
        let mut raw = std::fs::read(&path).unwrap();
        for (start, len) in records(&path, old, trailer) {
            let start = start as usize;
            for i in start..start + 8 + len + trailer {
                raw[i] ^= old[i % 8] ^ new[i % 8];
            }
        }
        std::fs::write(&path, raw).unwrap();
    }
    std::fs::write(dir.path().join("xor.dat"), new).unwrap();
    let path = dir.path().join("blk00001.dat");
    let full = std::fs::read(&path).unwrap();
    let (start, _) = records(&path, new, 0)
        .into_iter()
        .skip(2)
        .find(|(s, _)| s % 4 == 0)
        .unwrap();
    assert_eq!(full[start as usize..start as usize + 4], [0, 0, 0, 0]);
    let mut gapped = full[..start as usize].to_vec();
    gapped.extend(std::iter::repeat_n(0u8, 4096));
    gapped.extend_from_slice(&full[start as usize..]);
    std::fs::write(&path, gapped).unwrap();
    let source = open(dir.path()).unwrap();
    assert_eq!(source.tip().unwrap().hash, m.tip.1);
    for (h, (hash, ..)) in m.blocks.iter().enumerate() {
        assert_eq!(source.block_hash(h as u64).unwrap(), *hash);
        source.block(hash).unwrap();
    }
}

#[test]
fn a_corrupt_record_header_is_named() {
    let dir = copy();
    let path = dir.path().join("blk00000.dat");
    let (start, _) = records(&path, key(dir.path()), 0)[5];
    flip(&path, start + 1);
    open_fails(dir.path(), "blk00000.dat", start, "corrupt");
}

#[test]
fn a_damaged_block_body_fails_the_merkle_check() {
    let m = manifest();
    let dir = copy();
    let source = open(dir.path()).unwrap();
    // A block with several transactions: damage the last byte (the last transaction's lock
    // time), which still parses.
    let (h, hash) = (150..m.blocks.len())
        .map(|h| (h, m.blocks[h].0))
        .find(|(h, _)| m.blocks[*h].1 > 2)
        .unwrap();
    let k = key(dir.path());
    let (file, start, len) = (0..4)
        .flat_map(|n| {
            let path = dir.path().join(format!("blk{n:05}.dat"));
            records(&path, k, 0)
                .into_iter()
                .map(move |(s, l)| (path.clone(), s, l))
        })
        .find(|(path, s, _)| {
            let raw = std::fs::read(path).unwrap();
            let header: Vec<u8> = (0..80)
                .map(|i| raw[*s as usize + 8 + i] ^ k[(*s as usize + 8 + i) % 8])
                .collect();
            bitcoin::consensus::deserialize::<bitcoin::block::Header>(&header)
                .unwrap()
                .block_hash()
                == hash
        })
        .unwrap();
    flip(&file, start + 8 + len as u64 - 1);
    let (p, offset, detail) = file_error(source.block(&hash).unwrap_err());
    assert_eq!(Path::new(&p), file);
    assert_eq!(offset, start + 8);
    assert!(detail.contains("merkle root"), "block {h}: {detail}");
}

#[test]
fn a_missing_or_damaged_rev_file_is_named() {
    let m = manifest();
    let dir = copy();
    let hash = m.blocks[5].0;
    std::fs::remove_file(dir.path().join("rev00000.dat")).unwrap();
    let source = open(dir.path()).unwrap();
    let block = source.block(&hash).unwrap().block;
    let (p, offset, detail) = file_error(source.spent_outputs(&hash, &block).unwrap_err());
    assert!(p.ends_with("rev00000.dat") && offset == 0, "{p}");
    assert!(detail.contains("missing"), "{detail}");

    // A damaged undo record no longer matches its checksum: its block has no undo data.
    let dir = copy();
    let path = dir.path().join("rev00000.dat");
    let (start, _) = records(&path, key(dir.path()), 32)[5];
    flip(&path, start + 9);
    let source = open(dir.path()).unwrap();
    let hash = m.blocks[6].0;
    let block = source.block(&hash).unwrap().block;
    let (p, _, detail) = file_error(source.spent_outputs(&hash, &block).unwrap_err());
    assert!(p.ends_with("rev00000.dat"), "{p}");
    assert!(detail.contains("no undo record for block"), "{detail}");
}

#[test]
fn a_stored_block_the_node_has_not_connected_is_not_the_tip() {
    let m = manifest();
    let dir = copy();
    let path = last_file(dir.path(), "rev");
    let (start, len) = *records(&path, key(dir.path()), 32).last().unwrap();
    // The tip's undo record is not written yet: zeros on disk, as Core preallocates.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start as usize..start as usize + 8 + len + 32].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let source = open(dir.path()).unwrap();
    assert_eq!(source.tip().unwrap().height, m.tip.0 - 1);
    assert_eq!(source.height_of(&m.tip.1), None);
}

/// `Prefetch::scanned` over the fixture gives, at every height, exactly the candidates that
/// decoding the whole block and filtering finds, with the same spent outputs (read from the
/// undo records without decoding the other coins), and the block's size and transaction
/// count. The fixture's names operations and foreign OP_RETURNs make candidates, its stale
/// blocks siblings.
#[test]
fn scanning_finds_what_decoding_and_filtering_find() {
    use vc_source::scan::ScanFilter;
    let source = Arc::new(open(&fixture().join("blocks")).unwrap());
    let tip = source.tip().unwrap().height;
    // The names magic, and a one-byte magic that many OP_RETURN pushes start with.
    for magic in [&b"id"[..], &[0x69][..]] {
        let filter = ScanFilter::new(magic, &[]);
        let select: vc_source::prefetch::TxSelector = Arc::new(|_| true);
        let scanned =
            Prefetch::scanned(source.clone(), 0..tip + 1, 3, 8, filter.clone(), select, 2);
        let mut candidates = 0;
        for (height, got) in (0..=tip).zip(scanned) {
            let got = got.unwrap();
            let hash = source.block_hash(height).unwrap();
            let block = source.block(&hash).unwrap();
            assert_eq!((got.hash, got.size), (hash, block.size));
            assert_eq!(got.tx_count, block.block.txdata.len());
            let want: Vec<usize> = (1..block.block.txdata.len())
                .filter(|&i| filter.matches(&block.block.txdata[i]))
                .collect();
            let at: Vec<usize> = got.txs.iter().map(|t| t.index as usize).collect();
            assert_eq!(at, want, "height {height}");
            if want.is_empty() {
                continue;
            }
            let spent = source.spent_outputs(&hash, &block.block).unwrap().0;
            for t in &got.txs {
                let i = t.index as usize;
                assert_eq!(t.tx, block.block.txdata[i]);
                assert_eq!(t.spent.as_ref(), Some(&spent[i]), "height {height} tx {i}");
            }
            candidates += want.len();
        }
        assert!(candidates > 0, "the fixture has candidates for {magic:?}");
    }
}
