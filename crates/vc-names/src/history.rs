//! A name's history read back from the consensus records alone: what a light client replays
//! after a proof authenticated each block's records (`virtualchain light name`).
//!
//! The records of name operations start with the name; see [`NamesApp`](crate::NamesApp)'s
//! record layout. Registrations (and renewals) carry the owner and value hash, updates the
//! value hash, transfers the new owner and whether the value hash is kept, revocations only the
//! name. Each record ends with the sender's script and the txid.

use vc_codec::record::split_legacy;

use crate::wire::{NAME_REGISTRATION, NAME_REVOKE, NAME_TRANSFER, NAME_UPDATE};

/// The name an accepted name operation's record is about, or `None` for namespace operations,
/// preorders and anything that is not a names record.
pub fn record_name(record: &[u8]) -> Option<String> {
    let (opcode, values) = split_legacy(record, 1).ok()?;
    match opcode.first().copied()? {
        NAME_REGISTRATION | NAME_UPDATE | NAME_TRANSFER | NAME_REVOKE => {
            String::from_utf8(values.first()?.to_vec()).ok()
        }
        _ => None,
    }
}

/// One proven change of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameEvent {
    /// The block.
    pub height: u64,
    /// `register`, `renew`, `update`, `transfer` or `revoke`.
    pub kind: &'static str,
    /// The owner's script (hex) after the change.
    pub owner: String,
    /// The value hash (hex) after the change.
    pub value_hash: Option<String>,
    /// The transaction, in display order.
    pub txid: String,
}

/// A name's state after replaying its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameHistory {
    /// The changes, oldest first.
    pub events: Vec<NameEvent>,
    /// The owner's script (hex) after the last change.
    pub owner: Option<String>,
    /// The value hash (hex) after the last change.
    pub value_hash: Option<String>,
    /// Whether the last change revoked the name.
    pub revoked: bool,
}

/// Why records could not be replayed into a history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A record about the name does not have the fields its opcode needs.
    #[error("block {height}: a {kind} record of {name} has {found} fields")]
    Fields {
        /// The block.
        height: u64,
        /// The operation.
        kind: &'static str,
        /// The name.
        name: String,
        /// How many fields it had.
        found: usize,
    },
    /// An update, transfer or revocation before any registration.
    #[error("block {height}: a {kind} of {name}, which was never registered")]
    Unregistered {
        /// The block.
        height: u64,
        /// The operation.
        kind: &'static str,
        /// The name.
        name: String,
    },
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn optional(v: &[u8]) -> Option<String> {
    (!v.is_empty()).then(|| text(v))
}

impl NameHistory {
    /// Replays the records of `name` in `blocks` (each block's authenticated records, in block
    /// order, blocks in height order). Records about other names are skipped.
    pub fn replay<'a>(
        name: &str,
        blocks: impl IntoIterator<Item = (u64, &'a [Vec<u8>])>,
    ) -> Result<NameHistory, HistoryError> {
        let mut h = NameHistory::default();
        for (height, records) in blocks {
            for record in records {
                let Ok((opcode, values)) = split_legacy(record, 1) else {
                    continue;
                };
                let Some(&op) = opcode.first() else { continue };
                if record_name(record).as_deref() != Some(name) {
                    continue;
                }
                let kind = match op {
                    NAME_REGISTRATION if values.get(3) == Some(&&b"True"[..]) => "renew",
                    NAME_REGISTRATION => "register",
                    NAME_UPDATE => "update",
                    NAME_TRANSFER => "transfer",
                    _ => "revoke",
                };
                let need = match op {
                    NAME_REGISTRATION => 7,
                    NAME_UPDATE => 5,
                    NAME_TRANSFER => 5,
                    _ => 3,
                };
                if values.len() != need {
                    return Err(HistoryError::Fields {
                        height,
                        kind,
                        name: name.to_owned(),
                        found: values.len(),
                    });
                }
                if op != NAME_REGISTRATION && h.owner.is_none() {
                    return Err(HistoryError::Unregistered {
                        height,
                        kind,
                        name: name.to_owned(),
                    });
                }
                match op {
                    NAME_REGISTRATION => {
                        h.owner = Some(text(values[1]));
                        h.value_hash = optional(values[2]);
                        h.revoked = false;
                    }
                    NAME_UPDATE => h.value_hash = optional(values[1]),
                    NAME_TRANSFER => {
                        h.owner = Some(text(values[1]));
                        if values[2] != b"True" {
                            h.value_hash = None;
                        }
                    }
                    _ => {
                        h.revoked = true;
                        h.value_hash = None;
                    }
                }
                h.events.push(NameEvent {
                    height,
                    kind,
                    owner: h.owner.clone().unwrap_or_default(),
                    value_hash: h.value_hash.clone(),
                    txid: text(values[need - 1]),
                });
            }
        }
        Ok(h)
    }
}
