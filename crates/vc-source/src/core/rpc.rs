//! A small JSON-RPC client for Bitcoin Core, over the same blocking HTTP client (ureq) as the
//! REST endpoints.
//!
//! * One request per call (no batching), on keep-alive connections that threads share.
//! * Credentials: none, `-rpcuser`/`-rpcpassword`, or the node's `.cookie` file. The cookie is
//!   read on the first call and read again when the node answers HTTP 401, which is what
//!   happens after Core restarts (each start writes a new cookie); a cookie that did not change
//!   is not retried.
//! * Errors are typed and name the method: the node's own error ([`SourceError::Node`] with its
//!   code; -28 "warming up" is transient), an HTTP status without a JSON-RPC answer (also
//!   [`SourceError::Node`], transient for 5xx), a failed connection or timeout
//!   ([`SourceError::Transport`]), refused credentials ([`SourceError::BadCredentials`]) and an
//!   answer that does not parse or does not fit the expected type ([`SourceError::Malformed`]).
//! * Answers are read up to a size limit ([`DEFAULT_MAX_RESPONSE`] unless set): a larger one is
//!   [`SourceError::Malformed`], never an unbounded allocation.
//!
//! It speaks JSON-RPC 2.0, which Core 28 and later answer with HTTP 200 and an `error` member;
//! older nodes answer in the legacy style (HTTP 500 or 404 with the same JSON body), which is
//! understood too.
//!
//! ```no_run
//! use vc_source::core::rpc::{Auth, RpcClient};
//!
//! let rpc = RpcClient::new(
//!     "http://127.0.0.1:18443",
//!     Auth::CookieFile("/home/me/.bitcoin/regtest/.cookie".into()),
//! );
//! let height: u64 = rpc.call("getblockcount", &[])?;
//! let hash: String = rpc.call("getblockhash", &[height.into()])?;
//! # Ok::<(), vc_source::SourceError>(())
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::SourceError;

/// The source name in this client's errors.
const NAME: &str = "core-rpc";

/// The largest answer read by default: 256 MiB, above the JSON of `getblock <hash> 3` for any
/// block Core accepts.
pub const DEFAULT_MAX_RESPONSE: u64 = 256 << 20;

/// How the client authenticates. `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No `Authorization` header (a proxy in front of the node adds one, for example).
    None,
    /// `-rpcuser` / `-rpcpassword`.
    UserPass(String, String),
    /// The node's `.cookie` file (`<datadir>/[<chain>/].cookie`), read again after a 401.
    CookieFile(PathBuf),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::UserPass(user, _) => f
                .debug_tuple("UserPass")
                .field(user)
                .field(&"<redacted>")
                .finish(),
            Auth::CookieFile(path) => f.debug_tuple("CookieFile").field(path).finish(),
        }
    }
}

/// A JSON-RPC client for one node ([module docs](self)). Cheap to share between threads.
pub struct RpcClient {
    url: String,
    auth: Auth,
    timeout: Duration,
    max_connections: usize,
    max_response: u64,
    agent: ureq::Agent,
    /// The `Authorization` header sent, once known (for a cookie: read on the first call and
    /// after a 401).
    header: Mutex<Option<String>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("max_response", &self.max_response)
            .finish_non_exhaustive()
    }
}

fn agent(timeout: Duration, max_connections: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_idle_connections_per_host(max_connections.max(1))
        .build()
        .into()
}

/// `Basic base64(user:password)`.
fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

