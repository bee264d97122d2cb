//! The light client's side: fetch from an untrusted server, verify with [`vc_chash`], and
//! believe only what verified.
//!
//! Every answer that matters is checked against a consensus hash the caller already trusts
//! (from its own node or a friend's): [`LightClient::verify`] fetches the proof of one block's
//! records and verifies it in logarithmic time and space. What the server says outside proofs
//! (its tip, a key's history) only tells the client what to ask for.

use std::time::Duration;

use serde_json::Value;
use vc_chash::{ConsensusHash, VerifiedBlock, VerifyError};

/// A consensus hash the caller trusts, and its height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trusted {
    /// The height `n`.
    pub height: u64,
    /// `CH(n)`.
    pub consensus_hash: ConsensusHash,
}

impl core::str::FromStr for Trusted {
    type Err = String;
    /// Parses `HEIGHT:CONSENSUS_HASH`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (h, ch) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not HEIGHT:CONSENSUS_HASH"))?;
        Ok(Trusted {
            height: h
                .parse()
                .map_err(|_| format!("{h:?} is not a block height"))?,
            consensus_hash: ch.parse().map_err(|e| format!("{ch:?}: {e}"))?,
        })
    }
}

/// Why a light-client query gave no proven answer.
#[derive(Debug, thiserror::Error)]
pub enum LightError {
    /// The server could not be reached, or the connection failed.
    #[error("{url}: unreachable: {detail}")]
    Unreachable {
        /// The request.
        url: String,
        /// The transport's error.
        detail: String,
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
        /// The message.
        message: String,
    },
    /// The answer is not what the API promises (not JSON, missing fields).
    #[error("{url}: malformed answer: {detail}")]
    Malformed {
        /// The request.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// A proof failed verification: the server lied, or serves another chain.
    #[error("proof of block {height} against trusted block {trusted} refuted: {source}")]
    Refuted {
        /// The target block.
        height: u64,
        /// The trusted block.
        trusted: u64,
        /// What failed.
        source: VerifyError,
    },
}

impl LightError {
    /// Whether the server was caught lying (a refuted proof), as opposed to unreachable or
    /// unhelpful.
    pub fn is_refutation(&self) -> bool {
        matches!(self, LightError::Refuted { .. })
    }
}

/// The largest answer read from a server (a proof is a few KiB).
const MAX_BODY: u64 = 16 << 20;

/// A client of one server.
#[derive(Debug, Clone)]
pub struct LightClient {
    base: String,
    agent: ureq::Agent,
}

impl LightClient {
    /// A client of the server at `base` (`http://host:port`), with a per-request timeout.
    pub fn new(base: &str, timeout: Duration) -> LightClient {
        LightClient {
            base: base.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build()
                .into(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`: the body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, LightError> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| LightError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| LightError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
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
        serde_json::from_slice(&body).map_err(|e| LightError::Malformed {
            url: format!("{}{path}", self.base),
            detail: e.to_string(),
        })
    }

    /// The application's first block, as the server states it (`/v1/tip`). A client that
    /// knows it should use its own value; a wrong one only makes proofs fail.
    pub fn first_block(&self) -> Result<u64, LightError> {
        let tip = self.get_json("/v1/tip")?;
        tip.pointer("/app/first_block")
            .and_then(Value::as_u64)
            .ok_or_else(|| LightError::Malformed {
                url: format!("{}/v1/tip", self.base),
                detail: "no app.first_block".into(),
            })
    }

    /// Fetches the proof of block `m`'s records against trusted block `trusted`, unverified.
    pub fn proof(&self, trusted: u64, m: u64) -> Result<Vec<u8>, LightError> {
        self.get(&format!("/v1/proofs/{m}?trusted={trusted}"))
    }

    /// Fetches and verifies the proof of block `m`'s records: `Ok` only if it verifies against
    /// `trusted`.
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
            height: m,
            trusted: trusted.height,
            source,
        })
    }

    /// A key of the application's collection (`/v1/{collection}/{key}`): its current state
    /// (unproven) and the heights of the blocks that touched it.
    pub fn key(&self, collection: &str, key: &str) -> Result<(Value, Vec<u64>), LightError> {
        let path = format!("/v1/{collection}/{}", encode_segment(key));
        let v = self.get_json(&path)?;
        let malformed = |detail: &str| LightError::Malformed {
            url: format!("{}{path}", self.base),
            detail: detail.to_owned(),
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
