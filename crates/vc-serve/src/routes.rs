//! The endpoints. Every handler reads one consistent [`View`] of the store on tokio's blocking
//! pool, so a request is answered from a single commit of the indexer however long it takes.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::body::Body;
use axum::extract::Extension as Ext;
use axum::extract::{FromRequestParts, MatchedPath, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;
use vc_chash::proof::{ProveError, prove};
use vc_chash::{ConsensusHash, History, Scheme, is_fresh};
use vc_store::{ReadOnlyStore, StoreError, View};

use crate::ServeConfig;
use crate::error::ApiError;
use crate::index::{Extension, Index};
use crate::metrics::Metrics;
use crate::render;
use crate::work::{Cancel, Checked, Work};

/// The OpenAPI document of this API (`docs/openapi.json` in the repository is the same file).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What every request shares.
pub(crate) struct Shared {
    pub(crate) store: ReadOnlyStore,
    pub(crate) ext: Option<Arc<dyn Extension>>,
    pub(crate) index: RwLock<Index>,
    pub(crate) metrics: Metrics,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) events: crate::events::Hub,
    /// The places of snapshot downloads ([`crate::SnapshotsConfig::max_downloads`]).
    pub(crate) snapshot_downloads: Arc<Semaphore>,
    pub(crate) config: ServeConfig,
}

type St = State<Arc<Shared>>;

/// Runs `f` on the blocking pool with the shared state and the request's abandonment flag.
/// The work holds the request's permit until it returns, so abandoned work still counts
/// against `max_in_flight` until it has stopped; `f` checks the flag in its loops.
pub(crate) async fn blocking<T, F>(s: Arc<Shared>, work: Work, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Shared, &Cancel) -> Result<T, ApiError> + Send + 'static,
{
    let permit = work.permit();
    let cancel = work.cancel().clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = cancel.check().and_then(|()| {
            let _running = s.metrics.work();
            f(&s, &cancel)
        });
        if matches!(result, Err(ApiError::Abandoned)) {
            s.metrics.work_abandoned();
        }
        result
    })
    .await
    .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}

/// Runs `f` on the blocking pool with the shared state, outside any request's permit: the
/// event streams' and webhooks' store reads (each bounded in size), the page and the health
/// checks (one tip read each), which must answer under overload.
pub(crate) async fn background<T, F>(s: Arc<Shared>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| ApiError::Internal(format!("background task failed: {e}")))?
}

/// The request's work (permit and abandonment flag), which the guard middleware gives every
/// matched route.
type W = Ext<Work>;

/// A block height in canonical decimal: digits only, no sign, no leading zero (`0` itself
/// excepted), at most `u64::MAX`. `+300` and `0300` are refused, so that one height has one
/// spelling.
pub(crate) fn parse_height(what: &str, s: &str) -> Result<u64, ApiError> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    canonical
        .then(|| s.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{what} must be a block height in decimal without sign or leading zeros, not {:?}",
                truncated(s)
            ))
        })
}

/// The longest piece of a request echoed back in an error message, in characters.
const ECHO_CHARS: usize = 64;

/// `s` cut to [`ECHO_CHARS`] characters (`...` marks a cut), for echoing request text in
/// errors without echoing a whole long request.
pub(crate) fn truncated(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Two path segments, refused like [`Seg`]'s.
pub(crate) struct Seg2(String, String);

impl<S: Send + Sync> FromRequestParts<S> for Seg2 {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(Path((a, b))) => Ok(Seg2(a, b)),
            Err(e) => Err(ApiError::BadRequest(format!(
                "path: {}",
                truncated(&e.body_text())
            ))),
        }
    }
}

/// A path segment. Unlike axum's `Path`, whose rejections are plain text, a segment that is not
/// UTF-8 once percent-decoded is refused with a JSON `400 bad_request`.
pub(crate) struct Seg(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Seg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(Seg(s)),
            Err(e) => Err(ApiError::BadRequest(format!(
                "path: {}",
                truncated(&e.body_text())
            ))),
        }
    }
}

fn parse_ch(scheme: Scheme, s: &str) -> Result<ConsensusHash, ApiError> {
    let ch: ConsensusHash = s
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("consensus hash {:?}: {e}", truncated(s))))?;
    if !ch.fits(scheme) {
        return Err(ApiError::BadRequest(format!(
            "consensus hash {:?} has {} hex digits; this store uses {scheme:?}, whose hashes have {}",
            truncated(s),
            ch.as_bytes().len() * 2,
            scheme.hash_len() * 2
        )));
    }
    Ok(ch)
}

