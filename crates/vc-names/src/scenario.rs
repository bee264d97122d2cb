//! A scripted names history on a chain you mine: for tests, the committed fixture chain and the
//! demo.
//!
//! [`Scenario`] holds wallets, mines blocks through a [`Miner`] (a regtest node), and indexes
//! each block with the engine right after mining it, so that every operation can embed the
//! current consensus hash as a real writer would. [`Scenario::run_history`] plays the whole
//! lifecycle: a namespace preorder, reveal and ready; name preorders, registrations, an update,
//! a transfer, a renewal and a revoke; and operations the rules must reject (a stale consensus
//! hash, an underpaid preorder, a same-block collision, an update of a revoked name).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Address, BlockHash, Network, OutPoint, PrivateKey, ScriptBuf, Transaction};
use vc_chash::Scheme;
use vc_engine::{BlockReport, Engine, EngineConfig, EngineError, Recorder, ReorgReport};
use vc_source::{BlockSource, Source};

use crate::app::{NamesApp, NamesConfig};
use crate::build::{self, BuildError, Coin, Plan, PlannedOutput, ScriptKind, Wallet};
use crate::price::name_price;
use crate::wire::NamespaceParams;

/// Mines blocks for a scenario (a regtest node in practice).
pub trait Miner {
    /// Mines one block holding exactly `txs` after a coinbase that pays `address`.
    fn mine_with(&self, address: &Address, txs: &[Transaction]) -> Result<BlockHash, String>;
}

/// Why a scenario step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Mining failed.
    #[error("mining: {0}")]
    Mine(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Building a transaction failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The chain did not do what the scenario expects.
    #[error("{0}")]
    Unexpected(String),
}

/// The pricing parameters of the scenario's namespace `test`.
pub fn test_namespace_params() -> NamespaceParams {
    NamespaceParams {
        lifetime: 10_000,
        coeff: 4,
        base: 4,
        buckets: [6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        nonalpha_discount: 10,
        no_vowel_discount: 5,
        version: 1,
    }
}

/// Wallets, coins, an engine and a miner.
pub struct Scenario<'m> {
    miner: &'m dyn Miner,
    blocks: Arc<dyn BlockSource>,
    engine: Engine<NamesApp>,
    wallets: Vec<(Wallet, Option<Coin>)>,
    sink: Address,
    reports: Vec<BlockReport>,
    reorgs: Vec<ReorgReport>,
    fee: u64,
}

impl core::fmt::Debug for Scenario<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scenario")
            .field("wallets", &self.wallets.len())
            .field("blocks", &self.reports.len())
            .finish_non_exhaustive()
    }
}

/// A deterministic wallet from a one-byte seed.
pub fn seeded_wallet(seed: u8, kind: ScriptKind, network: Network) -> Result<Wallet, BuildError> {
    let secret =
        SecretKey::from_slice(&[seed.max(1); 32]).map_err(|e| BuildError::Wif(e.to_string()))?;
    Wallet::from_key(PrivateKey::new(secret, network), kind, network)
}

impl<'m> Scenario<'m> {
    /// A scenario indexing into the database at `db` with a names deployment whose first block
    /// is the next one the miner makes, with `wallets` funded wallets (seeds 1, 2, ...;
    /// alternately P2WPKH and P2PKH). Mines `wallets + 100` blocks to fund them.
    pub fn start(
        miner: &'m dyn Miner,
        source: Arc<dyn BlockSource>,
        db: &Path,
        wallets: u8,
    ) -> Result<Self, ScenarioError> {
        Self::start_with(miner, source, db, wallets, None)
    }

    /// [`Scenario::start`] for the marker deployment with `registry` (every operation the
    /// scenario signs pays it), or the plain one with `None`.
    pub fn start_with(
        miner: &'m dyn Miner,
        source: Arc<dyn BlockSource>,
        db: &Path,
        wallets: u8,
        registry: Option<ScriptBuf>,
    ) -> Result<Self, ScenarioError> {
        Self::start_with_scheme(miner, source, db, wallets, registry, Scheme::Legacy)
    }

