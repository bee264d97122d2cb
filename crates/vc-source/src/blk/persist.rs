//! The block index kept on disk ([`super::BlkConfig::index_file`]), so that opening a mainnet
//! blocks directory reads one file instead of seeking to the header of every block in
//! thousands of blk files.
//!
//! The file holds what the scan found: every header with its location, and where the next scan
//! continues in each blk file. Loading adds the headers again (proof of work checked, linked
//! by hash), then scans only what the node appended since. Nothing in it is trusted blindly:
//!
//! * a SHA-256 checksum over the whole file catches damage (a flipped byte, a truncated file);
//! * the format version, the network's magic and the `xor.dat` key must match the directory;
//! * each blk file listed must still be at least as long as when it was scanned, and the last
//!   header indexed in it must still be where the index says (a directory replaced by another
//!   copy, or re-synced from scratch, fails this).
//!
//! Any mismatch means the file is set aside with the reason and the directory scanned again (and
//! the file rewritten): the index is a cache of the blk files, never a second truth.
//!
//! Layout, little-endian: `VCBLKIDX`, version (u32), network magic (4), xor key (8), the blk
//! files (count u32; each: number u32, next scan offset u64, size u64), the newest file at the
//! scan (u32, `u32::MAX` for none), the records (count u64; each: header 80, file u32,
//! offset u64, length u32), then SHA-256 of everything before it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use sha2::{Digest, Sha256};

use super::files::{FlatFile, Span, XorKey, file_error, numbered_path};
use super::index::{ChainIndex, Loc};
use crate::error::SourceError;

const MAGIC: &[u8; 8] = b"VCBLKIDX";
const VERSION: u32 = 1;
/// A header, its file, offset and length.
const RECORD: usize = 80 + 4 + 8 + 4;

/// What a blk file looked like when it was scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Where the next scan continues.
    pub next: u64,
    /// The file's size then.
    pub size: u64,
}

/// An index read back from disk, with the scan positions it was saved with.
pub(crate) struct Loaded {
    pub index: ChainIndex,
    pub files: BTreeMap<u32, Scanned>,
    pub last: Option<u32>,
}

/// Why a saved index was not used (the directory is scanned instead).
#[derive(Debug)]
pub(crate) enum Refused {
    /// There is no file yet.
    Missing,
    /// The file is unusable: damaged, another directory's or another format's.
    Unusable(String),
}

/// Reads through a SHA-256 of everything read.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Hashing<R> {
    fn exact<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        self.hash.update(buf);
        Ok(buf)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Reads the index at `path` for the blocks directory `dir` (network `magic`, key `key`),
