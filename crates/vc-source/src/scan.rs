//! Scanning a block's bytes in place: finding an application's candidate transactions without
//! building the others.
//!
//! An application reads a few transactions in a hundred blocks, but a block is only trusted once
//! its transactions hash to its header's merkle root with none repeated ([`crate::body`]). That
//! check needs every transaction's txid, not every transaction: [`Scanner::scan`] walks the
//! serialization once, recording where each transaction, its outputs and its witnesses lie,
//! and looks at each output script where it lies. It then hashes each txid from its byte
//! ranges (the bytes without the segwit marker, flag and witnesses), spread over several
//! threads when the block is large, checks the merkle root and uniqueness, and decodes only the
//! *candidates*: the transactions that have an `OP_RETURN` output whose first push starts with
//! the application's magic and, when it names marker scripts, an output paying one of them
//! ([`ScanFilter`]). Nothing else is allocated per transaction, and the buffers are reused from
//! block to block.
//!
//! The scanner accepts exactly the bytes [`bitcoin::Block`]'s decoder accepts (canonical
//! CompactSize, segwit flag 1 with some witness, the decoder's witness size limit, no trailing
//! bytes) and refuses anything else with [`BodyError::Decode`] and the byte offset, never by
//! panicking. Its candidates are exactly the transactions [`ScanFilter::matches`] picks from the
//! decoded block (property-tested against the decoder in this module's tests).

use bitcoin::block::Header;
use bitcoin::consensus::Decodable;
use bitcoin::hashes::Hash;
use bitcoin::{ScriptBuf, Transaction, Txid};
use sha2::{Digest, Sha256};

use crate::body::BodyError;

/// The decoder's limit on a witness's bytes (`bitcoin::consensus::encode::MAX_VEC_SIZE`).
const MAX_WITNESS_BYTES: u64 = 4_000_000;

/// Blocks at least this large have their txids hashed on several threads.
pub const PARALLEL_FROM: usize = 512 * 1024;

/// Which transactions an application wants to see: those with an `OP_RETURN` output whose
/// first push starts with `magic` and, if `markers` is not empty, an output paying one of
/// them. A superset of what an engine's carrier rule and payload format accept (they look at
/// the same output more closely), so the engine applies its own rules to the candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanFilter {
    magic: Vec<u8>,
    markers: Vec<ScriptBuf>,
    witnesses: bool,
}

impl ScanFilter {
    /// Candidates carry an `OP_RETURN` push starting with `magic` and pay one of `markers`
    /// (any transaction with such a push when `markers` is empty).
    pub fn new(magic: &[u8], markers: &[ScriptBuf]) -> ScanFilter {
        ScanFilter {
            magic: magic.to_vec(),
            markers: markers.to_vec(),
            witnesses: false,
        }
    }

    /// Declares that the reader uses the candidates' witnesses: then every block where a
    /// selected candidate has one is checked against its coinbase's witness commitment
    /// (BIP141), which the txids and the merkle root do not cover. Off by default: the check
    /// decodes and hashes the whole block again.
    pub fn with_witnesses(mut self, witnesses: bool) -> ScanFilter {
        self.witnesses = witnesses;
        self
    }

    /// Whether candidates' witnesses are checked (see [`ScanFilter::with_witnesses`]).
    pub fn witnesses(&self) -> bool {
        self.witnesses
    }

    /// The magic bytes.
    pub fn magic(&self) -> &[u8] {
        &self.magic
    }

    /// Whether `tx`, already decoded, is a candidate: the reference the scanner agrees with.
    pub fn matches(&self, tx: &Transaction) -> bool {
        let mut hit = Hits::default();
        for out in &tx.output {
            hit.see(self, out.script_pubkey.as_bytes());
        }
        hit.is_candidate(self)
    }
}

/// What one transaction's outputs showed.
#[derive(Clone, Copy, Debug, Default)]
struct Hits {
    magic: bool,
    marker: bool,
}

impl Hits {
    fn see(&mut self, filter: &ScanFilter, script: &[u8]) {
        if !self.magic && op_return_push_starts_with(script, &filter.magic) {
            self.magic = true;
        }
        if !self.marker
            && !filter.markers.is_empty()
            && filter.markers.iter().any(|m| m.as_bytes() == script)
        {
            self.marker = true;
        }
    }