impl RpcClient {
    /// A client for the node at `url` (`http://HOST:PORT`, optionally with a path such as
    /// `/wallet/NAME`), with a 60 s timeout, up to 8 idle connections kept, and answers up to
    /// [`DEFAULT_MAX_RESPONSE`]. Nothing is sent or read before the first call.
    pub fn new(url: impl Into<String>, auth: Auth) -> RpcClient {
        let (timeout, max_connections) = (Duration::from_secs(60), 8);
        RpcClient {
            url: url.into().trim_end_matches('/').to_owned(),
            auth,
            timeout,
            max_connections,
            max_response: DEFAULT_MAX_RESPONSE,
            agent: agent(timeout, max_connections),
            header: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    /// The same client with a per-request timeout (connecting, sending and reading the answer).
    pub fn with_timeout(mut self, timeout: Duration) -> RpcClient {
        self.timeout = timeout;
        self.agent = agent(self.timeout, self.max_connections);
        self
    }

    /// The same client keeping up to `n` idle connections (one per thread that calls it).
    pub fn with_max_connections(mut self, n: usize) -> RpcClient {
        self.max_connections = n.max(1);
        self.agent = agent(self.timeout, self.max_connections);
        self
    }

    /// The same client reading answers up to `bytes` long.
    pub fn with_max_response(mut self, bytes: u64) -> RpcClient {
        self.max_response = bytes;
        self
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with positional `params` and decodes its result as `T` (use
    /// [`serde_json::Value`] to take any answer, `()` or `Option<T>` for a `null` one).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, SourceError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = request.to_string();
        let mut sent = self.auth_header(false)?;
        let mut reread = false;
        loop {
            let (status, answer) = self.post(method, body.as_bytes(), sent.as_deref())?;
            if status == 401 || status == 403 {
                // A restarted node has a new cookie: read it again, once, and retry if it
                // changed.
                if !reread && matches!(self.auth, Auth::CookieFile(_)) {
                    reread = true;
                    let fresh = self.auth_header(true)?;
                    if fresh != sent {
                        tracing::debug!(method, "the node's cookie changed: retrying with it");
                        sent = fresh;
                        continue;
                    }
                }
                return Err(SourceError::BadCredentials { source_name: NAME });
            }
            return parse_answer(method, id, status, &answer);
        }
    }

    /// The `Authorization` header: the cached one, or built afresh (re-reading a cookie file)
    /// when `reload` is set or none is cached yet.
    fn auth_header(&self, reload: bool) -> Result<Option<String>, SourceError> {
        let path = match &self.auth {
            Auth::None => return Ok(None),
            Auth::UserPass(user, pass) => return Ok(Some(basic(&format!("{user}:{pass}")))),
            Auth::CookieFile(path) => path,
        };
        let mut cached = self.header.lock().unwrap_or_else(PoisonError::into_inner);
        if reload || cached.is_none() {
            let cookie_error = |detail: String| SourceError::Node {
                source_name: NAME,
                what: format!("reading the cookie file {}", path.display()),
                detail,
                code: None,
                transient: false,
            };
            let text = std::fs::read_to_string(path).map_err(|e| cookie_error(e.to_string()))?;
            let text = text.trim();
            if !text.contains(':') {
                return Err(cookie_error("not USER:PASSWORD".into()));
            }
            *cached = Some(basic(text));
        }
        Ok(cached.clone())
    }

    /// One POST: the HTTP status and the body, read up to the size limit.
    fn post(
        &self,
        method: &str,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Result<(u16, Vec<u8>), SourceError> {
        let error = |e: ureq::Error| match e {
            ureq::Error::BodyExceedsLimit(limit) => SourceError::Malformed {
                source_name: NAME,
                what: format!("{method} response"),
                detail: format!("larger than the {limit}-byte limit"),
            },
            e => SourceError::Transport {
                source_name: NAME,
                what: method.to_owned(),
                source: Box::new(e),
            },
        };
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.send(body).map_err(error)?;
        let status = response.status().as_u16();
        let answer = response
            .body_mut()
            .with_config()
            .limit(self.max_response)
            .read_to_vec()
            .map_err(error)?;
        Ok((status, answer))
    }
}

/// Reads a JSON-RPC answer to request `id`, which came with HTTP `status`.
fn parse_answer<T: DeserializeOwned>(
    method: &str,
    id: u64,
    status: u16,
    answer: &[u8],
) -> Result<T, SourceError> {
    let malformed = |detail: String| SourceError::Malformed {
        source_name: NAME,
        what: format!("{method} response"),
        detail,
    };
    let parsed = serde_json::from_slice::<Value>(answer)
        .ok()
        .filter(|v| v.get("result").is_some() || v.get("error").is_some());
    let Some(mut parsed) = parsed else {
        if status == 200 {
            let detail = match serde_json::from_slice::<Value>(answer) {
                Err(e) => e.to_string(),
                Ok(_) => "neither a result nor an error".into(),
            };
            return Err(malformed(detail));
        }
        // No JSON-RPC answer: an HTTP error from the server itself (503: work queue full).
        let text = String::from_utf8_lossy(answer);
        let text: String = text.trim().chars().take(200).collect();
        return Err(SourceError::Node {
            source_name: NAME,
            what: method.to_owned(),
            detail: format!("HTTP {status}: {text}"),
            code: None,
            transient: status >= 500,
        });
    };
    let error = parsed
        .get_mut("error")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if !error.is_null() {
        let code = error
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok());
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(SourceError::Node {
            source_name: NAME,
            what: method.to_owned(),
            detail: match code {
                Some(code) => format!("{message} (code {code})"),
                None => message,
            },
            code,
            // -28: the node is warming up (loading the block index, verifying blocks).
            transient: code == Some(-28) || (code.is_none() && status >= 500),
        });
    }
    if status != 200 {
        return Err(malformed(format!("a result with HTTP status {status}")));
    }
    if parsed.get("id") != Some(&json!(id)) {
        return Err(malformed(format!(
            "the answer is to request id {}, not {id}",
            parsed.get("id").unwrap_or(&Value::Null)
        )));
    }
    let result = parsed
        .get_mut("result")
        .map(Value::take)
        .unwrap_or(Value::Null);
    serde_json::from_value(result).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    /// What the fake server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        authorization: Option<String>,
        body: Value,
    }

    /// A fake HTTP server on a loopback port: `reply` gets each request and returns the
    /// status and body to send. Requests seen are kept.
    struct Fake {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn start(reply: impl Fn(&Seen) -> (u16, Vec<u8>) + Send + Sync + 'static) -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            let reply = Arc::new(reply);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let (log, reply) = (Arc::clone(&log), Arc::clone(&reply));
                    std::thread::spawn(move || serve(stream, &log, &*reply));
                }
            });
            Fake { url, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn serve(
        stream: TcpStream,
        log: &Mutex<Vec<Seen>>,
        reply: &(impl Fn(&Seen) -> (u16, Vec<u8>) + ?Sized),
    ) -> Option<()> {
        let mut writer = stream.try_clone().ok()?;
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return Some(());
            }
            let (mut length, mut authorization) = (0, None);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).ok()?;
                if header.trim().is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':')?;
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().ok()?,
                    "authorization" => authorization = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).ok()?;
            let seen = Seen {
                authorization,
                body: serde_json::from_slice(&body).ok()?,
            };
            log.lock().unwrap().push(seen.clone());
            let (status, answer) = reply(&seen);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n",
                answer.len()
            );
            writer.write_all(head.as_bytes()).ok()?;
            writer.write_all(&answer).ok()?;
        }
    }

    /// A JSON-RPC 2.0 answer with `result` to the request seen.
    fn result(seen: &Seen, result: Value) -> (u16, Vec<u8>) {
        let id = seen.body["id"].clone();
        (
            200,
            json!({"jsonrpc": "2.0", "result": result, "id": id})
                .to_string()
                .into_bytes(),
        )
    }

    fn basic_of(credentials: &str) -> String {
        basic(credentials)
    }

    #[test]
    fn a_call_sends_the_method_and_params_and_decodes_the_result() {
        let fake =
            Fake::start(|seen| result(seen, json!(seen.body["params"][0].as_u64().unwrap() + 1)));
        let rpc = RpcClient::new(&fake.url, Auth::UserPass("alice".into(), "s3cret:x".into()));
        let n: u64 = rpc.call("getblockhash", &[json!(41)]).unwrap();
        assert_eq!(n, 42);
        let seen = fake.seen();
        assert_eq!(seen[0].body["method"], "getblockhash");
        assert_eq!(seen[0].body["params"], json!([41]));
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some(basic_of("alice:s3cret:x").as_str())
        );
        // No credentials: no header.
        let rpc = RpcClient::new(&fake.url, Auth::None);
        let _: u64 = rpc.call("getblockhash", &[json!(1)]).unwrap();
        assert_eq!(fake.seen()[1].authorization, None);
    }

    #[test]
    fn the_cookie_is_sent_and_read_again_after_a_401() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".cookie");
        std::fs::write(&cookie, "__cookie__:first\n").unwrap();
        // The node accepts only the second cookie (it restarted).
        let fake = Fake::start(|seen| {
            if seen.authorization.as_deref() == Some(basic_of("__cookie__:second").as_str()) {
                result(seen, json!(7))
            } else {
                (401, Vec::new())
            }
        });
        let rpc = RpcClient::new(&fake.url, Auth::CookieFile(cookie.clone()));
        // The first cookie is refused, and reading it again gives the same one: refused.
        assert!(matches!(
            rpc.call::<u64>("getblockcount", &[]),
            Err(SourceError::BadCredentials { .. })
        ));
        assert_eq!(fake.seen().len(), 1, "an unchanged cookie is not retried");
        // The node restarts with a new cookie: the next call reads it and succeeds.
        std::fs::write(&cookie, "__cookie__:second").unwrap();
        assert_eq!(rpc.call::<u64>("getblockcount", &[]).unwrap(), 7);
        let seen = fake.seen();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[1].authorization.as_deref(),
            Some(basic_of("__cookie__:first").as_str())
        );
        assert_eq!(
            seen[2].authorization.as_deref(),
            Some(basic_of("__cookie__:second").as_str())
        );
        // Later calls use the new cookie directly.
        assert_eq!(rpc.call::<u64>("getblockcount", &[]).unwrap(), 7);
        assert_eq!(fake.seen().len(), 4);
    }

    #[test]
    fn a_missing_or_malformed_cookie_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".cookie");
        let rpc = RpcClient::new("http://127.0.0.1:1", Auth::CookieFile(cookie.clone()));
        match rpc.call::<u64>("getblockcount", &[]) {
            Err(
                e @ SourceError::Node {
                    transient: false, ..
                },
            ) => {
                assert!(e.to_string().contains(&cookie.display().to_string()), "{e}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&cookie, "no colon").unwrap();
        match rpc.call::<u64>("getblockcount", &[]) {
            Err(SourceError::Node { detail, .. }) => assert!(detail.contains("USER:PASSWORD")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_node_error_keeps_its_code_and_warming_up_is_transient() {
        let fake = Fake::start(|seen| {
            let id = seen.body["id"].clone();
            let (status, code, message) = match seen.body["method"].as_str() {
                Some("getblock") => (200, -5, "Block not found"),
                // The legacy style: HTTP 500 with the same body.
                Some("legacy") => (500, -8, "Block height out of range"),
                _ => (503, -28, "Loading block index…"),
            };
            let body =
                json!({"result": null, "error": {"code": code, "message": message}, "id": id});
            (status, body.to_string().into_bytes())
        });
        let rpc = RpcClient::new(&fake.url, Auth::None);
        for (method, want, transient) in [
            ("getblock", -5, false),
            ("legacy", -8, false),
            ("getblockcount", -28, true),
        ] {
            match rpc.call::<Value>(method, &[]) {
                Err(e @ SourceError::Node { .. }) => {
                    let SourceError::Node { what, code, .. } = &e else {
                        unreachable!()
                    };
                    assert_eq!(what, method);
                    assert_eq!(*code, Some(want));
                    assert_eq!(e.is_transient(), transient, "{method}");
                    assert!(e.to_string().contains(&format!("(code {want})")), "{e}");
                }
                other => panic!("{method}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_http_error_without_json_is_a_node_error_by_status() {
        let fake = Fake::start(|seen| match seen.body["method"].as_str() {
            Some("busy") => (503, b"Work queue depth exceeded".to_vec()),
            _ => (404, b"<html>not here</html>".to_vec()),
        });
        let rpc = RpcClient::new(&fake.url, Auth::None);
        match rpc.call::<Value>("busy", &[]) {
            Err(e @ SourceError::Node { code: None, .. }) => {
                assert!(e.is_transient());
                assert!(
                    e.to_string()
                        .contains("HTTP 503: Work queue depth exceeded"),
                    "{e}"
                );
                assert!(e.to_string().contains("busy"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        match rpc.call::<Value>("gone", &[]) {
            Err(e @ SourceError::Node { code: None, .. }) => assert!(!e.is_transient()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_answers_are_malformed_with_the_method() {
        let fake = Fake::start(|seen| match seen.body["method"].as_str() {
            Some("cut") => (200, b"{\"result\": [1, 2".to_vec()),
            Some("empty") => (200, b"{}".to_vec()),
            Some("otherid") => (
                200,
                json!({"result": 1, "id": 999_999}).to_string().into_bytes(),
            ),
            _ => result(seen, json!("not a number")),
        });
        let rpc = RpcClient::new(&fake.url, Auth::None);
        for method in ["cut", "empty", "otherid", "wrongtype"] {
            match rpc.call::<u64>(method, &[]) {
                Err(SourceError::Malformed { what, .. }) => {
                    assert_eq!(what, format!("{method} response"))
                }
                other => panic!("{method}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_oversized_answer_stops_at_the_limit() {
        let fake = Fake::start(|seen| result(seen, json!("x".repeat(10_000))));
        let rpc = RpcClient::new(&fake.url, Auth::None).with_max_response(1_000);
        match rpc.call::<String>("getblock", &[]) {
            Err(e @ SourceError::Malformed { .. }) => {
                assert!(!e.is_transient());
                assert!(e.to_string().contains("1000-byte limit"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // The same answer fits a larger limit.
        let rpc = RpcClient::new(&fake.url, Auth::None).with_max_response(20_000);
        assert_eq!(rpc.call::<String>("getblock", &[]).unwrap().len(), 10_000);
    }

    #[test]
    fn a_refused_connection_is_a_transient_transport_error() {
        // Bind and drop: the port is very likely closed right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rpc = RpcClient::new(format!("http://127.0.0.1:{port}"), Auth::None)
            .with_timeout(Duration::from_secs(10));
        match rpc.call::<u64>("getblockcount", &[]) {
            Err(e @ SourceError::Transport { .. }) => {
                assert!(e.is_transient());
                assert!(e.to_string().contains("getblockcount"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let rpc = RpcClient::new(
            "http://h:1",
            Auth::UserPass("alice".into(), "hunter2".into()),
        );
        let shown = format!("{rpc:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
