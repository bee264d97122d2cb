//! Cross-chain migration (`docs/migration.md`) on two in-memory chains that share a genesis
//! (like two regtest chains): the whole flow, and each failure rule of section 7.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, absolute, transaction};
use common::{Injected, Toy, ToyOp, coinbase, op_tx, payload, tempdir};
use vc_chash::migration::{
    Announcement, BoundaryRecord, ChainId, Reveal, commitment, encode_commit,
};
use vc_chash::{Hash256, History};
use vc_engine::migrate::{MigrationPolicy, network_magic, pending_announcement};
use vc_engine::prelude::*;
use vc_source::mem::MemoryChain;

/// The toy with a migration policy.
struct Migrating(Toy, MigrationPolicy);

impl Application for Migrating {
    type Op = ToyOp;
    type Error = Injected;

    fn spec(&self) -> AppSpec {
        self.0.spec().with_migration(self.1.clone())
    }
    fn parse(&self, op: &OpContext) -> Result<ToyOp, Reject> {
        self.0.parse(op)
    }
    fn prepare(&self, block: &BlockInfo, ops: &[Parsed<ToyOp>]) -> Vec<Option<Reject>> {
        self.0.prepare(block, ops)
    }
    fn apply(&mut self, state: &mut State<'_>, op: &Parsed<ToyOp>) -> Outcome<Injected> {
        self.0.apply(state, op)
    }
    fn finalize(&mut self, state: &mut State<'_>) -> Outcome<Injected> {
        self.0.finalize(state)
    }
}

const K: u64 = 3;
const W: u64 = 4;
const SALT: [u8; 32] = [0x5a; 32];

fn authority() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0xaa; 20]))
}

fn policy() -> MigrationPolicy {
    MigrationPolicy::new(authority())
        .with_confirmations(K)
        .with_window(W)
}

/// Two chains with the same genesis, each funded: a transaction paying the authority (to sign
/// migration operations) and the coinbase of block 1 (for application operations).
struct Chains {
    a: MemoryChain,
    b: MemoryChain,
    fund_a: Transaction,
    fund_b: Transaction,
    salt: u32,
}

/// A transaction spending `coinbase` to pay `script` in output 0.
fn pay(coinbase: &Transaction, script: ScriptBuf) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(coinbase.compute_txid(), 0),
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000_000),
            script_pubkey: script,
        }],
    }
}

impl Chains {
    fn new() -> Chains {
        let a = MemoryChain::new(bitcoin::Network::Regtest);
        let b = MemoryChain::new(bitcoin::Network::Regtest);
        assert_eq!(
            a.block_at(0).unwrap().block_hash(),
            b.block_at(0).unwrap().block_hash()
        );
        a.mine(1);
        b.mine(3);
        let fund_a = pay(&coinbase(&a, 1), authority());
        a.push(vec![fund_a.clone()]);
        let fund_b = pay(&coinbase(&b, 1), authority());
        b.push(vec![fund_b.clone()]);
        Chains {
            a,
            b,
            fund_a,
            fund_b,
            salt: 0,
        }
    }

    fn salt(&mut self) -> u32 {
        self.salt += 1;
        self.salt
    }

    /// An application put, from the coinbase of block 1 of `chain`.
    fn put(&mut self, chain: &MemoryChain, key: &[u8]) -> Transaction {
        let mut body = vec![u8::try_from(key.len()).unwrap()];
        body.extend_from_slice(key);
        body.extend_from_slice(b"v");
        let salt = self.salt();
        op_tx(&coinbase(chain, 1), &payload(b'p', &body), false, salt)
    }

    /// A migration operation with `opcode`, from the authority (or, `authorized = false`, from
    /// someone else) on `chain`.
    fn migration(&mut self, on_b: bool, opcode: u8, body: &[u8], authorized: bool) -> Transaction {
        let (chain, fund) = if on_b {
            (&self.b, &self.fund_b)
        } else {
            (&self.a, &self.fund_a)
        };
        let funding = if authorized {
            fund.clone()
        } else {
            coinbase(chain, 1)
        };
        let salt = self.salt + 1;
        self.salt += 1;
        op_tx(&funding, &payload(opcode, body), false, salt)
    }

