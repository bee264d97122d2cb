//! Deterministic blocks for the store's tests: the same (height, fork) always gives the same
//! operations and state changes, so a model can replay them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use vc_chash::state::MemoryState;
use vc_chash::{Hash256, MemoryHistory, Scheme};
use vc_store::{
    BlockHeader, BlockWriter, Namespace, OutputData, StateWriteExt, StoreConfig, StoredOp, Writer,
};

/// The test application's names.
pub const NAMES: Namespace<String, u64> = Namespace::new("names");

pub fn config(scheme: Scheme, first: u64) -> StoreConfig {
    StoreConfig::new("test-app", "1.0.0", scheme, first, "regtest")
}

/// splitmix64.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub fn block_hash(height: u64, fork: u64) -> Hash256 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&mix(height).to_le_bytes());
    b[8..16].copy_from_slice(&mix(height ^ (fork << 32)).to_le_bytes());
    b[16..24].copy_from_slice(&height.to_be_bytes());
    b[24..32].copy_from_slice(&fork.to_be_bytes());
    Hash256(b)
}

/// Branches from this one on have *wide* blocks: one in three changes 40 to 71 keys, so that a
/// v3 writer updates the state tree on its second thread (from 16 changes on). Branches below
/// it change at most 4 keys a block.
pub const WIDE: u64 = 1 << 16;

/// One generated block: its operations and state changes (`None` deletes).
#[derive(Clone, Debug)]
pub struct Generated {
    pub hash: Hash256,
    pub ops: Vec<StoredOp>,
    pub changes: Vec<(String, Option<u64>)>,
}

pub fn generate(height: u64, fork: u64) -> Generated {
    let seed = mix(height.wrapping_mul(31) ^ fork.wrapping_mul(0x1000_0001));
    let n_ops = seed % 4;
    let ops = (0..n_ops)
        .map(|i| {
            let r = mix(seed ^ i);
            StoredOp {
                txid: block_hash(r, i).0,
                txindex: (i * 3 + 1) as u32,
                vtxindex: (i * 2) as u32,
                opcode: b':',
                payload: format!("id:name{}", r % 50).into_bytes(),
                senders: vec![OutputData {
                    value: r % 100_000,
                    script: vec![0x00, 0x14, (r % 256) as u8],
                }],
                outputs: vec![],
                fee: r % 1000,
                records: (0..(r % 3))
                    .map(|j| format!("rec-{height}-{fork}-{i}-{j}").into_bytes())
                    .collect(),
            }
        })
        .collect();
    // A wide block changes 40 to 71 keys among 300 names (a few may repeat); any other, up
    // to 4 among 40.
    let wide = fork >= WIDE && mix(seed ^ 0x77).is_multiple_of(3);
    let (n_changes, names) = if wide {
        (40 + mix(seed ^ 0xabc) % 32, 300)
    } else {
        (mix(seed ^ 0xabc) % 5, 40)
    };
    let changes = (0..n_changes)
        .map(|i| {
            let r = mix(seed ^ (i + 100));
            let key = format!("name{}", r % names);
            let value = if r.is_multiple_of(5) {
                None
            } else {
                Some(r % 1_000_000)
            };
            (key, value)
        })
        .collect();
    Generated {
        hash: block_hash(height, fork),
        ops,
        changes,
    }
}

/// Writes a generated block through the store's writer.
pub fn write_block(
    w: &mut Writer<'_>,
    names: &Namespace<String, u64>,
    height: u64,
    fork: u64,
) -> vc_chash::history::BlockSummary {
    let g = generate(height, fork);
    let prev = w.tip().map(|t| t.1).unwrap_or(Hash256::ZERO);
    let mut b: BlockWriter<'_, '_> = w
        .begin_block(BlockHeader {
            height,
            block_hash: g.hash,
            prev_hash: prev,
        })
        .unwrap();
    for (k, v) in &g.changes {
        match v {
            Some(v) => b.put(names, k, v).unwrap(),
            None => b.delete(names, k),
        }
    }
    for op in g.ops {
        b.add_op(op).unwrap();
    }
    b.finish().unwrap()
}

/// The in-memory model: the chain's blocks (as (height, fork)) and the state after each.
#[derive(Clone, Debug)]
pub struct Model {
    pub scheme: Scheme,
    pub first: u64,
    pub blocks: Vec<u64>,
    pub states: Vec<BTreeMap<String, u64>>,
}

