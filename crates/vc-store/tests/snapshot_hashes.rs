//! Which block hashes a snapshot import proves: as far as the scheme's consensus hash commits
//! them (a `snapshot_import` fuzz finding, where a changed parent hash of the first block was
//! accepted and the target expected it refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{config, exported, rewrite_snapshot};
use vc_chash::{History, Scheme};
use vc_store::snapshot::{self, Frame};

const FIRST: u64 = 40;
const TIP: u64 = FIRST + 9;

/// v2 and v3 consensus hashes commit every block's hash, so a changed one is refused; a legacy
/// one commits none, so a legacy snapshot's block hashes only have to link to each other. The
/// first block's parent hash, which no scheme commits, is taken as it is. Whatever is accepted
/// holds the trusted chain's operations and consensus hashes at every height.
#[test]
fn a_snapshot_proves_block_hashes_as_far_as_its_scheme_commits_them() {
    for scheme in [Scheme::Legacy, Scheme::V2, Scheme::V3] {
        let dir = tempfile::tempdir().unwrap();
        let (store, honest) = exported(dir.path(), scheme, FIRST, TIP - FIRST + 1);
        let view = store.view().unwrap();
        let tip = view.tip().unwrap().unwrap();
        let trusted = (tip.height, tip.consensus_hash);

        // (what is changed, the block it is in, whether the scheme proves it)
        let lies = [
            ("the first block's parent hash", FIRST, false),
            ("the tip's block hash", TIP, scheme != Scheme::Legacy),
        ];
        for (i, (lie, height, proven)) in lies.into_iter().enumerate() {
            let snap = dir.path().join(format!("lie{i}"));
            std::fs::copy(&honest, &snap).unwrap();
            rewrite_snapshot(&snap, |f| {
                if let Frame::Block {
                    height: h, entry, ..
                } = f
                    && *h == height
                {
                    let hash = match height {
                        FIRST => &mut entry.prev_hash,
                        _ => &mut entry.block_hash,
                    };
                    hash[12] ^= 1;
                }
            });
            let target = dir.path().join(format!("lie{i}.redb"));
            let imported = snapshot::import(&snap, &target, config(scheme, FIRST), trusted);
            match (imported, proven) {
                (Err(_), true) => assert!(!target.exists(), "{scheme}, {lie}: a database"),
                (Ok((store, _)), false) => {
                    let got = store.view().unwrap();
                    for h in FIRST..=TIP {
                        let (a, b) = (
                            got.chain_entry(h).unwrap().unwrap(),
                            view.chain_entry(h).unwrap().unwrap(),
                        );
                        assert_eq!(
                            (a.ops_hash, a.consensus_hash, a.op_count),
                            (b.ops_hash, b.consensus_hash, b.op_count),
                            "{scheme}, {lie}: block {h}"
                        );
                        assert_eq!(
                            got.consensus_hash(h).unwrap(),
                            view.consensus_hash(h).unwrap()
                        );
                    }
                    let changed = got.chain_entry(height).unwrap().unwrap();
                    assert_ne!(changed, view.chain_entry(height).unwrap().unwrap());
                }
                (Ok(_), true) => panic!("{scheme}: a snapshot with {lie} changed was accepted"),
                (Err(e), false) => panic!("{scheme}: {lie} is not proven, yet refused: {e}"),
            }
        }
    }
}