    /// [`Scenario::start_with`] under consensus-hash scheme `scheme` (payloads then carry the
    /// first 16 bytes of the 32-byte hashes of v2 and v3).
    pub fn start_with_scheme(
        miner: &'m dyn Miner,
        source: Arc<dyn BlockSource>,
        db: &Path,
        wallets: u8,
        registry: Option<ScriptBuf>,
        scheme: Scheme,
    ) -> Result<Self, ScenarioError> {
        let network = source.network();
        let first = source.tip().map_err(EngineError::from)?.height + 1;
        let blocks = Arc::clone(&source);
        let config = NamesConfig {
            network,
            registry,
            ..NamesConfig::regtest(first)
        }
        .with_scheme(scheme);
        let engine_config = EngineConfig::default()
            .with_confirmations(1)
            .with_workers(2);
        let engine = Engine::open(
            NamesApp::new(config),
            db,
            Source::Blocks(source),
            engine_config,
        )?;
        let sink = seeded_wallet(200, ScriptKind::P2wpkh, network)?.address();
        let mut s = Scenario {
            miner,
            blocks,
            engine,
            wallets: Vec::new(),
            sink,
            reports: Vec::new(),
            reorgs: Vec::new(),
            fee: 2_000,
        };
        for i in 0..wallets {
            let kind = if i % 2 == 0 {
                ScriptKind::P2wpkh
            } else {
                ScriptKind::P2pkh
            };
            let w = seeded_wallet(i + 1, kind, network)?;
            let hash = miner
                .mine_with(&w.address(), &[])
                .map_err(ScenarioError::Mine)?;
            let block = s.blocks.block(&hash).map_err(EngineError::from)?.block;
            let coinbase = block
                .txdata
                .first()
                .ok_or_else(|| ScenarioError::Unexpected("a block without coinbase".into()))?;
            let txout =
                coinbase.output.first().cloned().ok_or_else(|| {
                    ScenarioError::Unexpected("a coinbase without outputs".into())
                })?;
            let coin = Coin {
                outpoint: OutPoint::new(coinbase.compute_txid(), 0),
                txout,
            };
            s.wallets.push((w, Some(coin)));
        }
        for _ in 0..100 {
            s.mine(&[])?;
        }
        s.sync()?;
        Ok(s)
    }

    /// The engine (its store holds the names state).
    pub fn engine(&self) -> &Engine<NamesApp> {
        &self.engine
    }

    /// Wallet `i`.
    pub fn wallet(&self, i: usize) -> &Wallet {
        &self.wallets[i].0
    }

    /// Every block report so far.
    pub fn reports(&self) -> &[BlockReport] {
        &self.reports
    }

    /// The consensus hash of the indexed tip, as a 16-byte payload field.
    pub fn consensus_hash(&self) -> Result<[u8; 16], ScenarioError> {
        match self.engine.store().tip().map_err(EngineError::from)? {
            Some(tip) => Ok(crate::wire::payload_consensus_hash(&tip.consensus_hash)),
            None => Err(ScenarioError::Unexpected("nothing indexed yet".into())),
        }
    }

    /// Signs `plan` with wallet `who`'s coin (adding the registry output in a marker
    /// deployment); the change becomes its next coin.
    pub fn sign(&mut self, who: usize, plan: &Plan) -> Result<Transaction, ScenarioError> {
        let plan = plan.clone().for_deployment(self.engine.app().config());
        self.sign_exactly(who, &plan)
    }

    /// Signs exactly `plan` (no registry output even in a marker deployment: how tests make
    /// operations that the marker rule hides).
    pub fn sign_exactly(&mut self, who: usize, plan: &Plan) -> Result<Transaction, ScenarioError> {
        let fee = self.fee;
        let (wallet, coin) = &mut self.wallets[who];
        let c = coin
            .take()
            .ok_or_else(|| ScenarioError::Unexpected(format!("wallet {who} has no coin")))?;
        let tx = wallet.sign(plan, &[c], fee)?;
        let change = plan
            .outputs
            .iter()
            .position(|o| *o == PlannedOutput::Change)
            .map(|i| i + 1)
            .ok_or_else(|| ScenarioError::Unexpected("a plan without change".into()))?;
        *coin = Some(Coin {
            outpoint: OutPoint::new(tx.compute_txid(), change as u32),
            txout: tx.output[change].clone(),
        });
        Ok(tx)
    }

    /// Indexes whatever the source has that is not indexed yet (rolling back a reorganisation
    /// if there was one).
    pub fn sync(&mut self) -> Result<(), ScenarioError> {
        let mut reports = Recorder::default();
        self.engine
            .sync(None, &AtomicBool::new(false), &mut reports)?;
        self.reports.extend(reports.blocks);
        self.reorgs.extend(reports.reorgs);
        Ok(())
    }

    /// The reorganisations the engine rolled back so far.
    pub fn reorgs(&self) -> &[ReorgReport] {
        &self.reorgs
    }

