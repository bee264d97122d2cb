//! The guest side of `vc-vm`: write an application's rules in Rust and build them into a
//! WebAssembly module the VM runs. Implement [`App`] the way a native application implements
//! `vc_engine::Application`, and [`export_app!`] provides the module's exports.
//!
//! `no_std` with `alloc`, no dependencies, edition 2021, and nothing newer than Rust 1.63, so
//! that Debian's `rustc` (which has the `wasm32-unknown-unknown` target) builds guests:
//!
//! ```text
//! OPT="-C opt-level=3 -C codegen-units=1 -C llvm-args=-inline-threshold=1000 -C panic=abort \
//!     -C target-feature=+bulk-memory"
//! rustc --edition 2021 --crate-type rlib --target wasm32-unknown-unknown $OPT \
//!     crates/vc-vm-guest/src/lib.rs --crate-name vc_vm_guest -o target/libvc_vm_guest.rlib
//! rustc --edition 2021 --crate-type cdylib --target wasm32-unknown-unknown $OPT -C lto=fat \
//!     -C link-arg=-zstack-size=65536 --extern vc_vm_guest=target/libvc_vm_guest.rlib \
//!     guests/kv/src/lib.rs -o kv.wasm
//! ```
//!
//! (`cargo xtask guests` runs that, without symbols or debug info.) On wasm32 the crate brings the module's allocator
//! (a bump allocator: every hook call starts from the module's initial memory, so nothing is ever
//! freed) and
//! its panic handler (a panic rejects the operation with code `panic`).
//!
//! The README's example is a whole guest.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

pub mod contract;
#[cfg(target_arch = "wasm32")]
mod runtime;
pub mod sys;
pub mod wire;

pub use alloc::{string::ToString, vec};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use wire::{put_bytes, Reader};

/// The ABI version this crate speaks (the first byte of every input).
pub const ABI_VERSION: u8 = 1;

/// Why an operation is not accepted: a code (1 to 32 bytes of `a-z`, `0-9`, `-`) and a
/// sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The code.
    pub code: &'static str,
    /// The reason.
    pub reason: String,
}

impl Reject {
    /// A rejection with `code` and `reason`.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Reject {
            code,
            reason: reason.into(),
        }
    }
}

/// The consensus-hash scheme a manifest names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Virtualchain v1.
    Legacy,
    /// v2 (the default).
    V2,
    /// v3: v2 with the whole state in every consensus hash.
    V3,
}

/// What the module states about itself (`docs/vm.md` section 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The name (1 to 64 bytes of `a-z`, `0-9`, `-`, `_`, `.`).
    pub name: &'static str,
    /// The rules' version.
    pub version: &'static str,
    /// The magic bytes (1 to 8).
    pub magic: &'static [u8],
    /// The opcodes.
    pub opcodes: &'static [u8],
    /// The first block read.
    pub first_block: u64,
    /// The scheme. Default v2.
    pub scheme: Scheme,
    /// The staleness window. Default 24.
    pub staleness: u64,
    /// The longest payload. Default 80.
    pub payload_limit: u32,
    /// Whether the strict carrier rule applies (default: the legacy rule).
    pub strict_carrier: bool,
    /// Memory in 64 KiB pages. Default 16.
    pub memory_pages: u32,
    /// Fuel per hook call. Default 10 million.
    pub fuel_per_op: u64,
    /// Fuel per block. Default a billion.
    pub fuel_per_block: u64,
    /// Marker scripts.
    pub markers: Vec<Vec<u8>>,
}

impl Manifest {
    /// A manifest with the defaults named on the fields.
    pub fn new(
        name: &'static str,
        version: &'static str,
        magic: &'static [u8],
        first_block: u64,
        opcodes: &'static [u8],
    ) -> Self {
        Manifest {
            name,
            version,
            magic,
            opcodes,
            first_block,
            scheme: Scheme::V2,
            staleness: 24,
            payload_limit: 80,
            strict_carrier: false,
            memory_pages: 16,
            fuel_per_op: 10_000_000,
            fuel_per_block: 1_000_000_000,
            markers: Vec::new(),
        }
    }

