//! Bitcoin Core: JSON-RPC for control, REST's binary endpoints for bulk data.
//!
//! * Control (`getblockchaininfo`, `sendrawtransaction`, and everything when REST is off) goes
//!   through JSON-RPC ([`rpc::RpcClient`]) with a cookie file or user/password; the node's chain
//!   is checked against the expected network on connect.
//! * Bulk data goes through REST when the node runs with `-rest`: `/rest/block/<hash>.bin`,
//!   `/rest/spenttxouts/<hash>.bin` (prevouts without `-txindex`), `/rest/headers/<hash>.bin`
//!   and `/rest/blockhashbyheight/<h>.bin`, over keep-alive connections.
//! * Without REST it falls back to `getblock <hash> 0` and `getblock <hash> 3`, and says so once.
//! * Requests in flight are capped (default 8) below the node's `rpcworkqueue` (default 16);
//!   transient failures (connection errors, HTTP 503 "work queue depth exceeded", warm-up) are
//!   retried with exponential backoff.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::Decodable;
use bitcoin::{Amount, Block, BlockHash, Network, ScriptBuf, Transaction, TxOut, Txid};

use crate::body::BodyError;
use crate::error::SourceError;
use crate::source::{
    BlockSource, Broadcaster, ChainTip, ChainView, FetchedBlock, SpentOutputs, check_linked,
    spent_outputs_via_block,
};

pub mod rpc;

use rpc::{Auth, RpcClient};

/// How to authenticate JSON-RPC. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub enum CoreAuth {
    /// The node's `.cookie` file.
    Cookie(PathBuf),
    /// `-rpcuser` / `-rpcpassword`.
    UserPass(String, String),
}

impl From<CoreAuth> for Auth {
    fn from(auth: CoreAuth) -> Auth {
        match auth {
            CoreAuth::Cookie(path) => Auth::CookieFile(path),
            CoreAuth::UserPass(user, pass) => Auth::UserPass(user, pass),
        }
    }
}

impl std::fmt::Debug for CoreAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreAuth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            CoreAuth::UserPass(user, _) => f
                .debug_tuple("UserPass")
                .field(user)
                .field(&"<redacted>")
                .finish(),
        }
    }
}

/// Whether to use REST for bulk data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestMode {
    /// Use REST if the node serves it, else JSON-RPC (with one warning).
    Auto,
    /// JSON-RPC only (the naive path; also what `-rest=0` nodes get).
    Off,
}

/// Retries of transient failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first delay; doubled after each failure.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms doubling to at most 3.2 s (about 6 s in all).
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(3_200),
        }
    }
}

