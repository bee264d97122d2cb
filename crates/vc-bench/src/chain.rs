//! The benchmark chain: generated once on a regtest bitcoind and cached by version.
//!
//! Shape (deterministic; the generator's PRNG has a fixed seed):
//!
//! * 40 funding blocks pay coinbases to 8 signers; the names scenario funds 6 wallets and lets
//!   everything mature (106 blocks); one block fans the coinbases out into 2,400 coins.
//! * Then at least [`PAYLOAD_BLOCKS`] blocks and [`MIN_TXS`] transactions: each block holds 150
//!   to 699 transactions (payments, and the names operations below) whose inputs come from
//!   earlier blocks. A payment spends 1 input (70%), 2 (18%), 3 (7%), 5 (4%) or 10 (1%,
//!   consolidations) and pays 1 (6%), 2 (74%), 3 (12%), 5 (6%) or 20 (2%, batched payouts)
//!   outputs, to P2WPKH (45%), P2TR (25%), P2PKH (15%) and P2SH-P2WPKH (15%) scripts, at 1 to
//!   5 sat/vB. 2% carry a foreign OP_RETURN (other protocols' data, which the names rules must
//!   scan and ignore).
//! * About 1% of transactions are names operations: the namespace `test` is launched first,
//!   then 4 wallets each preorder a name in one block and register it in the next, with the
//!   consensus hash of the block before (a real writer's), so every operation is accepted.
//!
//! The generator indexes each block with the names engine right after mining it (as the
//! scenario does), which gives the consensus hashes preorders embed and the tip's consensus
//! hash that every benchmark run must reproduce.
//!
//! A chain is made for one consensus-hash scheme (the one the names engine runs under while
//! generating): its preorders embed that scheme's hashes (for v2 and v3, the first 16 bytes of
//! the 32-byte hash), so its operations are accepted when it is indexed under that scheme and
//! stale under the others. The chains of one shape for different schemes come from the same
//! seed: the same transactions, blocks and sizes, except the 16 hash bytes of each preorder
//! (and so the transaction and block hashes).

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use bitcoin::{Address, Amount, BlockHash, Network, OutPoint, ScriptBuf, Transaction, TxOut};
use serde::{Deserialize, Serialize};
use vc_chash::Scheme;
use vc_names::build;
use vc_names::price::name_price;
use vc_names::scenario::{Miner, Scenario, test_namespace_params};
use vc_source::BlockSource;
use vc_source::core::{CoreAuth, CoreConfig, CoreSource};
use vc_testnode::{KeyKind, Signer, TestNode, Utxo, op_return};

/// Bumped whenever the generator changes what it makes for [`Shape::SMALL`] (the cache is
/// keyed by it, and by the scheme: see [`Shape::key`]).
pub const VERSION: &str = "v1";
/// Blocks of payments (after funding) at least, for [`Shape::SMALL`].
pub const PAYLOAD_BLOCKS: u64 = 500;
/// Transactions in the whole chain at least, for [`Shape::SMALL`].
pub const MIN_TXS: u64 = 200_000;

/// What a bench chain looks like: the small chain where every block carries names operations,
/// or the mainnet-shaped one of 1 to 2 MB blocks where 3 blocks in 100 do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The cache key (and [`ChainInfo::version`]).
    pub version: &'static str,
    /// Payload blocks at least.
    pub payload_blocks: u64,
    /// Transactions in the chain at least.
    pub min_txs: u64,
    /// Serialized block bytes in the chain at least.
    pub min_bytes: u64,
    /// Payments per payload block: `base + below(spread)`.
    pub payments: (u64, u64),
    /// Witness-heavy transactions per payload block: `base + below(spread)` (none: `(0, 0)`).
    pub heavy: (u64, u64),
    /// Names operations go in payload blocks `2 + k * names_every` (1: every block).
    pub names_every: u64,
    /// Outputs of each funding coinbase's fan-out transaction.
    pub fan_out: usize,
}

