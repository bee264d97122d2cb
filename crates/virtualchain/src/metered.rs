//! A source that times every request it passes on, for the indexer's metrics
//! (`vc_index_source_request_seconds`, `vc_index_source_errors_total`).

use std::sync::Arc;
use std::time::Instant;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction, TxOut};
use vc_source::{
    BlockSource, ChainTip, ChainView, FetchedBlock, Source, SourceError, SpentOutputs, WatchSource,
    WatchedBlock,
};

use crate::metrics::IndexMetrics;

/// `inner`, with every request timed into `metrics`.
struct Metered<S: ?Sized> {
    metrics: Arc<IndexMetrics>,
    inner: Arc<S>,
}

impl<S: ?Sized> Metered<S> {
    fn time<T>(
        &self,
        method: &'static str,
        call: impl FnOnce() -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let started = Instant::now();
        let result = call();
        self.metrics
            .source_call(method, started.elapsed(), result.is_err());
        result
    }
}

impl<S: ChainView + ?Sized> ChainView for Metered<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn network(&self) -> Network {
        self.inner.network()
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let tip = self.time("tip", || self.inner.tip())?;
        self.metrics.chain_tip(tip.height);
        Ok(tip)
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        self.time("block_hash", || self.inner.block_hash(height))
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        self.time("headers", || self.inner.headers(start, count))
    }
}

impl<S: BlockSource + ?Sized> BlockSource for Metered<S> {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        self.time("block", || self.inner.block(hash))
    }

    fn spent_outputs(&self, hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        self.time("spent_outputs", || self.inner.spent_outputs(hash, block))
    }

    fn block_bytes(&self, hash: &BlockHash, buf: &mut Vec<u8>) -> Result<bool, SourceError> {
        self.time("block", || self.inner.block_bytes(hash, buf))
    }

    fn spent_outputs_at(
        &self,
        hash: &BlockHash,
        inputs: &[u32],
        positions: &[u32],
    ) -> Result<Vec<Vec<TxOut>>, SourceError> {
        self.time("spent_outputs", || {
            self.inner.spent_outputs_at(hash, inputs, positions)
        })
    }
}

impl<S: WatchSource + ?Sized> WatchSource for Metered<S> {
    fn watched(
        &self,
        height: u64,
        scripts: &[ScriptBuf],
        select: &(dyn Fn(&Transaction) -> bool + Sync),
    ) -> Result<WatchedBlock, SourceError> {
        self.time("watched", || self.inner.watched(height, scripts, select))
    }
}

/// `source`, with its requests timed into `metrics` and its tip recorded at every poll.
pub fn metered(source: Source, metrics: &Arc<IndexMetrics>) -> Source {
    let metrics = Arc::clone(metrics);
    match source {
        Source::Blocks(inner) => Source::Blocks(Arc::new(Metered { metrics, inner })),
        Source::Watched(inner) => Source::Watched(Arc::new(Metered { metrics, inner })),
    }
}
