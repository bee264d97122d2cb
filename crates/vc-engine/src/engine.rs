//! The engine: sync to a height, follow the tip, roll back reorganisations.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use vc_chash::{ConsensusHash, Seeds};
use vc_source::prefetch::{Prefetch, TxSelector};
use vc_source::scan::ScanFilter;
use vc_source::{Source, SourceError};
use vc_store::{CommitPolicy, LastFork, SourceTip, Store, StoreConfig, Tip, Writer};

use crate::app::{AppSpec, Application, DEFAULT_CONFIRMATIONS};
use crate::block::{Apply, BlockReport, Input, Recognizer};
use crate::cross::Agreement;
use crate::error::EngineError;
use crate::migrate::{BindingSearch, MigrationRules};
use crate::watch::ForkReport;

/// The deepest reorganisation the engine rolls back on its own by default.
pub const DEFAULT_MAX_REORG_DEPTH: u64 = 100;

pub use vc_store::DEFAULT_UNDO_WINDOW;

/// An expected value at a height. A mismatch stops the engine with
/// [`EngineError::Checkpoint`] before anything at that height is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The height.
    pub height: u64,
    /// The block hash the chain must have there.
    pub block_hash: Option<BlockHash>,
    /// The consensus hash this node must compute there.
    pub consensus_hash: Option<ConsensusHash>,
}

/// How the engine runs (operator choices; none of it changes consensus hashes). Start from
/// [`EngineConfig::default`] and change what you need with the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Fetch threads.
    pub workers: usize,
    /// Blocks fetched ahead of the one being applied (bounds memory).
    pub window: usize,
    /// How often `follow` polls the source for a new tip.
    pub poll_interval: Duration,
    /// The deepest reorganisation rolled back automatically.
    pub max_reorg_depth: u64,
    /// How many recent blocks keep undo logs (at least `max_reorg_depth`; default: every block,
    /// so that [`Engine::rewind_to`] reverts a fork of any depth).
    pub undo_window: u64,
    /// Confirmations `K` a block needs before it is processed (at least 1: the tip itself).
    /// Default: [`DEFAULT_CONFIRMATIONS`].
    pub confirmations: u64,
    /// Expected hashes at heights.
    pub checkpoints: Vec<Checkpoint>,
    /// When batched blocks are committed during catch-up (every block at the tip is committed
    /// on its own).
    pub commit: CommitPolicy,
    /// Other sources that must agree with the block source at every processed height (see
    /// [`crate::cross`]); none by default.
    pub witnesses: Vec<Source>,
    /// What agreement among the block source and the witnesses means.
    pub agreement: Agreement,
    /// The source of the chain an announced migration moves to (`docs/migration.md`): read
    /// once the chain is frozen, to find the binding and then every later block. None by
    /// default: a frozen chain then waits.
    pub migrate_to: Option<Source>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            window: 64,
            poll_interval: Duration::from_secs(5),
            max_reorg_depth: DEFAULT_MAX_REORG_DEPTH,
            undo_window: DEFAULT_UNDO_WINDOW,
            confirmations: DEFAULT_CONFIRMATIONS,
            checkpoints: Vec::new(),
            commit: CommitPolicy::default(),
            witnesses: Vec::new(),
            agreement: Agreement::default(),
            migrate_to: None,
        }
    }
}

impl EngineConfig {
    /// Sets the fetch threads (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets how many blocks are fetched ahead of the one being applied (at least 1).
    pub fn with_window(mut self, blocks: usize) -> Self {
        self.window = blocks.max(1);
        self
    }

    /// Sets how often `follow` polls the source.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the deepest reorganisation rolled back automatically.
    pub fn with_max_reorg_depth(mut self, blocks: u64) -> Self {
        self.max_reorg_depth = blocks;
        self
    }

    /// Sets how many recent blocks keep undo logs.
    pub fn with_undo_window(mut self, blocks: u64) -> Self {
        self.undo_window = blocks;
        self
    }

    /// Sets the confirmations a block needs (at least 1).
    pub fn with_confirmations(mut self, k: u64) -> Self {
        self.confirmations = k.max(1);
        self
    }

    /// Adds a checkpoint.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoints.push(checkpoint);
        self
    }

    /// Adds a source that must agree with the block source at every processed height.
    pub fn with_witness(mut self, source: Source) -> Self {
        self.witnesses.push(source);
        self
    }

    /// Sets what agreement among the sources means (default: all of them).
    pub fn with_agreement(mut self, agreement: Agreement) -> Self {
        self.agreement = agreement;
        self
    }

    /// Sets the source of the chain a migration moves to (see [`EngineConfig::migrate_to`]).
    pub fn with_migration_target(mut self, source: Source) -> Self {
        self.migrate_to = Some(source);
        self
    }

    /// Sets when batched blocks are committed during catch-up.
    pub fn with_commit(mut self, policy: CommitPolicy) -> Self {
        self.commit = policy;
        self
    }
}

