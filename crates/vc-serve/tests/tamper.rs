//! A malicious server: a proxy in front of an honest one rewrites each proof it forwards
//! (operations, ops hashes, prior consensus hashes, heights, accumulator paths, a proof of
//! another block or against another trusted block, raw bytes). A thousand randomized
//! tamperings, over both schemes, and the light client refutes every one.
//!
//! Two legacy changes are not lies the legacy hash can see, because it sorts its leaves:
//! reordering a block's records and permuting a step's priors. They are drawn too, and must
//! leave the verified block exactly as the honest proof gives it; they do not count among the
//! thousand. (A permutation crafted to redirect the walk is an attack legacy proofs cannot
//! stop: `vc-chash/tests/legacy_limits.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use vc_chash::proof::Proof;
use vc_chash::{Hash256, Scheme};
use vc_light::{LightClient, Trusted};
use vc_serve::{ServeConfig, Server};
use vc_store::ReadOnlyStore;
use vc_testnode::synthetic::{self, mix};

#[path = "support/liar.rs"]
mod liar;
use liar::Liar;

const FIRST: u64 = 50;
const BLOCKS: u64 = 400;

fn records(p: &mut Proof) -> &mut Vec<Vec<u8>> {
    match p {
        Proof::Legacy(l) => &mut l.records,
        Proof::V2(v) => &mut v.records,
    }
}

fn flip(h: &mut Hash256, r: u64) {
    h.0[(r % 32) as usize] ^= 1 << (r % 8);
}

fn flip16(h: &mut [u8; 16], r: u64) {
    h[(r % 16) as usize] ^= 1 << (r % 8);
}

