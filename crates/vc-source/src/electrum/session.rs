//! Connections to an Electrum server, used the way servers expect.
//!
//! * **The version handshake first, on every connection.** Servers such as ElectrumX close a
//!   session whose first request is not `server.version` ("use server.version to identify
//!   client"). electrum-client neither sends it nor lets a caller send its array argument, and
//!   its `Client` reconnects by itself after an I/O error without one. So this module opens
//!   each connection itself (TCP, through a SOCKS5 proxy, TLS), sends
//!   `server.version ["virtualchain-rs X.Y", ["1.4", "1.6"]]` on the bare stream, records the
//!   version the server picks, and only then hands the stream to electrum-client's
//!   JSON-RPC codec here (`Rpc`), which never reconnects. A request that fails on a broken
//!   connection is retried on a new one, handshake included.
//! * **Real JSON-RPC batches.** `Rpc::batch` writes many requests as one JSON array, and
//!   servers answer with one array. ElectrumX (since 1.19) pads its traffic and holds any
//!   answer under 1 KiB for up to a second; electrum-client's pipelined "batches" are answered
//!   one message per request, so their last few small answers waited that second. One large
//!   answer goes at once.
//! * **The server's limits.** A session sends one request (or one JSON-RPC batch) at a time.
//!   A server that answers "excessive resource usage" or "server busy" (ElectrumX's cost
//!   limits, codes -101 and -102) gets a pause that doubles with each refusal and shrinks with
//!   each success, shared by every session of a source, and the request is retried
//!   a bounded number of times on a fresh session.
//! * **Last words.** What a server sends just before closing (an error without a request id,
//!   a notification) is kept from the stream's last bytes and named in the error
//!   ([`SessionError::Closed`]).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use electrum_client::socks::Socks5Stream;
use serde_json::Value;

use super::{NAME, malformed};
use crate::error::SourceError;

/// The client name sent in `server.version`.
pub const CLIENT_NAME: &str = concat!("virtualchain-rs ", env!("CARGO_PKG_VERSION"));
/// The oldest protocol version asked for.
pub const PROTOCOL_MIN: &str = "1.4";
/// The newest protocol version asked for (1.7 drops `blockchain.scripthash.*`).
pub const PROTOCOL_MAX: &str = "1.6";

/// The longest line accepted as the answer to `server.version`.
const MAX_HANDSHAKE_LINE: usize = 64 * 1024;
/// The longest answer line accepted (a batch of 2016 headers is about 330 KB).
const MAX_LINE: u64 = 64 * 1024 * 1024;
/// Bytes of the server's output kept to name its last words.
const TAIL_BYTES: usize = 16 * 1024;
/// The first pause after a refusal for too many requests.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(8);

/// What went wrong on a connection, beyond what electrum-client reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server closed the connection (or it broke).
    #[error("the server closed the connection{}", match .last_words {
        Some(w) => format!(" after saying {w}"),
        None => String::new(),
    })]
    Closed {
        /// The last error or notification the server sent before closing, if any.
        last_words: Option<String>,
        /// The I/O error, when there was one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The server kept refusing requests as too many or too costly.
    #[error("the server refused {attempts} times as too many requests: {message}")]
    RateLimited {
        /// Attempts made.
        attempts: u32,
        /// The server's last refusal.
        message: String,
    },
    /// Connecting (or the proxy, or the TLS handshake) failed.
    #[error("connecting to {address}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A URL split into what a connection needs.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: Option<String>,
    timeout: Duration,
    retries: u8,
}