/// A reorganisation the engine handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorgReport {
    /// The highest height where the database and the source agreed.
    pub fork_height: u64,
    /// The database's tip before the rollback.
    pub old_tip: u64,
    /// How many blocks were rolled back.
    pub depth: u64,
}

/// Receives what the engine does (progress bars, logs, tests).
pub trait Observer {
    /// A catch-up pass over `from..=to` starts; `chain_tip` is the source's tip.
    fn on_range(&mut self, from: u64, to: u64, chain_tip: u64) {
        let _ = (from, to, chain_tip);
    }
    /// A block was applied (it may not be committed yet).
    fn on_block(&mut self, report: &BlockReport) {
        let _ = report;
    }
    /// The fork watch found the database off the source's chain (see [`crate::watch`]). Called
    /// before anything is rolled back, also for a fork deeper than the automatic limit (then
    /// the sync stops with [`EngineError::DeepReorg`]).
    fn on_fork(&mut self, fork: &ForkReport) {
        let _ = fork;
    }
    /// A reorganisation was rolled back.
    fn on_reorg(&mut self, reorg: &ReorgReport) {
        let _ = reorg;
    }
    /// Everything up to `commit.height` is durable.
    fn on_commit(&mut self, commit: &CommitReport) {
        let _ = commit;
    }
    /// Nothing is left to apply: the database holds every block the source has with enough
    /// confirmations. `chain_tip` is the source's tip; the next block to apply is the one that
    /// gets its confirmations next. A follower then waits for the next poll.
    fn on_caught_up(&mut self, chain_tip: u64) {
        let _ = chain_tip;
    }
}

/// A commit the engine made: everything up to `height` is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitReport {
    /// The newest durable block.
    pub height: u64,
    /// How long the commit took (the write transaction's two-phase commit and sync; after a
    /// reorganisation, the fork search, the rollback and its commit). Wall clock, for metrics
    /// only.
    pub elapsed: Duration,
}

impl CommitReport {
    /// A commit of everything up to `height` that took `elapsed`.
    pub fn new(height: u64, elapsed: Duration) -> Self {
        CommitReport { height, elapsed }
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// An observer that keeps every block and reorganisation report of a sync, for tests and tools
/// that look at what a sync did afterwards.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// Every block report, in the order the blocks were applied.
    pub blocks: Vec<BlockReport>,
    /// Every reorganisation report.
    pub reorgs: Vec<ReorgReport>,
}

impl Observer for Recorder {
    fn on_block(&mut self, report: &BlockReport) {
        self.blocks.push(report.clone());
    }

    fn on_reorg(&mut self, reorg: &ReorgReport) {
        self.reorgs.push(reorg.clone());
    }
}

impl Recorder {
    /// Every rejected operation: its block's height, the stage and the code.
    pub fn rejections(&self) -> Vec<(u64, crate::app::Stage, &'static str)> {
        self.blocks
            .iter()
            .flat_map(|r| {
                r.rejected
                    .iter()
                    .map(|x| (r.info.height, x.stage, x.reject.code))
            })
            .collect()
    }

    /// How many operations were accepted in all.
    pub fn accepted(&self) -> u32 {
        self.blocks.iter().map(|r| r.accepted).sum()
    }
}

/// Why a sync returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The requested height (or the highest block with enough confirmations) is indexed.
    Reached,
    /// The stop flag was raised; the block in progress was finished and committed.
    Interrupted,
    /// The application's `should_continue` returned false.
    AppDone,
}

/// The result of [`Engine::sync`] or [`Engine::follow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The committed tip.
    pub tip: Option<Tip>,
    /// Blocks applied.
    pub blocks: u64,
    /// Reorganisations rolled back.
    pub reorgs: u64,
    /// Why it returned.
    pub stopped: Stopped,
}

impl SyncOutcome {
    fn empty() -> Self {
        SyncOutcome {
            tip: None,
            blocks: 0,
            reorgs: 0,
            stopped: Stopped::Reached,
        }
    }
}

/// Which chain a pass reads.
enum Lane {
    /// Follow a chain.
    Follow(Follow),
    /// The chain is frozen at `last_height` by `ann`: find the binding.
    Frozen {
        ann: vc_chash::migration::Announcement,
        last_height: u64,
    },
}

/// A chain being followed: its source at virtual heights, the lowest height it serves, the
/// binding that opened it, and the announced last block.
struct Follow {
    source: Source,
    first: u64,
    boundary: Option<vc_chash::migration::BoundaryRecord>,
    cap: Option<u64>,
}

/// The database key of the branch pins (`recover split`).
const PINS_KEY: &str = "engine.pins";

/// An application on a store, fed by a block source.
pub struct Engine<A: Application> {
    app: A,
    spec: AppSpec,
    store: Store,
    source: Source,
    config: EngineConfig,
    recognizer: Recognizer,
    seeds: Seeds,
    pins: Vec<(u64, BlockHash)>,
    /// The source tip last recorded in the store (for readers' readiness checks).
    recorded_source_tip: Option<SourceTip>,
}

