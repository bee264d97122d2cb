//! The proof server over synthetic stores of both schemes: random proofs verify, every endpoint
//! answers from the store (errors as JSON), and the server follows a writer through a reorg.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;
use vc_chash::{ConsensusHash, History, Scheme};
use vc_light::{LightClient, Trusted};
use vc_serve::{RunningServer, ServeConfig, Server};
use vc_store::{ReadOnlyStore, Store};
use vc_testnode::synthetic::{self, mix};

const FIRST: u64 = 100;

fn start(path: &std::path::Path) -> RunningServer {
    let store = ReadOnlyStore::open(path).unwrap();
    Server::bind(
        store,
        None,
        ServeConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap()
    .spawn()
    .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, content type, body)
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let mut r = agent().get(url).call().unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.body_mut().read_to_vec().unwrap())
}

fn json(url: &str) -> (u16, Value) {
    let (status, ct, body) = get(url);
    assert!(ct.starts_with("application/json"), "{url}: {ct}");
    (status, serde_json::from_slice(&body).unwrap())
}

/// A block's records as a verified proof returns them: in block order for v2, in the order
/// the legacy ops hash sorts them for legacy (which commits no order).
fn records(store: &Store, height: u64) -> Vec<Vec<u8>> {
    let view = store.view().unwrap();
    let mut records = view.records(height).unwrap().unwrap();
    if view.scheme() == Scheme::Legacy {
        records.sort_by_key(|r| vc_chash::legacy::record_digest(r));
    }
    records
}