/// One tampering of the honest proof of `m` against `n`: its name and the bytes served, or
/// `None` when it does not apply to this proof (the caller draws again).
fn tamper(
    kind: u64,
    r: u64,
    honest: &Proof,
    fetch: &dyn Fn(u64, u64) -> Vec<u8>,
    m: u64,
    n: u64,
) -> Option<(&'static str, Vec<u8>)> {
    let mut p = honest.clone();
    let name = match kind {
        0 => {
            let rs = records(&mut p);
            let i = (r % rs.len().max(1) as u64) as usize;
            let rec = rs.get_mut(i)?;
            if rec.is_empty() {
                return None;
            }
            let j = (r >> 8) as usize % rec.len();
            rec[j] ^= 1 << (r % 8);
            "operation altered"
        }
        1 => {
            let rs = records(&mut p);
            if rs.is_empty() {
                return None;
            }
            rs.remove((r % rs.len() as u64) as usize);
            "operation dropped"
        }
        2 => {
            let rs = records(&mut p);
            let at = (r % (rs.len() as u64 + 1)) as usize;
            rs.insert(at, format!("forged {r}").into_bytes());
            "operation inserted"
        }
        3 => {
            let rs = records(&mut p);
            if rs.len() < 2 || rs[0] == rs[rs.len() - 1] {
                return None;
            }
            let last = rs.len() - 1;
            rs.swap(0, last);
            "operations reordered"
        }
        4 => {
            match &mut p {
                Proof::Legacy(l) => {
                    let s = (r % l.steps.len() as u64) as usize;
                    flip(&mut l.steps[s].ops_hash, r >> 8);
                }
                Proof::V2(v) => flip(&mut v.link.as_mut()?.ops_hash, r),
            }
            "ops hash altered"
        }
        5 => {
            match &mut p {
                Proof::Legacy(l) => {
                    let s = (r % l.steps.len() as u64) as usize;
                    let priors = &mut l.steps[s].priors;
                    if priors.is_empty() {
                        return None;
                    }
                    let i = (r >> 8) as usize % priors.len();
                    flip16(&mut priors[i], r >> 16);
                }
                Proof::V2(v) => flip(&mut v.priors_hash, r),
            }
            "prior consensus hash altered"
        }
        6 => {
            match &mut p {
                Proof::Legacy(l) => {
                    if l.target_priors.is_empty() {
                        return None;
                    }
                    let i = (r % l.target_priors.len() as u64) as usize;
                    flip16(&mut l.target_priors[i], r >> 8);
                }
                Proof::V2(v) => flip(&mut v.mmr_root, r),
            }
            "target priors or accumulator root altered"
        }
        7 => {
            match &mut p {
                Proof::Legacy(l) => {
                    let s = (r % l.steps.len() as u64) as usize;
                    let priors = &mut l.steps[s].priors;
                    if priors.is_empty() {
                        return None;
                    }
                    priors.remove((r >> 8) as usize % priors.len());
                }
                Proof::V2(v) => {
                    let path = &mut v.link.as_mut()?.path;
                    let all: Vec<&mut Hash256> = path
                        .siblings
                        .iter_mut()
                        .chain(path.left_peaks.iter_mut())
                        .chain(path.right_bag.iter_mut())
                        .collect();
                    let len = all.len();
                    if len == 0 {
                        return None;
                    }
                    let h = all.into_iter().nth((r % len as u64) as usize)?;
                    flip(h, r >> 8);
                }
            }
            "walk or accumulator path altered"
        }
        8 => {
            match &mut p {
                Proof::Legacy(_) => return None,
                Proof::V2(v) => flip(&mut v.block_hash, r),
            }
            "block hash altered"
        }
        9 => {
            let other = FIRST + r % (n - FIRST + 1);
            if other == m {
                return None;
            }
            return Some(("proof of another block", fetch(n, other)));
        }
        10 => {
            let other = FIRST + r % (n - FIRST + 1);
            if other == m {
                return None;
            }
            let mut q = Proof::decode(&fetch(n, other)).unwrap();
            match &mut q {
                Proof::Legacy(l) => l.header.target = m,
                Proof::V2(v) => v.header.target = m,
            }
            return Some(("another block's proof relabelled", q.encode()));
        }
        11 => {
            let other = m + r % (FIRST + BLOCKS - m);
            if other == n {
                return None;
            }
            return Some(("proof against another trusted block", fetch(other, m)));
        }
        12 => {
            let delta = 1 + r % 3;
            match &mut p {
                Proof::Legacy(l) => match r % 3 {
                    0 => l.header.target = l.header.target.checked_sub(delta)?,
                    1 => l.header.trusted += delta,
                    _ => l.header.first_block += delta,
                },
                Proof::V2(v) => match r % 3 {
                    0 => v.header.target = v.header.target.checked_sub(delta)?,
                    1 => v.header.trusted += delta,
                    _ => v.header.first_block += delta,
                },
            }
            "heights altered"
        }
        15 => {
            let rs = records(&mut p);
            if rs.is_empty() {
                return None;
            }
            let i = (r % rs.len() as u64) as usize;
            let copy = rs[i].clone();
            rs.insert(i, copy);
            "operation duplicated"
        }
        16 => {
            match &mut p {
                Proof::Legacy(l) => {
                    let s = (r % l.steps.len() as u64) as usize;
                    let priors = &mut l.steps[s].priors;
                    if priors.len() < 2 {
                        return None;
                    }
                    let i = (r >> 8) as usize % priors.len();
                    let j = (i + 1) % priors.len();
                    priors.swap(i, j);
                }
                Proof::V2(_) => return None,
            }
            "priors permuted"
        }
        13 => {
            let mut bytes = honest.encode();
            let i = (r % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << ((r >> 8) % 8);
            return Some(("a byte flipped", bytes));
        }
        14 => {
            let mut bytes = honest.encode();
            let keep = (r % bytes.len() as u64) as usize;
            bytes.truncate(keep);
            return Some(("truncated", bytes));
        }
        _ => return None,
    };
    Some((name, p.encode()))
}

#[test]
fn a_thousand_tampered_proofs_are_all_refuted() {
    let liar = Liar::start();
    let mut refuted: BTreeMap<(Scheme, &'static str), u32> = BTreeMap::new();
    let mut total = 0;
    let mut accepted: BTreeMap<(Scheme, &'static str), u32> = BTreeMap::new();
    let mut harmless: BTreeMap<&'static str, u32> = BTreeMap::new();
    for (scheme, seed) in [(Scheme::Legacy, 1u64), (Scheme::V2, 2u64)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (_store, chs) = synthetic::create(&path, scheme, FIRST, BLOCKS).unwrap();
        let server = Server::bind(
            ReadOnlyStore::open(&path).unwrap(),
            None,
            ServeConfig::new("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap()
        .spawn()
        .unwrap();
        let honest = LightClient::new(&server.url(), Duration::from_secs(10)).unwrap();
        let fetch = |n: u64, m: u64| honest.proof(n, m).unwrap();
        let client = LightClient::new(&liar.url, Duration::from_secs(10)).unwrap();
        let mut i = 0u64;
        let mut done = 0;
        while done < 500 {
            i += 1;
            let r = mix(seed << 32 | i);
            let n = FIRST + r % BLOCKS;
            let m = FIRST + mix(r) % (n - FIRST + 1);
            let trusted = Trusted {
                height: n,
                consensus_hash: chs[(n - FIRST) as usize],
            };
            let bytes = fetch(n, m);
            let proof = Proof::decode(&bytes).unwrap();
            // Through the liar, the honest proof verifies: the proxy itself is sound.
            if i % 50 == 1 {
                liar.tell(bytes.clone());
                client.verify(FIRST, &trusted, m).unwrap();
            }
            let Some((what, lie)) = tamper(mix(r ^ 7) % 17, mix(r ^ 11), &proof, &fetch, m, n)
            else {
                continue;
            };
            if lie == bytes {
                continue;
            }
            liar.tell(lie);
            let e = match client.verify(FIRST, &trusted, m) {
                // Legacy hashes sort their leaves: record order and the positions of priors
                // are not committed. Such a change must then change nothing the client sees.
                Ok(b)
                    if scheme == Scheme::Legacy
                        && matches!(what, "operations reordered" | "priors permuted")
                        && b == proof.verify(FIRST, n, &trusted.consensus_hash, m).unwrap() =>
                {
                    *harmless.entry(what).or_default() += 1;
                    continue;
                }
                Ok(_) => {
                    *accepted.entry((scheme, what)).or_default() += 1;
                    continue;
                }
                Err(e) => e,
            };
            // Caught either way: refuted by verification, or refused as a proof that does not
            // even decode (which the CLI reports as malformed, exit 2, not as a refutation).
            assert!(
                e.is_refutation() || matches!(e, vc_light::LightError::MalformedProof { .. }),
                "{e}"
            );
            *refuted.entry((scheme, what)).or_default() += 1;
            done += 1;
        }
        total += done;
        server.shutdown().unwrap();
    }
    eprintln!("{total} tampered proofs refuted: {refuted:#?}");
    eprintln!("legacy changes without effect on the verified block: {harmless:?}");
    assert!(accepted.is_empty(), "accepted lies: {accepted:#?}");
    assert_eq!(total, 1000);
    // Every kind of lie was told, in each scheme it applies to.
    let kinds = |s: Scheme| refuted.keys().filter(|(k, _)| *k == s).count();
    assert_eq!(kinds(Scheme::Legacy), 15, "{refuted:#?}");
    assert_eq!(kinds(Scheme::V2), 16, "{refuted:#?}");
}