impl<A: Application> core::fmt::Debug for Engine<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("app", &self.spec.name)
            .field("db", &self.store.path())
            .field("source", &self.source.chain().name())
            .finish_non_exhaustive()
    }
}

/// Whether `spec` can run on `source`: a well-formed wire format, and marker scripts for a
/// watching source.
fn check_source(spec: &AppSpec, source: &Source) -> Result<(), EngineError> {
    Recognizer::for_spec(spec)?;
    if matches!(source, Source::Watched(_)) && spec.markers.is_empty() {
        return Err(EngineError::NeedsMarkers {
            source_name: source.chain().name(),
        });
    }
    if matches!(source, Source::Watched(_)) && spec.witnesses {
        return Err(EngineError::Spec(format!(
            "{} reads its operations' witnesses, which a watching source ({}) cannot prove: run it on whole blocks",
            spec.name,
            source.chain().name()
        )));
    }
    Ok(())
}

/// The store configuration an application's spec implies, on `network`.
pub fn store_config(
    spec: &crate::AppSpec,
    network: bitcoin::Network,
    undo_window: u64,
) -> StoreConfig {
    StoreConfig::new(
        spec.name.clone(),
        spec.version.clone(),
        spec.scheme,
        spec.first_block,
        network.to_string(),
    )
    .with_seeds(spec.seeds.clone())
    .with_app_params(spec.params.clone())
    .with_undo_window(undo_window)
}

impl<A: Application> Engine<A> {
    /// Opens (or creates) the database at `db` for `app`, fed by `source`.
    ///
    /// Fails if the database was made for another application, version, scheme, first block
    /// or network, or if the source serves another network.
    pub fn open(
        app: A,
        db: impl AsRef<Path>,
        source: Source,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let spec = app.spec();
        let undo = config.undo_window.max(config.max_reorg_depth);
        let network = source.chain().network();
        check_source(&spec, &source)?;
        let store = match Store::open(db.as_ref(), store_config(&spec, network, undo)) {
            Err(vc_store::StoreError::Mismatch {
                field: vc_store::MetaField::Network,
                stored,
                ..
            }) => {
                return Err(EngineError::WrongNetwork {
                    source_network: network.to_string(),
                    store: stored,
                });
            }
            other => other?,
        };
        Self::assemble(app, spec, store, source, config)
    }