/// The parameters of a query string (`a=1&b=2`); unknown names are refused so that a typo is
/// not silently ignored.
pub(crate) fn query<'a>(
    raw: &'a Option<String>,
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let mut out = Vec::new();
    for pair in raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {:?} (known: {})",
                truncated(k),
                known.join(", ")
            )));
        }
        out.push((k, v));
    }
    Ok(out)
}

pub(crate) fn param<'a>(q: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    q.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn view(s: &Shared) -> Result<View, ApiError> {
    Ok(s.store.view()?)
}

/// The index, brought to `view`'s tip if it does not hold `view`'s chain already. Readers share
/// it while it serves their views; the first request after a commit (or a reorg) updates it. A
/// request reading an older commit than the index's uses the index as it is: the index holds
/// its chain too, and every caller checks what the index says against its own view.
fn indexed<T>(
    s: &Shared,
    view: &View,
    cancel: &Cancel,
    f: impl FnOnce(&Index) -> T,
) -> Result<T, ApiError> {
    let tip = view.tip()?;
    if let Ok(index) = s.index.read()
        && index.serves(tip.as_ref())
    {
        return Ok(f(&index));
    }
    let mut index = index_write(s);
    // Another request may have updated it while this one waited.
    if !index.serves(tip.as_ref()) {
        index.refresh(view, tip, s.ext.as_deref(), cancel)?;
    }
    Ok(f(&index))
}

/// The index, for writing. A request that panicked while updating it (a damaged store) leaves
/// it poisoned and possibly half-updated: it is emptied, to be rebuilt from the store, rather
/// than failing every later request.
fn index_write(s: &Shared) -> std::sync::RwLockWriteGuard<'_, Index> {
    match s.index.write() {
        Ok(index) => index,
        Err(poisoned) => {
            let mut index = poisoned.into_inner();
            *index = Index::default();
            s.index.clear_poison();
            tracing::warn!("a failed request left the in-memory index half-updated; rebuilding it");
            index
        }
    }
}

pub(crate) async fn tip(State(s): St, Ext(w): W) -> Result<Response, ApiError> {
    blocking(s, w, |s, _| {
        let tip = view(s)?.tip()?;
        let meta = s.store.meta();
        Ok(Json(json!({
            "app": {
                "name": meta.app_name,
                "version": meta.app_version,
                "scheme": s.store.scheme(),
                "first_block": meta.first_block,
                "network": meta.network,
            },
            "tip": tip.map(|t| json!({
                "height": t.height,
                "block_hash": render::display_hash(&t.block_hash.0),
                "consensus_hash": t.consensus_hash.to_string(),
            })),
        }))
        .into_response())
    })
    .await
}

pub(crate) async fn block(State(s): St, Ext(w): W, Seg(height): Seg) -> Result<Response, ApiError> {
    let height = parse_height("height", &height)?;
    blocking(s, w, move |s, _| {
        let view = view(s)?;
        let entry = view
            .chain_entry(height)?
            .ok_or_else(|| ApiError::NotFound(format!("no block {height} in the store")))?;
        let ch = view.consensus_hash_of(height, &entry)?;
        let ops = view.ops(height)?.len();
        Ok(Json(render::block(height, &entry, &ch, ops)).into_response())
    })
    .await
}

pub(crate) async fn block_ops(
    State(s): St,
    Ext(w): W,
    Seg(height): Seg,
) -> Result<Response, ApiError> {
    let height = parse_height("height", &height)?;
    blocking(s, w, move |s, _| {
        let view = view(s)?;
        let entry = view
            .chain_entry(height)?
            .ok_or_else(|| ApiError::NotFound(format!("no block {height} in the store")))?;
        let ops = view.ops(height)?;
        Ok(Json(json!({
            "height": height,
            "block_hash": render::display_hash(&entry.block_hash),
            "operations": ops.iter().map(render::op).collect::<Vec<_>>(),
        }))
        .into_response())
    })
    .await
}

