//! What the engine's own tests share: a small application that exercises every hook and every
//! kind of state change, transactions that carry its operations, chains of them on a
//! [`MemoryChain`], and a dump of everything consensus-relevant in a database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, absolute, transaction};
use vc_chash::History;
use vc_engine::prelude::*;
use vc_source::mem::MemoryChain;
use vc_store::{StateRead, Store};

/// The toy application's magic.
pub const MAGIC: &[u8] = b"tt";

/// Values by key.
pub const VALUES: Namespace<Vec<u8>, Vec<u8>> = Namespace::new("values");
/// Who wrote each key.
pub const OWNERS: Namespace<Vec<u8>, Vec<u8>> = Namespace::new("owners");
/// Accepted operations per sender.
pub const COUNTS: Namespace<Vec<u8>, u64> = Namespace::new("counts");
/// Written by `finalize` every third block: the block's height -> its time.
pub const BLOCKS: Namespace<u64, u64> = Namespace::new("blocks");
/// Written by operations that are then rejected: must always stay empty.
pub const JUNK: Namespace<Vec<u8>, u64> = Namespace::new("junk");

/// Every namespace the toy writes.
pub const NAMESPACE_NAMES: [&str; 5] = ["values", "owners", "counts", "blocks", "junk"];

/// The marker script the toy declares when it runs with markers.
pub fn marker() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([7; 32]))
}

/// A toy operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToyOp {
    /// `p`: set a key, if the sender owns it or nobody does.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// `d`: delete a key the sender owns.
    Delete { key: Vec<u8> },
    /// `w`: write junk, then accept if the flag is even, else reject (the junk must vanish).
    WriteThenDecide { flag: u8 },
    /// `f`: accepted if the consensus hash it names is fresh.
    Fresh { ch: ConsensusHash },
}

/// A fault to inject: [`Toy::apply`] fails (an application error, not a rejection) in the
/// block at this height, once. `u64::MAX`: none.
#[derive(Clone, Debug, Default)]
pub struct Fault(Arc<AtomicU64>);

