//! What the real-node tests of the names app share: a regtest node as the scenario's miner, and
//! Core sources on it.

use std::sync::Arc;

use bitcoin::{Address, BlockHash, Network, Transaction};
use vc_names::scenario::Miner;
use vc_source::BlockSource;
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode};
use vc_testnode::TestNode;

/// A regtest node mining for a scenario.
pub struct Node<'a>(pub &'a TestNode);

impl Miner for Node<'_> {
    fn mine_with(&self, address: &Address, txs: &[Transaction]) -> Result<BlockHash, String> {
        Ok(self.0.mine_with(address, txs))
    }
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
