//! Storage encodings: how stored types become bytes on disk.
//!
//! Every stored value is one version byte followed by its postcard encoding. A type declares its
//! current version through [`Stored`]; reading a value written with another version is a typed
//! [`StorageError::UnknownVersion`] (never a silent misread), and a type that changes its layout
//! bumps its version. These bytes are for storage only: consensus hashes are computed over
//! [`crate::record`] encodings, never over postcard.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use vc_codec::storage::{self, Stored};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct NameRecord { owner: Vec<u8>, expires: u64 }
//! impl Stored for NameRecord {
//!     const KIND: &'static str = "name record";
//!     const VERSION: u8 = 1;
//! }
//!
//! let r = NameRecord { owner: vec![1, 2], expires: 700_000 };
//! let bytes = storage::to_bytes(&r)?;
//! assert_eq!(bytes[0], 1);
//! assert_eq!(storage::from_bytes::<NameRecord>(&bytes)?, r);
//! # Ok::<(), vc_codec::storage::StorageError>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// A type that is stored with [`to_bytes`] and read with [`from_bytes`].
pub trait Stored: Serialize + DeserializeOwned {
    /// A short human name for errors ("chain entry", "name record").
    const KIND: &'static str;
    /// The current encoding version, written as the first byte.
    const VERSION: u8;
}

/// Plain values stored as themselves (version 1): handy for counters, flags and raw blobs.
macro_rules! stored_plain {
    ($($t:ty => $kind:literal),* $(,)?) => {$(
        impl Stored for $t {
            const KIND: &'static str = $kind;
            const VERSION: u8 = 1;
        }
    )*};
}

stored_plain!(
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", i64 => "i64", bool => "bool",
    String => "string", Vec<u8> => "bytes", [u8; 20] => "20-byte value", [u8; 32] => "32-byte value",
);

/// Why stored bytes cannot be read (or a value cannot be written).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No bytes at all.
    #[error("stored {kind} is empty (no version byte)")]
    Empty {
        /// The stored type.
        kind: &'static str,
    },
    /// Written by another version of the software.
    #[error("stored {kind} has encoding version {found}; this build reads version {expected}")]
    UnknownVersion {
        /// The stored type.
        kind: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this build writes and reads.
        expected: u8,
    },
    /// The body does not decode.
    #[error("stored {kind} is corrupt: {message}")]
    Corrupt {
        /// The stored type.
        kind: &'static str,
        /// postcard's description.
        message: String,
    },
    /// Bytes remain after the value.
    #[error("stored {kind} has {extra} bytes after its value")]
    Trailing {
        /// The stored type.
        kind: &'static str,
        /// How many.
        extra: usize,
    },
    /// Serialization failed (a type that postcard cannot represent).
    #[error("cannot encode {kind}: {message}")]
    Encode {
        /// The stored type.
        kind: &'static str,
        /// postcard's description.
        message: String,
    },
}

/// `VERSION || postcard(value)`.
pub fn to_bytes<T: Stored>(value: &T) -> Result<Vec<u8>, StorageError> {
    let out = vec![T::VERSION];
    postcard::to_extend(value, out).map_err(|e| StorageError::Encode {
        kind: T::KIND,
        message: e.to_string(),
    })
}

/// Reads a value written by [`to_bytes`], checking the version and that nothing trails it.
pub fn from_bytes<T: Stored>(bytes: &[u8]) -> Result<T, StorageError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(StorageError::Empty { kind: T::KIND })?;
    if version != T::VERSION {
        return Err(StorageError::UnknownVersion {
            kind: T::KIND,
            found: version,
            expected: T::VERSION,
        });
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| StorageError::Corrupt {
        kind: T::KIND,
        message: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(StorageError::Trailing {
            kind: T::KIND,
            extra: rest.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Entry {
        hash: [u8; 32],
        height: u64,
        ops: Vec<Vec<u8>>,
        note: Option<String>,
    }
    impl Stored for Entry {
        const KIND: &'static str = "test entry";
        const VERSION: u8 = 3;
    }

    #[test]
    fn version_is_checked() {
        let e = Entry {
            hash: [7; 32],
            height: 9,
            ops: vec![vec![1]],
            note: None,
        };
        let mut b = to_bytes(&e).unwrap();
        assert_eq!(b[0], 3);
        assert_eq!(from_bytes::<Entry>(&b).unwrap(), e);
        b[0] = 4;
        assert_eq!(
            from_bytes::<Entry>(&b),
            Err(StorageError::UnknownVersion {
                kind: "test entry",
                found: 4,
                expected: 3
            })
        );
        assert_eq!(
            from_bytes::<Entry>(&[]),
            Err(StorageError::Empty { kind: "test entry" })
        );
        b[0] = 3;
        b.push(0);
        assert_eq!(
            from_bytes::<Entry>(&b),
            Err(StorageError::Trailing {
                kind: "test entry",
                extra: 1
            })
        );
        assert!(matches!(
            from_bytes::<Entry>(&b[..10]),
            Err(StorageError::Corrupt { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(hash in any::<[u8; 32]>(), height in any::<u64>(),
                      ops in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..10), 0..5),
                      note in prop::option::of(".{0,10}")) {
            let e = Entry { hash, height, ops, note };
            prop_assert_eq!(from_bytes::<Entry>(&to_bytes(&e).unwrap()).unwrap(), e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = from_bytes::<Entry>(&bytes);
        }
    }
}
