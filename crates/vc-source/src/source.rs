//! The `BlockSource` trait and what it returns.

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction, TxOut, Txid};

use crate::error::SourceError;

/// The best chain's tip as a source sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTip {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
}

/// A block with the size of its serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedBlock {
    /// The parsed block.
    pub block: Block,
    /// Its serialized size in bytes.
    pub size: usize,
}

/// The outputs a block's inputs spend: one list per transaction, in block order, with one
/// output per input in input order. The coinbase's list is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpentOutputs(pub Vec<Vec<TxOut>>);

impl SpentOutputs {
    /// Checks the shape against `block`: one list per transaction, one output per input, none
    /// for the coinbase.
    pub fn check_shape(&self, block: &Block) -> Result<(), String> {
        check_spent_shape(block, &self.0)
    }
}

/// [`SpentOutputs::check_shape`] on borrowed lists.
pub(crate) fn check_spent_shape(block: &Block, spent: &[Vec<TxOut>]) -> Result<(), String> {
    if spent.len() != block.txdata.len() {
        return Err(format!(
            "{} spent-output lists for {} transactions",
            spent.len(),
            block.txdata.len()
        ));
    }
    for (i, (tx, spent)) in block.txdata.iter().zip(spent).enumerate() {
        let want = if i == 0 { 0 } else { tx.input.len() };
        if spent.len() != want {
            return Err(format!(
                "transaction {i} ({}) has {} inputs but {} spent outputs",
                tx.compute_txid(),
                want,
                spent.len()
            ));
        }
    }
    Ok(())
}

/// Which transactions a source can deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Whole blocks: every transaction, so every operation (Core, blk files).
    Blocks,
    /// Only the transactions that pay scripts the caller watches, each proven
    /// to be in its block (Electrum). An application can use such a source only if every
    /// operation it accepts pays one of its marker scripts.
    Watched,
}

/// A transaction a source found in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedTx {
    /// Its position in the block (0 is the coinbase).
    pub index: u32,
    /// The transaction.
    pub tx: Transaction,
    /// The outputs its inputs spend, in input order; `None` when the caller's selector
    /// declined it (or for the coinbase).
    pub spent: Option<Vec<TxOut>>,
}

/// What a source delivers for one block in watched mode: the header and the transactions that
/// pay the watched scripts, in block order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedBlock {
    /// The block's height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its header.
    pub header: Header,
    /// The watched transactions, by position.
    pub txs: Vec<WatchedTx>,
}

/// Whether one of `tx`'s outputs pays one of `scripts`.
pub fn pays(tx: &Transaction, scripts: &[ScriptBuf]) -> bool {
    tx.output.iter().any(|o| scripts.contains(&o.script_pubkey))
}

/// A source of Bitcoin blocks and the outputs they spend.
///
/// The trait is **synchronous** and its implementations are `Send + Sync`: the client libraries
/// underneath (`bitcoincore-rpc`, `electrum-client`) and file reads block anyway, and a
/// synchronous trait keeps applications free to use any async runtime or none. Parallelism comes
/// from calling one source from several threads (each backend caps its own concurrency; see
/// [`crate::prefetch`] for an ordered, memory-bounded pipeline over a range of heights).
pub trait BlockSource: Send + Sync {
    /// A short name for logs and errors (`core-rest`, `core-rpc`, `blk-files`).
    fn name(&self) -> &'static str;

    /// The network the source serves.
    fn network(&self) -> Network;

    /// The best chain's tip.
    fn tip(&self) -> Result<ChainTip, SourceError>;

    /// The hash of the best chain's block at `height`.
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError>;

    /// `count` headers of the best chain from `start`, checked to link to each other.
    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError>;

    /// The block `hash`, checked to hash to `hash`.
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError>;

    /// The outputs spent by `block` (whose hash is `hash`), checked against its shape.
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError>;

    /// Which transactions the source can deliver. [`Coverage::Blocks`] sources serve
    /// [`BlockSource::block`]; a [`Coverage::Watched`] source serves only
    /// [`BlockSource::watched`].
    fn coverage(&self) -> Coverage {
        Coverage::Blocks
    }

    /// The block at `height` on the source's best chain, reduced to the transactions whose
    /// outputs pay one of `scripts`, with spent outputs for those `select` picks.
    ///
    /// A [`Coverage::Watched`] source finds them through the scripts' histories and proves each
    /// one against the header; this default reads the whole block, so that every source can be
    /// compared with a watching one.
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        let hash = self.block_hash(height)?;
        let fetched = self.block(&hash)?;
        let block = fetched.block;
        let positions: Vec<usize> = block
            .txdata
            .iter()
            .enumerate()
            .filter(|(_, tx)| pays(tx, scripts))
            .map(|(i, _)| i)
            .collect();
        let needs_spent = positions.iter().any(|&i| i > 0 && select(&block.txdata[i]));
        let mut spent = if needs_spent {
            Some(self.spent_outputs(&hash, &block)?.0)
        } else {
            None
        };
        let txs = positions
            .into_iter()
            .map(|i| {
                let tx = &block.txdata[i];
                let spent = match spent.as_mut() {
                    Some(all) if i > 0 && select(tx) => Some(std::mem::take(&mut all[i])),
                    _ => None,
                };
                WatchedTx {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    tx: tx.clone(),
                    spent,
                }
            })
            .collect();
        Ok(WatchedBlock {
            height,
            hash,
            header: block.header,
            txs,
        })
    }

    /// Broadcasts a transaction, where the backend can.
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, SourceError> {
        let _ = tx;
        Err(SourceError::Unsupported {
            source_name: self.name(),
            operation: "broadcasting",
        })
    }
}

/// Checks that `headers` link to each other (and the first to `prev`, when given).
pub fn check_linked(
    source_name: &'static str,
    start: u64,
    prev: Option<BlockHash>,
    headers: &[Header],
) -> Result<(), SourceError> {
    let mut expected = prev;
    for (i, h) in headers.iter().enumerate() {
        if let Some(e) = expected
            && h.prev_blockhash != e
        {
            return Err(SourceError::Mismatch {
                source_name,
                detail: format!(
                    "header at height {} has parent {}, expected {e}: the header chain does not link",
                    start + i as u64,
                    h.prev_blockhash
                ),
            });
        }
        expected = Some(h.block_hash());
    }
    Ok(())
}