    fn announcement(&self, last_height: u64) -> Announcement {
        Announcement {
            last_height,
            target: ChainId {
                magic: network_magic(bitcoin::Network::Regtest),
                genesis: Hash256(self.b.block_at(0).unwrap().block_hash().to_byte_array()),
            },
            anchor: Hash256(
                self.b
                    .block_at(self.b.height())
                    .unwrap()
                    .block_hash()
                    .to_byte_array(),
            ),
        }
    }
}

fn open(db: &Path, chains: &Chains) -> Engine<Migrating> {
    let config = EngineConfig::default()
        .with_confirmations(1)
        .with_migration_target(Source::blocks(chains.b.clone()));
    Engine::open(
        Migrating(Toy::new(Scheme::V3, 1), policy()),
        db,
        Source::blocks(chains.a.clone()),
        config,
    )
    .unwrap()
}

fn sync(e: &mut Engine<Migrating>) -> u64 {
    e.sync(None, &AtomicBool::new(false), &mut NoObserver)
        .unwrap()
        .tip
        .unwrap()
        .height
}

fn value(e: &Engine<Migrating>, key: &[u8]) -> Option<Vec<u8>> {
    use vc_store::StateReadExt;
    e.store()
        .view()
        .unwrap()
        .get(&common::VALUES, &key.to_vec())
        .unwrap()
}

fn ch_at(e: &Engine<Migrating>, height: u64) -> Hash256 {
    match e
        .store()
        .view()
        .unwrap()
        .consensus_hash(height)
        .unwrap()
        .unwrap()
    {
        ConsensusHash::V2(h) => h,
        other => panic!("{other:?}"),
    }
}

/// A's history up to an announcement of `last` in the next block, `extra` blocks after it with
/// a put each (`late-N`, which must be ignored once frozen). Returns the announcement.
fn announce_on_a(c: &mut Chains, last: u64, extra: u64) -> Announcement {
    let tx = c.put(&c.a.clone(), b"early");
    c.a.push(vec![tx]);
    let ann = c.announcement(last);
    let tx = c.migration(false, b'^', &ann.encode(), true);
    c.a.push(vec![tx]);
    for i in 0..extra {
        let tx = c.put(&c.a.clone(), format!("late-{i}").as_bytes());
        c.a.push(vec![tx]);
    }
    ann
}

/// Commits on B, then reveals `gap` blocks later (with `reveal`), and mines K - 1 more blocks.
/// Returns the reveal's block.
fn bind_on_b(c: &mut Chains, commit_body: Vec<u8>, reveal: Reveal, gap: u64) -> u64 {
    let tx = c.migration(true, b'{', &commit_body, true);
    c.b.push(vec![tx]);
    c.b.mine(usize::try_from(gap - 1).unwrap());
    let tx = c.migration(true, b'}', &reveal.encode(), true);
    let put = c.put(&c.b.clone(), b"on-b");
    c.b.push(vec![tx, put]);
    let r = c.b.height();
    c.b.mine(usize::try_from(K - 1).unwrap());
    r
}

fn good_binding(c: &Chains, ann: &Announcement, ch_a: Hash256) -> (Vec<u8>, Reveal) {
    let _ = c;
    (
        encode_commit(&commitment(ann, &ch_a, &SALT)),
        Reveal { ch_a, salt: SALT },
    )
}