/// How to reach a Core node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreConfig {
    /// `http://HOST:PORT` of the node's RPC server (REST shares it).
    pub url: String,
    /// JSON-RPC credentials.
    pub auth: CoreAuth,
    /// The network the application expects.
    pub network: Network,
    /// REST or not.
    pub rest: RestMode,
    /// Requests in flight at most (keep it below the node's `rpcworkqueue`, 16 by default).
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl CoreConfig {
    /// A configuration with REST on auto, 8 requests in flight, 60 s timeouts, default retries.
    pub fn new(url: impl Into<String>, auth: CoreAuth, network: Network) -> Self {
        CoreConfig {
            url: url.into().trim_end_matches('/').to_owned(),
            auth,
            network,
            rest: RestMode::Auto,
            max_in_flight: 8,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// A counting semaphore: at most `n` requests in flight.
#[derive(Debug)]
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Pass<'g>(&'g Gate);

impl Gate {
    fn new(n: usize) -> Self {
        Gate {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }
    fn enter(&self) -> Pass<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// The chain name Core reports for a network.
pub fn core_chain_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "main",
        Network::Testnet => "test",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// A Bitcoin Core node as a [`BlockSource`].
pub struct CoreSource {
    config: CoreConfig,
    rpc: RpcClient,
    http: Option<ureq::Agent>,
    gate: Gate,
}

impl std::fmt::Debug for CoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSource")
            .field("url", &self.config.url)
            .field("rest", &self.http.is_some())
            .finish_non_exhaustive()
    }
}

impl CoreSource {
    /// Connects: checks credentials and the node's chain, and probes REST.
    pub fn connect(config: CoreConfig) -> Result<CoreSource, SourceError> {
        let n = config.max_in_flight.max(1);
        let rpc = RpcClient::new(config.url.clone(), config.auth.clone().into())
            .with_timeout(config.timeout)
            .with_max_connections(n);
        let mut source = CoreSource {
            rpc,
            http: None,
            gate: Gate::new(n),
            config,
        };
        let info: serde_json::Value = source.call("getblockchaininfo", &[])?;
        let chain = info["chain"].as_str().unwrap_or_default().to_owned();
        let expected = core_chain_name(source.config.network);
        if chain != expected {
            return Err(SourceError::WrongNetwork {
                source_name: "core-rpc",
                expected: source.config.network,
                found: chain,
            });
        }
        if source.config.rest == RestMode::Auto {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(source.config.timeout))
                .max_idle_connections_per_host(n)
                .build()
                .into();
            let probe = agent
                .get(format!("{}/rest/chaininfo.json", source.config.url))
                .call();
            match probe {
                Ok(r) if r.status() == 200 => source.http = Some(agent),
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    url = %source.config.url,
                    "the node does not serve REST (start it with -rest): falling back to JSON-RPC, which is slower"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    url = %source.config.url,
                    "REST probe failed: falling back to JSON-RPC, which is slower"
                ),
            }
        }
        Ok(source)
    }

    /// The confirmed coins paying `script`, found with `scantxoutset` (no wallet or index
    /// needed). A writer funds its operations with them.
    pub fn unspent(
        &self,
        script: &bitcoin::Script,
    ) -> Result<Vec<(bitcoin::OutPoint, bitcoin::TxOut)>, SourceError> {
        let desc = format!("raw({})", vc_chash::hex::encode(script.as_bytes()));
        let v: serde_json::Value =
            self.call("scantxoutset", &["start".into(), serde_json::json!([desc])])?;
        let malformed = |detail: String| SourceError::Malformed {
            source_name: "core-rpc",
            what: "scantxoutset response".into(),
            detail,
        };
        let rows = v["unspents"]
            .as_array()
            .ok_or_else(|| malformed("no unspents list".into()))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let txid: Txid = r["txid"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| malformed(format!("bad txid in {r}")))?;
            let vout = r["vout"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| malformed(format!("bad vout in {r}")))?;
            let value = r["amount"]
                .as_f64()
                .and_then(|a| bitcoin::Amount::from_btc(a).ok())
                .ok_or_else(|| malformed(format!("bad amount in {r}")))?;
            out.push((
                bitcoin::OutPoint::new(txid, vout),
                bitcoin::TxOut {
                    value,
                    script_pubkey: script.to_owned(),
                },
            ));
        }
        out.sort_by_key(|(o, _)| (o.txid, o.vout));
        Ok(out)
    }

    /// Whether bulk data comes over REST.
    pub fn uses_rest(&self) -> bool {
        self.http.is_some()
    }

    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T, SourceError>) -> Result<T, SourceError> {
        let policy = self.config.retry;
        let mut delay = policy.base_delay;
        let mut attempt = 1;
        loop {
            match f() {
                Err(e) if e.is_transient() && attempt < policy.attempts => {
                    tracing::debug!(error = %e, attempt, "transient failure, retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(policy.max_delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A JSON-RPC call through the pool, with retries.
    pub(crate) fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        args: &[serde_json::Value],
    ) -> Result<T, SourceError> {
        self.retrying(|| {
            let _pass = self.gate.enter();
            self.rpc.call(method, args)
        })
    }

    /// A REST GET of a binary resource; `Ok(None)` on 404.
    fn rest(&self, agent: &ureq::Agent, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let url = format!("{}/rest/{path}", self.config.url);
        self.retrying(|| {
            let _pass = self.gate.enter();
            let transport = |e: ureq::Error| SourceError::Transport {
                source_name: "core-rest",
                what: format!("GET /rest/{path}"),
                source: Box::new(e),
            };
            let mut resp = agent.get(&url).call().map_err(transport)?;
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .map_err(transport)?;
            match status {
                200 => Ok(Some(body)),
                404 => {
                    let text = String::from_utf8_lossy(&body);
                    if text.contains("pruned") || text.contains("not available") {
                        Err(SourceError::Node {
                            source_name: "core-rest",
                            what: format!("GET /rest/{path}"),
                            detail: text.trim().to_owned(),
                            code: None,
                            transient: false,
                        })
                    } else {
                        Ok(None)
                    }
                }
                401 | 403 => Err(SourceError::BadCredentials {
                    source_name: "core-rest",
                }),
                _ => Err(SourceError::Node {
                    source_name: "core-rest",
                    what: format!("GET /rest/{path}"),
                    detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
                    code: None,
                    // 503: work queue full or warming up; 500s are the node's trouble too.
                    transient: status == 503 || status >= 500,
                }),
            }
        })
    }

    /// A REST resource about block `hash` that must exist: a 404 is [`SourceError::NotFound`]
    /// (naming `what`), a pruned-data answer [`SourceError::Pruned`].
    fn rest_about(
        &self,
        agent: &ureq::Agent,
        path: &str,
        hash: &BlockHash,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, SourceError> {
        match self.rest(agent, path) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(SourceError::NotFound {
                source_name: "core-rest",
                what: what(),
            }),
            Err(e) => self.pruned_or(hash, e),
        }
    }

    fn tip_height(&self) -> Result<u64, SourceError> {
        self.call("getblockcount", &[])
    }

    fn past_tip(&self, height: u64) -> SourceError {
        match self.tip_height() {
            Ok(tip) => SourceError::PastTip {
                source_name: self.name(),
                height,
                tip,
            },
            Err(e) => e,
        }
    }

    fn decode<T: Decodable>(&self, what: &str, bytes: &[u8]) -> Result<T, SourceError> {
        let mut cur = Cursor::new(bytes);
        let value = T::consensus_decode(&mut cur).map_err(|e| SourceError::Malformed {
            source_name: self.name(),
            what: what.to_owned(),
            detail: format!("{e} (at byte offset {} of {})", cur.position(), bytes.len()),
        })?;
        if (cur.position() as usize) != bytes.len() {
            return Err(SourceError::Malformed {
                source_name: self.name(),
                what: what.to_owned(),
                detail: format!(
                    "{} trailing bytes at byte offset {}",
                    bytes.len() as u64 - cur.position(),
                    cur.position()
                ),
            });
        }
        Ok(value)
    }

    fn pruned_or<T>(&self, hash: &BlockHash, e: SourceError) -> Result<T, SourceError> {
        match &e {
            SourceError::Node { detail, .. } if detail.contains("pruned") => {
                Err(SourceError::Pruned {
                    source_name: self.name(),
                    hash: *hash,
                })
            }
            _ => Err(e),
        }
    }
}

impl ChainView for CoreSource {
    fn name(&self) -> &'static str {
        if self.http.is_some() {
            "core-rest"
        } else {
            "core-rpc"
        }
    }

    fn network(&self) -> Network {
        self.config.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let info: serde_json::Value = self.call("getblockchaininfo", &[])?;
        let height = info["blocks"].as_u64();
        let hash = info["bestblockhash"].as_str().and_then(|s| s.parse().ok());
        match (height, hash) {
            (Some(height), Some(hash)) => Ok(ChainTip { height, hash }),
            _ => Err(SourceError::Malformed {
                source_name: "core-rpc",
                what: "getblockchaininfo response".into(),
                detail: "no blocks / bestblockhash".into(),
            }),
        }
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        if let Some(agent) = &self.http {
            return match self.rest(agent, &format!("blockhashbyheight/{height}.bin"))? {
                Some(bytes) => self.decode("block hash", &bytes),
                None => Err(self.past_tip(height)),
            };
        }
        match self.call::<String>("getblockhash", &[height.into()]) {
            Ok(s) => s.parse().map_err(|e| SourceError::Malformed {
                source_name: "core-rpc",
                what: "getblockhash response".into(),
                detail: format!("{e}"),
            }),
            Err(SourceError::Node { code: Some(-8), .. }) => Err(self.past_tip(height)),
            Err(e) => Err(e),
        }
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        let mut out: Vec<Header> = Vec::with_capacity(count);
        let first = self.block_hash(start)?;
        let mut next = first;
        while out.len() < count {
            let batch = (count - out.len()).min(2_000);
            let got: Vec<Header> = if let Some(agent) = &self.http {
                let bytes = self.rest_about(
                    agent,
                    &format!("headers/{next}.bin?count={batch}"),
                    &next,
                    || format!("headers from {next}"),
                )?;
                if !bytes.len().is_multiple_of(80) {
                    return Err(SourceError::Malformed {
                        source_name: "core-rest",
                        what: "headers".into(),
                        detail: format!("{} bytes is not a multiple of 80", bytes.len()),
                    });
                }
                bytes
                    .chunks(80)
                    .map(|c| self.decode("header", c))
                    .collect::<Result<_, _>>()?
            } else {
                let mut v = Vec::with_capacity(batch);
                let base = start + out.len() as u64;
                for i in 0..batch as u64 {
                    let hash = if i == 0 {
                        next
                    } else {
                        self.block_hash(base + i)?
                    };
                    let hex: String =
                        self.call("getblockheader", &[hash.to_string().into(), false.into()])?;
                    let bytes = hex_bytes(&hex).ok_or_else(|| SourceError::Malformed {
                        source_name: "core-rpc",
                        what: "getblockheader response".into(),
                        detail: "not hex".into(),
                    })?;
                    v.push(self.decode("header", &bytes)?);
                }
                v
            };
            if got.is_empty() {
                break;
            }
            if got[0].block_hash() != next {
                return Err(SourceError::Mismatch {
                    source_name: self.name(),
                    detail: format!(
                        "asked for headers from {next}, got one starting at {}",
                        got[0].block_hash()
                    ),
                });
            }
            let prev = out.last().map(|h| h.block_hash());
            check_linked(self.name(), start + out.len() as u64, prev, &got)?;
            let last = got[got.len() - 1].block_hash();
            let short = got.len() < batch;
            out.extend(got);
            if short || out.len() >= count {
                break;
            }
            // The next batch starts after `last`.
            next = self.block_hash(start + out.len() as u64)?;
            if self.headers_parent_mismatch(&next, &last)? {
                return Err(SourceError::Mismatch {
                    source_name: self.name(),
                    detail: format!(
                        "the best chain changed while reading headers at height {}",
                        start + out.len() as u64
                    ),
                });
            }
        }
        if out.len() < count {
            return Err(self.past_tip(start + out.len() as u64));
        }
        Ok(out)
    }
}

impl BlockSource for CoreSource {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        let bytes = if let Some(agent) = &self.http {
            self.rest_about(agent, &format!("block/{hash}.bin"), hash, || {
                format!("block {hash}")
            })?
        } else {
            let hex: String = match self.call("getblock", &[hash.to_string().into(), 0.into()]) {
                Ok(h) => h,
                Err(SourceError::Node { code: Some(-5), .. }) => {
                    return Err(SourceError::NotFound {
                        source_name: "core-rpc",
                        what: format!("block {hash}"),
                    });
                }
                Err(e) => return self.pruned_or(hash, e),
            };
            hex_bytes(&hex).ok_or_else(|| SourceError::Malformed {
                source_name: "core-rpc",
                what: format!("block {hash}"),
                detail: "not hex".into(),
            })?
        };
        FetchedBlock::decode(&bytes, true).map_err(|e| match e {
            BodyError::Decode { .. } => SourceError::Malformed {
                source_name: self.name(),
                what: format!("block {hash}"),
                detail: e.to_string(),
            },
            _ => SourceError::Mismatch {
                source_name: self.name(),
                detail: format!("block {hash}: {e}"),
            },
        })
    }

    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        let spent = if let Some(agent) = &self.http {
            let bytes = self.rest_about(agent, &format!("spenttxouts/{hash}.bin"), hash, || {
                format!("spent outputs of block {hash}")
            })?;
            decode_spent(&bytes).map_err(|detail| SourceError::Malformed {
                source_name: "core-rest",
                what: format!("spent outputs of block {hash}"),
                detail,
            })?
        } else {
            let v: serde_json::Value =
                match self.call("getblock", &[hash.to_string().into(), 3.into()]) {
                    Ok(v) => v,
                    Err(e) => return self.pruned_or(hash, e),
                };
            spent_from_verbose_block(&v).map_err(|detail| SourceError::Malformed {
                source_name: "core-rpc",
                what: format!("getblock {hash} 3"),
                detail,
            })?
        };
        spent
            .check_shape(block)
            .map_err(|detail| SourceError::Mismatch {
                source_name: self.name(),
                detail: format!("spent outputs of block {hash}: {detail}"),
            })?;
        Ok(spent)
    }

    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        let Some(agent) = &self.http else {
            return Ok(false);
        };
        *buf = self.rest_about(agent, &format!("block/{hash}.bin"), hash, || {
            format!("block {hash}")
        })?;
        Ok(true)
    }

    /// Over REST, decodes only the outputs of `positions` from `spenttxouts` (the others are
    /// skipped); over JSON-RPC, the whole block's.
    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        let Some(agent) = &self.http else {
            return spent_outputs_via_block(self, hash, positions);
        };
        let bytes = self.rest_about(agent, &format!("spenttxouts/{hash}.bin"), hash, || {
            format!("spent outputs of block {hash}")
        })?;
        decode_spent_at(&bytes, inputs, positions).map_err(|detail| SourceError::Mismatch {
            source_name: "core-rest",
            detail: format!("spent outputs of block {hash}: {detail}"),
        })
    }
}