    /// The manifest's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![1u8];
        put_bytes(&mut out, self.name.as_bytes());
        put_bytes(&mut out, self.version.as_bytes());
        put_bytes(&mut out, self.magic);
        put_bytes(&mut out, self.opcodes);
        out.extend_from_slice(&self.first_block.to_be_bytes());
        out.push(match self.scheme {
            Scheme::Legacy => 1,
            Scheme::V2 => 2,
            Scheme::V3 => 3,
        });
        out.extend_from_slice(&self.staleness.to_be_bytes());
        out.extend_from_slice(&self.payload_limit.to_be_bytes());
        out.push(u8::from(self.strict_carrier));
        out.extend_from_slice(&self.memory_pages.to_be_bytes());
        out.extend_from_slice(&self.fuel_per_op.to_be_bytes());
        out.extend_from_slice(&self.fuel_per_block.to_be_bytes());
        out.extend_from_slice(&(self.markers.len() as u32).to_be_bytes());
        for m in &self.markers {
            put_bytes(&mut out, m);
        }
        out
    }
}

/// The block being processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Its height.
    pub height: u64,
    /// Its hash (internal byte order).
    pub hash: [u8; 32],
    /// Its header's time.
    pub time: u32,
}

/// An output: value and script, borrowed from the call's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOut<'a> {
    /// Satoshis.
    pub value: u64,
    /// The scriptPubKey.
    pub script: &'a [u8],
}

/// A list of outputs as the input encodes them (`docs/vm.md` section 5: per output a `u64`
/// value and the script as a byte string), read in place: nothing is copied until a guest
/// asks for an output. Its bounds were checked when the context was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOuts<'a> {
    bytes: &'a [u8],
    count: u32,
}

impl<'a> TxOuts<'a> {
    /// Reads the count and checks every entry; the reader ends after the list.
    fn read(r: &mut Reader<'a>) -> Option<Self> {
        let count = r.u32()?;
        // Skips from length to length: each entry is 8 bytes of value, a 4-byte length and
        // that many bytes of script.
        let rest = r.rest();
        let mut end = 0usize;
        for _ in 0..count {
            let len = rest.get(end + 8..end + 12)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            end = end.checked_add(12)?.checked_add(len)?;
            if end > rest.len() {
                return None;
            }
        }
        Some(TxOuts {
            bytes: r.take(end)?,
            count,
        })
    }

    /// How many outputs.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Output `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<TxOut<'a>> {
        self.iter().nth(index)
    }

    /// The first output.
    pub fn first(&self) -> Option<TxOut<'a>> {
        self.get(0)
    }

    /// The outputs in order.
    pub fn iter(&self) -> TxOutIter<'a> {
        TxOutIter {
            r: Reader::new(self.bytes),
            left: self.count,
        }
    }
}

/// The outputs of a [`TxOuts`], in order.
#[derive(Debug)]
pub struct TxOutIter<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for TxOutIter<'a> {
    type Item = TxOut<'a>;

    fn next(&mut self) -> Option<TxOut<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let value = self.r.u64()?;
        Some(TxOut {
            value,
            script: self.r.bytes()?,
        })
    }

    fn nth(&mut self, n: usize) -> Option<TxOut<'a>> {
        for _ in 0..n {
            if self.left == 0 {
                return None;
            }
            self.left -= 1;
            self.r.take(8)?;
            self.r.bytes()?;
        }
        self.next()
    }
}

/// The outpoints a transaction spends (a 32-byte txid in internal byte order and a `u32`
/// vout each), read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outpoints<'a> {
    bytes: &'a [u8],
}

impl<'a> Outpoints<'a> {
    fn read(r: &mut Reader<'a>) -> Option<Self> {
        let count = r.u32()? as usize;
        Some(Outpoints {
            bytes: r.take(count.checked_mul(36)?)?,
        })
    }

