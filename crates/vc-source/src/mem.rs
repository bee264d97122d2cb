//! An in-memory chain: a [`BlockSource`] over blocks held as plain data, with helpers to mine,
//! fork, reorganise and keep stale branches. For tests of anything that reads a source (the
//! engine above all): no node, no files, and a reorganisation is one method call.
//!
//! ```
//! use vc_source::{BlockSource, ChainView};
//! use vc_source::mem::MemoryChain;
//!
//! let chain = MemoryChain::new(bitcoin::Network::Regtest);
//! chain.mine(10);                           // heights 1..=10 on top of genesis
//! let old = chain.tip()?;
//! chain.reorg(3, 4);                        // replace the top 3 blocks with 4 new ones
//! assert_eq!(chain.tip()?.height, 11);
//! assert_ne!(chain.block_hash(10)?, old.hash);
//! assert!(chain.block(&old.hash).is_ok());  // stale blocks stay fetchable by hash
//! # Ok::<(), vc_source::SourceError>(())
//! ```
//!
//! Blocks are well formed (each header commits its transactions' merkle root and links to its
//! parent) but carry no proof of work. A transaction may spend any output of any transaction
//! the chain has ever held, on any branch: the source answers spent outputs by outpoint, as
//! Bitcoin Core's undo data would, and checks neither double spends nor amounts.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Txid, Witness, absolute, transaction,
};

use crate::error::SourceError;
use crate::source::{BlockSource, ChainTip, ChainView, FetchedBlock, SpentOutputs, WatchBlocks};

const NAME: &str = "memory";

#[derive(Debug, Default)]
struct Inner {
    /// Every block ever mined, by hash.
    blocks: BTreeMap<BlockHash, Arc<Block>>,
    /// Every transaction ever mined, by txid (for spent outputs).
    txs: BTreeMap<Txid, Transaction>,
    /// The best chain: `best[h]` is the block at height `h`.
    best: Vec<BlockHash>,
    /// A counter that makes every coinbase (and so every block) unique.
    nonce: u64,
}

/// An in-memory chain that is also a [`BlockSource`]. Cheap to clone: clones share the chain,
/// so a test keeps one handle to change the chain while an engine reads through another.
#[derive(Clone, Debug)]
pub struct MemoryChain {
    network: Network,
    inner: Arc<RwLock<Inner>>,
}

impl MemoryChain {
    /// A chain holding only a genesis block (height 0).
    pub fn new(network: Network) -> Self {
        let chain = MemoryChain {
            network,
            inner: Arc::default(),
        };
        chain.push(Vec::new());
        chain
    }

