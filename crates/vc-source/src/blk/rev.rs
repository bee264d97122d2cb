//! Finding a block's undo record in `rev?????.dat`.
//!
//! Core writes a block's undo data to the rev file with the same number as its blk file, when it
//! first connects the block, followed by a checksum: double SHA-256 of the parent's hash and the
//! undo bytes. Nothing else names the block, so records are matched to blocks by that checksum,
//! which identifies the block only among its siblings: the records of two children of one parent
//! both match either child.
//!
//! For a block without siblings (the common case) a checksum match is decisive, and matching is
//! a single pass per file: a parent is connected before its child, so the best chain's blocks in
//! one file have their undo records in height order, with the records of blocks that were
//! connected and later reorganised away in between. Walking the file's lone best-chain blocks and
//! its unclaimed records together hashes each record once.
//!
//! A block with siblings is matched on its own: every record whose checksum matches is decoded,
//! and the candidates must fit the block (one list per transaction, one coin per input), then,
//! if several distinct ones still fit, agree with what the block's inputs reveal about the
//! scripts they spend (the public key or script hashes of P2PKH, P2SH, P2WPKH and P2WSH). Two
//! distinct candidates that pass both are an error, never a guess.

use std::collections::HashMap;
use std::path::Path;

use bitcoin::hashes::{Hash, HashEngine, hash160, sha256, sha256d};
use bitcoin::script::Instruction;
use bitcoin::{Block, BlockHash, Script, TxOut};

use super::files::{FlatFile, Span, XorKey, file_error, numbered_path};
use crate::error::SourceError;
use crate::source::check_spent_shape;
use crate::undo::decode_block_undo;

/// The checksum after each undo record.
const CHECKSUM: u64 = 32;

/// One rev file's records and which block each belongs to.
pub(crate) struct RevFile {
    file: FlatFile,
    magic: [u8; 4],
    spans: Vec<Span>,
    next: u64,
    claimed: HashMap<BlockHash, usize>,
    taken: Vec<bool>,
}

impl RevFile {
    pub fn open(dir: &Path, n: u32, key: XorKey, magic: [u8; 4]) -> Result<RevFile, SourceError> {
        let file = FlatFile::open(numbered_path(dir, "rev", n), key)?;
        let mut rev = RevFile {
            file,
            magic,
            spans: Vec::new(),
            next: 0,
            claimed: HashMap::new(),
            taken: Vec::new(),
        };
        rev.extend()?;
        Ok(rev)
    }

    /// Scans records the node appended since the last scan.
    fn extend(&mut self) -> Result<(), SourceError> {
        self.file.refresh_size()?;
        let (spans, next) = self.file.scan(self.next, self.magic, CHECKSUM, true)?;
        self.taken.extend(spans.iter().map(|_| false));
        self.spans.extend(spans);
        self.next = next;
        Ok(())
    }

    /// Whether record `i`'s checksum says it is the undo data of the child of `prev`.
    fn matches(&self, i: usize, prev: &BlockHash) -> Result<bool, SourceError> {
        let span = self.spans[i];
        let bytes = self
            .file
            .read(span.offset, span.len as usize + CHECKSUM as usize)?;
        let (undo, checksum) = bytes.split_at(span.len as usize);
        let mut engine = sha256d::Hash::engine();
        engine.input(prev.as_byte_array());
        engine.input(undo);
        Ok(sha256d::Hash::from_engine(engine).as_byte_array() == checksum)
    }

    fn claim(&mut self, block: BlockHash, i: usize) {
        self.taken[i] = true;
        self.claimed.insert(block, i);
    }

    /// Matches `chain` (this file's lone best-chain blocks, by height, with their parents)
    /// against the unclaimed records in one pass.
    fn pair(&mut self, chain: &[(BlockHash, BlockHash)]) -> Result<(), SourceError> {
        let mut j = 0;
        for (block, prev) in chain {
            if self.claimed.contains_key(block) {
                continue;
            }
            let mut k = j;
            while k < self.spans.len() {
                if !self.taken[k] && self.matches(k, prev)? {
                    self.claim(*block, k);
                    j = k + 1;
                    break;
                }
                k += 1;
            }
        }
        Ok(())
    }

