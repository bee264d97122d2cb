//! Typed application state: namespaces of keys and values.
//!
//! An application declares its namespaces by name in [`crate::StoreConfig::namespaces`] and gets
//! a typed handle for each with [`crate::Store::namespace`]. Keys are encoded so that byte order
//! equals key order (big-endian integers, raw bytes and strings), which makes range scans
//! meaningful; values are stored with [`vc_codec::storage`] (version byte and postcard).

use core::marker::PhantomData;

use vc_codec::storage::Stored;

use crate::error::StoreError;

/// A type usable as a state key: an order-preserving byte encoding.
pub trait StateKey: Sized {
    /// Appends the key's bytes.
    fn encode_key(&self, out: &mut Vec<u8>);
    /// Reads a key back; `Err` carries a reason.
    fn decode_key(bytes: &[u8]) -> Result<Self, String>;
}

impl StateKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}

impl StateKey for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

impl StateKey for u64 {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| format!("a u64 key has 8 bytes, found {}", bytes.len()))
    }
}

impl<const N: usize> StateKey for [u8; N] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        <[u8; N]>::try_from(bytes)
            .map_err(|_| format!("key has {} bytes, expected {N}", bytes.len()))
    }
}

/// A typed handle on one namespace. Cheap to copy; obtain it from [`crate::Store::namespace`].
pub struct Namespace<K, V> {
    pub(crate) id: u16,
    pub(crate) name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Namespace<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Namespace<K, V> {}

impl<K, V> core::fmt::Debug for Namespace<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Namespace({:?}, id {})", self.name, self.id)
    }
}

impl<K: StateKey, V: Stored> Namespace<K, V> {
    pub(crate) fn new(id: u16, name: &'static str) -> Self {
        Namespace {
            id,
            name,
            _types: PhantomData,
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full store key of `key`.
    pub(crate) fn raw_key(&self, key: &K) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.id.to_be_bytes());
        key.encode_key(&mut out);
        out
    }

    /// The first raw key of this namespace and the first raw key after it (`None` for the last
    /// possible namespace).
    pub(crate) fn raw_bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let start = self.id.to_be_bytes().to_vec();
        let end = self.id.checked_add(1).map(|n| n.to_be_bytes().to_vec());
        (start, end)
    }

    pub(crate) fn decode_key(&self, raw: &[u8]) -> Result<K, StoreError> {
        K::decode_key(raw.get(2..).unwrap_or_default()).map_err(|reason| StoreError::BadKey {
            namespace: self.name.to_owned(),
            reason,
        })
    }

    pub(crate) fn decode_value(&self, raw_key: &[u8], bytes: &[u8]) -> Result<V, StoreError> {
        crate::schema::decode(bytes, || {
            format!(
                "value in namespace `{}` at key {}",
                self.name,
                vc_chash::hex::encode(raw_key.get(2..).unwrap_or_default())
            )
        })
    }
}

/// The raw-key range of a typed range scan: keys from `start` (inclusive) to `end` (exclusive)
/// inside the namespace.
pub(crate) fn raw_range<K: StateKey, V: Stored>(
    ns: &Namespace<K, V>,
    start: Option<&K>,
    end: Option<&K>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let (ns_start, ns_end) = ns.raw_bounds();
    let lo = start.map(|k| ns.raw_key(k)).unwrap_or(ns_start);
    let hi = match end {
        Some(k) => Some(ns.raw_key(k)),
        None => ns_end,
    };
    (lo, hi)
}