    fn is_candidate(&self, filter: &ScanFilter) -> bool {
        self.magic && (filter.markers.is_empty() || self.marker)
    }
}

/// Whether `script` is `OP_RETURN` followed by a push (any push form) whose data, as far as the
/// script holds it, starts with `magic` (non-empty).
pub fn op_return_push_starts_with(script: &[u8], magic: &[u8]) -> bool {
    let (Some(&0x6a), Some(&op)) = (script.first(), script.get(1)) else {
        return false;
    };
    let start = match op {
        1..=0x4b => 2,
        0x4c => 3,
        0x4d => 4,
        0x4e => 6,
        _ => return false,
    };
    !magic.is_empty() && script.get(start..).is_some_and(|d| d.starts_with(magic))
}

/// A candidate transaction: its position in the block (0 is the coinbase) and the
/// transaction.
pub type Candidate = (u32, Transaction);

/// What [`Scanner::scan`] found in one block.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScannedBody {
    /// The block's header.
    pub header: Header,
    /// Its serialized size.
    pub size: usize,
    /// Each transaction's input count, in block order (the shape its spent outputs have).
    pub inputs: Vec<u32>,
    /// The candidates, in block order (the coinbase never is one).
    pub candidates: Vec<Candidate>,
}

impl ScannedBody {
    /// The block's transaction count.
    pub fn tx_count(&self) -> usize {
        self.inputs.len()
    }

    /// The same from a block already decoded (for sources that do not give bytes); the caller
    /// has checked its body.
    pub fn from_block(block: &bitcoin::Block, size: usize, filter: &ScanFilter) -> ScannedBody {
        ScannedBody {
            header: block.header,
            size,
            inputs: block
                .txdata
                .iter()
                .map(|tx| u32::try_from(tx.input.len()).unwrap_or(u32::MAX))
                .collect(),
            candidates: block
                .txdata
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, tx)| filter.matches(tx))
                .map(|(i, tx)| (u32::try_from(i).unwrap_or(u32::MAX), tx.clone()))
                .collect(),
        }
    }
}

/// Where one transaction lies in the block.
#[derive(Clone, Copy, Debug, Default)]
struct TxSpan {
    /// Its first byte.
    start: usize,
    /// For a segwit transaction, where the inputs start (after marker and flag) and where the
    /// witnesses start and end; all 0 otherwise.
    body: usize,
    witness: usize,
    lock_time: usize,
    /// One past its last byte.
    end: usize,
}

impl TxSpan {
    fn txid(&self, bytes: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        if self.body == 0 {
            h.update(&bytes[self.start..self.end]);
        } else {
            h.update(&bytes[self.start..self.start + 4]);
            h.update(&bytes[self.body..self.witness]);
            h.update(&bytes[self.lock_time..self.end]);
        }
        Sha256::digest(h.finalize()).into()
    }
}

/// A cursor over block bytes whose every read is checked.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn fail<T>(&self, detail: impl Into<String>) -> Result<T, BodyError> {
        Err(BodyError::Decode {
            offset: self.at as u64,
            detail: detail.into(),
        })
    }

    fn skip(&mut self, n: u64) -> Result<(), BodyError> {
        let left = (self.b.len() - self.at) as u64;
        if n > left {
            return self.fail(format!("need {n} bytes, {left} left"));
        }
        // n <= left, which fits in usize.
        self.at += n as usize;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BodyError> {
        let from = self.at;
        self.skip(n as u64)?;
        Ok(&self.b[from..self.at])
    }

    fn byte(&mut self) -> Result<u8, BodyError> {
        Ok(self.take(1)?[0])
    }

    /// A CompactSize, refused when not in its shortest form (as the decoder does).
    fn compact(&mut self) -> Result<u64, BodyError> {
        // Almost every count and length fits in one byte.
        if let Some(&b) = self.b.get(self.at)
            && b < 0xfd
        {
            self.at += 1;
            return Ok(u64::from(b));
        }
        let at = self.at;
        let first = self.byte()?;
        let (n, min) = match first {
            0xfd => (u64::from(u16::from_le_bytes(self.array()?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array()?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array()?), 0x1_0000_0000),
            b => return Ok(u64::from(b)),
        };
        if n < min {
            self.at = at;
            return self.fail("non-minimal CompactSize");
        }
        Ok(n)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BodyError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A CompactSize-prefixed byte string.
    fn var_bytes(&mut self) -> Result<&'a [u8], BodyError> {
        let n = self.compact()?;
        let from = self.at;
        self.skip(n)?;
        Ok(&self.b[from..self.at])
    }
}

/// A reusable block scanner: its buffers live from block to block, so scanning allocates only
/// what it returns. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Scanner {
    spans: Vec<TxSpan>,
    txids: Vec<[u8; 32]>,
    keys: Vec<(u64, u32)>,
    sorted: Vec<[u8; 32]>,
}

