//! What a command-line tool or a server needs to present the names application (feature
//! `cli`): the HTTP extension for `virtualchain serve`, and JSON renderings of records,
//! stored operations and raw transactions.

use bitcoin::{Address, Network, Transaction};
use serde_json::{Value, json};
use vc_engine::{Application, EngineError};
use vc_serve::Extension;
use vc_store::{StateReadExt, StoreError, StoredOp, View};

use crate::app::{NamesApp, NamesConfig};
use crate::state::{NAMES, NameRecord};
use vc_chash::hex;

use crate::wire::{NameOp, WireError};

/// The names application's state lookups for `vc_serve`: `/v1/names/{name}`.
#[derive(Clone, Debug)]
pub struct NamesExtension {
    staleness: u64,
}

impl NamesExtension {
    /// The extension for a deployment (its staleness window is the default of
    /// `/v1/consensus/{ch}/fresh`).
    pub fn new(config: &NamesConfig) -> Self {
        NamesExtension {
            staleness: config.staleness,
        }
    }
}

impl Extension for NamesExtension {
    fn collection(&self) -> &'static str {
        "names"
    }

    fn staleness(&self) -> Option<u64> {
        Some(self.staleness)
    }

    fn keys(&self, op: &StoredOp) -> Vec<String> {
        let mut keys: Vec<String> = op
            .records
            .iter()
            .filter_map(|r| crate::history::record_name(r))
            .collect();
        keys.dedup();
        keys
    }

    fn lookup(&self, view: &View, key: &str) -> Result<Option<Value>, StoreError> {
        Ok(view.get(&NAMES, &key.to_owned())?.map(|r| {
            json!({
                "name": r.name,
                "owner": vc_chash::hex::encode(&r.owner),
                "value_hash": r.value_hash.map(|v| vc_chash::hex::encode(&v)),
                "registered": r.registered,
                "renewed": r.renewed,
                "revoked": r.revoked,
                "last_block": r.last_block,
                "last_txid": vc_chash::Hash256(r.last_txid).reversed().to_string(),
            })
        }))
    }
}