impl Shape {
    /// The small chain (`v1`): 500 blocks of 150 to 699 transactions, names operations in
    /// every block.
    pub const SMALL: Shape = Shape {
        version: VERSION,
        payload_blocks: PAYLOAD_BLOCKS,
        min_txs: MIN_TXS,
        min_bytes: 0,
        payments: (150, 550),
        heavy: (0, 0),
        names_every: 1,
        fan_out: 60,
    };

    /// The mainnet-shaped chain (`m1`): at least 1 GB of blocks of 1 to 2 MB holding 2,000 to
    /// 4,000 transactions (the payment mix plus inscription-like witness-heavy spends), names
    /// operations in 3 blocks out of 100.
    pub const MAINNET: Shape = Shape {
        version: "m1",
        payload_blocks: 1,
        min_txs: 0,
        min_bytes: 1_000_000_000,
        payments: (2_200, 1_000),
        heavy: (150, 300),
        names_every: 33,
        fan_out: 150,
    };

    /// A tiny chain (`t1`) for tests: 10 blocks of 20 to 39 transactions, names operations in
    /// every block (35 of them).
    pub const TINY: Shape = Shape {
        version: "t1",
        payload_blocks: 10,
        min_txs: 0,
        min_bytes: 0,
        payments: (20, 20),
        heavy: (0, 0),
        names_every: 1,
        fan_out: 4,
    };

    /// The shape called `name` (`small`, `mainnet` or `tiny`).
    pub fn named(name: &str) -> Option<Shape> {
        match name {
            "small" | "v1" => Some(Shape::SMALL),
            "mainnet" | "m1" => Some(Shape::MAINNET),
            "tiny" | "t1" => Some(Shape::TINY),
            _ => None,
        }
    }

    /// The cache key of this shape's chain for `scheme`: the version for legacy (the key the
    /// chains had before there was a scheme to choose), `VERSION-SCHEME` for the others.
    pub fn key(&self, scheme: Scheme) -> String {
        match scheme {
            Scheme::Legacy => self.version.to_owned(),
            other => format!("{}-{}", self.version, other.name()),
        }
    }
}

/// A block's weight the mainnet shape stays under (consensus allows 4,000,000).
const MAX_WEIGHT: u64 = 3_900_000;

const SIGNERS: usize = 8;
const FUNDING_BLOCKS: u64 = 40;
/// Names wallets: 0 preorders and reveals the namespace, 1 makes it ready, 2.. are the
/// operators that preorder and register names.
const NAMES_WALLETS: u8 = 6;
const OPERATORS: std::ops::Range<usize> = 2..6;
const MIN_OUTPUT: u64 = 2_000;

/// What a cached chain is: read by every run, written once by [`generate`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChainInfo {
    /// The generator version that made it.
    pub version: String,
    /// The consensus-hash scheme it was made for (its preorders carry that scheme's hashes).
    #[serde(default = "legacy_name")]
    pub scheme: String,
    /// The tip's height.
    pub tip_height: u64,
    /// The tip's hash.
    pub tip_hash: String,
    /// The names deployment's first block.
    pub first_block: u64,
    /// Transactions in the chain (coinbases included).
    pub transactions: u64,
    /// Names operations the engine accepted.
    pub names_ops: u64,
    /// Names operations the engine rejected (0 for a well-formed chain).
    pub names_rejected: u64,
    /// The names consensus hash at the tip (hex; 32 bytes for v2 and v3): every indexing run
    /// under [`ChainInfo::scheme`] must end on it.
    pub consensus_hash: String,
    /// Seconds the generation took.
    pub generation_secs: f64,
}

/// The scheme of a chain whose `chain.json` names none (made before chains had schemes).
fn legacy_name() -> String {
    Scheme::Legacy.name().to_owned()
}

/// The cached chain: a bitcoind data directory and its [`ChainInfo`].
#[derive(Clone, Debug)]
pub struct CachedChain {
    /// The data directory (`regtest/` below it).
    pub datadir: PathBuf,
    /// What it holds.
    pub info: ChainInfo,
}