impl Scanner {
    /// A scanner with empty buffers.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Scans `bytes` (one serialized block): checks its transactions against its header's
    /// merkle root and for repeats, and decodes the candidates `filter` picks. Blocks of at
    /// least [`PARALLEL_FROM`] bytes are hashed on up to `threads` threads.
    pub fn scan(
        &mut self,
        bytes: &[u8],
        filter: &ScanFilter,
        threads: usize,
    ) -> Result<ScannedBody, BodyError> {
        let mut cur = Cur { b: bytes, at: 0 };
        let header_bytes = cur.take(80)?;
        let header =
            Header::consensus_decode(&mut &header_bytes[..]).map_err(|e| BodyError::Decode {
                offset: 0,
                detail: e.to_string(),
            })?;
        let count = cur.compact()?;
        // Every transaction takes at least 10 bytes: a larger count is a lie, not an allocation.
        let cap = count.min(bytes.len() as u64 / 10) as usize;
        self.spans.clear();
        self.spans.reserve(cap);
        let mut inputs = Vec::with_capacity(cap);
        let mut candidate_at = Vec::new();
        for i in 0..count {
            let (span, n_in, hits) = scan_tx(&mut cur, filter)?;
            if i > 0 && hits.is_candidate(filter) {
                candidate_at.push(self.spans.len());
            }
            self.spans.push(span);
            inputs.push(n_in);
        }
        if cur.at != bytes.len() {
            return cur.fail(format!("{} trailing bytes", bytes.len() - cur.at));
        }
        self.hash_txids(bytes, threads);
        self.check(&header)?;
        let mut candidates = Vec::with_capacity(candidate_at.len());
        for k in candidate_at {
            let s = self.spans[k];
            let tx = Transaction::consensus_decode(&mut &bytes[s.start..s.end]).map_err(|e| {
                BodyError::Decode {
                    offset: s.start as u64,
                    detail: e.to_string(),
                }
            })?;
            candidates.push((u32::try_from(k).unwrap_or(u32::MAX), tx));
        }
        Ok(ScannedBody {
            header,
            size: bytes.len(),
            inputs,
            candidates,
        })
    }

    fn hash_txids(&mut self, bytes: &[u8], threads: usize) {
        self.txids.clear();
        self.txids.resize(self.spans.len(), [0; 32]);
        let threads = threads.clamp(1, 16);
        if threads == 1 || bytes.len() < PARALLEL_FROM || self.spans.len() < 2 * threads {
            for (id, span) in self.txids.iter_mut().zip(&self.spans) {
                *id = span.txid(bytes);
            }
            return;
        }
        // Contiguous shares of about equal bytes, each written by its own thread: the result
        // is the same whatever the thread count.
        let per = bytes.len().div_ceil(threads);
        let mut cuts = vec![0];
        for (i, s) in self.spans.iter().enumerate() {
            if s.end >= per * cuts.len() && cuts.len() < threads {
                cuts.push(i + 1);
            }
        }
        cuts.push(self.spans.len());
        cuts.dedup();
        std::thread::scope(|scope| {
            let mut ids: &mut [[u8; 32]] = &mut self.txids;
            let mut from = 0;
            for &to in &cuts[1..] {
                let (mine, rest) = ids.split_at_mut(to - from);
                ids = rest;
                let spans = &self.spans[from..to];
                scope.spawn(move || {
                    for (id, span) in mine.iter_mut().zip(spans) {
                        *id = span.txid(bytes);
                    }
                });
                from = to;
            }
        });
    }

