//! Live events: what the store applied and rolled back, as Server-Sent Events on
//! `GET /v1/events` and as webhook POSTs ([`crate::webhook`]).
//!
//! The server writes nothing, so it learns of new blocks and reorgs by polling the store's tip
//! ([`poll`], one read per [`EventsConfig::poll`]) and telling every consumer through a watch
//! channel. Each consumer (one SSE stream, one webhook URL) runs a [`Follower`]: the heights
//! and hashes of the blocks it has told its client about, newest last. On each change the
//! follower compares them with the store, newest first, emits one `rollback` per block that
//! the store no longer has, then one `apply` per block the client lacks. A client that applies
//! the events in order to an empty map holds the store's chain.
//!
//! An event's id (`Last-Event-ID` for SSE) is `HEIGHT:BLOCKHASH` of the client's newest block
//! after the event, or `start` when it holds none.
//!
//! The indexer also records each fork its fork watch detects in the file
//! ([`vc_store::LastFork`]); a follower that sees a new record emits one `fork` event before
//! the rollbacks it causes (none when the fork is deeper than the indexer reverts on its own:
//! they come once an operator reverts it). A `fork` is news, not chain data: it is not replayed
//! to a client that resumes, and a new stream hears only of forks found after it started.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use vc_chash::{Hash256, hex};
use vc_store::{ChainEntry, LastFork, StoreError, StoredOp, View};

use crate::error::ApiError;
use crate::render;
use crate::routes::{Shared, background, param, query};

/// How many of its newest blocks a consumer remembers: the deepest reorg it can report block
/// by block (a deeper one ends the stream with an error naming the fork, and the client
/// resumes below it). Ten times the indexer's default automatic revert limit.
pub const REORG_MEMORY: u64 = 1_000;

/// The most blocks read from the store at once while a consumer catches up.
const BATCH: u64 = 64;

/// Live events: streams, their buffers and the webhooks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EventsConfig {
    /// How many `/v1/events` streams are open at once; more are answered `503 too_many_streams`.
    pub max_streams: usize,
    /// Events buffered per stream (and per webhook URL) ahead of the client.
    pub buffer: usize,
    /// How long a stream's full buffer may wait for the client to read before the stream is
    /// dropped (the client resumes with `Last-Event-ID`).
    pub slow_client: Duration,
    /// How often the store's tip is polled for new blocks and reorgs.
    pub poll: Duration,
    /// How often a quiet stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// URLs (`http://` only) to POST every event to, in order.
    pub webhooks: Vec<String>,
    /// The first wait before a failed webhook delivery is retried; it doubles up to
    /// `webhook_retry_max`.
    pub webhook_retry: Duration,
    /// The longest wait between two attempts at one webhook delivery.
    pub webhook_retry_max: Duration,
    /// How long one webhook POST may take.
    pub webhook_timeout: Duration,
}

