//! A regtest `bitcoind` for tests: started on 127.0.0.1 with ports chosen at run time, REST on,
//! no wallet, a temporary data directory, stopped on drop (also when the test panics).
//!
//! Tests fund themselves: [`TestNode::mine`] pays coinbases to keys the [`Signer`] holds, and
//! the signer builds and signs spends with the `bitcoin` crate (P2PKH, P2SH-P2WPKH, P2WPKH and
//! P2TR key path, several inputs and outputs, OP_RETURN outputs).
//!
//! Finding the binary: `BITCOIND_EXE`, else the cache that `cargo xtask node` fills. When neither
//! exists, [`TestNode::start`] returns `None` after a loud message, so that a developer's plain
//! `cargo test` passes; CI sets `VC_REQUIRE_BITCOIND=1`, which turns the skip into a failure.
//!
//! ```no_run
//! let Some(node) = vc_testnode::TestNode::start() else { return };
//! let mut signer = vc_testnode::Signer::new(1);
//! node.mine(101, &signer.address(vc_testnode::KeyKind::P2wpkh));
//! signer.sync(&node);
//! assert_eq!(node.height(), 101);
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness fails loudly

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::key::{CompressedPublicKey, Keypair, TapTweak};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    Address, Amount, Block, BlockHash, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Txid, Witness, absolute, transaction,
};
use vc_chash::hex;
use vc_source::core::rpc::{Auth, RpcClient};

pub mod electrs;
pub mod electrumx;
pub mod fake_core;
mod loopback;
pub mod proxy;
pub mod synthetic;
pub use electrs::Electrs;
pub use proxy::{Lie, LyingProxy};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The environment variable that names a bitcoind binary.
pub const BITCOIND_EXE: &str = "BITCOIND_EXE";
/// Set (to anything) to make a missing bitcoind a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "VC_REQUIRE_BITCOIND";
/// The crates.io package whose vendored Bitcoin Core source `cargo xtask node` builds.
pub const KERNEL_PACKAGE: &str = "libbitcoinkernel-sys";
/// Its version: the cache key.
pub const KERNEL_VERSION: &str = "0.4.1";

/// The machine-wide cache shared by every clone: `$VC_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/virtualchain-rs`, else `~/.cache/virtualchain-rs`.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("VC_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("virtualchain-rs"));
    }
    Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/virtualchain-rs"))
}

/// Where `cargo xtask node` installs `bin/bitcoind` and `bin/bitcoin-cli`.
pub fn bitcoind_install_dir() -> Option<PathBuf> {
    Some(
        cache_root()?
            .join("bitcoind")
            .join(format!("{KERNEL_PACKAGE}-{KERNEL_VERSION}")),
    )
}

/// The cached bitcoind, if `cargo xtask node` built it.
pub fn cached_bitcoind() -> Option<PathBuf> {
    let exe = bitcoind_install_dir()?.join("bin/bitcoind");
    exe.exists().then_some(exe)
}

/// The bitcoind to run, or `None` (after a loud message) when there is none and CI did not ask
/// for one.
pub fn bitcoind_exe() -> Option<PathBuf> {
    find_exe(
        "bitcoind",
        BITCOIND_EXE,
        cached_bitcoind(),
        REQUIRE_ENV,
        "cargo xtask node",
    )
}

/// A test binary: `$exe_env`, else `cached`; without either, a panic when `$require_env` is set
/// (CI), else `None` after a loud skip message naming the xtask command that provides it.
pub(crate) fn find_exe(
    name: &str,
    exe_env: &str,
    cached: Option<PathBuf>,
    require_env: &str,
    xtask: &str,
) -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os(exe_env) {
        return Some(PathBuf::from(exe));
    }
    if cached.is_some() {
        return cached;
    }
    if std::env::var_os(require_env).is_some() {
        panic!("{require_env} is set but no {name} was found: run `{xtask}` or set {exe_env}");
    }
    eprintln!(
        "\n*** SKIPPING a test that needs a real {name}: none found. Run `{xtask}` (builds and \
         caches one) or set {exe_env}. CI never skips. ***\n"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running regtest node.
pub struct TestNode {
    child: Option<Child>,
    datadir: PathBuf,
    /// The temporary directory behind `datadir`, deleted on drop (`None` for a kept one).
    _temp: Option<tempfile::TempDir>,
    rpc_port: u16,
    client: RpcClient,
}

impl std::fmt::Debug for TestNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNode")
            .field("datadir", &self.datadir)
            .field("rpc_port", &self.rpc_port)
            .finish_non_exhaustive()
    }
}

