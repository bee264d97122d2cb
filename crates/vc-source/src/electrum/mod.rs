//! An Electrum server as a light-node source.
//!
//! Electrum servers serve headers, script histories, transactions and merkle branches, not whole
//! blocks, so this source trusts nothing it cannot check:
//!
//! * **Headers** are downloaded in batches of up to 2016 and validated like a full node
//!   validates them ([`headers::HeaderChain`]: linkage, proof of work, the network's difficulty
//!   rules, median time past) before anything uses them. The tip comes from the
//!   `blockchain.headers.subscribe` subscription; a tip that does not extend the validated chain
//!   is a reorganisation, found by walking back to the common ancestor.
//! * **Operations** are found through the histories of the application's *marker scripts*
//!   ([`WatchSource::watched`]): each transaction is fetched, checked to hash to its txid and
//!   proven by `blockchain.transaction.get_merkle` against the validated header's merkle root.
//!   A history that later omits a confirmed transaction whose block is still on the chain is
//!   refused ([`Violation::Omission`]).
//! * **Prevouts** come from the funding transactions, fetched in batches and checked to hash to
//!   the txids the inputs name.
//!
//! One server can still hide transactions it never reported: see `docs/electrum.md` for what
//! a second source or a trusted consensus hash adds.
//!
//! ```no_run
//! use vc_source::ChainView;
//! use vc_source::electrum::{ElectrumConfig, ElectrumSource};
//!
//! let source = ElectrumSource::connect(ElectrumConfig::new(
//!     "tcp://127.0.0.1:60401",
//!     bitcoin::Network::Regtest,
//! ))?;
//! println!("validated tip: {:?}", source.tip()?);
//! # Ok::<(), vc_source::SourceError>(())
//! ```

mod cache;
pub mod check;
pub mod headers;
pub mod merkle;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::{BlockHash, Network, ScriptBuf, Transaction, TxOut, Txid};
use electrum_client::{GetHistoryRes, GetMerkleRes};
use serde_json::Value;

use crate::error::{SourceError, Violation};
use crate::source::{Broadcaster, ChainTip, ChainView, WatchSource, WatchedBlock, WatchedTx, pays};
use headers::HeaderChain;
use session::{Endpoint, Rpc, Session, Shared};

const NAME: &str = "electrum";

/// Headers asked for per request (the protocol's usual maximum).
const HEADER_BATCH: usize = 2016;

/// Headers compared per request while looking for a fork point.
const FORK_SEARCH_BATCH: u64 = 144;

/// Headers below the validated tip asked for along with every tip check: they find a short
/// reorganisation's fork point in the same round trip, and make the answer large enough that a
/// padding server (ElectrumX) sends it at once.
const TIP_OVERLAP: u64 = 8;

/// Batches of watched transactions fetched ahead per range ([`ElectrumConfig::batch`] each).
const RANGE_BATCHES: usize = 4;

/// Transactions kept ready (watched and funding) before the cache is emptied.
const CACHE_CAP: usize = 2000;

/// How to reach an Electrum server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ElectrumConfig {
    /// `tcp://HOST:PORT` (plain) or `ssl://HOST:PORT` (TLS, the certificate checked against
    /// the web PKI's roots, or against [`ElectrumConfig::ca`] when given).
    pub url: String,
    /// The network the server must serve.
    pub network: Network,
    /// Sessions opened (requests from several fetch threads spread over them; each sends one
    /// request or batch at a time).
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts after the first, per request, on a new connection (after the connection broke
    /// or the server refused the request as too many).
    pub retries: u8,
    /// Requests sent as one JSON-RPC batch (one JSON array, one answer array: transactions,
    /// merkle branches), so that answers are few and large; servers process a few at once and
    /// queue the rest.
    pub batch: usize,
    /// A PEM file of CA certificates that replace the web PKI's roots for `ssl://` (a
    /// self-hosted server's own CA).
    pub ca: Option<PathBuf>,
    /// A SOCKS5 proxy, `HOST:PORT` or `socks5://HOST:PORT` (Tor: `127.0.0.1:9050`); the
    /// server's name is resolved by the proxy.
    pub proxy: Option<String>,
    /// A file keeping the validated headers between runs (default: none, every start
    /// validates the server's whole chain). A restart validates only the headers added since;
    /// a damaged file is rebuilt from its last sound header, another network's is refused.
    pub header_cache: Option<PathBuf>,
}