impl Broadcaster for CoreSource {
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, SourceError> {
        let hex = vc_chash::hex::encode(&bitcoin::consensus::serialize(tx));
        let txid: String = self.call("sendrawtransaction", &[hex.into()])?;
        txid.parse().map_err(|e| SourceError::Malformed {
            source_name: "core-rpc",
            what: "sendrawtransaction response".into(),
            detail: format!("{e}"),
        })
    }
}

impl CoreSource {
    /// Whether the block `next` does not have `last` as its parent (the chain moved).
    fn headers_parent_mismatch(
        &self,
        next: &BlockHash,
        last: &BlockHash,
    ) -> Result<bool, SourceError> {
        let v: serde_json::Value =
            self.call("getblockheader", &[next.to_string().into(), true.into()])?;
        Ok(v["previousblockhash"].as_str() != Some(&last.to_string()))
    }
}

/// Decodes REST's `spenttxouts` binary body: a CompactSize count of transactions, then per
/// transaction a CompactSize count of outputs, each a serialized `TxOut`.
pub fn decode_spent(bytes: &[u8]) -> Result<SpentOutputs, String> {
    let mut cur = Cursor::new(bytes);
    let at = |c: &Cursor<&[u8]>| c.position();
    let count = |c: &mut Cursor<&[u8]>| -> Result<usize, String> {
        let pos = at(c);
        let n = bitcoin::VarInt::consensus_decode(c)
            .map_err(|e| format!("{e} at byte offset {pos}"))?
            .0;
        // Every entry takes at least one byte: a larger count is a lie, not an allocation.
        let left = bytes.len() as u64 - at(c);
        if n > left {
            return Err(format!(
                "count {n} at byte offset {pos} exceeds the {left} bytes left"
            ));
        }
        Ok(n as usize)
    };
    let txs = count(&mut cur)?;
    let mut out = Vec::with_capacity(txs);
    for _ in 0..txs {
        let n = count(&mut cur)?;
        let mut spent = Vec::with_capacity(n);
        for _ in 0..n {
            let pos = at(&cur);
            spent.push(
                TxOut::consensus_decode(&mut cur)
                    .map_err(|e| format!("{e} at byte offset {pos}"))?,
            );
        }
        out.push(spent);
    }
    if at(&cur) as usize != bytes.len() {
        return Err(format!(
            "{} trailing bytes at byte offset {}",
            bytes.len() as u64 - at(&cur),
            at(&cur)
        ));
    }
    Ok(SpentOutputs(out))
}

