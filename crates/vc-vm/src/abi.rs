//! The binary interface between the host and a module, as `docs/vm.md` specifies it: the
//! exports a module provides, the imports the host offers, and the bytes of every hook's
//! input. All integers are big-endian; byte strings are a `u32` length and the bytes.

use bitcoin::hashes::Hash;
use bitcoin::{Network, TxOut};
use vc_engine::{BlockInfo, OpContext};

/// The ABI version. Input buffers start with it, and it is part of every module's identity
/// (the application's version string reads `<manifest version>+vm<ABI_VERSION>`).
pub const ABI_VERSION: u8 = 1;

/// The import module every host function lives in.
pub const IMPORT_MODULE: &str = "vc";

/// The linear memory a module must export.
pub const MEMORY_EXPORT: &str = "memory";

/// The hooks a module exports, each `() -> ()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Hook {
    /// `vc_manifest`: writes the manifest with `output`. Required.
    Manifest,
    /// `vc_parse`: decodes one candidate operation, writes it with `output`. Required.
    Parse,
    /// `vc_prepare`: sees the block's parsed operations, may turn some away. Optional.
    Prepare,
    /// `vc_apply`: judges and applies one operation. Required.
    Apply,
    /// `vc_finalize`: once per block after its operations. Optional.
    Finalize,
}

impl Hook {
    /// Every hook, in the order of their byte values.
    pub const ALL: [Hook; 5] = [
        Hook::Manifest,
        Hook::Parse,
        Hook::Prepare,
        Hook::Apply,
        Hook::Finalize,
    ];

    /// The export's name.
    pub fn export(self) -> &'static str {
        match self {
            Hook::Manifest => "vc_manifest",
            Hook::Parse => "vc_parse",
            Hook::Prepare => "vc_prepare",
            Hook::Apply => "vc_apply",
            Hook::Finalize => "vc_finalize",
        }
    }

    /// The byte that names the hook in its input's header.
    pub fn byte(self) -> u8 {
        match self {
            Hook::Manifest => 0,
            Hook::Parse => 1,
            Hook::Prepare => 2,
            Hook::Apply => 3,
            Hook::Finalize => 4,
        }
    }

    /// Whether a module must export it.
    pub fn required(self) -> bool {
        matches!(self, Hook::Manifest | Hook::Parse | Hook::Apply)
    }

    /// Whether the hook may read and write state (apply and finalize).
    pub fn has_state(self) -> bool {
        matches!(self, Hook::Apply | Hook::Finalize)
    }
}

/// The byte that names a Bitcoin network in input headers.
pub fn network_byte(network: Network) -> u8 {
    match network {
        Network::Bitcoin => 0,
        Network::Testnet => 1,
        Network::Testnet4 => 2,
        Network::Signet => 3,
        Network::Regtest => 4,
    }
}

/// Builds an input buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    /// An input for `hook` on `network`: the three header bytes, with room for a block and an
    /// operation's context (most inputs) so that writing them does not grow the buffer.
    pub fn header(hook: Hook, network: Network) -> Writer {
        let mut bytes = Vec::with_capacity(512);
        bytes.extend_from_slice(&[ABI_VERSION, hook.byte(), network_byte(network)]);
        Writer(bytes)
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// A `u32` length (saturated: nothing the host encodes comes near 4 GiB) and the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b)
    }

    fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// A block: height, hash (internal byte order), header time.
    pub fn block(&mut self, b: &BlockInfo) -> &mut Self {
        self.u64(b.height).raw(&b.hash.to_byte_array()).u32(b.time)
    }

    fn txouts(&mut self, outs: &[TxOut]) -> &mut Self {
        self.count(outs.len());
        for o in outs {
            self.u64(o.value.to_sat()).bytes(o.script_pubkey.as_bytes());
        }
        self
    }

    /// An operation's transaction context.
    pub fn context(&mut self, c: &OpContext) -> &mut Self {
        let body_start = c.payload.len() - c.body().len();
        self.u64(c.height)
            .raw(&c.txid.to_byte_array())
            .u32(c.txindex)
            .u32(c.vtxindex)
            .u8(c.opcode)
            .u32(c.carrier_vout)
            .u64(c.fee)
            .bytes(&c.payload)
            .u32(u32::try_from(body_start).unwrap_or(u32::MAX));
        self.count(c.inputs.len());
        for i in &c.inputs {
            self.raw(&i.txid.to_byte_array()).u32(i.vout);
        }
        self.txouts(&c.senders).txouts(&c.outputs)
    }
}