    /// The same chain seen as a watching source (like an Electrum server): an engine then gets
    /// only the transactions paying its marker scripts.
    pub fn watching(&self) -> WatchBlocks<MemoryChain> {
        WatchBlocks(self.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-changed in a way that
        // matters to readers (every change is one push or truncate), so a poisoned lock is
        // still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The coinbase of a new block at `height`: unique (it commits a counter in its script
    /// sig), paying 50 BTC to a script that differs per block.
    fn coinbase(height: u64, nonce: u64) -> Transaction {
        let mut sig = height.to_le_bytes().to_vec();
        sig.extend_from_slice(&nonce.to_le_bytes());
        let payee = bitcoin::hashes::hash160::Hash::hash(&nonce.to_le_bytes());
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(sig),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(5_000_000_000),
                script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                    payee.to_byte_array(),
                )),
            }],
        }
    }

    /// Mines a block with `txs` (after a coinbase the chain adds) on the best tip, and returns
    /// its hash. When a transaction has a witness, the coinbase commits to the witnesses as
    /// BIP141 says (a reserved value of zeros and an `OP_RETURN` output with the commitment).
    pub fn push(&self, txs: Vec<Transaction>) -> BlockHash {
        let mut inner = self.write();
        let height = inner.best.len() as u64;
        let prev = inner
            .best
            .last()
            .copied()
            .unwrap_or_else(BlockHash::all_zeros);
        inner.nonce += 1;
        let mut txdata = vec![Self::coinbase(height, inner.nonce)];
        txdata.extend(txs);
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_600_000_000 + u32::try_from(height).unwrap_or(u32::MAX),
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: u32::try_from(inner.nonce & 0xffff_ffff).unwrap_or(0),
            },
            txdata,
        };
        if block
            .txdata
            .iter()
            .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()))
            && let Some(root) = block.witness_root()
        {
            // The coinbase's wtxid counts as zeros in the witness root, so it may change after.
            let reserved = [0u8; 32];
            let commitment = Block::compute_witness_commitment(&root, &reserved);
            let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
            script.extend_from_slice(commitment.as_byte_array());
            if let Some(coinbase) = block.txdata.first_mut() {
                coinbase.output.push(TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(script),
                });
                if let Some(input) = coinbase.input.first_mut() {
                    input.witness = Witness::from_slice(&[reserved]);
                }
            }
        }
        block.header.merkle_root = block
            .compute_merkle_root()
            .unwrap_or_else(TxMerkleNode::all_zeros);
        let hash = block.block_hash();
        for tx in &block.txdata {
            inner.txs.insert(tx.compute_txid(), tx.clone());
        }
        inner.blocks.insert(hash, Arc::new(block));
        inner.best.push(hash);
        hash
    }

    /// Mines `n` empty blocks.
    pub fn mine(&self, n: usize) {
        for _ in 0..n {
            self.push(Vec::new());
        }
    }

    /// Drops the best chain's blocks above `height`; they stay stored as a stale branch
    /// (fetchable by hash, as Bitcoin Core keeps them). Returns their hashes, lowest first.
    pub fn truncate(&self, height: u64) -> Vec<BlockHash> {
        let mut inner = self.write();
        let keep = usize::try_from(height.saturating_add(1)).unwrap_or(usize::MAX);
        if keep >= inner.best.len() {
            return Vec::new();
        }
        inner.best.split_off(keep)
    }

    /// A reorganisation: replaces the top `depth` blocks with `new` empty blocks. Returns the
    /// replaced (now stale) blocks.
    pub fn reorg(&self, depth: u64, new: usize) -> Vec<BlockHash> {
        let tip = self.height();
        let stale = self.truncate(tip.saturating_sub(depth));
        self.mine(new);
        stale
    }

    /// Makes a stored branch the best chain again: `blocks` (lowest first, as
    /// [`MemoryChain::truncate`] returned them) must start on a block of the best chain; the
    /// best chain is cut there and the branch put on top. Returns the blocks it replaced.
    pub fn switch_to(&self, blocks: &[BlockHash]) -> Result<Vec<BlockHash>, SourceError> {
        let mut inner = self.write();
        let Some(first) = blocks.first().and_then(|h| inner.blocks.get(h)) else {
            return Err(SourceError::NotFound {
                source_name: NAME,
                what: "the branch's first block".into(),
            });
        };
        let parent = first.header.prev_blockhash;
        let Some(at) = inner.best.iter().position(|h| *h == parent) else {
            return Err(SourceError::Mismatch {
                source_name: NAME,
                detail: format!("the branch's parent {parent} is not on the best chain"),
            });
        };
        let replaced = inner.best.split_off(at + 1);
        inner.best.extend_from_slice(blocks);
        Ok(replaced)
    }

    /// The best chain's height.
    pub fn height(&self) -> u64 {
        (self.read().best.len() as u64).saturating_sub(1)
    }

    /// The best chain's block at `height`.
    pub fn block_at(&self, height: u64) -> Option<Arc<Block>> {
        let inner = self.read();
        let hash = inner.best.get(usize::try_from(height).ok()?)?;
        inner.blocks.get(hash).cloned()
    }

    /// The outputs `tx`'s inputs spend, as far as the chain knows them.
    fn spent_by(inner: &Inner, tx: &Transaction) -> Result<Vec<TxOut>, SourceError> {
        tx.input
            .iter()
            .map(|i| {
                inner
                    .txs
                    .get(&i.previous_output.txid)
                    .and_then(|t| {
                        t.output
                            .get(usize::try_from(i.previous_output.vout).ok()?)
                            .cloned()
                    })
                    .ok_or_else(|| SourceError::NotFound {
                        source_name: NAME,
                        what: format!("the output {} spends", i.previous_output),
                    })
            })
            .collect()
    }
}

