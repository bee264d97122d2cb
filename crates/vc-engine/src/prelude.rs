//! Everything an application needs, in one import: `use vc_engine::prelude::*;`.
//!
//! The application API ([`Application`], [`AppSpec`], [`State`], [`Fail`], ...), state
//! namespaces and their encodings ([`Namespace`], [`Stored`]), consensus records ([`Record`]),
//! the engine with its configuration and errors, and the block sources to feed it.

pub use core::convert::Infallible;

pub use bitcoin::Network;
pub use vc_chash::{ConsensusHash, Scheme};
pub use vc_codec::carrier::CarrierRule;
pub use vc_codec::record::{Record, RecordValue};
pub use vc_codec::storage::Stored;
#[cfg(feature = "blk")]
pub use vc_source::blk::{BlkConfig, BlkSource};
#[cfg(feature = "core")]
pub use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
pub use vc_source::{BlockSource, ChainView, Source, WatchSource};
pub use vc_store::{Namespace, StateKey, StateReadExt, StoreError};

pub use crate::app::{AppSpec, Application, Fail, Outcome, Parsed, Reject, Stage};
pub use crate::context::{BlockInfo, OpContext, State};
pub use crate::engine::{
    CommitReport, Engine, EngineConfig, NoObserver, Observer, Stopped, SyncOutcome,
};
pub use crate::error::EngineError;
