//! The store's boundary with redb's panics: redb 4 can panic (`unreachable!`, failed
//! assertions, out-of-range slices) on a file whose bytes are damaged. Every read path of the
//! store runs its redb calls through [`guard`], which turns such a panic into
//! [`StoreError::Damaged`], so a damaged file is reported, never a crash.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::StoreError;

/// Runs `f`, turning a panic inside it into [`StoreError::Damaged`] for the file at `path`.
///
/// `AssertUnwindSafe` is justified because nothing `f` touches is used again in a state a
/// panic could have broken: the closures passed here only read through redb handles
/// (transactions, tables) they own or borrow from a read transaction, whose state redb keeps
/// consistent across unwinding (a read transaction never changes the file), and the partial
/// results they build are dropped with the closure.
pub(crate) fn guard<T>(
    path: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            tracing::debug!(path, what, "redb panicked on the file's contents; caught");
            Err(StoreError::Damaged {
                path: path.to_owned(),
                what: what.to_owned(),
                detail: format!("redb failed on the file's contents: {}", message(&*payload)),
            })
        }
    }
}

/// The text of a panic's payload.
fn message(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    };
    // One line, and not a page of it.
    let text = text.replace(['\n', '\r'], " ");
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_damaged_and_results_pass_through() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = guard::<()>("db", "reading", || unreachable!("bad page"));
        std::panic::set_hook(hook);
        match caught {
            Err(StoreError::Damaged { path, what, detail }) => {
                assert_eq!((path.as_str(), what.as_str()), ("db", "reading"));
                assert!(detail.contains("bad page"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(guard("db", "reading", || Ok(7)).ok(), Some(7));
        assert!(matches!(
            guard::<()>("db", "reading", || Err(StoreError::Inconsistent(
                "x".into()
            ))),
            Err(StoreError::Inconsistent(_))
        ));
    }
}
