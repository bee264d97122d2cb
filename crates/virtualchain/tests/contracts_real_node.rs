//! The contract platform against a real regtest bitcoind, through the binary only:
//! `contracts deploy` (commit and reveal, the code in a taproot witness envelope) of the
//! counter and token guests, `contracts call`, `index --app contracts --scheme v3`, a reorg
//! (invalidateblock, then reconsiderblock) undoing and redoing the calls, the state read
//! through `serve` (`/v1/contracts/{id}`), and a storage value proven by `light state` with
//! one v3 state proof. Also hostile operations on chain: a module the VM refuses (refused by
//! the writer, then sent by hand), a call to an unknown contract, a call that loops forever.
//!
//! Needs bitcoind (`VC_REQUIRE_BITCOIND=1` makes its absence a failure) and the guests
//! (`cargo xtask guests`, `VC_VM_GUESTS`; `VC_REQUIRE_WASM=1` likewise).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Address, Network, Txid};
use vc_testnode::TestNode;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve_support;

use cli::{ok, run};

/// The guests directory, or `None` (said) when it is not set and not required.
fn guests() -> Option<PathBuf> {
    let required = std::env::var("VC_REQUIRE_WASM").is_ok_and(|v| v == "1");
    match std::env::var_os("VC_VM_GUESTS") {
        Some(d) => Some(PathBuf::from(d)),
        None if required => panic!("VC_REQUIRE_WASM=1 but VC_VM_GUESTS is unset"),
        None => {
            eprintln!(
                "SKIPPED: VC_VM_GUESTS is unset; run `cargo xtask guests` and set it to run the \
                 contracts real-node test"
            );
            None
        }
    }
}

fn source_url(node: &TestNode) -> String {
    format!(
        "core://{}?cookie={}",
        node.url().trim_start_matches("http://"),
        node.cookie_file().display()
    )
}

const SEED: u8 = 41;

fn wif() -> String {
    bitcoin::PrivateKey::new(
        SecretKey::from_slice(&[SEED; 32]).unwrap(),
        Network::Regtest,
    )
    .to_wif()
}

fn writer() -> vc_contracts::build::Writer {
    vc_contracts::build::Writer::new(SecretKey::from_slice(&[SEED; 32]).unwrap())
}

fn u64_hex(n: u64) -> String {
    vc_chash::hex::encode(&n.to_be_bytes())
}

/// Runs a writer command and returns its JSON.
fn send(node: &TestNode, args: &[&str]) -> serde_json::Value {
    let url = source_url(node);
    let mut all = vec!["--network", "regtest", "contracts"];
    all.extend_from_slice(args);
    let wif = wif();
    all.extend_from_slice(&["--wif", &wif, "--source", &url, "--fee-rate", "2"]);
    serde_json::from_str(&ok(&all)).unwrap()
}

