//! Reading Core's flat files: the XOR key, record framing and record scanning.
//!
//! A `blk?????.dat` or `rev?????.dat` file is a sequence of records, each
//! `magic(4) length(4, little-endian) payload(length)`; rev records are followed by a 32-byte
//! checksum outside the length. Core preallocates files in chunks, so runs of zero bytes (on
//! disk, before de-obfuscation) may sit between records and after the last one, and the file the
//! node is writing may end in a partly written record. Since Core 28 every byte is XORed with
//! the 8-byte key in `blocks/xor.dat`, repeating from the start of the file.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::{BlockHash, Network};
use vc_chash::hex;

use crate::error::SourceError;

/// Core's `MAX_BLOCK_SERIALIZED_SIZE`: no record may be longer.
pub(crate) const MAX_RECORD: u32 = 4_000_000;

/// The networks whose magic we recognise, to name a wrong one.
const NETWORKS: [Network; 4] = [
    Network::Bitcoin,
    Network::Testnet,
    Network::Signet,
    Network::Regtest,
];

pub(crate) fn file_error(path: &Path, offset: u64, detail: impl Into<String>) -> SourceError {
    SourceError::File {
        path: path.display().to_string(),
        offset,
        detail: detail.into(),
    }
}

/// The obfuscation key of a blocks directory: the contents of `xor.dat`, or zeros without one
/// (Core before 28, or `-blocksxor=0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XorKey(pub [u8; 8]);

impl XorKey {
    /// Reads `dir/xor.dat`; a missing file means no obfuscation.
    pub fn load(dir: &Path) -> Result<XorKey, SourceError> {
        let path = dir.join("xor.dat");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    file_error(
                        &path,
                        0,
                        format!("xor.dat holds {} bytes, expected 8", bytes.len()),
                    )
                })?;
                Ok(XorKey(key))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(XorKey([0; 8])),
            Err(e) => Err(file_error(&path, 0, e.to_string())),
        }
    }

    /// Whether the key changes anything.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }

    /// De-obfuscates (or obfuscates) `buf`, which sits at byte `pos` of its file.
    pub fn apply(&self, pos: u64, buf: &mut [u8]) {
        if self.is_zero() {
            return;
        }
        // The key rotated so that its first byte applies at `pos`, then 8 bytes at a time.
        let mut rotated = [0u8; 8];
        for (i, r) in rotated.iter_mut().enumerate() {
            *r = self.0[(pos as usize + i) % 8];
        }
        let word = u64::from_ne_bytes(rotated);
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
        }
        for (b, k) in chunks.into_remainder().iter_mut().zip(rotated) {
            *b ^= k;
        }
    }
}

/// A record found in a file: where its payload starts and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub offset: u64,
    pub len: u32,
}

/// An open flat file with its key. Reads are positional, so clones share one handle across
/// threads.
#[derive(Clone)]
pub(crate) struct FlatFile {
    pub path: PathBuf,
    file: Arc<File>,
    key: XorKey,
    pub size: u64,
}

/// Reads exactly `buf.len()` bytes at `pos` without moving a shared cursor.
#[cfg(unix)]
fn read_at(file: &File, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
}

/// Reads exactly `buf.len()` bytes at `pos` without moving a shared cursor.
#[cfg(windows)]
fn read_at(file: &File, mut pos: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, pos)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
        }
    }
    Ok(())
}

impl FlatFile {
    pub fn open(path: PathBuf, key: XorKey) -> Result<FlatFile, SourceError> {
        let file = File::open(&path).map_err(|e| {
            let detail = if e.kind() == ErrorKind::NotFound {
                "file is missing (pruned, moved, or another datadir)".to_string()
            } else {
                e.to_string()
            };
            file_error(&path, 0, detail)
        })?;
        let size = file
            .metadata()
            .map_err(|e| file_error(&path, 0, e.to_string()))?
            .len();
        Ok(FlatFile {
            path,
            file: Arc::new(file),
            key,
            size,
        })
    }

    /// Takes the file's current size (the node may have appended since it was opened).
    pub fn refresh_size(&mut self) -> Result<(), SourceError> {
        self.size = self
            .file
            .metadata()
            .map_err(|e| file_error(&self.path, 0, e.to_string()))?
            .len();
        Ok(())
    }

