//! Core's undo data (`rev*.dat`): the outputs each block spent, in Core's compressed form.
//!
//! A block's undo record is `CBlockUndo`: a CompactSize count of `CTxUndo` (one per transaction
//! except the coinbase), each a CompactSize count of coins, each coin
//!
//! ```text
//! VARINT(height * 2 + coinbase) [VARINT(0), a legacy version, when height > 0]
//! VARINT(compressed amount) VARINT(script kind or length + 6) script bytes
//! ```
//!
//! VARINT is Core's MSB-first base-128 encoding with the "+1 per continuation" twist (not
//! CompactSize). Script kinds 0-5 are P2PKH, P2SH, and P2PK with a compressed key (2, 3) or an
//! uncompressed key stored compressed (4, 5: decompressed here to the 65-byte key the script
//! really holds). Every decoder is total and reports the byte offset of what it rejects.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, ScriptBuf, TxOut};

/// Core's `MAX_SCRIPT_SIZE`: longer stored scripts are replaced by `OP_RETURN`, as Core does.
const MAX_SCRIPT_SIZE: u64 = 10_000;

/// Why undo bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoError {
    /// Byte offset in the record.
    pub offset: usize,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for UndoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte offset {}", self.detail, self.offset)
    }
}

impl std::error::Error for UndoError {}

/// A cursor over undo bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// The current offset.
    pub fn offset(&self) -> usize {
        self.at
    }

    fn fail<T>(&self, at: usize, detail: impl Into<String>) -> Result<T, UndoError> {
        Err(UndoError {
            offset: at,
            detail: detail.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], UndoError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(s) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(s)
            }
            _ => self.fail(
                self.at,
                format!("need {n} bytes, {} left", self.bytes.len() - self.at),
            ),
        }
    }

    fn byte(&mut self) -> Result<u8, UndoError> {
        Ok(self.take(1)?[0])
    }

    /// Core's VARINT.
    pub fn varint(&mut self) -> Result<u64, UndoError> {
        let start = self.at;
        let mut n: u64 = 0;
        loop {
            let ch = self.byte()?;
            if n > (u64::MAX >> 7) {
                return self.fail(start, "VARINT overflows 64 bits");
            }
            n = (n << 7) | u64::from(ch & 0x7f);
            if ch & 0x80 != 0 {
                n = match n.checked_add(1) {
                    Some(n) => n,
                    None => return self.fail(start, "VARINT overflows 64 bits"),
                };
            } else {
                return Ok(n);
            }
        }
    }

    /// Bitcoin's CompactSize, bounded by the bytes left (each counted item takes at least one).
    pub fn compact_size(&mut self) -> Result<u64, UndoError> {
        let start = self.at;
        let n = match self.byte()? {
            0xfd => u64::from(u16::from_le_bytes([self.byte()?, self.byte()?])),
            0xfe => u64::from(u32::from_le_bytes(self.array()?)),
            0xff => u64::from_le_bytes(self.array()?),
            b => u64::from(b),
        };
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return self.fail(start, format!("count {n} exceeds the {left} bytes left"));
        }
        Ok(n)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UndoError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A compressed script (`ScriptCompression`).
    pub fn script(&mut self) -> Result<ScriptBuf, UndoError> {
        let start = self.at;
        let kind = self.varint()?;
        let mut s = Vec::new();
        match kind {
            0 => {
                s.extend([0x76, 0xa9, 0x14]);
                s.extend(self.take(20)?);
                s.extend([0x88, 0xac]);
            }
            1 => {
                s.extend([0xa9, 0x14]);
                s.extend(self.take(20)?);
                s.push(0x87);
            }
            2 | 3 => {
                s.push(0x21);
                s.push(kind as u8);
                s.extend(self.take(32)?);
                s.push(0xac);
            }
            4 | 5 => {
                let mut compressed = [0u8; 33];
                compressed[0] = kind as u8 - 2;
                compressed[1..].copy_from_slice(self.take(32)?);
                let Ok(key) = PublicKey::from_slice(&compressed) else {
                    return self.fail(start, "P2PK key stored compressed is not a curve point");
                };
                s.push(0x41);
                s.extend(key.serialize_uncompressed());
                s.push(0xac);
            }
            n => {
                let len = n - 6;
                if len > MAX_SCRIPT_SIZE {
                    // Core keeps such outputs as unspendable OP_RETURN and skips the bytes.
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    self.take(len)?;
                    s.push(0x6a);
                } else {
                    s.extend(self.take(len as usize)?);
                }
            }
        }
        Ok(ScriptBuf::from_bytes(s))
    }

    /// A coin's height code, legacy version and amount (checked), up to its script.
    fn coin_amount(&mut self) -> Result<u64, UndoError> {
        let code = self.varint()?;
        if code >> 1 > 0 {
            // The legacy transaction version, always written as 0 since Core 0.15.
            self.varint()?;
        }
        let at = self.at;
        let amount = decompress_amount(self.varint()?);
        if amount > Amount::MAX_MONEY.to_sat() {
            return self.fail(at, format!("amount {amount} exceeds 21 million BTC"));
        }
        Ok(amount)
    }

    /// One spent coin (`TxInUndoFormatter` + `TxOutCompression`).
    pub fn coin(&mut self) -> Result<TxOut, UndoError> {
        let amount = self.coin_amount()?;
        Ok(TxOut {
            value: Amount::from_sat(amount),
            script_pubkey: self.script()?,
        })
    }
}

