//! Validated headers kept on disk ([`super::ElectrumConfig::header_cache`]), so that a restart
//! validates only the headers the server added since, not mainnet's 900,000 again.
//!
//! The file is `VCHDRS01`, the network's genesis hash (32 bytes), then the validated chain's
//! headers from the genesis block, 80 bytes each, appended as they validate (and cut back to
//! the fork point when the server reorganises). Nothing in it is taken on faith:
//!
//! * each header must link to the one below it, so every header but the last is committed to
//!   by its successor's hash; the last one is validated again by the rules, and the server's
//!   chain is compared with the loaded tip before the source is ready (a changed tip is a
//!   reorganisation like any other);
//! * a file that is damaged (bad preamble, a header that does not link) or cut inside a header
//!   keeps its linked prefix and is rewritten from there with the server's headers;
//! * a file made for another network is refused with [`SourceError::WrongNetwork`]: the
//!   configuration points at the wrong file, and overwriting it would lose another node's
//!   cache.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Network};

use super::NAME;
use crate::error::SourceError;

const MAGIC: &[u8; 8] = b"VCHDRS01";
const PREAMBLE: u64 = 8 + 32;
const HEADER: u64 = 80;

/// The networks whose genesis hash marks a cache as theirs.
const NETWORKS: [Network; 5] = [
    Network::Bitcoin,
    Network::Testnet,
    Network::Testnet4,
    Network::Signet,
    Network::Regtest,
];

fn file_error(path: &Path, offset: u64, detail: impl Into<String>) -> SourceError {
    SourceError::File {
        path: path.display().to_string(),
        offset,
        detail: detail.into(),
    }
}

/// The open cache file and how many headers it holds.
#[derive(Debug)]
pub(crate) struct HeaderCache {
    path: PathBuf,
    file: File,
    /// Headers in the file (the genesis header included).
    len: u64,
}

/// What was read from a cache: the linked headers with their hashes, and what was wrong with
/// the rest of the file, if anything.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub headers: Vec<Header>,
    pub hashes: Vec<BlockHash>,
    pub damage: Option<String>,
}

/// The hashes of the 80-byte headers in `raw`, computed on all cores for long chains.
fn hash_all(raw: &[u8]) -> Vec<BlockHash> {
    const CHUNK: usize = 50_000;
    let hash = |h: &[u8]| {
        let mut b = [0u8; 80];
        b.copy_from_slice(h);
        crate::body::header_hash(&b)
    };
    let headers = raw.chunks_exact(HEADER as usize);
    if headers.len() < 2 * CHUNK {
        return headers.map(hash).collect();
    }
    let per = per_thread(headers.len(), CHUNK);
    let mut out = vec![BlockHash::all_zeros(); headers.len()];
    std::thread::scope(|s| {
        for (src, dst) in raw.chunks(per * HEADER as usize).zip(out.chunks_mut(per)) {
            s.spawn(move || {
                for (h, d) in src.chunks_exact(HEADER as usize).zip(dst) {
                    *d = hash(h);
                }
            });
        }
    });
    out
}

/// Items per thread for `n` items split over the machine's cores, at least `min` each.
fn per_thread(n: usize, min: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    n.div_ceil(threads).max(min)
}

