//! Cross-chain migration (`docs/migration.md`) through the CLI, on two regtest bitcoind nodes
//! that never connect, each with its own history:
//!
//! * chain A carries the names history (namespace `test`, `foo.test` registered and
//!   transferred); `names send migrate-announce` on A names H_A and chain B (its genesis and an
//!   anchor block), `index` freezes at H_A and ignores A's later blocks;
//! * `migrate-commit` and `migrate-reveal` on B bind the frozen state; `index --migrate-to`
//!   follows B from the reveal's block; `foo.test` is transferred and `new.test` registered on
//!   B; `status` shows both segments;
//! * a light client holding the newest consensus hash (on B) proves `foo.test`'s registration
//!   block on A and its transfer block on B;
//! * a database imported from a snapshot at H_A (checked against CH_A(H_A)) and then indexed on
//!   B equals the one indexed across the migration, hash for hash;
//! * so does one imported from a snapshot taken after H_A, at the tip on B: it carries the
//!   segments, shows them in `status` and goes on reading B.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use bitcoin::Network;
use vc_names::build::{ScriptKind, Wallet};
use vc_names::scenario::{Scenario, seeded_wallet};
use vc_store::{ReadOnlyStore, Store};
use vc_testnode::{Electrs, TestNode};

#[path = "../../vc-names/tests/common/mod.rs"]
mod common;

use common::{Node, core, source_url};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve_support;

use cli::ok;

const K: &str = "2";
const W: &str = "3";

