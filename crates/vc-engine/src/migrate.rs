//! Cross-chain migration (`docs/migration.md`): the policy an application declares, the
//! announcement kept in the state, the operations applied in blocks, the search for a binding
//! on the target chain, and the view that shows the target chain at virtual heights.
//!
//! The hashes, byte layouts and the matching rule are `vc_chash::migration`'s; this module only
//! decides when they apply.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction, TxOut};
use serde::{Deserialize, Serialize};
use vc_chash::Hash256;
use vc_chash::migration::{
    Announcement, BoundaryRecord, ChainId, PendingCommit, Reveal, decode_commit, reveal_matches,
};
use vc_codec::storage::Stored;
use vc_source::{
    BlockSource, ChainTip, ChainView, FetchedBlock, Source, SourceError, SpentOutputs, WatchSource,
    WatchedBlock,
};
use vc_store::{Namespace, StateRead, StateReadExt, StateWriteExt, StoreError};

use crate::app::Reject;
use crate::block::{Input, Recognizer};
use crate::context::OpContext;
use crate::engine::EngineConfig;
use crate::error::EngineError;

/// The state namespace that holds a pending announcement.
pub const NAMESPACE: &str = "vc.migration";

/// The key of the pending announcement in [`NAMESPACE`].
const ANNOUNCEMENT_KEY: &str = "announcement";

const PENDING: Namespace<String, PendingAnnouncement> = Namespace::new(NAMESPACE);

/// The encoding version of [`MigrationPolicy::encode`].
const POLICY_VERSION: u8 = 1;

/// The default opcodes of the three migration operations: announce `^`, commit `{`, reveal `}`.
pub const DEFAULT_OPCODES: [u8; 3] = *b"^{}";

/// What an application declares to be able to migrate: the opcodes of the three operations,
/// the authority that may send them, and the confirmations `K` and window `W` of
/// `docs/migration.md`. Consensus parameters: every node of the application must use the same.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationPolicy {
    /// The announcement's opcode.
    pub announce: u8,
    /// The commit's opcode.
    pub commit: u8,
    /// The reveal's opcode.
    pub reveal: u8,
    /// The script the output spent by an operation's first input must have.
    pub authority: ScriptBuf,
    /// `K`: confirmations that make the announcement (on A) and the binding (on B) final.
    pub confirmations: u64,
    /// `W`: the most blocks a reveal may follow its commit by.
    pub window: u64,
}

/// Why policy bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The bytes end early or run on.
    #[error("migration policy: {0}")]
    Malformed(&'static str),
    /// An encoding version this build does not read.
    #[error("migration policy: encoding version {0}, this build reads 1")]
    Version(u8),
}

impl MigrationPolicy {
    /// The policy with `authority`, the default opcodes, `K = 6` and `W = 6`.
    pub fn new(authority: ScriptBuf) -> Self {
        let [announce, commit, reveal] = DEFAULT_OPCODES;
        MigrationPolicy {
            announce,
            commit,
            reveal,
            authority,
            confirmations: 6,
            window: 6,
        }
    }

    /// Sets `K` (at least 1).
    pub fn with_confirmations(mut self, k: u64) -> Self {
        self.confirmations = k.max(1);
        self
    }

    /// Sets `W` (at least 1).
    pub fn with_window(mut self, w: u64) -> Self {
        self.window = w.max(1);
        self
    }

    /// Sets the three opcodes.
    pub fn with_opcodes(mut self, [announce, commit, reveal]: [u8; 3]) -> Self {
        self.announce = announce;
        self.commit = commit;
        self.reveal = reveal;
        self
    }

    /// The three opcodes: announce, commit, reveal.
    pub fn opcodes(&self) -> [u8; 3] {
        [self.announce, self.commit, self.reveal]
    }

