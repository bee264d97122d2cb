//! The endpoints. Every handler reads one consistent [`View`] of the store on tokio's blocking
//! pool, so a request is answered from a single commit of the indexer however long it takes.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
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
    pub(crate) config: ServeConfig,
}

type St = State<Arc<Shared>>;

/// Runs `f` on the blocking pool with the shared state.
pub(crate) async fn blocking<T, F>(s: Arc<Shared>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}

fn parse_height(what: &str, s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("{what} must be a block height, not {s:?}")))
}

fn parse_ch(scheme: Scheme, s: &str) -> Result<ConsensusHash, ApiError> {
    let ch: ConsensusHash = s
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("consensus hash {s:?}: {e}")))?;
    if ch.scheme() != scheme {
        return Err(ApiError::BadRequest(format!(
            "consensus hash {s:?} is a {:?} hash; this store uses {scheme:?}",
            ch.scheme()
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
                "unknown query parameter {k:?} (known: {})",
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

/// The index brought to `view`'s tip. Readers share it while the tip is unchanged; the first
/// request after a commit updates it.
fn indexed<T>(s: &Shared, view: &View, f: impl FnOnce(&Index) -> T) -> Result<T, ApiError> {
    let tip = view.tip()?;
    {
        let index = s.index.read().map_err(|_| poisoned())?;
        if index.is_at(tip.map(|t| (t.height, t.block_hash))) {
            return Ok(f(&index));
        }
    }
    let mut index = s.index.write().map_err(|_| poisoned())?;
    index.refresh(view, tip, s.ext.as_deref())?;
    Ok(f(&index))
}

fn poisoned() -> ApiError {
    ApiError::Internal("the in-memory index was poisoned by a failed update".into())
}

pub(crate) async fn tip(State(s): St) -> Result<Response, ApiError> {
    blocking(s, |s| {
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

pub(crate) async fn block(State(s): St, Path(height): Path<String>) -> Result<Response, ApiError> {
    let height = parse_height("height", &height)?;
    blocking(s, move |s| {
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
    Path(height): Path<String>,
) -> Result<Response, ApiError> {
    let height = parse_height("height", &height)?;
    blocking(s, move |s| {
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

pub(crate) async fn consensus(State(s): St, Path(ch): Path<String>) -> Result<Response, ApiError> {
    blocking(s, move |s| {
        let ch = parse_ch(s.store.scheme(), &ch)?;
        let view = view(s)?;
        let height = indexed(s, &view, |i| i.height_of(&ch))?;
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
    Path(ch): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    blocking(s, move |s| {
        let ch = parse_ch(s.store.scheme(), &ch)?;
        let q = query(&raw, &["height", "window"])?;
        let height = param(&q, "height")
            .ok_or_else(|| ApiError::BadRequest("missing query parameter height".into()))
            .and_then(|h| parse_height("height", h))?;
        let window = match param(&q, "window") {
            Some(w) => parse_height("window", w)?,
            None => s.ext.as_ref().and_then(|e| e.staleness()).ok_or_else(|| {
                ApiError::BadRequest(
                    "this application has no staleness window; give one with window=".into(),
                )
            })?,
        };
        let view = view(s)?;
        let tip = view.tip()?.map_or(0, |t| t.height);
        if height > tip.saturating_add(1) {
            return Err(ApiError::NotFound(format!(
                "height {height} is beyond the store's next block {}",
                tip.saturating_add(1)
            )));
        }
        let fresh = is_fresh(&view, &view.seeds()?, window, height, &ch)?;
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

pub(crate) async fn proof(
    State(s): St,
    Path(m): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let m = parse_height("target height", &m)?;
    let q = query(&raw, &["trusted", "format"])?;
    let trusted = param(&q, "trusted")
        .map(|n| parse_height("trusted", n))
        .transpose()?;
    let json = match param(&q, "format") {
        None | Some("binary") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be binary or json, not {other:?}"
            )));
        }
    };
    blocking(s, move |s| {
        let view = view(s)?;
        let first = s.store.meta().first_block;
        let tip = view
            .tip()?
            .ok_or_else(|| ApiError::NotFound("the store has no blocks yet".into()))?;
        let n = trusted.unwrap_or(tip.height);
        if m < first || m > n {
            return Err(ApiError::BadRequest(format!(
                "need first block {first} <= target {m} <= trusted {n}"
            )));
        }
        if n > tip.height {
            return Err(ApiError::NotFound(format!(
                "trusted height {n} is above the store's tip {}",
                tip.height
            )));
        }
        let proof = prove(&view, n, m).map_err(|e| match e {
            ProveError::History(e) => ApiError::Store(e),
            ProveError::InvalidRange { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(StoreError::Inconsistent(other.to_string())),
        })?;
        if json {
            return Ok(Json(render::proof(&proof)).into_response());
        }
        let mut response = Body::from(proof.encode()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(response)
    })
    .await
}

pub(crate) async fn lookup(State(s): St, Path(key): Path<String>) -> Result<Response, ApiError> {
    blocking(s, move |s| {
        let Some(ext) = s.ext.clone() else {
            return Err(ApiError::NoRoute("for state lookups".into()));
        };
        let view = view(s)?;
        let tip = view.tip()?.map_or(0, |t| t.height);
        let mut history = indexed(s, &view, |i| i.key_heights(&key))?;
        history.retain(|h| *h <= tip);
        let state = ext.lookup(&view, &key)?;
        if state.is_none() && history.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no {} entry {key:?}",
                ext.collection()
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

pub(crate) async fn metrics(State(s): St) -> Result<Response, ApiError> {
    blocking(s, |s| {
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
    let started = Instant::now();
    s.metrics.start();
    let response = ApiError::NoRoute(req.uri().path().to_owned()).into_response();
    s.metrics
        .finish("unmatched", response.status().as_u16(), started.elapsed());
    response
}

pub(crate) async fn not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Limits and metrics around every matched route: the request's size, the number answered at
/// once, and its time.
pub(crate) async fn guard(State(s): St, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    s.metrics.start();
    let response = guarded(&s, req, next).await;
    s.metrics
        .finish(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn guarded(s: &Shared, req: Request, next: Next) -> Response {
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
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        return ApiError::Overloaded(s.config.max_in_flight).into_response();
    };
    let timeout = s.config.request_timeout;
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            .into_response(),
    }
}