/// `names send ARGS` from `wallet` through `node`, mined at once into the node's next block.
fn send(node: &TestNode, db: &Path, wallet: &Wallet, wif: &str, args: &[&str]) {
    let url = source_url(node);
    let db = db.to_string_lossy();
    let mut all = vec!["names", "send"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--wif", wif, "--source", &url, "--db", &db]);
    if wallet.script().is_p2pkh() {
        all.push("--p2pkh");
    }
    let out = ok(&all);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let txid: bitcoin::Txid = v["txid"].as_str().unwrap().parse().unwrap();
    let tx = node.raw_transaction(&txid);
    let sink = seeded_wallet(201, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    node.mine_with(&sink, &[tx]);
}

/// `names send migrate-announce` on `a`: A ends at `last`, the state goes to `b` (its genesis,
/// its tip as the anchor).
fn announce(a: &TestNode, b: &TestNode, db: &Path, authority: &Wallet, wif: &str, last: u64) {
    send(
        a,
        db,
        authority,
        wif,
        &[
            "migrate-announce",
            "--last-block",
            &last.to_string(),
            "--genesis",
            &b.block_hash(0).to_string(),
            "--anchor",
            &b.best_block_hash().to_string(),
        ],
    );
}

/// Two regtest nodes that never connect, the migration authority (key `seed`) funded with a
/// mature coin on each, and the address their other blocks pay.
fn funded_chains(seed: u8) -> Option<(TestNode, TestNode, Wallet, bitcoin::Address)> {
    let (a, b) = (TestNode::start()?, TestNode::start()?);
    let authority = seeded_wallet(seed, ScriptKind::P2wpkh, Network::Regtest).unwrap();
    let sink = seeded_wallet(201, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    for node in [&a, &b] {
        node.mine(1, &authority.address());
        node.mine(100, &sink);
    }
    Some((a, b, authority, sink))
}

fn wif(seed: u8) -> String {
    bitcoin::PrivateKey::new(
        bitcoin::secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap(),
        Network::Regtest,
    )
    .to_wif()
}

/// A names deployment that can migrate, indexed from chain A's `source`.
struct Deployment<'a> {
    scheme: &'a str,
    first: &'a str,
    authority: &'a str,
    source: &'a str,
}

impl Deployment<'_> {
    /// `index` into `db` with `extra` arguments, which must succeed.
    fn index(&self, db: &str, extra: &[&str]) {
        let mut args = vec![
            "index",
            "--network",
            "regtest",
            "--confirmations",
            "1",
            "--scheme",
            self.scheme,
            "--first-block",
            self.first,
            "--migration-authority",
            self.authority,
            "--migration-confirmations",
            K,
            "--migration-window",
            W,
            "--source",
            self.source,
            "--db",
            db,
        ];
        args.extend_from_slice(extra);
        ok(&args);
    }
}

/// Per block: consensus hash, ops hash, block hash.
type Chain = Vec<(Vec<u8>, [u8; 32], [u8; 32])>;

/// Per block (consensus hash, ops hash, block hash) and every name of the database at `db`.
fn contents(db: &Path) -> (Chain, String) {
    let store = ReadOnlyStore::open(db).unwrap();
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap().height;
    let chain = (store.meta().first_block..=tip)
        .map(|h| {
            let e = view.chain_entry(h).unwrap().unwrap();
            (e.consensus_hash, e.ops_hash, e.block_hash)
        })
        .collect();
    let names = ok(&["names", "list", "--db", &db.to_string_lossy()]);
    (chain, names)
}

/// The first height whose records mention `needle` with `opcode`.
fn height_of_op(db: &Path, opcode: u8, needle: &[u8], from: u64) -> u64 {
    let store = ReadOnlyStore::open(db).unwrap();
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().unwrap().height;
    (from..=tip)
        .find(|&h| {
            view.ops(h).unwrap().iter().any(|op| {
                op.opcode == opcode
                    && op
                        .records
                        .iter()
                        .any(|r| r.windows(needle.len()).any(|w| w == needle))
            })
        })
        .unwrap_or_else(|| panic!("no {} operation on {needle:?}", opcode as char))
}

#[test]
fn names_migrate_from_one_regtest_chain_to_another_and_proofs_span_both() {
    let (Some(a), Some(b)) = (TestNode::start(), TestNode::start()) else {
        return;
    };
    assert_eq!(
        a.block_hash(0),
        b.block_hash(0),
        "two regtest chains share a genesis"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("migrated.redb");
    let dbs = db.to_string_lossy().into_owned();
    let (url_a, url_b) = (source_url(&a), source_url(&b));

    // A's history: namespace `test`, foo.test registered, transferred to wallet 4 (seed 4).
    let miner = Node(&a);
    let mut s = Scenario::start_with_scheme(
        &miner,
        core(&a, true),
        &dir.path().join("scenario.redb"),
        6,
        None,
        vc_chash::Scheme::V3,
    )
    .unwrap();
    s.run_history().unwrap();
    let first = s.engine().store().config().first_block.to_string();
    drop(s);

    // The migration authority (seed 90) and foo.test's owner (seed 4, P2PKH) get coins on
    // both chains; B gets its own history of empty blocks.
    let authority = seeded_wallet(90, ScriptKind::P2wpkh, Network::Regtest).unwrap();
    let owner = seeded_wallet(4, ScriptKind::P2pkh, Network::Regtest).unwrap();
    let sink = seeded_wallet(201, ScriptKind::P2wpkh, Network::Regtest)
        .unwrap()
        .address();
    a.mine(1, &authority.address());
    a.mine(1, &owner.address());
    a.mine(100, &sink);
    b.mine(7, &sink);
    b.mine(1, &authority.address());
    b.mine(1, &owner.address());
    b.mine(100, &sink);

    let authority_addr = authority.address().to_string();
    let deployment = Deployment {
        scheme: "v3",
        first: &first,
        authority: &authority_addr,
        source: &url_a,
    };
    let index_into = |db: &str, extra: &[&str]| deployment.index(db, extra);
    let index = |extra: &[&str]| index_into(&dbs, extra);
    index(&[]);

    // Announce on A: H_A two blocks ahead, B named by its genesis and its tip.
    let h_a = a.height() + 2;
    let genesis = b.block_hash(0).to_string();
    let anchor = b.best_block_hash().to_string();
    send(
        &a,
        &db,
        &authority,
        &wif(90),
        &[
            "migrate-announce",
            "--last-block",
            &h_a.to_string(),
            "--genesis",
            &genesis,
            "--anchor",
            &anchor,
        ],
    );
    a.mine(1, &sink); // H_A
    // After H_A, foo.test's owner updates it on A: ignored once A is frozen.
    send(
        &a,
        &db,
        &owner,
        &wif(4),
        &["update", "foo.test", "--value-hash", &"77".repeat(20)],
    );
    index(&["--migrate-to", &url_b]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--db", &dbs, "--json"])).unwrap();
    assert_eq!(status["tip"]["height"], h_a, "{status}");
    assert_eq!(status["segments"][0]["frozen"], true, "{status}");
    let ch_a = status["consensus_hash"].as_str().unwrap().to_owned();

    // The binding on B: commit, then reveal two blocks later (W = 3), then K - 1 blocks.
    let salt = "5a".repeat(32);
    send(
        &b,
        &db,
        &authority,
        &wif(90),
        &["migrate-commit", "--salt", &salt],
    );
    b.mine(1, &sink);
    send(
        &b,
        &db,
        &authority,
        &wif(90),
        &["migrate-reveal", "--salt", &salt],
    );
    let reveal_height = b.height();
    b.mine(1, &sink);
    index(&["--migrate-to", &url_b]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--db", &dbs, "--json"])).unwrap();
    let segments = status["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{status}");
    assert_eq!(segments[0]["last_height"], h_a);
    assert_eq!(segments[1]["first_height"], h_a + 1);
    assert_eq!(segments[1]["chain_first"], reveal_height);
    assert_eq!(segments[1]["binding"]["consensus_hash"], ch_a.as_str());
    let text = ok(&["status", "--db", &dbs]);
    assert!(text.contains("segment:"), "{text}");
    // `ops` shows the announcement on A and the binding on B.
    let ops_at = |h: u64| ok(&["ops", "--db", &dbs, "--height", &h.to_string()]);
    assert!(ops_at(h_a - 1).contains("MIGRATE_ANNOUNCE"));
    let bind = ops_at(h_a + 1);
    assert!(
        bind.contains("MIGRATE_BIND") && bind.contains(&ch_a),
        "{bind}"
    );

    // On B: foo.test goes to the authority; the authority registers new.test.
    let foo = || -> serde_json::Value {
        serde_json::from_str(&ok(&["names", "show", "foo.test", "--db", &dbs])).unwrap()
    };
    assert_ne!(
        foo()["value_hash"],
        "77".repeat(20),
        "A's update after H_A counts"
    );
    send(
        &b,
        &db,
        &owner,
        &wif(4),
        &["transfer", "foo.test", "--to", &authority_addr],
    );
    index(&["--migrate-to", &url_b]);
    let burn = vc_names::price::name_price("new", &vc_names::scenario::test_namespace_params())
        .max(11_000)
        .to_string();
    send(
        &b,
        &db,
        &authority,
        &wif(90),
        &[
            "preorder",
            "new.test",
            "--owner",
            &authority_addr,
            "--burn",
            &burn,
        ],
    );
    index(&["--migrate-to", &url_b]);
    send(
        &b,
        &db,
        &authority,
        &wif(90),
        &["register", "new.test", "--owner", &authority_addr],
    );
    b.mine(1, &sink);
    index(&["--migrate-to", &url_b]);
    assert_eq!(foo()["owner_address"], authority_addr.as_str());
    let new: serde_json::Value =
        serde_json::from_str(&ok(&["names", "show", "new.test", "--db", &dbs])).unwrap();
    assert_eq!(new["owner_address"], authority_addr.as_str());

    // A light client trusting the newest hash (B) proves foo.test's registration on A and its
    // transfer on B.
    let first_block: u64 = first.parse().unwrap();
    let registered = height_of_op(&db, b':', b"foo.test", first_block);
    let transferred = height_of_op(&db, b'>', b"foo.test", h_a + 1);
    assert!(registered <= h_a && transferred > h_a);
    {
        let store = ReadOnlyStore::open(&db).unwrap();
        let view = store.view().unwrap();
        let tip = view.tip().unwrap().unwrap();
        for m in [registered, transferred] {
            let bytes = vc_chash::prove(&view, tip.height, m).unwrap().encode();
            let block =
                vc_chash::verify(&bytes, first_block, tip.height, &tip.consensus_hash, m).unwrap();
            assert!(
                block
                    .records
                    .iter()
                    .any(|r| r.windows(8).any(|w| w == b"foo.test")),
                "block {m}"
            );
        }
    }

    // A database bootstrapped from a snapshot at H_A, checked against CH_A(H_A), then indexed
    // on B equals the one indexed across the migration.
    let at_h_a = dir.path().join("at-h-a.redb");
    let at = at_h_a.to_string_lossy().into_owned();
    index_into(&at, &["--to", &h_a.to_string()]);
    let snap = dir.path().join("h_a.vcsnap");
    ok(&["snapshot", "--db", &at, "--out", &snap.to_string_lossy()]);
    let boot = dir.path().join("boot.redb");
    let config = ReadOnlyStore::open(&db).unwrap().meta().clone();
    let names = vc_names::NamesConfig::from_meta(&config).unwrap();
    let spec = vc_engine::Application::spec(&vc_names::NamesApp::new(names));
    let trusted = vc_chash::ConsensusHash::V2(ch_a.parse().unwrap());
    let (store, _) = vc_store::snapshot::import(
        &snap,
        &boot,
        vc_engine::store_config(&spec, Network::Regtest, vc_engine::DEFAULT_UNDO_WINDOW),
        (h_a, trusted),
    )
    .unwrap();
    drop(store);
    ok(&[
        "index",
        "--confirmations",
        "1",
        "--source",
        &url_a,
        "--migrate-to",
        &url_b,
        "--db",
        &boot.to_string_lossy(),
    ]);
    assert_eq!(contents(&boot), contents(&db));
    let meta = Store::read_meta(&boot).unwrap();
    assert_eq!(meta.app_params, config.app_params);

    // `serve` over the migrated database and `compare` against the bootstrapped one agree at
    // every height, across both segments.
    let (mut server, url) = serve_support::serve(&db);
    // The light client of the CLI, trusting B's newest hash: foo.test's current record (its
    // transfer on B) and the block of its registration on A; trusting CH_A(H_A): its owner
    // on A.
    let tip: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--db", &dbs, "--json"])).unwrap();
    let trusted_b = format!(
        "{}:{}",
        tip["tip"]["height"],
        tip["consensus_hash"].as_str().unwrap()
    );
    let light_foo = |trusted: &str| {
        ok(&[
            "light",
            "name",
            "foo.test",
            "--server",
            &url,
            "--trusted",
            trusted,
        ])
    };
    let now = light_foo(&trusted_b);
    let script_hex = |w: &Wallet| vc_chash::hex::encode(w.script().as_bytes());
    assert!(
        now.contains(&format!("owner {}", script_hex(&authority))),
        "{now}"
    );
    let trusted_a = format!("{h_a}:{ch_a}");
    let then = light_foo(&trusted_a);
    assert!(
        then.contains(&format!("owner {}", script_hex(&owner))),
        "{then}"
    );
    ok(&[
        "light",
        "verify",
        "--server",
        &url,
        "--trusted",
        &trusted_b,
        "--height",
        &registered.to_string(),
    ]);
    let out = cli::run(&[
        "compare",
        "--json",
        "--server",
        &url,
        "--db",
        &boot.to_string_lossy(),
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A snapshot taken after H_A, at the tip on B, carries the segments: the database imported
    // from it shows the same ones and goes on reading B, to the same tip as the migrated one.
    let status_of = |db: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&["status", "--db", db, "--json"])).unwrap()
    };
    let before = status_of(&dbs);
    let on_b = before["tip"]["height"].as_u64().unwrap();
    assert!(on_b > h_a + 1, "{before}");
    let snap_b = dir.path().join("on-b.vcsnap");
    ok(&["snapshot", "--db", &dbs, "--out", &snap_b.to_string_lossy()]);
    let after = dir.path().join("after.redb");
    let afters = after.to_string_lossy().into_owned();
    let trusted =
        vc_chash::ConsensusHash::V2(before["consensus_hash"].as_str().unwrap().parse().unwrap());
    let (store, _) = vc_store::snapshot::import(
        &snap_b,
        &after,
        vc_engine::store_config(&spec, Network::Regtest, vc_engine::DEFAULT_UNDO_WINDOW),
        (on_b, trusted),
    )
    .unwrap();
    drop(store);
    let imported = status_of(&afters);
    assert_eq!(imported["segments"], before["segments"], "{imported}");
    assert_eq!(before["segments"].as_array().unwrap().len(), 2, "{before}");
    b.mine(2, &sink);
    index(&["--migrate-to", &url_b]);
    index_into(&afters, &["--migrate-to", &url_b]);
    let (migrated, imported) = (status_of(&dbs), status_of(&afters));
    assert_eq!(migrated["tip"]["height"], on_b + 2, "{migrated}");
    assert_eq!(imported["tip"], migrated["tip"]);
    assert_eq!(imported["consensus_hash"], migrated["consensus_hash"]);
    assert_eq!(imported["segments"], migrated["segments"]);
    assert_eq!(contents(&after), contents(&db));
}

/// The failure rules of `docs/migration.md` section 7 on two real chains: a reveal that does
/// not open its commit is refused and a matching one still binds; a reorganisation of B that
/// removes the binding rolls the database back to H_A (the commit and reveal, mined again
/// together in one block, do not bind: the reveal must follow its commit) until a new reveal
/// binds; and a deep fork of A after the migration is ignored.
#[test]
fn failure_rules_on_two_real_chains() {
    let Some((a, b, authority, sink)) = funded_chains(91) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.redb");
    let dbs = db.to_string_lossy().into_owned();
    let (url_a, url_b) = (source_url(&a), source_url(&b));
    let authority_addr = authority.address().to_string();
    b.mine(5, &sink);
    let first = (a.height() + 1).to_string();
    let deployment = Deployment {
        scheme: "v2",
        first: &first,
        authority: &authority_addr,
        source: &url_a,
    };
    let index = || {
        deployment.index(&dbs, &["--migrate-to", &url_b]);
        serde_json::from_str::<serde_json::Value>(&ok(&["status", "--db", &dbs, "--json"])).unwrap()
    };
    a.mine(3, &sink);
    index();
    let h_a = a.height() + 2;
    let announce_height = a.height() + 1;
    announce(&a, &b, &db, &authority, &wif(91), h_a);
    a.mine(2, &sink);
    let status = index();
    assert_eq!(status["tip"]["height"], h_a);
    let ch_a = status["consensus_hash"].clone();

    // A commit, a reveal with another salt (refused), then the matching reveal (binds).
    let salt = "11".repeat(32);
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-commit", "--salt", &salt],
    );
    let commit_height = b.height();
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-reveal", "--salt", &"22".repeat(32)],
    );
    b.mine(1, &sink);
    let status = index();
    assert_eq!(
        status["tip"]["height"], h_a,
        "a mismatched reveal binds nothing"
    );
    assert_eq!(status["segments"].as_array().unwrap().len(), 1);
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-reveal", "--salt", &salt],
    );
    let reveal_height = b.height();
    assert!(reveal_height - commit_height <= 3);
    b.mine(1, &sink);
    let status = index();
    assert_eq!(
        status["segments"][1]["chain_first"], reveal_height,
        "{status}"
    );
    assert_eq!(
        status["tip"]["height"],
        h_a + 1 + (b.height() - reveal_height)
    );

    // B drops the commit's block and everything after: back to H_A, still frozen. The commit
    // and the reveals return to the mempool and are mined again together in one block, where
    // no reveal follows its commit.
    b.invalidate(&b.block_hash(commit_height));
    b.mine(6, &sink);
    let status = index();
    assert_eq!(status["tip"]["height"], h_a, "{status}");
    assert_eq!(status["consensus_hash"], ch_a);
    assert_eq!(status["segments"].as_array().unwrap().len(), 1);
    // A reveal of a new salt without its commit is refused; a new commit and reveal bind.
    let salt = "33".repeat(32);
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-reveal", "--salt", &salt],
    );
    b.mine(1, &sink);
    assert_eq!(index()["tip"]["height"], h_a, "a reveal without its commit");
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-commit", "--salt", &salt],
    );
    send(
        &b,
        &db,
        &authority,
        &wif(91),
        &["migrate-reveal", "--salt", &salt],
    );
    let reveal_height = b.height();
    b.mine(1, &sink);
    let status = index();
    assert_eq!(
        status["segments"][1]["chain_first"], reveal_height,
        "{status}"
    );
    let tip = status["tip"]["height"].as_u64().unwrap();
    assert!(tip > h_a);

    // A deep fork of A below the announcement, longer than A: ignored, B wins.
    a.invalidate(&a.block_hash(announce_height - 1));
    a.mine(20, &sink);
    b.mine(1, &sink);
    let status = index();
    assert_eq!(status["tip"]["height"], tip + 1, "{status}");
    let view_ch = |h: u64| {
        let store = ReadOnlyStore::open(&db).unwrap();
        let view = store.view().unwrap();
        view.chain_entry(h).unwrap().unwrap().consensus_hash
    };
    assert_eq!(vc_chash::hex::encode(&view_ch(h_a)), ch_a.as_str().unwrap());
}

