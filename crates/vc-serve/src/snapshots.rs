//! Published snapshots: `GET /v1/snapshots` lists them, `GET /v1/snapshots/{height}` streams
//! one, with HTTP ranges so that an interrupted download resumes.
//!
//! The server publishes the files of one directory ([`SnapshotsConfig::dir`]) named
//! `HEIGHT-CONSENSUSHASH.vcsnap` (what `virtualchain snapshot --out-dir` writes). A file is
//! listed only while the served store holds that consensus hash at that height, so a snapshot
//! of a branch the store has left is not offered. The name is a claim, not a proof: a client
//! imports a snapshot only when replaying it reproduces a consensus hash it already trusts.
//!
//! A download holds one of [`SnapshotsConfig::max_downloads`] places (more are refused with
//! `503 too_many_downloads`) and at most [`BUFFERED_CHUNKS`] chunks of [`CHUNK`] bytes in
//! memory; it ends when the client leaves, reads nothing for
//! [`SnapshotsConfig::slow_client`], or the server shuts down.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Extension as Ext;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use vc_chash::{ConsensusHash, History};

use crate::error::ApiError;
use crate::routes::{Seg, Shared, blocking, parse_height};
use crate::work::{Cancel, Work};

/// The bytes read from the file at a time.
pub const CHUNK: usize = 256 * 1024;

/// Chunks buffered per download ahead of the client.
pub const BUFFERED_CHUNKS: usize = 4;

/// The most directory entries looked at per request: a directory with more lists only what
/// these hold.
const MAX_ENTRIES: usize = 10_000;

/// The file name ending of a published snapshot.
pub const SUFFIX: &str = ".vcsnap";

/// Which snapshots are published, and what bounds their downloads.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotsConfig {
    /// The directory of `HEIGHT-CONSENSUSHASH.vcsnap` files; `None` publishes nothing
    /// (`/v1/snapshots` lists none).
    pub dir: Option<PathBuf>,
    /// Downloads at once; more are answered `503 too_many_downloads`. Default 8.
    pub max_downloads: usize,
    /// How long a download may wait for its client to read before it is dropped (the client
    /// resumes with a range). Default 30 s.
    pub slow_client: Duration,
}

impl Default for SnapshotsConfig {
    /// No directory, 8 downloads, 30 s for a slow client.
    fn default() -> Self {
        SnapshotsConfig {
            dir: None,
            max_downloads: 8,
            slow_client: Duration::from_secs(30),
        }
    }
}

/// One published snapshot.
#[derive(Debug)]
struct Published {
    height: u64,
    consensus_hash: ConsensusHash,
    bytes: u64,
    path: PathBuf,
}

/// The file name under which a snapshot ending at `height` with `consensus_hash` is published:
/// `HEIGHT-CONSENSUSHASH.vcsnap`.
pub fn file_name(height: u64, consensus_hash: &ConsensusHash) -> String {
    format!("{height}-{consensus_hash}{SUFFIX}")
}

/// `HEIGHT-CONSENSUSHASH.vcsnap`, the hash of the store's scheme.
fn parse_name(name: &str, scheme: vc_chash::Scheme) -> Option<(u64, ConsensusHash)> {
    let (h, ch) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    let height = parse_height("", h).ok()?;
    let ch: ConsensusHash = ch.parse().ok()?;
    (ch.scheme() == scheme).then_some((height, ch))
}

/// The published snapshots, by height: files of the directory whose name the store's chain
/// confirms. At most one per height.
fn published(s: &Shared, cancel: &Cancel) -> Result<Vec<Published>, ApiError> {
    let Some(dir) = &s.config.snapshots.dir else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ApiError::Internal(format!(
            "reading the snapshot directory {}: {e}",
            dir.display()
        ))
    })?;
    let view = s.store.view()?;
    let scheme = s.store.scheme();
    let mut out: Vec<Published> = Vec::new();
    for entry in entries.take(MAX_ENTRIES) {
        cancel.check()?;
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some((height, consensus_hash)) = name.to_str().and_then(|n| parse_name(n, scheme))
        else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || view.consensus_hash(height)? != Some(consensus_hash) {
            continue;
        }
        out.push(Published {
            height,
            consensus_hash,
            bytes: meta.len(),
            path,
        });
    }
    out.sort_by_key(|p| p.height);
    out.dedup_by_key(|p| p.height);
    Ok(out)
}