/// `index` into `db`, which must succeed; returns its log (the summary line counts the
/// rejections by code).
fn index(node: &TestNode, db: &Path) -> String {
    let url = source_url(node);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args([
            "index",
            "--network",
            "regtest",
            "--app",
            "contracts",
            "--scheme",
            "v3",
            "--confirmations",
            "1",
            "--source",
            &url,
            "--db",
            &db.to_string_lossy(),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("VIRTUALCHAIN_DB")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// A JSON answer of `serve`.
fn get_json(url: &str) -> serde_json::Value {
    let text = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn show(db: &Path, contract: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&[
        "contracts",
        "show",
        contract,
        "--db",
        &db.to_string_lossy(),
    ]))
    .unwrap()
}

/// The value of `key` (hex) in a contract's storage as `show` prints it.
fn stored(v: &serde_json::Value, key: &str) -> Option<String> {
    v["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .map(|e| e["value"].as_str().unwrap().to_owned())
}

/// The txids of the operations accepted at `height` (`ops` lists accepted ones only).
fn accepted_txids(db: &Path, height: u64) -> Vec<String> {
    let out = ok(&[
        "ops",
        "--db",
        &db.to_string_lossy(),
        "--height",
        &height.to_string(),
    ]);
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["txid"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn contracts_deploy_call_reorg_serve_and_prove_on_a_real_node() {
    let Some(dir) = guests() else { return };
    let Some(node) = TestNode::start() else {
        return;
    };
    let counter = dir.join("counter.wasm");
    let token = dir.join("token.wasm");
    let me = Address::from_script(&writer().script(), Network::Regtest).unwrap();
    let sink = Address::p2wpkh(
        &bitcoin::CompressedPublicKey(
            SecretKey::from_slice(&[SEED + 1; 32])
                .unwrap()
                .public_key(&bitcoin::secp256k1::Secp256k1::new()),
        ),
        Network::Regtest,
    );
    node.mine(3, &me);
    node.mine(100, &sink);

    // Deploys: the counter from 5, the token with 1 000 minted to the deployer.
    let dc = send(
        &node,
        &[
            "deploy",
            "--wasm",
            &counter.to_string_lossy(),
            "--args",
            &u64_hex(5),
        ],
    );
    let dt = send(
        &node,
        &[
            "deploy",
            "--wasm",
            &token.to_string_lossy(),
            "--args",
            &u64_hex(1_000),
        ],
    );
    node.mine(1, &sink);
    let (c, t) = (
        dc["contract"].as_str().unwrap().to_owned(),
        dt["contract"].as_str().unwrap().to_owned(),
    );

    // Calls: inc paying 2 000 sat, a transfer of 300 to the sink's script.
    send(&node, &["call", &c, "inc", "--amount", "2000"]);
    let mut transfer = u64_hex(300);
    transfer.push_str(&vc_chash::hex::encode(sink.script_pubkey().as_bytes()));
    send(&node, &["call", &t, "transfer", "--args", &transfer]);
    let calls_block = node.mine(1, &sink)[0];
    let calls_height = node.height();

    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("contracts.redb");
    index(&node, &db);
    let sc = show(&db, &c);
    assert_eq!(stored(&sc, "6e").as_deref(), Some(u64_hex(6).as_str()));
    let mut alice_key = "62".to_owned();
    alice_key.push_str(&vc_chash::hex::encode(writer().script().as_bytes()));
    let mut sink_key = "62".to_owned();
    sink_key.push_str(&vc_chash::hex::encode(sink.script_pubkey().as_bytes()));
    let st = show(&db, &t);
    assert_eq!(
        stored(&st, &alice_key).as_deref(),
        Some(u64_hex(700).as_str())
    );
    assert_eq!(
        stored(&st, &sink_key).as_deref(),
        Some(u64_hex(300).as_str())
    );

    // A reorg: the calls' block is invalidated and an empty block replaces it. The calls are
    // undone, the deploys stay.
    node.invalidate(&calls_block);
    let other = node.mine_with(&sink, &[]);
    index(&node, &db);
    assert_eq!(
        stored(&show(&db, &c), "6e").as_deref(),
        Some(u64_hex(5).as_str())
    );
    let st = show(&db, &t);
    assert_eq!(
        stored(&st, &alice_key).as_deref(),
        Some(u64_hex(1_000).as_str())
    );
    assert_eq!(stored(&st, &sink_key), None);
    // Back: the calls' block is reconsidered and the other one invalidated; the calls are
    // applied again.
    node.reconsider(&calls_block);
    node.invalidate(&other);
    assert_eq!(node.best_block_hash(), calls_block);
    index(&node, &db);
    assert_eq!(
        stored(&show(&db, &c), "6e").as_deref(),
        Some(u64_hex(6).as_str())
    );
    assert!(accepted_txids(&db, calls_height).len() == 2);

    // Hostile operations: a module the VM refuses (the writer refuses to send it; sent by
    // hand it is rejected on chain), a call to a contract nobody deployed, a call that loops.
    let floats = tmp.path().join("floats.wasm");
    std::fs::write(
        &floats,
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "vc_call") (drop (f64.add (f64.const 1) (f64.const 2)))))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let url = source_url(&node);
    let refused = run(&[
        "--network",
        "regtest",
        "contracts",
        "deploy",
        "--wasm",
        &floats.to_string_lossy(),
        "--wif",
        &wif(),
        "--source",
        &url,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a valid contract"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let looping = tmp.path().join("loop.wasm");
    std::fs::write(
        &looping,
        wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "vc_call") (loop $l (br $l))))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let dl = send(&node, &["deploy", "--wasm", &looping.to_string_lossy()]);
    // The refused module, deployed with the library's writer from a coin of the same key.
    let coin = {
        let spent = node.raw_transaction(&dl["reveal"].as_str().unwrap().parse().unwrap());
        vc_contracts::build::Coin {
            outpoint: bitcoin::OutPoint::new(spent.compute_txid(), 1),
            txout: spent.output[1].clone(),
        }
    };
    let bad = writer()
        .deploy(&coin, &std::fs::read(&floats).unwrap(), &[], 2)
        .unwrap();
    node.send(&bad.commit);
    node.send(&bad.reveal);
    node.mine(1, &sink);
    let nobody = Txid::from_byte_array([7; 32]).to_string();
    send(&node, &["call", &nobody, "inc"]);
    send(&node, &["call", dl["contract"].as_str().unwrap(), "spin"]);
    let hostile_height = node.height() + 1;
    node.mine(1, &sink);
    let log = index(&node, &db);
    assert!(
        log.contains("module-refused 1")
            && log.contains("unknown-contract 1")
            && log.contains("vm-out-of-fuel 1"),
        "{log}"
    );
    // The loop contract was deployed; the refused module was not; neither hostile call
    // was accepted.
    assert!(
        run(&[
            "contracts",
            "show",
            dl["contract"].as_str().unwrap(),
            "--db",
            &db.to_string_lossy()
        ])
        .status
        .success()
    );
    assert!(
        !run(&[
            "contracts",
            "show",
            &bad.contract().to_string(),
            "--db",
            &db.to_string_lossy()
        ])
        .status
        .success()
    );
    assert!(accepted_txids(&db, hostile_height).is_empty());
    let status = ok(&["status", "--db", &db.to_string_lossy()]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("contracts") && l.trim_end().ends_with(" 3")),
        "{status}"
    );

    // The state through `serve`, and a storage value proven with one v3 state proof.
    let (mut child, url) = serve_support::serve(&db);
    let body = get_json(&format!("{url}/v1/contracts/{c}"));
    assert_eq!(body["state"]["contract"], c.as_str());
    // The history: the heights of the deploy, the calls and the call that replaced them.
    assert!(body["history"].as_array().unwrap().len() >= 2, "{body}");
    let entry = body["state"]["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "6e")
        .unwrap()
        .clone();
    assert_eq!(entry["value"], u64_hex(6).as_str());
    let tip = get_json(&format!("{url}/v1/tip"));
    let trusted = format!(
        "{}:{}",
        tip["tip"]["height"].as_u64().unwrap(),
        tip["tip"]["consensus_hash"].as_str().unwrap()
    );
    let proven = ok(&[
        "light",
        "state",
        vc_contracts::NS_STORAGE,
        entry["state_key"].as_str().unwrap(),
        "--hex",
        "--server",
        &url,
        "--trusted",
        &trusted,
    ]);
    assert!(
        proven.contains(&format!("value: {}", u64_hex(6))),
        "{proven}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