    /// How many inputs.
    pub fn len(&self) -> usize {
        self.bytes.len() / 36
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Input `index`'s outpoint: txid and vout.
    pub fn get(&self, index: usize) -> Option<([u8; 32], u32)> {
        let at = index.checked_mul(36)?;
        let mut r = Reader::new(self.bytes.get(at..at.checked_add(36)?)?);
        Some((r.hash()?, r.u32()?))
    }

    /// The outpoints in order.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 32], u32)> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

/// An operation's transaction context, read in place from the call's input: the fixed fields
/// decoded, the payload, inputs, senders and outputs borrowed (each list's bounds are checked
/// when the context is read, its entries decoded only when asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpContext<'a> {
    /// The block's height.
    pub height: u64,
    /// The txid (internal byte order).
    pub txid: [u8; 32],
    /// Position in the block (coinbase 0).
    pub txindex: u32,
    /// Position among the block's parsed operations.
    pub vtxindex: u32,
    /// The opcode.
    pub opcode: u8,
    /// The OP_RETURN output that carried the payload.
    pub carrier_vout: u32,
    /// The fee, in satoshis.
    pub fee: u64,
    /// The whole payload: magic, opcode, body.
    pub payload: &'a [u8],
    /// Where the body starts in the payload.
    pub body_start: usize,
    /// The outpoints spent: txid and vout.
    pub inputs: Outpoints<'a>,
    /// The outputs the inputs spend.
    pub senders: TxOuts<'a>,
    /// The transaction's outputs.
    pub outputs: TxOuts<'a>,
}

impl<'a> OpContext<'a> {
    /// The payload after magic and opcode.
    pub fn body(&self) -> &'a [u8] {
        self.payload.get(self.body_start..).unwrap_or(&[])
    }

    /// The output input 0 spends.
    pub fn sender(&self) -> Option<TxOut<'a>> {
        self.senders.first()
    }
}

/// Reads a block from an input.
pub fn read_block(r: &mut Reader<'_>) -> Option<Block> {
    Some(Block {
        height: r.u64()?,
        hash: r.hash()?,
        time: r.u32()?,
    })
}

/// Reads an operation's context from an input, in place.
pub fn read_context<'a>(r: &mut Reader<'a>) -> Option<OpContext<'a>> {
    let height = r.u64()?;
    let txid = r.hash()?;
    let txindex = r.u32()?;
    let vtxindex = r.u32()?;
    let opcode = r.u8()?;
    let carrier_vout = r.u32()?;
    let fee = r.u64()?;
    let payload = r.bytes()?;
    let body_start = r.u32()? as usize;
    let inputs = Outpoints::read(r)?;
    let senders = TxOuts::read(r)?;
    let outputs = TxOuts::read(r)?;
    Some(OpContext {
        height,
        txid,
        txindex,
        vtxindex,
        opcode,
        carrier_vout,
        fee,
        payload,
        body_start,
        inputs,
        senders,
        outputs,
    })
}

/// A consensus record: an opcode and typed values, emitted in the v2 encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    count: u16,
    count_at: usize,
}

impl Record {
    /// A record with `opcode` (at most 255 bytes) and no values yet.
    pub fn new(opcode: &[u8]) -> Self {
        let mut bytes = alloc::vec![1u8, opcode.len().min(255) as u8];
        bytes.extend_from_slice(&opcode[..opcode.len().min(255)]);
        let count_at = bytes.len();
        bytes.extend_from_slice(&[0, 0]);
        Record {
            bytes,
            count: 0,
            count_at,
        }
    }

    fn push(mut self, tag: u8, body: &[u8]) -> Self {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(body);
        self.count = self.count.saturating_add(1);
        let c = self.count.to_be_bytes();
        self.bytes[self.count_at] = c[0];
        self.bytes[self.count_at + 1] = c[1];
        self
    }

    /// Adds a null.
    pub fn null(self) -> Self {
        self.push(0, &[])
    }

    /// Adds a boolean.
    pub fn boolean(self, b: bool) -> Self {
        self.push(1, &[u8::from(b)])
    }

    /// Adds an unsigned integer.
    pub fn uint(self, n: u64) -> Self {
        self.push(2, &n.to_be_bytes())
    }

    /// Adds a signed integer.
    pub fn int(self, n: i64) -> Self {
        self.push(3, &n.to_be_bytes())
    }

    /// Adds bytes.
    pub fn bytes(self, b: &[u8]) -> Self {
        let mut body = Vec::with_capacity(4 + b.len());
        put_bytes(&mut body, b);
        self.push(4, &body)
    }

    /// Adds text.
    pub fn text(self, s: &str) -> Self {
        let mut body = Vec::with_capacity(4 + s.len());
        put_bytes(&mut body, s.as_bytes());
        self.push(5, &body)
    }

    /// The v2 encoding.
    pub fn encode(&self) -> &[u8] {
        &self.bytes
    }
}