    /// Runs `app` on a store the caller opened (for example one it shares with a server in
    /// the same process). The store must have been made for this application on the source's
    /// network: name, version, scheme, first block and seeds as the spec declares them.
    pub fn with_store(
        app: A,
        store: Store,
        source: Source,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let spec = app.spec();
        check_source(&spec, &source)?;
        let network = source.chain().network();
        let want = store_config(&spec, network, config.undo_window);
        let have = store.config();
        if have.network != want.network {
            return Err(EngineError::WrongNetwork {
                source_network: network.to_string(),
                store: have.network.clone(),
            });
        }
        let mut seeds = want.seeds.clone();
        let mut stored_seeds = have.seeds.clone();
        seeds.sort_by_key(|(h, _)| *h);
        stored_seeds.sort_by_key(|(h, _)| *h);
        let differs = [
            ("name", have.app_name != want.app_name),
            ("version", have.app_version != want.app_version),
            ("scheme", have.scheme != want.scheme),
            ("first block", have.first_block != want.first_block),
            ("seeds", stored_seeds != seeds),
        ];
        if let Some((field, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(EngineError::Spec(format!(
                "the store at {} was opened for another application: its {field} differs from the spec's",
                store.path().display()
            )));
        }
        Self::assemble(app, spec, store, source, config)
    }

    fn assemble(
        app: A,
        spec: AppSpec,
        store: Store,
        source: Source,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let recognizer = Recognizer::for_spec(&spec)?;
        for witness in &config.witnesses {
            check_source(&spec, witness)?;
        }
        if let Some(target) = &config.migrate_to {
            check_source(&spec, target)?;
        }
        let pins = load_pins(&store)?;
        Ok(Engine {
            app,
            store,
            source,
            config,
            recognizer,
            seeds: spec.seeds.iter().copied().collect(),
            spec,
            pins,
            recorded_source_tip: None,
        })
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application's spec, as read when the engine opened.
    pub fn spec(&self) -> &AppSpec {
        &self.spec
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The confirmations a block needs before it is processed.
    pub fn confirmations(&self) -> u64 {
        self.config.confirmations.max(1)
    }

    /// Whether `ch`, named by an operation in block `height`, is fresh under the application's
    /// staleness window, judged on the committed chain.
    pub fn is_fresh(&self, height: u64, ch: &ConsensusHash) -> Result<bool, EngineError> {
        let view = self.store.view()?;
        Ok(vc_chash::fresh::is_fresh(
            &view,
            &self.seeds,
            self.spec.staleness,
            height,
            ch,
        )?)
    }

    /// Indexes up to `until` (or as far as blocks have enough confirmations), rolling back
    /// reorganisations on the way, and returns. Checks `stop` between blocks.
    pub fn sync(
        &mut self,
        until: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError> {
        let mut outcome = SyncOutcome::empty();
        self.sync_into(until, stop, observer, &mut outcome)?;
        outcome.tip = self.store.tip()?;
        Ok(outcome)
    }

    /// Syncs, then keeps polling the source every `poll_interval` for new blocks until `stop`
    /// is raised (or `until` is reached, or the application asks to stop).
    pub fn follow(
        &mut self,
        until: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError> {
        let mut outcome = SyncOutcome::empty();
        let mut moved = 0u32;
        loop {
            match self.sync_into(until, stop, observer, &mut outcome) {
                Ok(()) => moved = 0,
                // The source changed under the pass (a reorganisation in progress: a block gone,
                // its tip lower than a moment ago): nothing was committed from the pass that
                // failed, so poll again, a few times, before calling it an error.
                Err(e) if source_moved(&e) && moved < MOVED_RETRIES => {
                    moved += 1;
                    tracing::warn!(error = %e, attempt = moved, "the source changed during a pass; polling again");
                    outcome.stopped = Stopped::Reached;
                }
                Err(e) => return Err(e),
            }
            let done = match outcome.stopped {
                Stopped::Reached => until.is_some_and(|u| {
                    self.store
                        .tip()
                        .ok()
                        .flatten()
                        .is_some_and(|t| t.height >= u)
                }),
                Stopped::Interrupted | Stopped::AppDone => true,
            };
            if done {
                break;
            }
            let wake = Instant::now() + self.config.poll_interval;
            while Instant::now() < wake && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50).min(self.config.poll_interval));
            }
            if stop.load(Ordering::SeqCst) {
                outcome.stopped = Stopped::Interrupted;
                break;
            }
        }
        outcome.tip = self.store.tip()?;
        Ok(outcome)
    }

    /// The highest height to index now: `until`, or the tip less the confirmations; `None`
    /// when no block has enough.
    fn target(&self, chain_tip: u64, until: Option<u64>) -> Option<u64> {
        let target = (chain_tip + 1).checked_sub(self.confirmations())?;
        Some(until.map_or(target, |u| target.min(u)))
    }

    /// Syncs until there is nothing left to apply (or a stop), in passes: each pass handles a
    /// reorganisation, then fetches and applies a range of blocks. With a migration policy, each
    /// pass first works out which chain it reads ([`Lane`]).
    fn sync_into(
        &mut self,
        until: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
        outcome: &mut SyncOutcome,
    ) -> Result<(), EngineError> {
        let first = self.spec.first_block;
        let mut writer = self.store.writer()?;
        loop {
            if stop.load(Ordering::SeqCst) {
                outcome.stopped = Stopped::Interrupted;
                return Ok(());
            }
            writer.commit()?;
            let lane = match self.lane()? {
                Lane::Frozen { ann, last_height } => {
                    if self.bind(&mut writer, &ann, last_height)? {
                        continue;
                    }
                    observer.on_caught_up(last_height);
                    return Ok(());
                }
                Lane::Follow(lane) => lane,
            };
            let source = lane.source.clone();
            let chain_tip = source.chain().tip()?;
            // Readers of the file (the server's readiness check) learn how far behind it is.
            let seen = SourceTip::new(chain_tip.height, self.confirmations());
            if self.recorded_source_tip != Some(seen) {
                writer.set_source_tip(seen)?;
                if writer.pending_blocks() == 0 {
                    writer.commit()?;
                }
                self.recorded_source_tip = Some(seen);
            }
            let started = Instant::now();
            if let Some(reorg) = handle_reorg(
                &self.store,
                &mut writer,
                &lane,
                &self.config,
                &self.pins,
                chain_tip.height,
                observer,
            )? {
                outcome.reorgs += 1;
                observer.on_reorg(&reorg);
                observer.on_commit(&CommitReport::new(reorg.fork_height, started.elapsed()));
                if reorg.fork_height < lane.first {
                    // The binding's block left the target chain: search again.
                    continue;
                }
            }
            if let (Some(last), Some((tip, _))) = (lane.cap, writer.tip())
                && tip == last
                && lane.first <= last
                && let Some(policy) = &self.spec.migration
                && chain_tip.height.saturating_add(1) >= last.saturating_add(policy.confirmations)
            {
                self.freeze(&mut writer, &lane, last)?;
                continue;
            }
            let Some(target) = self.target(chain_tip.height, until) else {
                observer.on_caught_up(chain_tip.height);
                return Ok(());
            };
            let target = lane.cap.map_or(target, |c| target.min(c));
            let next = writer.next_height().max(first);
            if next > target {
                // Caught up with the chain, not merely at the requested height.
                if until.is_none_or(|u| next <= u) {
                    observer.on_caught_up(chain_tip.height);
                }
                return Ok(());
            }
            observer.on_range(next, target, chain_tip.height);
            let mut pass = Pass {
                app: &mut self.app,
                apply: Apply {
                    recognizer: &self.recognizer,
                    scheme: self.spec.scheme,
                    staleness: self.spec.staleness,
                    seeds: &self.seeds,
                    migration: self.spec.migration.as_ref().map(|policy| MigrationRules {
                        policy,
                        boundary: lane.boundary.map(|b| (lane.first, b)),
                    }),
                    announced: Cell::new(None),
                },
                config: &self.config,
                pins: &self.pins,
                source: &source,
                target,
            };
            let mut unbound = false;
            for item in fetch_range(&source, &self.recognizer, &self.config, next, target) {
                let mut fetched = item?;
                if let Some(last) = pass.apply.announced.get()
                    && fetched.height > last
                {
                    // An announcement in this pass ends the chain at `last`.
                    break;
                }
                if let Some((_, tip_hash)) = writer.tip() {
                    if lane.boundary.is_some() && fetched.height == lane.first {
                        // The first block of the target chain: it continues the chain at the
                        // frozen tip, and must carry the binding reveal.
                        let carries = lane.boundary.as_ref().is_some_and(|b| {
                            self.spec.migration.as_ref().is_some_and(|p| {
                                crate::migrate::carries_binding(&self.recognizer, p, b, &fetched)
                            })
                        });
                        if !carries {
                            unbound = true;
                            break;
                        }
                        fetched.header.prev_blockhash = BlockHash::from_byte_array(tip_hash.0);
                    } else if fetched.header.prev_blockhash.to_byte_array() != tip_hash.0 {
                        // The chain changed under the prefetch: re-check from the top.
                        tracing::info!(
                            height = fetched.height,
                            "the source's chain changed during the fetch"
                        );
                        break;
                    }
                }
                if let Some(stopped) = pass.block(&mut writer, &fetched, stop, observer)? {
                    outcome.blocks += 1;
                    outcome.stopped = stopped;
                    return Ok(());
                }
                outcome.blocks += 1;
            }
            if unbound {
                tracing::warn!(
                    height = lane.first,
                    "the target chain's block no longer carries the binding: searching again"
                );
                writer.remove_segments_above(lane.first.saturating_sub(1))?;
            }
            if writer.pending_blocks() > 0 {
                let started = Instant::now();
                writer.commit()?;
                if let Some((h, _)) = writer.tip() {
                    observer.on_commit(&CommitReport::new(h, started.elapsed()));
                }
            }
        }
    }

    /// Which chain the next pass reads, from the committed segments and state.
    fn lane(&self) -> Result<Lane, EngineError> {
        let view = self.store.view()?;
        let pending = match &self.spec.migration {
            Some(_) => crate::migrate::pending_announcement(&view)?,
            None => None,
        };
        let cap = pending.map(|(_, a)| a.last_height);
        let segments = view.segments()?;
        // The first chain, read through the engine's own source.
        let first_chain = || {
            Lane::Follow(Follow {
                source: self.source.clone(),
                first: self.spec.first_block,
                boundary: None,
                cap,
            })
        };
        let Some(last) = segments.last() else {
            return Ok(first_chain());
        };
        if let Some(last_height) = last.last_height {
            let Some((_, ann)) = pending else {
                return Err(EngineError::Store(vc_store::StoreError::Inconsistent(
                    format!("the chain is frozen at {last_height} but no migration is pending"),
                )));
            };
            return Ok(Lane::Frozen { ann, last_height });
        }
        let Some(boundary) = last.boundary() else {
            return Ok(first_chain());
        };
        let target = self.config.migrate_to.as_ref().ok_or_else(|| {
            EngineError::Spec(format!(
                "the chain migrated to {} at height {}: give a source for it",
                last.chain(),
                last.first_height
            ))
        })?;
        Ok(Lane::Follow(Follow {
            source: crate::migrate::shifted_source(target, last.first_height, last.chain_first),
            first: last.first_height,
            boundary: Some(boundary),
            // The announcement that opened this segment is still pending until its first block
            // is applied: it does not end this segment.
            cap: cap.filter(|c| *c >= last.first_height),
        }))
    }

    /// Closes the segment being read at `last` (the announced last block, now final).
    fn freeze(&self, writer: &mut Writer<'_>, lane: &Follow, last: u64) -> Result<(), EngineError> {
        let view = self.store.view()?;
        let mut segment = match view.segments()?.pop() {
            Some(s) => s,
            None => vc_store::Segment {
                first_height: self.spec.first_block,
                last_height: None,
                magic: crate::migrate::network_magic(lane.source.chain().network()),
                genesis: lane.source.chain().block_hash(0)?.to_byte_array(),
                chain_first: self.spec.first_block,
                binding: Vec::new(),
            },
        };
        segment.last_height = Some(last);
        writer.put_segment(&segment)?;
        writer.commit()?;
        tracing::warn!(
            last,
            "the migration announcement is final: the chain is frozen at block {last}"
        );
        Ok(())
    }

    /// Looks for the binding of `ann` on the target chain; records the segment it opens and
    /// returns `true` when it is final.
    fn bind(
        &self,
        writer: &mut Writer<'_>,
        ann: &vc_chash::migration::Announcement,
        last: u64,
    ) -> Result<bool, EngineError> {
        let (Some(policy), Some(target)) = (&self.spec.migration, &self.config.migrate_to) else {
            tracing::info!(
                last,
                "frozen at block {last}: no source for the target chain"
            );
            return Ok(false);
        };
        let view = self.store.view()?;
        let entry = view.chain_entry(last)?.ok_or_else(|| {
            vc_store::StoreError::Inconsistent(format!("the frozen block {last} is missing"))
        })?;
        let ConsensusHash::V2(ch_a) = view.consensus_hash_of(last, &entry)? else {
            return Err(EngineError::Store(vc_store::StoreError::Inconsistent(
                format!("block {last} has no 32-byte consensus hash"),
            )));
        };
        let found = crate::migrate::find_binding(
            target,
            &self.recognizer,
            &self.config,
            policy,
            ann,
            &ch_a,
        )?;
        let BindingSearch::Found(record) = found else {
            tracing::info!(last, ?found, "frozen at block {last}: no final binding yet");
            return Ok(false);
        };
        writer.put_segment(&vc_store::Segment {
            first_height: last + 1,
            last_height: None,
            magic: ann.target.magic,
            genesis: ann.target.genesis.0,
            chain_first: record.reveal_height,
            binding: record.encode(),
        })?;
        writer.commit()?;
        tracing::warn!(
            last,
            reveal = record.reveal_height,
            "the migration is bound: block {} of the target chain is height {}",
            record.reveal_height,
            last + 1
        );
        Ok(true)
    }

    /// Rolls the database back to the end of block `height` (within the undo window: every
    /// block by default), so that the next sync re-applies everything above it from the
    /// source, in time proportional to the depth. The recovery for a fork deeper than the
    /// automatic limit.
    pub fn rewind_to(&mut self, height: u64) -> Result<u64, EngineError> {
        Ok(self.store.rollback_to(height)?)
    }

    /// Pins this database to the branch it has indexed above `fork_height` (see
    /// [`pin_branch`]).
    pub fn pin_branch(&mut self, fork_height: u64) -> Result<(u64, BlockHash), EngineError> {
        let pin = pin_branch(&self.store, fork_height)?;
        self.pins = load_pins(&self.store)?;
        Ok(pin)
    }

    /// The branch pins (height, block) set by [`Engine::pin_branch`].
    pub fn pins(&self) -> &[(u64, BlockHash)] {
        &self.pins
    }
}

/// The blocks `next..=target` from `source`, validated and in order, as the engine applies
/// them: whole blocks (spent outputs only where an operation may be) or watched transactions.
pub(crate) fn fetch_range(
    source: &Source,
    recognizer: &Recognizer,
    config: &EngineConfig,
    next: u64,
    target: u64,
) -> Box<dyn Iterator<Item = Result<Input, SourceError>>> {
    match source {
        Source::Blocks(blocks) => {
            // Each block's bytes are scanned in place: only the transactions the recognizer
            // accepts are decoded, and only theirs spent outputs fetched.
            let select: TxSelector = {
                let r = recognizer.clone();
                Arc::new(move |tx| r.payload(tx).is_some())
            };
            let filter = ScanFilter::new(recognizer.format.magic(), &recognizer.markers)
                .with_witnesses(recognizer.witnesses);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let hash_threads = (cores / config.workers.max(1)).max(1);
            Box::new(
                Prefetch::scanned(
                    Arc::clone(blocks),
                    next..target + 1,
                    config.workers,
                    config.window,
                    filter,
                    select,
                    hash_threads,
                )
                .map(|r| r.map(Input::from_scanned)),
            )
        }
        Source::Watched(watching) => {
            let select: TxSelector = {
                let r = recognizer.clone();
                Arc::new(move |tx| r.payload(tx).is_some())
            };
            Box::new(
                Prefetch::watched(
                    Arc::clone(watching),
                    next,
                    target + 1,
                    config.workers,
                    config.window,
                    recognizer.markers.clone(),
                    select,
                )
                .map(|r| r.map(Input::from_watched)),
            )
        }
    }
}

/// One pass of a sync over a range: what applying each block needs.
struct Pass<'e, A> {
    app: &'e mut A,
    apply: Apply<'e>,
    config: &'e EngineConfig,
    pins: &'e [(u64, BlockHash)],
    /// The block source (named in cross-check reports).
    source: &'e Source,
    /// The range's last height (blocks there are at the tip and committed on their own).
    target: u64,
}

impl<A: Application> Pass<'_, A> {
    /// Applies one fetched block under the checkpoints, pins, commit policy, the
    /// application's `should_continue` and the stop flag. Returns why the sync must stop after
    /// it, if it must.
    fn block(
        &mut self,
        writer: &mut Writer<'_>,
        fetched: &Input,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<Option<Stopped>, EngineError> {
        let checkpoints: Vec<&Checkpoint> = self
            .config
            .checkpoints
            .iter()
            .filter(|c| c.height == fetched.height)
            .collect();
        self.cross_check(writer, fetched)?;
        self.check_before(writer, fetched, &checkpoints)?;
        let report = self.apply.block(self.app, writer, fetched)?;
        for c in &checkpoints {
            if let Some(want) = &c.consensus_hash
                && *want != report.consensus_hash
            {
                return Err(EngineError::checkpoint_ch(
                    c.height,
                    want,
                    &report.consensus_hash,
                ));
            }
        }
        observer.on_block(&report);
        let at_tip = fetched.height == self.target;
        let started = Instant::now();
        if writer.commit_if_due(&self.config.commit, at_tip)? {
            observer.on_commit(&CommitReport::new(fetched.height, started.elapsed()));
        }
        let stopped = if !self.app.should_continue(fetched.height) {
            Some(Stopped::AppDone)
        } else if stop.load(Ordering::SeqCst) {
            Some(Stopped::Interrupted)
        } else {
            None
        };
        if stopped.is_some() {
            let started = Instant::now();
            writer.commit()?;
            observer.on_commit(&CommitReport::new(fetched.height, started.elapsed()));
        }
        Ok(stopped)
    }

    /// Asks the witnesses for the block's height; a disagreement under the policy commits
    /// everything before the block, and stops with every source's answer.
    fn cross_check(&self, writer: &mut Writer<'_>, fetched: &Input) -> Result<(), EngineError> {
        if self.config.witnesses.is_empty() {
            return Ok(());
        }
        let recognizer = self.apply.recognizer;
        let primary = crate::cross::primary_answer(self.source, fetched, recognizer);
        let whole = matches!(self.source, Source::Blocks(_))
            && primary.candidates.as_ref().is_some_and(Vec::is_empty);
        let mut answers = vec![primary];
        for w in &self.config.witnesses {
            answers.push(crate::cross::witness_answer(w, fetched, recognizer, whole));
        }
        if crate::cross::agreed(&answers, self.config.agreement) {
            return Ok(());
        }
        writer.commit()?;
        let report = crate::error::Answers(answers);
        tracing::error!(height = fetched.height, agreement = %self.config.agreement, "the sources disagree: {report}");
        Err(EngineError::SourcesDisagree {
            height: fetched.height,
            agreement: self.config.agreement,
            answers: report,
        })
    }

    /// The block-hash checkpoints and branch pins at the block's height, checked before it is
    /// applied; a failure commits everything before the block first, so only it is lost.
    fn check_before(
        &self,
        writer: &mut Writer<'_>,
        fetched: &Input,
        checkpoints: &[&Checkpoint],
    ) -> Result<(), EngineError> {
        for c in checkpoints {
            if let Some(want) = c.block_hash
                && want != fetched.hash
            {
                writer.commit()?;
                return Err(EngineError::Checkpoint {
                    height: c.height,
                    expected: format!("block {want}"),
                    found: format!("block {}", fetched.hash),
                });
            }
        }
        if let Some(&(h, pinned)) = self.pins.iter().find(|(h, _)| *h == fetched.height)
            && pinned != fetched.hash
        {
            writer.commit()?;
            return Err(EngineError::PinnedBranch {
                height: h,
                pinned,
                found: fetched.hash,
            });
        }
        if !checkpoints.is_empty() {
            // A failed consensus-hash check must lose only the checkpoint's block.
            writer.commit()?;
        }
        Ok(())
    }
}

/// Pins the database to the branch it has indexed above `fork_height`: from then on an engine
/// on it refuses a source whose chain has another block at `fork_height + 1`, instead of
/// rolling back (the "separate deployment" recovery after a deep fork). Returns the pinned
/// height and block.
pub fn pin_branch(store: &Store, fork_height: u64) -> Result<(u64, BlockHash), EngineError> {
    let height = fork_height + 1;
    let entry = store.view()?.chain_entry(height)?.ok_or_else(|| {
        EngineError::Spec(format!(
            "the database has no block at height {height} to pin"
        ))
    })?;
    let hash = BlockHash::from_byte_array(entry.block_hash);
    let mut pins = load_pins(store)?;
    if !pins.contains(&(height, hash)) {
        pins.push((height, hash));
        pins.sort();
        save_pins(store, &pins)?;
    }
    Ok((height, hash))
}

/// The branch pins as stored (not consensus data: a node-local setting).
#[derive(serde::Serialize, serde::Deserialize)]
struct Pins(Vec<(u64, [u8; 32])>);

impl vc_codec::storage::Stored for Pins {
    const KIND: &'static str = "branch pins";
    const VERSION: u8 = 1;
}

fn load_pins(store: &Store) -> Result<Vec<(u64, BlockHash)>, EngineError> {
    let Some(raw) = store.local(PINS_KEY)? else {
        return Ok(Vec::new());
    };
    let pins: Pins = vc_codec::storage::from_bytes(&raw).map_err(|e| {
        EngineError::Store(vc_store::StoreError::Inconsistent(format!(
            "branch pins: {e}"
        )))
    })?;
    Ok(pins
        .0
        .into_iter()
        .map(|(h, b)| (h, BlockHash::from_byte_array(b)))
        .collect())
}

fn save_pins(store: &Store, pins: &[(u64, BlockHash)]) -> Result<(), EngineError> {
    let pins = Pins(pins.iter().map(|(h, b)| (*h, b.to_byte_array())).collect());
    let raw = vc_codec::storage::to_bytes(&pins).map_err(|e| {
        EngineError::Store(vc_store::StoreError::Inconsistent(format!(
            "branch pins: {e}"
        )))
    })?;
    Ok(store.set_local(PINS_KEY, &raw)?)
}

/// How many passes in a row [`Engine::follow`] retries after the source changed under them.
const MOVED_RETRIES: u32 = 5;

/// Whether `e` says the source changed while a pass was asking it: a height past its tip, a
/// block it no longer has, or answers that contradict each other (a reorganisation half-way).
fn source_moved(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Source(
            vc_source::SourceError::PastTip { .. } | vc_source::SourceError::NotFound { .. }
        ) | EngineError::InconsistentSource { .. }
    )
}

