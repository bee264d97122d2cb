//! The redb tables and the stored types.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"meta"` | [`Meta`] |
//! | `seeds` | height `u64` | consensus hash bytes |
//! | `chain` | height `u64` | [`ChainEntry`] |
//! | `ops` | `(height u64, vtxindex u32)` | [`StoredOp`] |
//! | `state` | namespace id `u16` (big-endian) followed by the key bytes | the application's bytes |
//! | `undo` | height `u64` | [`UndoLog`] |
//! | `mmr` | `(level u8, index u64)` | `[u8; 32]` node hash (v2 only) |
//! | `segments` | first height `u64` | [`crate::Segment`]: which blockchain a range of heights came from (after a migration) |
//! | `local` | setting name | bytes: node-local settings, not consensus data, not in snapshots |
//!
//! Every value except raw state values and MMR nodes is `version || postcard` through
//! [`vc_codec::storage`].
//!
//! A rollback leaves the `mmr` nodes of the blocks it reverted in place: a node is only read
//! when it lies within the tip's leaf count, and the block that takes the same position writes
//! its own node over the stale one. Every other table holds nothing above the tip.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use vc_codec::storage::{self, Stored};

use crate::error::{DbContext, StoreError};

/// The store schema this build writes. Opening a file with another schema version fails.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const SEEDS: TableDefinition<u64, &[u8]> = TableDefinition::new("seeds");
pub(crate) const CHAIN: TableDefinition<u64, &[u8]> = TableDefinition::new("chain");
pub(crate) const OPS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("ops");
pub(crate) const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
pub(crate) const UNDO: TableDefinition<u64, &[u8]> = TableDefinition::new("undo");
pub(crate) const MMR: TableDefinition<(u8, u64), [u8; 32]> = TableDefinition::new("mmr");
pub(crate) const LOCAL: TableDefinition<&str, &[u8]> = TableDefinition::new("local");

pub(crate) const META_KEY: &str = "meta";

/// What identifies an application instance; stored once, checked on every open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// [`SCHEMA_VERSION`] of the build that created the file.
    pub schema_version: u32,
    /// The application's name.
    pub app_name: String,
    /// The application's version (a rules change is a new version and a new file).
    pub app_version: String,
    /// The consensus-hash scheme byte (see [`vc_chash::Scheme::to_byte`]).
    pub scheme: u8,
    /// The application's first block.
    pub first_block: u64,
    /// The Bitcoin network (`bitcoin`, `testnet`, `signet`, `regtest`, ...).
    pub network: String,
    /// The state namespaces, in id order.
    pub namespaces: Vec<String>,
    /// The application's parameters: consensus configuration that is not the rules' version
    /// (for example the names app's registry script), in the application's own versioned
    /// encoding. The store never looks inside; it only checks them on open like the other
    /// identity fields. Empty when the application has none, and in files written before the
    /// field existed (metadata encoding version 1).
    pub app_params: Vec<u8>,
}

impl Stored for Meta {
    const KIND: &'static str = "store metadata";
    /// 2 since [`Meta::app_params`]; version 1 (without it) is still read, as empty params.
    const VERSION: u8 = 2;
}

/// The first metadata encoding version, without [`Meta::app_params`]; still read.
pub(crate) const META_V1: u8 = 1;

/// Upgrades version-1 metadata bytes to the current layout: the version-1 fields are the
/// current ones without the last, `app_params`, whose postcard encoding when empty is a single
/// zero byte (its length). `None` for anything else.
fn upgrade_meta_v1(bytes: &[u8]) -> Option<Vec<u8>> {
    let (&version, body) = bytes.split_first()?;
    if version != META_V1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(Meta::VERSION);
    out.extend_from_slice(body);
    out.push(0);
    Some(out)
}

/// One block of the chain index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    /// The Bitcoin block hash (internal byte order).
    pub block_hash: [u8; 32],
    /// The previous block's hash (internal byte order).
    pub prev_hash: [u8; 32],
    /// The block's ops hash (as vc-chash returns it for the scheme).
    pub ops_hash: [u8; 32],
    /// The block's consensus hash (16 bytes legacy, 32 bytes v2).
    pub consensus_hash: Vec<u8>,
    /// v2: the accumulator's root after appending this block's consensus hash (its peaks are
    /// in the `mmr` table). Legacy: `None`.
    pub mmr_root: Option<[u8; 32]>,
    /// How many operations (rows in `ops`) the block has.
    pub op_count: u32,
}

