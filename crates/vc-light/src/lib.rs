//! A light client for virtualchain servers: fetch from an untrusted server over `http://` or
//! `https://`, verify with [`vc_chash`], and believe only what verified.
//!
//! Every answer that matters is checked against a consensus hash the caller already trusts
//! (from its own node or a friend's, a [`Trusted`] pair): [`LightClient::verify`] fetches the
//! proof of one block's records and verifies it in logarithmic time and space. What the server
//! says outside proofs (its tip, a key's history) only tells the client what to ask for.
//!
//! The crate is [`vc_chash`] and a small blocking HTTP client (`ureq`, with TLS by rustls on
//! the ring provider and Mozilla's root certificates compiled in): no async runtime, no server
//! stack, no database. `https://` servers are checked against those roots, or against the
//! roots given to [`LightClientBuilder::root_certificates_pem`] (a self-hosted server's own
//! CA).
//!
//! ```no_run
//! use std::time::Duration;
//! use vc_light::{LightClient, Trusted};
//!
//! let trusted: Trusted = "840000:2a9148d8b13939723d2aca16c75c6d68".parse()?;
//! let client = LightClient::new("https://names.example.org", Duration::from_secs(10))?;
//! let first_block = client.first_block()?; // the server's word: a lie only fails proofs
//! let block = client.verify(first_block, &trusted, 839_990)?;
//! assert_eq!(block.height, 839_990);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;

use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use vc_chash::state::proof::VerifiedState;
use vc_chash::{ConsensusHash, Scheme, VerifiedBlock};

pub use error::{LightError, ParseTrustedError, TransportError};

/// The README's example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// A consensus hash the caller trusts, and its height.
///
/// Parses from `HEIGHT:CONSENSUS_HASH`, the form `virtualchain status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trusted {
    /// The height `n`.
    pub height: u64,
    /// `CH(n)`.
    pub consensus_hash: ConsensusHash,
}

impl core::str::FromStr for Trusted {
    type Err = ParseTrustedError;

    /// Parses `HEIGHT:CONSENSUS_HASH`.
    fn from_str(s: &str) -> Result<Self, ParseTrustedError> {
        let (h, ch) = s.split_once(':').ok_or_else(|| ParseTrustedError::Form {
            input: s.to_owned(),
        })?;
        Ok(Trusted {
            height: h.parse().map_err(|source| ParseTrustedError::Height {
                height: h.to_owned(),
                source,
            })?,
            consensus_hash: ch.parse().map_err(|source| ParseTrustedError::Hash {
                hash: ch.to_owned(),
                source,
            })?,
        })
    }
}

/// The largest answer read from a server (a proof is a few KiB).
const MAX_BODY: u64 = 16 << 20;

/// How long a request may take by default, connecting and reading included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest timeout a client accepts (one day); a longer one is clamped to it, so that no
/// deadline computed from it overflows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The most distinct blocks a key's history may list ([`LightClient::key`]). A client makes
/// one proof request per listed block, so the server's list must not set the client's work:
/// a longer history is refused with [`LightError::HistoryTooLong`].
pub const MAX_HISTORY: usize = 1_000;

/// The most characters of a server's error message kept (control characters escaped).
pub const MAX_MESSAGE_CHARS: usize = 200;

/// A client of one server.
#[derive(Debug, Clone)]
pub struct LightClient {
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    deadline: Option<Instant>,
}

/// Settings of a [`LightClient`] beyond its server: the timeout, and the root certificates
/// `https://` servers are checked against.
#[derive(Debug, Clone)]
pub struct LightClientBuilder {
    base: String,
    timeout: Duration,
    deadline: Option<Instant>,
    roots_pem: Option<Vec<u8>>,
}