impl Endpoint {
    /// Parses `tcp://HOST:PORT` or `ssl://HOST:PORT` (a bare `HOST:PORT` is TCP); `ca` replaces
    /// the web PKI's roots for TLS; `proxy` is a SOCKS5 proxy's `HOST:PORT` (optionally written
    /// `socks5://HOST:PORT` or `socks5h://HOST:PORT`; the server's name is resolved by the
    /// proxy, so `.onion` hosts work).
    pub(crate) fn new(
        url: &str,
        ca: Option<&Path>,
        proxy: Option<&str>,
        timeout: Duration,
        retries: u8,
    ) -> Result<Endpoint, SourceError> {
        let bad = |detail: &str| SourceError::Malformed {
            source_name: NAME,
            what: format!("the server URL {url:?}"),
            detail: detail.to_owned(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("ssl://") {
            (true, r)
        } else {
            (false, url.strip_prefix("tcp://").unwrap_or(url))
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("it needs HOST:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        if host.is_empty() {
            return Err(bad("it needs HOST:PORT"));
        }
        if ca.is_some() && !tls {
            return Err(bad(
                "a CA certificate is only used with ssl:// (electrum+tls://)",
            ));
        }
        let tls = if tls {
            Some(Arc::new(tls_config(ca)?))
        } else {
            None
        };
        let proxy = proxy.map(|p| {
            p.strip_prefix("socks5h://")
                .or_else(|| p.strip_prefix("socks5://"))
                .unwrap_or(p)
                .to_owned()
        });
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            tls,
            proxy,
            timeout,
            retries,
        })
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A connected stream, through the proxy and TLS when configured (no request sent yet).
    fn open(&self) -> Result<Tapped, SessionError> {
        let connect = |source| SessionError::Connect {
            address: self.address(),
            source,
        };
        let tcp = match &self.proxy {
            Some(proxy) => Socks5Stream::connect(
                proxy.as_str(),
                (self.host.as_str(), self.port),
                Some(self.timeout),
            )
            .map_err(connect)?
            .into_inner(),
            None => {
                let mut last = None;
                let addrs =
                    std::net::ToSocketAddrs::to_socket_addrs(&(self.host.as_str(), self.port))
                        .map_err(connect)?;
                let mut stream = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, self.timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                stream.ok_or_else(|| {
                    connect(last.unwrap_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                    }))
                })?
            }
        };
        tcp.set_read_timeout(Some(self.timeout)).map_err(connect)?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(connect)?;
        let inner: Box<dyn ReadWrite> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
                        connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                    })?;
                let session = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| connect(std::io::Error::other(e)))?;
                let mut stream = rustls::StreamOwned::new(session, tcp);
                // The handshake now, so that a certificate the roots do not vouch for fails
                // here, as a connection error, not as a request's.
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock).map_err(connect)?;
                }
                Box::new(stream)
            }
        };
        Ok(Tapped {
            inner,
            tail: Arc::new(Mutex::new(Tail::default())),
        })
    }
}

/// TLS settings: `ca`'s certificates as the only roots, else the web PKI's (Mozilla's roots).
fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, SourceError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let file = |detail: String| SourceError::File {
                path: path.display().to_string(),
                offset: 0,
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| file(format!("reading it: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| file(format!("a certificate in it: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| file(format!("a certificate in it: {e}")))?;
            }
            if roots.is_empty() {
                return Err(file("it holds no PEM certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| malformed("the TLS settings", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A stream electrum-client can own.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The last bytes a server sent, and whether it closed.
#[derive(Debug, Default)]
struct Tail {
    bytes: VecDeque<u8>,
    eof: bool,
}

impl Tail {
    /// The last error or notification among the complete lines kept, shortened for a message.
    fn last_words(&self) -> Option<String> {
        let bytes: Vec<u8> = self.bytes.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => return None,
        };
        complete.lines().rev().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            let words = if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
                format!("error {error}")
            } else {
                let method = value.get("method")?.as_str()?;
                if method.ends_with(".subscribe") {
                    return None;
                }
                format!("notification {method} {}", value["params"])
            };
            Some(words.chars().take(300).collect())
        })
    }
}

/// A stream that keeps what it reads last ([`Tail`]).
pub(crate) struct Tapped {
    inner: Box<dyn ReadWrite>,
    tail: Arc<Mutex<Tail>>,
}

impl Read for Tapped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if n == 0 && !buf.is_empty() {
            tail.eof = true;
        }
        tail.bytes.extend(&buf[..n]);
        let excess = tail.bytes.len().saturating_sub(TAIL_BYTES);
        tail.bytes.drain(..excess);
        Ok(n)
    }
}

