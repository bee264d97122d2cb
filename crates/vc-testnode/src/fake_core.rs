//! A fake Bitcoin Core on a loopback port: it speaks enough JSON-RPC and REST to serve a fixed
//! chain to the Core source, honestly or with one lie switched on at run time, so tests can
//! show that every lie becomes a typed error and that nothing a lie touches is committed.
//!
//! ```
//! use vc_testnode::fake_core::{CoreLie, FakeCore};
//!
//! /// A node serving `blocks` (from genesis) that answers with the wrong block from height
//! /// 150 up; point a `core://` source at its `url()`.
//! fn lying_node(blocks: Vec<bitcoin::Block>, spent: Vec<Vec<Vec<bitcoin::TxOut>>>) -> FakeCore {
//!     let node = FakeCore::start(blocks, spent);
//!     node.set_lie(CoreLie::WrongBlock, 150);
//!     node
//! }
//!
//! let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
//! let node = lying_node(vec![genesis], vec![vec![vec![]]]);
//! assert!(node.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(node.lies_told(), 0);
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::serialize;
use bitcoin::{Block, BlockHash, TxOut, VarInt};
use serde_json::{Value, json};

use crate::loopback::LoopbackServer;

/// What the fake node lies about (for blocks at or above the height given to
/// [`FakeCore::set_lie`]; RPC lies apply to every call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreLie {
    /// No lie.
    None,
    /// `/rest/block/<h>` answers with the next block.
    WrongBlock,
    /// The block's header is right, but its last transaction was dropped.
    DroppedTransaction,
    /// The last transaction repeated: the merkle root is unchanged (CVE-2012-2459).
    DuplicatedTransaction,
    /// The block's bytes are cut short (a well-formed HTTP answer).
    TruncatedBlock,
    /// `/rest/headers` skips a header.
    UnlinkedHeaders,
    /// Spent outputs (REST and `getblock 3`) are pruned.
    Pruned,
    /// `/rest/spenttxouts` leaves out one input's coin.
    MissingCoin,
    /// Every JSON-RPC answer is not JSON.
    MalformedJson,
    /// The HTTP body of a block stops halfway through its `Content-Length` and the connection
    /// closes.
    TruncatedBody,
    /// A block's body claims 80 MiB and streams that many bytes (above the source's limit).
    OversizedBody,
    /// Block answers come after 3 seconds.
    Slow,
    /// Block answers are HTTP 500 with an HTML page.
    ServerError,
}

struct Chain {
    hashes: Vec<BlockHash>,
    blocks: BTreeMap<BlockHash, Block>,
    spent: BTreeMap<BlockHash, Vec<Vec<TxOut>>>,
}

struct Shared {
    chain: Chain,
    lie: Mutex<(CoreLie, u64)>,
    told: AtomicU64,
}

/// The fake node ([module docs](self)). Dropping it stops the server.
pub struct FakeCore {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

/// REST's `spenttxouts` binary body.
pub fn encode_spent(spent: &[Vec<TxOut>]) -> Vec<u8> {
    // Writing to a Vec cannot fail.
    let mut out = serialize(&VarInt(spent.len() as u64));
    for list in spent {
        out.extend(serialize(&VarInt(list.len() as u64)));
        for txout in list {
            out.extend(serialize(txout));
        }
    }
    out
}

/// One HTTP answer.
enum Reply {
    Full {
        status: u16,
        body: Vec<u8>,
    },
    /// Headers claim `claimed` bytes; `body` is sent, then the connection closes.
    Short {
        claimed: usize,
        body: Vec<u8>,
    },
    /// `claimed` zero bytes, streamed.
    Flood {
        claimed: usize,
    },
}

fn ok(body: Vec<u8>) -> Reply {
    Reply::Full { status: 200, body }
}

fn not_found(text: &str) -> Reply {
    Reply::Full {
        status: 404,
        body: text.as_bytes().to_vec(),
    }
}

impl Shared {
    fn height(&self, hash: &BlockHash) -> Option<usize> {
        self.chain.hashes.iter().position(|h| h == hash)
    }

    /// The lie in force for the block at `height` (or for RPC, `None`).
    fn lie_for(&self, height: Option<usize>) -> CoreLie {
        let (lie, from) = *self.lie.lock().unwrap_or_else(|p| p.into_inner());
        match height {
            Some(h) if (h as u64) < from => CoreLie::None,
            _ => lie,
        }
    }

    fn told(&self) {
        self.told.fetch_add(1, Ordering::Relaxed);
    }

