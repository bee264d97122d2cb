//! The Electrum source's header cache (`ElectrumConfig::header_cache`) against electrs on a
//! regtest bitcoind: a restart validates only the headers the server added since; a
//! reorganisation below the cached tip replaces the cached branch; a damaged or cut cache is
//! rebuilt from its sound part; another network's cache is refused before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Network, ScriptBuf};
use vc_source::electrum::{ElectrumConfig, ElectrumSource};
use vc_source::{ChainView, SourceError};
use vc_testnode::{Electrs, TestNode};

fn address(seed: u8) -> Address {
    Address::p2wsh(&ScriptBuf::from(vec![0x51, seed]), Network::Regtest)
}

/// Connects with the cache at `cache`; returns the headers it validated and checks its chain
/// against the node's.
fn restart(electrs: &Electrs, node: &TestNode, cache: &Path) -> u64 {
    let source = ElectrumSource::connect(
        ElectrumConfig::new(electrs.url(), Network::Regtest).with_header_cache(cache),
    )
    .unwrap();
    let tip = source.tip().unwrap();
    assert_eq!(tip.height, node.height());
    for h in 0..=tip.height {
        assert_eq!(
            source.block_hash(h).unwrap(),
            node.block_hash(h),
            "height {h}"
        );
    }
    source.stats().headers
}

#[test]
fn a_restart_validates_only_new_headers_and_rebuilds_a_damaged_cache() {
    let Some(node) = TestNode::start() else {
        return;
    };
    node.mine(30, &address(1));
    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("headers");
    assert_eq!(
        restart(&electrs, &node, &cache),
        30,
        "a first start validates all"
    );
    assert_eq!(restart(&electrs, &node, &cache), 0, "nothing new");
    node.mine(5, &address(1));
    electrs.wait_synced(&node);
    assert_eq!(restart(&electrs, &node, &cache), 5, "only the new ones");

    // A reorganisation below the cached tip (35): blocks 28.. replaced by a longer branch.
    node.invalidate(&node.block_hash(28));
    node.mine(10, &address(2));
    electrs.wait_synced(&node);
    assert_eq!(node.height(), 37);
    assert_eq!(
        restart(&electrs, &node, &cache),
        10,
        "the new branch, 28..=37"
    );
    assert_eq!(
        std::fs::metadata(&cache).unwrap().len(),
        40 + 38 * 80,
        "the old branch is gone from the file"
    );

    // A flipped byte in header 20: headers 0..=19 are kept, 20..=37 validated again.
    let mut bytes = std::fs::read(&cache).unwrap();
    bytes[40 + 20 * 80 + 50] ^= 1;
    std::fs::write(&cache, &bytes).unwrap();
    assert_eq!(restart(&electrs, &node, &cache), 18);
    // A write cut inside the tip's header.
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() - 30]).unwrap();
    assert_eq!(restart(&electrs, &node, &cache), 1);
    // Garbage: rebuilt from the genesis block.
    std::fs::write(&cache, b"not a header cache").unwrap();
    assert_eq!(restart(&electrs, &node, &cache), 37);
}

#[test]
fn another_networks_cache_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("headers");
    let testnet = bitcoin::constants::genesis_block(Network::Testnet).header;
    let mut bytes = b"VCHDRS01".to_vec();
    bytes.extend_from_slice(testnet.block_hash().as_byte_array());
    bytes.extend_from_slice(&bitcoin::consensus::serialize(&testnet));
    std::fs::write(&cache, &bytes).unwrap();
    // Nothing listens on port 1: the cache is checked first.
    let err = ElectrumSource::connect(
        ElectrumConfig::new("tcp://127.0.0.1:1", Network::Regtest).with_header_cache(&cache),
    )
    .unwrap_err();
    match err {
        SourceError::WrongNetwork {
            expected, found, ..
        } => {
            assert_eq!(expected, Network::Regtest);
            assert!(found.contains("testnet"), "{found}");
        }
        other => panic!("expected a wrong network, got {other}"),
    }
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        bytes,
        "the file is left alone"
    );
}