impl Write for Tapped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Sends `server.version` on a fresh stream and reads the answer byte by byte (nothing past
/// its line, which belongs to electrum-client); returns the server's software and the
/// protocol version it picked.
fn handshake(stream: &mut Tapped) -> Result<(String, String), SourceError> {
    let what = "server.version";
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "server.version",
        "params": [CLIENT_NAME, [PROTOCOL_MIN, PROTOCOL_MAX]],
    });
    let mut line = request.to_string().into_bytes();
    line.push(b'\n');
    let closed = |source: std::io::Error, stream: &Tapped| SourceError::Transport {
        source_name: NAME,
        what: what.into(),
        source: Box::new(SessionError::Closed {
            last_words: stream
                .tail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_words(),
            source: Some(source),
        }),
    };
    if let Err(e) = stream.write_all(&line).and_then(|()| stream.flush()) {
        return Err(closed(e, stream));
    }
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer");
                return Err(closed(e, stream));
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => answer.push(byte[0]),
            Err(e) => return Err(closed(e, stream)),
        }
        if answer.len() > MAX_HANDSHAKE_LINE {
            return Err(malformed(what, "an answer longer than 64 KiB"));
        }
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|e| malformed(what, e))?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(SourceError::Node {
            source_name: NAME,
            what: format!("{what} (asking for protocol {PROTOCOL_MIN} to {PROTOCOL_MAX})"),
            detail: error.to_string(),
            code: error
                .get("code")
                .and_then(serde_json::Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            transient: false,
        });
    }
    let pair = answer["result"]
        .as_array()
        .filter(|a| a.len() == 2)
        .and_then(|a| Some((a[0].as_str()?.to_owned(), a[1].as_str()?.to_owned())))
        .ok_or_else(|| malformed(what, format!("not [software, version]: {answer}")))?;
    if !supported(&pair.1) {
        return Err(malformed(
            what,
            format!(
                "the server picked protocol {:?}, outside {PROTOCOL_MIN} to {PROTOCOL_MAX}",
                pair.1
            ),
        ));
    }
    Ok(pair)
}

/// Whether `version` (`1.4`, `1.4.2`, ...) lies between [`PROTOCOL_MIN`] and the last
/// release of [`PROTOCOL_MAX`].
fn supported(version: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u32>> { v.split('.').map(|p| p.parse().ok()).collect() };
    match (parse(version), parse(PROTOCOL_MIN), parse(PROTOCOL_MAX)) {
        (Some(v), Some(min), Some(max)) => v >= min && v[..v.len().min(2)] <= max[..],
        _ => false,
    }
}

/// The shared pause between requests after a server refused some as too many.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// The current pause in milliseconds (0: none).
    pause_ms: AtomicU64,
    /// Refusals seen, for stats.
    refusals: AtomicU64,
}

impl Pacer {
    fn wait(&self) {
        let ms = self.pause_ms.load(Ordering::Relaxed);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    /// A refusal: double the pause (from [`FIRST_PAUSE`], up to [`MAX_PAUSE`]).
    fn slow_down(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        let now = self.pause_ms.load(Ordering::Relaxed);
        let next = (now * 2)
            .max(FIRST_PAUSE.as_millis() as u64)
            .min(MAX_PAUSE.as_millis() as u64);
        self.pause_ms.store(next, Ordering::Relaxed);
    }

    /// A success: shrink the pause by a quarter, to nothing below 10 ms.
    fn ease(&self) {
        let now = self.pause_ms.load(Ordering::Relaxed);
        if now > 0 {
            let next = now * 3 / 4;
            self.pause_ms
                .store(if next < 10 { 0 } else { next }, Ordering::Relaxed);
        }
    }

    /// Refusals for too many requests so far.
    pub(crate) fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}

/// A JSON-RPC codec on one connection, after its handshake: requests alone or as one JSON
/// array, answers matched by id, notifications skipped.
pub(crate) struct Rpc {
    stream: BufReader<Tapped>,
    next_id: u64,
}

fn transport(what: &str, e: std::io::Error) -> SourceError {
    SourceError::Transport {
        source_name: NAME,
        what: what.to_owned(),
        source: Box::new(e),
    }
}

/// A server's error object as the typed error (its code kept for [`is_rate_limit`]).
fn node_error(what: &str, error: &Value) -> SourceError {
    SourceError::Node {
        source_name: NAME,
        what: what.to_owned(),
        detail: error.to_string(),
        code: error
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok()),
        transient: false,
    }
}

