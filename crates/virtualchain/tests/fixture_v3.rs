//! The fixture's v3 names history (`chain.json`'s `names_v3`), as a reader of the docs would
//! replay it: `index --scheme v3` from the blk files reproduces the recorded consensus hash,
//! and `light name` against `serve` proves foo.test's transfer (another owner just before it)
//! and baz.test's revoke, each with one state proof.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use vc_chash::History;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve_support;

use cli::{ok, run};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain")
}

#[test]
fn the_fixtures_v3_history_proves_a_transfer_and_a_revoke() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("chain.json")).unwrap()).unwrap();
    let v3 = &manifest["names_v3"];
    assert_eq!(v3["scheme"], "v3");
    let (first, tip) = (
        v3["first_block"].as_u64().unwrap(),
        v3["tip_height"].as_u64().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names-v3.redb");
    let blocks = format!("blk:{}", fixture().join("blocks").display());
    ok(&[
        "--network",
        "regtest",
        "index",
        "--source",
        &blocks,
        "--scheme",
        "v3",
        "--first-block",
        &first.to_string(),
        "--to",
        &tip.to_string(),
        "--confirmations",
        "0",
        "--db",
        db.to_str().unwrap(),
    ]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--json", "--db", db.to_str().unwrap()])).unwrap();
    assert_eq!(status["scheme"], "v3");
    assert_eq!(status["consensus_hash"], v3["consensus_hash"]);

    let owner = |name: &str| {
        v3["names"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()["owner_script"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The height of foo.test's transfer: the first from which its proven owner is the final one.
    let store = vc_store::ReadOnlyStore::open(&db).unwrap();
    let view = store.view().unwrap();
    let owner_at = |m: u64| match view
        .state_proof("names", b"foo.test", tip, m)
        .unwrap()
        .answer
    {
        vc_chash::state::proof::Answer::Present(v) => {
            let r: vc_names::state::NameRecord = vc_codec::storage::from_bytes(&v).unwrap();
            Some(vc_chash::hex::encode(&r.owner))
        }
        _ => None,
    };
    let transfer = (first..=tip)
        .find(|m| owner_at(*m).as_deref() == Some(owner("foo.test").as_str()))
        .unwrap();
    let before = owner_at(transfer - 1).expect("foo.test existed before its transfer");
    assert_ne!(before, owner("foo.test"));

    let (mut server, url) = serve_support::serve(&db);
    let trusted = |h: u64| format!("{h}:{}", view.consensus_hash(h).unwrap().unwrap());
    let light = |name: &str, h: u64| {
        ok(&[
            "light",
            "name",
            name,
            "--server",
            &url,
            "--trusted",
            &trusted(h),
        ])
    };
    let now = light("foo.test", tip);
    assert!(
        now.contains(&format!("owner {}", owner("foo.test"))),
        "{now}"
    );
    let then = light("foo.test", transfer - 1);
    assert!(then.contains(&format!("owner {before}")), "{then}");
    let baz = light("baz.test", tip);
    assert!(
        baz.contains("revoked") && baz.contains(&owner("baz.test")),
        "{baz}"
    );
    let none = light("nope.test", tip);
    assert!(none.contains("no such name"), "{none}");
    // The legacy deployment on the same chain is another database: its trusted hash does not
    // fit this server's scheme, and the client says so rather than prove anything.
    let legacy = run(&[
        "light",
        "name",
        "foo.test",
        "--server",
        &url,
        "--trusted",
        &format!(
            "{}:{}",
            manifest["names"]["tip_height"],
            manifest["names"]["consensus_hash"].as_str().unwrap()
        ),
    ]);
    assert_ne!(legacy.status.code(), Some(0));
    server.kill().unwrap();
    let _ = server.wait();
}