    /// Reads `len` bytes at `pos` as they are on disk.
    pub fn read_raw(&self, pos: u64, len: usize) -> Result<Vec<u8>, SourceError> {
        let mut buf = vec![0u8; len];
        read_at(&self.file, pos, &mut buf)
            .map_err(|e| file_error(&self.path, pos, format!("reading {len} bytes: {e}")))?;
        Ok(buf)
    }

    /// Reads `len` de-obfuscated bytes at `pos` into `buf` (replacing its contents, keeping
    /// its allocation).
    pub fn read_into(&self, pos: u64, len: usize, buf: &mut Vec<u8>) -> Result<(), SourceError> {
        // Only growth is zeroed: the bytes are overwritten by the read anyway.
        if buf.len() < len {
            buf.resize(len, 0);
        } else {
            buf.truncate(len);
        }
        read_at(&self.file, pos, buf)
            .map_err(|e| file_error(&self.path, pos, format!("reading {len} bytes: {e}")))?;
        self.key.apply(pos, buf);
        Ok(())
    }

    /// Reads `len` de-obfuscated bytes at `pos`.
    pub fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, SourceError> {
        let mut buf = self.read_raw(pos, len)?;
        self.key.apply(pos, &mut buf);
        Ok(buf)
    }

    /// The offset of the first byte at or after `pos` that is not zero on disk, or the file
    /// size.
    fn skip_zeros(&self, mut pos: u64) -> Result<u64, SourceError> {
        const CHUNK: u64 = 64 * 1024;
        while pos < self.size {
            let n = CHUNK.min(self.size - pos) as usize;
            let chunk = self.read_raw(pos, n)?;
            match chunk.iter().position(|b| *b != 0) {
                Some(i) => return Ok(pos + i as u64),
                None => pos += n as u64,
            }
        }
        Ok(self.size)
    }

    /// Where the record after a run of zeros starts: `written` (the first byte not zero on
    /// disk), or up to 7 bytes before it when the record's first bytes are zero once obfuscated
    /// (key bytes equal to the magic's: `xor.dat` can hold `fa` where regtest's magic starts
    /// with `fa`). Never before `from`, the start of the zeros.
    fn record_start(&self, from: u64, written: u64, magic: [u8; 4]) -> Result<u64, SourceError> {
        let magic_at = |at: u64| -> Result<bool, SourceError> {
            if at + 4 > self.size {
                return Ok(false);
            }
            let mut head = [0u8; 4];
            head.copy_from_slice(&self.read_raw(at, 4)?);
            self.key.apply(at, &mut head);
            Ok(head == magic)
        };
        if magic_at(written)? {
            return Ok(written);
        }
        for back in 1..=7u64 {
            match written.checked_sub(back).filter(|a| *a >= from) {
                Some(at) if magic_at(at)? => return Ok(at),
                Some(_) => {}
                None => break,
            }
        }
        Ok(written)
    }

    /// Names what the 4 bytes at a record start are, when they are not `magic`: another
    /// network's magic, or data that a different XOR key would turn into a magic.
    fn diagnose(&self, raw: [u8; 4], pos: u64, magic: [u8; 4]) -> String {
        let mut plain = raw;
        self.key.apply(pos, &mut plain);
        for n in NETWORKS {
            let m = n.magic().to_bytes();
            if m != magic && m == plain {
                return format!(
                    "the record carries the network magic of {n}, not of this source's network"
                );
            }
        }
        if raw == magic && !self.key.is_zero() {
            return "the file is not obfuscated, but xor.dat holds a key: wrong xor.dat".into();
        }
        if pos == 0 {
            return format!(
                "the file does not start with the network magic {} (found {} after \
                 de-obfuscation): a wrong xor.dat key, or not a blk/rev file",
                hex::encode(&magic),
                hex::encode(&plain)
            );
        }
        format!(
            "expected a record with the network magic {}, found {}: the file is corrupt",
            hex::encode(&magic),
            hex::encode(&plain)
        )
    }

