//! Errors as JSON: every failed request gets `{"code": ..., "message": ...}` and a status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vc_store::StoreError;

/// Why a request failed. The [`code`](ApiError::code) is stable and documented in the OpenAPI
/// document; the message is for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed path or query parameter (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing at that height, hash or key (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// No such endpoint (HTTP 404).
    #[error("no endpoint {0}")]
    NoRoute(String),
    /// The method is not GET (HTTP 405).
    #[error("only GET is served")]
    MethodNotAllowed,
    /// The request took longer than the server's limit (HTTP 503).
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// Too many requests are being answered at once (HTTP 503).
    #[error("the server is answering {0} requests already; retry later")]
    Overloaded(usize),
    /// The request was abandoned (its client left, or it timed out) and its work stopped early.
    /// No client sees it: its connection is gone, or it was answered `timeout` already.
    #[error("the request was abandoned")]
    Abandoned,
    /// Too many `/v1/events` streams are open (HTTP 503).
    #[error("the server has {0} event streams open already; retry later")]
    TooManyStreams(usize),
    /// Too many snapshot downloads are in progress (HTTP 503).
    #[error("the server has {0} snapshot downloads in progress already; retry later")]
    TooManyDownloads(usize),
    /// A range that starts beyond the end of a file of this many bytes (HTTP 416).
    #[error("the range starts beyond the end of the {0}-byte file")]
    RangeNotSatisfiable(u64),
    /// Reading the store failed (HTTP 500).
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// Anything else on the server's side (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::NoRoute(_) => "no_route",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Timeout(_) | ApiError::Abandoned => "timeout",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::TooManyStreams(_) => "too_many_streams",
            ApiError::TooManyDownloads(_) => "too_many_downloads",
            ApiError::RangeNotSatisfiable(_) => "range_not_satisfiable",
            ApiError::Store(_) => "store",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_)
            | ApiError::Overloaded(_)
            | ApiError::Abandoned
            | ApiError::TooManyStreams(_)
            | ApiError::TooManyDownloads(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() && !matches!(self, ApiError::Abandoned) {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

/// The error code of an answer that did not come from an [`ApiError`] (hyper's and axum's
/// own), by HTTP status.
pub(crate) fn code_of_status(status: u16) -> &'static str {
    match status {
        404 => "no_route",
        405 => "method_not_allowed",
        503 => "overloaded",
        500..=599 => "internal",
        _ => "bad_request",
    }
}