impl HeaderCache {
    /// Opens (or creates) the cache at `path` for `network` and reads its linked headers.
    pub fn open(path: &Path, network: Network) -> Result<(HeaderCache, Loaded), SourceError> {
        let fail = |e: std::io::Error| file_error(path, 0, format!("header cache: {e}"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(fail)?;
        let size = file.metadata().map_or(0, |m| m.len());
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(fail)?;
        let genesis = bitcoin::constants::genesis_block(network).header;
        let genesis_hash = genesis.block_hash();
        let mut damage = None;
        let fresh = |damage: &mut Option<String>, why: &str| {
            if !bytes.is_empty() {
                *damage = Some(why.to_string());
            }
            (vec![genesis], vec![genesis_hash])
        };
        let (headers, hashes) = if bytes.len() < PREAMBLE as usize {
            fresh(&mut damage, "the file is shorter than its preamble")
        } else if &bytes[..8] != MAGIC {
            fresh(&mut damage, "not a header cache")
        } else if bytes[8..40] != genesis_hash[..] {
            if let Some(other) = NETWORKS
                .into_iter()
                .find(|n| bitcoin::constants::genesis_block(*n).block_hash()[..] == bytes[8..40])
            {
                return Err(SourceError::WrongNetwork {
                    source_name: NAME,
                    expected: network,
                    found: format!("the header cache {} holds {other}'s chain", path.display()),
                });
            }
            fresh(&mut damage, "its genesis hash is damaged")
        } else {
            let body = &bytes[PREAMBLE as usize..];
            let whole = body.len() / HEADER as usize;
            if body.len() % HEADER as usize != 0 {
                damage = Some(format!(
                    "it ends inside header {whole} (a write was cut short)"
                ));
            }
            let mut headers = Vec::with_capacity(whole);
            for raw in body.chunks_exact(HEADER as usize) {
                match deserialize::<Header>(raw) {
                    Ok(h) => headers.push(h),
                    Err(_) => break,
                }
            }
            let mut hashes = hash_all(&body[..whole * HEADER as usize]);
            hashes.truncate(headers.len());
            // The linked prefix: header i must name header i - 1; when it does not, header
            // i - 1 is not committed to by anything either and goes too.
            let starts_well = hashes.first() == Some(&genesis_hash);
            let mut keep = usize::from(starts_well);
            while starts_well
                && keep < headers.len()
                && headers[keep].prev_blockhash == hashes[keep - 1]
            {
                keep += 1;
            }
            if starts_well && keep < headers.len() {
                damage = Some(format!(
                    "header {keep} does not link to the one below it (the file is damaged)"
                ));
                keep = keep.saturating_sub(1).max(1);
            }
            if !starts_well {
                fresh(&mut damage, "its first header is not the genesis header")
            } else {
                let (mut headers, mut hashes) = (headers, hashes);
                headers.truncate(keep);
                hashes.truncate(keep);
                (headers, hashes)
            }
        };
        let mut cache = HeaderCache {
            path: path.to_path_buf(),
            file,
            len: headers.len() as u64,
        };
        if bytes.len() as u64 != PREAMBLE + cache.len * HEADER || damage.is_some() {
            cache.rewrite_from(0, &headers)?;
        }
        Ok((
            cache,
            Loaded {
                headers,
                hashes,
                damage,
            },
        ))
    }

    /// Headers the file holds.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Makes the file hold `chain` (the validated headers from the genesis block), given that
    /// its first `unchanged` headers are already right: cuts it back to those and appends the
    /// rest.
    pub fn rewrite_from(&mut self, unchanged: u64, chain: &[Header]) -> Result<(), SourceError> {
        let keep = unchanged.min(self.len).min(chain.len() as u64);
        let fail = |e: std::io::Error| {
            file_error(
                &self.path,
                PREAMBLE + keep * HEADER,
                format!("writing the header cache: {e}"),
            )
        };
        if keep == 0 {
            let genesis = chain
                .first()
                .map(Header::block_hash)
                .unwrap_or_else(BlockHash::all_zeros);
            self.file.set_len(0).map_err(fail)?;
            self.file.seek(SeekFrom::Start(0)).map_err(fail)?;
            let mut preamble = MAGIC.to_vec();
            preamble.extend_from_slice(genesis.as_byte_array());
            self.file.write_all(&preamble).map_err(fail)?;
        } else {
            self.file.set_len(PREAMBLE + keep * HEADER).map_err(fail)?;
            self.file
                .seek(SeekFrom::Start(PREAMBLE + keep * HEADER))
                .map_err(fail)?;
        }
        let mut out = Vec::with_capacity((chain.len() - keep as usize) * HEADER as usize);
        for h in &chain[keep as usize..] {
            out.extend_from_slice(&serialize(h));
        }
        self.file.write_all(&out).map_err(fail)?;
        self.len = chain.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bitcoin::block::Version;
    use bitcoin::pow::Target;

    fn chain(n: usize) -> Vec<Header> {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
        let mut out = vec![genesis];
        for i in 0..n {
            let prev = out[out.len() - 1];
            let mut h = Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: prev.block_hash(),
                merkle_root: bitcoin::TxMerkleNode::from_byte_array([i as u8; 32]),
                time: prev.time + 1,
                bits: prev.bits,
                nonce: 0,
            };
            while h.validate_pow(Target::from_compact(h.bits)).is_err() {
                h.nonce += 1;
            }
            out.push(h);
        }
        out
    }

    fn written(n: usize) -> (tempfile::TempDir, PathBuf, Vec<Header>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headers");
        let headers = chain(n);
        let (mut cache, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
        assert_eq!(loaded.headers.len(), 1);
        assert!(loaded.damage.is_none());
        cache.rewrite_from(1, &headers).unwrap();
        (dir, path, headers)
    }

    #[test]
    fn headers_written_read_back_with_their_hashes() {
        let (_dir, path, headers) = written(40);
        let (cache, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
        assert!(loaded.damage.is_none());
        assert_eq!(loaded.headers, headers);
        assert_eq!(loaded.hashes[40], headers[40].block_hash());
        assert_eq!(cache.len(), 41);
    }

    #[test]
    fn a_reorganisation_cuts_the_file_back_to_the_fork() {
        let (_dir, path, headers) = written(40);
        let (mut cache, _) = HeaderCache::open(&path, Network::Regtest).unwrap();
        let mut other = headers[..31].to_vec();
        other[30].nonce ^= 1;
        cache.rewrite_from(30, &other).unwrap();
        let (_, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
        assert_eq!(loaded.headers, other);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            PREAMBLE + 31 * HEADER
        );
    }

    #[test]
    fn a_flipped_byte_keeps_only_the_linked_prefix() {
        let (_dir, path, headers) = written(40);
        let clean = std::fs::read(&path).unwrap();
        // A byte of header 20 (its merkle root): header 21 no longer links, and header 20,
        // which nothing vouches for now, goes with it.
        for (at, keep) in [
            (PREAMBLE + 20 * HEADER + 40, 20),
            (PREAMBLE + 21 * HEADER + 4, 20),
        ] {
            let mut bad = clean.clone();
            bad[at as usize] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            let (cache, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
            assert!(loaded.damage.unwrap().contains("does not link"));
            assert_eq!(loaded.headers, headers[..keep]);
            assert_eq!(cache.len(), keep as u64);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                PREAMBLE + keep as u64 * HEADER,
                "the file is cut back to what was kept"
            );
        }
    }

    #[test]
    fn a_cut_write_or_a_damaged_preamble_is_rebuilt() {
        let (_dir, path, headers) = written(40);
        let clean = std::fs::read(&path).unwrap();
        std::fs::write(&path, &clean[..clean.len() - 30]).unwrap();
        let (_, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
        assert!(loaded.damage.unwrap().contains("cut short"));
        assert_eq!(loaded.headers, headers[..40]);
        // The magic, the genesis hash, and the genesis header itself.
        for at in [0, 3, 9, 39, 40, 80, 119] {
            let mut bad = clean.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let (cache, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
            assert!(loaded.damage.is_some(), "byte {at}");
            assert_eq!(loaded.headers.len(), 1, "byte {at}");
            assert_eq!(cache.len(), 1);
        }
    }

    #[test]
    fn every_flipped_byte_keeps_a_prefix_of_the_chain_and_never_panics() {
        let (_dir, path, headers) = written(12);
        let clean = std::fs::read(&path).unwrap();
        // Every byte of the preamble and the first headers, then a spread.
        for at in (0..clean.len()).filter(|i| *i < 300 || i % 7 == 0) {
            let mut bad = clean.clone();
            bad[at] ^= 0x08;
            std::fs::write(&path, &bad).unwrap();
            let (_, loaded) = HeaderCache::open(&path, Network::Regtest).unwrap();
            let n = loaded.headers.len();
            assert!(n >= 1, "byte {at}");
            // The tip may be the damaged header (nothing vouches for it; the source validates
            // it again), everything below it is the chain as written.
            assert_eq!(loaded.headers[..n - 1], headers[..n - 1], "byte {at}");
            if n < headers.len() {
                assert!(loaded.damage.is_some(), "byte {at}");
            }
        }
    }

    #[test]
    fn another_networks_cache_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headers");
        HeaderCache::open(&path, Network::Testnet).unwrap();
        let before = std::fs::read(&path).unwrap();
        match HeaderCache::open(&path, Network::Regtest) {
            Err(SourceError::WrongNetwork {
                expected, found, ..
            }) => {
                assert_eq!(expected, Network::Regtest);
                assert!(found.contains("testnet"), "{found}");
            }
            other => panic!("expected a wrong network, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