impl ChainView for MemoryChain {
    fn name(&self) -> &'static str {
        NAME
    }

    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let inner = self.read();
        let hash = inner
            .best
            .last()
            .copied()
            .ok_or_else(|| SourceError::NotFound {
                source_name: NAME,
                what: "a genesis block".into(),
            })?;
        Ok(ChainTip {
            height: (inner.best.len() as u64).saturating_sub(1),
            hash,
        })
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        let inner = self.read();
        usize::try_from(height)
            .ok()
            .and_then(|h| inner.best.get(h))
            .copied()
            .ok_or(SourceError::PastTip {
                source_name: NAME,
                height,
                tip: (inner.best.len() as u64).saturating_sub(1),
            })
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        let inner = self.read();
        (start..start.saturating_add(count as u64))
            .map(|h| {
                usize::try_from(h)
                    .ok()
                    .and_then(|i| inner.best.get(i))
                    .and_then(|hash| inner.blocks.get(hash))
                    .map(|b| b.header)
                    .ok_or(SourceError::PastTip {
                        source_name: NAME,
                        height: h,
                        tip: (inner.best.len() as u64).saturating_sub(1),
                    })
            })
            .collect()
    }
}

impl BlockSource for MemoryChain {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        let block = self
            .read()
            .blocks
            .get(hash)
            .cloned()
            .ok_or_else(|| SourceError::NotFound {
                source_name: NAME,
                what: format!("block {hash}"),
            })?;
        let block = Block::clone(&block);
        let size = bitcoin::consensus::serialize(&block).len();
        Ok(FetchedBlock::new(block, size))
    }

    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        let inner = self.read();
        if !inner.blocks.contains_key(hash) {
            return Err(SourceError::NotFound {
                source_name: NAME,
                what: format!("block {hash}"),
            });
        }
        let mut out = Vec::with_capacity(block.txdata.len());
        for (i, tx) in block.txdata.iter().enumerate() {
            out.push(if i == 0 {
                Vec::new()
            } else {
                Self::spent_by(&inner, tx)?
            });
        }
        Ok(SpentOutputs(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stale_branches_come_back() {
        let chain = MemoryChain::new(Network::Regtest);
        chain.mine(5);
        let old_tip = chain.tip().unwrap();
        let stale = chain.reorg(2, 3);
        assert_eq!(stale.len(), 2);
        assert_eq!(chain.height(), 6);
        assert_eq!(*stale.last().unwrap(), old_tip.hash);
        let replaced = chain.switch_to(&stale).unwrap();
        assert_eq!(replaced.len(), 3);
        assert_eq!(chain.tip().unwrap(), old_tip);
        let headers = chain.headers(0, 6).unwrap();
        crate::check_linked(NAME, 0, None, &headers).unwrap();
        for h in 0..=5 {
            let hash = chain.block_hash(h).unwrap();
            let b = chain.block(&hash).unwrap().block;
            assert_eq!(b.block_hash(), hash);
            assert!(b.check_merkle_root());
        }
        assert!(chain.block_hash(6).is_err());
    }

    #[test]
    fn spent_outputs_are_found_by_outpoint() {
        let chain = MemoryChain::new(Network::Regtest);
        chain.mine(1);
        let funding = chain.block_at(1).unwrap().txdata[0].clone();
        let spend = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(funding.compute_txid(), 0),
                ..TxIn::default()
            }],
            output: vec![],
        };
        let hash = chain.push(vec![spend]);
        let block = chain.block(&hash).unwrap().block;
        let spent = chain.spent_outputs(&hash, &block).unwrap();
        assert_eq!(spent.0, vec![vec![], vec![funding.output[0].clone()]]);
        spent.check_shape(&block).unwrap();
    }
}