impl Stored for ChainEntry {
    const KIND: &'static str = "chain entry";
    const VERSION: u8 = 1;
}

/// A transaction output as the application saw it: value and scriptPubKey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputData {
    /// Value in satoshis.
    pub value: u64,
    /// The scriptPubKey bytes.
    pub script: Vec<u8>,
}

/// An accepted operation with its transaction context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOp {
    /// The transaction id (internal byte order).
    pub txid: [u8; 32],
    /// Position of the transaction in the Bitcoin block (coinbase = 0).
    pub txindex: u32,
    /// Position among this block's parsed operations.
    pub vtxindex: u32,
    /// The opcode byte.
    pub opcode: u8,
    /// The whole payload (magic, opcode, body).
    pub payload: Vec<u8>,
    /// The spent outputs of the transaction's inputs, in input order ("senders").
    pub senders: Vec<OutputData>,
    /// The transaction's outputs.
    pub outputs: Vec<OutputData>,
    /// Sum of spent values minus sum of output values, in satoshis.
    pub fee: u64,
    /// The consensus records this operation committed (canonical bytes, in commit order).
    pub records: Vec<Vec<u8>>,
}

impl Stored for StoredOp {
    const KIND: &'static str = "stored operation";
    const VERSION: u8 = 1;
}

/// One state key's value before a block changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoEntry {
    /// The full state key (namespace id and key bytes).
    pub key: Vec<u8>,
    /// The value before the block, `None` if the key did not exist.
    pub previous: Option<Vec<u8>>,
}

/// Everything needed to revert one block's state changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoLog {
    /// One entry per key the block changed, in key order.
    pub entries: Vec<UndoEntry>,
}

impl Stored for UndoLog {
    const KIND: &'static str = "undo log";
    const VERSION: u8 = 1;
}

/// Decodes a stored value, naming it in the error. Metadata of encoding version 1 is read as
/// having empty [`Meta::app_params`].
pub(crate) fn decode<T: Stored>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    let upgraded = if T::KIND == Meta::KIND {
        upgrade_meta_v1(bytes)
    } else {
        None
    };
    storage::from_bytes(upgraded.as_deref().unwrap_or(bytes)).map_err(|source| {
        StoreError::Corrupt {
            what: what(),
            source,
        }
    })
}

/// Encodes a value for storage.
pub(crate) fn encode<T: Stored>(value: &T) -> Result<Vec<u8>, StoreError> {
    storage::to_bytes(value).map_err(|source| StoreError::Encode {
        what: T::KIND,
        source,
    })
}

/// Reads the chain entry at `height` from a chain table (read or write transaction).
pub(crate) fn chain_entry(
    table: &impl redb::ReadableTable<u64, &'static [u8]>,
    height: u64,
) -> Result<Option<ChainEntry>, StoreError> {
    match table.get(height).ctx("reading the chain index")? {
        Some(raw) => decode(raw.value(), || format!("chain entry at height {height}")).map(Some),
        None => Ok(None),
    }
}

/// Like [`chain_entry`], for a block that must exist.
pub(crate) fn required_chain_entry(
    table: &impl redb::ReadableTable<u64, &'static [u8]>,
    height: u64,
) -> Result<ChainEntry, StoreError> {
    chain_entry(table, height)?.ok_or_else(|| {
        StoreError::Inconsistent(format!("chain entry of block {height} is missing"))
    })
}

/// Calls `f` with every state row whose raw key is in `lo..hi` (`hi = None`: to the end).
pub(crate) fn scan_state(
    table: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: Option<&[u8]>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let rows = match hi {
        Some(hi) => table.range(lo..hi),
        None => table.range(lo..),
    }
    .ctx("scanning state")?;
    for row in rows {
        let (k, v) = row.ctx("scanning state")?;
        f(k.value(), v.value())?;
    }
    Ok(())
}