/// Like [`decode_spent`], but decodes only the lists at `positions` (ascending), skipping the
/// other outputs in place, and checks the body against the block's shape: `inputs[i]` outputs
/// for each transaction `i`, none for the coinbase, every byte used.
pub fn decode_spent_at(
    bytes: &[u8],
    inputs: &[u32],
    positions: &[u32],
) -> Result<Vec<Vec<TxOut>>, String> {
    let mut cur = Cursor::new(bytes);
    let count = |c: &mut Cursor<&[u8]>| -> Result<u64, String> {
        let pos = c.position();
        Ok(bitcoin::VarInt::consensus_decode(c)
            .map_err(|e| format!("{e} at byte offset {pos}"))?
            .0)
    };
    let txs = count(&mut cur)?;
    if txs != inputs.len() as u64 {
        return Err(format!(
            "{txs} spent-output lists for {} transactions",
            inputs.len()
        ));
    }
    let mut out = Vec::with_capacity(positions.len());
    let mut wanted = positions.iter().copied().peekable();
    for (i, &want) in inputs.iter().enumerate() {
        let want = if i == 0 { 0 } else { u64::from(want) };
        let n = count(&mut cur)?;
        if n != want {
            return Err(format!(
                "transaction {i} has {want} inputs but {n} spent outputs"
            ));
        }
        if wanted.peek() == Some(&(i as u32)) {
            wanted.next();
            let mut spent = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let pos = cur.position();
                spent.push(
                    TxOut::consensus_decode(&mut cur)
                        .map_err(|e| format!("{e} at byte offset {pos}"))?,
                );
            }
            out.push(spent);
        } else {
            for _ in 0..n {
                let pos = cur.position();
                // The value, then the script's length and bytes.
                let skip = 8u64;
                let script_at = pos + skip;
                if script_at > bytes.len() as u64 {
                    return Err(format!("truncated output at byte offset {pos}"));
                }
                cur.set_position(script_at);
                let len = count(&mut cur)?;
                let end = cur.position().saturating_add(len);
                if end > bytes.len() as u64 {
                    return Err(format!("truncated output at byte offset {pos}"));
                }
                cur.set_position(end);
            }
        }
    }
    if let Some(p) = wanted.next() {
        return Err(format!("no transaction at position {p}"));
    }
    if cur.position() as usize != bytes.len() {
        return Err(format!(
            "{} trailing bytes at byte offset {}",
            bytes.len() as u64 - cur.position(),
            cur.position()
        ));
    }
    Ok(out)
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    vc_chash::hex::decode(s.trim()).ok()
}