impl ElectrumConfig {
    /// A configuration with 4 sessions, a 30 s timeout, 4 retries, batches of 50, the web
    /// PKI's roots and no proxy.
    pub fn new(url: impl Into<String>, network: Network) -> ElectrumConfig {
        ElectrumConfig {
            url: url.into(),
            network,
            connections: 4,
            timeout: Duration::from_secs(30),
            retries: 4,
            batch: 50,
            ca: None,
            proxy: None,
            header_cache: None,
        }
    }

    /// Keeps the validated headers in `path` between runs.
    pub fn with_header_cache(mut self, path: impl Into<PathBuf>) -> ElectrumConfig {
        self.header_cache = Some(path.into());
        self
    }

    /// Trusts only the CA certificates in the PEM file `path` for TLS.
    pub fn with_ca(mut self, path: impl Into<PathBuf>) -> ElectrumConfig {
        self.ca = Some(path.into());
        self
    }

    /// Connects through the SOCKS5 proxy at `proxy` (`HOST:PORT` or `socks5://HOST:PORT`).
    pub fn with_proxy(mut self, proxy: impl Into<String>) -> ElectrumConfig {
        self.proxy = Some(proxy.into());
        self
    }
}

/// The confirmed history of the watched scripts, as last fetched.
#[derive(Debug, Default)]
struct History {
    /// The scripts it is for.
    scripts: Vec<ScriptBuf>,
    /// The validated tip when it was fetched: it is complete up to here.
    as_of: Option<u64>,
    /// Confirmed txids by height.
    by_height: BTreeMap<u64, BTreeSet<Txid>>,
    /// The block hash at each height with entries, when fetched.
    blocks: BTreeMap<u64, BlockHash>,
}

/// A height's watched transactions, fetched and proven ahead of the engine's call.
#[derive(Debug)]
struct Ready {
    /// The block they were proven against.
    hash: BlockHash,
    /// The txids the history listed there (the entry is used only while it still does).
    txids: Vec<Txid>,
    /// The transactions paying a watched script, with their positions, in block order.
    found: Vec<(u32, Transaction)>,
}

/// A height of a range fetch: its block, the history's txids there and the checked
/// transactions among them that pay a watched script.
type Paying = (u64, BlockHash, Header, Vec<Txid>, Vec<(Txid, Transaction)>);

/// What a range fetch left for later calls (bounded by [`CACHE_CAP`] transactions).
#[derive(Debug, Default)]
struct Cache {
    ready: BTreeMap<u64, Ready>,
    /// Funding transactions, checked against their txids.
    funding: BTreeMap<Txid, Transaction>,
}

impl Cache {
    fn size(&self) -> usize {
        self.funding.len() + self.ready.values().map(|r| r.found.len()).sum::<usize>()
    }
}

/// Counters for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElectrumStats {
    /// Headers validated and connected.
    pub headers: u64,
    /// Transactions fetched and proven (watched ones and funding ones).
    pub transactions: u64,
    /// Requests sent (a batch counts once).
    pub requests: u64,
    /// Connections opened, each with its `server.version` handshake (reconnects included).
    pub connections: u64,
    /// Requests the server refused as too many (each retried after a pause).
    pub refusals: u64,
}

/// An Electrum server, verified ([module docs](self)).
pub struct ElectrumSource {
    config: ElectrumConfig,
    endpoint: Endpoint,
    /// One request at a time per session: electrum-client lets threads share a connection,
    /// but its hand-over of the reading role between them can lose a wake-up and leave every
    /// waiting thread blocked (seen in CI with two prefetch workers on one connection). It
    /// also bounds what one session asks of the server at once.
    sessions: Vec<Mutex<Session>>,
    shared: Shared,
    next_client: AtomicUsize,
    chain: RwLock<HeaderChain>,
    /// Where validated headers are kept between runs.
    header_cache: Option<Mutex<cache::HeaderCache>>,
    /// Serialises header syncs (the chain itself is read concurrently).
    syncing: Mutex<()>,
    history: Mutex<History>,
    /// Ranges fetched ahead; one range fetch at a time.
    cache: Mutex<Cache>,
    filling: Mutex<()>,
    headers_validated: AtomicU64,
    transactions: AtomicU64,
    requests: AtomicU64,
}

