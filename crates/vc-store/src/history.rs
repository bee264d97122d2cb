//! Proofs straight from the store: [`View`] implements [`vc_chash::History`], and serves v3
//! state proofs from the state tree (the newest, or an earlier one rebuilt from the undo logs).

use vc_chash::history::History;
use vc_chash::state::proof::{StateProof, StateProveError};
use vc_chash::{ConsensusHash, Hash256, Scheme};

use crate::error::{DbContext, StoreError};
use crate::schema::{MMR, STATE, UNDO};
use crate::state::{id_of, raw_key};
use crate::store::View;
use crate::tree::{self, SMT, STATE_ROOTS};

impl View {
    /// v3: the state root as of block `height`; `None` for a legacy or v2 store, or a height
    /// the chain does not have.
    pub fn tree_root(&self, height: u64) -> Result<Option<Hash256>, StoreError> {
        if !self.scheme.commits_state() {
            return Ok(None);
        }
        self.guard("reading the state root", || {
            let table = self
                .txn
                .open_table(STATE_ROOTS)
                .ctx("opening the state roots")?;
            tree::root_at(&table, height)
        })
    }

    /// v3: the proof that `key` of namespace `namespace` has its value as of block `target`
    /// (or is absent then), against the consensus hash at `trusted`. See
    /// [`vc_chash::state::proof`] for what a client checks.
    ///
    /// The tree after `target` is rebuilt from the undo logs of the blocks above it: that
    /// costs O(k log n) for the `k` changes they hold, with no limit here; a server answering
    /// strangers uses [`View::state_proof_within`].
    pub fn state_proof(
        &self,
        namespace: &str,
        key: &[u8],
        trusted: u64,
        target: u64,
    ) -> Result<StateProof, StoreError> {
        self.state_proof_within(namespace, key, trusted, target, u64::MAX)
    }

    /// [`View::state_proof`], refused with [`StoreError::StateTooCostly`] before any tree work
    /// when the blocks above `target` hold more than `max_changes` state changes.
    pub fn state_proof_within(
        &self,
        namespace: &str,
        key: &[u8],
        trusted: u64,
        target: u64,
        max_changes: u64,
    ) -> Result<StateProof, StoreError> {
        self.guard("building a state proof", || {
            let tip = match self.tip()? {
                Some(tip) if target <= tip.height => tip.height,
                // A height the chain does not have: prove() names it.
                _ => target,
            };
            let nodes = self.txn.open_table(SMT).ctx("opening the state tree")?;
            let undo = self.txn.open_table(UNDO).ctx("opening the undo table")?;
            let state = self.txn.open_table(STATE).ctx("opening the state table")?;
            let names = self.namespace_names()?;
            let earlier = tree::changed_since(&undo, names, target, tip, max_changes)?;
            let tree = tree::read_as_of(&nodes, &earlier)?;
            let raw = id_of(names, namespace).map(|id| raw_key(id, key));
            let mut value_error = None;
            let proof = vc_chash::state::proof::prove(
                self,
                &tree,
                |path| {
                    if let Some((_, value)) = earlier.get(path) {
                        return value.clone();
                    }
                    let raw = raw.as_ref()?;
                    match state.get(raw.as_slice()).ctx("reading state") {
                        Ok(v) => v.map(|v| v.value().to_vec()),
                        Err(e) => {
                            value_error = Some(e);
                            None
                        }
                    }
                },
                trusted,
                target,
                namespace.as_bytes(),
                key,
            );
            if let Some(e) = value_error {
                return Err(e);
            }
            proof.map_err(|e| match e {
                StateProveError::Chain(vc_chash::proof::ProveError::History(e))
                | StateProveError::Tree(vc_chash::state::TreeError::Store(e)) => e,
                other => StoreError::StateProof {
                    namespace: namespace.to_owned(),
                    key_hex: vc_chash::hex::encode(key),
                    height: target,
                    reason: other.to_string(),
                },
            })
        })
    }
}

impl History for View {
    type Error = StoreError;

    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn first_block(&self) -> u64 {
        self.first_block
    }

    fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, StoreError> {
        match self.chain_entry(height)? {
            Some(e) => self.consensus_hash_of(height, &e).map(Some),
            None => Ok(None),
        }
    }

    fn ops_hash(&self, height: u64) -> Result<Option<Hash256>, StoreError> {
        Ok(self.chain_entry(height)?.map(|e| Hash256(e.ops_hash)))
    }

    fn records(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        if self.chain_entry(height)?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.ops(height)?
                .into_iter()
                .flat_map(|op| op.records)
                .collect(),
        ))
    }

    fn block_hash(&self, height: u64) -> Result<Option<Hash256>, StoreError> {
        Ok(self.chain_entry(height)?.map(|e| Hash256(e.block_hash)))
    }

    /// v3: the root of the state tree as of `height` (`None` for other schemes, or a height
    /// the chain does not have).
    fn state_root(&self, height: u64) -> Result<Option<Hash256>, StoreError> {
        if self.chain_entry(height)?.is_none() {
            return Ok(None);
        }
        self.tree_root(height)
    }

    /// Read from the `mmr` table: proofs cost O(log n) reads.
    fn mmr_node(&self, level: u8, index: u64) -> Result<Option<Hash256>, StoreError> {
        self.guard("reading an accumulator node", || {
            let table = self.txn.open_table(MMR).ctx("opening the mmr table")?;
            Ok(table
                .get((level, index))
                .ctx("reading an accumulator node")?
                .map(|g| Hash256(g.value())))
        })
    }
}
