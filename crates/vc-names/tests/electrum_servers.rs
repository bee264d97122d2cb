//! Light mode (the names app's marker deployment on an Electrum source) against two independent
//! Electrum server implementations, electrs and ElectrumX, on one real regtest chain: each
//! indexes the scripted names history to the same consensus hashes and state as the engine on
//! Core's REST interface, before and after a reorganisation that replaces blocks carrying
//! operations. The time each light sync takes is printed (`--nocapture`); see
//! `docs/electrum.md` for the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bitcoin::Network;
use common::{Node, marker_scenario, preorder, snapshot};
use vc_engine::{Engine, EngineConfig, NoObserver};
use vc_names::{NamesApp, NamesConfig, default_registry_script};
use vc_source::Source;
use vc_source::electrum::{ElectrumConfig, ElectrumSource};
use vc_testnode::electrumx::{ElectrumX, NODE_ARGS};
use vc_testnode::{Electrs, TestNode};

/// One server and the light engine reading it.
struct Light {
    server: &'static str,
    source: std::sync::Arc<ElectrumSource>,
    engine: Engine<NamesApp>,
}

impl Light {
    fn open(server: &'static str, url: &str, first: u64, db: &std::path::Path) -> Light {
        let source = std::sync::Arc::new(
            ElectrumSource::connect(ElectrumConfig::new(url, Network::Regtest)).unwrap(),
        );
        let config = NamesConfig::regtest(first).with_registry(default_registry_script());
        let engine = Engine::open(
            NamesApp::new(config),
            db,
            Source::Watched(source.clone()),
            EngineConfig::default()
                .with_confirmations(1)
                .with_workers(2),
        )
        .unwrap();
        Light {
            server,
            source,
            engine,
        }
    }

    /// Syncs to the server's tip; returns the reorganisations followed and the time taken.
    fn sync(&mut self) -> (u64, Duration) {
        let start = Instant::now();
        let outcome = self
            .engine
            .sync(None, &AtomicBool::new(false), &mut NoObserver)
            .unwrap_or_else(|e| panic!("{}: {e}", self.server));
        (outcome.reorgs, start.elapsed())
    }
}

#[test]
fn electrs_and_electrumx_index_the_names_history_like_core_across_a_reorg() {
    let Some(node) = TestNode::start_with(NODE_ARGS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let miner = Node(&node);
    let mut s = marker_scenario(&miner, &dir.path().join("core.redb"), 10);
    let first = s.engine().store().config().first_block;
    let history = s.run_history().unwrap();
    let accepted: u32 = history.iter().map(|r| r.accepted).sum();
    assert!(accepted >= 13, "the history's operations are accepted");

    let Some(electrs) = Electrs::start(&node) else {
        return;
    };
    let Some(electrumx) = ElectrumX::start(&node) else {
        return;
    };
    let wait_synced = |node: &TestNode| {
        electrs.wait_synced(node);
        electrumx.wait_synced(node);
    };
    let mut lights = [
        Light::open("electrs", &electrs.url(), first, &dir.path().join("a.redb")),
        Light::open(
            "electrumx",
            &electrumx.url(),
            first,
            &dir.path().join("b.redb"),
        ),
    ];
    let core = snapshot(s.engine().store());
    for light in &mut lights {
        let (_, took) = light.sync();
        assert_eq!(snapshot(light.engine.store()), core, "{}", light.server);
        let stats = light.source.stats();
        let (software, protocol) = light.source.negotiated().unwrap();
        eprintln!(
            "light sync of {} blocks from {} ({software}, protocol {protocol}): {took:?}, {} requests, {} connections, {} refusals",
            node.height() - first + 1,
            light.server,
            stats.requests,
            stats.connections,
            stats.refusals
        );
        // Few, large round trips: a range of heights goes in JSON-RPC batches. One round trip
        // per kind and block (37 here) made ElectrumX hold each small answer for its padding
        // second (9 s against electrs's 0.3 s).
        assert!(
            stats.requests <= 15,
            "{}: {} round trips for the first sync; batching should need about 7",
            light.server,
            stats.requests
        );
    }
    assert_eq!(lights[0].source.negotiated().unwrap().1, "1.4");
    assert_eq!(lights[1].source.negotiated().unwrap().1, "1.6");

    // A reorganisation of depth 3 replacing blocks with operations; both light engines follow
    // and end where the Core engine ends.
    let fork = node.height();
    for k in 0..3 {
        let tx = preorder(&mut s, 8, &format!("reorga{k}xxxxx.test"));
        s.mine(&[tx]).unwrap();
    }
    wait_synced(&node);
    for light in &mut lights {
        light.sync();
        assert_eq!(
            snapshot(light.engine.store()),
            snapshot(s.engine().store()),
            "{} before the reorganisation",
            light.server
        );
    }
    node.invalidate(&node.block_at(fork + 1).block_hash());
    for k in 0..4 {
        let tx = preorder(&mut s, 9, &format!("reorgb{k}xxxxx.test"));
        s.mine(&[tx]).unwrap();
    }
    wait_synced(&node);
    let core = snapshot(s.engine().store());
    for light in &mut lights {
        let (reorgs, took) = light.sync();
        assert_eq!(reorgs, 1, "{}", light.server);
        assert_eq!(
            snapshot(light.engine.store()),
            core,
            "{} after the reorganisation",
            light.server
        );
        eprintln!(
            "light sync through a depth-3 reorganisation from {}: {took:?}",
            light.server
        );
    }
}
