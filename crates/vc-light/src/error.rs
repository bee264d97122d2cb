//! Why a query gave no proven answer, and why a trusted pair did not parse.

use core::fmt;
use core::num::ParseIntError;

use vc_chash::{ParseHashError, VerifyError};

/// Why a light-client query gave no proven answer.
///
/// Every variant that concerns a request names its URL; a refutation names the heights. The
/// cause, where there is one, is the [`source`](std::error::Error::source), so printing the
/// chain (`anyhow`'s `{:#}`, or walking `source()`) gives the whole story.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LightError {
    /// The server's base URL is not an `http://` or `https://` URL this client can use.
    #[error("{url:?} is not a server's base URL: {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The root certificates given for `https://` servers are unusable.
    #[error("root certificates: {reason}")]
    RootCertificates {
        /// What is wrong with them.
        reason: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The server could not be reached, or the connection failed or timed out.
    #[error("{url}: unreachable")]
    Unreachable {
        /// The request.
        url: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// The TLS handshake with an `https://` server failed: most often its certificate is not
    /// signed by a trusted root, has expired, or names another host.
    #[error("{url}: TLS failed")]
    Tls {
        /// The request.
        url: String,
        /// The TLS error.
        #[source]
        source: TransportError,
    },
    /// The answer is larger than the client reads.
    #[error("{url}: answer larger than {limit} bytes")]
    TooLarge {
        /// The request.
        url: String,
        /// The largest answer read, in bytes.
        limit: u64,
    },
    /// The server answered with an error.
    #[error("{url}: HTTP {status} {code}: {message}")]
    Server {
        /// The request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error code from the JSON body (`-` when there was none).
        code: String,
        /// The message (from the JSON body, or the start of the body).
        message: String,
    },
    /// The answer is not JSON where the API promises JSON.
    #[error("{url}: the answer is not JSON")]
    NotJson {
        /// The request.
        url: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The answer is JSON but not what the API promises (a missing or mistyped field).
    #[error("{url}: malformed answer: {detail}")]
    Malformed {
        /// The request.
        url: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// The command's overall deadline passed before this request could be sent.
    #[error("{url}: not sent: the overall deadline has passed")]
    Deadline {
        /// The request.
        url: String,
    },
    /// A key's history lists more distinct blocks than the client proves
    /// ([`MAX_HISTORY`](crate::MAX_HISTORY)).
    #[error("{url}: the history lists {blocks} blocks, more than the {limit} this client proves")]
    HistoryTooLong {
        /// The request.
        url: String,
        /// How many distinct blocks it lists.
        blocks: usize,
        /// The limit.
        limit: usize,
    },
    /// The server's proof does not decode: it answered something that is not a proof.
    #[error("{url}: the proof of block {height} is malformed")]
    MalformedProof {
        /// The request.
        url: String,
        /// The target block.
        height: u64,
        /// The decoding error.
        #[source]
        source: VerifyError,
    },
    /// A proof failed verification: the server lied, or serves another chain.
    #[error("{url}: proof of block {height} against trusted block {trusted} refuted")]
    Refuted {
        /// The request.
        url: String,
        /// The target block.
        height: u64,
        /// The trusted block.
        trusted: u64,
        /// What failed.
        #[source]
        source: VerifyError,
    },
}

impl LightError {
    /// Whether the server was caught lying (a refuted proof), as opposed to unreachable or
    /// unhelpful.
    pub fn is_refutation(&self) -> bool {
        matches!(self, LightError::Refuted { .. })
    }

    /// The request the error concerns, if it concerns one.
    pub fn url(&self) -> Option<&str> {
        match self {
            LightError::Unreachable { url, .. }
            | LightError::Tls { url, .. }
            | LightError::TooLarge { url, .. }
            | LightError::Server { url, .. }
            | LightError::NotJson { url, .. }
            | LightError::Malformed { url, .. }
            | LightError::Deadline { url }
            | LightError::HistoryTooLong { url, .. }
            | LightError::MalformedProof { url, .. }
            | LightError::Refuted { url, .. } => Some(url),
            LightError::BaseUrl { .. } | LightError::RootCertificates { .. } => None,
        }
    }

    /// Sorts an error of the HTTP client by what the caller can do about it.
    pub(crate) fn transport(url: String, e: ureq::Error) -> LightError {
        match e {
            ureq::Error::BodyExceedsLimit(limit) => LightError::TooLarge { url, limit },
            e if is_tls(&e) => LightError::Tls {
                url,
                source: TransportError(e),
            },
            e => LightError::Unreachable {
                url,
                source: TransportError(e),
            },
        }
    }
}

/// Whether an HTTP client's error comes from TLS: rustls reports a failed handshake (an
/// unknown issuer, a wrong name) as an I/O error wrapping its own.
fn is_tls(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// An error of the HTTP or TLS layer, as its client reports it.
///
/// Opaque, so that the HTTP client can change without changing this crate's API; its
/// message says what failed (`io: Connection refused`, `io: invalid peer certificate: ...`).
#[derive(Debug)]
pub struct TransportError(ureq::Error);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for TransportError {}

/// Why a `HEIGHT:CONSENSUS_HASH` pair did not parse (see [`Trusted`](crate::Trusted)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseTrustedError {
    /// There is no `:`.
    #[error("{input:?} is not HEIGHT:CONSENSUS_HASH")]
    Form {
        /// The text as given.
        input: String,
    },
    /// The part before `:` is not a block height.
    #[error("{height:?} is not a block height")]
    Height {
        /// The part before `:`.
        height: String,
        /// The integer parser's error.
        #[source]
        source: ParseIntError,
    },
    /// The part after `:` is not a consensus hash.
    #[error("{hash:?} is not a consensus hash")]
    Hash {
        /// The part after `:`.
        hash: String,
        /// The hash parser's error.
        #[source]
        source: ParseHashError,
    },
}
