//! The undo decoder on a real node's `rev*.dat` files: every record, de-obfuscated with
//! `xor.dat`, decodes to exactly the spent outputs Core's REST interface reports for its block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Network};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
use vc_source::undo::decode_block_undo;
use vc_source::{BlockSource, SpentOutputs};
use vc_testnode::{Signer, TestNode};

const REGTEST_MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

#[test]
fn rev_files_decode_to_what_rest_reports() {
    let Some(mut node) = TestNode::start() else {
        return;
    };
    let mut signer = Signer::new(7);
    vc_testnode::build_mixed_chain(&node, &mut signer, 60);
    let source = CoreSource::connect(CoreConfig::new(
        node.url(),
        CoreAuth::Cookie(node.cookie_file()),
        Network::Regtest,
    ))
    .unwrap();
    // Every block's parent and spent outputs, from REST.
    let mut by_parent: BTreeMap<BlockHash, (u64, SpentOutputs)> = BTreeMap::new();
    for h in 1..=node.height() {
        let hash = source.block_hash(h).unwrap();
        let block = source.block(&hash).unwrap().block;
        let spent = source.spent_outputs(&hash, &block).unwrap();
        by_parent.insert(block.header.prev_blockhash, (h, spent));
    }
    node.stop();

    let dir = node.blocks_dir();
    let key: Vec<u8> = std::fs::read(dir.join("xor.dat")).unwrap_or_else(|_| vec![0; 8]);
    assert_eq!(key.len(), 8);
    let mut matched = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("rev"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let mut bytes = std::fs::read(&path).unwrap();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= key[i % 8];
        }
        let mut at = 0;
        while at + 8 <= bytes.len() && bytes[at..at + 4] == REGTEST_MAGIC {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let undo = &bytes[at + 8..at + 8 + len];
            let checksum = &bytes[at + 8 + len..at + 8 + len + 32];
            // Core's checksum: double SHA-256 of the parent's hash followed by the undo data.
            let (height, spent) = by_parent
                .iter()
                .find(|(parent, _)| {
                    let mut pre = parent.to_byte_array().to_vec();
                    pre.extend_from_slice(undo);
                    sha256d::Hash::hash(&pre).to_byte_array() == checksum
                })
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("{}: record at {at} matches no block", path.display()));
            let decoded = decode_block_undo(undo).unwrap_or_else(|e| panic!("block {height}: {e}"));
            assert_eq!(&SpentOutputs(decoded), spent, "block {height}");
            matched += 1;
            at += 8 + len + 32;
        }
    }
    assert_eq!(
        matched,
        by_parent.len(),
        "every block's undo record was found"
    );
}
