//! What [`super::ElectrumSource`] checks in each answer a server gives, without any I/O: the
//! same functions serve the source, its tests and the `electrum_responses` fuzz target.

use std::collections::BTreeSet;

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::{Transaction, TxMerkleNode, Txid};
use electrum_client::GetMerkleRes;

use super::{NAME, malformed, merkle, unverified};
use crate::error::{SourceError, Violation};

/// Runs one electrum-client request named `what`, turning its error into a typed
/// [`SourceError`] and a panic inside electrum-client into [`SourceError::Malformed`].
///
/// electrum-client's reader indexes each line from the server as a JSON object and panics on
/// any other JSON value (found by the `electrum_responses` fuzz target; still so in 0.25), so
/// one hostile line would abort the node. The connection that panicked is left in a poisoned
/// state and answers every later request with an error: the engine stops with this error and
/// a restart reconnects.
pub fn ask<T>(
    what: impl Into<String>,
    request: impl FnOnce() -> Result<T, electrum_client::Error>,
) -> Result<T, SourceError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(request)) {
        Ok(result) => result.map_err(|e| classify(what.into(), e)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            tracing::warn!(%message, "electrum-client panicked on a server's answer");
            Err(malformed(
                what,
                format!("the server's answer crashed electrum-client's parser: {message}"),
            ))
        }
    }
}

/// The typed error for electrum-client's `e` on the request `what`.
fn classify(what: String, e: electrum_client::Error) -> SourceError {
    match e {
        electrum_client::Error::IOError(_)
        | electrum_client::Error::SharedIOError(_)
        | electrum_client::Error::AllAttemptsErrored(_)
        | electrum_client::Error::CouldntLockReader
        | electrum_client::Error::Mpsc
        | electrum_client::Error::CouldNotCreateConnection(_) => SourceError::Transport {
            source_name: NAME,
            what,
            source: Box::new(e),
        },
        electrum_client::Error::Protocol(ref v) => SourceError::Node {
            source_name: NAME,
            what,
            detail: v.to_string(),
            code: v
                .get("code")
                .and_then(serde_json::Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            transient: false,
        },
        other => SourceError::Malformed {
            source_name: NAME,
            what,
            detail: other.to_string(),
        },
    }
}

/// Parses the answer to `blockchain.block.headers` for `count` headers from `start`, in either
/// of the protocol's shapes: up to 1.5 an object whose `hex` holds the headers back to back,
/// from 1.6 one whose `headers` lists them one hex string each; in both, `count` says how
/// many.
///
/// electrum-client's own parser slices `hex` by the server's `count` without checking and
/// panics when the count is larger (found by the `electrum_responses` fuzz target), so the
/// source asks with a raw call and parses here: the count must match the headers sent and not
/// exceed what was asked for, and each header must decode. Nothing here validates the headers;
/// that is [`super::headers::HeaderChain::connect`]'s work.
pub fn headers(
    start: u64,
    count: usize,
    answer: &serde_json::Value,
) -> Result<Vec<Header>, SourceError> {
    let what = || format!("{count} headers from {start}");
    let claimed = answer["count"]
        .as_u64()
        .ok_or_else(|| malformed(what(), "no count in the answer"))?;
    let raws: Vec<Vec<u8>> = match (answer.get("hex"), answer.get("headers")) {
        (Some(hex), None) => {
            let hex = hex
                .as_str()
                .ok_or_else(|| malformed(what(), "`hex` is not a string"))?;
            let bytes = vc_chash::hex::decode(hex).map_err(|e| malformed(what(), e))?;
            if bytes.len() % 80 != 0 {
                return Err(malformed(
                    what(),
                    format!("{} bytes of headers is not a multiple of 80", bytes.len()),
                ));
            }
            bytes.chunks_exact(80).map(<[u8]>::to_vec).collect()
        }
        (None, Some(list)) => list
            .as_array()
            .ok_or_else(|| malformed(what(), "`headers` is not a list"))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let raw = h
                    .as_str()
                    .ok_or_else(|| malformed(what(), format!("header {i} is not a string")))
                    .and_then(|h| {
                        vc_chash::hex::decode(h)
                            .map_err(|e| malformed(what(), format!("header {i}: {e}")))
                    })?;
                if raw.len() != 80 {
                    return Err(malformed(
                        what(),
                        format!("header {i} is {} bytes, not 80", raw.len()),
                    ));
                }
                Ok(raw)
            })
            .collect::<Result<_, _>>()?,
        (Some(_), Some(_)) => {
            return Err(malformed(what(), "both `hex` and `headers` in the answer"));
        }
        (None, None) => {
            return Err(malformed(
                what(),
                "no hex string or headers list in the answer",
            ));
        }
    };
    let got = raws.len();
    if claimed != got as u64 {
        return Err(malformed(
            what(),
            format!("the answer claims {claimed} headers and holds {got}"),
        ));
    }
    if got > count {
        return Err(malformed(
            what(),
            format!("{got} headers for {count} asked"),
        ));
    }
    raws.iter()
        .enumerate()
        .map(|(i, raw)| {
            deserialize(raw).map_err(|e| {
                malformed(
                    what(),
                    format!("header {i} (at byte offset {}): {e}", i * 80),
                )
            })
        })
        .collect()
}