    fn decode(&self, i: usize) -> Result<Vec<Vec<TxOut>>, SourceError> {
        decode_at(&self.file, self.spans[i])
    }

    /// Finds (and remembers) the undo record of `block` (hash `hash`): its span, or `None` when
    /// the file holds none. `lone_chain` is the file's best chain for pairing; `has_siblings`
    /// says whether another child of the block's parent was found.
    ///
    /// Only a block with siblings needs `block` itself (to tell the siblings' records apart);
    /// without it such a block is not located.
    pub fn locate(
        &mut self,
        hash: BlockHash,
        prev: BlockHash,
        block: Option<&Block>,
        lone_chain: &[(BlockHash, BlockHash)],
        has_siblings: bool,
    ) -> Result<Option<Span>, SourceError> {
        if !self.claimed.contains_key(&hash) {
            self.extend()?;
            let found = if has_siblings {
                match block {
                    Some(block) => self.among_siblings(&hash, block)?,
                    None => None,
                }
            } else {
                self.pair(lone_chain)?;
                match self.claimed.get(&hash) {
                    Some(_) => None,
                    None => self.first_match(&prev)?,
                }
            };
            if let Some(k) = found {
                self.claim(hash, k);
            }
        }
        Ok(self.located(&hash))
    }

    /// The span of `hash`'s record, if already located.
    pub fn located(&self, hash: &BlockHash) -> Option<Span> {
        self.claimed.get(hash).map(|&i| self.spans[i])
    }

    /// The file, to read located records without holding its lock.
    pub fn file(&self) -> FlatFile {
        self.file.clone()
    }