impl Reader<'_> {
    /// Skips one spent coin without building it: the varints are read and the amount is
    /// checked as [`Reader::coin`] does, but the script is not copied (nor a P2PK key
    /// decompressed, so a key that is not a curve point goes unnoticed here).
    pub fn skip_coin(&mut self) -> Result<(), UndoError> {
        self.coin_amount()?;
        let len = match self.varint()? {
            0 | 1 => 20,
            2..=5 => 32,
            n => n - 6,
        };
        self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        Ok(())
    }
}

/// Core's `DecompressAmount`.
pub fn decompress_amount(mut x: u64) -> u64 {
    if x == 0 {
        return 0;
    }
    x -= 1;
    let mut e = x % 10;
    x /= 10;
    let mut n = if e < 9 {
        let d = x % 9 + 1;
        x /= 9;
        x.saturating_mul(10).saturating_add(d)
    } else {
        x.saturating_add(1)
    };
    while e > 0 {
        n = n.saturating_mul(10);
        e -= 1;
    }
    n
}

/// Decodes a `CBlockUndo` into per-transaction spent outputs, with an empty list first for the
/// coinbase (the shape of [`crate::SpentOutputs`]). Every byte must be used.
pub fn decode_block_undo(bytes: &[u8]) -> Result<Vec<Vec<TxOut>>, UndoError> {
    let mut r = Reader::new(bytes);
    let txs = r.compact_size()?;
    let mut out = Vec::with_capacity(txs as usize + 1);
    out.push(Vec::new());
    for _ in 0..txs {
        let n = r.compact_size()?;
        let mut coins = Vec::with_capacity(n as usize);
        for _ in 0..n {
            coins.push(r.coin()?);
        }
        out.push(coins);
    }
    if r.offset() != bytes.len() {
        return r.fail(
            r.offset(),
            format!("{} bytes after the block undo", bytes.len() - r.offset()),
        );
    }
    Ok(out)
}

