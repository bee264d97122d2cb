//! State storage for virtualchain applications on redb.
//!
//! One redb file holds one application instance: its identity ([`StoreConfig`], checked on
//! every open), the chain index with each block's ops hash, consensus hash and v2 accumulator,
//! the accepted operations with their transaction context, the application's typed state
//! ([`Namespace`]), a per-block undo log (every block's by default; see [`StoreConfig::undo_window`]), and
//! the seed consensus hashes. See [`schema`] for the tables.
//!
//! * Writing ([`Writer`], [`BlockWriter`]): each block is applied atomically (state changes,
//!   undo log, bookkeeping and consensus hash in one write transaction); several blocks can
//!   share a commit during catch-up, always ending on a block boundary.
//! * Reorgs ([`Writer::rollback_to`]): revert block by block through the undo logs, at a cost
//!   proportional to the blocks reverted.
//! * Reading ([`View`]): a consistent snapshot of the last commit that implements
//!   [`vc_chash::History`], so proofs are served straight from the store while the writer goes on;
//!   [`ReadOnlyStore`] takes views from another process, which follows the writer's commits.
//! * Portability ([`snapshot`]): export to one file, import with the consensus-hash chain
//!   recomputed and checked against a trusted hash.
//! * Auditing ([`replay`]): recompute every consensus hash from the stored records.
//!
//! ```
//! use vc_chash::Scheme;
//! use vc_store::{BlockHeader, Namespace, StateReadExt, StateWriteExt, Store, StoreConfig};
//! use vc_chash::Hash256;
//!
//! const NAMES: Namespace<String, u64> = Namespace::new("names");
//!
//! let dir = tempfile::tempdir()?;
//! let config = StoreConfig::new("names", "1.0.0", Scheme::V2, 100, "regtest");
//! let store = Store::open(dir.path().join("names.redb"), config)?;
//!
//! let mut w = store.writer()?;
//! for height in 100..103u64 {
//!     let header = BlockHeader {
//!         height,
//!         block_hash: Hash256([height as u8; 32]),
//!         prev_hash: Hash256([height as u8 - 1; 32]),
//!     };
//!     let mut block = w.begin_block(header)?;
//!     block.put(&NAMES, &format!("name{height}.test"), &height)?;
//!     let summary = block.finish()?;
//!     assert_eq!(summary.height, height);
//! }
//! w.commit()?;
//! drop(w);
//!
//! assert_eq!(store.tip()?.map(|t| t.height), Some(102));
//! store.rollback_to(100)?;
//! let view = store.view()?;
//! assert_eq!(view.get(&NAMES, &"name100.test".to_string())?, Some(100));
//! assert_eq!(view.get(&NAMES, &"name101.test".to_string())?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;
mod error;
mod guard;
mod history;
mod last_fork;
mod read_only;
pub mod replay;
pub mod schema;
mod segments;
pub mod snapshot;
mod source_tip;
mod state;
mod store;
mod tree;
mod writer;

pub use error::{MetaField, StoreError};
pub use last_fork::LastFork;
pub use read_only::{ReadOnlyStore, VerifyReport};
pub use schema::{ChainEntry, Meta, OutputData, StoredOp};
pub use segments::Segment;
pub use source_tip::SourceTip;
pub use state::{
    Namespace, RawEntry, StateAccess, StateKey, StateRead, StateReadExt, StateWriteExt,
};
pub use store::{DEFAULT_UNDO_WINDOW, KEEP_ALL_UNDO, Store, StoreConfig, Tip, View};
pub use writer::{BlockHeader, BlockWriter, CommitPolicy, Savepoint, Writer, WriterTimings};

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
