//! The naive baseline's source gives exactly what Core's own source gives (real bitcoind with
//! -txindex; runs in CI), so run (4) of the benchmark indexes the same data as run (3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bitcoin::Network;
use vc_bench::naive::NaiveSource;
use vc_source::core::rpc::Auth;
use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
use vc_source::{BlockSource, ChainView};
use vc_testnode::{Signer, TestNode, build_mixed_chain};

#[test]
fn naive_source_agrees_with_core_rest() {
    let Some(node) = TestNode::start_with(&["-txindex=1"]) else {
        return;
    };
    let mut signer = Signer::new(9);
    build_mixed_chain(&node, &mut signer, 12);
    node.wait_for_txindex();
    let naive = NaiveSource::new(
        &node.url(),
        Auth::CookieFile(node.cookie_file()),
        Network::Regtest,
    );
    let core = CoreSource::connect(CoreConfig::new(
        node.url(),
        CoreAuth::Cookie(node.cookie_file()),
        Network::Regtest,
    ))
    .unwrap();
    assert!(core.uses_rest());
    let tip = core.tip().unwrap();
    assert_eq!(naive.tip().unwrap(), tip);
    assert_eq!(
        naive.headers(tip.height - 5, 6).unwrap(),
        core.headers(tip.height - 5, 6).unwrap()
    );
    let mut spent_inputs = 0;
    for h in 0..=tip.height {
        let hash = core.block_hash(h).unwrap();
        assert_eq!(naive.block_hash(h).unwrap(), hash);
        let block = core.block(&hash).unwrap();
        assert_eq!(naive.block(&hash).unwrap(), block);
        let spent = naive.spent_outputs(&hash, &block.block).unwrap();
        assert_eq!(spent, core.spent_outputs(&hash, &block.block).unwrap());
        spent.check_shape(&block.block).unwrap();
        spent_inputs += spent.0.iter().map(Vec::len).sum::<usize>();
    }
    assert!(spent_inputs > 20, "the chain spends {spent_inputs} inputs");
    // A block the node does not have is an error, not a panic.
    let missing = bitcoin::BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
    assert!(naive.block(&missing).is_err());
}