impl std::fmt::Debug for ElectrumSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElectrumSource")
            .field("url", &self.config.url)
            .field("network", &self.config.network)
            .finish_non_exhaustive()
    }
}

fn malformed(what: impl Into<String>, detail: impl std::fmt::Display) -> SourceError {
    SourceError::Malformed {
        source_name: NAME,
        what: what.into(),
        detail: detail.to_string(),
    }
}

fn unverified(height: u64, violation: Violation, detail: String) -> SourceError {
    SourceError::Unverified {
        source_name: NAME,
        height,
        violation,
        detail,
    }
}

impl ElectrumSource {
    /// Connects, checks that the server serves `config.network` (its genesis header) and
    /// validates the server's whole header chain (with [`ElectrumConfig::header_cache`], only
    /// the headers not in the cache).
    pub fn connect(config: ElectrumConfig) -> Result<ElectrumSource, SourceError> {
        let (chain, header_cache) = match &config.header_cache {
            None => (HeaderChain::new(config.network), None),
            Some(path) => {
                let (file, loaded) = cache::HeaderCache::open(path, config.network)?;
                if let Some(damage) = &loaded.damage {
                    tracing::warn!(
                        file = %path.display(),
                        %damage,
                        kept = loaded.headers.len(),
                        "electrum: the header cache was damaged; rebuilding from its sound part"
                    );
                }
                let chain =
                    HeaderChain::from_validated(config.network, loaded.headers, loaded.hashes);
                (chain, Some(Mutex::new(file)))
            }
        };
        let endpoint = Endpoint::new(
            &config.url,
            config.ca.as_deref(),
            config.proxy.as_deref(),
            config.timeout,
            config.retries,
        )?;
        let sessions = (0..config.connections.max(1))
            .map(|_| Mutex::new(Session::new()))
            .collect();
        let source = ElectrumSource {
            chain: RwLock::new(chain),
            header_cache,
            config,
            endpoint,
            sessions,
            shared: Shared::default(),
            next_client: AtomicUsize::new(0),
            syncing: Mutex::new(()),
            history: Mutex::new(History::default()),
            cache: Mutex::new(Cache::default()),
            filling: Mutex::new(()),
            headers_validated: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        };
        let what = "the genesis header";
        let raw = source.call(what, |c| {
            c.call(what, "blockchain.block.header", vec![0.into()])
        })?;
        let genesis: Header = raw
            .as_str()
            .ok_or_else(|| malformed(what, "not a hex string"))
            .and_then(|h| vc_chash::hex::decode(h).map_err(|e| malformed(what, e)))
            .and_then(|b| deserialize(&b).map_err(|e| malformed(what, e)))?;
        let expected = bitcoin::constants::genesis_block(source.config.network).block_hash();
        if genesis.block_hash() != expected {
            return Err(SourceError::WrongNetwork {
                source_name: NAME,
                expected: source.config.network,
                found: format!("a chain whose genesis block is {}", genesis.block_hash()),
            });
        }
        source.sync_headers()?;
        Ok(source)
    }

    /// What the source has done so far.
    pub fn stats(&self) -> ElectrumStats {
        ElectrumStats {
            headers: self.headers_validated.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            connections: self.shared.connections.load(Ordering::Relaxed),
            refusals: self.shared.pacer.refusals(),
        }
    }