/// Decodes only the coins of the transactions at `positions` (ascending, never the coinbase's
/// 0) of a `CBlockUndo`, skipping the others' ([`Reader::skip_coin`]), and checks the whole
/// record against the block's shape: `inputs[i]` coins for each transaction `i` but the
/// coinbase, every byte used. One list per position.
pub fn decode_block_undo_at(
    bytes: &[u8],
    inputs: &[u32],
    positions: &[u32],
) -> Result<Vec<Vec<TxOut>>, UndoError> {
    let mut r = Reader::new(bytes);
    let txs = r.compact_size()?;
    if txs + 1 != inputs.len() as u64 {
        return r.fail(
            0,
            format!(
                "undo for {txs} transactions, the block has {} besides the coinbase",
                inputs.len().saturating_sub(1)
            ),
        );
    }
    let mut out = Vec::with_capacity(positions.len());
    let mut wanted = positions.iter().copied().peekable();
    for (i, &want) in inputs.iter().enumerate().skip(1) {
        let at = r.offset();
        let n = r.compact_size()?;
        if n != u64::from(want) {
            return r.fail(
                at,
                format!("transaction {i} has {want} inputs but {n} spent coins"),
            );
        }
        if wanted.peek() == Some(&(i as u32)) {
            wanted.next();
            let mut coins = Vec::with_capacity(n as usize);
            for _ in 0..n {
                coins.push(r.coin()?);
            }
            out.push(coins);
        } else {
            for _ in 0..n {
                r.skip_coin()?;
            }
        }
    }
    if let Some(p) = wanted.next() {
        return r.fail(0, format!("no transaction at position {p}"));
    }
    if r.offset() != bytes.len() {
        return r.fail(
            r.offset(),
            format!("{} bytes after the block undo", bytes.len() - r.offset()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_core() {
        // Vectors from Bitcoin Core's serialize_tests (varint encodings).
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (0x7f, &[0x7f]),
            (0x80, &[0x80, 0x00]),
            (0x1234, &[0xa3, 0x34]),
            (0xffff, &[0x82, 0xfe, 0x7f]),
            (0x123456, &[0xc7, 0xe7, 0x56]),
            (0x80123456, &[0x86, 0xff, 0xc7, 0xe7, 0x56]),
            (0xffffffff, &[0x8e, 0xfe, 0xfe, 0xfe, 0x7f]),
            (
                0x7fffffffffffffff,
                &[0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x7f],
            ),
            (
                u64::MAX,
                &[0x80, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x7f],
            ),
        ];
        for (n, bytes) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.varint().unwrap(), *n, "{bytes:02x?}");
            assert_eq!(r.offset(), bytes.len());
        }
        assert!(Reader::new(&[0xff; 12]).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn amounts_match_core() {
        // Core's compress_tests: CompressAmount(x) for these values.
        let cases = [
            (0u64, 0u64),
            (1, 0x1),
            (1_000_000, 0x7),
            (100_000_000, 0x9),
            (5_000_000_000, 0x32),
            (2_100_000_000_000_000, 0x1406f40),
        ];
        for (amount, compressed) in cases {
            assert_eq!(decompress_amount(compressed), amount);
        }
    }

    #[test]
    fn scripts_of_every_kind() {
        let mut bytes = vec![0x00];
        bytes.extend([0x11; 20]);
        let p2pkh = Reader::new(&bytes).script().unwrap();
        assert!(p2pkh.is_p2pkh());
        let mut bytes = vec![0x01];
        bytes.extend([0x22; 20]);
        assert!(Reader::new(&bytes).script().unwrap().is_p2sh());
        // The generator point G, stored compressed (x with even y: kind 2; as uncompressed: 4).
        let gx = [
            0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87,
            0x0b, 0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b,
            0x16, 0xf8, 0x17, 0x98,
        ];
        let mut bytes = vec![0x02];
        bytes.extend(gx);
        let p2pk = Reader::new(&bytes).script().unwrap();
        assert_eq!(p2pk.len(), 35);
        assert!(p2pk.is_p2pk());
        let mut bytes = vec![0x04];
        bytes.extend(gx);
        let p2pk_u = Reader::new(&bytes).script().unwrap();
        assert_eq!(p2pk_u.len(), 67);
        assert_eq!(p2pk_u.as_bytes()[1], 0x04);
        assert_eq!(&p2pk_u.as_bytes()[2..34], &gx);
        // x = 5 is not on the curve.
        let mut bytes = vec![0x05];
        bytes.extend([0; 31]);
        bytes.push(5);
        assert!(Reader::new(&bytes).script().is_err());
        // A raw script: kind = len + 6.
        let raw = [0x51, 0x20, 0xaa];
        let mut bytes = vec![9];
        bytes.extend(raw);
        assert_eq!(Reader::new(&bytes).script().unwrap().as_bytes(), &raw);
        assert!(Reader::new(&[10, 1]).script().is_err());
    }

    #[test]
    fn block_undo_round() {
        // Two transactions: one input (a coinbase coin of height 5), two inputs (height 7).
        let mut b = vec![0x02, 0x01];
        b.extend([5 * 2 + 1, 0x00, 0x09, 0x00]);
        b.extend([0x11; 20]);
        b.push(0x02);
        for _ in 0..2 {
            b.extend([7 * 2, 0x00, 0x07, 0x01]);
            b.extend([0x22; 20]);
        }
        let undo = decode_block_undo(&b).unwrap();
        assert_eq!(undo.len(), 3);
        assert!(undo[0].is_empty());
        assert_eq!(undo[1][0].value, Amount::from_sat(100_000_000));
        assert_eq!(undo[2].len(), 2);
        assert_eq!(undo[2][1].value, Amount::from_sat(1_000_000));
        let mut extra = b.clone();
        extra.push(0);
        assert_eq!(decode_block_undo(&extra).unwrap_err().offset, b.len());
        for cut in 0..b.len() {
            assert!(decode_block_undo(&b[..cut]).is_err(), "cut at {cut}");
        }
        // A count far larger than the data is refused before allocating.
        assert!(
            decode_block_undo(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
    }

    #[test]
    fn partial_decoding_keeps_the_positions_and_checks_the_shape() {
        // Three transactions besides the coinbase: 1, 2 and 1 inputs, scripts of every
        // compressed kind and a raw one.
        let mut b = vec![0x03, 0x01];
        b.extend([5 * 2 + 1, 0x00, 0x09, 0x00]);
        b.extend([0x11; 20]);
        b.push(0x02);
        b.extend([7 * 2, 0x00, 0x07, 0x02]);
        b.extend([0x22; 32]);
        b.extend([7 * 2, 0x00, 0x07, 0x06 + 3, 0x51, 0x52, 0x53]);
        b.push(0x01);
        b.extend([3 * 2, 0x00, 0x08, 0x01]);
        b.extend([0x33; 20]);
        let all = decode_block_undo(&b).unwrap();
        let inputs = [0, 1, 2, 1];
        for positions in [vec![], vec![1], vec![2], vec![1, 3], vec![1, 2, 3]] {
            let got = decode_block_undo_at(&b, &inputs, &positions).unwrap();
            let want: Vec<Vec<TxOut>> =
                positions.iter().map(|&p| all[p as usize].clone()).collect();
            assert_eq!(got, want, "positions {positions:?}");
        }
        // The wrong shape, a position past the block, trailing or missing bytes.
        assert!(decode_block_undo_at(&b, &[0, 1, 1, 1], &[1]).is_err());
        assert!(decode_block_undo_at(&b, &[0, 1, 2], &[1]).is_err());
        assert!(decode_block_undo_at(&b, &inputs, &[4]).is_err());
        let mut extra = b.clone();
        extra.push(0);
        assert!(decode_block_undo_at(&extra, &inputs, &[1]).is_err());
        for cut in 0..b.len() {
            assert!(decode_block_undo_at(&b[..cut], &inputs, &[2]).is_err());
        }
    }
}