/// Runs the fork watch against the lane's source, from the lane's first height, and rolls back
/// a fork within the automatic limit (committed), with the segments it removes. Returns what it
/// rolled back, or `None` when the database is on the source's chain.
fn handle_reorg(
    store: &Store,
    writer: &mut Writer<'_>,
    lane: &Follow,
    config: &EngineConfig,
    pins: &[(u64, BlockHash)],
    chain_tip: u64,
    observer: &mut dyn Observer,
) -> Result<Option<ReorgReport>, EngineError> {
    let source = lane.source.chain();
    let first = lane.first;
    writer.commit()?;
    let Some((tip, tip_hash)) = writer.tip() else {
        return Ok(None);
    };
    if tip < first {
        // A frozen chain's tip, below the target chain's segment: nothing of it to compare.
        return Ok(None);
    }
    let view = store.view()?;
    let stored = |h: u64| -> Result<Option<[u8; 32]>, EngineError> {
        Ok(if h == tip {
            Some(tip_hash.0)
        } else {
            view.chain_entry(h)?.map(|e| e.block_hash)
        })
    };
    let theirs =
        |h: u64| -> Result<[u8; 32], EngineError> { Ok(source.block_hash(h)?.to_byte_array()) };
    // Above the source's tip nothing can be compared: a source behind the database is a fork
    // at its tip at the highest.
    let top = tip.min(chain_tip);
    let found = crate::watch::watch(top, first, |h| Ok(stored(h)? == Some(theirs(h)?)))?;
    let (fork, probes, search) = match found {
        Some(f) => (f.fork_height, f.probes, f.search),
        None if top == tip => return Ok(None),
        None => (top, 0, 0),
    };
    let depth = tip - fork;
    let report = ForkReport {
        fork_height: fork,
        tip,
        depth,
        source_tip: chain_tip,
        probe_requests: probes,
        search_requests: search,
        automatic: depth <= config.max_reorg_depth,
    };
    tracing::warn!(
        fork,
        depth,
        tip,
        source_tip = chain_tip,
        probe_requests = probes,
        search_requests = search,
        "fork detected: the source's chain leaves the database's {depth} blocks below its tip, at height {fork} ({} requests)",
        probes + search
    );
    observer.on_fork(&report);
    // For readers of the file (the server's events feed): committed with the rollback below,
    // or on its own before stopping.
    let seq = view.last_fork()?.map_or(1, |f| f.seq.saturating_add(1));
    writer.set_last_fork(LastFork::new(
        seq,
        fork,
        tip,
        chain_tip,
        probes,
        search,
        report.automatic,
    ))?;
    let new_branch_hash = source
        .block_hash(fork + 1)
        .unwrap_or(BlockHash::all_zeros());
    if let Some(&(height, pinned)) = pins.iter().find(|(h, _)| *h > fork) {
        writer.commit()?;
        return Err(EngineError::PinnedBranch {
            height,
            pinned,
            found: source.block_hash(height).unwrap_or(BlockHash::all_zeros()),
        });
    }
    if depth > config.max_reorg_depth {
        writer.commit()?;
        return Err(EngineError::DeepReorg {
            db: store.path().to_path_buf(),
            fork_height: fork,
            depth,
            tip,
            limit: config.max_reorg_depth,
            new_branch_hash,
        });
    }
    tracing::warn!(fork, depth, old_tip = tip, "reorganisation: rolling back");
    writer.rollback_to(fork)?;
    writer.remove_segments_above(fork)?;
    writer.commit()?;
    Ok(Some(ReorgReport {
        fork_height: fork,
        old_tip: tip,
        depth,
    }))
}