#[test]
fn random_proofs_verify_for_both_schemes() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (store, chs) = synthetic::create(&path, scheme, FIRST, 700).unwrap();
        let server = start(&path);
        let client = LightClient::new(&server.url(), Duration::from_secs(10)).unwrap();
        assert_eq!(client.first_block().unwrap(), FIRST);
        let tip = FIRST + 699;
        let mut pairs = vec![(FIRST, FIRST), (tip, tip), (FIRST, tip), (tip - 1, tip)];
        for i in 0..80 {
            let n = FIRST + mix(i) % 700;
            let m = FIRST + mix(i + 1000) % (n - FIRST + 1);
            pairs.push((m, n));
        }
        let mut with_records = 0;
        for (m, n) in pairs {
            let trusted = Trusted {
                height: n,
                consensus_hash: chs[(n - FIRST) as usize],
            };
            let block = client.verify(FIRST, &trusted, m).unwrap();
            assert_eq!(block.height, m);
            assert_eq!(block.consensus_hash, chs[(m - FIRST) as usize]);
            assert_eq!(block.records, records(&store, m), "{scheme:?} m={m} n={n}");
            with_records += usize::from(!block.records.is_empty());

            // The JSON rendering carries the same proof.
            let (status, v) = json(&format!(
                "{}/v1/proofs/{m}?trusted={n}&format=json",
                server.url()
            ));
            assert_eq!(status, 200);
            assert_eq!(v["target"], m);
            assert_eq!(v["trusted"], n);
            assert_eq!(v["scheme"], scheme.name());
            let encoded = vc_chash::hex::decode(v["encoded"].as_str().unwrap()).unwrap();
            assert_eq!(encoded, client.proof(n, m).unwrap());
        }
        assert!(
            with_records > 10,
            "{scheme:?}: only {with_records} proofs had records"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn endpoints_answer_from_the_store_and_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, chs) = synthetic::create(&path, Scheme::V2, FIRST, 50).unwrap();
    let server = start(&path);
    let url = server.url();
    let tip = FIRST + 49;

    let (s, v) = json(&format!("{url}/v1/tip"));
    assert_eq!(s, 200);
    assert_eq!(v["app"]["name"], "synthetic");
    assert_eq!(v["app"]["scheme"], "v2");
    assert_eq!(v["tip"]["height"], tip);
    assert_eq!(v["tip"]["consensus_hash"], chs[49].to_string());

    let view = store.view().unwrap();
    let with_ops = (FIRST..=tip)
        .find(|h| !view.ops(*h).unwrap().is_empty())
        .unwrap();
    let (s, v) = json(&format!("{url}/v1/blocks/{with_ops}"));
    assert_eq!(s, 200);
    let entry = view.chain_entry(with_ops).unwrap().unwrap();
    assert_eq!(
        v["block_hash"],
        vc_chash::Hash256(entry.block_hash).reversed().to_string()
    );
    assert_eq!(
        v["consensus_hash"],
        chs[(with_ops - FIRST) as usize].to_string()
    );
    assert_eq!(v["operations"], view.ops(with_ops).unwrap().len());
    let (s, v) = json(&format!("{url}/v1/blocks/{with_ops}/ops"));
    assert_eq!(s, 200);
    let ops = view.ops(with_ops).unwrap();
    assert_eq!(v["operations"].as_array().unwrap().len(), ops.len());
    assert_eq!(
        v["operations"][0]["payload"],
        vc_chash::hex::encode(&ops[0].payload)
    );
    assert_eq!(
        v["operations"][0]["records"][0],
        vc_chash::hex::encode(&ops[0].records[0])
    );

    // Consensus hash -> height, and freshness.
    let ch = chs[20];
    let (s, v) = json(&format!("{url}/v1/consensus/{ch}"));
    assert_eq!((s, v["height"].as_u64()), (200, Some(FIRST + 20)));
    let fresh = |h: u64, w: u64| {
        json(&format!(
            "{url}/v1/consensus/{ch}/fresh?height={h}&window={w}"
        ))
        .1["fresh"]
            .as_bool()
            .unwrap()
    };
    assert!(fresh(FIRST + 21, 1));
    assert!(fresh(FIRST + 30, 10));
    assert!(!fresh(FIRST + 31, 10));
    assert!(!fresh(FIRST + 20, 10));

    // Errors: JSON with a code, and the right status.
    for (path, status, code) in [
        ("/v1/blocks/99", 404, "not_found"),
        ("/v1/blocks/abc", 400, "bad_request"),
        ("/v1/blocks/-1/ops", 400, "bad_request"),
        ("/v1/consensus/00", 400, "bad_request"),
        (
            &format!("/v1/consensus/{}", "ab".repeat(16))[..],
            400,
            "bad_request",
        ),
        (
            &format!("/v1/consensus/{}", "ab".repeat(32))[..],
            404,
            "not_found",
        ),
        (
            &format!("/v1/consensus/{ch}/fresh?height=120"),
            400,
            "bad_request",
        ),
        (
            &format!("/v1/consensus/{ch}/fresh?height=999&window=3"),
            404,
            "not_found",
        ),
        ("/v1/proofs/120?trusted=110", 400, "bad_request"),
        ("/v1/proofs/99?trusted=110", 400, "bad_request"),
        ("/v1/proofs/120?trusted=150", 404, "not_found"),
        ("/v1/proofs/120?trusted=130&format=xml", 400, "bad_request"),
        ("/v1/proofs/120?trust=130", 400, "bad_request"),
        ("/v1/names/alice.id", 404, "no_route"),
        ("/v2/tip", 404, "no_route"),
    ] {
        let (s, v) = json(&format!("{url}{path}"));
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (status, code),
            "{path}: {v}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let r = agent().post(&format!("{url}/v1/tip")).send("x").unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let long = format!("{url}/v1/blocks/1?{}", "a".repeat(3000));
    assert_eq!(json(&long).0, 400);

    // Binary proofs by default.
    let (s, ct, body) = get(&format!("{url}/v1/proofs/120?trusted=130"));
    assert_eq!((s, ct.as_str()), (200, "application/octet-stream"));
    vc_chash::verify(&body, FIRST, 130, &chs[30], 120).unwrap();

    // The OpenAPI document is the one in docs/, and documents every route.
    let (s, _, body) = get(&format!("{url}/v1/openapi.json"));
    assert_eq!(s, 200);
    let docs = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    assert_eq!(
        body, docs,
        "docs/openapi.json differs from crates/vc-serve/openapi.json"
    );
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for route in [
        "/v1/tip",
        "/v1/blocks/{height}",
        "/v1/blocks/{height}/ops",
        "/v1/consensus/{ch}",
        "/v1/consensus/{ch}/fresh",
        "/v1/proofs/{m}",
        "/v1/state/{namespace}/{key}",
        "/v1/snapshots",
        "/v1/snapshots/{height}",
        "/v1/names/{key}",
        "/v1/contracts/{key}",
        "/v1/openapi.json",
        "/metrics",
        "/v1/events",
        "/",
        "/healthz/live",
        "/healthz/ready",
    ] {
        assert!(doc["paths"].get(route).is_some(), "{route} undocumented");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 17);

    // Metrics count what was asked.
    let (s, _, body) = get(&format!("{url}/metrics"));
    assert_eq!(s, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("vc_http_requests_total{route=\"/v1/proofs/{m}\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("vc_http_requests_total{route=\"/v1/proofs/{m}\",status=\"400\"} 4"));
    assert!(text.contains("vc_http_requests_total{route=\"unmatched\",status=\"404\"} 2"));
    assert!(text.contains(&format!("vc_indexer_height{{app=\"synthetic\"}} {tip}")));
    assert!(text.contains("vc_http_request_duration_seconds_count{route=\"/v1/tip\"} 1"));
    server.shutdown().unwrap();
}

#[test]
fn the_server_follows_the_writer_through_a_reorg() {
    for scheme in [Scheme::Legacy, Scheme::V2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (store, mut chs) = synthetic::create(&path, scheme, FIRST, 200).unwrap();
        let server = start(&path);
        let url = server.url();
        let client = LightClient::new(&url, Duration::from_secs(10)).unwrap();
        let ch_of = |chs: &[ConsensusHash], h: u64| chs[(h - FIRST) as usize];

        // Index the consensus hashes, then grow the chain: the server sees each commit.
        let old_tip_ch = ch_of(&chs, FIRST + 199);
        assert_eq!(json(&format!("{url}/v1/consensus/{old_tip_ch}")).0, 200);
        chs.extend(synthetic::extend(&store, FIRST + 200, FIRST + 219, 0).unwrap());
        assert_eq!(
            json(&format!("{url}/v1/tip")).1["tip"]["height"],
            FIRST + 219
        );
        let new = ch_of(&chs, FIRST + 219);
        assert_eq!(
            json(&format!("{url}/v1/consensus/{new}")).1["height"],
            FIRST + 219
        );

        // A reorg of 8 blocks onto another branch.
        store.rollback_to(FIRST + 211).unwrap();
        let replaced: Vec<ConsensusHash> = chs.drain(212..).collect();
        chs.extend(synthetic::extend(&store, FIRST + 212, FIRST + 224, 1).unwrap());
        for ch in &replaced {
            let (s, v) = json(&format!("{url}/v1/consensus/{ch}"));
            assert_eq!(s, 404, "{v}");
        }
        for h in [FIRST + 211, FIRST + 212, FIRST + 224] {
            let ch = ch_of(&chs, h);
            assert_eq!(json(&format!("{url}/v1/consensus/{ch}")).1["height"], h);
        }
        // Proofs verify against the new branch and are refuted by the replaced one.
        let trusted = Trusted {
            height: FIRST + 224,
            consensus_hash: ch_of(&chs, FIRST + 224),
        };
        for m in [FIRST, FIRST + 150, FIRST + 212, FIRST + 224] {
            let b = client.verify(FIRST, &trusted, m).unwrap();
            assert_eq!(b.records, records(&store, m));
        }
        let stale = Trusted {
            height: FIRST + 219,
            consensus_hash: replaced[7],
        };
        let e = client.verify(FIRST, &stale, FIRST + 215).unwrap_err();
        assert!(e.is_refutation(), "{e}");
        server.shutdown().unwrap();
    }
}
