//! The application API: what an application declares ([`AppSpec`]) and the hooks the engine
//! calls ([`Application`]).
//!
//! Per block, the engine runs (the Python virtualchain names in brackets):
//!
//! 1. [`Application::parse`] (`db_parse`) on every transaction whose OP_RETURN payload carries the
//!    application's magic and a declared opcode (and, when the application declares marker
//!    scripts, that pays one of them), in block order;
//! 2. [`Application::prepare`] (`db_scan_block`) once, with all parsed operations of the block;
//! 3. [`Application::apply`] (`db_check` and `db_commit` in one) on each operation in block
//!    order. It reads and writes state and emits the operation's consensus records. If it
//!    rejects the operation, the engine takes back every write and record it made, so an
//!    operation is evaluated exactly once and a rejection leaves no trace;
//! 4. [`Application::finalize`] (`db_save`) once, then the block is saved atomically with its
//!    consensus hash;
//! 5. [`Application::should_continue`] (`db_continue`).

use vc_chash::{ConsensusHash, Scheme};
use vc_codec::carrier::CarrierRule;
use vc_codec::record::RecordError;
use vc_store::StoreError;

use crate::context::{BlockInfo, OpContext, State};

/// The default number of confirmations a block needs before it is processed (Blockstack: 6).
pub const DEFAULT_CONFIRMATIONS: u64 = 6;

/// The default staleness window `S` (BNS: 24 blocks).
pub const DEFAULT_STALENESS: u64 = 24;

/// The default longest payload, in bytes: the historical OP_RETURN standard.
pub const DEFAULT_PAYLOAD_LIMIT: usize = 80;

/// What an application is: its identity, wire format and consensus parameters. Two nodes with
/// different specs compute different consensus hashes, and a store refuses to open a file made
/// under another name, version, scheme or first block.
///
/// Build one with [`AppSpec::new`] and the `with_*` methods; everything not set has the default
/// named on its field.
///
/// ```
/// use vc_engine::prelude::*;
/// let spec = AppSpec::new("counter", "1", b"hi", 101).with_opcodes(b"+");
/// assert_eq!(spec.scheme, Scheme::V2);
/// assert_eq!(spec.staleness, 24);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppSpec {
    /// The application's name (stored in the database and checked on open).
    pub name: String,
    /// Its version; a rules change is a new version (and a new database).
    pub version: String,
    /// The magic bytes that start every payload (1 to 8 bytes).
    pub magic: Vec<u8>,
    /// The first Bitcoin block the application reads (`F`); earlier blocks are never fetched.
    pub first_block: u64,
    /// The declared opcodes; payloads with any other opcode are ignored. None by default: an
    /// application must declare at least one ([`AppSpec::with_opcodes`]).
    pub opcodes: Vec<u8>,
    /// Which OP_RETURN output carries the payload. Default: [`CarrierRule::Legacy`], the rule
    /// of the Python virtualchain (the last OP_RETURN output counts).
    pub carrier: CarrierRule,
    /// The longest payload accepted, in bytes. Default: [`DEFAULT_PAYLOAD_LIMIT`].
    pub payload_limit: usize,
    /// The consensus-hash scheme. Default: [`Scheme::V2`].
    pub scheme: Scheme,
    /// Staleness window `S`: a consensus hash named in block `b` is fresh if it is the hash of
    /// a block in `[b - S, b - 1]` (or a seed hash there). Default: [`DEFAULT_STALENESS`].
    pub staleness: u64,
    /// Seed consensus hashes: hashes declared for heights before the first block that count as
    /// fresh like computed ones. Default: none.
    pub seeds: Vec<(u64, ConsensusHash)>,
    /// Marker scripts: when not empty, a transaction is an operation only if one of its
    /// outputs pays one of these scripts (a registry or burn address); others are never
    /// parsed, whatever the source. Declaring markers is what lets the application run on a
    /// watching source (Electrum), which finds transactions through these scripts' histories,
    /// with the same consensus hashes as on whole blocks. See `docs/electrum.md`. Default: none.
    pub markers: Vec<bitcoin::ScriptBuf>,
    /// The application's parameters: consensus configuration beyond the version (for example
    /// a registry script), in the application's own versioned encoding. They are stored in
    /// the database's metadata ([`vc_store::Meta::app_params`]) and checked on every open, so
    /// a database made with one setting refuses another; a tool rebuilds the application from
    /// them. Default: empty.
    pub params: Vec<u8>,
    /// The migration policy (`docs/migration.md`): when set, the chain can move to another
    /// blockchain through the three operations it declares. Schemes v2 and v3 only. Default:
    /// none.
    pub migration: Option<crate::migrate::MigrationPolicy>,
    /// Whether the application reads its operations' witnesses
    /// ([`crate::OpContext::witnesses`]). Txids, and so every other check of a block, do not
    /// cover witnesses: when set, every block where an operation's transaction has one is
    /// checked against its coinbase's witness commitment (BIP141) first, and the application
    /// cannot run on a watching source (Electrum), which cannot prove witnesses. When not set,
    /// operations carry no witnesses. Default: not set.
    pub witnesses: bool,
}

