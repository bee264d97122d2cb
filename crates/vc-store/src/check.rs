//! redb's integrity check without writing the file: [`check_file`].
//!
//! redb checks a database's page checksums and allocator state only through
//! `Database::check_integrity`, which needs a writable handle and repairs what it can. A
//! read-only tool must neither repair nor write, so the check runs on a copy-on-write overlay of
//! the file ([`Overlay`]): redb reads the file's bytes, and every byte it writes (the header
//! on open, a repair) lands in memory and is thrown away. The file is opened read-only, so it
//! also works on a read-only file, and its bytes stay as they were.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use redb::{Builder, StorageBackend};

use crate::error::StoreError;

/// The overlay's unit: a chunk is copied from the file on its first write.
const CHUNK: u64 = 4096;

/// A redb storage backend that reads a file and keeps every write in memory.
#[derive(Debug)]
struct Overlay {
    base: File,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    /// The length redb sees.
    len: u64,
    /// Bytes of the file at and beyond this offset read as zeros (the storage was shrunk below
    /// it and grown again).
    base_limit: u64,
    /// Chunks written, by index.
    chunks: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    fn new(base: File) -> std::io::Result<Overlay> {
        let len = base.metadata()?.len();
        Ok(Overlay {
            base,
            state: Mutex::new(OverlayState {
                len,
                base_limit: len,
                chunks: HashMap::new(),
            }),
        })
    }

    /// Reads `out.len()` bytes of the file at `offset`, zeros at and past `limit`.
    fn read_base(&self, offset: u64, out: &mut [u8], limit: u64) -> std::io::Result<()> {
        let have = usize::try_from(limit.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(out.len());
        let (from_file, zeros) = out.split_at_mut(have);
        self.base.read_exact_at(from_file, offset)?;
        zeros.fill(0);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OverlayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.lock().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.lock();
        let end = offset.checked_add(out.len() as u64);
        if end.is_none_or(|end| end > state.len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the storage",
            ));
        }
        for (chunk, within, range) in pieces(offset, out.len()) {
            let piece = &mut out[range.clone()];
            match state.chunks.get(&chunk) {
                Some(bytes) => piece.copy_from_slice(&bytes[within..within + range.len()]),
                None => self.read_base(offset + range.start as u64, piece, state.base_limit)?,
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.lock();
        if len < state.len {
            state.base_limit = state.base_limit.min(len);
            let first_gone = len.div_ceil(CHUNK);
            state.chunks.retain(|c, _| *c < first_gone);
            // The chunk holding the new end keeps only the bytes below it.
            if let Some(bytes) = state.chunks.get_mut(&(len / CHUNK)) {
                bytes[(len % CHUNK) as usize..].fill(0);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut state = self.lock();
        for (chunk, within, range) in pieces(offset, data.len()) {
            if !state.chunks.contains_key(&chunk) {
                let mut bytes = vec![0u8; CHUNK as usize].into_boxed_slice();
                let readable = state.len.min(state.base_limit);
                self.read_base(chunk * CHUNK, &mut bytes, readable)?;
                state.chunks.insert(chunk, bytes);
            }
            if let Some(bytes) = state.chunks.get_mut(&chunk) {
                bytes[within..within + range.len()].copy_from_slice(&data[range]);
            }
        }
        let end = offset + data.len() as u64;
        if end > state.len {
            state.len = end;
        }
        Ok(())
    }
}

/// Splits `len` bytes at `offset` by chunk: (chunk index, offset within the chunk, the range
/// of the caller's buffer).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, std::ops::Range<usize>)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let pos = offset + done as u64;
        let within = (pos % CHUNK) as usize;
        let n = (CHUNK as usize - within).min(len - done);
        let piece = (pos / CHUNK, within, done..done + n);
        done += n;
        Some(piece)
    })
}

/// The file's length and modification time: a check during which they changed overlapped a
/// writer's commit and proves nothing.
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// How many times a check that overlapped a writer's commit is repeated.
const ATTEMPTS: u32 = 3;

/// Runs redb's integrity check (every page checksum, the allocator state) on the file at
/// `path` without writing it. `Ok(())` when the file verifies; [`StoreError::Damaged`] when
/// it does not. A check that a concurrent writer's commit overlapped (the file's length or
/// modification time changed meanwhile) is repeated, up to three times in all.
pub(crate) fn check_file(path: &Path) -> Result<(), StoreError> {
    let shown = path.display().to_string();
    let damaged = |detail: String| StoreError::Damaged {
        path: shown.clone(),
        what: "checking integrity".into(),
        detail,
    };
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let before = stamp(path);
        let outcome = crate::guard::guard(&shown, "checking integrity", || check_once(path));
        let changed = before.is_none() || stamp(path) != before;
        match outcome {
            Ok(true) => return Ok(()),
            Ok(false) if !changed => {
                return Err(damaged(
                    "redb's integrity check failed (bad page checksums or allocator state)".into(),
                ));
            }
            Ok(false) => last = Some(damaged("redb's integrity check failed".into())),
            Err(e @ StoreError::Io { .. }) => return Err(e),
            Err(e) if !changed => return Err(e),
            Err(e) => last = Some(e),
        }
        tracing::debug!(path = %shown, "the file changed during the integrity check; checking again");
    }
    Err(last.unwrap_or_else(|| damaged("the check did not run".into())))
}

/// One check: open the overlay (redb recovers a file a live or crashed writer left unclean, in
/// memory), then check. `Ok(false)`: damaged.
fn check_once(path: &Path) -> Result<bool, StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let overlay = Overlay::new(file).map_err(io)?;
    let damaged = |e: &dyn std::fmt::Display| StoreError::Damaged {
        path: path.display().to_string(),
        what: "checking integrity".into(),
        detail: e.to_string(),
    };
    let mut db = match Builder::new().create_with_backend(overlay) {
        Ok(db) => db,
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => return Err(io(e)),
        Err(e) => return Err(damaged(&e)),
    };
    match db.check_integrity() {
        Ok(clean) => Ok(clean),
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => Err(io(e)),
        Err(e) => Err(damaged(&e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_overlay_reads_through_and_keeps_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let o = Overlay::new(File::open(&path).unwrap()).unwrap();
        o.write(4090, &[7; 20]).unwrap();
        let mut out = vec![0; 100];
        o.read(4050, &mut out).unwrap();
        assert_eq!(&out[..40], &original[4050..4090]);
        assert_eq!(&out[40..60], &[7; 20]);
        assert_eq!(&out[60..], &original[4110..4150]);
        // Shrink then grow: the cut bytes read as zeros, in and past the written chunk.
        o.set_len(4095).unwrap();
        o.set_len(10_000).unwrap();
        o.read(4090, &mut out).unwrap();
        assert_eq!(&out[..5], &[7; 5]);
        assert!(out[5..].iter().all(|b| *b == 0));
        assert!(o.read(9_990, &mut out).is_err());
        // The file itself is untouched.
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
