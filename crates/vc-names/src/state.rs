//! What the naming system stores: namespaces, preorders, names and an owner index.

use serde::{Deserialize, Serialize};
use vc_codec::storage::Stored;
use vc_store::Namespace;

use crate::wire::NamespaceParams;

/// Revealed namespaces, by namespace id.
pub const NAMESPACE_RECORDS: Namespace<String, NamespaceRecord> = Namespace::new("namespaces");
/// Live namespace preorders, by preorder hash.
pub const NAMESPACE_PREORDERS: Namespace<[u8; 20], Preorder> =
    Namespace::new("namespace_preorders");
/// Live name preorders, by preorder hash.
pub const PREORDERS: Namespace<[u8; 20], Preorder> = Namespace::new("preorders");
/// Registered names (expired and revoked ones included), by fully qualified name.
pub const NAMES: Namespace<String, NameRecord> = Namespace::new("names");
/// The owner index: `HASH160(owner script) || name` for every name an owner holds.
pub const OWNERS: Namespace<Vec<u8>, Owned> = Namespace::new("owners");

/// A revealed namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The namespace id.
    pub id: String,
    /// The preorderer's script (the sender of preorder and reveal).
    pub sender: Vec<u8>,
    /// The reveal address's script: the only sender that may make the namespace ready.
    pub revealer: Vec<u8>,
    /// The block of the reveal.
    pub reveal_block: u64,
    /// The block of the ready operation, once ready.
    pub ready_block: Option<u64>,
    /// Pricing and lifetime.
    pub params: NamespaceParams,
}

impl Stored for NamespaceRecord {
    const KIND: &'static str = "namespace";
    const VERSION: u8 = 1;
}

/// A name or namespace preorder, waiting for its registration or reveal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preorder {
    /// The preorderer's script.
    pub sender: Vec<u8>,
    /// The block of the preorder.
    pub block: u64,
    /// Satoshis paid to the burn output.
    pub burn: u64,
    /// The preorder's transaction.
    pub txid: [u8; 32],
}

impl Stored for Preorder {
    const KIND: &'static str = "preorder";
    const VERSION: u8 = 1;
}

/// A registered name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The fully qualified name.
    pub name: String,
    /// The owner's script.
    pub owner: Vec<u8>,
    /// The value hash (a zone file's hash in BNS).
    pub value_hash: Option<[u8; 20]>,
    /// The block of the (latest) registration.
    pub registered: u64,
    /// The block of the registration or the last renewal: expiry counts from here.
    pub renewed: u64,
    /// Revoked names accept no further operations.
    pub revoked: bool,
    /// The block of the last change.
    pub last_block: u64,
    /// The transaction of the last change.
    pub last_txid: [u8; 32],
}

impl Stored for NameRecord {
    const KIND: &'static str = "name";
    const VERSION: u8 = 1;
}

impl NameRecord {
    /// Whether the name has expired at `height` under a namespace lifetime (`u32::MAX`:
    /// never).
    pub fn expired_at(&self, height: u64, lifetime: u32) -> bool {
        lifetime != u32::MAX && height >= self.renewed.saturating_add(u64::from(lifetime))
    }
}

/// A marker value for the owner index (`owners`: HASH160(owner script) || name -> `Owned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned;

impl Stored for Owned {
    const KIND: &'static str = "owner index entry";
    const VERSION: u8 = 1;
}