/// The cached chain of `shape` for `scheme` under `cache` (`<cache>/bench-chain/<key>`, see
/// [`Shape::key`]), generated first if it is missing.
pub fn ensure(cache: &Path, shape: &Shape, scheme: Scheme) -> Result<CachedChain> {
    let root = cache.join("bench-chain");
    let key = shape.key(scheme);
    let dir = root.join(&key);
    let info_file = dir.join("chain.json");
    if info_file.exists() {
        let info: ChainInfo = serde_json::from_slice(&fs::read(&info_file)?)
            .with_context(|| format!("reading {}", info_file.display()))?;
        ensure!(
            info.scheme == scheme.name(),
            "{} holds a chain for scheme {}, not {scheme}",
            info_file.display(),
            info.scheme
        );
        eprintln!(
            "bench chain: {} (cached; {} blocks, {} transactions)",
            dir.display(),
            info.tip_height + 1,
            info.transactions
        );
        return Ok(CachedChain {
            datadir: dir.join("node"),
            info,
        });
    }
    let tmp = root.join(format!("{key}.partial"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    eprintln!(
        "bench chain: generating into {} (once per machine)",
        tmp.display()
    );
    let info = generate(&tmp.join("node"), shape, scheme)?;
    fs::write(tmp.join("chain.json"), serde_json::to_vec_pretty(&info)?)?;
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&tmp, &dir)?;
    Ok(CachedChain {
        datadir: dir.join("node"),
        info,
    })
}

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Picks from `(weight in percent, value)` pairs whose weights sum to 100.
    fn pick<T: Copy>(&mut self, table: &[(u64, T)]) -> T {
        let mut r = self.below(100);
        for (w, v) in table {
            if r < *w {
                return *v;
            }
            r -= w;
        }
        table[table.len() - 1].1
    }
}

const INPUTS: &[(u64, usize)] = &[(70, 1), (18, 2), (7, 3), (4, 5), (1, 10)];
const OUTPUTS: &[(u64, usize)] = &[(6, 1), (74, 2), (12, 3), (6, 5), (2, 20)];
const SCRIPTS: &[(u64, KeyKind)] = &[
    (45, KeyKind::P2wpkh),
    (25, KeyKind::P2tr),
    (15, KeyKind::P2pkh),
    (15, KeyKind::P2shP2wpkh),
];

fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::P2pkh => 0,
        KeyKind::P2shP2wpkh => 1,
        KeyKind::P2wpkh => 2,
        KeyKind::P2tr => 3,
    }
}

/// Approximate virtual size, for a realistic fee.
fn vsize(inputs: &[Utxo], outputs: usize) -> u64 {
    let ins: u64 = inputs
        .iter()
        .map(|u| match u.kind {
            KeyKind::P2pkh => 148,
            KeyKind::P2shP2wpkh => 91,
            KeyKind::P2wpkh => 68,
            KeyKind::P2tr => 58,
        })
        .sum();
    11 + ins + 34 * outputs as u64
}

/// A payment decided but not signed yet (signing runs on every core).
struct Plan {
    signer: usize,
    inputs: Vec<Utxo>,
    outs: Vec<(u64, usize, KeyKind)>,
    data: Option<Vec<u8>>,
    fee: u64,
}

/// The witness-heavy transactions of the mainnet shape (inscription-like: a few KB of witness
/// data, a quarter of it in weight): a chain of spends of one pay-to-witness-script-hash coin
/// whose script drops [`HEAVY_ITEMS`] pushes and leaves true, so no signature is needed.
struct Heavy {
    coin: OutPoint,
    value: u64,
    script: ScriptBuf,
    spk: ScriptBuf,
}

/// Witness items per witness-heavy spend (each at most 520 bytes, the consensus limit).
const HEAVY_ITEMS: usize = 4;

impl Heavy {
    fn witness_script() -> ScriptBuf {
        let mut s = vec![0x75; HEAVY_ITEMS]; // OP_DROP each item
        s.push(0x51); // OP_TRUE
        ScriptBuf::from_bytes(s)
    }

    fn script_pubkey() -> ScriptBuf {
        ScriptBuf::new_p2wsh(&Heavy::witness_script().wscript_hash())
    }

