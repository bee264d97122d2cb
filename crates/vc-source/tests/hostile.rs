//! The Core source against a lying node: a loopback server in this test speaks Bitcoin Core's
//! JSON-RPC and REST interfaces over the committed fixture chain, honestly or with one lie, and
//! every lie is a typed error. No node needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::{Encodable, serialize};
use bitcoin::{Block, BlockHash, Network, VarInt};
use serde_json::{Value, json};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode, RetryPolicy};
use vc_source::{BlockSource, SourceError, SpentOutputs};

/// What the fake node lies about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    None,
    /// `/rest/block/<h>` answers with the next block.
    WrongBlock,
    /// The block's header is right, but a transaction was dropped.
    DroppedTransaction,
    /// The last transaction repeated: the merkle root is unchanged (CVE-2012-2459).
    DuplicatedTransaction,
    /// The block's bytes are cut short.
    TruncatedBlock,
    /// `/rest/headers` skips a header.
    UnlinkedHeaders,
    /// Spent outputs (REST and `getblock 3`) are pruned.
    Pruned,
    /// `/rest/spenttxouts` leaves out one input's coin.
    MissingCoin,
}

struct Chain {
    hashes: Vec<BlockHash>,
    blocks: BTreeMap<BlockHash, Block>,
    spent: BTreeMap<BlockHash, SpentOutputs>,
}

fn chain() -> Chain {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain/blocks");
    let source = BlkSource::open(BlkConfig::new(dir, Network::Regtest)).unwrap();
    let tip = source.tip().unwrap().height;
    let mut c = Chain {
        hashes: Vec::new(),
        blocks: BTreeMap::new(),
        spent: BTreeMap::new(),
    };
    for h in 0..=tip {
        let hash = source.block_hash(h).unwrap();
        let block = source.block(&hash).unwrap().block;
        c.spent
            .insert(hash, source.spent_outputs(&hash, &block).unwrap());
        c.blocks.insert(hash, block);
        c.hashes.push(hash);
    }
    c
}

