//! The virtualchain pipeline: an [`Application`] on a [`vc_store::Store`], fed by a
//! [`vc_source::BlockSource`].
//!
//! The engine fetches blocks in parallel and applies them strictly in order, each only once it
//! has `K` confirmations. For every block it finds the transactions whose OP_RETURN payload
//! carries the application's magic and a declared opcode, runs the application's hooks
//! (parse, prepare, apply, finalize, continue; see [`app`]), and saves the block's state
//! changes, accepted operations and consensus hash atomically. It follows the tip by polling,
//! rolls back reorganisations up to a limit ([`EngineConfig::max_reorg_depth`]) through the
//! store's undo logs, and stops with the recovery options named when a fork is deeper. Every
//! poll compares the database's blocks at geometric depths with the source's ([`watch`]), so a
//! fork of any depth is detected at once and located in a logarithmic number of requests.
//!
//! A crash at any moment loses at most the blocks since the last commit, which the next run
//! applies again: every commit ends on a block boundary.
//!
//! `docs/app-guide.md` in the repository walks an application author through the trait; the
//! `vc-names` crate is a complete application.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `docs/app-guide.md`'s examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/app-guide.md")]
pub struct AppGuideDoctests;

pub mod app;
mod block;
pub mod context;
pub mod cross;
mod engine;
mod error;
pub mod migrate;
pub mod prelude;
pub mod watch;

pub use app::{
    AppSpec, Application, DEFAULT_CONFIRMATIONS, DEFAULT_PAYLOAD_LIMIT, DEFAULT_STALENESS, Fail,
    HookError, Outcome, Parsed, Reject, Stage,
};
pub use block::{BlockReport, Recognized, Rejected, recognize};
pub use context::{BlockInfo, OpContext, State};
pub use cross::{Agreement, SourceAnswer};
pub use engine::{
    Checkpoint, CommitReport, DEFAULT_MAX_REORG_DEPTH, DEFAULT_UNDO_WINDOW, Engine, EngineConfig,
    NoObserver, Observer, Recorder, ReorgReport, Stopped, SyncOutcome, pin_branch, store_config,
};
pub use error::{Answers, EngineError};
pub use migrate::MigrationPolicy;
pub use watch::ForkReport;
