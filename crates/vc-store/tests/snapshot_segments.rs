//! Snapshots carry a migrated chain's segments: a store with segments (written as the migration
//! code writes them) exports and imports into a store with the same segments; a snapshot with
//! no segments frame (one of a chain that never migrated, or made before the frame existed)
//! imports with none; and a snapshot whose segments are malformed (its checksum made to match)
//! is refused, leaving no database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{config, write_block};
use sha2::{Digest, Sha256};
use vc_chash::migration::{Announcement, BoundaryRecord, ChainId};
use vc_chash::{Hash256, History, Scheme};
use vc_store::snapshot::{self, Frame};
use vc_store::{Segment, Store, StoreError};

const FIRST: u64 = 40;
/// `H_A`: the last block read from chain A.
const LAST_A: u64 = FIRST + 9;
/// The tip, on chain B.
const TIP: u64 = FIRST + 19;

/// Rewrites the snapshot at `path` frame by frame through `edit` (`None` drops the frame), with
/// a fresh checksum.
fn rewrite(path: &Path, mut edit: impl FnMut(Frame) -> Option<Frame>) {
    let bytes = std::fs::read(path).unwrap();
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let frame: Frame = vc_codec::storage::from_bytes(&bytes[at + 4..at + 4 + len]).unwrap();
        at += 4 + len;
        let frame = match frame {
            Frame::End(_) => Frame::End(Sha256::digest(&out).into()),
            other => match edit(other) {
                Some(f) => f,
                None => continue,
            },
        };
        let body = vc_codec::storage::to_bytes(&frame).unwrap();
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
    }
    std::fs::write(path, out).unwrap();
}

/// Segment 0 from chain A up to `LAST_A`, segment 1 from chain B (its block 500 on), bound by a
/// boundary record naming `ch_a`.
fn migrated(ch_a: Hash256) -> Vec<Segment> {
    let chain_b = ChainId {
        magic: [0xfa, 0xbf, 0xb5, 0xda],
        genesis: Hash256([0xbb; 32]),
    };
    let record = BoundaryRecord {
        announcement: Announcement {
            last_height: LAST_A,
            target: chain_b,
            anchor: Hash256([0xa0; 32]),
        },
        ch_a,
        commit_height: 498,
        commit_txid: Hash256([0xc0; 32]),
        reveal_height: 500,
        salt: [0x5a; 32],
    };
    vec![
        Segment {
            first_height: FIRST,
            last_height: Some(LAST_A),
            magic: [0xfa, 0xbf, 0xb5, 0xda],
            genesis: [0xaa; 32],
            chain_first: FIRST,
            binding: Vec::new(),
        },
        Segment {
            first_height: LAST_A + 1,
            last_height: None,
            magic: chain_b.magic,
            genesis: chain_b.genesis.0,
            chain_first: 500,
            binding: record.encode(),
        },
    ]
}

#[test]
fn snapshots_carry_segments_and_imports_check_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || config(Scheme::V2, FIRST);
    let store = Store::open(dir.path().join("src.redb"), cfg()).unwrap();
    let mut w = store.writer().unwrap();
    for h in FIRST..=TIP {
        write_block(&mut w, &common::NAMES, h, 0);
    }
    w.commit().unwrap();
    let ch_a = store
        .view()
        .unwrap()
        .consensus_hash(LAST_A)
        .unwrap()
        .unwrap();
    let segments = migrated(Hash256(ch_a.as_bytes().try_into().unwrap()));
    for s in &segments {
        w.put_segment(s).unwrap();
    }
    w.commit().unwrap();
    drop(w);
    let view = store.view().unwrap();
    assert_eq!(view.segments().unwrap(), segments);
    let tip = view.tip().unwrap().unwrap();
    assert_eq!(tip.height, TIP);
    let trusted = (tip.height, tip.consensus_hash);
    let snap = dir.path().join("snap");
    snapshot::export(&view, &snap).unwrap();

    // Honest: the same segments (and the same tip).
    let (imported, _) =
        snapshot::import(&snap, &dir.path().join("ok.redb"), cfg(), trusted).unwrap();
    let iview = imported.view().unwrap();
    assert_eq!(iview.segments().unwrap(), segments);
    assert_eq!(iview.tip().unwrap(), Some(tip));

    // Without the frame (an older snapshot): imports as before, with no segments.
    let old = dir.path().join("old");
    std::fs::copy(&snap, &old).unwrap();
    let mut dropped = 0;
    rewrite(&old, |f| match f {
        Frame::Segments(_) => {
            dropped += 1;
            None
        }
        other => Some(other),
    });
    assert_eq!(dropped, 1);
    let (imported, _) =
        snapshot::import(&old, &dir.path().join("old.redb"), cfg(), trusted).unwrap();
    assert!(imported.view().unwrap().segments().unwrap().is_empty());

    // Malformed segments, with a matching checksum.
    type Edit = Box<dyn Fn(&mut Vec<Segment>)>;
    let lies: Vec<(&str, &str, Edit)> = vec![
        (
            "a gap",
            "does not follow",
            Box::new(|s| s[1].first_height += 1),
        ),
        (
            "a first segment after the first block",
            "first block",
            Box::new(|s| s[0].first_height += 1),
        ),
        (
            "two open segments",
            "follows an open segment",
            Box::new(|s| s[0].last_height = None),
        ),
        (
            "the last segment closed below the tip",
            "below the tip",
            Box::new(|s| s[1].last_height = Some(TIP - 1)),
        ),
        (
            "a segment above the tip",
            "above the tip",
            Box::new(|s| {
                s[1].last_height = Some(TIP + 5);
                let mut next = s[1].clone();
                next.first_height = TIP + 6;
                next.last_height = None;
                s.push(next);
            }),
        ),
        (
            "a binding whose CH_A is not the consensus hash at H_A",
            "CH_A",
            Box::new(|s| s[1].binding[10] ^= 1),
        ),
        (
            "a binding that is not a boundary record",
            "not a boundary record",
            Box::new(|s| s[1].binding.truncate(20)),
        ),
        (
            "a binding for another chain",
            "boundary record names",
            Box::new(|s| s[1].genesis[0] ^= 1),
        ),
        ("no segments", "empty", Box::new(|s| s.clear())),
    ];
    for (what, expect, edit) in lies {
        let bad = dir.path().join("bad");
        std::fs::copy(&snap, &bad).unwrap();
        rewrite(&bad, |f| match f {
            Frame::Segments(mut s) => {
                edit(&mut s);
                Some(Frame::Segments(s))
            }
            other => Some(other),
        });
        let target = dir.path().join("bad.redb");
        match snapshot::import(&bad, &target, cfg(), trusted) {
            Err(StoreError::Snapshot { reason, .. }) => {
                assert!(!target.exists(), "{what}: a database was left behind");
                assert!(
                    reason.contains("segments") && reason.contains(expect),
                    "{what}: {reason}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
