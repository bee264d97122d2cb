//! Crash consistency: a child process applies, rolls back and commits blocks in a loop and is
//! killed with SIGKILL at random moments. Every reopen must land on a block boundary with all
//! invariants, and the chain must be exactly what an uninterrupted run computes: every
//! consensus hash and, the store being v3, every state root and state proof.
//!
//! The test runs twice: with small blocks, whose tree update runs in the write transaction,
//! and with wide ones (`common::WIDE`), whose update runs on the writer's second thread and
//! reads the last commit, so that a kill there too must leave nothing half-written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Model, WIDE, config, mix, write_block};
use vc_chash::{History, Scheme};
use vc_store::{StateReadExt, Store};

const CHILD_ENV: &str = "VC_STORE_CRASH_CHILD_DB";
/// The child's first branch (`0`, or [`WIDE`] for wide blocks): it writes that one and the two
/// after it.
const BRANCHES_ENV: &str = "VC_STORE_CRASH_CHILD_BRANCHES";
const FIRST: u64 = 1000;
const KILLS: usize = 24;
/// v3: the strictest scheme, whose consensus hashes also commit the state tree, so that the
/// tree too must come back from every crash exactly as an uninterrupted run builds it.
const SCHEME: Scheme = Scheme::V3;

/// The branch a stored block was generated on (see `common::block_hash`).
fn fork_of(hash: &[u8; 32]) -> u64 {
    u64::from_be_bytes(hash[24..32].try_into().unwrap())
}

/// The child: write forever. Started by `kill_nine_at_random_moments`.
#[test]
#[ignore = "the child process of kill_nine_at_random_moments"]
fn crash_child() {
    let path = std::env::var(CHILD_ENV).expect("run by kill_nine_at_random_moments");
    let base: u64 = std::env::var(BRANCHES_ENV).unwrap().parse().unwrap();
    let store = Store::open(&path, config(SCHEME, FIRST).with_undo_window(20)).unwrap();
    let ns = common::NAMES;
    let mut rng = mix(u64::from(std::process::id()) ^ Instant::now().elapsed().as_nanos() as u64);
    let mut next = || {
        rng = mix(rng);
        rng
    };
    loop {
        let mut w = store.writer().unwrap();
        // Whatever the machine's cores, so that wide blocks take the second thread.
        w.set_tree_thread(true);
        for _ in 0..next() % 40 + 1 {
            let h = w.next_height();
            write_block(&mut w, &ns, h, base);
        }
        if next() % 4 == 0 {
            // A reorg: revert a few blocks and apply a branch, maybe in a later commit.
            let depth = next() % 5 + 1;
            let tip = w.tip().unwrap().0;
            w.rollback_to(tip - depth).unwrap();
            if next() % 2 == 0 {
                w.commit().unwrap();
            }
            let fork = base + next() % 3;
            for _ in 0..depth {
                let h = w.next_height();
                write_block(&mut w, &ns, h, fork);
            }
        }
        w.commit().unwrap();
    }
}

/// Opens the store after a crash and checks every invariant; returns the tip and its model.
fn check_after_crash(path: &Path) -> (u64, Model) {
    let store = Store::open(path, config(SCHEME, FIRST).with_undo_window(20)).unwrap();
    let view = store.view().unwrap();
    let Some(tip) = view.tip().unwrap() else {
        return (FIRST - 1, Model::new(SCHEME, FIRST));
    };
    // The chain is contiguous, links, and every block is one the generator made.
    let mut model = Model::new(SCHEME, FIRST);
    let mut prev = None;
    for h in FIRST..=tip.height {
        let e = view
            .chain_entry(h)
            .unwrap()
            .unwrap_or_else(|| panic!("hole at {h}"));
        if let Some(p) = prev {
            assert_eq!(e.prev_hash, p, "block {h} does not link");
        }
        prev = Some(e.block_hash);
        let fork = fork_of(&e.block_hash);
        assert_eq!(e.block_hash, common::block_hash(h, fork).0);
        model.apply(fork);
        assert_eq!(
            view.ops(h).unwrap().len() as u32,
            e.op_count,
            "ops of block {h}"
        );
    }
    // Nothing above the tip.
    assert!(view.ops(tip.height + 1).unwrap().is_empty());
    assert_eq!(view.chain_entry(tip.height + 1).unwrap(), None);
    // State and every consensus hash equal an uninterrupted run over the same blocks.
    let ns = common::NAMES;
    let state: std::collections::BTreeMap<String, u64> =
        view.range(&ns, None, None).unwrap().into_iter().collect();
    assert_eq!(state, model.state(), "state at tip {}", tip.height);
    let roots = model.roots();
    let mem = model.history_with(&roots);
    for h in FIRST..=tip.height {
        assert_eq!(
            view.consensus_hash(h).unwrap(),
            mem.consensus_hash(h).unwrap(),
            "CH at {h}"
        );
    }
    // The state tree equals the model's at every height, and proves the tip's state.
    for h in FIRST..=tip.height {
        assert_eq!(
            view.tree_root(h).unwrap(),
            Some(roots[(h - FIRST) as usize]),
            "state root at {h}"
        );
    }
    for (key, value) in model.state().iter().take(5) {
        let p = view
            .state_proof("names", key.as_bytes(), tip.height, tip.height)
            .unwrap();
        let ok = vc_chash::state::proof::verify(
            &p.encode(),
            FIRST,
            tip.height,
            &tip.consensus_hash,
            tip.height,
            b"names",
            key.as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.value, Some(common::stored_u64(*value)));
    }
    // The undo logs cover a contiguous range ending at the tip.
    let (lo, hi) = view.undo_heights().unwrap().unwrap();
    assert_eq!(hi, tip.height);
    for h in lo..=hi {
        assert!(store.view().unwrap().chain_entry(h).unwrap().is_some());
    }
    (tip.height, model)
}

#[test]
fn kill_nine_at_random_moments() {
    kill_nine(0);
}

#[test]
fn kill_nine_at_random_moments_with_wide_blocks() {
    kill_nine(WIDE);
}

/// Kills the child writing branches `base` to `base + 2` [`KILLS`] times, checking the file
/// after each kill, then continues the chain and checks that too.
fn kill_nine(base: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x5eed_u64;
    let mut tips = Vec::new();
    for _ in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(BRANCHES_ENV, base.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng = mix(rng);
        std::thread::sleep(Duration::from_millis(60 + rng % 400));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited on its own"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (tip, _) = check_after_crash(&path);
        tips.push(tip);
    }
    // The child made progress across the kills (it was killed while writing, not before).
    assert!(tips.last().unwrap() > &(FIRST + 100), "tips: {tips:?}");
    eprintln!("tips after each SIGKILL: {tips:?}");

    // Continuing after the last crash gives the same hashes as the uninterrupted model.
    let (tip, mut model) = check_after_crash(&path);
    let store = Store::open(&path, config(SCHEME, FIRST).with_undo_window(20)).unwrap();
    let ns = common::NAMES;
    let mut w = store.writer().unwrap();
    w.set_tree_thread(true);
    for h in tip + 1..tip + 51 {
        write_block(&mut w, &ns, h, base);
        model.apply(base);
    }
    w.commit().unwrap();
    drop(w);
    let view = store.view().unwrap();
    let mem = model.history();
    for h in tip + 1..tip + 51 {
        assert_eq!(
            view.consensus_hash(h).unwrap(),
            mem.consensus_hash(h).unwrap()
        );
    }
}
