//! Decoding a block and checking that its transactions are the ones its header commits to.
//!
//! The block hash covers only the header. Without a body check a server, or a damaged file,
//! could drop, alter or repeat transactions unseen, so the sources check every block: the merkle
//! root of the txids must equal the header's, and no transaction may appear twice (repeating the
//! last transactions of a tree level leaves the root unchanged, CVE-2012-2459).
//!
//! [`decode_block`] does this while decoding, hashing each transaction's bytes where they lie
//! (a segwit transaction's txid covers its bytes without the marker, flag and witnesses: three
//! slices of the serialization) instead of re-encoding every transaction as
//! [`bitcoin::Transaction::compute_txid`] does, with `sha2` (SHA-NI where the CPU has it; about
//! a third faster than `bitcoin_hashes` here). [`check_body`] is the same check on a block
//! already decoded.

use std::io::Cursor;

#[cfg(any(feature = "blk", feature = "electrum"))]
use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::consensus::Decodable;
use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction, Txid, VarInt};
use sha2::{Digest, Sha256};

/// Why block bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The bytes do not decode as a block.
    Decode {
        /// Byte offset where decoding failed (or where trailing bytes start).
        offset: u64,
        /// What went wrong.
        detail: String,
    },
    /// A transaction appears twice.
    Mutated {
        /// The repeated transaction.
        txid: Txid,
    },
    /// The transactions' merkle root is not the header's.
    MerkleRoot,
    /// Some transaction has a witness, and the coinbase's witness commitment (BIP141) is
    /// missing or does not match the transactions' witnesses.
    WitnessCommitment,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Decode { offset, detail } => {
                write!(f, "does not decode: {detail} (at byte offset {offset})")
            }
            BodyError::Mutated { txid } => {
                write!(f, "transaction {txid} appears twice (a mutated block)")
            }
            BodyError::MerkleRoot => write!(f, "the transactions do not match the merkle root"),
            BodyError::WitnessCommitment => write!(
                f,
                "the witnesses do not match the coinbase's witness commitment"
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// Decodes `bytes` as a block and, when `check` is set, checks its body against its header.
pub fn decode_block(bytes: &[u8], check: bool) -> Result<Block, BodyError> {
    let mut cur = Cursor::new(bytes);
    let fail = |cur: &Cursor<&[u8]>, e: bitcoin::consensus::encode::Error| BodyError::Decode {
        offset: cur.position(),
        detail: e.to_string(),
    };
    let header = Header::consensus_decode(&mut cur).map_err(|e| fail(&cur, e))?;
    let count = VarInt::consensus_decode(&mut cur)
        .map_err(|e| fail(&cur, e))?
        .0;
    // Every transaction takes at least 60 bytes: a larger count is a lie, not an allocation.
    let mut txdata = Vec::with_capacity(count.min(bytes.len() as u64 / 60) as usize);
    let mut txids = Vec::with_capacity(txdata.capacity());
    for _ in 0..count {
        let start = cur.position() as usize;
        let tx = Transaction::consensus_decode(&mut cur).map_err(|e| fail(&cur, e))?;
        if check {
            txids.push(txid_of(&bytes[start..cur.position() as usize], &tx));
        }
        txdata.push(tx);
    }
    if cur.position() as usize != bytes.len() {
        return Err(BodyError::Decode {
            offset: cur.position(),
            detail: format!("{} trailing bytes", bytes.len() as u64 - cur.position()),
        });
    }
    let block = Block { header, txdata };
    if check {
        check_txids(&block.header, txids)?;
    }
    Ok(block)
}

/// The txid of `tx`, whose serialization is `raw`.
/// The hash of a block header from its 80 serialized bytes, with `sha2` as the txids here
/// (about five times `Header::block_hash` where the CPU has SHA-NI): the blk index and the
/// Electrum header cache hash every header of the chain when they open.
#[cfg(any(feature = "blk", feature = "electrum"))]
pub(crate) fn header_hash(raw: &[u8; 80]) -> BlockHash {
    BlockHash::from_byte_array(Sha256::digest(Sha256::digest(raw)).into())
}

fn txid_of(raw: &[u8], tx: &Transaction) -> Txid {
    let mut h = Sha256::new();
    if tx.input.iter().any(|i| !i.witness.is_empty()) {
        // version | marker flag | inputs outputs | witnesses | lock time
        let witness: usize = tx.input.iter().map(|i| i.witness.size()).sum();
        let end = raw.len();
        h.update(&raw[..4]);
        h.update(&raw[6..end - 4 - witness]);
        h.update(&raw[end - 4..]);
    } else {
        h.update(raw);
    }
    Txid::from_byte_array(Sha256::digest(h.finalize()).into())
}

/// The merkle root of `txids` (Bitcoin's tree: an odd last node pairs with itself).
fn merkle_root(mut level: Vec<[u8; 32]>) -> Option<[u8; 32]> {
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let right = pair.get(1).unwrap_or(&pair[0]);
                let once = Sha256::new()
                    .chain_update(pair[0])
                    .chain_update(right)
                    .finalize();
                Sha256::digest(once).into()
            })
            .collect();
    }
    level.pop()
}

