//! Block sources for virtualchain.
//!
//! [`BlockSource`] is the one interface the engine reads the chain through: network, tip, block
//! hash by height, linked headers, a block by hash (checked to hash to what was asked), and the
//! outputs a block spends (value and scriptPubKey per input, in order, none for the coinbase),
//! plus broadcasting where the backend can. Backends:
//!
//! * [`core::CoreSource`]: Bitcoin Core, JSON-RPC for control and REST binary endpoints for
//!   bulk data (JSON-RPC fallback when REST is off), retries, capped concurrency.
//! * [`blk::BlkSource`]: Core's `blocks/` directory read directly (blk, rev and xor files), even
//!   while the node runs.
//! * [`mem::MemoryChain`]: blocks held in memory, with fork, reorg and stale-branch helpers,
//!   for tests.
//!
//! [`prefetch::Prefetch`] runs a source over a range of heights with several threads, yielding
//! blocks in order with bounded memory.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
//! use vc_source::{BlockSource, prefetch::Prefetch};
//!
//! let config = CoreConfig::new(
//!     "http://127.0.0.1:18443",
//!     CoreAuth::Cookie("/home/me/.bitcoin/regtest/.cookie".into()),
//!     bitcoin::Network::Regtest,
//! );
//! let source: Arc<dyn BlockSource> = Arc::new(CoreSource::connect(config)?);
//! let tip = source.tip()?;
//! for fetched in Prefetch::new(source, 0, tip.height + 1, 4, 64) {
//!     let f = fetched?;
//!     println!("{} {} txs, {} bytes", f.height, f.block.txdata.len(), f.size);
//! }
//! # Ok::<(), vc_source::SourceError>(())
//! ```

pub mod blk;
pub mod body;
pub mod core;
pub mod electrum;
mod error;
pub mod mem;
pub mod prefetch;
mod source;
pub mod undo;

pub use error::{SourceError, Violation};
pub use source::{
    BlockSource, ChainTip, Coverage, FetchedBlock, SpentOutputs, WatchedBlock, WatchedTx,
    check_linked, pays,
};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