impl AppSpec {
    /// An application named `name` at `version`, whose payloads start with `magic`, read from
    /// block `first_block` on, with the defaults for everything else.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        magic: impl AsRef<[u8]>,
        first_block: u64,
    ) -> Self {
        AppSpec {
            name: name.into(),
            version: version.into(),
            magic: magic.as_ref().to_vec(),
            first_block,
            opcodes: Vec::new(),
            carrier: CarrierRule::Legacy,
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
            scheme: Scheme::V2,
            staleness: DEFAULT_STALENESS,
            seeds: Vec::new(),
            markers: Vec::new(),
            params: Vec::new(),
            migration: None,
            witnesses: false,
        }
    }

    /// Declares the opcodes (one byte each).
    pub fn with_opcodes(mut self, opcodes: impl AsRef<[u8]>) -> Self {
        self.opcodes = opcodes.as_ref().to_vec();
        self
    }

    /// Sets the carrier rule.
    pub fn with_carrier(mut self, carrier: CarrierRule) -> Self {
        self.carrier = carrier;
        self
    }

    /// Sets the longest payload accepted.
    pub fn with_payload_limit(mut self, bytes: usize) -> Self {
        self.payload_limit = bytes;
        self
    }

    /// Sets the consensus-hash scheme.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets the staleness window.
    pub fn with_staleness(mut self, blocks: u64) -> Self {
        self.staleness = blocks;
        self
    }

    /// Declares a seed consensus hash at `height`.
    pub fn with_seed(mut self, height: u64, ch: ConsensusHash) -> Self {
        self.seeds.push((height, ch));
        self
    }

    /// Declares a marker script.
    pub fn with_marker(mut self, script: bitcoin::ScriptBuf) -> Self {
        self.markers.push(script);
        self
    }

    /// Declares a migration policy (see [`AppSpec::migration`]).
    pub fn with_migration(mut self, policy: crate::migrate::MigrationPolicy) -> Self {
        self.migration = Some(policy);
        self
    }

    /// Declares that the application reads its operations' witnesses (see
    /// [`AppSpec::witnesses`]).
    pub fn with_witnesses(mut self) -> Self {
        self.witnesses = true;
        self
    }

    /// Sets the application's parameters (see [`AppSpec::params`]).
    pub fn with_params(mut self, params: impl Into<Vec<u8>>) -> Self {
        self.params = params.into();
        self
    }
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

/// Why [`Application::apply`] (or [`Application::finalize`]) did not go through.
///
/// Only [`Fail::Reject`] is a verdict of the rules: the operation is dropped with everything it
/// wrote and the block goes on. The others are faults: the engine stops, the block is discarded,
/// and nothing committed is lost. A hook that cannot read state must fail, never reject: a
/// rejection caused by a local fault would make this node's state differ from everyone else's.
/// The `?` operator turns a [`Reject`] and a [`StoreError`] into the right variant.
#[derive(Debug)]
#[non_exhaustive]
pub enum Fail<E> {
    /// The rules reject the operation.
    Reject(Reject),
    /// The store failed.
    Store(StoreError),
    /// The application's own error: an invariant broke.
    App(E),
}

