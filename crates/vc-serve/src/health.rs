//! `/healthz/live` and `/healthz/ready`, for process supervisors and load balancers.
//!
//! Live: the process answers HTTP (always 200). Ready: the store is readable and has a tip, so
//! every endpoint can answer (200), else 503. The server does not know the Bitcoin chain's
//! tip (the indexer records none in the store yet), so `chain_tip` and `lag_blocks` are `null`
//! for now; once the store records the tip its source reported, ready will also require the lag
//! to be within a bound, and these fields will say so.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::render;
use crate::routes::{Shared, background};

/// `GET /healthz/live`.
pub(crate) async fn live() -> Response {
    Json(json!({ "live": true })).into_response()
}

/// `GET /healthz/ready`.
pub(crate) async fn ready(State(s): State<Arc<Shared>>) -> Response {
    let read = background(s, |s| Ok(s.store.view()?.tip()?)).await;
    let (status, tip, reason) = match read {
        Ok(Some(t)) => (
            StatusCode::OK,
            json!({
                "height": t.height,
                "block_hash": render::display_hash(&t.block_hash.0),
                "consensus_hash": t.consensus_hash.to_string(),
            }),
            None,
        ),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::Value::Null,
            Some("the store has no blocks yet".to_owned()),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::Value::Null,
            Some(format!("reading the store: {e}")),
        ),
    };
    let body = json!({
        "ready": status == StatusCode::OK,
        "reason": reason,
        "tip": tip,
        "chain_tip": null,
        "lag_blocks": null,
    });
    (status, Json(body)).into_response()
}