    /// `0x01 || announce || commit || reveal || u64(K) || u64(W) || u16(len) || authority`.
    pub fn encode(&self) -> Vec<u8> {
        let script = self.authority.as_bytes();
        let mut out = Vec::with_capacity(22 + script.len());
        out.push(POLICY_VERSION);
        out.extend_from_slice(&self.opcodes());
        out.extend_from_slice(&self.confirmations.to_be_bytes());
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(
            &u16::try_from(script.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(script);
        out
    }

    /// Decodes [`MigrationPolicy::encode`]'s bytes, exactly.
    pub fn decode(bytes: &[u8]) -> Result<MigrationPolicy, PolicyError> {
        let (&version, rest) = bytes.split_first().ok_or(PolicyError::Malformed("empty"))?;
        if version != POLICY_VERSION {
            return Err(PolicyError::Version(version));
        }
        let fixed = rest.get(..21).ok_or(PolicyError::Malformed("truncated"))?;
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&fixed[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let len = usize::from(u16::from_be_bytes([fixed[19], fixed[20]]));
        let script = &rest[21..];
        if script.len() != len {
            return Err(PolicyError::Malformed("the authority's length is wrong"));
        }
        Ok(MigrationPolicy {
            announce: fixed[0],
            commit: fixed[1],
            reveal: fixed[2],
            confirmations: u64_at(3),
            window: u64_at(11),
            authority: ScriptBuf::from_bytes(script.to_vec()),
        })
    }

    /// Whether an operation whose first input spent `sender` is authorized.
    pub fn authorizes(&self, sender: Option<&TxOut>) -> bool {
        sender.is_some_and(|s| s.script_pubkey == self.authority)
    }

    /// Whether `opcode` is one of the three.
    pub fn is_migration_opcode(&self, opcode: u8) -> bool {
        self.opcodes().contains(&opcode)
    }
}

/// The announcement a chain has accepted and not yet bound: the block it came in and its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAnnouncement {
    /// The (virtual) height of the block that accepted it.
    pub height: u64,
    /// Its body ([`Announcement::encode`]).
    pub body: Vec<u8>,
}

impl Stored for PendingAnnouncement {
    const KIND: &'static str = "migration announcement";
    const VERSION: u8 = 1;
}

/// The pending announcement in `state`, if any: the height it came in and what it says.
pub fn pending_announcement(
    state: &impl StateRead,
) -> Result<Option<(u64, Announcement)>, StoreError> {
    let Some(p) = state.get(&PENDING, &ANNOUNCEMENT_KEY.to_owned())? else {
        return Ok(None);
    };
    let ann = Announcement::decode(&p.body).map_err(|e| {
        StoreError::Inconsistent(format!("the pending migration announcement: {e}"))
    })?;
    Ok(Some((p.height, ann)))
}

/// The network magic of `network`, as chain identities carry it.
pub fn network_magic(network: Network) -> [u8; 4] {
    network.magic().to_bytes()
}

/// What the rules say about one migration operation in a block.
pub(crate) struct MigrationRules<'a> {
    pub policy: &'a MigrationPolicy,
    /// The first block of a segment a binding opened, at this virtual height, and its record.
    pub boundary: Option<(u64, BoundaryRecord)>,
}

impl MigrationRules<'_> {
    /// Applies one migration operation: its record, or why it was turned away. Writes the
    /// pending announcement (an accepted announcement) or removes it (the binding reveal).
    pub fn apply(
        &self,
        state: &mut (impl StateWriteExt + StateRead),
        ctx: &OpContext,
        bound: &mut bool,
    ) -> Result<Result<Vec<u8>, Reject>, StoreError> {
        let policy = self.policy;
        if !policy.authorizes(ctx.sender()) {
            return Ok(Err(Reject::new(
                "migration-unauthorized",
                "the first input does not spend the migration authority's script",
            )));
        }
        if ctx.opcode == policy.announce {
            let ann = match Announcement::decode(ctx.body()) {
                Ok(a) => a,
                Err(e) => return Ok(Err(Reject::new("malformed", e.to_string()))),
            };
            if ann.last_height < ctx.height {
                return Ok(Err(Reject::new(
                    "migration-past",
                    format!(
                        "the announcement names block {} as the last, before its own block {}",
                        ann.last_height, ctx.height
                    ),
                )));
            }
            if let Some((h, _)) = pending_announcement(state)? {
                return Ok(Err(Reject::new(
                    "migration-already-announced",
                    format!("the announcement of block {h} is pending"),
                )));
            }
            state.put(
                &PENDING,
                &ANNOUNCEMENT_KEY.to_owned(),
                &PendingAnnouncement {
                    height: ctx.height,
                    body: ctx.body().to_vec(),
                },
            )?;
            return Ok(Ok(ann.record()));
        }
        if ctx.opcode == policy.reveal
            && !*bound
            && let Some((h, record)) = &self.boundary
            && *h == ctx.height
            && Reveal::decode(ctx.body())
                .is_ok_and(|r| r.ch_a == record.ch_a && r.salt == record.salt)
        {
            *bound = true;
            state.delete(&PENDING, &ANNOUNCEMENT_KEY.to_owned());
            return Ok(Ok(record.encode()));
        }
        Ok(Err(Reject::new(
            "migration-not-binding",
            "commits and reveals count only through the binding of a pending announcement",
        )))
    }
}