impl Default for EventsConfig {
    /// 256 streams, 64 events per buffer, 30 s for a slow client, a 250 ms poll, a keep-alive
    /// every 15 s, no webhooks; webhook retries after 0.5 s doubling up to 60 s, 10 s per POST.
    fn default() -> Self {
        EventsConfig {
            max_streams: 256,
            buffer: 64,
            slow_client: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            keep_alive: Duration::from_secs(15),
            webhooks: Vec::new(),
            webhook_retry: Duration::from_millis(500),
            webhook_retry_max: Duration::from_secs(60),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

/// What a poll of the store found: its newest block (height and hash) and the sequence number
/// of the last fork the indexer recorded.
type TipId = (Option<(u64, [u8; 32])>, Option<u64>);

/// What the consumers share: the store's tip as last polled, the shutdown flag, and the
/// stream permits.
#[derive(Debug)]
pub(crate) struct Hub {
    tip: watch::Sender<TipId>,
    closed: watch::Sender<bool>,
    streams: Arc<Semaphore>,
}

impl Hub {
    pub(crate) fn new(config: &EventsConfig) -> Hub {
        Hub {
            tip: watch::Sender::new((None, None)),
            closed: watch::Sender::new(false),
            streams: Arc::new(Semaphore::new(config.max_streams)),
        }
    }

    /// Ends every stream and webhook task.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once the server is shutting down.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }
}

/// Starts the tip poller and the webhooks; the returned future completes after `shutdown` and
/// has closed every stream, so the server's graceful shutdown does not wait on them.
pub(crate) fn start(
    s: &Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    tokio::spawn(poll(s.clone()));
    crate::webhook::start(s);
    let s = s.clone();
    async move {
        shutdown.await;
        s.events.close();
    }
}

/// Polls the store's tip and publishes each change.
async fn poll(s: Arc<Shared>) {
    let closed = s.events.closed();
    tokio::pin!(closed);
    let mut ticker = tokio::time::interval(s.config.events.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut closed => return,
            _ = ticker.tick() => {}
        }
        let read = background(s.clone(), |s| {
            let view = s.store.view()?;
            Ok((view.tip()?, view.last_fork()?))
        })
        .await;
        match read {
            Ok((tip, fork)) => {
                let id = (tip.map(|t| (t.height, t.block_hash.0)), fork.map(|f| f.seq));
                s.events.tip.send_if_modified(|cur| {
                    let changed = *cur != id;
                    *cur = id;
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "events: reading the store's tip"),
        }
    }
}

/// One event for a client.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    /// `apply`, `rollback`, `fork` or `error`.
    pub(crate) kind: &'static str,
    /// The client's newest block after this event (`HEIGHT:BLOCKHASH` or `start`).
    pub(crate) id: Option<String>,
    /// The payload (the same for SSE and webhooks).
    pub(crate) data: Value,
}

impl Event {
    fn error(e: &ApiError) -> Event {
        Event {
            kind: "error",
            id: None,
            data: json!({ "type": "error", "code": e.code(), "message": e.to_string() }),
        }
    }

    fn to_sse(&self) -> sse::Event {
        let e = sse::Event::default()
            .event(self.kind)
            .data(self.data.to_string());
        match &self.id {
            Some(id) => e.id(id),
            None => e,
        }
    }
}

fn event_id(held: Option<&(u64, [u8; 32])>) -> String {
    match held {
        Some((h, hash)) => format!("{h}:{}", render::display_hash(hash)),
        None => "start".to_owned(),
    }
}

fn apply(height: u64, entry: &ChainEntry, ch: String, ops: &[StoredOp]) -> Event {
    Event {
        kind: "apply",
        id: Some(event_id(Some(&(height, entry.block_hash)))),
        data: json!({
            "type": "apply",
            "height": height,
            "block_hash": render::display_hash(&entry.block_hash),
            "prev_hash": render::display_hash(&entry.prev_hash),
            "consensus_hash": ch,
            "ops_hash": hex::encode(&entry.ops_hash),
            "operations": ops.iter().map(render::op).collect::<Vec<_>>(),
        }),
    }
}

/// The `fork` event for `f`; `held` is the client's newest block (unchanged by it).
fn fork(f: &LastFork, held: Option<&(u64, [u8; 32])>) -> Event {
    Event {
        kind: "fork",
        id: Some(event_id(held)),
        data: json!({
            "type": "fork",
            "seq": f.seq,
            "fork_height": f.fork_height,
            "tip": f.tip,
            "depth": f.depth(),
            "source_tip": f.source_tip,
            "probe_requests": f.probe_requests,
            "search_requests": f.search_requests,
            "automatic": f.automatic,
        }),
    }
}

/// Where a consumer starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The first block the client lacks.
    From(u64),
    /// The client holds up to this block (`Last-Event-ID`).
    After(u64, [u8; 32]),
    /// The client holds nothing (`Last-Event-ID: start`).
    Empty,
}

impl Start {
    /// Parses a `Last-Event-ID`.
    pub(crate) fn from_event_id(id: &str) -> Result<Start, ApiError> {
        if id == "start" {
            return Ok(Start::Empty);
        }
        let bad = || ApiError::BadRequest(format!("Last-Event-ID {id:?} is not HEIGHT:BLOCKHASH"));
        let (h, hash) = id.split_once(':').ok_or_else(bad)?;
        let h = h.parse().map_err(|_| bad())?;
        let hash = Hash256::from_display_hex(hash).map_err(|_| bad())?;
        Ok(Start::After(h, hash.0))
    }
}

/// What a consumer's client holds, and how it follows the store.
#[derive(Debug)]
pub(crate) struct Follower {
    first: u64,
    /// The client's newest blocks, contiguous, newest last, at most [`REORG_MEMORY`].
    held: VecDeque<(u64, [u8; 32])>,
    /// The next height to apply.
    next: u64,
    /// The sequence number of the last fork record the client heard of (or that was there
    /// when it started).
    fork_seen: Option<u64>,
}

impl Follower {
    /// A follower for a client starting at `start`, checked against `view`: `From(h)` needs
    /// `first <= h <= tip + 1` and means the client holds the store's blocks below `h`;
    /// `After(h, hash)` needs `first <= h <= tip` and means it holds the store's blocks below
    /// `h` and `hash` at `h` (which may since have been replaced).
    pub(crate) fn start(view: &View, first: u64, start: Start) -> Result<Follower, ApiError> {
        let tip = view.tip()?.map(|t| t.height);
        let next_free = tip.map_or(first, |t| t + 1);
        let (below, top) = match start {
            Start::Empty => (first, None),
            Start::From(h) => {
                if h < first || h > next_free {
                    return Err(ApiError::BadRequest(format!(
                        "from={h} is outside the store's blocks {first}..={next_free} \
                         (the tip's successor included)"
                    )));
                }
                (h, None)
            }
            Start::After(h, hash) => {
                if h < first || tip.is_none_or(|t| h > t) {
                    return Err(ApiError::BadRequest(format!(
                        "Last-Event-ID height {h} is outside the store's blocks {first}..={}",
                        next_free.saturating_sub(1)
                    )));
                }
                (h, Some((h, hash)))
            }
        };
        let from = below.saturating_sub(REORG_MEMORY - 1).max(first);
        let mut held: VecDeque<_> = view
            .chain_range(from, below.saturating_sub(1))?
            .into_iter()
            .filter(|(h, _)| *h < below)
            .map(|(h, e)| (h, e.block_hash))
            .collect();
        held.extend(top);
        if held.len() as u64 > REORG_MEMORY {
            held.pop_front();
        }
        let next = held.back().map_or(below, |(h, _)| h + 1);
        let fork_seen = view.last_fork()?.map(|f| f.seq);
        Ok(Follower {
            first,
            held,
            next,
            fork_seen,
        })
    }

    /// The events that bring the client to `view`, at most [`BATCH`] applies; `true` when
    /// the client is then at the view's tip.
    pub(crate) fn step(&mut self, view: &View) -> Result<(Vec<Event>, bool), ApiError> {
        let mut events = Vec::new();
        if let Some(f) = view.last_fork()?
            && self.fork_seen != Some(f.seq)
        {
            self.fork_seen = Some(f.seq);
            events.push(fork(&f, self.held.back()));
        }
        while let Some(&(h, hash)) = self.held.back() {
            if view.chain_entry(h)?.is_some_and(|e| e.block_hash == hash) {
                break;
            }
            self.held.pop_back();
            self.next = h;
            events.push(Event {
                kind: "rollback",
                id: Some(event_id(self.held.back())),
                data: json!({
                    "type": "rollback",
                    "height": h,
                    "block_hash": render::display_hash(&hash),
                }),
            });
            if self.held.is_empty() && h > self.first {
                return Err(ApiError::Internal(format!(
                    "a reorg replaced more than the {REORG_MEMORY} blocks this stream \
                     remembers (down to {h}); resume with from= below the fork"
                )));
            }
        }
        let Some(tip) = view.tip()? else {
            return Ok((events, true));
        };
        let to = tip.height.min(self.next.saturating_add(BATCH - 1));
        if self.next <= to {
            let mut ops = view.ops_range(self.next, to)?.into_iter().peekable();
            for (h, entry) in view.chain_range(self.next, to)? {
                if h != self.next {
                    return Err(StoreError::Inconsistent(format!(
                        "the chain index has no block {} below {h}",
                        self.next
                    ))
                    .into());
                }
                let mut block_ops = Vec::new();
                while let Some((_, op)) = ops.next_if(|(oh, _)| *oh <= h) {
                    block_ops.push(op);
                }
                let ch = view.consensus_hash_of(h, &entry)?.to_string();
                events.push(apply(h, &entry, ch, &block_ops));
                self.held.push_back((h, entry.block_hash));
                if self.held.len() as u64 > REORG_MEMORY {
                    self.held.pop_front();
                }
                self.next = h + 1;
            }
        }
        Ok((events, self.next > tip.height))
    }
}

/// How a consumer takes events: a bounded channel, and what to do when it is full.
pub(crate) struct Sink {
    pub(crate) tx: mpsc::Sender<Event>,
    /// SSE: drop the client after this long; webhooks (`None`): wait, reading no further.
    pub(crate) slow: Option<Duration>,
    /// Who is fed (for the logs).
    pub(crate) label: String,
}

impl Sink {
    /// Hands over `ev`; `false` when the consumer is gone or dropped.
    async fn send(&self, ev: Event) -> bool {
        let ev = match self.tx.try_send(ev) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(ev)) => ev,
        };
        match self.slow {
            Some(limit) => match tokio::time::timeout(limit, self.tx.send(ev)).await {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    tracing::warn!(
                        client = %self.label,
                        buffered = self.tx.max_capacity(),
                        "events: the client read nothing for {limit:?}; dropping its stream"
                    );
                    false
                }
            },
            None => {
                tracing::warn!(
                    webhook = %self.label,
                    queued = self.tx.max_capacity(),
                    "events: the webhook queue is full; reading no further blocks until it \
                     drains (nothing is lost: the store keeps them)"
                );
                self.tx.send(ev).await.is_ok()
            }
        }
    }
}