#[test]
fn a_chain_migrates_and_one_proof_spans_both_chains() {
    let dir = tempdir();
    let mut c = Chains::new();
    let ann = announce_on_a(&mut c, 5, 6);
    let mut e = open(&dir.path().join("m.redb"), &c);
    // A's blocks above H_A = 5 are never applied; the chain freezes there (A's tip is 10).
    assert_eq!(sync(&mut e), 5);
    let view = e.store().view().unwrap();
    let segments = view.segments().unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].last_height, Some(5));
    assert_eq!(pending_announcement(&view).unwrap().unwrap().1, ann);
    assert_eq!(value(&e, b"early"), Some(b"v".to_vec()));
    // late-0 is in block 5 = H_A; late-1 is the first put after it.
    assert_eq!(value(&e, b"late-0"), Some(b"v".to_vec()));
    assert_eq!(value(&e, b"late-1"), None);

    let ch_a = ch_at(&e, 5);
    let (commit, reveal) = good_binding(&c, &ann, ch_a);
    let r = bind_on_b(&mut c, commit, reveal, 2);
    c.b.mine(2);
    let b_tip = c.b.height();
    assert_eq!(sync(&mut e), 6 + (b_tip - r));
    let view = e.store().view().unwrap();
    let segments = view.segments().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!((segments[1].first_height, segments[1].chain_first), (6, r));
    assert_eq!(value(&e, b"on-b"), Some(b"v".to_vec()));
    assert_eq!(value(&e, b"late-1"), None);
    assert_eq!(pending_announcement(&view).unwrap(), None);
    // Block 6 is B's block r, and commits the boundary record.
    let entry = view.chain_entry(6).unwrap().unwrap();
    assert_eq!(
        entry.block_hash,
        c.b.block_at(r).unwrap().block_hash().to_byte_array()
    );
    let records = view.records(6).unwrap().unwrap();
    let boundary = BoundaryRecord::decode(&records[0]).unwrap();
    assert_eq!((boundary.ch_a, boundary.reveal_height), (ch_a, r));

    // A light client trusting the newest hash (on B) proves A's block 4 and B's block r.
    let n = view.tip().unwrap().unwrap().height;
    let trusted = view.tip().unwrap().unwrap().consensus_hash;
    for m in [4, 6] {
        let bytes = vc_chash::prove(&view, n, m).unwrap().encode();
        let block = vc_chash::verify(&bytes, 1, n, &trusted, m).unwrap();
        assert_eq!(block.records, view.records(m).unwrap().unwrap());
    }
}

#[test]
fn an_announcement_reorganised_away_before_the_freeze_is_undone() {
    let dir = tempdir();
    let mut c = Chains::new();
    announce_on_a(&mut c, 5, 1);
    // A's tip is 5 = H_A: not final with K = 3.
    let mut e = open(&dir.path().join("m.redb"), &c);
    assert_eq!(sync(&mut e), 5);
    assert!(
        pending_announcement(&e.store().view().unwrap())
            .unwrap()
            .is_some()
    );
    // A replaces the announcement's block with a longer branch without it.
    c.a.truncate(3);
    for i in 0..5 {
        let tx = c.put(&c.a.clone(), format!("after-{i}").as_bytes());
        c.a.push(vec![tx]);
    }
    assert_eq!(sync(&mut e), 8);
    let view = e.store().view().unwrap();
    assert_eq!(pending_announcement(&view).unwrap(), None);
    assert!(view.segments().unwrap().is_empty());
    assert_eq!(value(&e, b"after-4"), Some(b"v".to_vec()));
}

#[test]
fn the_first_announcement_wins_and_unauthorized_ones_are_rejected() {
    let dir = tempdir();
    let mut c = Chains::new();
    let first = c.announcement(6);
    let second = c.announcement(7);
    let unauthorized = c.migration(false, b'^', &c.announcement(4).encode(), false);
    c.a.push(vec![unauthorized]);
    let tx = c.migration(false, b'^', &first.encode(), true);
    c.a.push(vec![tx]);
    let tx = c.migration(false, b'^', &second.encode(), true);
    c.a.push(vec![tx]);
    c.a.mine(8);
    let mut e = open(&dir.path().join("m.redb"), &c);
    assert_eq!(sync(&mut e), 6);
    let view = e.store().view().unwrap();
    assert_eq!(pending_announcement(&view).unwrap().unwrap(), (4, first));
    assert_eq!(
        view.ops(3).unwrap().len(),
        0,
        "the unauthorized announcement"
    );
    assert_eq!(view.ops(5).unwrap().len(), 0, "the second announcement");
    assert_eq!(view.segments().unwrap()[0].last_height, Some(6));
}