impl TestNode {
    /// Starts a node with REST, or returns `None` when no bitcoind is available (see the crate
    /// docs).
    pub fn start() -> Option<TestNode> {
        Self::start_with(&[])
    }

    /// Starts a node with extra command-line arguments (for example `-txindex`).
    pub fn start_with(extra: &[&str]) -> Option<TestNode> {
        let exe = bitcoind_exe()?;
        let temp = tempfile::tempdir().expect("a temporary directory");
        let datadir = temp.path().to_path_buf();
        // Small blk files so that tests see several of them.
        let mut args = vec!["-fastprune=1"];
        args.extend_from_slice(extra);
        Some(Self::launch(&exe, datadir, Some(temp), &args))
    }

    /// Starts a node on `datadir`, which it keeps (created if missing; a benchmark's cached
    /// chain), with Core's default block-file size and `extra` arguments. `None` when no
    /// bitcoind is available.
    pub fn start_in(datadir: &Path, extra: &[&str]) -> Option<TestNode> {
        let exe = bitcoind_exe()?;
        std::fs::create_dir_all(datadir).expect("creating the data directory");
        Some(Self::launch(&exe, datadir.to_path_buf(), None, extra))
    }

    fn launch(
        exe: &Path,
        datadir: PathBuf,
        temp: Option<tempfile::TempDir>,
        extra: &[&str],
    ) -> TestNode {
        let rpc_port = free_port();
        let mut args = vec![
            "-regtest".to_string(),
            format!("-datadir={}", datadir.display()),
            format!("-rpcport={rpc_port}"),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            "-listen=0".into(),
            "-server=1".into(),
            "-rest=1".into(),
            "-printtoconsole=0".into(),
            "-fallbackfee=0.0001".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_string()));
        // A kept directory may hold the cookie of an earlier run that was killed.
        let cookie = datadir.join("regtest/.cookie");
        let _ = std::fs::remove_file(&cookie);
        let child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cookie.exists() {
            assert!(
                Instant::now() < deadline,
                "bitcoind did not write its cookie in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let client = RpcClient::new(
            format!("http://127.0.0.1:{rpc_port}"),
            Auth::CookieFile(cookie.clone()),
        );
        let mut node = TestNode {
            child: Some(child),
            datadir,
            _temp: temp,
            rpc_port,
            client,
        };
        // Wait for the RPC warm-up to end.
        loop {
            match node.client.call::<u64>("getblockcount", &[]) {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "bitcoind RPC not ready: {e}");
                    if let Some(status) = node
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!("bitcoind exited during start-up: {status}");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        node
    }

    /// Waits until the node's transaction index (`-txindex`) has caught up with its tip, which
    /// it does asynchronously after each block; panics after 120 s.
    pub fn wait_for_txindex(&self) {
        let tip = self.height();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let info: serde_json::Value = self.call("getindexinfo", &[]);
            if info["txindex"]["synced"] == true
                && info["txindex"]["best_block_height"].as_u64() == Some(tip)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "txindex did not catch up: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of the running node (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The JSON-RPC client (cookie authentication), for calls without a helper here:
    /// `node.rpc().call::<u64>("getblockcount", &[])`.
    pub fn rpc(&self) -> &RpcClient {
        &self.client
    }

    /// `http://127.0.0.1:PORT`: JSON-RPC and REST share it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The data directory (the regtest files are under `regtest/`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The cookie file.
    pub fn cookie_file(&self) -> PathBuf {
        self.datadir.join("regtest/.cookie")
    }

    /// The `blocks/` directory (blk, rev and xor files).
    pub fn blocks_dir(&self) -> PathBuf {
        self.datadir.join("regtest/blocks")
    }

    /// The current height.
    pub fn height(&self) -> u64 {
        self.call("getblockcount", &[])
    }

    /// A JSON-RPC call that must succeed.
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[serde_json::Value],
    ) -> T {
        self.client
            .call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A JSON-RPC call whose answer is a hex-encoded consensus object.
    fn call_hex<T: bitcoin::consensus::Decodable>(
        &self,
        method: &str,
        params: &[serde_json::Value],
    ) -> T {
        let text: String = self.call(method, params);
        let bytes = hex::decode(&text).unwrap_or_else(|e| panic!("{method}: not hex: {e}"));
        deserialize(&bytes).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mines `n` blocks paying `address`.
    pub fn mine(&self, n: u64, address: &Address) -> Vec<BlockHash> {
        let hashes: Vec<String> = self.call(
            "generatetoaddress",
            &[serde_json::json!(n), serde_json::json!(address.to_string())],
        );
        hashes
            .iter()
            .map(|h| h.parse().expect("a block hash"))
            .collect()
    }

    /// Mines one block with exactly `txs` (after the coinbase), paying `address`.
    pub fn mine_with(&self, address: &Address, txs: &[Transaction]) -> BlockHash {
        let raw: Vec<String> = txs.iter().map(|tx| hex::encode(&serialize(tx))).collect();
        let v: serde_json::Value = self.call(
            "generateblock",
            &[
                serde_json::json!(address.to_string()),
                serde_json::json!(raw),
            ],
        );
        v["hash"]
            .as_str()
            .expect("a block hash")
            .parse()
            .expect("a block hash")
    }

    /// Broadcasts a transaction into the mempool.
    pub fn send(&self, tx: &Transaction) -> Txid {
        let txid: String = self.call(
            "sendrawtransaction",
            &[serde_json::json!(hex::encode(&serialize(tx)))],
        );
        txid.parse().expect("a txid")
    }

    /// The hash of the block at `height` on the best chain.
    pub fn block_hash(&self, height: u64) -> BlockHash {
        let hash: String = self.call("getblockhash", &[serde_json::json!(height)]);
        hash.parse().expect("a block hash")
    }

    /// The hash of the best chain's tip.
    pub fn best_block_hash(&self) -> BlockHash {
        let hash: String = self.call("getbestblockhash", &[]);
        hash.parse().expect("a block hash")
    }

    /// The block with `hash`.
    pub fn block(&self, hash: &BlockHash) -> Block {
        self.call_hex(
            "getblock",
            &[serde_json::json!(hash.to_string()), serde_json::json!(0)],
        )
    }

    /// The block at `height` on the best chain.
    pub fn block_at(&self, height: u64) -> Block {
        self.block(&self.block_hash(height))
    }

    /// The transaction `txid`, from the mempool or (with `-txindex`) any block.
    pub fn raw_transaction(&self, txid: &Txid) -> Transaction {
        self.call_hex(
            "getrawtransaction",
            &[
                serde_json::json!(txid.to_string()),
                serde_json::json!(false),
            ],
        )
    }

    /// Makes `hash` (and its descendants) invalid: the node reorgs to another branch.
    pub fn invalidate(&self, hash: &BlockHash) {
        self.call::<()>("invalidateblock", &[serde_json::json!(hash.to_string())]);
    }

    /// Undoes [`TestNode::invalidate`].
    pub fn reconsider(&self, hash: &BlockHash) {
        self.call::<()>("reconsiderblock", &[serde_json::json!(hash.to_string())]);
    }

    /// Stops the node and waits for it to exit (flushing its block files).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.client.call::<serde_json::Value>("stop", &[]);
            wait_or_kill(&mut child, Duration::from_secs(30));
        }
    }
}

/// Waits up to `grace` for `child` to exit after it was asked to, then kills it.
pub(crate) fn wait_or_kill(child: &mut Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The script types the signer can spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// Pay to public key hash (legacy).
    P2pkh,
    /// P2WPKH nested in P2SH.
    P2shP2wpkh,
    /// Native segwit v0.
    P2wpkh,
    /// Taproot, key path.
    P2tr,
}

/// All kinds, for tests that want each.
pub const KINDS: [KeyKind; 4] = [
    KeyKind::P2pkh,
    KeyKind::P2shP2wpkh,
    KeyKind::P2wpkh,
    KeyKind::P2tr,
];

/// An output the signer can spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it is.
    pub txout: TxOut,
    /// Which key spends it.
    pub kind: KeyKind,
    /// The height of the block that created it.
    pub height: u64,
    /// Whether it is a coinbase output (needs 100 confirmations).
    pub coinbase: bool,
}

