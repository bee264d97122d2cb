//! Webhooks: every event that `/v1/events` streams, POSTed as JSON to each configured URL.
//!
//! Each URL has its own [`Follower`] starting after the store's tip when the server starts, a
//! queue of [`EventsConfig::buffer`](crate::EventsConfig::buffer) events, and one delivery task
//! that POSTs them in order: a failed delivery (a transport error or a status other than 2xx)
//! is retried, after a wait that doubles from `webhook_retry` up to `webhook_retry_max`, until
//! it succeeds, before the next event is sent. When the queue is full the follower stops
//! reading the store until it drains, with a warning; nothing is dropped, since the store
//! keeps the blocks. Events still queued at shutdown are not delivered (logged).
//!
//! Plain `http://` only: the client is ureq without TLS. Put a TLS proxy in between for
//! `https://` receivers.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::events::{Event, Follower, Sink, Start, produce};
use crate::routes::{Shared, background};

/// Checks a webhook URL: `http://host[:port][/path]`.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("webhook URL {url:?}: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some("https"), _) => Err(format!(
            "webhook URL {url:?}: https is not supported; use http (behind a TLS proxy if needed)"
        )),
        _ => Err(format!(
            "webhook URL {url:?} is not http://HOST[:PORT]/PATH"
        )),
    }
}

/// Starts one follower and one delivery task per webhook URL.
pub(crate) fn start(s: &Arc<Shared>) {
    for url in &s.config.events.webhooks {
        let (tx, rx) = mpsc::channel(s.config.events.buffer.max(1));
        let sink = Sink {
            tx,
            slow: None,
            label: url.clone(),
        };
        tokio::spawn(follow(s.clone(), sink));
        tokio::spawn(deliver(s.clone(), url.clone(), rx));
    }
}

/// The webhook's follower: from the block after the tip at start, retrying the first read.
async fn follow(s: Arc<Shared>, sink: Sink) {
    let closed = s.events.closed();
    tokio::pin!(closed);
    let mut wait = s.config.events.webhook_retry;
    let follower = loop {
        let made = background(s.clone(), |s| {
            let view = s.store.view()?;
            let first = s.store.meta().first_block;
            let next = view.tip()?.map_or(first, |t| t.height + 1);
            Follower::start(&view, first, Start::From(next))
        })
        .await;
        match made {
            Ok(f) => break f,
            Err(e) => {
                tracing::warn!(webhook = %sink.label, error = %e, "webhook: reading the store");
            }
        }
        tokio::select! {
            () = &mut closed => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(s.config.events.webhook_retry_max);
    };
    produce(s, follower, sink).await;
}

/// POSTs the queued events to `url`, in order, each until it is accepted.
async fn deliver(s: Arc<Shared>, url: String, mut rx: mpsc::Receiver<Event>) {
    let cfg = &s.config.events;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(cfg.webhook_timeout))
        .build()
        .into();
    let closed = s.events.closed();
    tokio::pin!(closed);
    loop {
        let ev = tokio::select! {
            () = &mut closed => break,
            ev = rx.recv() => match ev { Some(ev) => ev, None => break },
        };
        let mut wait = cfg.webhook_retry;
        for attempt in 1u64.. {
            let (a, u, e) = (agent.clone(), url.clone(), ev.clone());
            let sent = tokio::task::spawn_blocking(move || post(&a, &u, &e))
                .await
                .map_err(|e| format!("delivery task failed: {e}"))
                .and_then(|r| r);
            match sent {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(webhook = %url, attempt, "webhook: delivered after retries");
                    }
                    break;
                }
                Err(e) => tracing::warn!(
                    webhook = %url,
                    event = ev.id.as_deref().unwrap_or(ev.kind),
                    attempt,
                    error = %e,
                    retry_in = ?wait,
                    "webhook: delivery failed"
                ),
            }
            tokio::select! {
                () = &mut closed => {
                    tracing::warn!(webhook = %url, undelivered = rx.len() + 1, "webhook: shutting down with events undelivered");
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
            wait = wait.saturating_mul(2).min(cfg.webhook_retry_max);
        }
    }
    if !rx.is_empty() {
        tracing::warn!(webhook = %url, undelivered = rx.len(), "webhook: shutting down with events undelivered");
    }
}

/// One POST of `ev`'s payload; `Ok` on a 2xx answer.
fn post(agent: &ureq::Agent, url: &str, ev: &Event) -> Result<(), String> {
    let mut req = agent
        .post(url)
        .header("content-type", "application/json")
        .header("x-virtualchain-event", ev.kind);
    if let Some(id) = &ev.id {
        req = req.header("x-virtualchain-event-id", id);
    }
    let response = req.send(ev.data.to_string()).map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://example.com").is_ok());
        assert!(
            check_url("https://example.com/hook")
                .unwrap_err()
                .contains("https")
        );
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}
