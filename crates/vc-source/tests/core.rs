//! The Core and blk-file sources against a real regtest bitcoind: REST, JSON-RPC and the node's
//! own files (read while it runs) give identical blocks and spent outputs, equal to
//! `getblock <hash> 3`, over a mixed chain of 300+ blocks; reorgs; and the typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use bitcoin::Network;
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode, spent_from_verbose_block};
use vc_source::prefetch::Prefetch;
use vc_source::{BlockSource, ChainView, SourceError};
use vc_testnode::{KINDS, KeyKind, Signer, TestNode};

fn config(node: &TestNode, rest: RestMode) -> CoreConfig {
    let mut c = CoreConfig::new(
        node.url(),
        CoreAuth::Cookie(node.cookie_file()),
        Network::Regtest,
    );
    c.rest = rest;
    c
}

#[test]
fn rest_rpc_blk_files_and_getblock3_agree_and_reorgs_are_seen() {
    let Some(node) = TestNode::start() else {
        return;
    };
    let mut signer = Signer::new(1);
    vc_testnode::build_mixed_chain(&node, &mut signer, 200);
    let tip = node.height();
    assert!(tip >= 300, "tip {tip}");

    let rest = CoreSource::connect(config(&node, RestMode::Auto)).unwrap();
    let rpc = CoreSource::connect(config(&node, RestMode::Off)).unwrap();
    assert!(rest.uses_rest() && !rpc.uses_rest());
    assert_eq!(rest.tip().unwrap(), rpc.tip().unwrap());
    let blk = BlkSource::open(BlkConfig::new(node.blocks_dir(), Network::Regtest)).unwrap();
    assert_eq!(blk.tip().unwrap(), rest.tip().unwrap());

    let mut kinds_spent = std::collections::BTreeSet::new();
    let mut op_returns = 0;
    for h in 0..=tip {
        let hash = rest.block_hash(h).unwrap();
        assert_eq!(hash, rpc.block_hash(h).unwrap(), "hash at {h}");
        let a = rest.block(&hash).unwrap();
        let b = rpc.block(&hash).unwrap();
        assert_eq!(a, b, "block {h}");
        let sa = rest.spent_outputs(&hash, &a.block).unwrap();
        let sb = rpc.spent_outputs(&hash, &b.block).unwrap();
        assert_eq!(sa, sb, "spent outputs of {h}");
        assert_eq!(hash, blk.block_hash(h).unwrap(), "blk hash at {h}");
        let c = blk.block(&hash).unwrap();
        assert_eq!(a, c, "blk block {h}");
        assert_eq!(
            sa,
            blk.spent_outputs(&hash, &c.block).unwrap(),
            "blk spent {h}"
        );
        let verbose: serde_json::Value = node
            .rpc()
            .call("getblock", &[hash.to_string().into(), 3.into()])
            .unwrap();
        assert_eq!(
            sa,
            spent_from_verbose_block(&verbose).unwrap(),
            "getblock 3 at {h}"
        );
        for out in sa.0.iter().flatten() {
            for k in KINDS {
                if out.script_pubkey == signer.address(k).script_pubkey() {
                    kinds_spent.insert(k);
                }
            }
        }
        op_returns += a
            .block
            .txdata
            .iter()
            .flat_map(|t| &t.output)
            .filter(|o| o.script_pubkey.is_op_return())
            .count();
    }
    assert_eq!(
        kinds_spent.len(),
        4,
        "every key type was spent: {kinds_spent:?}"
    );
    assert!(op_returns > 100, "{op_returns} OP_RETURN outputs");

    // Headers: the whole chain, linked, equal from both.
    let ha = rest.headers(0, tip as usize + 1).unwrap();
    assert_eq!(
        ha,
        rpc.headers(0, 50)
            .unwrap()
            .into_iter()
            .chain(rest.headers(50, tip as usize - 49).unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(ha.last().unwrap().block_hash(), rest.tip().unwrap().hash);
    assert_eq!(ha, blk.headers(0, tip as usize + 1).unwrap());

    // The prefetch pipeline yields the same blocks in order.
    let source: Arc<dyn BlockSource> =
        Arc::new(CoreSource::connect(config(&node, RestMode::Auto)).unwrap());
    let mut expected = 0;
    for f in Prefetch::new(source, 0, tip + 1, 4, 16) {
        let f = f.unwrap();
        assert_eq!(f.height, expected);
        assert_eq!(f.hash, f.block.block_hash());
        expected += 1;
    }
    assert_eq!(expected, tip + 1);

    // A reorg: replace the last 3 blocks with 5 others.
    let old = rest.block_hash(tip - 2).unwrap();
    node.invalidate(&old);
    let other = Signer::new(2).address(KeyKind::P2tr);
    node.mine(5, &other);
    let sources: [&dyn BlockSource; 3] = [&rest, &rpc, &blk];
    for s in sources {
        let t = s.tip().unwrap();
        assert_eq!(t.height, tip + 2);
        assert_ne!(s.block_hash(tip - 2).unwrap(), old, "{}", s.name());
        let hs = s.headers(tip - 5, 8).unwrap();
        assert_eq!(hs.last().unwrap().block_hash(), t.hash);
    }
    // The stale block is still served by hash (it is on disk), and is not on the best chain.
    assert_eq!(rest.block(&old).unwrap().block.block_hash(), old);
    assert_eq!(blk.height_of(&old), None);
    assert_eq!(blk.stale_blocks().len(), 3, "the three invalidated blocks");
    assert!(blk.stale_blocks().contains(&old));
    // The new branch's blocks and spent outputs from the files equal REST's.
    for h in tip - 2..=tip + 2 {
        let hash = blk.block_hash(h).unwrap();
        assert_eq!(hash, rest.block_hash(h).unwrap());
        let b = blk.block(&hash).unwrap();
        assert_eq!(
            blk.spent_outputs(&hash, &b.block).unwrap(),
            rest.spent_outputs(&hash, &b.block).unwrap()
        );
    }
}

#[test]
fn typed_errors() {
    let Some(node) = TestNode::start() else {
        return;
    };
    node.mine(10, &Signer::new(3).address(KeyKind::P2wpkh));
    // Wrong network.
    let mut c = config(&node, RestMode::Auto);
    c.network = Network::Bitcoin;
    match CoreSource::connect(c) {
        Err(SourceError::WrongNetwork { found, .. }) => assert_eq!(found, "regtest"),
        other => panic!("{other:?}"),
    }
    // Bad credentials.
    let mut c = config(&node, RestMode::Auto);
    c.auth = CoreAuth::UserPass("nobody".into(), "wrong".into());
    c.retry.attempts = 1;
    assert!(
        matches!(
            CoreSource::connect(c),
            Err(SourceError::BadCredentials { .. })
        ),
        "bad credentials"
    );
    // A missing cookie file.
    let mut c = config(&node, RestMode::Auto);
    c.auth = CoreAuth::Cookie(node.datadir().join("no-such-cookie"));
    assert!(CoreSource::connect(c).is_err());
    for mode in [RestMode::Auto, RestMode::Off] {
        let s = CoreSource::connect(config(&node, mode)).unwrap();
        // Past the tip.
        match s.block_hash(15) {
            Err(SourceError::PastTip {
                height: 15,
                tip: 10,
                ..
            }) => {}
            other => panic!("{mode:?}: {other:?}"),
        }
        assert!(
            matches!(s.headers(5, 10), Err(SourceError::PastTip { .. })),
            "{mode:?}"
        );
        // An unknown block.
        let unknown: bitcoin::BlockHash =
            "0000000000000000000000000000000000000000000000000000000000000001"
                .parse()
                .unwrap();
        assert!(
            matches!(s.block(&unknown), Err(SourceError::NotFound { .. })),
            "{mode:?}"
        );
    }
    // A node that is gone: transient errors, retried, then reported.
    let mut c = config(&node, RestMode::Auto);
    c.retry.attempts = 2;
    c.retry.base_delay = std::time::Duration::from_millis(10);
    let s = CoreSource::connect(c).unwrap();
    drop(node);
    let e = s.tip().unwrap_err();
    assert!(e.is_transient(), "{e}");
}