pub(crate) async fn consensus(State(s): St, Ext(w): W, Seg(ch): Seg) -> Result<Response, ApiError> {
    blocking(s, w, move |s, c| {
        let ch = parse_ch(s.store.scheme(), &ch)?;
        let view = view(s)?;
        let height = indexed(s, &view, c, |i| i.height_of(&ch))?;
        // The index may be newer than this view (another request refreshed it); the view is
        // the answer's authority.
        let found = match height {
            Some(h) if view.consensus_hash(h)? == Some(ch) => Some(h),
            _ => None,
        };
        let height =
            found.ok_or_else(|| ApiError::NotFound(format!("no block has consensus hash {ch}")))?;
        let entry = view
            .chain_entry(height)?
            .ok_or_else(|| ApiError::NotFound(format!("no block {height} in the store")))?;
        Ok(Json(json!({
            "consensus_hash": ch.to_string(),
            "height": height,
            "block_hash": render::display_hash(&entry.block_hash),
        }))
        .into_response())
    })
    .await
}

pub(crate) async fn fresh(
    State(s): St,
    Ext(w): W,
    Seg(ch): Seg,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    // Everything the request asks is checked before the store is read: the answer reads up to
    // `window` consensus hashes, so the window is bounded.
    let ch = parse_ch(s.store.scheme(), &ch)?;
    let q = query(&raw, &["height", "window"])?;
    let height = param(&q, "height")
        .ok_or_else(|| ApiError::BadRequest("missing query parameter height".into()))
        .and_then(|h| parse_height("height", h))?;
    let staleness = s.ext.as_ref().and_then(|e| e.staleness());
    let limit = fresh_window_limit(staleness, s.config.max_fresh_window);
    let window = match param(&q, "window") {
        Some(w) => parse_height("window", w)?,
        None => staleness.ok_or_else(|| {
            ApiError::BadRequest(
                "this application has no staleness window; give one with window=".into(),
            )
        })?,
    };
    if window > limit {
        return Err(ApiError::BadRequest(format!(
            "window {window} is beyond this server's limit of {limit} blocks{}",
            if staleness.is_some() {
                " (the application's staleness window)"
            } else {
                ""
            }
        )));
    }
    blocking(s, w, move |s, c| {
        let view = view(s)?;
        let tip = view.tip()?.map_or(0, |t| t.height);
        if height > tip.saturating_add(1) {
            return Err(ApiError::NotFound(format!(
                "height {height} is beyond the store's next block {}",
                tip.saturating_add(1)
            )));
        }
        let seeds = view.seeds()?;
        let checked = Checked {
            inner: &view,
            cancel: c,
        };
        let fresh = is_fresh(&checked, &seeds, window, height, &ch)?;
        Ok(Json(json!({
            "consensus_hash": ch.to_string(),
            "height": height,
            "window": window,
            "fresh": fresh,
        }))
        .into_response())
    })
    .await
}

/// The largest `window` `/v1/consensus/{ch}/fresh` accepts: the application's staleness window
/// when it has one (a larger window answers no question its rules ask), else the configured
/// [`ServeConfig::max_fresh_window`].
fn fresh_window_limit(staleness: Option<u64>, configured: u64) -> u64 {
    staleness.unwrap_or(configured)
}

pub(crate) async fn proof(
    State(s): St,
    Ext(w): W,
    Seg(m): Seg,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let m = parse_height("target height", &m)?;
    let q = query(&raw, &["trusted", "format"])?;
    let trusted = param(&q, "trusted")
        .map(|n| parse_height("trusted", n))
        .transpose()?;
    let json = wants_json(&q)?;
    blocking(s, w, move |s, c| {
        let view = view(s)?;
        let (n, m) = proof_heights(s, &view, trusted, Some(m), "target")?;
        let checked = Checked {
            inner: &view,
            cancel: c,
        };
        let proof = prove(&checked, n, m).map_err(|e| match e {
            ProveError::History(e) => e.into(),
            ProveError::InvalidRange { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(StoreError::Inconsistent(other.to_string())),
        })?;
        if json {
            return Ok(Json(render::proof(&proof)).into_response());
        }
        Ok(binary(proof.encode()))
    })
    .await
}

/// The trusted height `n` (default: the tip) and the target `m` (default: `n`) of a proof,
/// checked against the store: `first block <= m <= n <= tip`. `what` names the target in
/// messages.
fn proof_heights(
    s: &Shared,
    view: &View,
    trusted: Option<u64>,
    target: Option<u64>,
    what: &str,
) -> Result<(u64, u64), ApiError> {
    let first = s.store.meta().first_block;
    let tip = view
        .tip()?
        .ok_or_else(|| ApiError::NotFound("the store has no blocks yet".into()))?;
    let n = trusted.unwrap_or(tip.height);
    let m = target.unwrap_or(n);
    if m < first || m > n {
        return Err(ApiError::BadRequest(format!(
            "need first block {first} <= {what} {m} <= trusted {n}"
        )));
    }
    if n > tip.height {
        return Err(ApiError::NotFound(format!(
            "trusted height {n} is above the store's tip {}",
            tip.height
        )));
    }
    Ok((n, m))
}

/// A proof's bytes as an `application/octet-stream` answer.
fn binary(bytes: Vec<u8>) -> Response {
    let mut response = Body::from(bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// The proof's wire format a query asks for (`format=binary`, the default, or `format=json`).
fn wants_json(q: &[(&str, &str)]) -> Result<bool, ApiError> {
    match param(q, "format") {
        None | Some("binary") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be binary or json, not {:?}",
            truncated(other)
        ))),
    }
}

