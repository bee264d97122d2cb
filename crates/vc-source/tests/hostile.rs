//! The Core source against a lying node: `vc_testnode::fake_core` speaks Bitcoin Core's
//! JSON-RPC and REST interfaces over the committed fixture chain, honestly or with one lie, and
//! every lie is a typed error. No node needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use bitcoin::{BlockHash, Network};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode, RetryPolicy};
use vc_source::{BlockSource, ChainView, SourceError, SpentOutputs};
use vc_testnode::fake_core::{CoreLie as Lie, FakeCore};

/// The fixture chain on a fake node (telling no lie yet).
fn node() -> FakeCore {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain/blocks");
    let source = BlkSource::open(BlkConfig::new(dir, Network::Regtest)).unwrap();
    let tip = source.tip().unwrap().height;
    let (mut blocks, mut spent) = (Vec::new(), Vec::new());
    for h in 0..=tip {
        let hash = source.block_hash(h).unwrap();
        let block = source.block(&hash).unwrap().block;
        spent.push(source.spent_outputs(&hash, &block).unwrap().0);
        blocks.push(block);
    }
    FakeCore::start(blocks, spent)
}

fn connect(url: String, rest: RestMode) -> CoreSource {
    connect_with(url, rest, Duration::from_secs(10), 1)
}

/// A source with a `timeout` per request and `attempts` tries for transient failures.
fn connect_with(url: String, rest: RestMode, timeout: Duration, attempts: u32) -> CoreSource {
    let mut config = CoreConfig::new(
        url,
        CoreAuth::UserPass("user".into(), "pass".into()),
        Network::Regtest,
    );
    config.rest = rest;
    config.timeout = timeout;
    config.retry = RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(10),
        ..config.retry
    };
    CoreSource::connect(config).unwrap()
}

/// A fake node telling `lie` about every block, and a REST source on it.
fn over_rest(lie: Lie) -> (FakeCore, CoreSource) {
    let node = node();
    node.set_lie(lie, 0);
    let source = connect(node.url(), RestMode::Auto);
    (node, source)
}

/// Asserts a [`SourceError::Mismatch`] whose detail contains `needle`.
fn expect_mismatch<T: std::fmt::Debug>(result: Result<T, SourceError>, needle: &str) {
    match result {
        Err(SourceError::Mismatch { detail, .. }) => {
            assert!(detail.contains(needle), "{detail}")
        }
        other => panic!("expected a mismatch naming {needle:?}, got {other:?}"),
    }
}

/// A block well inside the chain with several transactions.
fn busy_block(node: &FakeCore) -> (usize, BlockHash) {
    let hashes = node.hashes();
    (150..hashes.len() - 1)
        .map(|h| (h, hashes[h]))
        .find(|(_, hash)| node.block(hash).unwrap().txdata.len() > 2)
        .unwrap()
}

#[test]
fn an_honest_fake_node_agrees_with_the_files() {
    let node = node();
    for mode in [RestMode::Auto, RestMode::Off] {
        let source = connect(node.url(), mode);
        assert_eq!(source.uses_rest(), mode == RestMode::Auto);
        let (h, hash) = busy_block(&node);
        assert_eq!(source.block_hash(h as u64).unwrap(), hash);
        let block = source.block(&hash).unwrap().block;
        assert_eq!(&block, node.block(&hash).unwrap());
        if mode == RestMode::Auto {
            let spent = source.spent_outputs(&hash, &block).unwrap();
            assert_eq!(spent, SpentOutputs(node.spent(&hash).unwrap().to_vec()));
        }
        let headers = source.headers(10, 20).unwrap();
        assert_eq!(headers[0].block_hash(), node.hashes()[10]);
    }
    assert_eq!(node.lies_told(), 0);
}

#[test]
fn a_wrong_block_for_the_hash_is_refused_by_validation() {
    // The backend only fetches; the validation every block passes in the prefetch (whatever the
    // backend) refuses a block that is not the one asked for.
    let (node, source) = over_rest(Lie::WrongBlock);
    let (height, hash) = busy_block(&node);
    let height = height as u64;
    let got =
        vc_source::prefetch::Prefetch::new(std::sync::Arc::new(source), height, height + 1, 1, 1)
            .next()
            .unwrap();
    match got {
        Err(SourceError::Unverified {
            violation: vc_source::Violation::BlockHash,
            height: h,
            detail,
            ..
        }) => {
            assert_eq!(h, height);
            assert!(
                detail.contains(&format!("asked for block {hash}")),
                "{detail}"
            );
        }
        other => panic!("expected a block-hash violation, got {other:?}"),
    }
}

#[test]
fn a_block_with_a_dropped_transaction_fails_the_merkle_check() {
    let (node, source) = over_rest(Lie::DroppedTransaction);
    let (_, hash) = busy_block(&node);
    expect_mismatch(source.block(&hash), "merkle root");
}