    /// The merkle root and uniqueness checks over `self.txids`.
    fn check(&mut self, header: &Header) -> Result<(), BodyError> {
        // Sorted by their first 8 bytes (big-endian, so in the order of the whole txids), the
        // whole txids compared only on a tie: a repeat is adjacent, the smallest found first.
        let ids = &self.txids;
        let prefix = |t: &[u8; 32]| {
            let mut p = [0u8; 8];
            p.copy_from_slice(&t[..8]);
            u64::from_be_bytes(p)
        };
        self.keys.clear();
        self.keys
            .extend(ids.iter().enumerate().map(|(i, t)| (prefix(t), i as u32)));
        self.keys.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| ids[a.1 as usize].cmp(&ids[b.1 as usize]))
        });
        if let Some(w) = self
            .keys
            .windows(2)
            .find(|w| w[0].0 == w[1].0 && ids[w[0].1 as usize] == ids[w[1].1 as usize])
        {
            return Err(BodyError::Mutated {
                txid: Txid::from_byte_array(ids[w[0].1 as usize]),
            });
        }
        // Level by level, in place over a copy of the txids.
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.txids);
        let mut len = self.sorted.len();
        if len == 0 {
            return Err(BodyError::MerkleRoot);
        }
        while len > 1 {
            let next = len.div_ceil(2);
            for i in 0..next {
                let left = self.sorted[2 * i];
                let right = if 2 * i + 1 < len {
                    self.sorted[2 * i + 1]
                } else {
                    left
                };
                let once = Sha256::new()
                    .chain_update(left)
                    .chain_update(right)
                    .finalize();
                self.sorted[i] = Sha256::digest(once).into();
            }
            len = next;
        }
        if self.sorted[0] != header.merkle_root.to_byte_array() {
            return Err(BodyError::MerkleRoot);
        }
        Ok(())
    }
}

