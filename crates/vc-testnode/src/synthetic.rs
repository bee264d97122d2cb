//! Synthetic stores: a chain of any length with deterministic operations and state changes,
//! written straight through the store's writer (no node, no application rules). For the proof server's tests
//! and its benchmark, where only the chain's shape matters.

use std::path::Path;

use vc_chash::{ConsensusHash, Hash256, Scheme};
use vc_store::{BlockHeader, OutputData, StateAccess, Store, StoreConfig, StoreError, StoredOp};

/// splitmix64: the generator's only source of variety.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The block hash of `height` on branch `fork`.
pub fn block_hash(height: u64, fork: u64) -> Hash256 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&mix(height ^ (fork << 40)).to_le_bytes());
    b[16..24].copy_from_slice(&height.to_be_bytes());
    b[24..32].copy_from_slice(&fork.to_be_bytes());
    Hash256(b)
}

/// The operations of block `height` on branch `fork`: none in most blocks, one to three in
/// one block of four, each with one to three records.
pub fn ops(height: u64, fork: u64) -> Vec<StoredOp> {
    let seed = mix(height.wrapping_mul(0x1000_0001) ^ fork);
    if !seed.is_multiple_of(4) {
        return Vec::new();
    }
    (0..1 + (seed >> 8) % 3)
        .map(|i| {
            let r = mix(seed ^ i);
            StoredOp {
                txid: block_hash(r, i).0,
                txindex: u32::try_from(1 + i * 2).unwrap_or(u32::MAX),
                vtxindex: u32::try_from(i).unwrap_or(u32::MAX),
                opcode: b'+',
                payload: format!("id+key{}", r % 97).into_bytes(),
                senders: vec![OutputData {
                    value: r % 100_000,
                    script: vec![0x00, 0x14, r.to_le_bytes()[0]],
                }],
                outputs: vec![OutputData {
                    value: 0,
                    script: vec![0x6a],
                }],
                fee: r % 1_000,
                records: (0..1 + r % 3)
                    .map(|j| format!("key{} {height}-{fork}-{i}-{j}", r % 97).into_bytes())
                    .collect(),
            }
        })
        .collect()
}

/// The state changes of block `height` on branch `fork`, in namespace [`STATE_NAMESPACE`]:
/// each operation sets its key (`key0` to `key96`) to its first record, and one in eight deletes
/// it instead. Only v3 chains commit them; legacy and v2 hashes do not depend on them.
pub fn state_changes(height: u64, fork: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    ops(height, fork)
        .iter()
        .map(|op| {
            let key = op.payload[3..].to_vec();
            let delete = mix(u64::from(op.txid[0]) << 8 | u64::from(op.txid[1])).is_multiple_of(8);
            let value = if delete {
                None
            } else {
                op.records.first().cloned()
            };
            (key, value)
        })
        .collect()
}

/// The state namespace of synthetic stores.
pub const STATE_NAMESPACE: &str = "keys";

/// The configuration of a synthetic store.
pub fn config(scheme: Scheme, first_block: u64) -> StoreConfig {
    StoreConfig::new("synthetic", "1.0.0", scheme, first_block, "regtest")
}

/// Appends blocks `from..=to` of branch `fork` to `store` (whose tip must be `from - 1`, or
/// which must be empty with `from` its first block), committing every 10,000 blocks. Returns
/// the consensus hash of each block written.
pub fn extend(
    store: &Store,
    from: u64,
    to: u64,
    fork: u64,
) -> Result<Vec<ConsensusHash>, StoreError> {
    let mut w = store.writer()?;
    let mut out = Vec::new();
    for height in from..=to {
        let prev = match w.tip() {
            Some((_, hash)) => hash,
            None => Hash256::ZERO,
        };
        let mut block = w.begin_block(BlockHeader {
            height,
            block_hash: block_hash(height, fork),
            prev_hash: prev,
        })?;
        for op in ops(height, fork) {
            block.add_op(op)?;
        }
        for (key, value) in state_changes(height, fork) {
            match value {
                Some(v) => block.put_raw(STATE_NAMESPACE, &key, v)?,
                None => block.delete_raw(STATE_NAMESPACE, &key),
            }
        }
        out.push(block.finish()?.consensus_hash);
        if (height - from) % 10_000 == 9_999 {
            w.commit()?;
        }
    }
    w.commit()?;
    Ok(out)
}

/// Creates a store at `path` with blocks `first_block..first_block + blocks` of branch 0.
pub fn create(
    path: &Path,
    scheme: Scheme,
    first_block: u64,
    blocks: u64,
) -> Result<(Store, Vec<ConsensusHash>), StoreError> {
    let store = Store::open(path, config(scheme, first_block))?;
    let chs = match blocks {
        0 => Vec::new(),
        n => extend(&store, first_block, first_block + n - 1, 0)?,
    };
    Ok((store, chs))
}
