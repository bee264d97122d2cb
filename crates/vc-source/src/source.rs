//! The `BlockSource` trait and what it returns.

use std::sync::Arc;

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

/// A block with the size of its serialization, as a backend read it. Two are equal when their
/// blocks and sizes are, however they were checked.
#[derive(Clone, Debug)]
pub struct FetchedBlock {
    /// The parsed block.
    pub block: Block,
    /// Its serialized size in bytes.
    pub size: usize,
    /// Whether [`crate::body`] already checked its transactions against its header while
    /// decoding (then [`crate::valid`] need not hash them again).
    body_checked: bool,
}

impl PartialEq for FetchedBlock {
    fn eq(&self, other: &Self) -> bool {
        self.block == other.block && self.size == other.size
    }
}

impl Eq for FetchedBlock {}

impl FetchedBlock {
    /// A block whose body nobody has checked yet: [`crate::prefetch::Prefetch`] checks it.
    pub fn new(block: Block, size: usize) -> Self {
        FetchedBlock {
            block,
            size,
            body_checked: false,
        }
    }

    /// Decodes a serialized block; with `check_body`, checks its transactions against its
    /// header while decoding (the cheapest place: see [`crate::body`]), so that validation does
    /// not hash them again.
    pub fn decode(bytes: &[u8], check_body: bool) -> Result<Self, crate::body::BodyError> {
        Ok(FetchedBlock {
            block: crate::body::decode_block(bytes, check_body)?,
            size: bytes.len(),
            body_checked: check_body,
        })
    }

    /// Whether the body was checked while decoding.
    pub fn body_checked(&self) -> bool {
        self.body_checked
    }
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

/// A view of the best chain: its network, its tip, and its block hashes and headers by
/// height. Every source is one; it is all that reorganisation handling needs.
///
/// The traits are **synchronous** and implementations are `Send + Sync`: the client libraries
/// underneath (ureq for Core, `electrum-client`) and file reads block anyway, and a
/// synchronous trait keeps applications free to use any async runtime or none. Parallelism comes
/// from calling one source from several threads (each backend caps its own concurrency; see
/// [`crate::prefetch`] for an ordered, memory-bounded pipeline over a range of heights).
pub trait ChainView: Send + Sync {
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
}

/// A source of whole blocks and the outputs they spend (Bitcoin Core, its block files): every
/// transaction, so every operation.
///
/// Implementations fetch; they need not check. [`crate::prefetch::Prefetch`], the one way the
/// engine reads blocks, checks every block it hands out against the hash it asked for, its
/// merkle root, its transactions' uniqueness and its spent outputs' shape, whatever the
/// backend.
pub trait BlockSource: ChainView {
    /// The block `hash`.
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError>;

    /// The outputs spent by `block` (whose hash is `hash`): one list per transaction, in block
    /// order, with one output per input; none for the coinbase.
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError>;

    /// Replaces `buf`'s contents with block `hash`'s serialization and returns `true`, when the
    /// backend has the bytes (blk files, Core REST); returns `false` when it only gives decoded
    /// blocks (the default). [`crate::prefetch::Prefetch::scanned`] scans the bytes in place
    /// ([`crate::scan`]) and validates them; the buffer is reused from block to block.
    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        let _ = (hash, buf);
        Ok(false)
    }

    /// The outputs spent by the transactions at `positions` (ascending, never the coinbase's
    /// 0) of block `hash`, whose transactions have `inputs[i]` inputs each: one list per
    /// position, one output per input. The default reads the whole block and all its spent
    /// outputs ([`spent_outputs_via_block`]); a backend that can decode less overrides it.
    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        let _ = inputs;
        spent_outputs_via_block(self, hash, positions)
    }
}

/// [`BlockSource::spent_outputs_at`] the long way: the whole block, all its spent outputs, and
/// the lists at `positions` kept.
pub fn spent_outputs_via_block<S: BlockSource + ?Sized>(
    source: &S,
    hash: &BlockHash,
    positions: &[u32],
) -> Result<Vec<Vec<TxOut>>, SourceError> {
    let fetched = source.block(hash)?;
    let mut all = source.spent_outputs(hash, &fetched.block)?.0;
    positions
        .iter()
        .map(|&p| {
            all.get_mut(p as usize)
                .map(std::mem::take)
                .ok_or_else(|| SourceError::Mismatch {
                    source_name: source.name(),
                    detail: format!(
                        "block {hash} has {} transactions, no position {p}",
                        all.len()
                    ),
                })
        })
        .collect()
}