    /// The next spend in the chain, with witness items of 300 to 520 random bytes.
    fn next(&mut self, rng: &mut Rng) -> Transaction {
        let mut items: Vec<Vec<u8>> = (0..HEAVY_ITEMS)
            .map(|_| {
                let len = 300 + rng.below(221) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            })
            .collect();
        items.push(self.script.to_bytes());
        let witness = bitcoin::Witness::from_slice(&items);
        let vsize = (94 * 4 + witness.size() as u64).div_ceil(4);
        self.value -= vsize;
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: self.coin,
                script_sig: ScriptBuf::new(),
                sequence: bitcoin::Sequence::MAX,
                witness,
            }],
            output: vec![TxOut {
                value: Amount::from_sat(self.value),
                script_pubkey: self.spk.clone(),
            }],
        };
        self.coin = OutPoint::new(tx.compute_txid(), 0);
        tx
    }
}

struct NodeMiner<'a>(&'a TestNode);

impl Miner for NodeMiner<'_> {
    fn mine_with(&self, address: &Address, txs: &[Transaction]) -> Result<BlockHash, String> {
        Ok(self.0.mine_with(address, txs))
    }
}

/// The payment side of the generator: signers, their coins by signer, and their scripts.
struct Payments {
    signers: Vec<Signer>,
    scripts: Vec<[ScriptBuf; 4]>,
    pool: Vec<VecDeque<Utxo>>,
    pending: Vec<Vec<Utxo>>,
    rng: Rng,
    next_signer: usize,
}

impl Payments {
    fn new() -> Self {
        let signers: Vec<Signer> = (0..SIGNERS).map(|i| Signer::new(0x60 + i as u8)).collect();
        let scripts = signers
            .iter()
            .map(|s| {
                [
                    s.address(KeyKind::P2pkh).script_pubkey(),
                    s.address(KeyKind::P2shP2wpkh).script_pubkey(),
                    s.address(KeyKind::P2wpkh).script_pubkey(),
                    s.address(KeyKind::P2tr).script_pubkey(),
                ]
            })
            .collect();
        Payments {
            signers,
            scripts,
            pool: vec![VecDeque::new(); SIGNERS],
            pending: vec![Vec::new(); SIGNERS],
            rng: Rng(0x5eed_b10c_c4a1_2026),
            next_signer: 0,
        }
    }

    /// Signs a transaction of `signer` spending `inputs` into outputs of the given values and
    /// owners (plus an OP_RETURN if `data`), and remembers the new coins for the next block.
    fn pay(
        &mut self,
        signer: usize,
        inputs: &[Utxo],
        outs: &[(u64, usize, KeyKind)],
        data: Option<Vec<u8>>,
        fee: u64,
        height: u64,
    ) -> Transaction {
        let plan = Plan {
            signer,
            inputs: inputs.to_vec(),
            outs: outs.to_vec(),
            data,
            fee,
        };
        let tx = self.sign(&plan);
        self.register(&plan, &tx, height);
        tx
    }