impl Rpc {
    /// One request (`what` names it in errors); its result.
    pub(crate) fn call(
        &mut self,
        what: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, SourceError> {
        self.batch(what, vec![(method.to_owned(), params)])?
            .pop()
            .ok_or_else(|| malformed(what, "no answer"))
    }

    /// `calls` written at once, as one JSON-RPC batch (a single call as a plain request); the
    /// results in the order of `calls`. An error answer to any of them fails the whole batch.
    pub(crate) fn batch(
        &mut self,
        what: &str,
        calls: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<Value>, SourceError> {
        let n = calls.len() as u64;
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = self.next_id;
        self.next_id += n;
        let mut requests: Vec<Value> = calls
            .into_iter()
            .zip(first..)
            .map(|((method, params), id)| {
                serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            })
            .collect();
        let message = if requests.len() == 1 {
            requests.swap_remove(0)
        } else {
            Value::Array(requests)
        };
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let stream = self.stream.get_mut();
        stream
            .write_all(&line)
            .and_then(|()| stream.flush())
            .map_err(|e| transport(what, e))?;
        let mut results: Vec<Option<Value>> = vec![None; n as usize];
        let mut missing = n;
        while missing > 0 {
            let items = match self.read_message(what)? {
                Value::Array(items) => items,
                other => vec![other],
            };
            for mut item in items {
                let id = item.get("id").filter(|i| !i.is_null());
                if id.is_none() && item.get("method").is_some() {
                    continue; // a notification
                }
                if let Some(error) = item.get("error").filter(|e| !e.is_null()) {
                    if id.is_none() {
                        // A server's word on the session, not on a request: servers send it
                        // before closing, and it is named from the stream's tail.
                        return Err(transport(
                            what,
                            std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "the server sent an error for no request",
                            ),
                        ));
                    }
                    return Err(node_error(what, error));
                }
                let slot = id
                    .and_then(Value::as_u64)
                    .and_then(|id| id.checked_sub(first))
                    .filter(|i| *i < n)
                    .and_then(|i| results.get_mut(i as usize))
                    .ok_or_else(|| {
                        let shown: String = item.to_string().chars().take(200).collect();
                        malformed(what, format!("an answer to no request sent: {shown}"))
                    })?;
                if slot.is_none() {
                    missing -= 1;
                }
                *slot = Some(item["result"].take());
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// The next line from the server, parsed.
    fn read_message(&mut self, what: &str) -> Result<Value, SourceError> {
        let mut line = Vec::new();
        let read = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| transport(what, e))?;
        if read == 0 {
            return Err(transport(
                what,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed"),
            ));
        }
        if line.last() != Some(&b'\n') && read as u64 == MAX_LINE {
            return Err(malformed(what, "an answer longer than 64 MiB"));
        }
        serde_json::from_slice(&line).map_err(|e| malformed(what, e))
    }
}

/// A live connection: the codec and the stream's last bytes.
struct Live {
    rpc: Rpc,
    tail: Arc<Mutex<Tail>>,
}

/// What the source shares between its sessions.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The pause after refusals.
    pub(crate) pacer: Pacer,
    /// The server's software and the protocol version it picked, from the last handshake.
    pub(crate) negotiated: Mutex<Option<(String, String)>>,
    /// Connections opened (handshakes done).
    pub(crate) connections: AtomicU64,
}

/// One session with the server: a connection opened (and re-opened) on demand, used for one
/// request or batch at a time.
pub(crate) struct Session {
    live: Option<Live>,
}

/// How a failed request is handled.
enum Failure {
    /// The server refused it as too many: pause, reconnect, retry.
    RateLimited(String),
    /// The connection broke: reconnect, retry.
    Closed(SourceError),
    /// Retrying will not help.
    Fatal(SourceError),
}

/// Whether an error object from a server means "too many requests" (ElectrumX's cost limits:
/// -101 excessive resource usage, -102 server busy; others say so in words).
fn is_rate_limit(error: &serde_json::Value) -> bool {
    let code = error.get("code").and_then(serde_json::Value::as_i64);
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(code, Some(-101 | -102))
        || [
            "excessive resource",
            "too many",
            "server busy",
            "rate limit",
        ]
        .iter()
        .any(|m| message.contains(m))
}

impl Session {
    /// A session not yet connected.
    pub(crate) fn new() -> Session {
        Session { live: None }
    }

    /// Connects and shakes hands when not connected.
    fn connect(&mut self, endpoint: &Endpoint, shared: &Shared) -> Result<&mut Live, SourceError> {
        if self.live.is_none() {
            let mut stream = endpoint.open().map_err(|e| SourceError::Transport {
                source_name: NAME,
                what: format!("connecting to {}", endpoint.address()),
                source: Box::new(e),
            })?;
            let (software, protocol) = handshake(&mut stream)?;
            tracing::debug!(%software, %protocol, "electrum: version negotiated");
            shared.connections.fetch_add(1, Ordering::Relaxed);
            *shared.negotiated.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((software, protocol));
            let tail = stream.tail.clone();
            self.live = Some(Live {
                // The handshake has read nothing past its own line.
                rpc: Rpc {
                    stream: BufReader::new(stream),
                    next_id: 1,
                },
                tail,
            });
        }
        self.live
            .as_mut()
            .ok_or_else(|| malformed("a connection", "none after connecting"))
    }

    /// Runs `request` (named `what`) on this session, connecting (handshake first) when
    /// needed; a broken connection or a refusal for too many requests is retried on a new
    /// connection up to the endpoint's retry count, pausing in between.
    pub(crate) fn call<T>(
        &mut self,
        endpoint: &Endpoint,
        shared: &Shared,
        what: &str,
        request: impl Fn(&mut Rpc) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let mut attempt: u32 = 0;
        loop {
            shared.pacer.wait();
            let failure = match self.connect(endpoint, shared) {
                Err(e @ SourceError::Transport { .. }) => Failure::Closed(e),
                Err(e) => Failure::Fatal(e),
                Ok(live) => match request(&mut live.rpc) {
                    Ok(value) => {
                        shared.pacer.ease();
                        return Ok(value);
                    }
                    Err(e) => diagnose(what, e, &live.tail),
                },
            };
            // Whatever failed, the next request gets a fresh connection and handshake: a
            // server may close the session after an error, and electrum-client would not
            // notice until the next read.
            self.live = None;
            attempt += 1;
            let last = attempt > u32::from(endpoint.retries);
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Closed(e) if last => return Err(e),
                Failure::RateLimited(message) if last => {
                    return Err(SourceError::Transport {
                        source_name: NAME,
                        what: what.to_owned(),
                        source: Box::new(SessionError::RateLimited {
                            attempts: attempt,
                            message,
                        }),
                    });
                }
                Failure::RateLimited(message) => {
                    tracing::warn!(%message, attempt, "electrum: the server refused a request as too many; pausing");
                    shared.pacer.slow_down();
                }
                Failure::Closed(e) => {
                    tracing::warn!(error = %e, attempt, "electrum: reconnecting");
                    std::thread::sleep(FIRST_PAUSE * attempt);
                }
            }
        }
    }
}

/// Sorts a failed request's error, naming the server's last words when it closed.
fn diagnose(what: &str, e: SourceError, tail: &Mutex<Tail>) -> Failure {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    match e {
        SourceError::Node {
            ref detail, code, ..
        } => {
            let error = serde_json::json!({"code": code, "message": detail});
            if is_rate_limit(&error) {
                Failure::RateLimited(detail.clone())
            } else {
                Failure::Fatal(e)
            }
        }
        SourceError::Transport { source, .. } => {
            let last_words = tail.last_words();
            if let Some(w) = &last_words
                && w.starts_with("error ")
                && serde_json::from_str(&w["error ".len()..]).is_ok_and(|v| is_rate_limit(&v))
            {
                return Failure::RateLimited(w.clone());
            }
            let io = source
                .downcast::<std::io::Error>()
                .ok()
                .map(|b| *b)
                .or_else(|| Some(std::io::Error::other("the connection broke")));
            Failure::Closed(closed(what, last_words, io))
        }
        // A line cut short by the close does not parse.
        SourceError::Malformed { .. } if tail.eof => {
            Failure::Closed(closed(what, tail.last_words(), None))
        }
        other => Failure::Fatal(other),
    }
}

fn closed(what: &str, last_words: Option<String>, source: Option<std::io::Error>) -> SourceError {
    SourceError::Transport {
        source_name: NAME,
        what: what.to_owned(),
        source: Box::new(SessionError::Closed { last_words, source }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A server that answers with `script` (what it writes, whatever it is asked) and records
    /// what the client wrote.
    struct Canned {
        script: std::io::Cursor<Vec<u8>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.script.read(buf)
        }
    }

    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn canned(script: &str) -> (Rpc, Arc<Mutex<Vec<u8>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let stream = Tapped {
            inner: Box::new(Canned {
                script: std::io::Cursor::new(script.as_bytes().to_vec()),
                written: written.clone(),
            }),
            tail: Arc::default(),
        };
        let rpc = Rpc {
            stream: BufReader::new(stream),
            next_id: 1,
        };
        (rpc, written)
    }

    fn calls(n: usize) -> Vec<(String, Vec<Value>)> {
        (0..n)
            .map(|i| {
                (
                    "blockchain.transaction.get".to_owned(),
                    vec![Value::from(i)],
                )
            })
            .collect()
    }

    #[test]
    fn a_batch_is_one_array_and_its_answers_come_back_in_call_order() {
        // Answers out of order, split over two lines, with a notification between them.
        let (mut rpc, written) = canned(concat!(
            r#"[{"jsonrpc":"2.0","id":3,"result":"c"},{"jsonrpc":"2.0","id":1,"result":"a"}]"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[{"height":9}]}"#,
            "\n",
            r#"[{"jsonrpc":"2.0","id":2,"result":"b"}]"#,
            "\n",
        ));
        let results = rpc.batch("test", calls(3)).unwrap();
        assert_eq!(
            results,
            vec![Value::from("a"), Value::from("b"), Value::from("c")]
        );
        let sent: Value = serde_json::from_slice(&written.lock().unwrap()).unwrap();
        let ids: Vec<u64> = sent
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 3], "one JSON array, one line");
        assert_eq!(rpc.next_id, 4);
    }

