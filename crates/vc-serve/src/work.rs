//! A request's blocking work and what bounds it: the concurrency permit it holds until the work
//! has actually stopped, and the flag that tells the work its request was abandoned (its client
//! left, or it timed out), checked by every loop that reads the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::OwnedSemaphorePermit;
use vc_chash::{ConsensusHash, Hash256, History, Scheme};
use vc_store::StoreError;

use crate::error::ApiError;

/// What the guard middleware gives each matched request: its permit and its abandonment flag.
/// The blocking work keeps a clone of both, so the permit is released only when the request
/// has been answered (or dropped) *and* its work has returned.
#[derive(Clone, Debug)]
pub(crate) struct Work {
    permit: Arc<OwnedSemaphorePermit>,
    cancel: Cancel,
}

impl Work {
    /// The request's work, and the guard that marks it abandoned when dropped.
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> (Work, AbandonOnDrop) {
        let cancel = Cancel(Arc::new(AtomicBool::new(false)));
        let guard = AbandonOnDrop(cancel.clone());
        (
            Work {
                permit: Arc::new(permit),
                cancel,
            },
            guard,
        )
    }

    /// The abandonment flag.
    pub(crate) fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The permit, to be held by the blocking work.
    pub(crate) fn permit(&self) -> Arc<OwnedSemaphorePermit> {
        self.permit.clone()
    }
}

/// Set when a request is abandoned: its work should stop at its next check.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// `Err(ApiError::Abandoned)` once the request is abandoned.
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if self.is_set() {
            Err(ApiError::Abandoned)
        } else {
            Ok(())
        }
    }

    /// Whether the request was abandoned.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Marks the request abandoned when dropped. The guard middleware holds it: it is dropped when
/// the request is answered (the work has returned by then; the flag changes nothing), when it
/// times out, and when hyper drops the request because the client left.
#[derive(Debug)]
pub(crate) struct AbandonOnDrop(Cancel);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Relaxed);
    }
}

/// Why a [`Checked`] read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckedError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request was abandoned; the work stopped.
    #[error("the request was abandoned")]
    Abandoned,
}

impl From<CheckedError> for ApiError {
    fn from(e: CheckedError) -> ApiError {
        match e {
            CheckedError::Store(e) => ApiError::Store(e),
            CheckedError::Abandoned => ApiError::Abandoned,
        }
    }
}

/// A history that stops (with [`CheckedError::Abandoned`]) at the first read after its request
/// is abandoned: the loops of `vc_chash` (freshness, proofs) read through it.
pub(crate) struct Checked<'a, H> {
    pub(crate) inner: &'a H,
    pub(crate) cancel: &'a Cancel,
}

impl<H: History<Error = StoreError>> Checked<'_, H> {
    fn check(&self) -> Result<(), CheckedError> {
        if self.cancel.is_set() {
            Err(CheckedError::Abandoned)
        } else {
            Ok(())
        }
    }
}

impl<H: History<Error = StoreError>> History for Checked<'_, H> {
    type Error = CheckedError;

    fn scheme(&self) -> Scheme {
        self.inner.scheme()
    }

    fn first_block(&self) -> u64 {
        self.inner.first_block()
    }

    fn consensus_hash(&self, height: u64) -> Result<Option<ConsensusHash>, CheckedError> {
        self.check()?;
        Ok(self.inner.consensus_hash(height)?)
    }

    fn ops_hash(&self, height: u64) -> Result<Option<Hash256>, CheckedError> {
        self.check()?;
        Ok(self.inner.ops_hash(height)?)
    }

    fn records(&self, height: u64) -> Result<Option<Vec<Vec<u8>>>, CheckedError> {
        self.check()?;
        Ok(self.inner.records(height)?)
    }

    fn block_hash(&self, height: u64) -> Result<Option<Hash256>, CheckedError> {
        self.check()?;
        Ok(self.inner.block_hash(height)?)
    }

    fn mmr_node(&self, level: u8, index: u64) -> Result<Option<Hash256>, CheckedError> {
        self.check()?;
        Ok(self.inner.mmr_node(level, index)?)
    }

    fn state_root(&self, height: u64) -> Result<Option<Hash256>, CheckedError> {
        self.check()?;
        Ok(self.inner.state_root(height)?)
    }
}