    fn rest(&self, path: &str) -> Reply {
        let path = path.strip_prefix("/rest/").unwrap_or_default();
        let (resource, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = resource.split('/').collect();
        let hash_of = |s: &str| s.trim_end_matches(".bin").parse::<BlockHash>().ok();
        let chain = &self.chain;
        match parts.as_slice() {
            ["chaininfo.json"] => ok(b"{}".to_vec()),
            ["blockhashbyheight", h] => {
                let h: Option<usize> = h.trim_end_matches(".bin").parse().ok();
                match h.and_then(|h| chain.hashes.get(h)) {
                    Some(hash) => ok(serialize(hash)),
                    None => not_found("Block height out of range"),
                }
            }
            ["block", h] => {
                let Some(hash) = hash_of(h) else {
                    return not_found("bad hash");
                };
                let Some(height) = self.height(&hash) else {
                    return not_found(&format!("{hash} not found"));
                };
                let mut block = chain.blocks[&hash].clone();
                let lie = self.lie_for(Some(height));
                match lie {
                    CoreLie::None => {}
                    CoreLie::WrongBlock => {
                        if let Some(next) = chain.hashes.get(height + 1) {
                            block = chain.blocks[next].clone();
                        }
                    }
                    CoreLie::DroppedTransaction if block.txdata.len() > 1 => {
                        block.txdata.pop();
                    }
                    CoreLie::DuplicatedTransaction => {
                        if let Some(last) = block.txdata.last().cloned() {
                            block.txdata.push(last);
                        }
                    }
                    CoreLie::Slow => {
                        self.told();
                        std::thread::sleep(Duration::from_secs(3));
                    }
                    CoreLie::ServerError => {
                        self.told();
                        return Reply::Full {
                            status: 500,
                            body: b"<html><body>Internal Server Error</body></html>".to_vec(),
                        };
                    }
                    CoreLie::OversizedBody => {
                        self.told();
                        return Reply::Flood { claimed: 80 << 20 };
                    }
                    _ => {}
                }
                let mut bytes = serialize(&block);
                match lie {
                    CoreLie::TruncatedBlock => bytes.truncate(bytes.len() - 10),
                    CoreLie::TruncatedBody => {
                        self.told();
                        let claimed = bytes.len();
                        bytes.truncate(claimed / 2);
                        return Reply::Short {
                            claimed,
                            body: bytes,
                        };
                    }
                    _ => {}
                }
                if matches!(
                    lie,
                    CoreLie::WrongBlock
                        | CoreLie::DroppedTransaction
                        | CoreLie::DuplicatedTransaction
                        | CoreLie::TruncatedBlock
                ) {
                    self.told();
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
                for (i, hash) in chain.hashes.iter().skip(start).take(count).enumerate() {
                    if i == 3 && self.lie_for(Some(start + i)) == CoreLie::UnlinkedHeaders {
                        self.told();
                        continue;
                    }
                    bytes.extend(serialize(&chain.blocks[hash].header));
                }
                ok(bytes)
            }
            ["spenttxouts", h] => {
                let Some(hash) = hash_of(h) else {
                    return not_found("bad hash");
                };
                let (Some(height), Some(spent)) = (self.height(&hash), chain.spent.get(&hash))
                else {
                    return not_found("unknown block");
                };
                match self.lie_for(Some(height)) {
                    CoreLie::Pruned => {
                        self.told();
                        not_found("Block not available (pruned data)")
                    }
                    CoreLie::MissingCoin => {
                        let mut spent = spent.clone();
                        if let Some(list) = spent.iter_mut().rev().find(|l| !l.is_empty()) {
                            self.told();
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

    fn rpc(&self, method: &str, params: &[Value]) -> Result<Value, (i64, String)> {
        let chain = &self.chain;
        let tip = chain.hashes.len() - 1;
        let hash_param = || {
            params
                .first()
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<BlockHash>().ok())
                .ok_or((-8, "hash must be a hex string".to_string()))
        };
        match method {
            "getblockchaininfo" => Ok(json!({
                "chain": "regtest",
                "blocks": tip,
                "bestblockhash": chain.hashes[tip].to_string(),
            })),
            "getblockcount" => Ok(json!(tip)),
            "getblockhash" => {
                match params
                    .first()
                    .and_then(Value::as_u64)
                    .and_then(|h| chain.hashes.get(h as usize))
                {
                    Some(h) => Ok(json!(h.to_string())),
                    None => Err((-8, "Block height out of range".into())),
                }
            }
            "getblock" => {
                let hash = hash_param()?;
                let Some(block) = chain.blocks.get(&hash) else {
                    return Err((-5, "Block not found".into()));
                };
                if self.lie_for(self.height(&hash)) == CoreLie::Pruned {
                    self.told();
                    return Err((-1, "Block not available (pruned data)".into()));
                }
                Ok(json!(vc_chash::hex::encode(&serialize(block))))
            }
            "getblockheader" => {
                let hash = hash_param()?;
                let h = self
                    .height(&hash)
                    .ok_or((-5, "Block not found".to_string()))?;
                let header = chain.blocks[&hash].header;
                if params.get(1) == Some(&json!(false)) {
                    Ok(json!(vc_chash::hex::encode(&serialize(&header))))
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

    fn answer(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        if method != "POST" {
            return self.rest(path);
        }
        if self.lie_for(None) == CoreLie::MalformedJson {
            self.told();
            return ok(b"{\"result\": [unterminated".to_vec());
        }
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return Reply::Full {
                status: 400,
                body: b"bad request".to_vec(),
            };
        };
        let params = req["params"].as_array().cloned().unwrap_or_default();
        let method = req["method"].as_str().unwrap_or_default();
        let answer = match self.rpc(method, &params) {
            Ok(result) => json!({"result": result, "error": null, "id": req["id"]}),
            Err((code, message)) => json!({
                "result": null,
                "error": {"code": code, "message": message},
                "id": req["id"],
            }),
        };
        ok(serde_json::to_vec(&answer).unwrap_or_default())
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

/// Serves one connection until it closes (or a reply ends it).
fn serve_connection(shared: &Shared, stream: TcpStream) -> Option<()> {
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let head = |status: u16, len: usize| {
            format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {len}\r\nConnection: keep-alive\r\n\r\n"
            )
        };
        match shared.answer(&method, &path, &body) {
            Reply::Full { status, body } => {
                writer.write_all(head(status, body.len()).as_bytes()).ok()?;
                writer.write_all(&body).ok()?;
            }
            Reply::Short { claimed, body } => {
                writer.write_all(head(200, claimed).as_bytes()).ok()?;
                writer.write_all(&body).ok()?;
                return None;
            }
            Reply::Flood { claimed } => {
                writer.write_all(head(200, claimed).as_bytes()).ok()?;
                let chunk = vec![0u8; 1 << 16];
                let mut sent = 0;
                while sent < claimed {
                    let n = chunk.len().min(claimed - sent);
                    // The client hangs up once past its limit: stop there.
                    writer.write_all(&chunk[..n]).ok()?;
                    sent += n;
                }
            }
        }
    }
    Some(())
}

impl FakeCore {
    /// Serves `blocks` (from genesis, in height order) with their spent outputs (`spent[h]`,
    /// one list per transaction, as REST's `spenttxouts` has them) on a loopback port.
    pub fn start(blocks: Vec<Block>, spent: Vec<Vec<Vec<TxOut>>>) -> FakeCore {
        let hashes: Vec<BlockHash> = blocks.iter().map(Block::block_hash).collect();
        let chain = Chain {
            spent: hashes.iter().copied().zip(spent).collect(),
            blocks: hashes.iter().copied().zip(blocks).collect(),
            hashes,
        };
        let shared = Arc::new(Shared {
            chain,
            lie: Mutex::new((CoreLie::None, 0)),
            told: AtomicU64::new(0),
        });
        let server = Arc::clone(&shared);
        let server = LoopbackServer::start(move |stream| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || serve_connection(&server, stream));
        });
        FakeCore { shared, server }
    }

    /// The URL to give a Core source (`http://127.0.0.1:PORT`; any credentials work).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Tells `lie` about blocks at `from_height` and above (RPC lies: about everything).
    pub fn set_lie(&self, lie: CoreLie, from_height: u64) {
        *self.shared.lie.lock().unwrap_or_else(|p| p.into_inner()) = (lie, from_height);
    }

    /// How many lies were told so far (a test checks its lie was actually exercised).
    pub fn lies_told(&self) -> u64 {
        self.shared.told.load(Ordering::Relaxed)
    }

    /// The block hashes, by height.
    pub fn hashes(&self) -> &[BlockHash] {
        &self.shared.chain.hashes
    }

    /// The block with `hash`.
    pub fn block(&self, hash: &BlockHash) -> Option<&Block> {
        self.shared.chain.blocks.get(hash)
    }

    /// The spent outputs of the block with `hash`.
    pub fn spent(&self, hash: &BlockHash) -> Option<&[Vec<TxOut>]> {
        self.shared.chain.spent.get(hash).map(Vec::as_slice)
    }
}