    #[test]
    fn one_call_is_a_plain_request() {
        let (mut rpc, written) = canned("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":7}\n");
        assert_eq!(rpc.call("test", "m", vec![]).unwrap(), Value::from(7));
        let sent: Value = serde_json::from_slice(&written.lock().unwrap()).unwrap();
        assert!(sent.is_object() && sent["method"] == "m", "{sent}");
    }

    #[test]
    fn errors_close_and_stray_answers_are_typed() {
        // An error for a request: the server's code is kept (refusals are recognised by it).
        let (mut rpc, _) = canned(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-101,\"message\":\"excessive resource usage\"}}\n",
        );
        match rpc.call("test", "m", vec![]) {
            Err(SourceError::Node {
                code: Some(-101), ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // An error for no request (a server's last word before closing): a transport error.
        let (mut rpc, _) = canned(
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":1,\"message\":\"use server.version\"}}\n",
        );
        assert!(matches!(
            rpc.call("test", "m", vec![]),
            Err(SourceError::Transport { .. })
        ));
        // An answer to a request never sent.
        let (mut rpc, _) = canned("{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":1}\n");
        assert!(matches!(
            rpc.call("test", "m", vec![]),
            Err(SourceError::Malformed { .. })
        ));
        // The server closes before answering, or sends what is not JSON.
        let (mut rpc, _) = canned("");
        assert!(matches!(
            rpc.call("test", "m", vec![]),
            Err(SourceError::Transport { .. })
        ));
        let (mut rpc, _) = canned("not json\n");
        assert!(matches!(
            rpc.call("test", "m", vec![]),
            Err(SourceError::Malformed { .. })
        ));
        // An empty batch asks nothing.
        let (mut rpc, written) = canned("");
        assert!(rpc.batch("test", Vec::new()).unwrap().is_empty());
        assert!(written.lock().unwrap().is_empty());
    }

    #[test]
    fn protocol_versions_between_1_4_and_1_6_are_accepted() {
        for ok in ["1.4", "1.4.2", "1.5", "1.6", "1.6.1"] {
            assert!(supported(ok), "{ok}");
        }
        for bad in ["1.3", "1.2.1", "1.7", "2.0", "", "x", "1.x"] {
            assert!(!supported(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_for_too_many_requests_are_recognised() {
        use serde_json::json;
        assert!(is_rate_limit(
            &json!({"code": -101, "message": "excessive resource usage"})
        ));
        assert!(is_rate_limit(
            &json!({"code": -102, "message": "server busy - request timed out"})
        ));
        assert!(is_rate_limit(
            &json!({"code": 1, "message": "Too many requests"})
        ));
        assert!(!is_rate_limit(
            &json!({"code": 1, "message": "use server.version to identify client"})
        ));
    }

    #[test]
    fn last_words_are_the_last_error_or_notification_before_the_close() {
        let mut tail = Tail::default();
        let lines = concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":\"ab\"}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"blockchain.headers.subscribe\",\"params\":[]}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-101,\"message\":\"excessive resource usage\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"res"
        );
        tail.bytes.extend(lines.as_bytes());
        let words = tail.last_words().unwrap();
        assert!(words.contains("excessive resource usage"), "{words}");
        tail.bytes.clear();
        tail.bytes.extend(b"{\"id\":1,\"result\":1}\n");
        assert_eq!(tail.last_words(), None);
    }
}