impl Fault {
    /// No fault.
    pub fn none() -> Self {
        Fault(Arc::new(AtomicU64::new(u64::MAX)))
    }
    /// Fail in block `height`.
    pub fn at(&self, height: u64) {
        self.0.store(height, Ordering::SeqCst);
    }
    fn fires(&self, height: u64) -> bool {
        self.0
            .compare_exchange(height, u64::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// The injected fault.
#[derive(Debug, thiserror::Error)]
#[error("injected fault in block {0}")]
pub struct Injected(pub u64);

/// The toy application.
#[derive(Clone, Debug)]
pub struct Toy {
    pub scheme: Scheme,
    pub first_block: u64,
    pub markers: bool,
    /// Declares that it reads witnesses ([`AppSpec::with_witnesses`]).
    pub witnesses: bool,
    pub fault: Fault,
    /// `should_continue` returns false after this height.
    pub stop_after: Option<u64>,
}

impl Toy {
    pub fn new(scheme: Scheme, first_block: u64) -> Self {
        Toy {
            scheme,
            first_block,
            markers: false,
            witnesses: false,
            fault: Fault::none(),
            stop_after: None,
        }
    }
}

fn reject(code: &'static str) -> Fail<Injected> {
    Fail::Reject(Reject::new(code, code))
}

impl Application for Toy {
    type Op = ToyOp;
    type Error = Injected;

    fn spec(&self) -> AppSpec {
        let spec = AppSpec::new("toy", "1", MAGIC, self.first_block)
            .with_opcodes(b"pdwf")
            .with_scheme(self.scheme)
            .with_staleness(6);
        let spec = if self.witnesses {
            spec.with_witnesses()
        } else {
            spec
        };
        if self.markers {
            spec.with_marker(marker())
        } else {
            spec
        }
    }

    fn parse(&self, op: &OpContext) -> Result<ToyOp, Reject> {
        let body = op.body();
        let bad = || Reject::new("malformed", "bad body");
        Ok(match op.opcode {
            b'p' => {
                let (&n, rest) = body.split_first().ok_or_else(bad)?;
                let n = usize::from(n);
                if rest.len() < n {
                    return Err(bad());
                }
                ToyOp::Put {
                    key: rest[..n].to_vec(),
                    value: rest[n..].to_vec(),
                }
            }
            b'd' => ToyOp::Delete { key: body.to_vec() },
            b'w' => ToyOp::WriteThenDecide {
                flag: *body.first().ok_or_else(bad)?,
            },
            b'f' => ToyOp::Fresh {
                ch: ConsensusHash::from_slice(self.scheme, body).ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        })
    }

    fn prepare(&self, _block: &BlockInfo, ops: &[Parsed<ToyOp>]) -> Vec<Option<Reject>> {
        // Two puts of one key in one block: both rejected.
        let mut puts: BTreeMap<&[u8], usize> = BTreeMap::new();
        for p in ops {
            if let ToyOp::Put { key, .. } = &p.op {
                *puts.entry(key).or_default() += 1;
            }
        }
        ops.iter()
            .map(|p| match &p.op {
                ToyOp::Put { key, .. } if puts.get(key.as_slice()) > Some(&1) => {
                    Some(Reject::new("collision", "two puts of one key"))
                }
                _ => None,
            })
            .collect()
    }

    fn apply(&mut self, state: &mut State<'_>, p: &Parsed<ToyOp>) -> Outcome<Injected> {
        let height = state.block().height;
        if self.fault.fires(height) {
            return Err(Fail::App(Injected(height)));
        }
        let sender = p
            .ctx
            .sender()
            .map(|s| s.script_pubkey.to_bytes())
            .unwrap_or_default();
        // Counted first, so that a rejection below must take the count back too.
        let n = state.get(&COUNTS, &sender)?.unwrap_or(0) + 1;
        state.put(&COUNTS, &sender, &n)?;
        let record = match &p.op {
            ToyOp::Put { key, value } => {
                if let Some(owner) = state.get(&OWNERS, key)?
                    && owner != sender
                {
                    return Err(reject("not-owner"));
                }
                state.put(&OWNERS, key, &sender)?;
                state.put(&VALUES, key, value)?;
                Record::new("p").with(key.clone()).with(value.clone())
            }
            ToyOp::Delete { key } => {
                if state.get(&OWNERS, key)?.as_ref() != Some(&sender) {
                    return Err(reject("not-owner"));
                }
                state.delete(&OWNERS, key);
                state.delete(&VALUES, key);
                Record::new("d").with(key.clone())
            }
            ToyOp::WriteThenDecide { flag } => {
                state.put(&JUNK, &p.ctx.txid.to_byte_array().to_vec(), &1)?;
                state.emit(Record::new("junk"));
                if flag % 2 == 1 {
                    return Err(reject("odd"));
                }
                state.delete(&JUNK, &p.ctx.txid.to_byte_array().to_vec());
                Record::new("w").with(u64::from(*flag))
            }
            ToyOp::Fresh { ch } => {
                if !state.is_fresh(ch)? {
                    return Err(reject("stale"));
                }
                Record::new("f").with(ch.as_bytes().to_vec())
            }
        };
        state.emit(record.with(n));
        Ok(())
    }

    fn finalize(&mut self, state: &mut State<'_>) -> Outcome<Injected> {
        let b = *state.block();
        if b.height.is_multiple_of(3) {
            state.put(&BLOCKS, &b.height, &u64::from(b.time))?;
        }
        Ok(())
    }

    fn should_continue(&self, height: u64) -> bool {
        self.stop_after.is_none_or(|s| height < s)
    }
}

/// A payload for the toy: magic, opcode, body.
pub fn payload(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(opcode);
    p.extend_from_slice(body);
    p
}

/// A transaction carrying `payload` in output 0, spending output 0 of `funding` (so its sender
/// is `funding`'s payee), paying the marker script when `pay_marker`.
pub fn op_tx(funding: &Transaction, payload: &[u8], pay_marker: bool, salt: u32) -> Transaction {
    let push = PushBytesBuf::try_from(payload.to_vec()).unwrap();
    let mut output = vec![TxOut {
        value: Amount::ZERO,
        script_pubkey: Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(push)
            .into_script(),
    }];
    if pay_marker {
        output.push(TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: marker(),
        });
    }
    output.push(TxOut {
        value: Amount::from_sat(10_000),
        script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([3; 20])),
    });
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::from_consensus(salt),
        input: vec![TxIn {
            previous_output: OutPoint::new(funding.compute_txid(), 0),
            ..TxIn::default()
        }],
        output,
    }
}

/// The coinbase of the best chain's block at `height` (a funding transaction).
pub fn coinbase(chain: &MemoryChain, height: u64) -> Transaction {
    chain.block_at(height).unwrap().txdata[0].clone()
}

/// Opens an engine for `toy` on `db`, reading `chain`.
pub fn engine(toy: Toy, db: &Path, chain: &MemoryChain, config: EngineConfig) -> Engine<Toy> {
    Engine::open(toy, db, Source::blocks(chain.clone()), config).unwrap()
}

/// Opens an engine for `toy` on `db`, reading only the transactions of `chain` that pay the
/// toy's marker (as from an Electrum server).
pub fn watching_engine(
    toy: Toy,
    db: &Path,
    chain: &MemoryChain,
    config: EngineConfig,
) -> Engine<Toy> {
    Engine::open(toy, db, Source::watched(chain.watching()), config).unwrap()
}

/// A directory for test databases: in memory where the machine has `/dev/shm` (the tests
/// commit thousands of times; durability is not what they test).
pub fn tempdir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(&shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Everything consensus-relevant in a database: per height, the chain entry's hashes and the
/// stored operations; and every state entry by namespace name (ids may differ between two
/// databases with the same state).
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    pub chain: Vec<(u64, Vec<u8>)>,
    pub ops: Vec<(u64, Vec<u8>)>,
    pub state: BTreeMap<&'static str, Vec<vc_store::RawEntry>>,
}

/// Dumps `store`.
pub fn dump(store: &Store) -> Dump {
    let view = store.view().unwrap();
    let tip = view.tip().unwrap().map(|t| t.height);
    let first = store.config().first_block;
    let mut chain = Vec::new();
    let mut ops = Vec::new();
    if let Some(tip) = tip {
        for (h, e) in view.chain_range(first, tip).unwrap() {
            let mut bytes = e.block_hash.to_vec();
            bytes.extend_from_slice(&e.prev_hash);
            bytes.extend_from_slice(&e.ops_hash);
            bytes.extend_from_slice(&e.consensus_hash);
            bytes.extend_from_slice(&e.mmr_root.unwrap_or_default());
            bytes.extend_from_slice(&e.op_count.to_be_bytes());
            chain.push((h, bytes));
        }
        for (h, op) in view.ops_range(first, tip).unwrap() {
            ops.push((h, vc_codec::storage::to_bytes(&op).unwrap()));
        }
    }
    let state = NAMESPACE_NAMES
        .iter()
        .map(|ns| (*ns, view.range_raw(ns, None, None).unwrap()))
        .collect();
    Dump { chain, ops, state }
}

/// A small deterministic random generator (splitmix64), so every scenario replays from its
/// seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Mines `n` blocks on `chain`, each with up to `max_ops` random toy operations (some not
/// paying the marker, some malformed, some with a consensus hash taken from `store`).
pub fn mine_random(
    chain: &MemoryChain,
    rng: &mut Rng,
    n: u64,
    max_ops: u64,
    store: Option<&Store>,
) {
    for _ in 0..n {
        let height = chain.height();
        let ops = rng.range(0, max_ops);
        let mut txs = Vec::new();
        for i in 0..ops {
            let funding = coinbase(chain, rng.range(0, height));
            let key = vec![b'a' + u8::try_from(rng.range(0, 5)).unwrap()];
            let (opcode, body) = match rng.range(0, 9) {
                0..=3 => {
                    let mut body = vec![1u8];
                    body.extend_from_slice(&key);
                    body.extend_from_slice(&rng.next().to_le_bytes()[..rng.range(0, 8) as usize]);
                    (b'p', body)
                }
                4 | 5 => (b'd', key),
                6 => (b'w', vec![u8::try_from(rng.range(0, 3)).unwrap()]),
                7 => {
                    let ch = store
                        .and_then(|s| {
                            let view = s.view().ok()?;
                            let tip = view.tip().ok()??.height;
                            let h = tip.saturating_sub(rng.range(0, 8));
                            view.consensus_hash(h).ok()?
                        })
                        .map(|c| c.as_bytes().to_vec())
                        .unwrap_or_else(|| vec![9; 32]);
                    (b'f', ch)
                }
                8 => (b'p', vec![200]), // malformed: a key longer than the body
                _ => (b'x', vec![]),    // an undeclared opcode: not an operation
            };
            let salt = u32::try_from(rng.next() & 0xffff).unwrap() + u32::try_from(i).unwrap();
            txs.push(op_tx(
                &funding,
                &payload(opcode, &body),
                !rng.chance(10),
                salt,
            ));
        }
        chain.push(txs);
    }
}

/// Implements `ChainView` for a wrapper whose `chain` field is a `MemoryChain`, by
/// delegation, under the name `$name` (for wrappers that change only what blocks say).
#[macro_export]
macro_rules! memory_chain_view {
    ($ty:ty, $name:literal) => {
        impl vc_source::ChainView for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn network(&self) -> bitcoin::Network {
                self.chain.network()
            }
            fn tip(&self) -> Result<vc_source::ChainTip, vc_source::SourceError> {
                self.chain.tip()
            }
            fn block_hash(
                &self,
                height: u64,
            ) -> Result<bitcoin::BlockHash, vc_source::SourceError> {
                self.chain.block_hash(height)
            }
            fn headers(
                &self,
                start: u64,
                count: usize,
            ) -> Result<Vec<bitcoin::block::Header>, vc_source::SourceError> {
                self.chain.headers(start, count)
            }
        }
    };
}
