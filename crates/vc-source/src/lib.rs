//! Block sources for virtualchain.
//!
//! Sources are split by capability:
//!
//! * [`ChainView`]: network, tip, block hash by height, linked headers. Every source is one.
//! * [`BlockSource`]: a block by hash and the outputs it spends (value and scriptPubKey per
//!   input, in order, none for the coinbase): every transaction, so every operation.
//! * [`WatchSource`]: only the transactions paying watched scripts, each proven in its block.
//! * [`Broadcaster`]: the writer side, sending a transaction.
//!
//! An engine takes a [`Source`]: whole blocks or watched transactions. Backends:
//!
//! * [`core::CoreSource`] (block source, broadcaster): Bitcoin Core, JSON-RPC for control and
//!   REST binary endpoints for bulk data (JSON-RPC fallback when REST is off), retries, capped
//!   concurrency.
//! * [`blk::BlkSource`] (block source): Core's `blocks/` directory read directly (blk, rev and
//!   xor files), even while the node runs.
//! * [`electrum::ElectrumSource`] (watching source, broadcaster): an Electrum server, with
//!   validated headers and merkle-proven transactions.
//! * [`mem::MemoryChain`] (block source): blocks held in memory, with fork, reorg and
//!   stale-branch helpers, for tests. [`WatchBlocks`] turns any block source into a watching
//!   one.
//!
//! Each backend is a cargo feature of the same name (`core`, `blk`, `electrum`, `mem`; all on by
//! default), so an application compiles only the clients it uses: TLS (rustls on ring) comes
//! with `electrum` alone, an HTTP client with `core` alone.
//!
//! [`prefetch::Prefetch`] runs a source over a range of heights with several threads, yielding
//! blocks in order with bounded memory, and validates every block once, whatever the backend
//! ([`valid`]: hash, merkle root, duplicate transactions, spent outputs' shape).
//!
//! ```no_run
//! use std::sync::Arc;
//! use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
//! use vc_source::{BlockSource, ChainView, prefetch::Prefetch};
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

#[cfg(feature = "blk")]
pub mod blk;
pub mod body;
#[cfg(feature = "core")]
pub mod core;
#[cfg(feature = "electrum")]
pub mod electrum;
mod error;
#[cfg(feature = "mem")]
pub mod mem;
pub mod prefetch;
pub mod scan;
mod source;
pub mod undo;
pub mod valid;
pub mod wallet;

pub use error::{SourceError, Violation};
pub use source::{
    BlockSource, Broadcaster, ChainTip, ChainView, FetchedBlock, Source, SpentOutputs, WatchBlocks,
    WatchSource, WatchedBlock, WatchedTx, check_linked, pays, spent_outputs_via_block,
};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(all(doctest, feature = "core", feature = "blk"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
