//! `/healthz/live` and `/healthz/ready`, for process supervisors and load balancers.
//!
//! Live: the process answers HTTP (always 200). Ready (200, else 503): the store is readable,
//! has a tip, and is caught up: at most [`ServeConfig::ready_lag`](crate::ServeConfig) blocks
//! behind the newest block with enough confirmations, as the indexer last saw its source
//! ([`vc_store::SourceTip`], recorded in the file with each poll that found a new tip). A store
//! whose indexer recorded no source tip (an older indexer) is ready when it has a tip, and the
//! answer says the lag is unknown.

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
    let max_lag = s.config.ready_lag;
    let read = background(s, |s| {
        let view = s.store.view()?;
        Ok((view.tip()?, view.source_tip()?))
    })
    .await;
    let (mut chain_tip, mut lag) = (serde_json::Value::Null, serde_json::Value::Null);
    let (status, tip, reason) = match read {
        Ok((Some(t), source)) => {
            let tip = json!({
                "height": t.height,
                "block_hash": render::display_hash(&t.block_hash.0),
                "consensus_hash": t.consensus_hash.to_string(),
            });
            match source {
                Some(source) => {
                    let behind = source.lag(Some(t.height));
                    chain_tip = json!(source.chain_tip);
                    lag = json!(behind);
                    if behind <= max_lag {
                        (StatusCode::OK, tip, None)
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            tip,
                            Some(format!(
                                "catching up: {behind} confirmed blocks behind the source's tip \
                                 {} (at most {max_lag} allowed)",
                                source.chain_tip
                            )),
                        )
                    }
                }
                None => (
                    StatusCode::OK,
                    tip,
                    Some("the indexer recorded no source tip: the lag is unknown".to_owned()),
                ),
            }
        }
        Ok((None, _)) => (
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
        "chain_tip": chain_tip,
        "lag_blocks": lag,
        "max_lag_blocks": max_lag,
    });
    (status, Json(body)).into_response()
}