    /// The server's software and the protocol version it picked in the last `server.version`
    /// handshake (between 1.4 and 1.6).
    pub fn negotiated(&self) -> Option<(String, String)> {
        self.shared
            .negotiated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The validated chain's tip.
    pub fn validated_tip(&self) -> ChainTip {
        let chain = self.read_chain();
        ChainTip {
            height: chain.tip_height(),
            hash: chain.tip_hash(),
        }
    }

    /// Runs `request` on a session: a free one if any, else the next in turn.
    fn call<T>(
        &self,
        what: &str,
        request: impl Fn(&mut Rpc) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let start = self.next_client.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        let mut session = (0..n)
            .find_map(|i| self.sessions[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.sessions[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            });
        session.call(&self.endpoint, &self.shared, what, request)
    }

    fn read_chain(&self) -> std::sync::RwLockReadGuard<'_, HeaderChain> {
        self.chain.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the validated chain to the server's tip (following a reorganisation if the
    /// server's chain forks from it) and returns the tip.
    pub fn sync_headers(&self) -> Result<ChainTip, SourceError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        // The subscription's answer is the server's current tip (notifications the
        // subscription queues are skipped by the codec). The headers from a little below the
        // validated tip come in the same round trip: they usually hold the fork point and the
        // new blocks, and they make the answer large. (Always on the first session.)
        let ours = self.read_chain().tip_height();
        let low = ours.saturating_sub(TIP_OVERLAP - 1);
        let low_usize = usize::try_from(low).map_err(|_| malformed("a tip check", "height"))?;
        let what = "blockchain.headers.subscribe";
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answers = self.sessions[0]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .call(&self.endpoint, &self.shared, what, |c| {
                c.batch(
                    what,
                    vec![
                        (what.to_owned(), vec![]),
                        (
                            "blockchain.block.headers".to_owned(),
                            vec![low_usize.into(), HEADER_BATCH.into()],
                        ),
                    ],
                )
            })?;
        let [notification, overlap] = <[Value; 2]>::try_from(answers)
            .map_err(|a| malformed(what, format!("{} answers for 2 requests", a.len())))?;
        let server_tip = notification["height"]
            .as_u64()
            .ok_or_else(|| malformed(what, "no height in the answer"))?;
        let tip_header: Header = notification["hex"]
            .as_str()
            .ok_or_else(|| malformed(what, "no hex header in the answer"))
            .and_then(|h| vc_chash::hex::decode(h).map_err(|e| malformed(what, e)))
            .and_then(|b| {
                deserialize(&b).map_err(|e| malformed("the subscription's tip header", e))
            })?;
        let overlap = check::headers(low, HEADER_BATCH, &overlap)?;
        let (ours, known) = {
            let chain = self.read_chain();
            (
                chain.tip_height(),
                chain.hash(server_tip) == Some(tip_header.block_hash()),
            )
        };
        if known {
            if server_tip < ours {
                tracing::warn!(
                    server_tip,
                    validated = ours,
                    "the server's tip is below the validated chain; keeping the chain"
                );
            }
            return Ok(self.validated_tip());
        }
        // The fork point among the overlap, and the new branch's first headers above it.
        let near = {
            let chain = self.read_chain();
            overlap.iter().enumerate().rev().find_map(|(i, h)| {
                let height = low + i as u64;
                (height <= ours.min(server_tip) && chain.hash(height) == Some(h.block_hash()))
                    .then(|| (height, overlap[i + 1..].to_vec()))
            })
        };
        let (fork, mut pending) = match near {
            Some(found) => found,
            None => (self.find_fork(ours.min(server_tip))?, Vec::new()),
        };
        if fork < ours {
            tracing::warn!(
                fork,
                depth = ours - fork,
                "electrum: the server's chain forks from the validated one"
            );
        }
        let mut at = fork;
        let mut first = true;
        while at < server_tip {
            let got = if pending.is_empty() {
                let want = usize::try_from(server_tip - at)
                    .unwrap_or(HEADER_BATCH)
                    .min(HEADER_BATCH);
                self.fetch_headers(at + 1, want)?
            } else {
                std::mem::take(&mut pending)
            };
            if got.is_empty() {
                return Err(malformed(
                    format!("headers from {}", at + 1),
                    "the server returned none below its own tip",
                ));
            }
            {
                let mut chain = self.chain.write().unwrap_or_else(|p| p.into_inner());
                // The first batch replaces the old branch above the fork; later ones extend.
                let base = if first { fork } else { chain.tip_height() };
                chain.connect(NAME, base, &got)?;
                at = chain.tip_height();
                if let Some(cache) = &self.header_cache {
                    cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .rewrite_from(base + 1, chain.all())?;
                }
            }
            if first && fork < ours {
                // Only once the new branch validated: a server must not be able to wipe the
                // history it is held to by offering a fork it cannot back. (The chain lock is
                // released first: the history lock is always taken before it.)
                self.forget_history_above(fork);
            }
            first = false;
            self.headers_validated
                .fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        Ok(self.validated_tip())
    }

    /// `count` raw headers from `start`, as the server sends them (not validated).
    fn fetch_headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        let what = format!("{count} headers from {start}");
        let start_usize = usize::try_from(start).map_err(|_| malformed(what.clone(), "height"))?;
        let answer = self.call(&what, |c| {
            c.call(
                &what,
                "blockchain.block.headers",
                vec![start_usize.into(), count.into()],
            )
        })?;
        check::headers(start, count, &answer)
    }

    /// The highest height at or below `from` where the server's chain and the validated one
    /// agree.
    fn find_fork(&self, from: u64) -> Result<u64, SourceError> {
        let mut top = from;
        loop {
            let low = top.saturating_sub(FORK_SEARCH_BATCH - 1);
            let theirs = self.fetch_headers(low, (top - low + 1) as usize)?;
            let chain = self.read_chain();
            for (i, h) in theirs.iter().enumerate().rev() {
                let height = low + i as u64;
                if chain.hash(height) == Some(h.block_hash()) {
                    return Ok(height);
                }
            }
            if low == 0 {
                return Err(SourceError::WrongNetwork {
                    source_name: NAME,
                    expected: self.config.network,
                    found: "a chain that shares no block with the validated one".into(),
                });
            }
            top = low - 1;
        }
    }

    fn forget_history_above(&self, fork: u64) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.by_height.retain(|&h, _| h <= fork);
        history.blocks.retain(|&h, _| h <= fork);
        if history.as_of.is_some_and(|a| a > fork) {
            history.as_of = Some(fork);
        }
        drop(history);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.ready.retain(|&h, _| h <= fork);
    }