    /// Mines a block with `txs`, indexes it, and returns its report.
    pub fn mine(&mut self, txs: &[Transaction]) -> Result<BlockReport, ScenarioError> {
        let hash = self
            .miner
            .mine_with(&self.sink, txs)
            .map_err(ScenarioError::Mine)?;
        self.sync()?;
        self.reports
            .iter()
            .rev()
            .find(|r| r.info.hash == hash)
            .cloned()
            .ok_or_else(|| ScenarioError::Unexpected(format!("block {hash} was not indexed")))
    }

    /// Plays the scripted lifecycle (needs 6 wallets): returns the report of every block that
    /// carried operations, in order. See the module docs for what happens.
    pub fn run_history(&mut self) -> Result<Vec<BlockReport>, ScenarioError> {
        if self.wallets.len() < 6 {
            return Err(ScenarioError::Unexpected(
                "run_history needs 6 wallets".into(),
            ));
        }
        let (ns, rev, a, b, c, d) = (0, 1, 2, 3, 4, 5);
        let params = test_namespace_params();
        let mut out = Vec::new();
        let addr = |s: &Self, i: usize| s.wallet(i).address();
        let script = |s: &Self, i: usize| s.wallet(i).script();

        // Namespace `test`: preorder, reveal, ready.
        let ch = self.consensus_hash()?;
        let price = self.engine.app().config().namespace_prices.price(4);
        let p =
            build::plan_namespace_preorder("test", &script(self, ns), &addr(self, rev), ch, price)?;
        let tx = self.sign(ns, &p)?;
        out.push(self.mine(&[tx])?);
        let p = build::plan_namespace_reveal("test", params.clone(), &addr(self, rev))?;
        let tx = self.sign(ns, &p)?;
        out.push(self.mine(&[tx])?);
        let p = build::plan_namespace_ready("test")?;
        let tx = self.sign(rev, &p)?;
        out.push(self.mine(&[tx])?);

        // Name preorders: foo (a), bar (b, underpaid), baz (c and d: they will collide),
        // qux (a, with a stale consensus hash).
        let ch = self.consensus_hash()?;
        let price3 = name_price("foo", &params);
        let mut txs = Vec::new();
        for (who, name, burn, ch) in [
            (a, "foo.test", price3, ch),
            (b, "bar.test", price3 - 1, ch),
            (c, "baz.test", price3, ch),
            (d, "baz.test", price3, ch),
            (a, "qux.test", price3, [0x5a; 16]),
        ] {
            let p =
                build::plan_name_preorder(name, &script(self, who), &addr(self, who), ch, burn)?;
            txs.push(self.sign(who, &p)?);
        }
        out.push(self.mine(&txs)?);

        // Registrations: foo succeeds, bar is underpaid, the two baz collide.
        let mut txs = Vec::new();
        for (who, name) in [
            (a, "foo.test"),
            (b, "bar.test"),
            (c, "baz.test"),
            (d, "baz.test"),
        ] {
            let p = build::plan_name_register(name, &addr(self, who), None)?;
            txs.push(self.sign(who, &p)?);
        }
        out.push(self.mine(&txs)?);

        // c registers baz again, alone this time (its preorder is still live: a rejected
        // registration does not consume it); a updates foo.
        let ch = self.consensus_hash()?;
        let p = build::plan_name_register("baz.test", &addr(self, c), Some([0xcd; 20]))?;
        let t1 = self.sign(c, &p)?;
        let p = build::plan_name_update("foo.test", ch, [0xab; 20])?;
        let t2 = self.sign(a, &p)?;
        out.push(self.mine(&[t1, t2])?);

        // a transfers foo to b (keeping the value hash); b renews it.
        let ch = self.consensus_hash()?;
        let p = build::plan_name_transfer("foo.test", &addr(self, b), true, ch)?;
        let tx = self.sign(a, &p)?;
        out.push(self.mine(&[tx])?);
        let p = build::plan_name_renew("foo.test", &addr(self, b), price3)?;
        let tx = self.sign(b, &p)?;
        out.push(self.mine(&[tx])?);

        // c revokes baz; its update afterwards is rejected.
        let p = build::plan_name_revoke("baz.test")?;
        let tx = self.sign(c, &p)?;
        out.push(self.mine(&[tx])?);
        let ch = self.consensus_hash()?;
        let p = build::plan_name_update("baz.test", ch, [0xee; 20])?;
        let tx = self.sign(c, &p)?;
        out.push(self.mine(&[tx])?);
        Ok(out)
    }
}