/// Checks the witnesses of a block whose body [`check_body`] accepted: txids do not cover them,
/// so only the coinbase's commitment to the witness merkle root (BIP141) ties them to the
/// header. A block where no transaction has a witness needs none.
pub fn check_witness_commitment(block: &Block) -> Result<(), BodyError> {
    if block.check_witness_commitment() {
        Ok(())
    } else {
        Err(BodyError::WitnessCommitment)
    }
}

/// Checks a block already decoded: see the [module docs](self).
pub fn check_body(block: &Block) -> Result<(), BodyError> {
    let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
    check_txids(&block.header, txids)
}

fn check_txids(header: &Header, txids: Vec<Txid>) -> Result<(), BodyError> {
    let mut sorted = txids.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(BodyError::Mutated { txid: w[0] });
    }
    let root = merkle_root(txids.into_iter().map(Txid::to_byte_array).collect());
    if root != Some(header.merkle_root.to_byte_array()) {
        return Err(BodyError::MerkleRoot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bitcoin::consensus::serialize;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn spend(witness: Vec<Vec<u8>>, n: u8) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::from_consensus(7),
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 1),
                script_sig: ScriptBuf::from_bytes(vec![0x51]),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&witness),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(5),
                script_pubkey: ScriptBuf::from_bytes(vec![0x6a, 1, n]),
            }],
        }
    }

    fn block(txdata: Vec<Transaction>) -> Block {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let mut b = Block {
            header: genesis.header,
            txdata,
        };
        b.header.merkle_root = b.compute_merkle_root().unwrap();
        b
    }

    #[test]
    #[cfg(any(feature = "blk", feature = "electrum"))]
    fn header_hashes_from_the_bytes_equal_computed_ones() {
        for network in [bitcoin::Network::Bitcoin, bitcoin::Network::Regtest] {
            let header = bitcoin::constants::genesis_block(network).header;
            let raw: [u8; 80] = bitcoin::consensus::serialize(&header).try_into().unwrap();
            assert_eq!(header_hash(&raw), header.block_hash());
        }
    }

    #[test]
    fn txids_from_the_bytes_equal_computed_ones() {
        let txs = vec![
            spend(vec![], 1),
            spend(vec![vec![1; 72], vec![2; 33]], 2),
            spend(vec![vec![]], 3),
            spend(vec![vec![9; 300]; 3], 4),
        ];
        for tx in &txs {
            assert_eq!(txid_of(&serialize(tx), tx), tx.compute_txid());
        }
        let b = block(txs);
        assert_eq!(decode_block(&serialize(&b), true).unwrap(), b);
        check_body(&b).unwrap();
    }

    #[test]
    fn altered_repeated_and_malformed_bodies_are_refused() {
        let b = block(vec![
            spend(vec![], 1),
            spend(vec![vec![1]], 2),
            spend(vec![], 3),
        ]);
        let mut altered = b.clone();
        altered.txdata[1].output[0].value = Amount::from_sat(6);
        assert_eq!(
            decode_block(&serialize(&altered), true),
            Err(BodyError::MerkleRoot)
        );
        assert_eq!(check_body(&altered), Err(BodyError::MerkleRoot));
        assert!(decode_block(&serialize(&altered), false).is_ok());

        let mut repeated = b.clone();
        repeated.txdata.push(repeated.txdata[2].clone());
        assert!(
            repeated.check_merkle_root(),
            "the root alone does not see it"
        );
        let txid = b.txdata[2].compute_txid();
        assert_eq!(
            decode_block(&serialize(&repeated), true),
            Err(BodyError::Mutated { txid })
        );

        let bytes = serialize(&b);
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_block(&long, true),
            Err(BodyError::Decode { offset, .. }) if offset == bytes.len() as u64
        ));
        assert!(matches!(
            decode_block(&bytes[..bytes.len() - 1], true),
            Err(BodyError::Decode { .. })
        ));
        // A transaction count far beyond the bytes fails to decode without allocating for it.
        let mut lying = bytes[..80].to_vec();
        lying.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_block(&lying, true).is_err());
    }
}
