//! The real-node reorg tests' shared setup: the names history on a regtest node (ending with a
//! revoked name, whose block the tests then replace), the follower command, and waiting.
//! Needs `mod common` (vc-names' test support) at the test crate's root.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::{Address, Network};
use vc_names::build::ScriptKind;
use vc_names::scenario::{Scenario, seeded_wallet};
use vc_testnode::TestNode;

use crate::common::{Node, core, source_url};

/// `virtualchain index` of the names app from `node` into `db`, following the tip if `follow`.
pub fn index_cmd(node: &TestNode, db: &Path, first: u64, follow: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
    c.args(["index", "--app", "names", "--network", "regtest"])
        .args(["--confirmations", "1", "--first-block", &first.to_string()])
        .args(["--source", &source_url(node), "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if follow {
        c.args([
            "--follow",
            "--poll-interval",
            "100ms",
            "--commit-every-block",
        ]);
    }
    c
}

/// Waits up to two minutes for `done`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names history mined on `node`: its first block, the height of the block that revoked
/// `baz.test`, and an address to mine empty blocks to.
pub fn revoked_history(node: &TestNode, dir: &Path) -> (u64, u64, Address) {
    let miner = Node(node);
    let mut s = Scenario::start(&miner, core(node, true), &dir.join("s.redb"), 6).unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block;
    let name = vc_names::lookup_name(s.engine().store(), "baz.test")
        .unwrap()
        .unwrap();
    assert!(name.revoked);
    let sink = seeded_wallet(203, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    (first, name.last_block, sink)
}

/// Starts `index --follow` from `node` into `db`, and waits until the database has a block.
pub fn start_follower(node: &TestNode, db: &Path, first: u64) -> std::process::Child {
    let follower = index_cmd(node, db, first, true).spawn().unwrap();
    wait_for("the database", || {
        vc_store::ReadOnlyStore::open(db).is_ok_and(|s| s.tip().is_ok_and(|t| t.is_some()))
    });
    follower
}
