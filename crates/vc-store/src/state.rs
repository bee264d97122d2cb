//! Typed application state: namespaces of keys and values.
//!
//! An application declares each namespace as a constant, the way redb declares its tables:
//!
//! ```
//! use vc_store::Namespace;
//! const OWNERS: Namespace<String, Vec<u8>> = Namespace::new("owners");
//! ```
//!
//! The store maps names to ids itself: the first write to a namespace gives it the next free id,
//! recorded in the store's metadata in the same transaction, and reading a namespace that was
//! never written finds nothing. So there is nothing to declare up front and no order to keep.
//! Keys are encoded so that byte order equals key order (big-endian integers, raw bytes and
//! strings), which makes range scans meaningful; values are stored with [`vc_codec::storage`]
//! (version byte and postcard).

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

/// A namespace of application state: a name with its key and value types. Declare it as a
/// constant; it is `Copy` and needs no store to exist.
pub struct Namespace<K, V> {
    name: &'static str,
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
        write!(f, "Namespace({:?})", self.name)
    }
}

impl<K, V> Namespace<K, V> {
    /// The namespace `name`. Two constants with the same name are the same namespace, so their
    /// types must agree.
    pub const fn new(name: &'static str) -> Self {
        Namespace {
            name,
            _types: PhantomData,
        }
    }

    /// The namespace's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

/// The id of namespace `name` in a store whose metadata lists `names` (ids are positions).
pub(crate) fn id_of(names: &[String], name: &str) -> Option<u16> {
    names
        .iter()
        .position(|n| n == name)
        .and_then(|i| u16::try_from(i).ok())
}

/// The full store key of `key` in the namespace with id `id`.
pub(crate) fn raw_key(id: u16, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The raw-key range of namespace `id` from `start` (inclusive) to `end` (exclusive); `None`
/// bounds are the namespace's own.
pub(crate) fn raw_range(
    id: u16,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let lo = raw_key(id, start.unwrap_or_default());
    let hi = match end {
        Some(k) => Some(raw_key(id, k)),
        None => id.checked_add(1).map(|n| n.to_be_bytes().to_vec()),
    };
    (lo, hi)
}

fn encode_key<K: StateKey>(key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    key.encode_key(&mut out);
    out
}

pub(crate) fn decode_key<K: StateKey>(ns: &str, raw: &[u8]) -> Result<K, StoreError> {
    K::decode_key(raw).map_err(|reason| StoreError::BadKey {
        namespace: ns.to_owned(),
        reason,
    })
}

pub(crate) fn decode_value<V: Stored>(ns: &str, key: &[u8], bytes: &[u8]) -> Result<V, StoreError> {
    crate::schema::decode(bytes, || {
        format!(
            "value in namespace `{ns}` at key {}",
            vc_chash::hex::encode(key)
        )
    })
}

/// One raw state entry: namespace-local key bytes and stored value bytes.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// Read access to application state as raw bytes: keys are the namespace-local key bytes,
/// values the stored bytes. Object-safe; a [`crate::View`] reads the committed state through it,
/// a [`crate::BlockWriter`] the state of the block being applied.
pub trait StateRead {
    /// The value at `key` in namespace `ns` (a namespace never written is empty).
    fn get_raw(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The entries of `ns` with keys from `start` (inclusive, `None`: the first) to `end`
    /// (exclusive, `None`: the last), in key order.
    fn range_raw(
        &self,
        ns: &str,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<Vec<RawEntry>, StoreError>;
}

/// The state of the block being applied, as raw bytes. Object-safe, so that an application
/// hook, or a guest program of a virtual machine, can hold it without naming the store's
/// lifetimes; [`StateReadExt`] and [`StateWriteExt`] add the typed methods. Reads include the
/// block's own changes so far.
pub trait StateAccess: StateRead {
    /// Sets `key` in `ns` to `value`.
    fn put_raw(&mut self, ns: &str, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;

    /// Removes `key` from `ns`.
    fn delete_raw(&mut self, ns: &str, key: &[u8]);

    /// The consensus hash of an earlier block at `height`, `None` if the store has no block
    /// there (for staleness checks while a block is applied).
    fn consensus_hash(&self, height: u64) -> Result<Option<vc_chash::ConsensusHash>, StoreError>;
}

/// [`StateRead::get_raw`], typed.
fn get_typed<K: StateKey, V: Stored>(
    state: &(impl StateRead + ?Sized),
    ns: &Namespace<K, V>,
    key: &K,
) -> Result<Option<V>, StoreError> {
    let key = encode_key(key);
    state
        .get_raw(ns.name, &key)?
        .map(|v| decode_value(ns.name, &key, &v))
        .transpose()
}

/// [`StateRead::range_raw`], typed.
fn range_typed<K: StateKey, V: Stored>(
    state: &(impl StateRead + ?Sized),
    ns: &Namespace<K, V>,
    start: Option<&K>,
    end: Option<&K>,
) -> Result<Vec<(K, V)>, StoreError> {
    let start = start.map(encode_key);
    let end = end.map(encode_key);
    state
        .range_raw(ns.name, start.as_deref(), end.as_deref())?
        .into_iter()
        .map(|(k, v)| Ok((decode_key(ns.name, &k)?, decode_value(ns.name, &k, &v)?)))
        .collect()
}

/// Typed reads, for every [`StateRead`] (a [`crate::View`], a [`crate::BlockWriter`], a
/// `dyn StateAccess`): keys through [`StateKey`], values through [`Stored`].
pub trait StateReadExt: StateRead {
    /// The value at `key` in `ns`.
    fn get<K: StateKey, V: Stored>(
        &self,
        ns: &Namespace<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        get_typed(self, ns, key)
    }

    /// The entries of `ns` from `start` (inclusive, `None`: the first) to `end` (exclusive,
    /// `None`: the last), in key order.
    fn range<K: StateKey, V: Stored>(
        &self,
        ns: &Namespace<K, V>,
        start: Option<&K>,
        end: Option<&K>,
    ) -> Result<Vec<(K, V)>, StoreError> {
        range_typed(self, ns, start, end)
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Typed writes, for every [`StateAccess`].
pub trait StateWriteExt: StateAccess {
    /// Sets `key` in `ns` to `value`.
    fn put<K: StateKey, V: Stored>(
        &mut self,
        ns: &Namespace<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        let value = crate::schema::encode(value)?;
        self.put_raw(ns.name, &encode_key(key), value)
    }

    /// Removes `key` from `ns`.
    fn delete<K: StateKey, V: Stored>(&mut self, ns: &Namespace<K, V>, key: &K) {
        self.delete_raw(ns.name, &encode_key(key));
    }
}

impl<T: StateAccess + ?Sized> StateWriteExt for T {}