/// The spent outputs in `getblock <hash> 3`'s JSON (`tx[].vin[].prevout`).
///
/// Values arrive as JSON numbers in BTC; each is converted to satoshis by rounding, which is
/// exact for every amount below 21 million BTC (all of them fit in a double's 53 bits).
pub fn spent_from_verbose_block(v: &serde_json::Value) -> Result<SpentOutputs, String> {
    let txs = v["tx"].as_array().ok_or("no tx array")?;
    let mut out = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let vin = tx["vin"]
            .as_array()
            .ok_or_else(|| format!("tx {i}: no vin"))?;
        if i == 0 {
            out.push(Vec::new());
            continue;
        }
        let mut spent = Vec::with_capacity(vin.len());
        for (j, input) in vin.iter().enumerate() {
            let prevout = &input["prevout"];
            let btc = prevout["value"]
                .as_f64()
                .ok_or_else(|| format!("tx {i} input {j}: no prevout value"))?;
            let value = Amount::from_btc(btc).map_err(|e| format!("tx {i} input {j}: {e}"))?;
            let script = prevout["scriptPubKey"]["hex"]
                .as_str()
                .and_then(hex_bytes)
                .ok_or_else(|| format!("tx {i} input {j}: no prevout script"))?;
            spent.push(TxOut {
                value,
                script_pubkey: ScriptBuf::from_bytes(script),
            });
        }
        out.push(spent);
    }
    Ok(SpentOutputs(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_outputs_at_positions_match_the_whole_decoding() {
        let out = |v: u64, s: &[u8]| TxOut {
            value: Amount::from_sat(v),
            script_pubkey: ScriptBuf::from_bytes(s.to_vec()),
        };
        let lists = vec![
            vec![],
            vec![out(1, &[0x51])],
            vec![out(2, &[7; 300]), out(3, &[])],
            vec![out(4, &[0x00, 0x14])],
        ];
        let mut bytes = bitcoin::consensus::serialize(&bitcoin::VarInt(4));
        for l in &lists {
            bytes.extend(bitcoin::consensus::serialize(l));
        }
        assert_eq!(decode_spent(&bytes).unwrap().0, lists);
        let inputs = [0, 1, 2, 1];
        for positions in [vec![], vec![2], vec![1, 3], vec![1, 2, 3]] {
            let want: Vec<Vec<TxOut>> = positions
                .iter()
                .map(|&p| lists[p as usize].clone())
                .collect();
            assert_eq!(decode_spent_at(&bytes, &inputs, &positions).unwrap(), want);
        }
        assert!(decode_spent_at(&bytes, &[0, 1, 1, 1], &[1]).is_err());
        assert!(decode_spent_at(&bytes, &inputs, &[4]).is_err());
        for cut in 0..bytes.len() {
            assert!(decode_spent_at(&bytes[..cut], &inputs, &[3]).is_err());
        }
    }

    #[test]
    fn debug_of_a_config_never_shows_the_password() {
        let config = CoreConfig::new(
            "http://127.0.0.1:8332",
            CoreAuth::UserPass("alice".into(), "hunter2".into()),
            Network::Bitcoin,
        );
        let shown = format!("{config:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