/// REST's `spenttxouts` binary body.
fn encode_spent(spent: &SpentOutputs) -> Vec<u8> {
    let mut out = Vec::new();
    VarInt(spent.0.len() as u64)
        .consensus_encode(&mut out)
        .unwrap();
    for list in &spent.0 {
        VarInt(list.len() as u64)
            .consensus_encode(&mut out)
            .unwrap();
        for o in list {
            o.consensus_encode(&mut out).unwrap();
        }
    }
    out
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

fn ok(body: Vec<u8>) -> Reply {
    Reply { status: 200, body }
}

impl Chain {
    fn height(&self, hash: &BlockHash) -> Option<usize> {
        self.hashes.iter().position(|h| h == hash)
    }

    fn rest(&self, lie: Lie, path: &str) -> Reply {
        let not_found = |text: &str| Reply {
            status: 404,
            body: text.as_bytes().to_vec(),
        };
        let path = path.strip_prefix("/rest/").unwrap_or_default();
        let (resource, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = resource.split('/').collect();
        let hash_of = |s: &str| s.trim_end_matches(".bin").parse::<BlockHash>().ok();
        match parts.as_slice() {
            ["chaininfo.json"] => ok(b"{}".to_vec()),
            ["blockhashbyheight", h] => {
                let h: usize = h.trim_end_matches(".bin").parse().unwrap();
                match self.hashes.get(h) {
                    Some(hash) => ok(serialize(hash)),
                    None => not_found("Block height out of range"),
                }
            }
            ["block", h] => {
                let Some(hash) = hash_of(h) else {
                    return not_found("bad hash");
                };
                let Some(mut block) = self.blocks.get(&hash).cloned() else {
                    return not_found(&format!("{hash} not found"));
                };
                match lie {
                    Lie::WrongBlock => {
                        let next = self.hashes[self.height(&hash).unwrap() + 1];
                        block = self.blocks[&next].clone();
                    }
                    Lie::DroppedTransaction => {
                        block.txdata.pop();
                    }
                    Lie::DuplicatedTransaction => {
                        let last = block.txdata.last().unwrap().clone();
                        block.txdata.push(last);
                    }
                    _ => {}
                }
                let mut bytes = serialize(&block);
                if lie == Lie::TruncatedBlock {
                    bytes.truncate(bytes.len() - 10);
                }
                ok(bytes)
            }
            ["headers", h] => {
                let count: usize = query
                    .strip_prefix("count=")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(5);
                let Some(start) = hash_of(h).and_then(|hash| self.height(&hash)) else {
                    return not_found("unknown block");
                };
                let mut bytes = Vec::new();
                for (i, hash) in self.hashes.iter().skip(start).take(count).enumerate() {
                    if lie == Lie::UnlinkedHeaders && i == 3 {
                        continue;
                    }
                    bytes.extend(serialize(&self.blocks[hash].header));
                }
                ok(bytes)
            }
            ["spenttxouts", h] => {
                let Some(spent) = hash_of(h).and_then(|hash| self.spent.get(&hash)) else {
                    return not_found("unknown block");
                };
                match lie {
                    Lie::Pruned => not_found("Block not available (pruned data)"),
                    Lie::MissingCoin => {
                        let mut spent = spent.clone();
                        if let Some(list) = spent.0.iter_mut().rev().find(|l| !l.is_empty()) {
                            list.pop();
                        }
                        ok(encode_spent(&spent))
                    }
                    _ => ok(encode_spent(spent)),
                }
            }
            _ => not_found("no such resource"),
        }
    }

    fn rpc(&self, lie: Lie, method: &str, params: &[Value]) -> Result<Value, (i64, String)> {
        let tip = self.hashes.len() - 1;
        let hash_param = || params[0].as_str().unwrap().parse::<BlockHash>().unwrap();
        match method {
            "getblockchaininfo" => Ok(json!({
                "chain": "regtest",
                "blocks": tip,
                "bestblockhash": self.hashes[tip].to_string(),
            })),
            "getblockcount" => Ok(json!(tip)),
            "getblockhash" => match self.hashes.get(params[0].as_u64().unwrap() as usize) {
                Some(h) => Ok(json!(h.to_string())),
                None => Err((-8, "Block height out of range".into())),
            },
            "getblock" => {
                let hash = hash_param();
                let Some(block) = self.blocks.get(&hash) else {
                    return Err((-5, "Block not found".into()));
                };
                if lie == Lie::Pruned {
                    return Err((-1, "Block not available (pruned data)".into()));
                }
                Ok(json!(bitcoin::consensus::encode::serialize_hex(block)))
            }
            "getblockheader" => {
                let hash = hash_param();
                let h = self
                    .height(&hash)
                    .ok_or((-5, "Block not found".to_string()))?;
                let header = self.blocks[&hash].header;
                if params.get(1) == Some(&json!(false)) {
                    Ok(json!(bitcoin::consensus::encode::serialize_hex(&header)))
                } else {
                    Ok(json!({
                        "hash": hash.to_string(),
                        "height": h,
                        "previousblockhash": header.prev_blockhash.to_string(),
                    }))
                }
            }
            other => Err((-32601, format!("Method not found: {other}"))),
        }
    }
}

/// Reads one HTTP/1.1 request: (method, path, body).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header == "\r\n" || header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// Serves the chain on a loopback port, with `lie`, until the test process ends.
fn serve(chain: Arc<Chain>, lie: Lie) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let chain = Arc::clone(&chain);
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some((method, path, body)) = read_request(&mut reader) {
                    let reply = if method == "POST" {
                        let req: Value = serde_json::from_slice(&body).unwrap();
                        let params = req["params"].as_array().cloned().unwrap_or_default();
                        let answer = match chain.rpc(lie, req["method"].as_str().unwrap(), &params)
                        {
                            Ok(result) => json!({"result": result, "error": null, "id": req["id"]}),
                            Err((code, message)) => json!({
                                "result": null,
                                "error": {"code": code, "message": message},
                                "id": req["id"],
                            }),
                        };
                        ok(serde_json::to_vec(&answer).unwrap())
                    } else {
                        chain.rest(lie, &path)
                    };
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    if writer.write_all(head.as_bytes()).is_err()
                        || writer.write_all(&reply.body).is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    url
}

fn connect(url: String, rest: RestMode) -> CoreSource {
    let mut config = CoreConfig::new(
        url,
        CoreAuth::UserPass("user".into(), "pass".into()),
        Network::Regtest,
    );
    config.rest = rest;
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        attempts: 1,
        ..config.retry
    };
    CoreSource::connect(config).unwrap()
}

/// The fixture chain, and a REST source on a fake node telling `lie`.
fn over_rest(lie: Lie) -> (Arc<Chain>, CoreSource) {
    let chain = Arc::new(chain());
    let source = connect(serve(Arc::clone(&chain), lie), RestMode::Auto);
    (chain, source)
}

/// Asserts a [`SourceError::Mismatch`] whose detail contains `needle`.
fn expect_mismatch<T: std::fmt::Debug>(result: Result<T, SourceError>, needle: &str) {
    match result {
        Err(SourceError::Mismatch { detail, .. }) => {
            assert!(detail.contains(needle), "{detail}")
        }
        other => panic!("expected a mismatch naming {needle:?}, got {other:?}"),
    }
}

/// A block well inside the chain with several transactions.
fn busy_block(chain: &Chain) -> (usize, BlockHash) {
    (150..chain.hashes.len() - 1)
        .map(|h| (h, chain.hashes[h]))
        .find(|(_, hash)| chain.blocks[hash].txdata.len() > 2)
        .unwrap()
}

#[test]
fn an_honest_fake_node_agrees_with_the_files() {
    let chain = Arc::new(chain());
    for mode in [RestMode::Auto, RestMode::Off] {
        let source = connect(serve(Arc::clone(&chain), Lie::None), mode);
        assert_eq!(source.uses_rest(), mode == RestMode::Auto);
        let (h, hash) = busy_block(&chain);
        assert_eq!(source.block_hash(h as u64).unwrap(), hash);
        let block = source.block(&hash).unwrap().block;
        assert_eq!(block, chain.blocks[&hash]);
        if mode == RestMode::Auto {
            let spent = source.spent_outputs(&hash, &block).unwrap();
            assert_eq!(spent, chain.spent[&hash]);
        }
        let headers = source.headers(10, 20).unwrap();
        assert_eq!(headers[0].block_hash(), chain.hashes[10]);
    }
}

#[test]
fn a_wrong_block_for_the_hash_is_a_mismatch() {
    let (chain, source) = over_rest(Lie::WrongBlock);
    let (_, hash) = busy_block(&chain);
    expect_mismatch(source.block(&hash), &format!("asked for block {hash}"));
}

#[test]
fn a_block_with_a_dropped_transaction_fails_the_merkle_check() {
    let (chain, source) = over_rest(Lie::DroppedTransaction);
    let (_, hash) = busy_block(&chain);
    expect_mismatch(source.block(&hash), "merkle root");
}

#[test]
fn a_block_with_a_repeated_transaction_is_caught_although_its_root_matches() {
    let (chain, source) = over_rest(Lie::DuplicatedTransaction);
    // An odd number of transactions: repeating the last leaves the merkle root as it was.
    let hash = *chain
        .hashes
        .iter()
        .find(|h| chain.blocks[*h].txdata.len() == 3)
        .unwrap();
    let mut mutated = chain.blocks[&hash].clone();
    mutated.txdata.push(mutated.txdata[2].clone());
    assert!(
        mutated.check_merkle_root(),
        "the root alone does not see it"
    );
    expect_mismatch(source.block(&hash), "appears twice");
}

#[test]
fn a_truncated_block_is_malformed_with_its_offset() {
    let (chain, source) = over_rest(Lie::TruncatedBlock);
    let (_, hash) = busy_block(&chain);
    match source.block(&hash) {
        Err(SourceError::Malformed { detail, .. }) => {
            assert!(detail.contains("byte offset"), "{detail}")
        }
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn headers_that_do_not_link_are_a_mismatch() {
    let (_, source) = over_rest(Lie::UnlinkedHeaders);
    expect_mismatch(source.headers(20, 10), "does not link");
}

#[test]
fn pruned_data_is_named_over_rest_and_json_rpc() {
    let chain = Arc::new(chain());
    let (_, hash) = busy_block(&chain);
    let block = &chain.blocks[&hash];
    let rest = connect(serve(Arc::clone(&chain), Lie::Pruned), RestMode::Auto);
    assert!(matches!(
        rest.spent_outputs(&hash, block),
        Err(SourceError::Pruned { hash: h, .. }) if h == hash
    ));
    let rpc = connect(serve(Arc::clone(&chain), Lie::Pruned), RestMode::Off);
    assert!(matches!(
        rpc.block(&hash),
        Err(SourceError::Pruned { hash: h, .. }) if h == hash
    ));
}

#[test]
fn spent_outputs_missing_a_coin_are_a_mismatch() {
    let (chain, source) = over_rest(Lie::MissingCoin);
    let (_, hash) = busy_block(&chain);
    expect_mismatch(
        source.spent_outputs(&hash, &chain.blocks[&hash]),
        "spent outputs",
    );
}