impl LightClientBuilder {
    /// The longest a request may take, connecting and reading included (default 30 s; at most
    /// [`MAX_TIMEOUT`], a longer one is clamped).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// One deadline for every request of the client: each request gets at most the time left
    /// until it, and a request once it has passed fails with [`LightError::Deadline`] without
    /// being sent. A command that makes several requests sets it so that its whole run is
    /// bounded, whatever the server lists.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Checks `https://` servers against the certificates of this PEM text (e.g. a
    /// self-hosted server's own CA, or its self-signed certificate) instead of Mozilla's
    /// roots. [`build`](Self::build) fails if the text holds no valid certificate.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Self {
        self.roots_pem = Some(pem.to_vec());
        self
    }

    /// The client. Fails if the base URL is not `http://` or `https://` with a host, or the
    /// root certificates given are unusable; it does not connect.
    pub fn build(self) -> Result<LightClient, LightError> {
        let base = self.base.trim_end_matches('/').to_owned();
        let https = check_base(&base)?;
        let mut tls = TlsConfig::builder();
        if let Some(pem) = &self.roots_pem {
            tls = tls.root_certs(parse_roots(pem)?);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            // An https server's redirect cannot downgrade the client to plain HTTP.
            .https_only(https)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(LightClient {
            base,
            agent,
            timeout: self.timeout,
            deadline: self.deadline,
        })
    }
}

/// Whether `base` is an https URL; an error unless it is `http://` or `https://` with a
/// host, and without a query or fragment (paths are appended to it).
fn check_base(base: &str) -> Result<bool, LightError> {
    let invalid = |reason| LightError::BaseUrl {
        url: base.to_owned(),
        reason,
    };
    if base.contains(['?', '#']) {
        return Err(invalid("it has a query or fragment"));
    }
    let uri: Uri = base.parse().map_err(|_| invalid("it is not a valid URL"))?;
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(_) => return Err(invalid("the scheme is neither http nor https")),
        None => return Err(invalid("it has no scheme (http:// or https://)")),
    };
    match uri.authority() {
        Some(a) if !a.host().is_empty() => Ok(https),
        _ => Err(invalid("it has no host")),
    }
}

/// The certificates of a PEM text, each checked as a root certificate.
fn parse_roots(pem: &[u8]) -> Result<RootCerts, LightError> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    for (i, item) in ureq::tls::parse_pem(pem).enumerate() {
        match item {
            Ok(PemItem::Certificate(c)) => roots.push(c),
            Ok(_) => {} // keys and the like are not roots
            Err(e) => {
                return Err(LightError::RootCertificates {
                    reason: format!("PEM item {} does not parse", i + 1),
                    source: Some(Box::new(e)),
                });
            }
        }
    }
    if roots.is_empty() {
        return Err(LightError::RootCertificates {
            reason: "the PEM text holds no certificate".into(),
            source: None,
        });
    }
    // ureq skips certificates rustls cannot use as roots; say which one instead.
    let mut store = rustls::RootCertStore::empty();
    for (i, c) in roots.iter().enumerate() {
        store
            .add(rustls::pki_types::CertificateDer::from(c.der()))
            .map_err(|e| LightError::RootCertificates {
                reason: format!("certificate {} is not a usable root", i + 1),
                source: Some(Box::new(e)),
            })?;
    }
    Ok(RootCerts::new_with_certs(&roots))
}

impl LightClient {
    /// A client of the server at `base` (`http://host:port` or `https://host[/prefix]`),
    /// with a per-request timeout; `https://` servers are checked against Mozilla's roots.
    /// Fails only on a base URL it cannot use; it does not connect.
    pub fn new(base: &str, timeout: Duration) -> Result<LightClient, LightError> {
        LightClient::builder(base).timeout(timeout).build()
    }