/// The state while an operation is applied (or a block finalized): reads see this block's
/// changes so far; writes and records reach the node only if the hook returns `Ok`.
#[derive(Debug)]
pub struct State {
    block: Block,
    network: u8,
}

impl State {
    /// The block being applied.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The database's network, as the input header names it (`docs/vm.md` section 5: `0`
    /// bitcoin, `1` testnet, `2` testnet4, `3` signet, `4` regtest): what a guest renders
    /// addresses for.
    pub fn network(&self) -> u8 {
        self.network
    }

    /// The value at `key` in namespace `ns`.
    pub fn get(&self, ns: &str, key: &[u8]) -> Option<Vec<u8>> {
        sys::state_get(ns, key)
    }

    /// Sets `key` in `ns` to `value`.
    pub fn put(&mut self, ns: &str, key: &[u8], value: &[u8]) {
        sys::state_put(ns, key, value)
    }

    /// Removes `key` from `ns`.
    pub fn delete(&mut self, ns: &str, key: &[u8]) {
        sys::state_delete(ns, key)
    }

    /// A `u64` value (8 bytes big-endian); `None` if absent or not 8 bytes.
    pub fn get_u64(&self, ns: &str, key: &[u8]) -> Option<u64> {
        let v = self.get(ns, key)?;
        let mut a = [0; 8];
        a.copy_from_slice(v.get(..8).filter(|_| v.len() == 8)?);
        Some(u64::from_be_bytes(a))
    }

    /// Sets a `u64` value (8 bytes big-endian).
    pub fn put_u64(&mut self, ns: &str, key: &[u8], n: u64) {
        self.put(ns, key, &n.to_be_bytes())
    }

    /// The entries of `ns` from `start` (inclusive) to `end` (exclusive), in key order, at most
    /// `limit` (1 to 1024).
    pub fn range(
        &self,
        ns: &str,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let raw = sys::state_range(ns, start, end, limit);
        let mut r = Reader::new(&raw);
        let mut out = Vec::new();
        let n = r.u32().unwrap_or(0);
        for _ in 0..n {
            match (r.bytes(), r.bytes()) {
                (Some(k), Some(v)) => out.push((k.to_vec(), v.to_vec())),
                _ => break,
            }
        }
        out
    }

    /// Commits a record for this operation (apply only).
    pub fn emit(&mut self, record: Record) {
        sys::emit(record.encode())
    }

    /// Whether `ch` is the consensus hash of one of the last `staleness` blocks (or a seed).
    pub fn is_fresh(&self, ch: &[u8]) -> bool {
        sys::is_fresh(ch)
    }

    /// The fresh consensus hashes, nearest first: (height, hash).
    pub fn fresh_hashes(&self) -> Vec<(u64, Vec<u8>)> {
        let raw = sys::fresh_hashes();
        let mut r = Reader::new(&raw);
        let mut out = Vec::new();
        let n = r.u32().unwrap_or(0);
        for _ in 0..n {
            match (r.u64(), r.bytes()) {
                (Some(h), Some(c)) => out.push((h, c.to_vec())),
                _ => break,
            }
        }
        out
    }

    /// The consensus hash of an earlier block.
    pub fn consensus_hash(&self, height: u64) -> Option<Vec<u8>> {
        sys::consensus_hash(height)
    }
}