    /// Makes sure the validated chain reaches `height`.
    fn reach(&self, height: u64) -> Result<(u64, BlockHash, Header), SourceError> {
        if self.read_chain().tip_height() < height {
            self.sync_headers()?;
        }
        let chain = self.read_chain();
        match (chain.hash(height), chain.header(height)) {
            (Some(hash), Some(header)) => Ok((height, hash, *header)),
            _ => Err(SourceError::PastTip {
                source_name: NAME,
                height,
                tip: chain.tip_height(),
            }),
        }
    }

    /// The watched scripts' confirmed txids at `height` and above, by height, from the first
    /// height holding some up to about `limit` txids (at least that first height's), refreshing
    /// the history when it was fetched before the chain reached `height` (and checking that the
    /// refreshed one still lists everything confirmed that it listed before).
    fn txids_from(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        limit: usize,
    ) -> Result<Vec<(u64, Vec<Txid>)>, SourceError> {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.scripts != scripts {
            *history = History {
                scripts: scripts.to_vec(),
                ..History::default()
            };
        }
        if history.as_of.is_none_or(|a| a < height) {
            let as_of = self.read_chain().tip_height();
            let what = "blockchain.scripthash.get_history";
            let calls: Vec<(String, Vec<Value>)> = scripts
                .iter()
                .map(|s| (what.to_owned(), vec![scripthash(s).into()]))
                .collect();
            let lists = self.call(what, |c| c.batch(what, calls.clone()))?;
            if lists.len() != scripts.len() {
                return Err(malformed(
                    what,
                    format!("{} histories for {} scripts", lists.len(), scripts.len()),
                ));
            }
            let mut by_height: BTreeMap<u64, BTreeSet<Txid>> = BTreeMap::new();
            for list in lists {
                let list: Vec<GetHistoryRes> =
                    serde_json::from_value(list).map_err(|e| malformed(what, e))?;
                for entry in list {
                    // Unconfirmed entries have height 0 or -1.
                    if let Ok(h) = u64::try_from(entry.height)
                        && h > 0
                        && h <= as_of
                    {
                        by_height.entry(h).or_default().insert(entry.tx_hash);
                    }
                }
            }
            let chain = self.read_chain();
            // Everything the last answer listed in a block that is still on the chain must
            // still be listed.
            for (h, txids) in &history.by_height {
                if history.blocks.get(h).copied() != chain.hash(*h) {
                    continue;
                }
                let now = by_height.get(h);
                if let Some(missing) = txids.iter().find(|t| now.is_none_or(|n| !n.contains(*t))) {
                    return Err(unverified(
                        *h,
                        Violation::Omission,
                        format!(
                            "the history listed {missing} in block {h} before, and no longer does \
                             though that block is still on the chain"
                        ),
                    ));
                }
            }
            history.blocks = by_height
                .keys()
                .filter_map(|&h| chain.hash(h).map(|b| (h, b)))
                .collect();
            history.by_height = by_height;
            history.as_of = Some(as_of);
        }
        let mut out = Vec::new();
        let mut total = 0;
        for (&h, txids) in history.by_height.range(height..) {
            if !out.is_empty() && total + txids.len() > limit {
                break;
            }
            total += txids.len();
            out.push((h, txids.iter().copied().collect()));
        }
        Ok(out)
    }