/// `GET /v1/state/{namespace}/{key}?trusted=N[&height=M][&format=json][&key=utf8]`: the v3
/// state proof of one key. The key is hex unless `key=utf8` says the segment is the key's
/// text.
pub(crate) async fn state(
    State(s): St,
    Ext(w): W,
    Seg2(namespace, key): Seg2,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = query(&raw, &["trusted", "height", "format", "key"])?;
    let json = wants_json(&q)?;
    let key = match param(&q, "key") {
        None | Some("hex") => vc_chash::hex::decode(&key).map_err(|e| {
            ApiError::BadRequest(format!("key {:?} is not hex: {e}", truncated(&key)))
        })?,
        Some("utf8") => key.into_bytes(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "key must be hex or utf8, not {:?}",
                truncated(other)
            )));
        }
    };
    if namespace.len() > usize::from(u8::MAX) || key.len() > usize::from(u16::MAX) {
        return Err(ApiError::BadRequest(
            "state proofs carry namespaces of at most 255 bytes and keys of at most 65,535".into(),
        ));
    }
    let trusted = param(&q, "trusted")
        .map(|n| parse_height("trusted", n))
        .transpose()?;
    let height = param(&q, "height")
        .map(|m| parse_height("height", m))
        .transpose()?;
    if !s.store.scheme().commits_state() {
        return Err(ApiError::NotFound(format!(
            "this store uses the {} scheme, which commits no state; state proofs need v3",
            s.store.scheme()
        )));
    }
    blocking(s, w, move |s, _c| {
        let view = view(s)?;
        let (n, m) = proof_heights(s, &view, trusted, height, "height")?;
        let proof = view
            .state_proof_within(&namespace, &key, n, m, s.config.max_state_changes)
            .map_err(|e| match e {
                // Earlier trees are rebuilt from the undo logs: none, none older.
                e @ StoreError::StateTooOld { .. } => ApiError::NotFound(e.to_string()),
                e @ StoreError::StateTooCostly { .. } => {
                    ApiError::BadRequest(format!("{e} (this server's --max-state-changes)"))
                }
                e => e.into(),
            })?;
        if json {
            return Ok(Json(render::state_proof(&proof)).into_response());
        }
        Ok(binary(proof.encode()))
    })
    .await
}

pub(crate) async fn lookup(State(s): St, Ext(w): W, Seg(key): Seg) -> Result<Response, ApiError> {
    blocking(s, w, move |s, c| {
        let Some(ext) = s.ext.clone() else {
            return Err(ApiError::NoRoute("for state lookups".into()));
        };
        let view = view(s)?;
        let tip = view.tip()?.map_or(0, |t| t.height);
        let mut history = indexed(s, &view, c, |i| i.key_heights(&key))?;
        history.retain(|h| *h <= tip);
        let state = ext.lookup(&view, &key)?;
        if state.is_none() && history.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no {} entry {:?}",
                ext.collection(),
                truncated(&key)
            )));
        }
        Ok(Json(json!({
            "key": key,
            "state": state,
            "history": history,
            "tip": tip,
        }))
        .into_response())
    })
    .await
}

