//! A lying Electrum server: a loopback proxy in front of a real one that rewrites answers on
//! demand, to test that a client catches each lie.
//!
//! Requests pass through unchanged; each answer is matched to its request by id and, while a
//! [`Lie`] is set, rewritten according to it. The Electrum protocol is one JSON message per
//! line, which keeps the proxy simple.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction};
use serde_json::Value;
use vc_chash::hex;

use crate::loopback::LoopbackServer;

/// A way to lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Flip a bit in the first sibling of every merkle branch.
    MerkleBranch,
    /// In header batches, give the first header at or above this height a nonce whose hash
    /// misses the target (later headers are relinked to it, so only the proof of work is
    /// wrong).
    ProofOfWork(u64),
    /// In header batches, give the first header at or above this height a parent that is not
    /// the block below it.
    Unlinked(u64),
    /// Change the lock time of every transaction served, so it no longer hashes to its txid.
    Transaction,
    /// Drop the lowest confirmed entry from every script history.
    OmitHistory,
}

type Pending = Arc<Mutex<HashMap<u64, (String, Value)>>>;

struct Shared {
    lie: Mutex<Option<Lie>>,
    told: AtomicU64,
}

/// The proxy; stops accepting on drop.
pub struct LyingProxy {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LyingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LyingProxy")
            .field("port", &self.server.addr().port())
            .finish_non_exhaustive()
    }
}

impl LyingProxy {
    /// Starts an honest proxy in front of the Electrum server on `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> LyingProxy {
        let shared = Arc::new(Shared {
            lie: Mutex::new(None),
            told: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let server = LoopbackServer::start(move |client| {
            if let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream)) {
                serve(client, upstream, Arc::clone(&s));
            }
        });
        LyingProxy { server, shared }
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.server.addr().port())
    }

    /// Starts telling `lie` (or stops lying with `None`).
    pub fn set(&self, lie: Option<Lie>) {
        *self.shared.lie.lock().unwrap_or_else(|p| p.into_inner()) = lie;
    }

    /// How many answers were rewritten so far.
    pub fn lies_told(&self) -> u64 {
        self.shared.told.load(Ordering::SeqCst)
    }
}

fn serve(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let pending: Pending = Arc::default();
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let p = Arc::clone(&pending);
    let mut server_write = server;
    std::thread::spawn(move || {
        for line in BufReader::new(client_read).lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                for req in as_list(&v) {
                    if let (Some(id), Some(m)) = (req["id"].as_u64(), req["method"].as_str()) {
                        p.insert(id, (m.to_string(), req["params"].clone()));
                    }
                }
            }
            if writeln!(server_write, "{line}").is_err() {
                return;
            }
        }
    });
    let mut client_write = client;
    std::thread::spawn(move || {
        for line in BufReader::new(server_read).lines() {
            let Ok(line) = line else { return };
            let out = match serde_json::from_str::<Value>(&line) {
                Ok(mut v) => {
                    let lie = *shared.lie.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(lie) = lie {
                        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                        let mut told = false;
                        match &mut v {
                            Value::Array(items) => {
                                for item in items {
                                    told |= rewrite(lie, item, &mut p);
                                }
                            }
                            item => told |= rewrite(lie, item, &mut p),
                        }
                        if told {
                            shared.told.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    v.to_string()
                }
                Err(_) => line,
            };
            if writeln!(client_write, "{out}").is_err() {
                return;
            }
        }
    });
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Rewrites one answer according to `lie`; returns whether it changed anything.
fn rewrite(lie: Lie, answer: &mut Value, pending: &mut HashMap<u64, (String, Value)>) -> bool {
    let Some((method, params)) = answer["id"].as_u64().and_then(|id| pending.remove(&id)) else {
        return false;
    };
    let result = &mut answer["result"];
    match (lie, method.as_str()) {
        (Lie::MerkleBranch, "blockchain.transaction.get_merkle") => {
            let Some(first) = result["merkle"].get_mut(0) else {
                return false;
            };
            let Some(mut bytes) = first.as_str().and_then(|h| hex::decode(h).ok()) else {
                return false;
            };
            bytes[0] ^= 1;
            *first = Value::String(hex::encode(&bytes));
            true
        }
        (Lie::ProofOfWork(from) | Lie::Unlinked(from), "blockchain.block.headers") => {
            let start = params[0].as_u64().unwrap_or(0);
            let Some(raw) = result["hex"].as_str().and_then(|h| hex::decode(h).ok()) else {
                return false;
            };
            let mut headers: Vec<Header> =
                raw.chunks(80).filter_map(|c| deserialize(c).ok()).collect();
            let Some(i) = (0..headers.len()).find(|&i| start + i as u64 >= from) else {
                return false;
            };
            if lie == Lie::Unlinked(from) {
                headers[i].prev_blockhash = BlockHash::from_byte_array([0x55; 32]);
            } else {
                let target = headers[i].target();
                headers[i].nonce = headers[i].nonce.wrapping_add(1);
                while target.is_met_by(headers[i].block_hash()) {
                    headers[i].nonce = headers[i].nonce.wrapping_add(1);
                }
                for j in i + 1..headers.len() {
                    headers[j].prev_blockhash = headers[j - 1].block_hash();
                }
            }
            let hex: String = headers.iter().map(|h| hex::encode(&serialize(h))).collect();
            *result = serde_json::json!({
                "hex": hex,
                "count": headers.len(),
                "max": result["max"].clone(),
            });
            true
        }
        (Lie::Transaction, "blockchain.transaction.get") => {
            let Some(mut tx) = result
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| deserialize::<Transaction>(&b).ok())
            else {
                return false;
            };
            tx.lock_time = bitcoin::absolute::LockTime::from_consensus(
                tx.lock_time.to_consensus_u32().wrapping_add(1),
            );
            *result = Value::String(hex::encode(&serialize(&tx)));
            true
        }
        (Lie::OmitHistory, "blockchain.scripthash.get_history") => {
            let Some(list) = result.as_array_mut() else {
                return false;
            };
            let lowest = list
                .iter()
                .enumerate()
                .filter(|(_, e)| e["height"].as_i64().is_some_and(|h| h > 0))
                .min_by_key(|(_, e)| e["height"].as_i64())
                .map(|(i, _)| i);
            match lowest {
                Some(i) => {
                    list.remove(i);
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}