/// A wallet-less signer: one deterministic key per [`KeyKind`], and the outputs it owns on the
/// node's best chain.
pub struct Signer {
    secp: Secp256k1<All>,
    keys: Vec<(KeyKind, SecretKey)>,
    utxos: Vec<Utxo>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("utxos", &self.utxos.len())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Keys derived from `seed` (tests with different seeds hold different keys).
    pub fn new(seed: u8) -> Signer {
        let keys = KINDS
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let mut b = [0x11u8; 32];
                b[0] = seed;
                b[1] = i as u8 + 1;
                (*kind, SecretKey::from_slice(&b).expect("a valid key"))
            })
            .collect();
        Signer {
            secp: Secp256k1::new(),
            keys,
            utxos: Vec::new(),
        }
    }

    fn key(&self, kind: KeyKind) -> SecretKey {
        self.keys
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .expect("a key per kind")
    }

    fn compressed(&self, kind: KeyKind) -> CompressedPublicKey {
        CompressedPublicKey(self.key(kind).public_key(&self.secp))
    }

    /// The regtest address of the key of `kind`.
    pub fn address(&self, kind: KeyKind) -> Address {
        let n = Network::Regtest;
        match kind {
            KeyKind::P2pkh => Address::p2pkh(self.compressed(kind), n),
            KeyKind::P2shP2wpkh => Address::p2shwpkh(&self.compressed(kind), n),
            KeyKind::P2wpkh => Address::p2wpkh(&self.compressed(kind), n),
            KeyKind::P2tr => {
                let kp = Keypair::from_secret_key(&self.secp, &self.key(kind));
                Address::p2tr(&self.secp, kp.x_only_public_key().0, None, n)
            }
        }
    }

    fn kind_of(&self, script: &ScriptBuf) -> Option<KeyKind> {
        KINDS
            .into_iter()
            .find(|k| &self.address(*k).script_pubkey() == script)
    }

    /// Rescans the node's best chain for the signer's outputs (simple and reorg-proof).
    pub fn sync(&mut self, node: &TestNode) {
        let tip = node.height();
        let mut utxos: Vec<Utxo> = Vec::new();
        let mut spent = std::collections::BTreeSet::new();
        for height in 1..=tip {
            let block = node.block_at(height);
            for (i, tx) in block.txdata.iter().enumerate() {
                for input in &tx.input {
                    spent.insert(input.previous_output);
                }
                for (vout, out) in tx.output.iter().enumerate() {
                    if let Some(kind) = self.kind_of(&out.script_pubkey) {
                        utxos.push(Utxo {
                            outpoint: OutPoint::new(tx.compute_txid(), vout as u32),
                            txout: out.clone(),
                            kind,
                            height,
                            coinbase: i == 0,
                        });
                    }
                }
            }
        }
        utxos.retain(|u| !spent.contains(&u.outpoint));
        self.utxos = utxos;
    }

    /// The outputs spendable in a block at `next_height` (coinbases need 100 confirmations),
    /// largest first.
    pub fn spendable(&self, next_height: u64) -> Vec<Utxo> {
        let mut v: Vec<Utxo> = self
            .utxos
            .iter()
            .filter(|u| !u.coinbase || next_height >= u.height + 100)
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.txout
                .value
                .cmp(&a.txout.value)
                .then(a.outpoint.cmp(&b.outpoint))
        });
        v
    }

    /// Forgets outputs a built transaction spends and learns its outputs (unconfirmed, counted
    /// as confirmed at `height`), so several transactions can be built before mining.
    pub fn track(&mut self, tx: &Transaction, height: u64) {
        self.utxos
            .retain(|u| !tx.input.iter().any(|i| i.previous_output == u.outpoint));
        for (vout, out) in tx.output.iter().enumerate() {
            if let Some(kind) = self.kind_of(&out.script_pubkey) {
                self.utxos.push(Utxo {
                    outpoint: OutPoint::new(tx.compute_txid(), vout as u32),
                    txout: out.clone(),
                    kind,
                    height,
                    coinbase: false,
                });
            }
        }
    }

    /// Builds and signs a transaction spending `inputs` (each signed by its own key type) to
    /// `outputs`, adding one output with the change (value minus outputs minus `fee`) to
    /// `change` unless it would be dust. OP_RETURN outputs go in `outputs` like any other.
    pub fn sign(
        &self,
        inputs: &[Utxo],
        mut outputs: Vec<TxOut>,
        fee: Amount,
        change: Option<KeyKind>,
    ) -> Transaction {
        let total: Amount = inputs.iter().map(|u| u.txout.value).sum();
        let paid: Amount = outputs.iter().map(|o| o.value).sum();
        let rest = total
            .checked_sub(paid)
            .and_then(|r| r.checked_sub(fee))
            .expect("inputs cover outputs and fee");
        if let Some(kind) = change
            && rest > Amount::from_sat(1_000)
        {
            outputs.push(TxOut {
                value: rest,
                script_pubkey: self.address(kind).script_pubkey(),
            });
        }
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|u| TxIn {
                    previous_output: u.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let prevouts: Vec<TxOut> = inputs.iter().map(|u| u.txout.clone()).collect();
        let mut sigs: Vec<(ScriptBuf, Witness)> = Vec::new();
        {
            let mut cache = SighashCache::new(&tx);
            for (i, u) in inputs.iter().enumerate() {
                let sk = self.key(u.kind);
                let pk = self.compressed(u.kind);
                let ecdsa = |digest: [u8; 32]| {
                    let sig = self.secp.sign_ecdsa(&Message::from_digest(digest), &sk);
                    bitcoin::ecdsa::Signature {
                        signature: sig,
                        sighash_type: EcdsaSighashType::All,
                    }
                };
                sigs.push(match u.kind {
                    KeyKind::P2pkh => {
                        let h = cache
                            .legacy_signature_hash(
                                i,
                                &u.txout.script_pubkey,
                                EcdsaSighashType::All.to_u32(),
                            )
                            .expect("legacy sighash");
                        let sig = ecdsa(h.to_byte_array());
                        let script_sig = Builder::new()
                            .push_slice(PushBytesBuf::try_from(sig.to_vec()).expect("a push"))
                            .push_slice(pk.to_bytes())
                            .into_script();
                        (script_sig, Witness::new())
                    }
                    KeyKind::P2wpkh | KeyKind::P2shP2wpkh => {
                        let program = ScriptBuf::new_p2wpkh(&pk.wpubkey_hash());
                        let h = cache
                            .p2wpkh_signature_hash(
                                i,
                                &program,
                                u.txout.value,
                                EcdsaSighashType::All,
                            )
                            .expect("segwit sighash");
                        let witness = Witness::p2wpkh(&ecdsa(h.to_byte_array()), &pk.0);
                        let script_sig = if u.kind == KeyKind::P2shP2wpkh {
                            Builder::new()
                                .push_slice(
                                    PushBytesBuf::try_from(program.to_bytes()).expect("a push"),
                                )
                                .into_script()
                        } else {
                            ScriptBuf::new()
                        };
                        (script_sig, witness)
                    }
                    KeyKind::P2tr => {
                        let h = cache
                            .taproot_key_spend_signature_hash(
                                i,
                                &Prevouts::All(&prevouts),
                                TapSighashType::Default,
                            )
                            .expect("taproot sighash");
                        let kp =
                            Keypair::from_secret_key(&self.secp, &sk).tap_tweak(&self.secp, None);
                        let sig = self.secp.sign_schnorr_no_aux_rand(
                            &Message::from_digest(h.to_byte_array()),
                            &kp.to_keypair(),
                        );
                        let sig = bitcoin::taproot::Signature {
                            signature: sig,
                            sighash_type: TapSighashType::Default,
                        };
                        (ScriptBuf::new(), Witness::p2tr_key_spend(&sig))
                    }
                });
            }
        }
        for (input, (script_sig, witness)) in tx.input.iter_mut().zip(sigs) {
            input.script_sig = script_sig;
            input.witness = witness;
        }
        tx
    }
}