/// A parsed operation's bytes, as parse hands them to prepare and apply.
pub trait OpBytes: Sized {
    /// The bytes.
    fn to_bytes(&self) -> Vec<u8>;
    /// Back from the bytes (`None`: the host handed something parse never made).
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl OpBytes for Vec<u8> {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

/// An application's rules, as a guest writes them: the hooks of `vc_engine::Application`.
pub trait App {
    /// The decoded operation.
    type Op: OpBytes;

    /// The manifest.
    fn manifest() -> Manifest;

    /// Decodes one candidate operation; a rejection means it is not an operation.
    fn parse(ctx: &OpContext<'_>) -> Result<Self::Op, Reject>;

    /// Sees the block's parsed operations before any is applied; one verdict per operation.
    fn prepare(block: &Block, ops: &[(OpContext<'_>, Self::Op)]) -> Vec<Option<Reject>> {
        let _ = block;
        ops.iter().map(|_| None).collect()
    }

    /// Judges the operation against the state, writes its changes, emits its records.
    fn apply(state: &mut State, ctx: &OpContext<'_>, op: Self::Op) -> Result<(), Reject>;

    /// Once per block after its operations.
    fn finalize(state: &mut State) {
        let _ = state;
    }
}

/// The input's header: ABI version, hook, network. `None` for another ABI version.
fn header(r: &mut Reader<'_>) -> Option<(u8, u8)> {
    let version = r.u8()?;
    if version != ABI_VERSION {
        return None;
    }
    Some((r.u8()?, r.u8()?))
}

fn bad_input() {
    sys::reject("bad-input", "the host's input is not what this guest reads");
}

fn rejected(r: Reject) {
    sys::reject(r.code, &r.reason);
}

/// The body of `vc_manifest` (what [`export_app!`] exports).
pub fn run_manifest<A: App>() {
    sys::output(&A::manifest().encode());
}

/// The body of `vc_parse`.
pub fn run_parse<A: App>() {
    let input = sys::input();
    let mut r = Reader::new(&input);
    let ctx = match header(&mut r).and_then(|_| read_context(&mut r)) {
        Some(c) => c,
        None => return bad_input(),
    };
    match A::parse(&ctx) {
        Ok(op) => sys::output(&op.to_bytes()),
        Err(e) => rejected(e),
    }
}

/// A block's parsed operations.
type Ops<'a, A> = Vec<(OpContext<'a>, <A as App>::Op)>;

/// The body of `vc_prepare`.
pub fn run_prepare<A: App>() {
    let input = sys::input();
    let mut r = Reader::new(&input);
    let mut read = || -> Option<(Block, Ops<'_, A>)> {
        header(&mut r)?;
        let block = read_block(&mut r)?;
        let n = r.u32()?;
        let mut ops = Vec::new();
        for _ in 0..n {
            let ctx = read_context(&mut r)?;
            let op = A::Op::from_bytes(r.bytes()?)?;
            ops.push((ctx, op));
        }
        Some((block, ops))
    };
    let (block, ops) = match read() {
        Some(x) => x,
        None => return bad_input(),
    };
    for (i, verdict) in A::prepare(&block, &ops).into_iter().enumerate() {
        if let Some(r) = verdict {
            sys::prepare_reject(i as u32, r.code, &r.reason);
        }
    }
}

/// The body of `vc_apply`.
pub fn run_apply<A: App>() {
    let input = sys::input();
    let mut r = Reader::new(&input);
    let mut read = || -> Option<(u8, Block, OpContext<'_>, A::Op)> {
        let (_, network) = header(&mut r)?;
        let block = read_block(&mut r)?;
        let ctx = read_context(&mut r)?;
        let op = A::Op::from_bytes(r.bytes()?)?;
        Some((network, block, ctx, op))
    };
    let (network, block, ctx, op) = match read() {
        Some(x) => x,
        None => return bad_input(),
    };
    let mut state = State { block, network };
    if let Err(e) = A::apply(&mut state, &ctx, op) {
        rejected(e);
    }
}

/// The body of `vc_finalize`.
pub fn run_finalize<A: App>() {
    let input = sys::input();
    let mut r = Reader::new(&input);
    let (network, block) = match header(&mut r).and_then(|(_, n)| Some((n, read_block(&mut r)?))) {
        Some(b) => b,
        None => return bad_input(),
    };
    A::finalize(&mut State { block, network });
}

/// Exports the module's hooks for the [`App`] `$app`: `vc_manifest`, `vc_parse`,
/// `vc_prepare`, `vc_apply`, `vc_finalize`.
#[macro_export]
macro_rules! export_app {
    ($app:ty) => {
        #[no_mangle]
        pub extern "C" fn vc_manifest() {
            $crate::run_manifest::<$app>()
        }
        #[no_mangle]
        pub extern "C" fn vc_parse() {
            $crate::run_parse::<$app>()
        }
        #[no_mangle]
        pub extern "C" fn vc_prepare() {
            $crate::run_prepare::<$app>()
        }
        #[no_mangle]
        pub extern "C" fn vc_apply() {
            $crate::run_apply::<$app>()
        }
        #[no_mangle]
        pub extern "C" fn vc_finalize() {
            $crate::run_finalize::<$app>()
        }
    };
}