    /// Signs `plan` (deterministic: RFC 6979 and Schnorr without auxiliary randomness).
    fn sign(&self, plan: &Plan) -> Transaction {
        let mut outputs: Vec<TxOut> = plan
            .outs
            .iter()
            .map(|(v, owner, kind)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: self.scripts[*owner][kind_index(*kind)].clone(),
            })
            .collect();
        if let Some(data) = &plan.data {
            outputs.push(op_return(data));
        }
        self.signers[plan.signer].sign(&plan.inputs, outputs, Amount::from_sat(plan.fee), None)
    }

    /// Signs `plans` on every core, in order.
    fn sign_all(&self, plans: &[Plan]) -> Vec<Transaction> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = plans.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = plans
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().map(|p| self.sign(p)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    /// Remembers the coins `tx` (signed from `plan`) creates, for the next block.
    fn register(&mut self, plan: &Plan, tx: &Transaction, height: u64) {
        let txid = tx.compute_txid();
        for (vout, (v, owner, kind)) in plan.outs.iter().enumerate() {
            self.pending[*owner].push(Utxo {
                outpoint: OutPoint::new(txid, vout as u32),
                txout: TxOut {
                    value: Amount::from_sat(*v),
                    script_pubkey: self.scripts[*owner][kind_index(*kind)].clone(),
                },
                kind: *kind,
                height,
                coinbase: false,
            });
        }
    }

    /// Splits `total` satoshis into `n` outputs of random owners and script types.
    fn split(&mut self, total: u64, n: usize) -> Vec<(u64, usize, KeyKind)> {
        let n = n.min((total / MIN_OUTPUT).max(1) as usize);
        let weights: Vec<u64> = (0..n).map(|_| 1 + self.rng.below(10)).collect();
        let sum: u64 = weights.iter().sum();
        let spare = total - MIN_OUTPUT * n as u64;
        let mut values: Vec<u64> = weights
            .iter()
            .map(|w| MIN_OUTPUT + spare / sum * w)
            .collect();
        let given: u64 = values.iter().sum();
        values[0] += total - given;
        values
            .into_iter()
            .map(|v| {
                let owner = self.rng.below(SIGNERS as u64) as usize;
                (v, owner, self.rng.pick(SCRIPTS))
            })
            .collect()
    }

    /// One ordinary payment for a block at `height`, planned but not signed, or `None` when no
    /// signer has coins.
    fn payment(&mut self) -> Option<Plan> {
        let want = self.rng.pick(INPUTS);
        let n_out = self.rng.pick(OUTPUTS);
        let foreign = self.rng.below(100) < 2;
        // The next signer (round robin) with enough coins, else any with one.
        let signer = (0..SIGNERS)
            .map(|i| (self.next_signer + i) % SIGNERS)
            .find(|s| self.pool[*s].len() >= want)
            .or_else(|| (0..SIGNERS).find(|s| !self.pool[*s].is_empty()))?;
        self.next_signer = (signer + 1) % SIGNERS;
        let take = want.min(self.pool[signer].len());
        let inputs: Vec<Utxo> = self.pool[signer].drain(..take).collect();
        let total: u64 = inputs.iter().map(|u| u.txout.value.to_sat()).sum();
        let data = foreign.then(|| {
            let len = 20 + self.rng.below(60) as usize;
            (0..len).map(|_| self.rng.next() as u8).collect::<Vec<u8>>()
        });
        let rate = 1 + self.rng.below(5);
        let fee = vsize(&inputs, n_out + usize::from(data.is_some())) * rate;
        if total < fee + MIN_OUTPUT {
            // Dust: drop it (never happens with this chain's values; kept for safety).
            return self.payment();
        }
        let outs = self.split(total - fee, n_out);
        Some(Plan {
            signer,
            inputs,
            outs,
            data,
            fee,
        })
    }

    /// Makes the coins of the block just mined spendable.
    fn confirm(&mut self) {
        for (pool, pending) in self.pool.iter_mut().zip(self.pending.iter_mut()) {
            pool.extend(pending.drain(..));
        }
    }
}

