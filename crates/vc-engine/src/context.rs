//! What hooks see: a block, an operation's transaction context, and the state being written.

use core::cell::OnceCell;

use bitcoin::{BlockHash, OutPoint, TxOut, Txid, Witness};
use vc_chash::{ConsensusHash, Seeds};
use vc_codec::record::Record;
use vc_codec::storage::Stored;
use vc_store::{Namespace, StateAccess, StateKey, StateReadExt, StateWriteExt, StoreError};

/// The block being processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its header's timestamp (consensus data from the block, not the wall clock).
    pub time: u32,
}

/// One candidate operation's transaction context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpContext {
    /// The block's height.
    pub height: u64,
    /// The transaction id.
    pub txid: Txid,
    /// The transaction's position in the Bitcoin block (coinbase = 0).
    pub txindex: u32,
    /// The operation's position among the block's parsed operations.
    pub vtxindex: u32,
    /// The opcode byte.
    pub opcode: u8,
    /// The whole payload: magic, opcode, body.
    pub payload: Vec<u8>,
    /// The index of the OP_RETURN output that carried the payload.
    pub carrier_vout: u32,
    /// The outpoints the inputs spend, in input order.
    pub inputs: Vec<OutPoint>,
    /// The outputs the inputs spend ("senders"), in input order: value and scriptPubKey.
    pub senders: Vec<TxOut>,
    /// The transaction's outputs.
    pub outputs: Vec<TxOut>,
    /// The inputs' witnesses, in input order (empty for an input without one), when the
    /// application declares that it reads them ([`crate::AppSpec::with_witnesses`]); empty
    /// otherwise. Txids do not cover witnesses: for such an application the source checks
    /// every block where an operation has a witness against the coinbase's witness commitment
    /// (BIP141), and a watching source (Electrum), which cannot prove them, is refused.
    pub witnesses: Vec<Witness>,
    /// Sum of spent values minus sum of output values, in satoshis.
    pub fee: u64,
    pub(crate) body_start: usize,
}

impl OpContext {
    /// The payload after magic and opcode.
    pub fn body(&self) -> &[u8] {
        self.payload.get(self.body_start..).unwrap_or_default()
    }

    /// The spent output of input 0: the operation's principal in most applications.
    pub fn sender(&self) -> Option<&TxOut> {
        self.senders.first()
    }
}

/// The state while a block is applied: reads see the committed state plus this block's changes
/// so far. A hook gets `&mut State`; its writes and emitted records belong to the operation
/// being applied, and the engine takes them back if the operation is rejected.
pub struct State<'a> {
    access: &'a mut (dyn StateAccess + 'a),
    info: BlockInfo,
    staleness: u64,
    seeds: &'a Seeds,
    /// [`State::fresh_hashes`], read once per block: earlier blocks' hashes cannot change while
    /// this one is applied, and every operation naming a consensus hash asks.
    fresh: &'a OnceCell<Vec<(u64, ConsensusHash)>>,
    records: Vec<Record>,
}

impl core::fmt::Debug for State<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("block", &self.info)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

/// What a block's hooks share: the block, its freshness window and the seeds.
pub(crate) struct BlockScope<'a> {
    pub info: BlockInfo,
    pub staleness: u64,
    pub seeds: &'a Seeds,
    pub fresh: OnceCell<Vec<(u64, ConsensusHash)>>,
}

impl<'a> State<'a> {
    pub(crate) fn new(access: &'a mut (dyn StateAccess + 'a), scope: &'a BlockScope<'a>) -> Self {
        State {
            access,
            info: scope.info,
            staleness: scope.staleness,
            seeds: scope.seeds,
            fresh: &scope.fresh,
            records: Vec::new(),
        }
    }

    /// The records emitted so far.
    pub(crate) fn into_records(self) -> Vec<Record> {
        self.records
    }

    /// The block being applied.
    pub fn block(&self) -> &BlockInfo {
        &self.info
    }

    /// The value at `key` in `ns`.
    pub fn get<K: StateKey, V: Stored>(
        &self,
        ns: &Namespace<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        self.access.get(ns, key)
    }

    /// The entries of `ns` from `start` (inclusive) to `end` (exclusive), in key order.
    pub fn range<K: StateKey, V: Stored>(
        &self,
        ns: &Namespace<K, V>,
        start: Option<&K>,
        end: Option<&K>,
    ) -> Result<Vec<(K, V)>, StoreError> {
        self.access.range(ns, start, end)
    }

    /// Sets `key` in `ns` to `value`.
    pub fn put<K: StateKey, V: Stored>(
        &mut self,
        ns: &Namespace<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.access.put(ns, key, value)
    }

    /// Removes `key` from `ns`.
    pub fn delete<K: StateKey, V: Stored>(&mut self, ns: &Namespace<K, V>, key: &K) {
        self.access.delete(ns, key)
    }

    /// The state as raw bytes (for an application that is itself an interpreter, such as a
    /// virtual machine whose guest names its namespaces at run time).
    pub fn raw(&mut self) -> &mut (dyn StateAccess + 'a) {
        self.access
    }

    /// Commits `record` for the operation being applied: the block's ops hash covers every
    /// accepted operation's records, in order.
    pub fn emit(&mut self, record: Record) {
        self.records.push(record);
    }

    /// The consensus hash of an earlier block (or the seed hash at a height without a block).
    pub fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, StoreError> {
        if height >= self.info.height {
            return Ok(None);
        }
        match self.access.consensus_hash(height)? {
            Some(ch) => Ok(Some(ch)),
            None => Ok(self.seeds.get(height).copied()),
        }
    }

    /// The consensus hashes a payload in this block may name: those of blocks
    /// `[height - S, height - 1]` (and seed hashes there), nearest first
    /// ([`vc_chash::fresh::window`]).
    pub fn fresh_hashes(&self) -> Result<&[(u64, ConsensusHash)], StoreError> {
        if let Some(list) = self.fresh.get() {
            return Ok(list);
        }
        let list = vc_chash::fresh::window(
            |h| self.access.consensus_hash(h),
            self.seeds,
            self.staleness,
            self.info.height,
        )?;
        Ok(self.fresh.get_or_init(|| list))
    }

    /// Whether `ch`, named by an operation in this block, is fresh: the consensus hash (or a
    /// seed hash) of a block in `[height - S, height - 1]`.
    pub fn is_fresh(&self, ch: &ConsensusHash) -> Result<bool, StoreError> {
        Ok(self.fresh_hashes()?.iter().any(|(_, c)| c == ch))
    }
}