/// Builds a chain of `blocks` blocks above the 110 funding blocks: each block spends 1 to 3
/// outputs of every key type into several outputs of every key type, with 0 to 3 OP_RETURNs.
pub fn build_mixed_chain(node: &TestNode, signer: &mut Signer, blocks: u64) {
    node.mine(110, &signer.address(KeyKind::P2wpkh));
    signer.sync(node);
    mine_mixed(node, signer, blocks);
}

/// Mines `blocks` blocks of mixed spends (as [`build_mixed_chain`] does) from the signer's
/// outputs, which must be mature.
pub fn mine_mixed(node: &TestNode, signer: &mut Signer, blocks: u64) {
    let miner = signer.address(KeyKind::P2wpkh);
    for b in 0..blocks {
        let height = node.height() + 1;
        let mut txs = Vec::new();
        for t in 0..(b % 3 + 1) {
            let utxos = signer.spendable(height);
            let n_in = ((b + t) % 3 + 1) as usize;
            let inputs: Vec<_> = utxos.into_iter().take(n_in).collect();
            if inputs.is_empty() {
                break;
            }
            let total: Amount = inputs.iter().map(|u| u.txout.value).sum();
            let share = total / 6;
            let mut outputs: Vec<TxOut> = KINDS
                .iter()
                .map(|k| TxOut {
                    value: share,
                    script_pubkey: signer.address(*k).script_pubkey(),
                })
                .collect();
            for i in 0..((b + t) % 4) {
                outputs.push(op_return(format!("id:op-{b}-{t}-{i}").as_bytes()));
            }
            let change = KINDS[((b + t) % 4) as usize];
            let tx = signer.sign(&inputs, outputs, Amount::from_sat(2_000), Some(change));
            signer.track(&tx, height);
            txs.push(tx);
        }
        node.mine_with(&miner, &txs);
    }
    signer.sync(node);
}