impl Model {
    pub fn new(scheme: Scheme, first: u64) -> Self {
        Model {
            scheme,
            first,
            blocks: vec![],
            states: vec![],
        }
    }

    pub fn apply(&mut self, fork: u64) {
        let height = self.first + self.blocks.len() as u64;
        let mut state = self.states.last().cloned().unwrap_or_default();
        for (k, v) in generate(height, fork).changes {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        self.blocks.push(fork);
        self.states.push(state);
    }

    pub fn rollback_to(&mut self, height: u64) {
        let keep = (height + 1).saturating_sub(self.first) as usize;
        self.blocks.truncate(keep);
        self.states.truncate(keep);
    }

    pub fn tip(&self) -> Option<u64> {
        (self.first + self.blocks.len() as u64)
            .checked_sub(1)
            .filter(|t| *t >= self.first)
    }

    pub fn state(&self) -> BTreeMap<String, u64> {
        self.states.last().cloned().unwrap_or_default()
    }

    /// The consensus hashes the model's chain must have, from vc-chash's in-memory history
    /// (v3: with the state roots of [`Model::roots`]).
    pub fn history(&self) -> MemoryHistory {
        self.history_with(&self.roots())
    }

    /// [`Model::history`] with the state roots already computed.
    pub fn history_with(&self, roots: &[Hash256]) -> MemoryHistory {
        let mut h = MemoryHistory::new(self.scheme, self.first);
        for (i, fork) in self.blocks.iter().enumerate() {
            let height = self.first + i as u64;
            let g = generate(height, *fork);
            let records: Vec<Vec<u8>> = g.ops.iter().flat_map(|o| o.records.clone()).collect();
            let root = self.scheme.commits_state().then(|| roots[i]);
            h.push_block_with_state(g.hash, &records, root);
        }
        h
    }

    /// The state root after each block, from vc-chash's in-memory state tree built from the
    /// model's maps alone (keys and values in the store's encodings).
    pub fn roots(&self) -> Vec<Hash256> {
        let mut tree = MemoryState::new();
        let mut before: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for state in &self.states {
            let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for (k, v) in state {
                if before.get(k) != Some(v) {
                    changes.push((k.as_bytes().to_vec(), Some(stored_u64(*v))));
                }
            }
            for k in before.keys() {
                if !state.contains_key(k) {
                    changes.push((k.as_bytes().to_vec(), None));
                }
            }
            out.push(
                tree.apply(
                    changes
                        .iter()
                        .map(|(k, v)| (b"names".as_slice(), k.as_slice(), v.clone())),
                ),
            );
            before = state.clone();
        }
        out
    }
}

/// A `u64` state value as the store keeps it (version byte and postcard).
pub fn stored_u64(v: u64) -> Vec<u8> {
    vc_codec::storage::to_bytes(&v).unwrap()
}

/// Rewrites the snapshot at `path` frame by frame through `edit`, with a fresh checksum, so that
/// only what the import checks beyond the checksum can tell.
pub fn rewrite_snapshot(
    path: &std::path::Path,
    mut edit: impl FnMut(&mut vc_store::snapshot::Frame),
) {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut frame: vc_store::snapshot::Frame =
            vc_codec::storage::from_bytes(&bytes[at + 4..at + 4 + len]).unwrap();
        at += 4 + len;
        if let vc_store::snapshot::Frame::End(digest) = &mut frame {
            *digest = Sha256::digest(&out).into();
        } else {
            edit(&mut frame);
        }
        let body = vc_codec::storage::to_bytes(&frame).unwrap();
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
    }
    std::fs::write(path, out).unwrap();
}

/// A store in `dir` of generated blocks `first..first + blocks` under `scheme`, and its snapshot
/// (`dir/snap`).
pub fn exported(
    dir: &std::path::Path,
    scheme: Scheme,
    first: u64,
    blocks: u64,
) -> (vc_store::Store, std::path::PathBuf) {
    let store = vc_store::Store::open(dir.join("src.redb"), config(scheme, first)).unwrap();
    let mut w = store.writer().unwrap();
    for h in first..first + blocks {
        write_block(&mut w, &NAMES, h, 0);
    }
    w.commit().unwrap();
    drop(w);
    let snap = dir.join("snap");
    vc_store::snapshot::export(&store.view().unwrap(), &snap).unwrap();
    (store, snap)
}
