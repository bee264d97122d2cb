//! Reproduces every line of `vectors/legacy-vectors.txt` (the project's legacy vectors, a copy
//! of `shared/protocol/legacy-vectors.txt`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;

use vc_chash::history::MemoryHistory;
use vc_chash::legacy::record::{Field, serialize};
use vc_chash::legacy::{self, record_digest};
use vc_chash::{ConsensusHash, Hash256, Scheme, hex};

const VECTORS: &str = include_str!("vectors/legacy-vectors.txt");

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn hex_list(s: &str) -> Vec<Vec<u8>> {
    if s == "-" {
        return Vec::new();
    }
    s.split(',').map(|h| hex::decode(h).unwrap()).collect()
}

/// Parses the Python list literal of section C into owned values.
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

fn python_list(s: &str) -> Vec<Value> {
    let inner = s
        .trim()
        .strip_prefix('[')
        .unwrap()
        .strip_suffix(']')
        .unwrap();
    inner
        .split(", ")
        .map(|item| {
            let item = item.trim();
            if let Some(q) = item.strip_prefix('\'') {
                Value::Str(q.strip_suffix('\'').unwrap().to_string())
            } else if item == "None" {
                Value::None
            } else if item == "True" || item == "False" {
                Value::Bool(item == "True")
            } else if item.contains(['.', 'e']) {
                Value::Float(item.parse().unwrap())
            } else {
                Value::Int(item.parse().unwrap())
            }
        })
        .collect()
}

#[test]
fn every_legacy_vector_reproduces() {
    let mut chain_b: Option<MemoryHistory> = None;
    let mut checked = 0;
    for line in VECTORS.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('A') {
            let f = fields(line);
            let records = hex_list(f["ops"]);
            let priors: Vec<[u8; 16]> = hex_list(f["priors"])
                .into_iter()
                .map(|p| p.try_into().unwrap())
                .collect();
            let ops = legacy::ops_hash(&records);
            assert_eq!(ops.to_string(), f["ops_hash"], "{line}");
            let ch = legacy::consensus_hash(&ops, &priors);
            assert_eq!(hex::encode(&ch), f["ch"], "{line}");
        } else if line.starts_with("B ") {
            let f = fields(line);
            let height: u64 = f["height"].parse().unwrap();
            let chain = chain_b.get_or_insert_with(|| MemoryHistory::new(Scheme::Legacy, 100));
            assert_eq!(
                chain.next_height(),
                height,
                "section B heights are consecutive"
            );
            let records: Vec<Vec<u8>> = (0..height % 3)
                .map(|i| format!("op-{height}-{i}").into_bytes())
                .collect();
            let summary = chain.push_block(Hash256::ZERO, &records);
            assert_eq!(summary.ops_hash.to_string(), f["ops_hash"], "{line}");
            assert_eq!(
                summary.consensus_hash,
                f["ch"].parse::<ConsensusHash>().unwrap(),
                "{line}"
            );
        } else if let Some(rest) = line.strip_prefix("C values=") {
            let (list, rest) = rest.split_once(" -> ").unwrap();
            let (serialized, digest) = rest.split_once(" -> D=").unwrap();
            let values = python_list(list);
            let fields: Vec<Field<'_>> = values
                .iter()
                .map(|v| match v {
                    Value::None => Field::None,
                    Value::Bool(b) => Field::Bool(*b),
                    Value::Int(i) => Field::Int(*i),
                    Value::Float(x) => Field::Float(*x),
                    Value::Str(s) => Field::Str(s.as_bytes()),
                })
                .collect();
            let record = serialize(b"?", &fields);
            assert_eq!(String::from_utf8(record.clone()).unwrap(), serialized);
            assert_eq!(hex::encode(&record_digest(&record)), digest);
        } else {
            panic!("unrecognised vector line: {line}");
        }
        checked += 1;
    }
    // 4 single computations, 8 chain blocks, 1 serialization.
    assert_eq!(checked, 13);
}

#[test]
fn vectors_match_the_shared_protocol_file_when_present() {
    // CI clones the repository with shared/ beside it; keep the copy in sync.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/protocol/legacy-vectors.txt");
    match std::fs::read_to_string(&shared) {
        Ok(text) => assert_eq!(text, VECTORS, "tests/vectors/legacy-vectors.txt is stale"),
        Err(_) => eprintln!(
            "note: {} not found; skipping the sync check",
            shared.display()
        ),
    }
}
