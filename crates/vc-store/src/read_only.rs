//! Reading a store that another process writes: [`ReadOnlyStore`].

use std::path::{Path, PathBuf};

use redb::{ReadOnlyDatabase, ReadableDatabase};
use vc_chash::Scheme;

use crate::error::{DbContext, StoreError};
use crate::schema::{self, META, META_KEY, Meta};
use crate::store::{Tip, View, builder, is_foreign};

/// A read-only handle on a store, safe to hold while another process (or this one) writes the
/// same file through [`Store`](crate::Store).
///
/// Every [`view`](Self::view) is a consistent snapshot of the writer's last commit at the time
/// it is taken, so a server answers each request from one block boundary while an indexer goes
/// on. The file's identity is read from the file itself ([`Meta`]) instead of being checked
/// against an application's configuration, so one tool can read stores of any application.
///
/// Opening fails on a file that needs crash recovery and has no writer: run the indexer (or
/// [`Store::open`](crate::Store::open)) once to repair it.
///
/// ```
/// use vc_chash::{Hash256, Scheme};
/// use vc_store::{BlockHeader, ReadOnlyStore, Store, StoreConfig};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.redb");
/// let store = Store::open(&path, StoreConfig::new("app", "1", Scheme::V2, 10, "regtest"))?;
/// let reader = ReadOnlyStore::open(&path)?;
/// assert_eq!(reader.tip()?, None);
///
/// let mut w = store.writer()?;
/// let header = BlockHeader { height: 10, block_hash: Hash256([1; 32]), prev_hash: Hash256([0; 32]) };
/// w.begin_block(header)?.finish()?;
/// w.commit()?;
///
/// // The reader follows the writer's commits.
/// assert_eq!(reader.tip()?.map(|t| t.height), Some(10));
/// assert_eq!(reader.meta().app_name, "app");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadOnlyStore {
    db: ReadOnlyDatabase,
    path: PathBuf,
    meta: Meta,
    scheme: Scheme,
}

impl core::fmt::Debug for ReadOnlyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadOnlyStore")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyStore {
    /// Opens the store at `path` for reading. The file must exist and be a store. The file is
    /// opened read-only and never written, so this works on a read-only file, beside a writer,
    /// and leaves the file's bytes as they were.
    ///
    /// Fails with [`StoreError::NeedsRecovery`] on a file that a crashed writer left unclean
    /// (it is never repaired here), [`StoreError::NotAStore`] on a file that is not a store,
    /// and [`StoreError::Damaged`] when redb cannot make sense of the file's bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        crate::guard::guard(&shown, "opening the database", || Self::open_inner(path))
    }

    fn open_inner(path: PathBuf) -> Result<ReadOnlyStore, StoreError> {
        let not_a_store = || StoreError::NotAStore {
            path: path.display().to_string(),
        };
        let db = match builder().open_read_only(&path) {
            Err(e) if is_foreign(&e) && damaged_header(&path) => {
                return Err(StoreError::Damaged {
                    path: path.display().to_string(),
                    what: "opening the database".into(),
                    detail: "redb's file header is damaged".into(),
                });
            }
            Err(e) if is_foreign(&e) => return Err(not_a_store()),
            Err(redb::DatabaseError::RepairAborted) => {
                return Err(StoreError::NeedsRecovery {
                    path: path.display().to_string(),
                });
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail))) => {
                return Err(StoreError::Damaged {
                    path: path.display().to_string(),
                    what: "opening the database".into(),
                    detail,
                });
            }
            other => other.ctx("opening the database file read-only")?,
        };
        let txn = db.begin_read().ctx("starting a read")?;
        let table = match txn.open_table(META) {
            Err(redb::TableError::TableDoesNotExist(_)) => return Err(not_a_store()),
            other => other.ctx("opening the meta table")?,
        };
        let raw = table
            .get(META_KEY)
            .ctx("reading metadata")?
            .ok_or_else(not_a_store)?;
        let meta: Meta = schema::decode(raw.value(), || "store metadata".to_owned())?;
        let scheme = Scheme::from_byte(meta.scheme).ok_or_else(|| {
            StoreError::Inconsistent(format!(
                "{} names an unknown consensus-hash scheme {}",
                path.display(),
                meta.scheme
            ))
        })?;
        drop(table);
        if scheme.commits_state() {
            crate::tree::check_layout(&txn, &path)?;
        }
        drop(txn);
        Ok(ReadOnlyStore {
            db,
            path,
            meta,
            scheme,
        })
    }

    /// The file this handle reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's identity, as written when it was created.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The store's consensus-hash scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// A consistent view of the writer's last commit.
    pub fn view(&self) -> Result<View, StoreError> {
        let shown = self.path.display().to_string();
        let txn = crate::guard::guard(&shown, "starting a read", || {
            self.db.begin_read().ctx("starting a read")
        })?;
        Ok(View::new(
            txn,
            &self.path,
            self.scheme,
            self.meta.first_block,
        ))
    }

    /// The newest committed block.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        self.view()?.tip()
    }

    /// Checks the file and the newest block, without writing anything: what `virtualchain
    /// status --verify` and `virtualchain serve` (at start) run.
    ///
    /// 1. redb's integrity check: every page checksum and the allocator state. redb offers it
    ///    only on a writable handle (`Database::check_integrity`, which also repairs), so it
    ///    runs on a copy-on-write overlay of the file: reads come from the file, writes stay in
    ///    memory and are discarded. A check that a writer's commit overlapped is repeated.
    /// 2. The tip's consensus hash, recomputed from its stored inputs
    ///    ([`replay::verify_tip`](crate::replay::verify_tip)).
    ///
    /// Fails with [`StoreError::Damaged`] if either disagrees. Costs one read of the whole
    /// file.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        crate::check::check_file(&self.path)?;
        let tip = crate::replay::verify_tip(&self.view()?)?;
        Ok(VerifyReport { tip })
    }
}

/// Whether a file that redb does not recognise is a redb file with a damaged header rather
/// than another kind of file: its first bytes are zeros (a zeroed page), or within a few bits
/// of redb's magic number (bit rot).
fn damaged_header(path: &Path) -> bool {
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1a, 0x0a, 0xa9, 0x0d, 0x0a];
    let mut head = [0u8; 9];
    let read =
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if read.is_err() {
        return false;
    }
    let distance: u32 = head
        .iter()
        .zip(MAGIC)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    head == [0; 9] || distance <= 8
}

/// What [`ReadOnlyStore::verify`] checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The tip whose consensus hash was recomputed and matched (`None`: an empty store).
    pub tip: Option<Tip>,
}