/// Whether the block `input` carries the binding reveal of `record` (an authorized reveal of
/// its `ch_A` and salt).
pub(crate) fn carries_binding(
    recognizer: &Recognizer,
    policy: &MigrationPolicy,
    record: &BoundaryRecord,
    input: &Input,
) -> bool {
    input.txs.iter().any(|(_, tx, spent)| {
        migration_body(recognizer, policy, tx, spent.as_deref(), policy.reveal)
            .and_then(|b| Reveal::decode(b).ok())
            .is_some_and(|r| r.ch_a == record.ch_a && r.salt == record.salt)
    })
}

/// The body of `tx`'s migration operation with `opcode`, when it is one and authorized.
fn migration_body<'t>(
    recognizer: &Recognizer,
    policy: &MigrationPolicy,
    tx: &'t Transaction,
    spent: Option<&[TxOut]>,
    opcode: u8,
) -> Option<&'t [u8]> {
    let (_, op, payload) = recognizer.payload(tx)?;
    if op != opcode || !policy.authorizes(spent.and_then(|s| s.first())) {
        return None;
    }
    payload.get(recognizer.format.magic().len() + 1..)
}

/// What a search for the binding on the target chain found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingSearch {
    /// The source is not the announced chain.
    WrongChain(String),
    /// The anchor is not on the source's best chain.
    NoAnchor,
    /// No matching reveal has `K` confirmations yet.
    NotYet,
    /// The binding: the first matching reveal in chain order, final.
    Found(BoundaryRecord),
}

/// Searches `target` for the binding of `ann`, whose last block's consensus hash is `ch_a`
/// (`docs/migration.md` section 5).
pub(crate) fn find_binding(
    target: &Source,
    recognizer: &Recognizer,
    config: &EngineConfig,
    policy: &MigrationPolicy,
    ann: &Announcement,
    ch_a: &Hash256,
) -> Result<BindingSearch, EngineError> {
    let chain = target.chain();
    let want = ann.target;
    let magic = network_magic(chain.network());
    let genesis = Hash256(chain.block_hash(0)?.to_byte_array());
    if magic != want.magic || genesis != want.genesis {
        let have = ChainId { magic, genesis };
        return Ok(BindingSearch::WrongChain(format!(
            "the source serves chain {have}, the announcement names {want}"
        )));
    }
    let tip = chain.tip()?.height;
    let Some(anchor) = height_of(chain, &ann.anchor, tip)? else {
        return Ok(BindingSearch::NoAnchor);
    };
    let Some(last) = (tip + 1).checked_sub(policy.confirmations.max(1)) else {
        return Ok(BindingSearch::NotYet);
    };
    if last <= anchor {
        return Ok(BindingSearch::NotYet);
    }
    let mut commits: Vec<(PendingCommit, Hash256)> = Vec::new();
    for item in crate::engine::fetch_range(target, recognizer, config, anchor + 1, last) {
        let input = item?;
        for (_, tx, spent) in &input.txs {
            let spent = spent.as_deref();
            if let Some(body) = migration_body(recognizer, policy, tx, spent, policy.commit)
                && let Ok(commitment) = decode_commit(body)
            {
                let txid = Hash256(tx.compute_txid().to_byte_array());
                let commit = PendingCommit {
                    height: input.height,
                    commitment,
                };
                commits.push((commit, txid));
                continue;
            }
            let Some(reveal) = migration_body(recognizer, policy, tx, spent, policy.reveal)
                .and_then(|b| Reveal::decode(b).ok())
            else {
                continue;
            };
            for (commit, commit_txid) in &commits {
                match reveal_matches(ann, ch_a, commit, &reveal, input.height, policy.window) {
                    Ok(()) => {
                        return Ok(BindingSearch::Found(BoundaryRecord {
                            announcement: *ann,
                            ch_a: *ch_a,
                            commit_height: commit.height,
                            commit_txid: *commit_txid,
                            reveal_height: input.height,
                            salt: reveal.salt,
                        }));
                    }
                    Err(why) => tracing::info!(
                        height = input.height,
                        txid = %tx.compute_txid(),
                        commit = commit.height,
                        "a migration reveal is refused: {why}"
                    ),
                }
            }
            if commits.is_empty() {
                tracing::info!(height = input.height, txid = %tx.compute_txid(), "a migration reveal is refused: no commit before it");
            }
        }
    }
    Ok(BindingSearch::NotYet)
}