/// Decodes the raw transaction a server sent for `txid` (asked for because of the block at
/// `height`) and checks that it hashes to `txid`.
///
/// The txid commits to everything but the witness. No Electrum call proves a witness (its
/// commitment sits in the coinbase, over every transaction's wtxid), so a server can alter it
/// undetected. The engine hands witnesses to applications as they came (`OpContext::witnesses`
/// in vc-engine), so an application that reads one commits to it in its payload (vc-contracts
/// commits a deployed module's SHA-256); anyone else reading [`crate::WatchedTx::tx`] from this
/// source must not trust them.
pub fn transaction(height: u64, txid: &Txid, raw: &[u8]) -> Result<Transaction, SourceError> {
    let tx: Transaction =
        deserialize(raw).map_err(|e| malformed(format!("transaction {txid}"), e))?;
    let got = tx.compute_txid();
    if got != *txid {
        return Err(unverified(
            height,
            Violation::TxidMismatch,
            format!("asked for {txid}, got a transaction that hashes to {got}"),
        ));
    }
    Ok(tx)
}

/// Checks the merkle branches a server sent for `txs` (already checked against their txids)
/// in the block at `height` whose header commits to `root`; returns each transaction's
/// position in the block.
///
/// Every branch must be for `height` and lead to `root`; all must have the same depth (one
/// block has one tree); no position may be claimed twice; a 64-byte transaction, which could
/// pose as an inner node, is refused. With the duplicate rule of [`merkle::branch_root`], a
/// transaction proves at exactly one position: its own.
pub fn branches(
    height: u64,
    root: TxMerkleNode,
    txs: &[(Txid, Transaction)],
    proofs: &[GetMerkleRes],
) -> Result<Vec<u32>, SourceError> {
    if proofs.len() != txs.len() {
        return Err(malformed(
            "blockchain.transaction.get_merkle",
            format!("{} answers for {} requests", proofs.len(), txs.len()),
        ));
    }
    let bad = |detail: String| unverified(height, Violation::MerkleBranch, detail);
    let mut positions = Vec::with_capacity(txs.len());
    let mut depth = None;
    for ((txid, tx), proof) in txs.iter().zip(proofs) {
        if u64::try_from(proof.block_height).ok() != Some(height) {
            return Err(bad(format!(
                "the branch for {txid} is for height {}",
                proof.block_height
            )));
        }
        if tx.base_size() == 64 {
            return Err(bad(format!("{txid} is 64 bytes long without its witness")));
        }
        let first = *depth.get_or_insert(proof.merkle.len());
        if first != proof.merkle.len() {
            return Err(bad(format!(
                "branches of different depths ({first} and {}) in one block",
                proof.merkle.len()
            )));
        }
        // Electrum sends the siblings hex-encoded in display order, like txids.
        let branch: Vec<[u8; 32]> = proof
            .merkle
            .iter()
            .map(|s| {
                let mut s = *s;
                s.reverse();
                s
            })
            .collect();
        merkle::verify_branch(*txid, proof.pos as u64, &branch, root)
            .map_err(|e| bad(format!("{txid} at position {}: {e}", proof.pos)))?;
        positions
            .push(u32::try_from(proof.pos).map_err(|_| bad(format!("position {}", proof.pos)))?);
    }
    let distinct: BTreeSet<u32> = positions.iter().copied().collect();
    if distinct.len() != positions.len() {
        return Err(bad("two transactions proven at one position".into()));
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bitcoin::consensus::serialize;
    use bitcoin::hashes::Hash;
    use serde_json::json;
    use vc_chash::hex;

    fn regtest_headers(n: usize) -> Vec<Header> {
        // The genesis header, repeated: parsing does not validate, it only decodes.
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        vec![genesis; n]
    }

    fn answer(count: u64, headers: &[Header]) -> serde_json::Value {
        let hex: Vec<u8> = headers.iter().flat_map(serialize).collect();
        json!({"count": count, "hex": hex::encode(&hex), "max": 2016})
    }

    /// The server's side of a connection: reads come from `answers`, writes are dropped.
    struct Server(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for Server {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl std::io::Write for Server {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The `electrum_responses` fuzz target's second crash: a line that is JSON but not an
    /// object made electrum-client's reader panic.
    #[test]
    fn a_panic_inside_electrum_client_is_a_malformed_answer() {
        use electrum_client::ElectrumApi;
        for line in ["[1]\n", "7\n", "\"x\"\n"] {
            let client = electrum_client::raw_client::RawClient::from(Server(
                std::io::Cursor::new(line.as_bytes().to_vec()),
            ));
            match ask("a header", || client.block_header_raw(1)) {
                Err(SourceError::Malformed { what, detail, .. }) => {
                    assert_eq!(what, "a header");
                    assert!(detail.contains("crashed electrum-client"), "{detail}");
                }
                other => panic!("{line:?}: {other:?}"),
            }
            // The poisoned connection keeps answering with errors, never a panic.
            assert!(ask("again", || client.block_header_raw(1)).is_err());
        }
        // An honest answer goes through.
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"{}\"}}\n",
            hex::encode(&serialize(&genesis))
        );
        let client = electrum_client::raw_client::RawClient::from(Server(std::io::Cursor::new(
            line.into_bytes(),
        )));
        assert_eq!(
            ask("a header", || client.block_header_raw(0)).unwrap(),
            serialize(&genesis)
        );
    }

    /// Protocol 1.6's shape of the same answer: one hex string per header.
    fn answer_1_6(count: u64, headers: &[Header]) -> serde_json::Value {
        let list: Vec<String> = headers.iter().map(|h| hex::encode(&serialize(h))).collect();
        json!({"count": count, "headers": list, "max": 2016})
    }

    /// Protocol 1.6 answers `blockchain.block.headers` with a `headers` list: before, the
    /// source refused it with "no hex string in the answer".
    #[test]
    fn both_protocol_shapes_of_a_header_answer_parse() {
        let h = regtest_headers(3);
        assert_eq!(headers(1, 3, &answer_1_6(3, &h)).unwrap(), h);
        assert_eq!(headers(1, 5, &answer_1_6(3, &h)).unwrap(), h);
        assert_eq!(headers(1, 3, &answer_1_6(0, &[])).unwrap(), vec![]);
        let mut both = answer(3, &h);
        both["headers"] = answer_1_6(3, &h)["headers"].clone();
        for bad in [
            answer_1_6(2, &h),
            json!({"count": 1, "headers": ["00".repeat(79)]}),
            json!({"count": 1, "headers": [7]}),
            json!({"count": 1, "headers": "00"}),
            both,
        ] {
            assert!(
                matches!(headers(1, 5, &bad), Err(SourceError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn honest_header_answers_parse() {
        let h = regtest_headers(3);
        assert_eq!(headers(1, 3, &answer(3, &h)).unwrap(), h);
        assert_eq!(
            headers(1, 5, &answer(3, &h)).unwrap(),
            h,
            "fewer at the tip"
        );
    }

    /// The `electrum_responses` fuzz target's first crash: a count larger than the headers
    /// sent made electrum-client's parser slice past the end and panic.
    #[test]
    fn a_count_the_bytes_do_not_hold_is_malformed_not_a_panic() {
        let h = regtest_headers(1);
        for bad in [
            answer(3, &h),
            answer(0, &h),
            json!({"count": 1, "hex": "00".repeat(79)}),
            json!({"count": 1, "hex": "zz".repeat(80)}),
            json!({"count": 1}),
            json!({"hex": "00".repeat(80)}),
            json!("not an object"),
        ] {
            assert!(
                matches!(headers(1, 5, &bad), Err(SourceError::Malformed { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            headers(1, 2, &answer(3, &regtest_headers(3))),
            Err(SourceError::Malformed { .. })
        ));
    }

    #[test]
    fn a_transaction_must_hash_to_the_txid_asked_for() {
        let coinbase = &bitcoin::constants::genesis_block(bitcoin::Network::Regtest).txdata[0];
        let raw = serialize(coinbase);
        let txid = coinbase.compute_txid();
        assert_eq!(&transaction(7, &txid, &raw).unwrap(), coinbase);
        let other = Txid::from_byte_array([1; 32]);
        assert!(matches!(
            transaction(7, &other, &raw),
            Err(SourceError::Unverified {
                violation: Violation::TxidMismatch,
                height: 7,
                ..
            })
        ));
        assert!(matches!(
            transaction(7, &txid, &raw[..raw.len() - 1]),
            Err(SourceError::Malformed { .. })
        ));
    }
}