/// Generates a chain of `shape` for `scheme` on a fresh node in `datadir`, stops the node
/// cleanly and returns what the chain holds.
pub fn generate(datadir: &Path, shape: &Shape, scheme: Scheme) -> Result<ChainInfo> {
    let started = Instant::now();
    let key = shape.key(scheme);
    let mut node = TestNode::start_in(datadir, &["-txindex=1"])
        .context("no bitcoind: run `cargo xtask node` or set BITCOIND_EXE")?;
    let mut pay = Payments::new();

    // Funding: coinbases to the signers, matured by the scenario's 106 blocks.
    for i in 0..FUNDING_BLOCKS {
        let s = i as usize % SIGNERS;
        let hash = node.mine(1, &pay.signers[s].address(KeyKind::P2wpkh))[0];
        let block = node.block(&hash);
        let coinbase = &block.txdata[0];
        pay.pool[s].push_back(Utxo {
            outpoint: OutPoint::new(coinbase.compute_txid(), 0),
            txout: coinbase.output[0].clone(),
            kind: KeyKind::P2wpkh,
            height: i + 1,
            coinbase: true,
        });
    }
    let source: Arc<dyn BlockSource> = Arc::new(CoreSource::connect(CoreConfig::new(
        node.url(),
        CoreAuth::Cookie(node.cookie_file()),
        Network::Regtest,
    ))?);
    let db_dir = tempfile::tempdir()?;
    let miner = NodeMiner(&node);
    let mut scenario = Scenario::start_with_scheme(
        &miner,
        source,
        &db_dir.path().join("gen.redb"),
        NAMES_WALLETS,
        None,
        scheme,
    )?;
    let first_block = FUNDING_BLOCKS + 1;
    let mut transactions = node.height() + 1; // the coinbases so far
    let mut accepted = 0u64;
    let mut rejected = 0u64;
    let mut mine = |scenario: &mut Scenario<'_>,
                    txs: Vec<Transaction>,
                    transactions: &mut u64|
     -> Result<()> {
        *transactions += txs.len() as u64 + 1;
        let report = scenario.mine(&txs)?;
        accepted += u64::from(report.accepted);
        rejected += report.rejected.len() as u64;
        Ok(())
    };

    // The fan-out, with the namespace preorder (and, for a shape with witness-heavy spends,
    // the first coin funds their chain).
    let height = node.height() + 1;
    let mut txs = Vec::new();
    let mut heavy: Option<Heavy> = None;
    for s in 0..SIGNERS {
        let coins: Vec<Utxo> = pay.pool[s].drain(..).collect();
        for coin in coins {
            ensure!(height >= coin.height + 100, "funding coinbase not mature");
            if shape.heavy != (0, 0) && heavy.is_none() {
                let fee = 200;
                let value = coin.txout.value.to_sat() - fee;
                let spk = Heavy::script_pubkey();
                let out = TxOut {
                    value: Amount::from_sat(value),
                    script_pubkey: spk.clone(),
                };
                let tx = pay.signers[s].sign(
                    std::slice::from_ref(&coin),
                    vec![out],
                    Amount::from_sat(fee),
                    None,
                );
                heavy = Some(Heavy {
                    coin: OutPoint::new(tx.compute_txid(), 0),
                    value,
                    script: Heavy::witness_script(),
                    spk,
                });
                txs.push(tx);
                continue;
            }
            let fee = vsize(std::slice::from_ref(&coin), shape.fan_out) * 2;
            let outs = pay.split(coin.txout.value.to_sat() - fee, shape.fan_out);
            txs.push(pay.pay(s, &[coin], &outs, None, fee, height));
        }
    }
    let params = test_namespace_params();
    let ch = scenario.consensus_hash()?;
    let ns_price = scenario.engine().app().config().namespace_prices.price(4);
    let (ns, rev) = (0, 1);
    let plan = build::plan_namespace_preorder(
        "test",
        &scenario.wallet(ns).script(),
        &scenario.wallet(rev).address(),
        ch,
        ns_price,
    )?;
    txs.push(scenario.sign(ns, &plan)?);
    let mut bytes: u64 = txs.iter().map(|t| t.total_size() as u64).sum();
    mine(&mut scenario, txs, &mut transactions)?;
    pay.confirm();

    // Payload blocks: payments plus names operations (the namespace's reveal and ready first).
    let mut pending_names: Vec<Option<String>> = vec![None; NAMES_WALLETS as usize];
    let mut next_name = 0u64;
    let mut payload = 0u64;
    while payload < shape.payload_blocks || transactions < shape.min_txs || bytes < shape.min_bytes
    {
        let height = node.height() + 1;
        let count = shape.payments.0 + pay.rng.below(shape.payments.1);
        let mut txs: Vec<Transaction> = Vec::with_capacity(count as usize + 4);
        let names_block = payload < 2 || (payload - 2).is_multiple_of(shape.names_every);
        match payload {
            0 => {
                let plan = build::plan_namespace_reveal(
                    "test",
                    params.clone(),
                    &scenario.wallet(rev).address(),
                )?;
                txs.push(scenario.sign(ns, &plan)?);
            }
            1 => txs.push(scenario.sign(rev, &build::plan_namespace_ready("test")?)?),
            _ if names_block => {
                let ch = scenario.consensus_hash()?;
                for w in OPERATORS {
                    let plan = match pending_names[w].take() {
                        Some(name) => {
                            build::plan_name_register(&name, &scenario.wallet(w).address(), None)?
                        }
                        None => {
                            let label = format!("bench{next_name:06}");
                            next_name += 1;
                            let name = format!("{label}.test");
                            let plan = build::plan_name_preorder(
                                &name,
                                &scenario.wallet(w).script(),
                                &scenario.wallet(w).address(),
                                ch,
                                name_price(&label, &params),
                            )?;
                            pending_names[w] = Some(name);
                            plan
                        }
                    };
                    txs.push(scenario.sign(w, &plan)?);
                }
            }
            _ => {}
        }
        // Witness-heavy spends (their weight is kept free first), then payments up to the
        // count or the weight limit; names operations first in the block.
        let mut heavies = Vec::new();
        let mut weight: u64 = txs.iter().map(|t| t.weight().to_wu()).sum::<u64>() + 4_000;
        if let Some(chain) = heavy.as_mut() {
            let n = shape.heavy.0 + pay.rng.below(shape.heavy.1);
            for _ in 0..n {
                let tx = chain.next(&mut pay.rng);
                weight += tx.weight().to_wu();
                heavies.push(tx);
            }
        }
        let mut plans = Vec::new();
        while ((txs.len() + plans.len()) as u64) < count {
            match pay.payment() {
                Some(plan) => {
                    weight += vsize(&plan.inputs, plan.outs.len() + 1) * 4;
                    plans.push(plan);
                    if weight > MAX_WEIGHT {
                        break;
                    }
                }
                None => bail!("the generator ran out of coins at height {height}"),
            }
        }
        let signed = pay.sign_all(&plans);
        for (plan, tx) in plans.iter().zip(&signed) {
            pay.register(plan, tx, height);
        }
        // The heavy spends spread evenly among the payments, in their chain's order.
        let every = (signed.len() / heavies.len().max(1)).max(1);
        let mut heavies = heavies.into_iter();
        for (i, tx) in signed.into_iter().enumerate() {
            txs.push(tx);
            if (i + 1) % every == 0
                && let Some(h) = heavies.next()
            {
                txs.push(h);
            }
        }
        txs.extend(heavies);
        bytes += txs.iter().map(|t| t.total_size() as u64).sum::<u64>() + 300;
        mine(&mut scenario, txs, &mut transactions)?;
        pay.confirm();
        payload += 1;
        if payload.is_multiple_of(50) {
            eprintln!(
                "bench chain {key}: {payload} payload blocks, {transactions} transactions, {:.0} MB, {:.0} s",
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let tip_height = node.height();
    let tip_hash = node.best_block_hash();
    // The whole hash (for legacy, the 16 bytes preorders carry; for v2 and v3, 32).
    let consensus_hash = scenario
        .engine()
        .store()
        .tip()?
        .context("the generator indexed nothing")?
        .consensus_hash
        .to_string();
    drop(scenario);
    node.stop();
    Ok(ChainInfo {
        version: shape.version.into(),
        scheme: scheme.name().to_owned(),
        tip_height,
        tip_hash: tip_hash.to_string(),
        first_block,
        transactions,
        names_ops: accepted,
        names_rejected: rejected,
        consensus_hash,
        generation_secs: started.elapsed().as_secs_f64(),
    })
}

/// Copies a directory tree (the cached data directory into a run's temporary one), linking
/// the blk and rev files where it can.
pub fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    fs::create_dir_all(to)?;
    let mut bytes = 0;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_tree(&entry.path(), &target)?;
        } else if entry.file_name() != ".cookie" && entry.file_name() != ".lock" {
            // Block and undo files are only appended to: linked, not copied, when the cache is
            // on the same file system (a mainnet-shaped chain is over a gigabyte).
            let name = entry.file_name().to_string_lossy().into_owned();
            let flat =
                (name.starts_with("blk") || name.starts_with("rev")) && name.ends_with(".dat");
            if flat && fs::hard_link(entry.path(), &target).is_ok() {
                bytes += entry.metadata()?.len();
            } else {
                bytes += fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(bytes)
}