/// One transaction at the cursor: where it lies, its input count and what its outputs showed.
fn scan_tx(cur: &mut Cur<'_>, filter: &ScanFilter) -> Result<(TxSpan, u32, Hits), BodyError> {
    let start = cur.at;
    cur.skip(4)?;
    let mut n_in = cur.compact()?;
    let mut span = TxSpan {
        start,
        ..TxSpan::default()
    };
    let segwit = n_in == 0;
    if segwit {
        let flag = cur.byte()?;
        if flag != 1 {
            cur.at -= 1;
            return cur.fail(format!("unsupported segwit version {flag}"));
        }
        span.body = cur.at;
        n_in = cur.compact()?;
    }
    for _ in 0..n_in {
        cur.skip(36)?;
        cur.var_bytes()?;
        cur.skip(4)?;
    }
    let n_out = cur.compact()?;
    let mut hits = Hits::default();
    for _ in 0..n_out {
        cur.skip(8)?;
        let script = cur.var_bytes()?;
        hits.see(filter, script);
    }
    if segwit {
        span.witness = cur.at;
        let mut any = false;
        for _ in 0..n_in {
            let items = cur.compact()?;
            if items > MAX_WITNESS_BYTES {
                return cur.fail(format!("{items} witness items"));
            }
            any |= items > 0;
            let mut total = 0u64;
            for _ in 0..items {
                let at = cur.at;
                let len = cur.compact()?;
                total = total.saturating_add(len + (cur.at - at) as u64);
                if total > MAX_WITNESS_BYTES {
                    return cur.fail("witness larger than 4,000,000 bytes");
                }
                cur.skip(len)?;
            }
        }
        if n_in > 0 && !any {
            return cur.fail("witness flag set but no witnesses present");
        }
        span.lock_time = cur.at;
    }
    cur.skip(4)?;
    span.end = cur.at;
    let n_in = u32::try_from(n_in).map_err(|_| BodyError::Decode {
        offset: start as u64,
        detail: format!("{n_in} inputs"),
    })?;
    Ok((span, n_in, hits))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bitcoin::consensus::serialize;
    use bitcoin::{Amount, Block, OutPoint, Sequence, TxIn, TxOut, Witness};
    use proptest::prelude::*;

    const MAGIC: &[u8] = b"id";

    fn tx(seed: u8, witness: Vec<Vec<u8>>, outputs: Vec<ScriptBuf>) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::from_consensus(u32::from(seed)),
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([seed; 32]), 1),
                script_sig: ScriptBuf::from_bytes(vec![0x51, seed]),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&witness),
            }],
            output: outputs
                .into_iter()
                .map(|script_pubkey| TxOut {
                    value: Amount::from_sat(u64::from(seed)),
                    script_pubkey,
                })
                .collect(),
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

    /// What the decoder and the filter find: the reference.
    fn reference(bytes: &[u8], filter: &ScanFilter) -> Result<ScannedBody, BodyError> {
        let block = crate::body::decode_block(bytes, true)?;
        Ok(ScannedBody::from_block(&block, bytes.len(), filter))
    }

    fn op_return(data: &[u8]) -> ScriptBuf {
        let mut s = vec![0x6a];
        s.push(data.len() as u8);
        s.extend(data);
        ScriptBuf::from_bytes(s)
    }

    #[test]
    fn candidates_and_shape_match_the_decoder() {
        let marker = ScriptBuf::from_bytes(vec![0x00, 0x14, 7, 7, 7]);
        let b = block(vec![
            tx(0, vec![], vec![op_return(b"id+coinbase")]),
            tx(1, vec![], vec![op_return(b"id+1")]),
            tx(2, vec![vec![1; 72], vec![2; 33]], vec![op_return(b"xx+2")]),
            tx(
                3,
                vec![vec![3; 10]],
                vec![marker.clone(), op_return(b"id?3")],
            ),
            // PUSHDATA1 form, and a truncated push.
            tx(
                4,
                vec![],
                vec![ScriptBuf::from_bytes(vec![0x6a, 0x4c, 3, b'i', b'd', 0])],
            ),
            tx(
                5,
                vec![],
                vec![ScriptBuf::from_bytes(vec![0x6a, 0x20, b'i', b'd'])],
            ),
            tx(
                6,
                vec![],
                vec![ScriptBuf::from_bytes(vec![0x6a, 0x00, b'i', b'd'])],
            ),
        ]);
        let bytes = serialize(&b);
        for filter in [
            ScanFilter::new(MAGIC, &[]),
            ScanFilter::new(MAGIC, &[marker]),
            ScanFilter::new(b"zz", &[]),
        ] {
            let got = Scanner::new().scan(&bytes, &filter, 1).unwrap();
            assert_eq!(got, reference(&bytes, &filter).unwrap());
        }
        let got = Scanner::new()
            .scan(&bytes, &ScanFilter::new(MAGIC, &[]), 1)
            .unwrap();
        let at: Vec<u32> = got.candidates.iter().map(|c| c.0).collect();
        assert_eq!(
            at,
            vec![1, 3, 4, 5],
            "never the coinbase, never an OP_0 push"
        );
    }

    #[test]
    fn large_blocks_hash_the_same_on_several_threads() {
        let txs: Vec<Transaction> = (0..=255u8)
            .map(|i| {
                let w = if i % 3 == 0 {
                    vec![]
                } else {
                    vec![vec![i; 4000]]
                };
                tx(i, w, vec![op_return(&[b'i', b'd', i])])
            })
            .collect();
        let bytes = serialize(&block(txs));
        assert!(bytes.len() >= PARALLEL_FROM);
        let filter = ScanFilter::new(MAGIC, &[]);
        let one = Scanner::new().scan(&bytes, &filter, 1).unwrap();
        for threads in [2, 3, 7] {
            assert_eq!(Scanner::new().scan(&bytes, &filter, threads).unwrap(), one);
        }
        assert_eq!(one, reference(&bytes, &filter).unwrap());
        assert_eq!(one.candidates.len(), 255);
    }

    #[test]
    fn mutated_and_altered_blocks_are_refused() {
        let txs = vec![
            tx(0, vec![], vec![]),
            tx(1, vec![vec![1]], vec![]),
            tx(2, vec![], vec![]),
        ];
        let b = block(txs.clone());
        let mut dup = b.clone();
        dup.txdata.push(txs[2].clone());
        let filter = ScanFilter::new(MAGIC, &[]);
        assert_eq!(
            Scanner::new().scan(&serialize(&dup), &filter, 1),
            Err(BodyError::Mutated {
                txid: txs[2].compute_txid()
            })
        );
        let mut altered = b.clone();
        altered.txdata[1].lock_time = bitcoin::absolute::LockTime::from_consensus(99);
        assert_eq!(
            Scanner::new().scan(&serialize(&altered), &filter, 1),
            Err(BodyError::MerkleRoot)
        );
        // The witness is not in the txid: changing it keeps the root (as Core's txid does).
        let mut witness = b.clone();
        witness.txdata[1].input[0].witness = Witness::from_slice(&[vec![9u8; 3]]);
        assert!(
            Scanner::new()
                .scan(&serialize(&witness), &filter, 1)
                .is_ok()
        );
    }

    #[test]
    fn hostile_bytes_are_refused_without_panicking() {
        let bytes = serialize(&block(vec![
            tx(0, vec![], vec![]),
            tx(1, vec![vec![1]], vec![]),
        ]));
        let filter = ScanFilter::new(MAGIC, &[]);
        let mut s = Scanner::new();
        for cut in 0..bytes.len() {
            assert!(matches!(
                s.scan(&bytes[..cut], &filter, 2),
                Err(BodyError::Decode { .. })
            ));
        }
        // A huge transaction count, a huge script length, a non-minimal count.
        let mut huge = bytes[..80].to_vec();
        huge.extend([0xff; 9]);
        assert!(s.scan(&huge, &filter, 1).is_err());
        let mut long_script = bytes[..81].to_vec();
        long_script.extend([1, 0, 0, 0, 1]);
        long_script.extend([0; 36]);
        long_script.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(s.scan(&long_script, &filter, 1).is_err());
        let mut non_minimal = bytes[..80].to_vec();
        non_minimal.extend([0xfd, 2, 0]);
        non_minimal.extend(&bytes[81..]);
        assert!(s.scan(&non_minimal, &filter, 1).is_err());
        assert!(crate::body::decode_block(&non_minimal, false).is_err());
    }

    fn arb_script() -> impl Strategy<Value = ScriptBuf> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(ScriptBuf::from_bytes),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|d| {
                let mut p = b"id".to_vec();
                p.extend(d);
                op_return(&p)
            }),
            Just(ScriptBuf::from_bytes(vec![7; 22])),
        ]
    }

    fn arb_tx() -> impl Strategy<Value = Transaction> {
        (
            any::<u8>(),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..3),
            proptest::collection::vec(arb_script(), 0..4),
            0usize..3,
        )
            .prop_map(|(seed, witness, outputs, extra_inputs)| {
                let mut t = tx(seed, witness.clone(), outputs);
                for k in 0..extra_inputs {
                    let mut input = t.input[0].clone();
                    input.previous_output.vout = 2 + k as u32;
                    input.witness = Witness::from_slice(&witness);
                    t.input.push(input);
                }
                t
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_scan_equals_decoding_then_filtering(
            txs in proptest::collection::vec(arb_tx(), 1..12),
            marked in any::<bool>(),
            threads in 1usize..4,
        ) {
            let bytes = serialize(&block(txs));
            let markers = if marked { vec![ScriptBuf::from_bytes(vec![7; 22])] } else { vec![] };
            let filter = ScanFilter::new(MAGIC, &markers);
            let got = Scanner::new().scan(&bytes, &filter, threads);
            prop_assert_eq!(got, reference(&bytes, &filter));
        }

        #[test]
        fn on_damaged_bytes_scan_and_decoder_agree(
            txs in proptest::collection::vec(arb_tx(), 1..6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
            truncate in any::<bool>(),
        ) {
            let mut bytes = serialize(&block(txs));
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            if truncate {
                bytes.truncate(cut % bytes.len());
            }
            let filter = ScanFilter::new(MAGIC, &[]);
            let got = Scanner::new().scan(&bytes, &filter, 2);
            let want = reference(&bytes, &filter);
            // Both accept (with the same candidates) or both refuse; the reasons may differ
            // only in wording and offset.
            match (&got, &want) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "scan {:?} but decoder {:?}", got, want),
            }
        }
    }
}
