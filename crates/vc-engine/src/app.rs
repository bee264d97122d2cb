//! The application trait: what an application declares and the hooks the engine calls.
//!
//! Per block, the engine runs (the Python virtualchain names in brackets):
//!
//! 1. [`Application::parse`] (`db_parse`) on every transaction whose OP_RETURN payload carries the
//!    application's magic and a declared opcode (and, when the application declares marker
//!    scripts, that pays one of them), in block order;
//! 2. [`Application::prepare`] (`db_scan_block`) once, with all parsed operations of the block;
//! 3. for each parsed operation in block order, [`Application::check`] (`db_check`: accept or
//!    reject, read-only) and, if accepted, [`Application::commit`] (`db_commit`: change state,
//!    return the consensus records);
//! 4. [`Application::finalize`] (`db_save`) once, then the block is saved atomically with its
//!    consensus hash;
//! 5. [`Application::should_continue`] (`db_continue`).

use vc_chash::{ConsensusHash, Scheme};
use vc_codec::carrier::CarrierRule;
use vc_codec::record::Record;
use vc_store::{Store, StoreError};

use crate::context::{BlockInfo, BlockState, OpContext};

/// The default number of confirmations a block needs before it is processed (Blockstack: 6).
pub const DEFAULT_CONFIRMATIONS: u64 = 6;

/// What an application is: identity, wire format and consensus parameters.
///
/// Everything here except `confirmations` is part of consensus: two nodes with different specs
/// compute different consensus hashes, and the store refuses to open a file made under another
/// spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    /// The application's name (stored in the database and checked on open).
    pub name: String,
    /// Its version; a rules change is a new version (and a new database).
    pub version: String,
    /// The first Bitcoin block the application reads (`F`); earlier blocks are never fetched.
    pub first_block: u64,
    /// The magic bytes that start every payload (1 to 8 bytes).
    pub magic: Vec<u8>,
    /// The declared opcodes; payloads with any other opcode are ignored.
    pub opcodes: Vec<u8>,
    /// Which OP_RETURN output carries the payload.
    pub carrier: CarrierRule,
    /// The longest payload accepted, in bytes (80 is the historical standard).
    pub payload_limit: usize,
    /// The consensus-hash scheme.
    pub scheme: Scheme,
    /// Confirmations `K` a block needs before it is processed (at least 1: the tip itself).
    pub confirmations: u64,
    /// Staleness window `S`: a consensus hash named in block `b` is fresh if it is the hash of
    /// a block in `[b - S, b - 1]` (or a seed hash there).
    pub staleness: u64,
    /// Seed consensus hashes: hashes declared for heights before the first block that count as
    /// fresh like computed ones.
    pub seeds: Vec<(u64, ConsensusHash)>,
    /// The application's state namespaces (their order fixes their ids in the database).
    pub namespaces: Vec<&'static str>,
    /// Marker scripts: when not empty, a transaction is an operation only if one of its
    /// outputs pays one of these scripts (a registry or burn address); others are never
    /// parsed, whatever the source. Declaring markers is what lets the application run on a
    /// watching source (Electrum), which finds transactions through these scripts' histories,
    /// with the same consensus hashes as on whole blocks. See `docs/electrum.md`.
    pub markers: Vec<bitcoin::ScriptBuf>,
}

/// Why an operation was not accepted. Not part of consensus; reported and logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// A short machine-readable code (`"stale-consensus-hash"`, `"collision"`, ...).
    pub code: &'static str,
    /// A sentence for people.
    pub reason: String,
}

impl Reject {
    /// A rejection with `code` and `reason`.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Reject {
            code,
            reason: reason.into(),
        }
    }
}

impl core::fmt::Display for Reject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

/// A failure inside a hook that must stop the engine (as opposed to a [`Reject`], which only
/// drops one operation). The block being applied is discarded; nothing committed is lost.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application's own invariant broke.
    #[error("{0}")]
    App(String),
}

/// Why [`Application::check`] did not accept an operation: a rejection (the operation is
/// dropped, the block goes on), or a failure (the engine stops and nothing of the block is
/// kept). A check that cannot read state must fail, never reject: a rejection caused by a local
/// fault would make this node's state differ from everyone else's.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The rules reject the operation.
    #[error("rejected: {0}")]
    Rejected(Reject),
    /// The check could not be made.
    #[error(transparent)]
    Failed(#[from] HookError),
}

impl From<Reject> for CheckError {
    fn from(r: Reject) -> Self {
        CheckError::Rejected(r)
    }
}

impl From<StoreError> for CheckError {
    fn from(e: StoreError) -> Self {
        CheckError::Failed(HookError::Store(e))
    }
}

/// A parsed operation with its transaction context.
#[derive(Clone, Debug)]
pub struct Parsed<Op> {
    /// The transaction context (txid, positions, senders, outputs, fee, payload).
    pub ctx: OpContext,
    /// The application's decoded operation.
    pub op: Op,
}

/// An application on the engine: the Rust form of virtualchain's implementation API.
///
/// Hooks must be deterministic: the same blocks must give the same results on every node (no
/// wall clock, no randomness, no iteration over hash maps, no floats except where a legacy
/// record format demands them).
pub trait Application {
    /// The application's decoded operation.
    type Op;

    /// Identity, wire format and consensus parameters.
    fn spec(&self) -> &AppSpec;

    /// Called once after the store is opened, before any block: obtain namespace handles here
    /// (see [`Store::namespace`]).
    fn bind(&mut self, store: &Store) -> Result<(), StoreError>;

    /// `db_parse`: decodes one candidate operation (magic and opcode already checked; see
    /// [`OpContext::body`]). A rejection here means the transaction is not an operation at all:
    /// it gets no `vtxindex`.
    fn parse(&self, ctx: &OpContext) -> Result<Self::Op, Reject>;

    /// `db_scan_block`: sees every parsed operation of the block before any is checked, and
    /// may reject some of them up front (for example, all operations that claim the same name
    /// in one block). Returns one entry per operation, `None` to let it through to `check`.
    fn prepare(&self, block: &BlockInfo, ops: &[Parsed<Self::Op>]) -> Vec<Option<Reject>> {
        let _ = block;
        vec![None; ops.len()]
    }

    /// `db_check`: accepts or rejects one operation against the state so far (including the
    /// operations of this block committed before it). Must not change state; the type only
    /// allows reads. A store failure is [`CheckError::Failed`], never a rejection.
    fn check(
        &self,
        state: &BlockState<'_, '_, '_>,
        op: &Parsed<Self::Op>,
    ) -> Result<(), CheckError>;

    /// `db_commit`: applies an accepted operation and returns the consensus records it commits
    /// to, in order.
    fn commit(
        &mut self,
        state: &mut BlockState<'_, '_, '_>,
        op: &Parsed<Self::Op>,
    ) -> Result<Vec<Record>, HookError>;

    /// `db_save`: called once per block after its operations, before the block is saved (for
    /// example to expire old entries). State changes here are part of the block.
    fn finalize(&mut self, state: &mut BlockState<'_, '_, '_>) -> Result<(), HookError> {
        let _ = state;
        Ok(())
    }

    /// `db_continue`: whether the engine should go on after block `height` was saved.
    fn should_continue(&self, height: u64) -> bool {
        let _ = height;
        true
    }
}
