//! What hooks see: a block, an operation's transaction context, and the state being written.

use core::cell::OnceCell;

use bitcoin::{BlockHash, OutPoint, TxOut, Txid};
use vc_chash::{ConsensusHash, Seeds};
use vc_codec::storage::Stored;
use vc_store::{BlockWriter, Namespace, StateKey, StoreError};

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
/// so far. Hooks that may not change state ([`crate::Application::check`]) get a shared
/// reference, which only allows reads.
pub struct BlockState<'b, 'w, 's> {
    pub(crate) writer: &'b mut BlockWriter<'w, 's>,
    pub(crate) info: BlockInfo,
    pub(crate) staleness: u64,
    pub(crate) seeds: &'b Seeds,
    /// [`BlockState::fresh_hashes`], read once per block: earlier blocks' hashes cannot change
    /// while this one is applied, and every operation naming a consensus hash asks.
    pub(crate) fresh: OnceCell<Vec<(u64, ConsensusHash)>>,
}

impl core::fmt::Debug for BlockState<'_, '_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockState")
            .field("block", &self.info)
            .finish_non_exhaustive()
    }
}

impl BlockState<'_, '_, '_> {
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
        self.writer.get(ns, key)
    }

    /// The entries of `ns` from `start` (inclusive) to `end` (exclusive), in key order.
    pub fn range<K: StateKey, V: Stored>(
        &self,
        ns: &Namespace<K, V>,
        start: Option<&K>,
        end: Option<&K>,
    ) -> Result<Vec<(K, V)>, StoreError> {
        self.writer.range(ns, start, end)
    }

    /// Sets `key` in `ns` to `value`.
    pub fn put<K: StateKey, V: Stored>(
        &mut self,
        ns: &Namespace<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        self.writer.put(ns, key, value)
    }

    /// Removes `key` from `ns`.
    pub fn delete<K: StateKey, V: Stored>(&mut self, ns: &Namespace<K, V>, key: &K) {
        self.writer.delete(ns, key)
    }

    /// The consensus hash of an earlier block (or the seed hash at a height without a block).
    pub fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, StoreError> {
        if height >= self.info.height {
            return Ok(None);
        }
        match self.writer.consensus_hash(height)? {
            Some(ch) => Ok(Some(ch)),
            None => Ok(self.seeds.get(height).copied()),
        }
    }

    /// The consensus hashes a payload in this block may name: those of blocks
    /// `[height - S, height - 1]` (and seed hashes there), nearest first.
    pub fn fresh_hashes(&self) -> Result<Vec<(u64, ConsensusHash)>, StoreError> {
        Ok(self.fresh_list()?.to_vec())
    }

    fn fresh_list(&self) -> Result<&[(u64, ConsensusHash)], StoreError> {
        if let Some(list) = self.fresh.get() {
            return Ok(list);
        }
        let list = self.read_fresh()?;
        Ok(self.fresh.get_or_init(|| list))
    }

    fn read_fresh(&self) -> Result<Vec<(u64, ConsensusHash)>, StoreError> {
        let height = self.info.height;
        let lowest = height.saturating_sub(self.staleness);
        let mut out = Vec::new();
        for h in (lowest..height).rev() {
            if let Some(seed) = self.seeds.get(h) {
                out.push((h, *seed));
            }
            if let Some(ch) = self.writer.consensus_hash(h)? {
                out.push((h, ch));
            }
        }
        Ok(out)
    }

    /// Whether `ch`, named by an operation in this block, is fresh: the consensus hash (or a
    /// seed hash) of a block in `[height - S, height - 1]`.
    pub fn is_fresh(&self, ch: &ConsensusHash) -> Result<bool, StoreError> {
        Ok(self.fresh_list()?.iter().any(|(_, c)| c == ch))
    }
}