/// A source that delivers only the transactions paying scripts the caller watches, each proven
/// to be in its block (an Electrum server). An application can use one only if every operation
/// it accepts pays one of its marker scripts.
pub trait WatchSource: ChainView {
    /// The block at `height` on the source's best chain, reduced to the transactions whose
    /// outputs pay one of `scripts`, with spent outputs for those `select` picks.
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError>;
}

/// The writer side: a backend that can send a transaction to the network. Not part of reading
/// the chain.
pub trait Broadcaster {
    /// Broadcasts `tx` and returns its txid.
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, SourceError>;
}

impl<T: ChainView + ?Sized> ChainView for Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn network(&self) -> Network {
        (**self).network()
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        (**self).tip()
    }
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        (**self).block_hash(height)
    }
    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        (**self).headers(start, count)
    }
}

impl<T: BlockSource + ?Sized> BlockSource for Arc<T> {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        (**self).block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        (**self).spent_outputs(hash, block)
    }
    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        (**self).block_bytes(hash, buf)
    }
    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        (**self).spent_outputs_at(hash, inputs, positions)
    }
}

impl<T: WatchSource + ?Sized> WatchSource for Arc<T> {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        (**self).watched(height, scripts, select)
    }
}

/// Any block source seen as a watching one: it reads whole blocks and keeps the transactions
/// paying the watched scripts, so that every source can be compared with a watching one.
#[derive(Clone, Debug)]
pub struct WatchBlocks<S>(pub S);

impl<S: BlockSource> ChainView for WatchBlocks<S> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn network(&self) -> Network {
        self.0.network()
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.0.tip()
    }
    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        self.0.block_hash(height)
    }
    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        self.0.headers(start, count)
    }
}

impl<S: BlockSource> WatchSource for WatchBlocks<S> {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        let hash = self.0.block_hash(height)?;
        let fetched = self.0.block(&hash)?;
        crate::valid::check_block(self.0.name(), height, &hash, &fetched)?;
        let block = fetched.block;
        let positions: Vec<usize> = block
            .txdata
            .iter()
            .enumerate()
            .filter(|(_, tx)| pays(tx, scripts))
            .map(|(i, _)| i)
            .collect();
        let needs_spent = positions
            .iter()
            .any(|&i| i > 0 && block.txdata.get(i).is_some_and(select));
        let mut spent = if needs_spent {
            let spent = self.0.spent_outputs(&hash, &block)?;
            crate::valid::check_spent(self.0.name(), height, &block, &spent)?;
            Some(spent.0)
        } else {
            None
        };
        let txs = positions
            .into_iter()
            .filter_map(|i| {
                let tx = block.txdata.get(i)?;
                let spent = match spent.as_mut() {
                    Some(all) if i > 0 && select(tx) => all.get_mut(i).map(std::mem::take),
                    _ => None,
                };
                Some(WatchedTx {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    tx: tx.clone(),
                    spent,
                })
            })
            .collect();
        Ok(WatchedBlock {
            height,
            hash,
            header: block.header,
            txs,
        })
    }
}

/// What an engine reads: whole blocks, or watched transactions.
#[derive(Clone)]
pub enum Source {
    /// Whole blocks and their spent outputs.
    Blocks(Arc<dyn BlockSource>),
    /// Only the transactions paying watched scripts.
    Watched(Arc<dyn WatchSource>),
}

impl core::fmt::Debug for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Source::Blocks(s) => write!(f, "Source::Blocks({})", s.name()),
            Source::Watched(s) => write!(f, "Source::Watched({})", s.name()),
        }
    }
}

impl Source {
    /// A block source.
    pub fn blocks(source: impl BlockSource + 'static) -> Self {
        Source::Blocks(Arc::new(source))
    }

    /// A watching source.
    pub fn watched(source: impl WatchSource + 'static) -> Self {
        Source::Watched(Arc::new(source))
    }

    /// The chain view both kinds have.
    pub fn chain(&self) -> &dyn ChainView {
        match self {
            Source::Blocks(s) => s.as_ref(),
            Source::Watched(s) => s.as_ref(),
        }
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