/// Builds a chain of `blocks` wide blocks for benchmarks: each holds `txs` transactions of two
/// inputs and three outputs (two payments, of alternating key types, and an OP_RETURN), every
/// block spending the previous block's outputs. Funding: 101 blocks and one fan-out
/// transaction.
pub fn build_wide_chain(node: &TestNode, signer: &mut Signer, blocks: u64, txs: usize) {
    let miner = signer.address(KeyKind::P2wpkh);
    node.mine(101, &miner);
    signer.sync(node);
    let fee = Amount::from_sat(2_000);
    let coinbase = signer
        .spendable(node.height() + 1)
        .into_iter()
        .next()
        .expect("a mature coinbase");
    let scripts: Vec<ScriptBuf> = KINDS
        .iter()
        .map(|k| signer.address(*k).script_pubkey())
        .collect();
    let n = 2 * txs;
    let share = (coinbase.txout.value - fee) / n as u64;
    let outputs: Vec<TxOut> = (0..n)
        .map(|i| TxOut {
            value: share,
            script_pubkey: scripts[i % 4].clone(),
        })
        .collect();
    let fan_out = signer.sign(&[coinbase], outputs, fee, Some(KeyKind::P2wpkh));
    let kinds: Vec<KeyKind> = (0..n).map(|i| KINDS[i % 4]).collect();
    let mut pool = wide_outputs(&fan_out, node.height() + 1, &kinds);
    node.mine_with(&miner, &[fan_out]);
    for b in 0..blocks {
        let height = node.height() + 1;
        let mut block_txs = Vec::with_capacity(txs);
        let mut next = Vec::with_capacity(n);
        for (t, inputs) in pool.chunks(2).enumerate() {
            let total: Amount = inputs.iter().map(|u| u.txout.value).sum();
            let half = (total - fee) / 2;
            let pick = [(t + b as usize) % 4, (t + b as usize + 1) % 4];
            let mut outputs: Vec<TxOut> = pick
                .iter()
                .map(|k| TxOut {
                    value: half,
                    script_pubkey: scripts[*k].clone(),
                })
                .collect();
            outputs[1].value = total - fee - half;
            outputs.push(op_return(format!("id:bench-{b}-{t}").as_bytes()));
            let tx = signer.sign(inputs, outputs, fee, None);
            next.extend(wide_outputs(&tx, height, &pick.map(|k| KINDS[k])));
            block_txs.push(tx);
        }
        node.mine_with(&miner, &block_txs);
        pool = next;
    }
}

/// The first outputs of `tx`, paid to the signer's keys of `kinds`.
fn wide_outputs(tx: &Transaction, height: u64, kinds: &[KeyKind]) -> Vec<Utxo> {
    let txid = tx.compute_txid();
    tx.output
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(vout, (out, kind))| Utxo {
            outpoint: OutPoint::new(txid, vout as u32),
            txout: out.clone(),
            kind: *kind,
            height,
            coinbase: false,
        })
        .collect()
}

/// An `OP_RETURN <data>` output.
pub fn op_return(data: &[u8]) -> TxOut {
    TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::new_op_return(
            PushBytesBuf::try_from(data.to_vec()).expect("a push"),
        ),
    }
}