    /// Scans records from `from`. `trailer` is the number of bytes after each payload (32 for
    /// rev files). In the file the node may still be writing (`growing`), a record that does not
    /// fit ends the scan without an error; elsewhere it is a truncated file. Returns the records
    /// and where the next scan should start.
    pub fn scan(
        &self,
        from: u64,
        magic: [u8; 4],
        trailer: u64,
        growing: bool,
    ) -> Result<(Vec<Span>, u64), SourceError> {
        let mut spans = Vec::new();
        let mut pos = from;
        loop {
            if pos >= self.size {
                return Ok((spans, pos));
            }
            if pos + 8 > self.size {
                let rest = self.read_raw(pos, (self.size - pos) as usize)?;
                if growing || rest.iter().all(|b| *b == 0) {
                    return Ok((spans, pos));
                }
                return Err(file_error(
                    &self.path,
                    pos,
                    "the file ends inside a record header: truncated",
                ));
            }
            let raw = self.read_raw(pos, 8)?;
            if raw.iter().all(|b| *b == 0) {
                // Preallocated space: skip to the next byte written. Zeros up to the end are
                // where the node writes next, so a later scan starts at their beginning.
                let written = self.skip_zeros(pos)?;
                if written >= self.size {
                    return Ok((spans, pos));
                }
                pos = self.record_start(pos, written, magic)?;
                continue;
            }
            let mut head = [0u8; 8];
            head.copy_from_slice(&raw);
            self.key.apply(pos, &mut head);
            let found = [head[0], head[1], head[2], head[3]];
            if found != magic {
                let raw4 = [raw[0], raw[1], raw[2], raw[3]];
                // Another network's records: a wrong setting, not a damaged file.
                let of = |m: [u8; 4]| NETWORKS.into_iter().find(|n| n.magic().to_bytes() == m);
                if let (Some(expected), Some(other)) = (of(magic), of(found)) {
                    return Err(SourceError::WrongNetwork {
                        source_name: "blk-files",
                        expected,
                        found: format!(
                            "{other} (the network magic of the record at offset {pos} of {})",
                            self.path.display()
                        ),
                    });
                }
                return Err(file_error(&self.path, pos, self.diagnose(raw4, pos, magic)));
            }
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if len == 0 || len > MAX_RECORD {
                return Err(file_error(
                    &self.path,
                    pos + 4,
                    format!("record length {len} is out of range (1..={MAX_RECORD})"),
                ));
            }
            let end = pos + 8 + u64::from(len) + trailer;
            if end > self.size {
                if growing {
                    return Ok((spans, pos));
                }
                return Err(file_error(
                    &self.path,
                    pos,
                    format!(
                        "a record of {len} bytes runs past the end of the file ({} bytes): \
                         truncated",
                        self.size
                    ),
                ));
            }
            spans.push(Span {
                offset: pos + 8,
                len,
            });
            pos = end;
        }
    }

    /// The block header at the start of a blk record, with its hash.
    pub fn header(&self, span: Span) -> Result<(Header, BlockHash), SourceError> {
        if span.len < 80 {
            return Err(file_error(
                &self.path,
                span.offset,
                format!("a block record of {} bytes cannot hold a header", span.len),
            ));
        }
        let mut raw = [0u8; 80];
        raw.copy_from_slice(&self.read(span.offset, 80)?);
        let header =
            deserialize(&raw).map_err(|e| file_error(&self.path, span.offset, e.to_string()))?;
        Ok((header, crate::body::header_hash(&raw)))
    }
}

/// The numbers of the `prefix?????.dat` files in `dir`, ascending.
pub(crate) fn numbered_files(dir: &Path, prefix: &str) -> Result<Vec<u32>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, 0, e.to_string()))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| file_error(dir, 0, e.to_string()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(digits) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".dat"))
            && digits.len() == 5
            && let Ok(n) = digits.parse::<u32>()
        {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The path of file `n` with `prefix` (`blk` or `rev`).
pub(crate) fn numbered_path(dir: &Path, prefix: &str, n: u32) -> PathBuf {
    dir.join(format!("{prefix}{n:05}.dat"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn xor_applies_by_file_position() {
        let key = XorKey([1, 2, 3, 4, 5, 6, 7, 8]);
        for pos in 0..16u64 {
            for len in 0..21usize {
                let mut buf = vec![0u8; len];
                key.apply(pos, &mut buf);
                let want: Vec<u8> = (0..len).map(|i| key.0[(pos as usize + i) % 8]).collect();
                assert_eq!(buf, want, "pos {pos} len {len}");
                key.apply(pos, &mut buf);
                assert!(buf.iter().all(|b| *b == 0));
            }
        }
    }
}
