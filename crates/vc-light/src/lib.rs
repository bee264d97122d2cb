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

use std::time::Duration;

use serde_json::Value;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use vc_chash::{ConsensusHash, VerifiedBlock};

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

/// A client of one server.
#[derive(Debug, Clone)]
pub struct LightClient {
    base: String,
    agent: ureq::Agent,
}

/// Settings of a [`LightClient`] beyond its server: the timeout, and the root certificates
/// `https://` servers are checked against.
#[derive(Debug, Clone)]
pub struct LightClientBuilder {
    base: String,
    timeout: Duration,
    roots_pem: Option<Vec<u8>>,
}

impl LightClientBuilder {
    /// The longest a request may take, connecting and reading included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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
        Ok(LightClient { base, agent })
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
        let mut resp = match self.agent.get(&url).call() {
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
            code: field("code").unwrap_or_else(|| "-".into()),
            message: field("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
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
        .map_err(|source| LightError::Refuted {
            url: self.url(&proof_path(trusted.height, m)),
            height: m,
            trusted: trusted.height,
            source,
        })
    }

    /// A key of the application's collection (`/v1/{collection}/{key}`): its current state
    /// (unproven; `null` when the server gives none) and the heights of the blocks that
    /// touched it, which [`verify`](Self::verify) can prove.
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
            .collect::<Result<Vec<u64>, _>>()?;
        Ok((v.get("state").cloned().unwrap_or(Value::Null), history))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
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
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a.b-c_~"), "a.b-c_~");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
