//! The sources' error type.

use bitcoin::{BlockHash, Network};
use thiserror::Error;

/// What went wrong fetching from a source. [`SourceError::is_transient`] tells which errors a
/// caller (or the source's own retry loop) may retry.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The connection failed, timed out or was reset.
    #[error("{source_name}: {what}")]
    Transport {
        /// The source (for example `core-rest`).
        source_name: &'static str,
        /// The request.
        what: String,
        /// The transport's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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
        /// Its JSON-RPC error code, when it gave one (Bitcoin Core: -5 not found, -8 out of
        /// range, -28 warming up).
        code: Option<i32>,
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
    /// An answer failed verification against what the source already validated: a header that
    /// does not link or lacks its proof of work, a merkle branch that does not reach the
    /// header, a transaction that does not hash to its txid, a history that dropped a confirmed
    /// transaction. A server that sends one is lying or broken; nothing it said is used.
    #[error("{source_name}: {violation} at height {height}: {detail}")]
    Unverified {
        /// The source.
        source_name: &'static str,
        /// The height the answer was about.
        height: u64,
        /// Which check failed.
        violation: Violation,
        /// What was wrong.
        detail: String,
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

/// The check an unverifiable answer failed ([`SourceError::Unverified`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Violation {
    /// A header's parent is not the block below it.
    HeaderLink,
    /// A header's hash does not meet its target, or the target is beyond the network's limit.
    ProofOfWork,
    /// A header's target breaks the network's difficulty-adjustment rules.
    Difficulty,
    /// A header's time is not above the median of the 11 blocks before it.
    Timestamp,
    /// A merkle branch does not lead from the transaction to the header's merkle root, or is
    /// malformed (wrong depth, impossible position).
    MerkleBranch,
    /// A transaction does not hash to the txid it was asked for.
    TxidMismatch,
    /// A funding transaction lacks the output an input spends.
    Prevout,
    /// A script's history no longer lists a confirmed transaction it listed before, though its
    /// block is still on the chain.
    Omission,
    /// A block does not hash to the hash asked for.
    BlockHash,
    /// A block's transactions do not hash to its header's merkle root.
    MerkleRoot,
    /// A transaction appears twice in one block.
    DuplicateTx,
    /// Spent outputs do not have the block's shape.
    SpentShape,
    /// A block's witnesses do not match its coinbase's witness commitment (BIP141).
    WitnessCommitment,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Violation::HeaderLink => "header does not link",
            Violation::ProofOfWork => "insufficient proof of work",
            Violation::Difficulty => "wrong difficulty",
            Violation::Timestamp => "timestamp too early",
            Violation::MerkleBranch => "merkle branch does not verify",
            Violation::TxidMismatch => "transaction does not hash to its txid",
            Violation::Prevout => "funding transaction lacks the spent output",
            Violation::Omission => "history omits a confirmed transaction",
            Violation::BlockHash => "block does not hash to the hash asked for",
            Violation::MerkleRoot => "transactions do not match the merkle root",
            Violation::DuplicateTx => "a transaction appears twice",
            Violation::SpentShape => "spent outputs do not fit the block",
            Violation::WitnessCommitment => "witnesses do not match the witness commitment",
        })
    }
}
