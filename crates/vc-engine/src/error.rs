//! What can stop the engine.

use bitcoin::{BlockHash, Txid};
use vc_chash::ConsensusHash;
use vc_source::SourceError;
use vc_store::StoreError;

use crate::app::HookError;

/// Why the engine stopped. Whatever the error, every block committed before it stays committed
/// and the next run continues from there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The block source failed.
    #[error("block source: {0}")]
    Source(#[from] SourceError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The application's spec is unusable (bad magic, opcodes or limit).
    #[error("application spec: {0}")]
    Spec(String),
    /// The source delivers only transactions paying watched scripts (Electrum), and the
    /// application declares no marker scripts, so operations would go unseen.
    #[error(
        "the {source_name} source only sees transactions that pay watched scripts, and the application declares no marker scripts: use a Core or blk-file source"
    )]
    NeedsMarkers {
        /// The source.
        source_name: &'static str,
    },
    /// The source serves another network than the database was made for.
    #[error("the source serves {source_network} but the database was made for {store}")]
    WrongNetwork {
        /// The source's network.
        source_network: String,
        /// The database's network.
        store: String,
    },
    /// A hook failed while applying a block; the block was discarded.
    #[error("application hook failed in block {height}{}: {source}", txid.map(|t| format!(", transaction {t}")).unwrap_or_default())]
    Hook {
        /// The block.
        height: u64,
        /// The operation's transaction, when the failure was in `check` or `commit`.
        txid: Option<Txid>,
        /// What failed.
        source: Box<HookError>,
    },
    /// The block's data is inconsistent (spent outputs worth less than the outputs, missing
    /// spent outputs): the source is broken or lying.
    #[error("block {height} ({hash}), transaction {txid}: {detail}")]
    BadBlock {
        /// The block's height.
        height: u64,
        /// Its hash.
        hash: BlockHash,
        /// The transaction.
        txid: Txid,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint did not match: the source follows another chain than the one the checkpoint
    /// names, or this node computes other consensus hashes than the checkpoint's author.
    #[error("checkpoint at height {height} failed: expected {expected}, found {found}")]
    Checkpoint {
        /// The checkpoint's height.
        height: u64,
        /// What the checkpoint expects (block hash or consensus hash).
        expected: String,
        /// What this node found.
        found: String,
    },
    /// The chain reorganised deeper than the automatic limit. Nothing was rolled back. The
    /// ways out (re-index from `fork_height + 1`, accept a checkpoint, or pin the old branch)
    /// are the caller's to offer: the `virtualchain` binary names its commands.
    #[error(
        "deep reorganisation: the chain forks from the database {} at height {fork_height} ({depth} blocks below the indexed tip {tip}), deeper than the automatic limit of {limit}; the new branch starts with block {new_branch_hash}",
        db.display()
    )]
    DeepReorg {
        /// The database.
        db: std::path::PathBuf,
        /// The highest height where the database and the source agree.
        fork_height: u64,
        /// How many indexed blocks the new branch replaces.
        depth: u64,
        /// The database's tip height.
        tip: u64,
        /// The configured limit.
        limit: u64,
        /// The first block of the new branch (what `invalidateblock` needs to stay on the old
        /// branch).
        new_branch_hash: BlockHash,
    },
    /// The source's block hashes are not a chain: it agrees with the database at a height and
    /// disagrees below it, which no honest source does (a block commits to its parent).
    /// Nothing was rolled back.
    #[error(
        "the source is inconsistent: it agrees with the database at height {agrees_at} but not at height {differs_at} below it; nothing was rolled back"
    )]
    InconsistentSource {
        /// A height where the source agrees with the database.
        agrees_at: u64,
        /// A lower height where it does not.
        differs_at: u64,
    },
    /// The cross-checked sources disagree at a height (see [`crate::cross`]): nothing from the
    /// block was committed.
    #[error(
        "the sources disagree on block {height} (agreement: {agreement}), nothing from it was committed: {answers}"
    )]
    SourcesDisagree {
        /// The height.
        height: u64,
        /// The policy that was not met.
        agreement: crate::cross::Agreement,
        /// Every source's answer, the block source's first.
        answers: Answers,
    },
    /// The database is pinned to another branch (`recover split`) than the source follows.
    #[error(
        "this database is pinned to block {pinned} at height {height}, but the source has {found} there; point it at a node that follows the pinned branch"
    )]
    PinnedBranch {
        /// The pinned height.
        height: u64,
        /// The pinned block.
        pinned: BlockHash,
        /// The source's block at that height.
        found: BlockHash,
    },
}

impl EngineError {
    /// A checkpoint error for consensus hashes.
    pub(crate) fn checkpoint_ch(
        height: u64,
        expected: &ConsensusHash,
        found: &ConsensusHash,
    ) -> Self {
        EngineError::Checkpoint {
            height,
            expected: format!("consensus hash {expected}"),
            found: format!("consensus hash {found}"),
        }
    }
}

/// Every source's answer at a height, the block source's first, then the witnesses in the
/// order they were added. Displayed numbered from `#1` (the block source), since two sources
/// of one kind have the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answers(pub Vec<crate::cross::SourceAnswer>);

impl core::fmt::Display for Answers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "#{} {a}", i + 1)?;
        }
        Ok(())
    }
}