impl<E> From<Reject> for Fail<E> {
    fn from(r: Reject) -> Self {
        Fail::Reject(r)
    }
}

impl<E> From<StoreError> for Fail<E> {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// The result of [`Application::apply`] and [`Application::finalize`].
pub type Outcome<E> = Result<(), Fail<E>>;

/// A fault inside a hook that stopped the engine. The block being applied was discarded;
/// nothing committed is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application's own error.
    #[error("the application failed")]
    App(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record the application emitted cannot be encoded under its scheme (a float in v2, an
    /// opcode longer than 255 bytes, ...).
    #[error("an emitted consensus record cannot be encoded")]
    Record(#[from] RecordError),
    /// [`Application::finalize`] returned a rejection, which only an operation can get.
    #[error("finalize rejected the block, which the rules cannot do: {0}")]
    RejectedBlock(Reject),
    /// [`Application::finalize`] emitted consensus records, which only an operation can.
    #[error("finalize emitted {0} consensus records; only operations commit records")]
    RecordsInFinalize(usize),
}

impl HookError {
    /// The fault a [`Fail`] that is not a rejection carries; `None` for a rejection.
    pub(crate) fn from_fail<E: std::error::Error + Send + Sync + 'static>(
        fail: Fail<E>,
    ) -> Result<HookError, Reject> {
        match fail {
            Fail::Reject(r) => Err(r),
            Fail::Store(e) => Ok(HookError::Store(e)),
            Fail::App(e) => Ok(HookError::App(Box::new(e))),
        }
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

/// The hook that turned an operation away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Stage {
    /// [`Application::parse`]: not an operation at all (no `vtxindex`).
    Parse,
    /// [`Application::prepare`]: turned away with the whole block in view.
    Prepare,
    /// [`Application::apply`]: rejected by the rules against the state.
    Apply,
}

impl Stage {
    /// The hook's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Prepare => "prepare",
            Stage::Apply => "apply",
        }
    }
}

impl core::fmt::Display for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// An application on the engine: the Rust form of virtualchain's implementation API.
///
/// Hooks must be deterministic: the same blocks must give the same results on every node (no
/// wall clock, no randomness, no iteration over hash maps, no floats except where a legacy
/// record format demands them).
pub trait Application {
    /// The application's decoded operation.
    type Op;

    /// The application's own error: what [`Fail::App`] carries when an invariant breaks. Use
    /// [`core::convert::Infallible`] when there is none.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Identity, wire format and consensus parameters. The engine reads it once, when it opens.
    fn spec(&self) -> AppSpec;

    /// `db_parse`: decodes one candidate operation (magic and opcode already checked; see
    /// [`OpContext::body`]). A rejection here means the transaction is not an operation at all:
    /// it gets no `vtxindex`.
    fn parse(&self, op: &OpContext) -> Result<Self::Op, Reject>;

    /// `db_scan_block`: sees every parsed operation of the block before any is applied, and
    /// may reject some of them up front (for example, all operations that claim the same name
    /// in one block). Returns one entry per operation, `None` to let it through to `apply`.
    fn prepare(&self, block: &BlockInfo, ops: &[Parsed<Self::Op>]) -> Vec<Option<Reject>> {
        let _ = block;
        vec![None; ops.len()]
    }

    /// `db_check` and `db_commit` in one: judges the operation against the state so far
    /// (including this block's operations before it), writes its changes and emits its
    /// consensus records with [`State::emit`]. Returning [`Fail::Reject`] drops the operation:
    /// the engine takes back its writes and records.
    fn apply(&mut self, state: &mut State<'_>, op: &Parsed<Self::Op>) -> Outcome<Self::Error>;

    /// `db_save`: called once per block after its operations, before the block is saved (for
    /// example to expire old entries). State changes here are part of the block; it cannot
    /// reject or emit records.
    fn finalize(&mut self, state: &mut State<'_>) -> Outcome<Self::Error> {
        let _ = state;
        Ok(())
    }

    /// `db_continue`: whether the engine should go on after block `height` was saved.
    fn should_continue(&self, height: u64) -> bool {
        let _ = height;
        true
    }
}