/// `GET /v1/snapshots`.
pub(crate) async fn list(
    State(s): State<Arc<Shared>>,
    Ext(w): Ext<Work>,
) -> Result<Response, ApiError> {
    blocking(s, w, |s, c| {
        let list = published(s, c)?;
        Ok(axum::Json(json!({
            "snapshots": list.iter().map(|p| json!({
                "height": p.height,
                "consensus_hash": p.consensus_hash.to_string(),
                "bytes": p.bytes,
                "path": format!("/v1/snapshots/{}", p.height),
            })).collect::<Vec<_>>(),
        }))
        .into_response())
    })
    .await
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// The whole file (no range, a range this server ignores, or an `If-Range` that no
    /// longer matches).
    All,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A range that starts beyond the end.
    Unsatisfiable,
}

/// One `bytes=` range (a list of several is answered with the whole file, as HTTP allows).
fn wanted(headers: &HeaderMap, len: u64, etag: &str) -> Wanted {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::All;
    };
    if let Some(tag) = headers.get(header::IF_RANGE)
        && tag.as_bytes() != etag.as_bytes()
    {
        return Wanted::All;
    }
    let Some((a, b)) = range
        .trim()
        .strip_prefix("bytes=")
        .filter(|r| !r.contains(','))
        .and_then(|r| r.split_once('-'))
    else {
        return Wanted::All;
    };
    let num = |t: &str| t.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        // The last `n` bytes.
        (true, _, Some(n)) => match n.min(len) {
            0 => Wanted::Unsatisfiable,
            n => Wanted::Part(len - n, len - 1),
        },
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|e| e < start) {
                return Wanted::All;
            }
            if start >= len {
                return Wanted::Unsatisfiable;
            }
            Wanted::Part(start, end.map_or(len - 1, |e| e.min(len - 1)))
        }
        _ => Wanted::All,
    }
}

