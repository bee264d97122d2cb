//! The sources' error type.

use bitcoin::{BlockHash, Network};
use thiserror::Error;

/// What went wrong fetching from a source. [`SourceError::is_transient`] tells which errors a
/// caller (or the source's own retry loop) may retry.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The connection failed, timed out or was reset.
    #[error("{source_name}: {what}: {detail}")]
    Transport {
        /// The source (for example `core-rest`).
        source_name: &'static str,
        /// The request.
        what: String,
        /// The transport's message.
        detail: String,
    },
    /// The node refused the credentials (HTTP 401).
    #[error(
        "{source_name}: the node rejected the credentials (wrong cookie file or user/password)"
    )]
    BadCredentials {
        /// The source.
        source_name: &'static str,
    },
    /// The node is on another chain than the application expects.
    #[error("{source_name}: the node is on {found}, but the application expects {expected}")]
    WrongNetwork {
        /// The source.
        source_name: &'static str,
        /// The expected network.
        expected: Network,
        /// What the node reports.
        found: String,
    },
    /// The node pruned the block (or its undo data).
    #[error("{source_name}: block {hash} is pruned on this node")]
    Pruned {
        /// The source.
        source_name: &'static str,
        /// The block.
        hash: BlockHash,
    },
    /// A height above the node's tip.
    #[error("{source_name}: height {height} is past the node's tip {tip}")]
    PastTip {
        /// The source.
        source_name: &'static str,
        /// The requested height.
        height: u64,
        /// The tip when asked.
        tip: u64,
    },
    /// The node does not know the block.
    #[error("{source_name}: {what} not found")]
    NotFound {
        /// The source.
        source_name: &'static str,
        /// What was asked for.
        what: String,
    },
    /// The answer is not what was asked for: another block, a header chain that does not link,
    /// spent outputs of the wrong shape.
    #[error("{source_name}: answer does not match the request: {detail}")]
    Mismatch {
        /// The source.
        source_name: &'static str,
        /// What differs.
        detail: String,
    },
    /// The answer does not parse.
    #[error("{source_name}: malformed {what}: {detail}")]
    Malformed {
        /// The source.
        source_name: &'static str,
        /// What was being parsed.
        what: String,
        /// Why (with a byte offset where it applies).
        detail: String,
    },
    /// The node answered with an error.
    #[error("{source_name}: {what} failed: {detail}")]
    Node {
        /// The source.
        source_name: &'static str,
        /// The request.
        what: String,
        /// The node's message.
        detail: String,
        /// Whether retrying may help (HTTP 503: the work queue is full; warming up).
        transient: bool,
    },
    /// The backend cannot do this (broadcasting from blk files, for example).
    #[error("{source_name}: {operation} is not supported by this source")]
    Unsupported {
        /// The source.
        source_name: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// A file error (blk-file source), with the file and byte offset.
    #[error("{path} at byte offset {offset}: {detail}")]
    File {
        /// The file.
        path: String,
        /// Where.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl SourceError {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Transport { .. } => true,
            SourceError::Node { transient, .. } => *transient,
            _ => false,
        }
    }
}