/// Why a transaction or a stored operation does not render as a names operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The transaction carries no payload the engine would give the names app.
    #[error(
        "transaction {txid} carries no BNS operation (no OP_RETURN payload with magic `id` and a BNS opcode)"
    )]
    NoOperation {
        /// The transaction.
        txid: bitcoin::Txid,
    },
    /// The payload was recognised but its body does not decode.
    #[error("not a BNS payload")]
    Wire(#[from] WireError),
    /// The application's spec is unusable (a bug, not the input's fault).
    #[error("the names spec")]
    Spec(#[from] EngineError),
    /// The fields do not render as JSON.
    #[error("rendering the operation as JSON")]
    Json(#[from] serde_json::Error),
}

/// A name's record as JSON, with the owner's address on `network`.
pub fn name_json(r: &NameRecord, network: Network) -> Value {
    json!({
        "name": r.name,
        "owner_script": hex::encode(&r.owner),
        "owner_address": Address::from_script(bitcoin::Script::from_bytes(&r.owner), network).ok().map(|a| a.to_string()),
        "value_hash": r.value_hash.map(|v| hex::encode(&v)),
        "registered": r.registered,
        "renewed": r.renewed,
        "revoked": r.revoked,
        "last_block": r.last_block,
    })
}

/// A stored (accepted) operation as JSON: txid, positions, opcode and every decoded field.
pub fn op_json(op: &StoredOp, magic_len: usize) -> Result<Value, DecodeError> {
    if let Some(fields) = op.records.first().and_then(|r| migration_fields(r)) {
        return Ok(json!({
            "txid": vc_chash::Hash256(op.txid).reversed().to_string(),
            "txindex": op.txindex,
            "vtxindex": op.vtxindex,
            "opcode": (op.opcode as char).to_string(),
            "fields": fields,
        }));
    }
    let body = op.payload.get(magic_len + 1..).unwrap_or_default();
    let fields = NameOp::decode(op.opcode, body)?;
    Ok(json!({
        "txid": vc_chash::Hash256(op.txid).reversed().to_string(),
        "txindex": op.txindex,
        "vtxindex": op.vtxindex,
        "opcode": (op.opcode as char).to_string(),
        "fields": serde_json::to_value(&fields)?,
    }))
}

/// The fields of a migration operation's record (`docs/migration.md`): the announcement, or
/// the binding that opened the chain's next segment. `None` for any other record.
fn migration_fields(record: &[u8]) -> Option<Value> {
    use vc_chash::migration::{Announcement, BoundaryRecord, RECORD_ANNOUNCEMENT, RECORD_MARKER};
    match record {
        [RECORD_MARKER, RECORD_ANNOUNCEMENT, body @ ..] => {
            let a = Announcement::decode(body).ok()?;
            Some(json!({
                "op": "MIGRATE_ANNOUNCE",
                "last_height": a.last_height,
                "magic": hex::encode(&a.target.magic),
                "genesis": a.target.genesis.reversed().to_string(),
                "anchor": a.anchor.reversed().to_string(),
            }))
        }
        [RECORD_MARKER, ..] => {
            let b = BoundaryRecord::decode(record).ok()?;
            Some(json!({
                "op": "MIGRATE_BIND",
                "last_height": b.announcement.last_height,
                "consensus_hash": b.ch_a.to_string(),
                "commit_height": b.commit_height,
                "commit_txid": b.commit_txid.reversed().to_string(),
                "reveal_height": b.reveal_height,
            }))
        }
        _ => None,
    }
}

/// A raw transaction's names operation as JSON (txid, opcode, the payload's output, every
/// field, the outputs with addresses on `network`, and the outputs' roles), recognised
/// exactly as the engine recognises operations for `config` ([`vc_engine::recognize`]).
pub fn decode_json(tx: &Transaction, config: &NamesConfig) -> Result<Value, DecodeError> {
    let app = NamesApp::new(config.clone());
    let spec = app.spec();
    let recognized = vc_engine::recognize(&spec, tx)?.ok_or_else(|| DecodeError::NoOperation {
        txid: tx.compute_txid(),
    })?;
    let op = NameOp::decode(recognized.opcode, recognized.body(&spec))?;
    let network = config.network;
    let outputs: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "index": i,
                "value": o.value.to_sat(),
                "script": hex::encode(o.script_pubkey.as_bytes()),
                "address": Address::from_script(&o.script_pubkey, network).ok().map(|a| a.to_string()),
            })
        })
        .collect();
    let role = |i: usize| outputs.get(i).cloned();
    let mut v = json!({
        "txid": tx.compute_txid().to_string(),
        "opcode": (recognized.opcode as char).to_string(),
        "payload_vout": recognized.vout,
        "fields": serde_json::to_value(&op)?,
        "outputs": outputs,
    });
    match &op {
        NameOp::NameRegistration { .. } => v["owner"] = json!(role(1)),
        NameOp::NameTransfer { .. } => v["recipient"] = json!(role(1)),
        NameOp::NamespaceReveal { .. } => v["reveal_address"] = json!(role(1)),
        NameOp::NamePreorder { .. } | NameOp::NamespacePreorder { .. } => {
            v["burn"] = json!(role(2))
        }
        _ => {}
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ISSUE_TX: &str = "01000000000101a7ef2b09722ad786c569c0812005a731ce19290bb0a2afc16cb91056c2e4c19e0100000017160014393ffec4f09b38895b8502377693f23c6ae00f19ffffffff0300000000000000000d6a0b69643a666f6f2e746573747c1500000000000017a9144b85301ba8e42bf98472b8ed4939d5f76b98fcea87144d9c290100000017a91431f8968eb1730c83fb58409a9a560a0a0835027f8702483045022100fc82815edf1c0ef0c601cf1e26494626d7b01597be5ab83df025ff1ee67730130220016c4c29d77aadb5ff57c0c9272a43950ca29b84d8adfaed95ac69db90b35d5b012102d341f728783eb93e6fb5921a1ebe9d149e941de31e403cd69afa2f0f1e698e8100000000";

    fn issue_tx() -> Transaction {
        let bytes = hex::decode(ISSUE_TX).unwrap();
        bitcoin::consensus::deserialize(&bytes).unwrap()
    }

    #[test]
    fn decodes_the_issue_example() {
        let v = decode_json(&issue_tx(), &NamesConfig::mainnet()).unwrap();
        assert_eq!(v["opcode"], ":");
        assert_eq!(v["fields"]["name"], "foo.test");
        assert_eq!(v["owner"]["address"], "38aL9zNvuZMK5YcwWqTib4D8Gc64q8z6r1");
    }

    /// Migration operations are stored with their records, not a names payload: `ops` shows
    /// them (it failed on them as malformed names operations).
    #[test]
    fn migration_operations_render_from_their_records() {
        use vc_chash::migration::{Announcement, ChainId};
        let ann = Announcement {
            last_height: 250,
            target: ChainId {
                magic: [0xfa, 0xbf, 0xb5, 0xda],
                genesis: vc_chash::Hash256([6; 32]),
            },
            anchor: vc_chash::Hash256([7; 32]),
        };
        let mut payload = crate::wire::MAGIC.to_vec();
        payload.push(b'^');
        payload.extend_from_slice(&ann.encode());
        let op = StoredOp {
            txid: [1; 32],
            txindex: 1,
            vtxindex: 0,
            opcode: b'^',
            payload,
            senders: Vec::new(),
            outputs: Vec::new(),
            fee: 0,
            records: vec![ann.record()],
        };
        let v = op_json(&op, 2).unwrap();
        assert_eq!(v["fields"]["op"], "MIGRATE_ANNOUNCE");
        assert_eq!(v["fields"]["last_height"], 250);
    }

    #[test]
    fn a_marker_deployment_ignores_what_does_not_pay_its_registry() {
        let config = NamesConfig::mainnet().with_registry(crate::default_registry_script());
        assert!(matches!(
            decode_json(&issue_tx(), &config),
            Err(DecodeError::NoOperation { .. })
        ));
    }
}