#[test]
fn a_block_with_a_repeated_transaction_is_caught_although_its_root_matches() {
    let (node, source) = over_rest(Lie::DuplicatedTransaction);
    // An odd number of transactions: repeating the last leaves the merkle root as it was.
    let hash = *node
        .hashes()
        .iter()
        .find(|h| node.block(h).unwrap().txdata.len() == 3)
        .unwrap();
    let mut mutated = node.block(&hash).unwrap().clone();
    mutated.txdata.push(mutated.txdata[2].clone());
    assert!(
        mutated.check_merkle_root(),
        "the root alone does not see it"
    );
    expect_mismatch(source.block(&hash), "appears twice");
}

#[test]
fn a_truncated_block_is_malformed_with_its_offset() {
    let (node, source) = over_rest(Lie::TruncatedBlock);
    let (_, hash) = busy_block(&node);
    match source.block(&hash) {
        Err(SourceError::Malformed { detail, .. }) => {
            assert!(detail.contains("byte offset"), "{detail}")
        }
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn headers_that_do_not_link_are_a_mismatch() {
    let (_node, source) = over_rest(Lie::UnlinkedHeaders);
    expect_mismatch(source.headers(20, 10), "does not link");
}

#[test]
fn pruned_data_is_named_over_rest_and_json_rpc() {
    let node = node();
    node.set_lie(Lie::Pruned, 0);
    let (_, hash) = busy_block(&node);
    let block = node.block(&hash).unwrap();
    let rest = connect(node.url(), RestMode::Auto);
    assert!(matches!(
        rest.spent_outputs(&hash, block),
        Err(SourceError::Pruned { hash: h, .. }) if h == hash
    ));
    let rpc = connect(node.url(), RestMode::Off);
    assert!(matches!(
        rpc.block(&hash),
        Err(SourceError::Pruned { hash: h, .. }) if h == hash
    ));
}

#[test]
fn spent_outputs_missing_a_coin_are_a_mismatch() {
    let (node, source) = over_rest(Lie::MissingCoin);
    let (_, hash) = busy_block(&node);
    expect_mismatch(
        source.spent_outputs(&hash, node.block(&hash).unwrap()),
        "spent outputs",
    );
}

#[test]
fn an_answer_that_is_not_json_is_malformed() {
    let node = node();
    let source = connect(node.url(), RestMode::Auto);
    node.set_lie(Lie::MalformedJson, 0);
    match source.tip() {
        Err(SourceError::Malformed { what, .. }) => assert!(what.contains("getblockchaininfo")),
        other => panic!("expected malformed, got {other:?}"),
    }
    assert!(node.lies_told() > 0);
}

/// A transport failure naming the request, after the retries the policy allows.
fn expect_transport<T: std::fmt::Debug>(result: Result<T, SourceError>, needle: &str) {
    match result {
        Err(SourceError::Transport { what, source, .. }) => {
            assert!(what.contains("/rest/block/"), "{what}");
            let detail = source.to_string();
            assert!(detail.contains(needle), "{detail}");
        }
        other => panic!("expected a transport error naming {needle:?}, got {other:?}"),
    }
}

#[test]
fn a_body_cut_short_by_a_closed_connection_is_a_transport_error() {
    let (node, source) = over_rest(Lie::TruncatedBody);
    let (_, hash) = busy_block(&node);
    let result = source.block(&hash);
    assert!(
        matches!(result, Err(SourceError::Transport { .. })),
        "{result:?}"
    );
    assert!(node.lies_told() > 0);
}

#[test]
fn an_oversized_body_stops_at_the_limit() {
    let (node, source) = over_rest(Lie::OversizedBody);
    let (_, hash) = busy_block(&node);
    // 80 MiB claimed; the source reads at most 64 MiB of any answer.
    expect_transport(source.block(&hash), "limit");
}

#[test]
fn a_slow_answer_times_out() {
    let node = node();
    let source = connect_with(node.url(), RestMode::Auto, Duration::from_secs(1), 2);
    node.set_lie(Lie::Slow, 0);
    let (_, hash) = busy_block(&node);
    let result = source.block(&hash);
    assert!(
        matches!(&result, Err(SourceError::Transport { .. })),
        "{result:?}"
    );
    assert!(node.lies_told() >= 2, "the request was retried");
}

#[test]
fn a_server_error_page_is_a_transient_node_error() {
    let (node, source) = over_rest(Lie::ServerError);
    let (_, hash) = busy_block(&node);
    match source.block(&hash) {
        Err(e @ SourceError::Node { .. }) => {
            assert!(e.is_transient(), "{e}");
            assert!(e.to_string().contains("HTTP 500"), "{e}");
        }
        other => panic!("expected a node error, got {other:?}"),
    }
}