/// The height of block `hash` on `chain`'s best chain, searched from `tip` down.
fn height_of(chain: &dyn ChainView, hash: &Hash256, tip: u64) -> Result<Option<u64>, EngineError> {
    const BATCH: u64 = 1000;
    let mut hi = tip;
    loop {
        let lo = hi.saturating_sub(BATCH - 1);
        let count = usize::try_from(hi - lo + 1).unwrap_or(usize::MAX);
        let headers = chain.headers(lo, count)?;
        if let Some(i) = headers
            .iter()
            .position(|h| h.block_hash().to_byte_array() == hash.0)
        {
            return Ok(Some(lo + i as u64));
        }
        if lo == 0 {
            return Ok(None);
        }
        hi = lo - 1;
    }
}

/// A chain shown at virtual heights: the chain's block `chain_first` is virtual height
/// `first_height`, and nothing below it is shown.
pub(crate) struct Shifted<S: ?Sized> {
    pub inner: Arc<S>,
    pub first_height: u64,
    pub chain_first: u64,
}

impl<S: ?Sized> Shifted<S> {
    fn real(&self, height: u64) -> Result<u64, SourceError>
    where
        S: ChainView,
    {
        height
            .checked_sub(self.first_height)
            .and_then(|o| self.chain_first.checked_add(o))
            .ok_or_else(|| SourceError::NotFound {
                source_name: self.inner.name(),
                what: format!(
                    "virtual height {height}, below the segment that starts at {}",
                    self.first_height
                ),
            })
    }
}

/// The target chain as the engine reads it after the binding.
pub(crate) fn shifted_source(source: &Source, first_height: u64, chain_first: u64) -> Source {
    match source {
        Source::Blocks(b) => Source::Blocks(Arc::new(Shifted {
            inner: Arc::clone(b),
            first_height,
            chain_first,
        })),
        Source::Watched(w) => Source::Watched(Arc::new(Shifted {
            inner: Arc::clone(w),
            first_height,
            chain_first,
        })),
    }
}

impl<S: ChainView + ?Sized> ChainView for Shifted<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn network(&self) -> Network {
        self.inner.network()
    }

    /// The tip at its virtual height; below the segment's first block, the height before it.
    fn tip(&self) -> Result<ChainTip, SourceError> {
        let t = self.inner.tip()?;
        let height = match t.height.checked_sub(self.chain_first) {
            Some(o) => self.first_height.saturating_add(o),
            None => self.first_height.saturating_sub(1),
        };
        Ok(ChainTip {
            height,
            hash: t.hash,
        })
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        self.inner.block_hash(self.real(height)?)
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        self.inner.headers(self.real(start)?, count)
    }
}

impl<S: BlockSource + ?Sized> BlockSource for Shifted<S> {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        self.inner.block(hash)
    }

    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        self.inner.spent_outputs(hash, block)
    }

    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        self.inner.block_bytes(hash, buf)
    }

    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        self.inner.spent_outputs_at(hash, inputs, positions)
    }
}

impl<S: WatchSource + ?Sized> WatchSource for Shifted<S> {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        let mut block = self.inner.watched(self.real(height)?, scripts, select)?;
        block.height = height;
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_policy_round_trips_and_refuses_other_bytes() {
        let p = MigrationPolicy::new(ScriptBuf::from_bytes(vec![0x00, 0x14, 7, 7]))
            .with_confirmations(3)
            .with_window(4);
        let bytes = p.encode();
        assert_eq!(MigrationPolicy::decode(&bytes), Ok(p));
        assert!(MigrationPolicy::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(MigrationPolicy::decode(&bytes[..10]).is_err());
        let mut v = bytes;
        v[0] = 2;
        assert_eq!(MigrationPolicy::decode(&v), Err(PolicyError::Version(2)));
    }
}