#[test]
fn mismatched_reveals_are_refused_and_a_matching_one_still_binds() {
    let dir = tempdir();
    let mut c = Chains::new();
    let ann = announce_on_a(&mut c, 5, 3);
    let mut e = open(&dir.path().join("m.redb"), &c);
    assert_eq!(sync(&mut e), 5);
    let ch_a = ch_at(&e, 5);
    let (commit, good) = good_binding(&c, &ann, ch_a);
    // A reveal with the wrong salt, one naming another state, one outside the window.
    let wrong_salt = Reveal {
        ch_a,
        salt: [1; 32],
    };
    bind_on_b(&mut c, commit.clone(), wrong_salt, 1);
    let other_state = Reveal {
        ch_a: Hash256([9; 32]),
        salt: SALT,
    };
    let other_commit = encode_commit(&commitment(&ann, &other_state.ch_a, &SALT));
    bind_on_b(&mut c, other_commit, other_state, 1);
    bind_on_b(&mut c, commit.clone(), good, W + 1);
    assert_eq!(sync(&mut e), 5, "no reveal matched");
    assert_eq!(e.store().view().unwrap().segments().unwrap().len(), 1);
    // A matching reveal within the window binds.
    let r = bind_on_b(&mut c, commit, good, W);
    assert_eq!(sync(&mut e), 6 + (c.b.height() - r));
}

#[test]
fn a_binding_reorganised_away_on_b_rolls_the_segment_back() {
    let dir = tempdir();
    let mut c = Chains::new();
    let ann = announce_on_a(&mut c, 5, 3);
    let mut e = open(&dir.path().join("m.redb"), &c);
    assert_eq!(sync(&mut e), 5);
    let (commit, reveal) = good_binding(&c, &ann, ch_at(&e, 5));
    let before = c.b.height();
    bind_on_b(&mut c, commit.clone(), reveal, 1);
    assert!(sync(&mut e) > 5);
    assert_eq!(e.store().view().unwrap().segments().unwrap().len(), 2);
    // B drops the commit and the reveal: the virtual chain goes back to H_A, still frozen.
    c.b.truncate(before);
    c.b.mine(6);
    assert_eq!(sync(&mut e), 5);
    let view = e.store().view().unwrap();
    assert_eq!(view.segments().unwrap().len(), 1);
    assert_eq!(value(&e, b"on-b"), None);
    assert!(pending_announcement(&view).unwrap().is_some());
    // The same commit and reveal mined again bind again.
    let r = bind_on_b(&mut c, commit, reveal, 2);
    assert_eq!(sync(&mut e), 6 + (c.b.height() - r));
    assert_eq!(value(&e, b"on-b"), Some(b"v".to_vec()));
}

#[test]
fn a_deep_fork_of_a_after_the_freeze_is_ignored() {
    let dir = tempdir();
    let mut c = Chains::new();
    let ann = announce_on_a(&mut c, 5, 3);
    let mut e = open(&dir.path().join("m.redb"), &c);
    assert_eq!(sync(&mut e), 5);
    let frozen = ch_at(&e, 5);
    // A forks below the announcement, longer, without it.
    c.a.truncate(2);
    c.a.mine(20);
    assert_eq!(sync(&mut e), 5);
    assert_eq!(ch_at(&e, 5), frozen);
    // B wins: the binding of the frozen state goes through.
    let (commit, reveal) = good_binding(&c, &ann, frozen);
    let r = bind_on_b(&mut c, commit, reveal, 1);
    assert_eq!(sync(&mut e), 6 + (c.b.height() - r));
    assert_eq!(ch_at(&e, 5), frozen);
    assert_eq!(value(&e, b"early"), Some(b"v".to_vec()));
}