/// building it for `network`.
pub(crate) fn load(
    path: &Path,
    dir: &Path,
    network: bitcoin::Network,
    key: XorKey,
) -> Result<Loaded, Refused> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(Refused::Missing),
        Err(e) => return Err(Refused::Unusable(format!("cannot open it: {e}"))),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    };
    let bad = |what: &str| Refused::Unusable(what.to_string());
    let io = |e: std::io::Error| {
        if e.kind() == ErrorKind::UnexpectedEof {
            bad("it ends early (truncated)")
        } else {
            Refused::Unusable(format!("reading it: {e}"))
        }
    };
    if &r.exact::<8>().map_err(io)? != MAGIC {
        return Err(bad("not a block index file"));
    }
    let version = u32::from_le_bytes(r.exact().map_err(io)?);
    if version != VERSION {
        return Err(Refused::Unusable(format!(
            "format version {version}, expected {VERSION}"
        )));
    }
    if r.exact::<4>().map_err(io)? != network.magic().to_bytes() {
        return Err(bad("it indexes another network's blocks"));
    }
    if r.exact::<8>().map_err(io)? != key.0 {
        return Err(bad("it was made with another xor.dat key"));
    }
    let count = u32::from_le_bytes(r.exact().map_err(io)?);
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let b: [u8; 20] = r.exact().map_err(io)?;
        files.insert(
            u32_at(&b, 0),
            Scanned {
                next: u64_at(&b, 4),
                size: u64_at(&b, 12),
            },
        );
    }
    let last = match u32::from_le_bytes(r.exact().map_err(io)?) {
        u32::MAX => None,
        n => Some(n),
    };
    let records = u64::from_le_bytes(r.exact().map_err(io)?);
    let mut index = ChainIndex::new(network);
    // The count is checked against the checksum only at the end: reserve no more than the
    // file can hold.
    index.reserve(usize::try_from(records.min(size / RECORD as u64)).unwrap_or(0));
    // The last header indexed in each file, to check against the file itself.
    let mut last_in: BTreeMap<u32, (u64, [u8; 80])> = BTreeMap::new();
    for _ in 0..records {
        let b: [u8; RECORD] = r.exact().map_err(io)?;
        let mut raw = [0u8; 80];
        raw.copy_from_slice(&b[..80]);
        let header: Header = deserialize(&raw).map_err(|e| Refused::Unusable(e.to_string()))?;
        let hash = crate::body::header_hash(&raw);
        let loc = Loc {
            file: u32_at(&b, 80),
            span: Span {
                offset: u64_at(&b, 84),
                len: u32_at(&b, 92),
            },
        };
        if !files.contains_key(&loc.file) {
            return Err(bad("a header lies in a blk file the index does not list"));
        }
        let newest = last_in.entry(loc.file).or_insert((loc.span.offset, raw));
        if loc.span.offset >= newest.0 {
            *newest = (loc.span.offset, raw);
        }
        index.add_hashed(header, hash, loc);
    }
    let sum: [u8; 32] = r.hash.clone().finalize().into();
    let mut stored = [0u8; 32];
    r.inner.read_exact(&mut stored).map_err(io)?;
    if sum != stored {
        return Err(bad("its checksum does not match (the file is damaged)"));
    }
    if r.inner.read(&mut [0u8; 1]).map_err(io)? != 0 {
        return Err(bad("bytes follow its checksum"));
    }
    for (&n, scanned) in &files {
        let path = numbered_path(dir, "blk", n);
        let blk = FlatFile::open(path.clone(), key)
            .map_err(|e| Refused::Unusable(format!("blk file {n}: {e}")))?;
        if blk.size < scanned.size {
            return Err(Refused::Unusable(format!(
                "{} is shorter ({} bytes) than when it was indexed ({} bytes)",
                path.display(),
                blk.size,
                scanned.size
            )));
        }
        if let Some((offset, raw)) = last_in.get(&n) {
            let now = blk
                .read(*offset, 80)
                .map_err(|e| Refused::Unusable(e.to_string()))?;
            if now != raw {
                return Err(Refused::Unusable(format!(
                    "{} holds another block at offset {offset} than the one indexed there",
                    path.display()
                )));
            }
        }
    }
    Ok(Loaded { index, files, last })
}

/// Writes `index` with the scan positions `files` and `last` to `path` (through a temporary
/// file renamed over it, so that a crash leaves the old index or the new one).
pub(crate) fn save(
    path: &Path,
    network: bitcoin::Network,
    key: XorKey,
    index: &ChainIndex,
    files: &BTreeMap<u32, Scanned>,
    last: Option<u32>,
) -> Result<(), SourceError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let fail = |e: std::io::Error| file_error(&tmp, 0, format!("writing the block index: {e}"));
    let file = File::create(&tmp).map_err(fail)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    let mut put = |w: &mut BufWriter<File>, bytes: &[u8]| -> std::io::Result<()> {
        hash.update(bytes);
        w.write_all(bytes)
    };
    let count = u32::try_from(files.len()).unwrap_or(u32::MAX);
    let records = index.len() as u64;
    let mut head = Vec::with_capacity(64 + files.len() * 20);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&network.magic().to_bytes());
    head.extend_from_slice(&key.0);
    head.extend_from_slice(&count.to_le_bytes());
    for (n, s) in files.iter().take(count as usize) {
        head.extend_from_slice(&n.to_le_bytes());
        head.extend_from_slice(&s.next.to_le_bytes());
        head.extend_from_slice(&s.size.to_le_bytes());
    }
    head.extend_from_slice(&last.unwrap_or(u32::MAX).to_le_bytes());
    head.extend_from_slice(&records.to_le_bytes());
    put(&mut w, &head).map_err(fail)?;
    let mut result = Ok(());
    let mut record = [0u8; RECORD];
    index.for_each_record(|header, loc| {
        if result.is_err() {
            return;
        }
        record[..80].copy_from_slice(&serialize(header));
        record[80..84].copy_from_slice(&loc.file.to_le_bytes());
        record[84..92].copy_from_slice(&loc.span.offset.to_le_bytes());
        record[92..96].copy_from_slice(&loc.span.len.to_le_bytes());
        result = put(&mut w, &record);
    });
    result.map_err(fail)?;
    let sum: [u8; 32] = hash.finalize().into();
    w.write_all(&sum).map_err(fail)?;
    let file = w.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| {
        file_error(
            path,
            0,
            format!("replacing the block index with {}: {e}", tmp.display()),
        )
    })
}