    /// A builder, for settings beyond the timeout (see [`LightClientBuilder`]).
    pub fn builder(base: &str) -> LightClientBuilder {
        LightClientBuilder {
            base: base.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            deadline: None,
            roots_pem: None,
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` (starting with `/`): the body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, LightError> {
        let url = format!("{}{path}", self.base);
        let timeout = match self.deadline {
            None => self.timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LightError::Deadline { url });
                }
                left.min(self.timeout)
            }
        };
        let request = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(timeout))
            .build();
        let mut resp = match request.call() {
            Ok(r) => r,
            Err(e) => return Err(LightError::transport(url, e)),
        };
        let status = resp.status().as_u16();
        let body = match resp.body_mut().with_config().limit(MAX_BODY).read_to_vec() {
            Ok(b) => b,
            Err(e) => return Err(LightError::transport(url, e)),
        };
        if status == 200 {
            return Ok(body);
        }
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Err(LightError::Server {
            url,
            status,
            code: printable_text(&field("code").unwrap_or_else(|| "-".into()), 40),
            message: printable_text(
                &field("message").unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
                MAX_MESSAGE_CHARS,
            ),
        })
    }

    /// `GET path` as JSON.
    pub fn get_json(&self, path: &str) -> Result<Value, LightError> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|source| LightError::NotJson {
            url: self.url(path),
            source,
        })
    }

    /// The application's first block, as the server states it (`/v1/tip`). A client that
    /// knows it should use its own value; a wrong one only makes proofs fail.
    pub fn first_block(&self) -> Result<u64, LightError> {
        const PATH: &str = "/v1/tip";
        let tip = self.get_json(PATH)?;
        tip.pointer("/app/first_block")
            .and_then(Value::as_u64)
            .ok_or_else(|| LightError::Malformed {
                url: self.url(PATH),
                detail: "no app.first_block",
            })
    }

    /// The consensus-hash scheme the server says its store uses (`/v1/tip`), `None` when it
    /// names none (servers before v3 did not). Only a hint: a client that knows its
    /// application's scheme should use that, so that a server cannot make it fall back from
    /// state proofs to weaker ones.
    pub fn scheme(&self) -> Result<Option<Scheme>, LightError> {
        const PATH: &str = "/v1/tip";
        let tip = self.get_json(PATH)?;
        match tip.pointer("/app/scheme") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| LightError::Malformed {
                    url: self.url(PATH),
                    detail: "app.scheme names no known scheme",
                }),
        }
    }

    /// Fetches and verifies the v3 state proof of `key` in `namespace` as of block `m`:
    /// `Ok` only if it verifies against `trusted`, and then its value (or absence) is the
    /// key's at `m`.
    pub fn state(
        &self,
        first_block: u64,
        trusted: &Trusted,
        namespace: &str,
        key: &[u8],
        m: u64,
    ) -> Result<VerifiedState, LightError> {
        let path = format!(
            "/v1/state/{}/{}?trusted={}&height={m}",
            encode_segment(namespace),
            vc_chash::hex::encode(key),
            trusted.height
        );
        let bytes = self.get(&path)?;
        vc_chash::state::proof::verify(
            &bytes,
            first_block,
            trusted.height,
            &trusted.consensus_hash,
            m,
            namespace.as_bytes(),
            key,
        )
        .map_err(|source| self.unproven(&path, m, trusted, source))
    }

    /// Fetches the proof of block `m`'s records against trusted block `trusted`, unverified.
    pub fn proof(&self, trusted: u64, m: u64) -> Result<Vec<u8>, LightError> {
        self.get(&proof_path(trusted, m))
    }

    /// Fetches and verifies the proof of block `m`'s records: `Ok` only if it verifies against
    /// `trusted`, and then the records are the block's.
    pub fn verify(
        &self,
        first_block: u64,
        trusted: &Trusted,
        m: u64,
    ) -> Result<VerifiedBlock, LightError> {
        let bytes = self.proof(trusted.height, m)?;
        vc_chash::verify(
            &bytes,
            first_block,
            trusted.height,
            &trusted.consensus_hash,
            m,
        )
        .map_err(|source| self.unproven(&proof_path(trusted.height, m), m, trusted, source))
    }

    /// Why the answer to `path` proved nothing: not a proof at all (the server answered
    /// nonsense, which proves nothing either way), or a proof that failed verification.
    fn unproven(
        &self,
        path: &str,
        m: u64,
        trusted: &Trusted,
        source: vc_chash::VerifyError,
    ) -> LightError {
        match source {
            vc_chash::VerifyError::Decode(_) => LightError::MalformedProof {
                url: self.url(path),
                height: m,
                source,
            },
            source => LightError::Refuted {
                url: self.url(path),
                height: m,
                trusted: trusted.height,
                source,
            },
        }
    }

    /// A key of the application's collection (`/v1/{collection}/{key}`): its current state
    /// (unproven; `null` when the server gives none) and the heights of the blocks that
    /// touched it, which [`verify`](Self::verify) can prove: sorted, each once, at most
    /// [`MAX_HISTORY`] of them ([`LightError::HistoryTooLong`] beyond).
    pub fn key(&self, collection: &str, key: &str) -> Result<(Value, Vec<u64>), LightError> {
        let path = format!("/v1/{collection}/{}", encode_segment(key));
        let v = self.get_json(&path)?;
        let malformed = |detail| LightError::Malformed {
            url: self.url(&path),
            detail,
        };
        let history = v
            .get("history")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no history array"))?
            .iter()
            .map(|h| {
                h.as_u64()
                    .ok_or_else(|| malformed("a history height is not an integer"))
            })
            .collect::<Result<std::collections::BTreeSet<u64>, _>>()?;
        if history.len() > MAX_HISTORY {
            return Err(LightError::HistoryTooLong {
                url: self.url(&path),
                blocks: history.len(),
                limit: MAX_HISTORY,
            });
        }
        Ok((
            v.get("state").cloned().unwrap_or(Value::Null),
            history.into_iter().collect(),
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Server text made safe to print: control characters (terminal escapes included) escaped as
/// `\u{..}`, and at most `max` characters kept (`...` marks a cut).
pub fn printable_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn proof_path(trusted: u64, m: u64) -> String {
    format!("/v1/proofs/{m}?trusted={trusted}")
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_parses_and_explains() {
        let t: Trusted = "7:2a9148d8b13939723d2aca16c75c6d68".parse().unwrap();
        assert_eq!(t.height, 7);
        assert!(matches!(
            "7".parse::<Trusted>(),
            Err(ParseTrustedError::Form { .. })
        ));
        assert!(matches!(
            "x:2a9148d8b13939723d2aca16c75c6d68".parse::<Trusted>(),
            Err(ParseTrustedError::Height { .. })
        ));
        let e = "7:zz".parse::<Trusted>().unwrap_err();
        assert!(matches!(e, ParseTrustedError::Hash { .. }));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn base_urls() {
        for ok in [
            "http://127.0.0.1:8339",
            "https://names.example.org/",
            "HTTPS://names.example.org/vc",
        ] {
            LightClient::new(ok, DEFAULT_TIMEOUT).unwrap();
        }
        for bad in [
            "127.0.0.1:8339",
            "ftp://example.org",
            "http://",
            "https://example.org/?x=1",
            "not a url",
        ] {
            match LightClient::new(bad, DEFAULT_TIMEOUT) {
                Err(LightError::BaseUrl { url, .. }) => assert_eq!(url, bad.trim_end_matches('/')),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let c = LightClient::new("https://a.example/", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(c.base(), "https://a.example");
    }

    #[test]
    fn root_certificates_are_checked() {
        let no_cert = LightClient::builder("https://a.example")
            .root_certificates_pem(b"no PEM here")
            .build();
        assert!(matches!(no_cert, Err(LightError::RootCertificates { .. })));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = LightClient::builder("https://a.example")
            .root_certificates_pem(garbage)
            .build();
        assert!(
            matches!(bad, Err(LightError::RootCertificates { .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn server_text_is_escaped_and_trimmed() {
        assert_eq!(printable_text("plain words", 50), "plain words");
        let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}line\nbreak";
        let shown = printable_text(hostile, 50);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.contains("\\u{1b}[2J"), "{shown}");
        let long = "x".repeat(10_000);
        assert_eq!(printable_text(&long, 200).len(), 203);
    }

    #[test]
    fn an_extreme_timeout_is_clamped() {
        let c = LightClient::builder("http://127.0.0.1:9")
            .timeout(Duration::from_secs(u64::MAX))
            .build()
            .unwrap();
        assert_eq!(c.timeout, MAX_TIMEOUT);
    }

    #[test]
    fn a_passed_deadline_sends_nothing() {
        let c = LightClient::builder("http://127.0.0.1:9")
            .deadline(Instant::now())
            .build()
            .unwrap();
        assert!(matches!(c.get("/v1/tip"), Err(LightError::Deadline { .. })));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a.b-c_~"), "a.b-c_~");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
