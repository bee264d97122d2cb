//! What the real-node tests of the names app share: a regtest node as the scenario's miner, and
//! Core sources on it, and a snapshot of everything consensus-relevant in a database.

#![allow(dead_code)] // each test file uses part of it

use std::sync::Arc;

use bitcoin::{Address, BlockHash, Network, Transaction};
use vc_names::scenario::Miner;
use vc_names::state::{
    NAMES, NAMESPACE_PREORDERS, NAMESPACE_RECORDS, NameRecord, NamespaceRecord, PREORDERS, Preorder,
};
use vc_source::BlockSource;
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode};
use vc_store::{StateReadExt, Store};
use vc_testnode::TestNode;

/// The node as a `virtualchain --source` URL with cookie authentication.
pub fn source_url(node: &TestNode) -> String {
    format!(
        "core://{}?cookie={}",
        node.url().trim_start_matches("http://"),
        node.cookie_file().display()
    )
}

/// A regtest node mining for a scenario.
pub struct Node<'a>(pub &'a TestNode);

impl Miner for Node<'_> {
    fn mine_with(&self, address: &Address, txs: &[Transaction]) -> Result<BlockHash, String> {
        Ok(self.0.mine_with(address, txs))
    }
}

/// A scenario on the names marker deployment (the default registry), indexed from `node`'s
/// Core REST into `db`, with `wallets` funded wallets.
pub fn marker_scenario<'m>(
    miner: &'m Node<'m>,
    db: &std::path::Path,
    wallets: u8,
) -> vc_names::scenario::Scenario<'m> {
    vc_names::scenario::Scenario::start_with(
        miner,
        core(miner.0, true),
        db,
        wallets,
        Some(vc_names::default_registry_script()),
    )
    .unwrap()
}

/// The node as a Core source: REST (`rest`) or JSON-RPC only.
pub fn core(node: &TestNode, rest: bool) -> Arc<dyn BlockSource> {
    let mut c = CoreConfig::new(
        node.url(),
        CoreAuth::Cookie(node.cookie_file()),
        Network::Regtest,
    );
    if !rest {
        c.rest = RestMode::Off;
    }
    Arc::new(CoreSource::connect(c).unwrap())
}

/// Everything consensus-relevant in a names database: per block (hash, ops hash, consensus
/// hash) and every state entry.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub chain: Vec<([u8; 32], [u8; 32], Vec<u8>)>,
    pub names: Vec<(String, NameRecord)>,
    pub namespaces: Vec<(String, NamespaceRecord)>,
    pub preorders: Vec<([u8; 20], Preorder)>,
    pub namespace_preorders: Vec<([u8; 20], Preorder)>,
}

pub fn snapshot(store: &Store) -> Snapshot {
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap().height;
    let first = store.config().first_block;
    let chain = (first..=tip)
        .map(|h| {
            let e = view.chain_entry(h).unwrap().unwrap();
            (e.block_hash, e.ops_hash, e.consensus_hash)
        })
        .collect();
    Snapshot {
        chain,
        names: view.range(&NAMES, None, None).unwrap(),
        namespaces: view.range(&NAMESPACE_RECORDS, None, None).unwrap(),
        preorders: view.range(&PREORDERS, None, None).unwrap(),
        namespace_preorders: view.range(&NAMESPACE_PREORDERS, None, None).unwrap(),
    }
}

/// A name preorder from wallet `who`, signed for the deployment.
pub fn preorder(
    s: &mut vc_names::scenario::Scenario<'_>,
    who: usize,
    name: &str,
) -> bitcoin::Transaction {
    let price = vc_names::price::name_price(
        name.split('.').next().unwrap(),
        &vc_names::scenario::test_namespace_params(),
    );
    let ch = s.consensus_hash().unwrap();
    let p = vc_names::build::plan_name_preorder(
        name,
        &s.wallet(who).script(),
        &s.wallet(who).address(),
        ch,
        price,
    )
    .unwrap();
    s.sign(who, &p).unwrap()
}