/// Feeds `sink` from `follower` until the consumer goes away or the server shuts down.
pub(crate) async fn produce(s: Arc<Shared>, mut follower: Follower, sink: Sink) {
    let mut tips = s.events.tip.subscribe();
    let closed = s.events.closed();
    tokio::pin!(closed);
    loop {
        tips.borrow_and_update();
        let step = background(s.clone(), move |s| {
            let view = s.store.view()?;
            let r = follower.step(&view);
            Ok((follower, r))
        })
        .await;
        let (events, caught_up) = match step {
            Ok((f, Ok(r))) => {
                follower = f;
                r
            }
            Ok((_, Err(e))) | Err(e) => {
                tracing::warn!(consumer = %sink.label, error = %e, "events: stream ended");
                let _ = sink.tx.try_send(Event::error(&e));
                return;
            }
        };
        for ev in events {
            tokio::select! {
                () = &mut closed => return,
                sent = sink.send(ev) => if !sent { return },
            }
        }
        if caught_up {
            tokio::select! {
                () = &mut closed => return,
                () = sink.tx.closed() => return,
                changed = tips.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// The body of one SSE response: the stream's channel, and its permit.
struct EventStream {
    rx: mpsc::Receiver<Event>,
    _permit: OwnedSemaphorePermit,
}

impl futures_core::Stream for EventStream {
    type Item = Result<sse::Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|ev| ev.map(|ev| Ok(ev.to_sse())))
    }
}

/// `GET /v1/events?from=HEIGHT`, honouring `Last-Event-ID`.
pub(crate) async fn events(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = query(&raw, &["from"])?;
    let last_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID is not text".into()))
        })
        .transpose()?;
    let start = match (last_id, param(&q, "from")) {
        (Some(id), _) if !id.is_empty() => Some(Start::from_event_id(id)?),
        (_, Some(h)) => Some(Start::From(h.parse().map_err(|_| {
            ApiError::BadRequest(format!("from must be a block height, not {h:?}"))
        })?)),
        _ => None,
    };
    let permit = s
        .events
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams(s.config.events.max_streams))?;
    let follower = background(s.clone(), move |s| {
        let view = s.store.view()?;
        let first = s.store.meta().first_block;
        // No start: only what comes next.
        let start = match start {
            Some(st) => st,
            None => Start::From(view.tip()?.map_or(first, |t| t.height + 1)),
        };
        Follower::start(&view, first, start)
    })
    .await?;
    let (tx, rx) = mpsc::channel(s.config.events.buffer.max(1));
    let sink = Sink {
        tx,
        slow: Some(s.config.events.slow_client),
        label: "an /v1/events stream".into(),
    };
    tokio::spawn(produce(s.clone(), follower, sink));
    let body = EventStream {
        rx,
        _permit: permit,
    };
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(s.config.events.keep_alive))
        .into_response();
    // Reverse proxies (nginx) must pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event {
            kind: "apply",
            id: Some(n.to_string()),
            data: json!({ "height": n }),
        }
    }

    #[test]
    fn a_stream_whose_client_reads_nothing_is_dropped_when_its_buffer_is_full() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(2);
            let sink = Sink {
                tx,
                slow: Some(Duration::from_millis(50)),
                label: "test".into(),
            };
            assert!(sink.send(ev(1)).await);
            assert!(sink.send(ev(2)).await);
            // Full, and nobody reads: dropped after the limit instead of buffering more.
            assert!(!sink.send(ev(3)).await);
            assert_eq!(rx.recv().await, Some(ev(1)));
            // Room again: accepted.
            assert!(sink.send(ev(4)).await);
            drop(rx);
            assert!(!sink.send(ev(5)).await, "a closed stream takes nothing");
        });
    }

    #[test]
    fn event_ids_round_trip_and_bad_ones_are_refused() {
        let hash = [7u8; 32];
        let id = event_id(Some(&(12, hash)));
        assert_eq!(Start::from_event_id(&id).unwrap(), Start::After(12, hash));
        assert_eq!(event_id(None), "start");
        assert_eq!(Start::from_event_id("start").unwrap(), Start::Empty);
        for bad in ["", "12", "12:", "x:00", &format!("12:{}", "0".repeat(63))] {
            assert!(Start::from_event_id(bad).is_err(), "{bad:?}");
        }
    }
}