/// The body of one download: the reader's channel.
struct Download {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl futures_core::Stream for Download {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Reads `len` bytes of `file` from `start` into `tx`, a chunk at a time on the blocking pool,
/// until done, the client leaves or stalls, or the server shuts down, holding the download's
/// place (`_permit`) until then. An early end sends an error when there is room for it, which
/// aborts the response (the client sees a cut transfer and resumes it).
async fn feed(
    s: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    mut file: File,
    start: u64,
    len: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let closed = s.events.closed();
    tokio::pin!(closed);
    let slow = s.config.snapshots.slow_client;
    let mut left = len;
    let mut first = true;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let seek = first.then_some(start);
        first = false;
        let read = tokio::task::spawn_blocking(move || {
            if let Some(at) = seek {
                file.seek(SeekFrom::Start(at))?;
            }
            let mut buf = vec![0u8; n];
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        let chunk = match read {
            Ok(Ok((f, buf))) => {
                file = f;
                buf
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "snapshots: reading a published snapshot");
                let _ = tx.try_send(Err(e));
                return;
            }
            Err(e) => {
                let _ = tx.try_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        left -= chunk.len() as u64;
        tokio::select! {
            () = &mut closed => {
                let _ = tx.try_send(Err(std::io::Error::other("the server is shutting down")));
                return;
            }
            sent = tokio::time::timeout(slow, tx.send(Ok(Bytes::from(chunk)))) => match sent {
                Ok(Ok(())) => {}
                // The client left: the body was dropped.
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!("snapshots: the client read nothing for {slow:?}; dropping its download");
                    return;
                }
            },
        }
    }
}

/// `GET /v1/snapshots/{height}`: the snapshot's bytes (`206` for a range), with an `ETag` a
/// resuming client sends back in `If-Range`.
pub(crate) async fn download(
    State(s): State<Arc<Shared>>,
    Ext(w): Ext<Work>,
    Seg(height): Seg,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let height = parse_height("height", &height)?;
    let permit = s
        .snapshot_downloads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyDownloads(s.config.snapshots.max_downloads))?;
    let (file, published, etag) = blocking(s.clone(), w, move |s, c| {
        let p = published(s, c)?
            .into_iter()
            .find(|p| p.height == height)
            .ok_or_else(|| ApiError::NotFound(format!("no snapshot at height {height}")))?;
        let file = File::open(&p.path)
            .map_err(|e| ApiError::Internal(format!("opening snapshot {height}: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| ApiError::Internal(format!("reading snapshot {height}: {e}")))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let etag = format!(
            "\"{}-{}-{}-{mtime:x}\"",
            p.height,
            p.consensus_hash,
            meta.len()
        );
        let p = Published {
            bytes: meta.len(),
            ..p
        };
        Ok((file, p, etag))
    })
    .await?;
    let len = published.bytes;
    let (status, start, count) = match wanted(&headers, len, &etag) {
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Wanted::Unsatisfiable => {
            let mut r = ApiError::RangeNotSatisfiable(len).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
    tokio::spawn(feed(s.clone(), permit, file, start, count, tx));
    let mut response = Body::from_stream(Download { rx }).into_response();
    *response.status_mut() = status;
    let h = response.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "application/octet-stream".into());
    set(header::CONTENT_LENGTH, count.to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag);
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranged(range: &str, if_range: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(t) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(t).unwrap());
        }
        h
    }

    #[test]
    fn ranges_are_read_as_http_says() {
        let tag = "\"1-ab-100-0\"";
        assert_eq!(wanted(&HeaderMap::new(), 100, tag), Wanted::All);
        for (range, want) in [
            ("bytes=10-", Wanted::Part(10, 99)),
            ("bytes=10-19", Wanted::Part(10, 19)),
            ("bytes=90-500", Wanted::Part(90, 99)),
            ("bytes=-30", Wanted::Part(70, 99)),
            ("bytes=-300", Wanted::Part(0, 99)),
            ("bytes=100-", Wanted::Unsatisfiable),
            ("bytes=-0", Wanted::Unsatisfiable),
        ] {
            assert_eq!(wanted(&ranged(range, None), 100, tag), want, "{range}");
        }
        // Ignored: several ranges, nonsense, a reversed range, another unit.
        for r in [
            "bytes=0-1,5-6",
            "bytes=x-",
            "bytes=20-10",
            "items=0-1",
            "bytes=1",
        ] {
            assert_eq!(wanted(&ranged(r, None), 100, tag), Wanted::All, "{r}");
        }
        // If-Range: the range holds only for the same file.
        assert_eq!(
            wanted(&ranged("bytes=10-", Some(tag)), 100, tag),
            Wanted::Part(10, 99)
        );
        assert_eq!(
            wanted(&ranged("bytes=10-", Some("\"old\"")), 100, tag),
            Wanted::All
        );
    }

    #[test]
    fn names_are_height_dash_hash() {
        let ch = "ab".repeat(32);
        let v2 = vc_chash::Scheme::V2;
        assert_eq!(
            parse_name(&format!("300-{ch}.vcsnap"), v2).map(|(h, _)| h),
            Some(300)
        );
        for bad in [
            format!("0300-{ch}.vcsnap"),
            format!("300-{ch}.vcsnap.partial"),
            format!("300_{ch}.vcsnap"),
            "300-abcd.vcsnap".to_owned(),
            format!("300-{}.vcsnap", "ab".repeat(16)),
        ] {
            assert_eq!(parse_name(&bad, v2), None, "{bad}");
        }
    }
}
