//! Proofs straight from the store: [`View`] implements [`vc_chash::History`].

use vc_chash::history::History;
use vc_chash::{ConsensusHash, Hash256, Scheme};

use crate::error::{DbContext, StoreError};
use crate::schema::MMR;
use crate::store::View;

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