    fn first_match(&self, prev: &BlockHash) -> Result<Option<usize>, SourceError> {
        for k in 0..self.spans.len() {
            if !self.taken[k] && self.matches(k, prev)? {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// The one record that is `block`'s among the records of its parent's children.
    fn among_siblings(
        &self,
        hash: &BlockHash,
        block: &Block,
    ) -> Result<Option<usize>, SourceError> {
        let prev = block.header.prev_blockhash;
        let mut fitting: Vec<(usize, Vec<Vec<TxOut>>)> = Vec::new();
        for k in 0..self.spans.len() {
            if self.taken[k] || !self.matches(k, &prev)? {
                continue;
            }
            let spent = self.decode(k)?;
            if check_spent_shape(block, &spent).is_ok() && !fitting.iter().any(|(_, s)| *s == spent)
            {
                fitting.push((k, spent));
            }
        }
        if fitting.len() > 1 {
            fitting.retain(|(_, spent)| fits_scripts(block, spent));
        }
        match fitting.as_slice() {
            [] => Ok(None),
            [(k, _)] => Ok(Some(*k)),
            _ => Err(file_error(
                &self.file.path,
                0,
                format!(
                    "{} undo records fit block {hash} and its siblings equally: the files \
                     cannot tell which is its own (read this block from a node)",
                    fitting.len()
                ),
            )),
        }
    }
}

/// Decodes the undo record at `span`.
fn decode_at(file: &FlatFile, span: Span) -> Result<Vec<Vec<TxOut>>, SourceError> {
    let bytes = file.read(span.offset, span.len as usize)?;
    decode_block_undo(&bytes).map_err(|e| {
        file_error(
            &file.path,
            span.offset + e.offset as u64,
            format!("undo record does not decode: {}", e.detail),
        )
    })
}

/// The outputs `block` (hash `hash`) spends, from its undo record at `span`.
pub(crate) fn read_spent(
    file: &FlatFile,
    span: Span,
    hash: &BlockHash,
    block: &Block,
) -> Result<Vec<Vec<TxOut>>, SourceError> {
    let spent = decode_at(file, span)?;
    check_spent_shape(block, &spent).map_err(|why| {
        file_error(
            &file.path,
            span.offset,
            format!("the undo record of block {hash} does not fit it: {why}"),
        )
    })?;
    Ok(spent)
}

/// The outputs spent by the transactions at `positions` of the block `hash` whose undo record
/// is at `span`, checked against the block's shape (`inputs` per transaction).
pub(crate) fn read_spent_at(
    file: &FlatFile,
    span: Span,
    hash: &BlockHash,
    inputs: &[u32],
    positions: &[u32],
) -> Result<Vec<Vec<TxOut>>, SourceError> {
    let bytes = file.read(span.offset, span.len as usize)?;
    crate::undo::decode_block_undo_at(&bytes, inputs, positions).map_err(|e| {
        file_error(
            &file.path,
            span.offset + e.offset as u64,
            format!(
                "the undo record of block {hash} does not fit it: {}",
                e.detail
            ),
        )
    })
}

/// The last push of a script, if it is push-only.
fn last_push(script: &Script) -> Option<Vec<u8>> {
    let mut last = None;
    for ins in script.instructions() {
        match ins.ok()? {
            Instruction::PushBytes(b) => last = Some(b.as_bytes().to_vec()),
            Instruction::Op(_) => return None,
        }
    }
    last
}

/// Whether every input of `block` agrees with the script its coin in `spent` claims, where the
/// input reveals it: the key or redeem script hashed in P2PKH and P2SH, the key or witness
/// script in P2WPKH and P2WSH. Other kinds are not checked.
fn fits_scripts(block: &Block, spent: &[Vec<TxOut>]) -> bool {
    let h160 = |data: &[u8]| hash160::Hash::hash(data).to_byte_array();
    block.txdata.iter().zip(spent).skip(1).all(|(tx, coins)| {
        tx.input.iter().zip(coins).all(|(input, coin)| {
            let spk = &coin.script_pubkey;
            let s = spk.as_bytes();
            if spk.is_p2pkh() {
                last_push(&input.script_sig).is_some_and(|k| h160(&k) == s[3..23])
            } else if spk.is_p2sh() {
                last_push(&input.script_sig).is_some_and(|r| h160(&r) == s[2..22])
            } else if spk.is_p2wpkh() {
                input.witness.last().is_some_and(|k| h160(k) == s[2..22])
            } else if spk.is_p2wsh() {
                let w = input.witness.last();
                w.is_some_and(|w| sha256::Hash::hash(w).to_byte_array() == s[2..34])
            } else {
                true
            }
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bitcoin::script::PushBytesBuf;
    use bitcoin::{
        Amount, OutPoint, PubkeyHash, ScriptBuf, Sequence, Transaction, TxIn, WPubkeyHash, Witness,
        absolute, transaction,
    };

    fn tx(input: TxIn) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![input],
            output: vec![],
        }
    }

    fn coin(script_pubkey: ScriptBuf) -> TxOut {
        TxOut {
            value: Amount::from_sat(1000),
            script_pubkey,
        }
    }

    #[test]
    fn scripts_revealed_by_inputs_pick_the_right_candidate() {
        let key = [2u8; 33];
        let other = [3u8; 33];
        let witness_in = TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x30; 71], key.to_vec()]),
        };
        let legacy_in = TxIn {
            script_sig: ScriptBuf::builder()
                .push_slice(PushBytesBuf::try_from(vec![0x30; 71]).unwrap())
                .push_slice(key)
                .into_script(),
            witness: Witness::new(),
            ..witness_in.clone()
        };
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let block = Block {
            header: genesis.header,
            txdata: vec![genesis.txdata[0].clone(), tx(witness_in), tx(legacy_in)],
        };
        let wpkh = |k: &[u8]| ScriptBuf::new_p2wpkh(&WPubkeyHash::hash(k));
        let pkh = |k: &[u8]| ScriptBuf::new_p2pkh(&PubkeyHash::hash(k));
        let right = vec![vec![], vec![coin(wpkh(&key))], vec![coin(pkh(&key))]];
        assert!(check_spent_shape(&block, &right).is_ok());
        assert!(fits_scripts(&block, &right));
        for wrong in [
            vec![vec![], vec![coin(wpkh(&other))], vec![coin(pkh(&key))]],
            vec![vec![], vec![coin(wpkh(&key))], vec![coin(pkh(&other))]],
        ] {
            assert!(check_spent_shape(&block, &wrong).is_ok());
            assert!(!fits_scripts(&block, &wrong));
        }
        let short = vec![vec![], vec![coin(wpkh(&key))]];
        assert!(check_spent_shape(&block, &short).is_err());
        let too_many = vec![vec![], vec![coin(wpkh(&key)); 2], vec![coin(pkh(&key))]];
        assert!(check_spent_shape(&block, &too_many).is_err());
    }
}
