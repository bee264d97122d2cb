//! How store records and proofs look in JSON. Hashes are lowercase hex; Bitcoin block hashes
//! and txids in Bitcoin's display order (as `bitcoin-cli` prints them), consensus hashes, ops
//! hashes and accumulator nodes in the order the hash functions write them.

use serde_json::{Value, json};
use vc_chash::hex;
use vc_chash::proof::Proof;
use vc_chash::state::proof::{Answer, StateProof};
use vc_chash::v2::proof::TrustedLink;
use vc_chash::{ConsensusHash, Hash256};
use vc_store::{ChainEntry, OutputData, StoredOp};

/// A Bitcoin hash (block or transaction) in display order.
pub(crate) fn display_hash(internal: &[u8; 32]) -> String {
    Hash256(*internal).reversed().to_string()
}

/// `GET /v1/blocks/{height}`.
pub(crate) fn block(height: u64, entry: &ChainEntry, ch: &ConsensusHash, ops: usize) -> Value {
    json!({
        "height": height,
        "block_hash": display_hash(&entry.block_hash),
        "prev_hash": display_hash(&entry.prev_hash),
        "consensus_hash": ch.to_string(),
        "ops_hash": hex::encode(&entry.ops_hash),
        "operations": ops,
    })
}

fn output(o: &OutputData) -> Value {
    json!({ "value": o.value, "script": hex::encode(&o.script) })
}

/// One accepted operation with its transaction context.
pub(crate) fn op(op: &StoredOp) -> Value {
    json!({
        "txid": display_hash(&op.txid),
        "txindex": op.txindex,
        "vtxindex": op.vtxindex,
        "opcode": hex::encode(&[op.opcode]),
        "payload": hex::encode(&op.payload),
        "senders": op.senders.iter().map(output).collect::<Vec<_>>(),
        "outputs": op.outputs.iter().map(output).collect::<Vec<_>>(),
        "fee": op.fee,
        "records": op.records.iter().map(|r| hex::encode(r)).collect::<Vec<_>>(),
    })
}

fn hashes(hs: &[Hash256]) -> Vec<String> {
    hs.iter().map(Hash256::to_string).collect()
}

/// `GET /v1/proofs/{m}?format=json`: every field of the proof, and its binary encoding.
pub(crate) fn proof(proof: &Proof) -> Value {
    let h = proof.header();
    let records = |rs: &[Vec<u8>]| rs.iter().map(|r| hex::encode(r)).collect::<Vec<_>>();
    let body = match proof {
        Proof::Legacy(p) => json!({
            "steps": p.steps.iter().map(|s| json!({
                "ops_hash": s.ops_hash.to_string(),
                "priors": s.priors.iter().map(|c| hex::encode(c)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "target_priors": p.target_priors.iter().map(|c| hex::encode(c)).collect::<Vec<_>>(),
            "records": records(&p.records),
        }),
        Proof::V2(p) => json!({
            "block_hash": display_hash(&p.block_hash.0),
            "priors_hash": p.priors_hash.to_string(),
            "mmr_root": p.mmr_root.to_string(),
            "state_root": p.state_root.map(|r| r.to_string()),
            "records": records(&p.records),
            "link": p.link.as_ref().map(link),
        }),
    };
    json!({
        "scheme": h.scheme,
        "first_block": h.first_block,
        "trusted": h.trusted,
        "target": h.target,
        "body": body,
        "encoded": hex::encode(&proof.encode()),
    })
}

/// A v2 or v3 proof's link from the target block to the trusted one.
fn link(l: &TrustedLink) -> Value {
    json!({
        "block_hash": display_hash(&l.block_hash.0),
        "ops_hash": l.ops_hash.to_string(),
        "priors_hash": l.priors_hash.to_string(),
        "state_root": l.state_root.map(|r| r.to_string()),
        "path": {
            "siblings": hashes(&l.path.siblings),
            "left_peaks": hashes(&l.path.left_peaks),
            "right_bag": l.path.right_bag.map(|b| b.to_string()),
        },
    })
}

/// A v3 state proof, field by field (nothing in it is verified by the server's saying so: a
/// client verifies `encoded`).
pub(crate) fn state_proof(p: &StateProof) -> Value {
    let answer = match &p.answer {
        Answer::Present(v) => json!({"present": true, "value": hex::encode(v)}),
        Answer::Empty => json!({"present": false, "ends_at": "empty"}),
        Answer::Other { path, value_hash } => json!({
            "present": false,
            "ends_at": "other_leaf",
            "other_path": path.to_string(),
            "other_value_hash": value_hash.to_string(),
        }),
    };
    json!({
        "scheme": "v3",
        "first_block": p.first_block,
        "trusted": p.trusted,
        "target": p.target,
        "namespace": String::from_utf8_lossy(&p.namespace),
        "key": hex::encode(&p.key),
        "block_hash": display_hash(&p.block_hash.0),
        "ops_hash": p.ops_hash.to_string(),
        "priors_hash": p.priors_hash.to_string(),
        "mmr_root": p.mmr_root.to_string(),
        "siblings": hashes(&p.siblings),
        "answer": answer,
        "link": p.link.as_ref().map(link),
        "encoded": hex::encode(&p.encode()),
    })
}
