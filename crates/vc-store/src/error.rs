//! The store's error type.

use thiserror::Error;
use vc_chash::append::AppendError;
use vc_codec::storage::StorageError;

/// Everything that can go wrong in the store, with the context needed to act on it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed (I/O, a corrupt file, a transaction error).
    #[error("database error while {context}: {source}")]
    Db {
        /// What the store was doing.
        context: &'static str,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The file's metadata does not match what the application expects; nothing was changed.
    #[error(
        "{path}: stored {field} is {stored}, but the application expects {expected}; the file was not changed"
    )]
    Mismatch {
        /// The database file.
        path: String,
        /// Which metadata field.
        field: MetaField,
        /// The stored value.
        stored: String,
        /// The expected value.
        expected: String,
    },
    /// The file is not a virtualchain store: not a redb file, or one without metadata.
    #[error("{path} is not a virtualchain-rs store")]
    NotAStore {
        /// The database file.
        path: String,
    },
    /// A stored value does not decode.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        /// Which record ("chain entry at height 812", ...).
        what: String,
        /// The decoding error.
        #[source]
        source: StorageError,
    },
    /// The file is damaged: redb's integrity check failed, redb failed on the file's contents
    /// (its panics are caught at the store's boundary and reported here), or a stored value
    /// disagrees with what its stored inputs recompute to. Nothing was answered from it.
    #[error("{path}: the database is damaged ({what}): {detail}")]
    Damaged {
        /// The database file.
        path: String,
        /// What the store was doing ("reading the chain tip", "checking integrity").
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The file was not closed cleanly and no writer holds it: a read-only handle does not
    /// repair it. Opening it for writing (the indexer) repairs it.
    #[error(
        "{path} needs recovery after an unclean shutdown; run `virtualchain index` (or open it for writing) once to repair it"
    )]
    NeedsRecovery {
        /// The database file.
        path: String,
    },
    /// The store's own invariants do not hold (a missing row that must exist).
    #[error("store inconsistency: {0}")]
    Inconsistent(String),
    /// A block does not extend the tip.
    #[error("block {height} does not extend the tip: {reason}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// Why (expected height, previous hash).
        reason: String,
    },
    /// A rollback below what the undo logs cover.
    #[error(
        "cannot roll back to block {target}: undo logs reach back only to block {oldest} (the reorg window); re-index or import a snapshot"
    )]
    RollbackTooDeep {
        /// The requested height.
        target: u64,
        /// The oldest height that can still be restored (the end of block `oldest - 1`).
        oldest: u64,
    },
    /// v3: the state after a block older than the undo logs reach: the tree is stored only
    /// at the tip, and earlier versions are rebuilt from the undo logs of the blocks since.
    #[error(
        "the state after block {height} is no longer kept: undo logs reach back only to block {oldest} (the undo window)"
    )]
    StateTooOld {
        /// The requested height.
        height: u64,
        /// The oldest height whose state can still be rebuilt.
        oldest: u64,
    },
    /// v3: rebuilding the state tree after block `height` would set back more changes than
    /// the caller allows (see [`crate::View::state_proof_within`]).
    #[error(
        "the state after block {height} is more than {limit} state changes below the tip: too costly to rebuild here"
    )]
    StateTooCostly {
        /// The requested height.
        height: u64,
        /// The most changes the caller allowed.
        limit: u64,
    },
    /// A rollback target above the tip.
    #[error("cannot roll back to block {target}: the tip is {tip:?}")]
    RollbackAboveTip {
        /// The requested height.
        target: u64,
        /// The current tip height, if any.
        tip: Option<u64>,
    },
    /// Encoding a value for storage failed.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// The encoding error.
        #[source]
        source: StorageError,
    },
    /// A write to a new namespace when the store already holds the most it can (65,536).
    #[error("cannot add state namespace `{0}`: the store already has 65,536 namespaces")]
    TooManyNamespaces(String),
    /// A state key that does not decode as its namespace's key type.
    #[error("state key in namespace `{namespace}` does not decode: {reason}")]
    BadKey {
        /// The namespace.
        namespace: String,
        /// Why.
        reason: String,
    },
    /// A v3 state proof cannot be built: the store is not v3, a height is outside the chain, or
    /// the namespace or key is longer than the proof format carries.
    #[error(
        "cannot build a state proof of `{namespace}` key {key_hex} at block {height}: {reason}"
    )]
    StateProof {
        /// The namespace.
        namespace: String,
        /// The key, in hex.
        key_hex: String,
        /// The height asked about.
        height: u64,
        /// Why.
        reason: String,
    },
    /// A snapshot file is malformed, for another application, or fails verification.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: String,
        /// What is wrong (with a byte offset where it applies).
        reason: String,
    },
    /// File-system I/O outside redb (snapshot files).
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The append step refuses a block only when the stored chain disagrees with itself (the
/// writer checks a block's height and parent first); a failed read is the read's own error.
impl From<AppendError<StoreError>> for StoreError {
    fn from(e: AppendError<StoreError>) -> Self {
        match e {
            AppendError::Read { source, .. } => source,
            other => StoreError::Inconsistent(other.to_string()),
        }
    }
}

/// Attaches a context to redb results.
pub(crate) trait DbContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for Result<T, E> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db {
            context,
            source: Box::new(e.into()),
        })
    }
}

/// A field of a store's identity ([`crate::Meta`] and the seeds), as
/// [`StoreError::Mismatch`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaField {
    /// The encoding version byte of the metadata.
    EncodingVersion,
    /// [`crate::schema::SCHEMA_VERSION`].
    SchemaVersion,
    /// The application's name.
    AppName,
    /// The application's version.
    AppVersion,
    /// The consensus-hash scheme.
    Scheme,
    /// The application's first block.
    FirstBlock,
    /// The Bitcoin network.
    Network,
    /// The application's parameters.
    AppParams,
    /// The seed consensus hashes.
    Seeds,
}

impl core::fmt::Display for MetaField {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MetaField::EncodingVersion => "metadata encoding version",
            MetaField::SchemaVersion => "schema version",
            MetaField::AppName => "application name",
            MetaField::AppVersion => "application version",
            MetaField::Scheme => "consensus scheme",
            MetaField::FirstBlock => "first block",
            MetaField::Network => "network",
            MetaField::AppParams => "application parameters",
            MetaField::Seeds => "seeds",
        })
    }
}