    /// Sends `calls` in batches of [`ElectrumConfig::batch`], one round trip each; the results
    /// in order.
    fn batched(
        &self,
        what: &str,
        calls: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<Value>, SourceError> {
        let mut out = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(self.config.batch.max(1)) {
            let what = format!("{what} ({} requests)", chunk.len());
            let got = self.call(&what, |c| c.batch(&what, chunk.to_vec()))?;
            if got.len() != chunk.len() {
                return Err(malformed(
                    what,
                    format!("{} answers for {} requests", got.len(), chunk.len()),
                ));
            }
            out.extend(got);
        }
        Ok(out)
    }

    /// The checked transaction `txid` from the server's answer `raw` (a hex string).
    fn parse_tx(height: u64, txid: &Txid, raw: &Value) -> Result<Transaction, SourceError> {
        let bytes = raw
            .as_str()
            .ok_or_else(|| malformed(format!("transaction {txid}"), "not a hex string"))
            .and_then(|h| {
                vc_chash::hex::decode(h).map_err(|e| malformed(format!("transaction {txid}"), e))
            })?;
        check::transaction(height, txid, &bytes)
    }

    /// Fetches `txids` (batched) and checks each hashes to its txid.
    fn transactions(&self, height: u64, txids: &[Txid]) -> Result<Vec<Transaction>, SourceError> {
        let raws = self.batched(
            "blockchain.transaction.get",
            txids.iter().map(tx_get).collect(),
        )?;
        self.transactions
            .fetch_add(txids.len() as u64, Ordering::Relaxed);
        txids
            .iter()
            .zip(&raws)
            .map(|(txid, raw)| Self::parse_tx(height, txid, raw))
            .collect()
    }

    /// Fetches and proves the watched transactions of `height` (whose txids are `first`) and of
    /// the heights after it in `rest`, in a few batches: every transaction, then every merkle
    /// branch together with the funding transactions `select` will want. Returns `height`'s
    /// transactions paying a watched script, with their positions, in block order, and keeps
    /// the other heights' in the cache (a height whose answers fail a check is left out, to be
    /// fetched and reported on its own).
    fn fetch_range(
        &self,
        ranges: &[(u64, Vec<Txid>)],
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<Vec<(u32, Transaction)>, SourceError> {
        let Some(&(height, _)) = ranges.first() else {
            return Ok(Vec::new());
        };
        // Each height with its validated block.
        let blocks: Vec<(u64, BlockHash, Header, &[Txid])> = {
            let chain = self.read_chain();
            ranges
                .iter()
                .map_while(|(h, txids)| {
                    Some((*h, chain.hash(*h)?, *chain.header(*h)?, txids.as_slice()))
                })
                .collect()
        };
        let all: Vec<Txid> = blocks.iter().flat_map(|b| b.3.iter().copied()).collect();
        let raws = self.batched(
            "blockchain.transaction.get",
            all.iter().map(tx_get).collect(),
        )?;
        self.transactions
            .fetch_add(all.len() as u64, Ordering::Relaxed);
        // A history also lists transactions that only spend from a script: drop them before
        // proving (a merkle branch costs the server a block lookup).
        let mut raws = raws.iter();
        let mut paying: Vec<Paying> = Vec::new();
        for &(h, hash, header, txids) in &blocks {
            let checked: Result<Vec<(Txid, Transaction)>, SourceError> = txids
                .iter()
                .zip(raws.by_ref())
                .map(|(txid, raw)| Ok((*txid, Self::parse_tx(h, txid, raw)?)))
                .collect();
            match checked {
                Ok(txs) => {
                    let txs = txs
                        .into_iter()
                        .filter(|(_, tx)| pays(tx, scripts))
                        .collect();
                    paying.push((h, hash, header, txids.to_vec(), txs));
                }
                Err(e) if h == height => return Err(e),
                Err(_) => {}
            }
        }
        // The branches and the funding transactions in the same round trips.
        let mut calls: Vec<(String, Vec<Value>)> = Vec::new();
        for (h, _, _, _, txs) in &paying {
            for (txid, _) in txs {
                calls.push((
                    "blockchain.transaction.get_merkle".to_owned(),
                    vec![txid.to_string().into(), (*h).into()],
                ));
            }
        }
        let proofs_asked = calls.len();
        let funding: Vec<Txid> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            paying
                .iter()
                .flat_map(|p| p.4.iter())
                .filter(|(_, tx)| !tx.is_coinbase() && select(tx))
                .flat_map(|(_, tx)| tx.input.iter().map(|i| i.previous_output.txid))
                .filter(|t| !cache.funding.contains_key(t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        calls.extend(funding.iter().map(tx_get));
        let answers = self.batched("merkle branches and funding transactions", calls)?;
        self.transactions
            .fetch_add(funding.len() as u64, Ordering::Relaxed);
        let (proofs, funded) = answers.split_at(proofs_asked.min(answers.len()));
        let mut proofs = proofs.iter();
        let mut mine = Vec::new();
        let mut ready = BTreeMap::new();
        for (h, hash, header, txids, txs) in paying {
            let got: Result<Vec<GetMerkleRes>, SourceError> = proofs
                .by_ref()
                .take(txs.len())
                .map(|p| {
                    serde_json::from_value(p.clone())
                        .map_err(|e| malformed("blockchain.transaction.get_merkle", e))
                })
                .collect();
            match got.and_then(|got| check::branches(h, header.merkle_root, &txs, &got)) {
                Ok(positions) => {
                    let mut found: Vec<(u32, Transaction)> = positions
                        .into_iter()
                        .zip(txs.into_iter().map(|(_, tx)| tx))
                        .collect();
                    found.sort_by_key(|(pos, _)| *pos);
                    if h == height {
                        mine = found;
                    } else {
                        ready.insert(h, Ready { hash, txids, found });
                    }
                }
                Err(e) if h == height => return Err(e),
                Err(_) => {}
            }
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.size() > CACHE_CAP {
            *cache = Cache::default();
        }
        cache.ready.extend(ready);
        for (txid, raw) in funding.iter().zip(funded) {
            // One that fails its check is fetched again, and reported, by its own block.
            if let Ok(tx) = Self::parse_tx(height, txid, raw) {
                cache.funding.insert(*txid, tx);
            }
        }
        Ok(mine)
    }

    /// `height`'s proven transactions from the cache, if a range fetch left them for the block
    /// `hash` and the history still lists `txids` there.
    fn take_ready(
        &self,
        height: u64,
        hash: BlockHash,
        txids: &[Txid],
    ) -> Option<Vec<(u32, Transaction)>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let ready = cache.ready.remove(&height)?;
        (ready.hash == hash && ready.txids == txids).then_some(ready.found)
    }

    /// The outputs `txs`' inputs spend, from their funding transactions (fetched ahead by the
    /// range fetch, or now).
    fn prevouts(&self, height: u64, txs: &[&Transaction]) -> Result<Vec<Vec<TxOut>>, SourceError> {
        let needed: BTreeSet<Txid> = txs
            .iter()
            .flat_map(|t| t.input.iter().map(|i| i.previous_output.txid))
            .collect();
        let mut by_txid: BTreeMap<Txid, Transaction> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            needed
                .iter()
                .filter_map(|t| cache.funding.get(t).map(|tx| (*t, tx.clone())))
                .collect()
        };
        let missing: Vec<Txid> = needed
            .into_iter()
            .filter(|t| !by_txid.contains_key(t))
            .collect();
        let fetched = self.transactions(height, &missing)?;
        by_txid.extend(missing.into_iter().zip(fetched));
        txs.iter()
            .map(|tx| {
                tx.input
                    .iter()
                    .map(|input| {
                        let op = input.previous_output;
                        by_txid
                            .get(&op.txid)
                            .and_then(|f| f.output.get(op.vout as usize))
                            .cloned()
                            .ok_or_else(|| {
                                unverified(
                                    height,
                                    Violation::Prevout,
                                    format!(
                                        "{} spends {op}, which its funding transaction lacks",
                                        tx.compute_txid()
                                    ),
                                )
                            })
                    })
                    .collect()
            })
            .collect()
    }

    fn watched_once(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        let (height, hash, header) = self.reach(height)?;
        let limit = RANGE_BATCHES * self.config.batch.max(1);
        let mut found = Vec::new();
        let txids = self.txids_from(height, scripts, 0)?;
        if let Some((h, txids)) = txids.first()
            && *h == height
        {
            found = match self.take_ready(height, hash, txids) {
                Some(found) => found,
                None => {
                    // One range fetch at a time: the others wait for it and take from it.
                    let _one = self.filling.lock().unwrap_or_else(|p| p.into_inner());
                    match self.take_ready(height, hash, txids) {
                        Some(found) => found,
                        None => {
                            let ranges = self.txids_from(height, scripts, limit)?;
                            self.fetch_range(&ranges, scripts, select)?
                        }
                    }
                }
            };
        }
        let wanted: Vec<&Transaction> = found
            .iter()
            .filter(|(pos, tx)| *pos > 0 && select(tx))
            .map(|(_, tx)| tx)
            .collect();
        let mut spent = self.prevouts(height, &wanted)?.into_iter();
        let txs = found
            .into_iter()
            .map(|(index, tx)| {
                let spent = if index > 0 && select(&tx) {
                    spent.next()
                } else {
                    None
                };
                WatchedTx { index, tx, spent }
            })
            .collect();
        Ok(WatchedBlock {
            height,
            hash,
            header,
            txs,
        })
    }
}

/// An Electrum script hash: the script's SHA256, byte-reversed, in hex.
fn scripthash(script: &ScriptBuf) -> String {
    use bitcoin::hashes::{Hash, sha256};
    let mut hash = sha256::Hash::hash(script.as_bytes()).to_byte_array();
    hash.reverse();
    vc_chash::hex::encode(&hash)
}

/// A `blockchain.transaction.get` request for `txid`.
fn tx_get(txid: &Txid) -> (String, Vec<Value>) {
    (
        "blockchain.transaction.get".to_owned(),
        vec![txid.to_string().into()],
    )
}

impl ChainView for ElectrumSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn network(&self) -> Network {
        self.config.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.sync_headers()
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        Ok(self.reach(height)?.1)
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        let end = start.saturating_add(count as u64);
        if count > 0 {
            self.reach(end - 1)?;
        }
        let chain = self.read_chain();
        (start..end)
            .map(|h| {
                chain.header(h).copied().ok_or(SourceError::PastTip {
                    source_name: NAME,
                    height: h,
                    tip: chain.tip_height(),
                })
            })
            .collect()
    }
}

impl WatchSource for ElectrumSource {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        match self.watched_once(height, scripts, select) {
            Err(e @ SourceError::Unverified { .. }) => {
                // A proof that fails may be a reorganisation that happened between the header
                // sync and the history: if the chain moved at this height, answer for the new
                // block; otherwise the server lied.
                let before = self.read_chain().hash(height);
                self.sync_headers()?;
                if self.read_chain().hash(height) == before {
                    return Err(e);
                }
                tracing::info!(height, "electrum: the chain moved during a fetch; retrying");
                self.forget_history_above(height.saturating_sub(1));
                self.watched_once(height, scripts, select)
            }
            other => other,
        }
    }
}

impl Broadcaster for ElectrumSource {
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, SourceError> {
        let what = "blockchain.transaction.broadcast";
        let hex = vc_chash::hex::encode(&bitcoin::consensus::serialize(tx));
        let answer = self.call(what, |c| c.call(what, what, vec![hex.clone().into()]))?;
        answer
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| malformed(what, format!("not a txid: {answer}")))
    }
}
