//! Cross-origin reads of `/v1/…` from browsers (CORS): a small layer instead of a dependency.
//!
//! The API is read-only and takes no credentials, so an allowed origin gets
//! `Access-Control-Allow-Origin` on every `/v1` answer (`*` when any origin is allowed, else the
//! request's own origin with `Vary: Origin`), and preflight `OPTIONS` requests are answered
//! `204` with the methods (`GET`, `HEAD`) and the headers asked for. A request from an origin
//! that is not allowed gets no CORS headers, which the browser enforces. Other paths (`/`,
//! `/metrics`, `/healthz/…`) never get CORS headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which origins may read `/v1/…` from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cors {
    /// Any origin (`Access-Control-Allow-Origin: *`); the default.
    #[default]
    Any,
    /// Only these origins (`scheme://host[:port]`, compared exactly with the `Origin` header).
    Origins(Vec<String>),
    /// No CORS headers at all: browsers may not read the API from other origins.
    Off,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed,
    /// and whether it depends on the origin (then the answer needs `Vary: Origin`).
    fn allow(&self, origin: &HeaderValue) -> Option<(HeaderValue, bool)> {
        match self {
            Cors::Any => Some((HeaderValue::from_static("*"), false)),
            Cors::Origins(list) => {
                let o = origin.to_str().ok()?;
                list.iter().any(|a| a == o).then(|| (origin.clone(), true))
            }
            Cors::Off => None,
        }
    }
}

/// The layer (installed unless [`Cors::Off`]).
pub(crate) async fn layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| cors.allow(o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if allowed.is_some() {
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD"),
            );
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        }
        r
    } else {
        next.run(req).await
    };
    if let Some((value, varies)) = allowed {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if varies {
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_matched_exactly() {
        let o = |s: &'static str| HeaderValue::from_static(s);
        let any = Cors::Any.allow(&o("http://a.example")).unwrap();
        assert_eq!(any, (o("*"), false));
        let list = Cors::Origins(vec!["http://a.example:8080".into()]);
        assert_eq!(
            list.allow(&o("http://a.example:8080")),
            Some((o("http://a.example:8080"), true))
        );
        assert_eq!(list.allow(&o("http://a.example")), None);
        assert_eq!(list.allow(&o("http://a.example:8080.evil")), None);
        assert_eq!(Cors::Off.allow(&o("http://a.example")), None);
    }
}