pub(crate) async fn openapi() -> Response {
    let mut response = Body::from(OPENAPI).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) async fn metrics(State(s): St, Ext(w): W) -> Result<Response, ApiError> {
    blocking(s, w, |s, _| {
        let height = view(s)?.tip()?.map(|t| t.height);
        let mut response =
            Body::from(s.metrics.render(height, &s.store.meta().app_name)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        Ok(response)
    })
    .await
}

pub(crate) async fn no_route(State(s): St, req: Request) -> Response {
    let mut in_flight = s.metrics.start("unmatched".to_owned());
    // The path is echoed cut short: a 404 must not return a long request to its sender.
    let path = format!("{:?}", truncated(req.uri().path()));
    let response = ApiError::NoRoute(path).into_response();
    in_flight.answered(response.status().as_u16());
    response
}

/// Any error answer that is not JSON yet (a rejection of axum's own, should one reach the
/// client) becomes `{"code": ..., "message": ...}` with its status and text.
pub(crate) async fn jsonify(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        t => truncated(t),
    };
    let body = json!({ "code": crate::error::code_of_status(status.as_u16()), "message": message });
    (status, Json(body)).into_response()
}

pub(crate) async fn not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Limits and metrics around every matched route: the request's size, the number answered at
/// once, and its time. The request is counted in flight until this future ends or is dropped
/// (its client left), and its work is marked abandoned then.
pub(crate) async fn guard(State(s): St, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut in_flight = s.metrics.start(route);
    let response = guarded(&s, req, next).await;
    in_flight.answered(response.status().as_u16());
    response
}

async fn guarded(s: &Shared, mut req: Request, next: Next) -> Response {
    let limit = s.config.max_request_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > 0 || req.uri().to_string().len() > limit {
        return ApiError::BadRequest(format!(
            "requests carry no body and at most {limit} bytes of URI"
        ))
        .into_response();
    }
    let Ok(permit) = s.permits.clone().try_acquire_owned() else {
        return ApiError::Overloaded(s.config.max_in_flight).into_response();
    };
    // Dropped when this future ends or is dropped: the request's work stops at its next check.
    let (work, _abandon) = Work::new(permit);
    req.extensions_mut().insert(work);
    let timeout = s.config.request_timeout;
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::work::Cancel;
    use vc_testnode::synthetic;

    fn shared(path: &std::path::Path) -> Shared {
        Shared {
            store: ReadOnlyStore::open(path).unwrap(),
            ext: None,
            index: RwLock::default(),
            metrics: Metrics::default(),
            permits: Arc::new(Semaphore::new(4)),
            events: crate::events::Hub::new(&crate::EventsConfig::default()),
            snapshot_downloads: Arc::new(Semaphore::new(1)),
            config: ServeConfig::new("127.0.0.1:0".parse().unwrap()),
        }
    }

    #[test]
    fn an_older_view_does_not_unwind_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (store, _) = synthetic::create(&path, Scheme::V2, 100, 200).unwrap();
        let s = shared(&path);
        let cancel = Cancel::default();
        let old = s.store.view().unwrap();
        synthetic::extend(&store, 300, 319, 0).unwrap();
        let new = s.store.view().unwrap();
        let new_tip = new.tip().unwrap().map(|t| (t.height, t.block_hash));
        let top = new.consensus_hash(319).unwrap().unwrap();

        indexed(&s, &new, &cancel, |_| ()).unwrap();
        // A request still reading the older commit: no reorg happened, so nothing is dropped
        // (it was, and logged "dropping replaced blocks", then re-read by the next request).
        let h = indexed(&s, &old, &cancel, |i| i.height_of(&top)).unwrap();
        assert_eq!(h, Some(319));
        assert!(s.index.read().unwrap().is_at(new_tip));

        // A real reorg still replaces blocks.
        store.rollback_to(309).unwrap();
        synthetic::extend(&store, 310, 312, 1).unwrap();
        let reorged = s.store.view().unwrap();
        indexed(&s, &reorged, &cancel, |_| ()).unwrap();
        let index = s.index.read().unwrap();
        assert_eq!(index.height_of(&top), None);
        assert!(index.is_at(reorged.tip().unwrap().map(|t| (t.height, t.block_hash))));
    }

    #[test]
    fn a_poisoned_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (_store, chs) = synthetic::create(&path, Scheme::V2, 100, 50).unwrap();
        let s = shared(&path);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = s.index.write().unwrap();
            std::panic::resume_unwind(Box::new("a damaged store"));
        }));
        assert!(s.index.is_poisoned());
        let view = s.store.view().unwrap();
        let h = indexed(&s, &view, &Cancel::default(), |i| i.height_of(&chs[7])).unwrap();
        assert_eq!(h, Some(107));
    }
}
