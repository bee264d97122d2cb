//! The naive baseline: what the Python original did, one JSON-RPC call after another.
//!
//! [`NaiveSource`] is a [`BlockSource`] over plain JSON-RPC with no batching, no REST and no
//! cache: `getblockhash` per height, `getblock <hash> 0` (hex) per block, and one
//! `getrawtransaction` (which needs `-txindex`) per input of every block whose spent outputs
//! the engine asks for. The benchmark feeds it to the same engine with one fetch thread.

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash, Network, Transaction, TxOut};
use vc_source::core::rpc::{Auth, RpcClient};
use vc_source::{BlockSource, ChainTip, ChainView, FetchedBlock, SourceError, SpentOutputs};

const NAME: &str = "naive-rpc";

/// One-call-at-a-time JSON-RPC (see the module docs).
pub struct NaiveSource {
    client: RpcClient,
    network: Network,
}

impl std::fmt::Debug for NaiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NaiveSource")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Decodes the hex of a JSON-RPC answer (`what` names it in the error).
pub fn decode_hex(what: &str, s: &str) -> Result<Vec<u8>, SourceError> {
    vc_chash::hex::decode(s).map_err(|e| SourceError::Malformed {
        source_name: NAME,
        what: what.into(),
        detail: e.to_string(),
    })
}

impl NaiveSource {
    /// A source for the node at `url` (`http://HOST:PORT`) with `auth` (nothing is sent
    /// before the first call).
    pub fn new(url: &str, auth: Auth, network: Network) -> Self {
        NaiveSource {
            client: RpcClient::new(url, auth),
            network,
        }
    }

    fn raw<T: bitcoin::consensus::Decodable>(
        &self,
        what: String,
        method: &str,
        args: &[serde_json::Value],
    ) -> Result<T, SourceError> {
        let hex: String = self.client.call(method, args)?;
        let bytes = decode_hex(&what, &hex)?;
        deserialize(&bytes).map_err(|e| SourceError::Malformed {
            source_name: NAME,
            what,
            detail: e.to_string(),
        })
    }
}

impl ChainView for NaiveSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let height = self.client.call("getblockcount", &[])?;
        let hash = self.block_hash(height)?;
        Ok(ChainTip { height, hash })
    }

    fn block_hash(&self, height: u64) -> Result<BlockHash, SourceError> {
        let hash: String = self.client.call("getblockhash", &[height.into()])?;
        hash.parse().map_err(|e| SourceError::Malformed {
            source_name: NAME,
            what: format!("getblockhash {height}"),
            detail: format!("{e}"),
        })
    }

    fn headers(&self, start: u64, count: usize) -> Result<Vec<Header>, SourceError> {
        (start..start + count as u64)
            .map(|h| {
                let hash = self.block_hash(h)?;
                self.raw(
                    format!("getblockheader {hash}"),
                    "getblockheader",
                    &[hash.to_string().into(), false.into()],
                )
            })
            .collect()
    }
}

impl BlockSource for NaiveSource {
    fn block(&self, hash: &BlockHash) -> Result<FetchedBlock, SourceError> {
        let what = format!("getblock {hash}");
        let hex: String = self
            .client
            .call("getblock", &[hash.to_string().into(), 0.into()])?;
        let bytes = decode_hex(&what, &hex)?;
        let block: Block = deserialize(&bytes).map_err(|e| SourceError::Malformed {
            source_name: NAME,
            what,
            detail: e.to_string(),
        })?;
        Ok(FetchedBlock::new(block, bytes.len()))
    }

    fn spent_outputs(&self, _hash: &BlockHash, block: &Block) -> Result<SpentOutputs, SourceError> {
        let mut spent = Vec::with_capacity(block.txdata.len());
        for (i, tx) in block.txdata.iter().enumerate() {
            if i == 0 {
                spent.push(Vec::new());
                continue;
            }
            let mut outs: Vec<TxOut> = Vec::with_capacity(tx.input.len());
            for input in &tx.input {
                let prev = input.previous_output;
                let parent: Transaction = self.raw(
                    format!("getrawtransaction {}", prev.txid),
                    "getrawtransaction",
                    &[prev.txid.to_string().into(), false.into()],
                )?;
                let out = parent
                    .output
                    .get(prev.vout as usize)
                    .cloned()
                    .ok_or_else(|| SourceError::Mismatch {
                        source_name: NAME,
                        detail: format!("{} has no output {}", prev.txid, prev.vout),
                    })?;
                outs.push(out);
            }
            spent.push(outs);
        }
        Ok(SpentOutputs(spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_answers_decode_and_bad_ones_are_errors_not_panics() {
        assert_eq!(decode_hex("t", "00ff10").unwrap(), vec![0, 255, 16]);
        for bad in ["abc", "zz", "é0", "0é"] {
            assert!(
                matches!(decode_hex("t", bad), Err(SourceError::Malformed { .. })),
                "{bad}"
            );
        }
    }
}