/// A marker deployment (the names registry) follows chain B through an Electrum server
/// (electrs on B) after the migration, and ends equal to the same migration followed through
/// B's Core.
#[test]
fn a_marker_deployment_follows_the_target_chain_through_electrum() {
    let Some((a, b, authority, sink)) = funded_chains(92) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("electrum.redb");
    let dbs = db.to_string_lossy().into_owned();
    let url_a = source_url(&a);
    let authority_addr = authority.address().to_string();
    let Some(electrs) = Electrs::start(&b) else {
        return;
    };
    let url_b = format!("electrum://127.0.0.1:{}", electrs.port());
    let first = (a.height() + 1).to_string();
    let deployment = Deployment {
        scheme: "v2",
        first: &first,
        authority: &authority_addr,
        source: &url_a,
    };
    let index = |db: &str, target: &str| {
        deployment.index(db, &["--registry", "default", "--migrate-to", target]);
    };
    // Without the registry the target chain's Electrum server would miss operations: refused.
    let plain = dir.path().join("plain.redb");
    let out = cli::run(&[
        "index",
        "--network",
        "regtest",
        "--scheme",
        "v2",
        "--first-block",
        &first,
        "--migration-authority",
        &authority_addr,
        "--source",
        &url_a,
        "--migrate-to",
        &url_b,
        "--db",
        &plain.to_string_lossy(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("marker scripts"));
    a.mine(2, &sink);
    index(&dbs, &url_b);
    let h_a = a.height() + 2;
    announce(&a, &b, &db, &authority, &wif(92), h_a);
    a.mine(2, &sink);
    index(&dbs, &url_b);
    let salt = "44".repeat(32);
    send(
        &b,
        &db,
        &authority,
        &wif(92),
        &["migrate-commit", "--salt", &salt],
    );
    send(
        &b,
        &db,
        &authority,
        &wif(92),
        &["migrate-reveal", "--salt", &salt],
    );
    let reveal_height = b.height();
    b.mine(3, &sink);
    electrs.wait_synced(&b);
    index(&dbs, &url_b);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--db", &dbs, "--json"])).unwrap();
    assert_eq!(
        status["segments"][1]["chain_first"], reveal_height,
        "{status}"
    );
    assert_eq!(
        status["tip"]["height"],
        h_a + 1 + (b.height() - reveal_height)
    );

    // The same deployment following B through Core: the same hashes.
    let core_db = dir.path().join("core.redb");
    index(&core_db.to_string_lossy(), &source_url(&b));
    assert_eq!(contents(&core_db), contents(&db));
}
