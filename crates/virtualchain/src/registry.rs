//! The applications this binary carries, and what the generic commands (`index`, `status`,
//! `serve`, `recover`) need from each: [`CliApp`]. A database names its application in its
//! metadata ([`Meta::app_name`]); the commands look it up in [`APPS`] and never name an
//! application themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::{Network, ScriptBuf, Transaction};
use serde_json::Value;
use vc_engine::{AppSpec, Application, Engine, EngineConfig, EngineError, Observer, SyncOutcome};
use vc_names::{NamesApp, NamesConfig};
use vc_serve::Extension;
use vc_source::Source;
use vc_store::{Meta, ReadOnlyStore, StateReadExt, Store, StoreConfig, StoredOp, View};

use crate::exit::InputError;

/// The application-specific `index` options, for a database that does not exist yet (an
/// existing one is checked against them).
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// The Bitcoin network.
    pub network: Network,
    /// The first block, if not the application's default.
    pub first_block: Option<u64>,
    /// `--registry` (the names app's marker deployment).
    pub registry: Option<String>,
    /// `--scheme`, if not the application's default.
    pub scheme: Option<vc_chash::Scheme>,
    /// `--migration-authority` and its companions: the migration policy of a new database.
    pub migration: Option<vc_engine::MigrationPolicy>,
    /// `--app path/to/app.wasm`: the module of a WebAssembly application ([`Wasm`]). `None`
    /// for an existing database, which keeps its module.
    pub module: Option<PathBuf>,
}

/// An engine with its application type erased: what `index` drives.
pub trait Indexer {
    /// [`Engine::sync`].
    fn sync(
        &mut self,
        to: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError>;
    /// [`Engine::follow`].
    fn follow(
        &mut self,
        to: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError>;
    /// The database's tip height.
    fn tip(&self) -> Result<Option<u64>, EngineError>;
}

impl<A: Application> Indexer for Engine<A> {
    fn tip(&self) -> Result<Option<u64>, EngineError> {
        Ok(self.store().tip()?.map(|t| t.height))
    }

    fn sync(
        &mut self,
        to: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError> {
        Engine::sync(self, to, stop, observer)
    }

    fn follow(
        &mut self,
        to: Option<u64>,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<SyncOutcome, EngineError> {
        Engine::follow(self, to, stop, observer)
    }
}

/// One application as the command-line tool presents it.
pub trait CliApp: Sync {
    /// The name `--app` takes (`names`).
    fn cli_name(&self) -> &'static str;
    /// The name the application stores in a database ([`Meta::app_name`]).
    fn app_name(&self) -> &'static str;
    /// Whether a database whose [`Meta::app_name`] is `stored` belongs to this application
    /// (by default: the same name; [`Wasm`] owns every `wasm:` name).
    fn owns(&self, stored: &str) -> bool {
        stored == self.app_name()
    }
    /// The application's spec for a database, from its metadata (network, first block and
    /// [`Meta::app_params`]).
    fn spec(&self, meta: &Meta) -> Result<AppSpec>;
    /// The options an existing database was made with (network, first block, application
    /// parameters), so that `index` can resume it without them.
    fn stored_options(&self, meta: &Meta) -> Result<CreateOptions>;
    /// The store configuration `index` would create a new database with, given `opts`: what a
    /// fetched snapshot must have been made for.
    fn new_store_config(&self, opts: &CreateOptions) -> Result<StoreConfig>;
    /// Opens (or creates) `db` for indexing with `opts`.
    fn open_engine(
        &self,
        opts: &CreateOptions,
        db: &Path,
        source: Source,
        config: EngineConfig,
    ) -> Result<Box<dyn Indexer>>;
    /// The HTTP extension of `virtualchain serve` for a database, if the application has one.
    fn extension(&self, meta: &Meta) -> Result<Option<Arc<dyn Extension>>>;
    /// Application lines of `status`: (label, value), read from `view`.
    fn status(&self, meta: &Meta, view: &View) -> Result<Vec<(&'static str, String)>>;
    /// An accepted operation as JSON.
    fn op_json(&self, meta: &Meta, op: &StoredOp) -> Result<Value>;
    /// A raw transaction's operation as JSON, recognised as the engine would on `network`.
    fn decode(&self, tx: &Transaction, network: Network) -> Result<Value>;
}

/// The network a database was made for.
fn stored_network(meta: &Meta) -> Result<Network> {
    meta.network
        .parse()
        .with_context(|| format!("the database's network {:?}", meta.network))
}

/// The store configuration of a new database for `spec` with `opts`.
fn new_config(spec: &AppSpec, opts: &CreateOptions) -> StoreConfig {
    vc_engine::store_config(spec, opts.network, vc_engine::DEFAULT_UNDO_WINDOW)
}

/// The names application (`vc-names`).
#[derive(Debug)]
pub struct Names;

/// Parses `--registry`: `default` or a script in hex.
pub fn parse_registry(s: &str) -> Result<ScriptBuf> {
    if s == "default" {
        return Ok(vc_names::default_registry_script());
    }
    let bytes = vc_chash::hex::decode(s)
        .with_context(|| format!("--registry {s:?} is neither `default` nor a script in hex"))?;
    Ok(ScriptBuf::from_bytes(bytes))
}

impl Names {
    /// The deployment `opts` describe.
    fn deployment(opts: &CreateOptions) -> Result<NamesConfig> {
        let registry = opts.registry.as_deref().map(parse_registry).transpose()?;
        let mut names = NamesConfig::deployment(opts.network, opts.first_block, registry);
        if let Some(scheme) = opts.scheme {
            names = names.with_scheme(scheme);
        }
        if let Some(policy) = &opts.migration {
            names = names.with_migration(policy.clone());
        }
        Ok(names)
    }

    /// The deployment a database was made for.
    pub fn config(meta: &Meta) -> Result<NamesConfig> {
        Ok(NamesConfig::from_meta(meta)?)
    }
}

impl CliApp for Names {
    fn cli_name(&self) -> &'static str {
        "names"
    }

    fn app_name(&self) -> &'static str {
        vc_names::app::APP_NAME
    }

    fn spec(&self, meta: &Meta) -> Result<AppSpec> {
        Ok(NamesApp::new(Names::config(meta)?).spec())
    }

    fn stored_options(&self, meta: &Meta) -> Result<CreateOptions> {
        let config = Names::config(meta)?;
        Ok(CreateOptions {
            network: stored_network(meta)?,
            first_block: Some(meta.first_block),
            registry: config
                .registry
                .map(|script| vc_chash::hex::encode(script.as_bytes())),
            scheme: Some(config.scheme),
            migration: config.migration,
            module: None,
        })
    }

    fn new_store_config(&self, opts: &CreateOptions) -> Result<StoreConfig> {
        Ok(new_config(
            &NamesApp::new(Names::deployment(opts)?).spec(),
            opts,
        ))
    }

    fn open_engine(
        &self,
        opts: &CreateOptions,
        db: &Path,
        source: Source,
        config: EngineConfig,
    ) -> Result<Box<dyn Indexer>> {
        let names = Names::deployment(opts)?;
        let engine = Engine::open(NamesApp::new(names), db, source, config)
            .with_context(|| format!("opening {}", db.display()))?;
        Ok(Box::new(engine))
    }

    fn extension(&self, meta: &Meta) -> Result<Option<Arc<dyn Extension>>> {
        Ok(Some(Arc::new(vc_names::cli::NamesExtension::new(
            &Names::config(meta)?,
        ))))
    }

    fn status(&self, meta: &Meta, view: &View) -> Result<Vec<(&'static str, String)>> {
        let config = Names::config(meta)?;
        let names = view.range(&vc_names::state::NAMES, None, None)?;
        let mut lines = vec![(
            "names",
            format!(
                "{} ({} revoked)",
                names.len(),
                names.iter().filter(|(_, n)| n.revoked).count()
            ),
        )];
        if let Some(registry) = &config.registry {
            lines.insert(0, ("registry", vc_chash::hex::encode(registry.as_bytes())));
        }
        Ok(lines)
    }

    fn op_json(&self, _meta: &Meta, op: &StoredOp) -> Result<Value> {
        Ok(vc_names::cli::op_json(op, vc_names::wire::MAGIC.len())?)
    }

    fn decode(&self, tx: &Transaction, network: Network) -> Result<Value> {
        let config = NamesConfig::deployment(network, None, None);
        Ok(vc_names::cli::decode_json(tx, &config)?)
    }
}

/// Every application compiled in, and [`Wasm`], which runs any module.
pub static APPS: &[&dyn CliApp] = &[&Names, &crate::contracts::Contracts, &Wasm];

/// Whether `--app` names a module file rather than an application compiled in.
pub fn is_module_path(app: &str) -> bool {
    app.ends_with(".wasm")
}

/// The application `--app` names: one compiled in, or [`Wasm`] for a `.wasm` file.
pub fn by_cli_name(name: &str) -> Result<&'static dyn CliApp> {
    if is_module_path(name) {
        return Ok(&Wasm);
    }
    APPS.iter()
        .copied()
        .find(|a| a.cli_name() == name)
        .ok_or_else(|| {
            InputError::Invalid {
                what: "--app",
                detail: format!("{name:?} is not one of {}", cli_names().join(", ")),
            }
            .into()
        })
}

/// The application a database was made for.
pub fn by_stored_name(name: &str) -> Result<&'static dyn CliApp> {
    APPS.iter().copied().find(|a| a.owns(name)).ok_or_else(|| {
        InputError::Foreign(format!(
            "the database belongs to application {name:?}, which this build does not carry ({})",
            APPS.iter()
                .map(|a| a.app_name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()
    })
}

/// The `--app` names, in registry order.
pub fn cli_names() -> Vec<&'static str> {
    APPS.iter().map(|a| a.cli_name()).collect()
}

/// Checks that `db` names an existing file: missing is [`InputError::Missing`]; a
/// directory, a symbolic-link loop or an unreadable path is [`InputError::Unreadable`], saying
/// which.
pub fn existing_file(db: &Path) -> Result<()> {
    match std::fs::metadata(db) {
        Ok(m) if m.is_dir() => Err(InputError::Unreadable {
            path: db.display().to_string(),
            reason: "it is a directory, not a database file".into(),
        }
        .into()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symbolic link is missing too, but say where it points.
            match std::fs::read_link(db) {
                Ok(target) => Err(InputError::Unreadable {
                    path: db.display().to_string(),
                    reason: format!(
                        "it is a symbolic link to {}, which does not exist",
                        target.display()
                    ),
                }
                .into()),
                Err(_) => Err(InputError::Missing(db.display().to_string()).into()),
            }
        }
        Err(e) => Err(InputError::Unreadable {
            path: db.display().to_string(),
            reason: e.to_string(),
        }
        .into()),
    }
}

/// Opens an existing database read-only for the commands that only read (`status`, `ops`,
/// `names show`, `names list`): never writes the file, works beside a running `index`, on a
/// read-only file, and refuses (never repairs) a file that needs recovery.
pub fn open_read_only(db: &Path) -> Result<(&'static dyn CliApp, ReadOnlyStore)> {
    existing_file(db)?;
    let store = ReadOnlyStore::open(db).with_context(|| format!("reading {}", db.display()))?;
    let app = by_stored_name(&store.meta().app_name)
        .with_context(|| format!("opening {}", db.display()))?;
    Ok((app, store))
}

/// Opens an existing database for its own application: reads the metadata (repairing a file an
/// unclean shutdown left, as the open for writing would), finds the application, rebuilds its
/// spec from the stored parameters and opens the store with it.
pub fn open_db(db: &Path) -> Result<(&'static dyn CliApp, Meta, Store)> {
    existing_file(db)?;
    let meta = Store::recover_meta(db).with_context(|| format!("reading {}", db.display()))?;
    let app =
        by_stored_name(&meta.app_name).with_context(|| format!("opening {}", db.display()))?;
    let spec = app
        .spec(&meta)
        .with_context(|| format!("reading {}", db.display()))?;
    let network: Network = meta
        .network
        .parse()
        .with_context(|| format!("network {:?} in {}", meta.network, db.display()))?;
    let store = Store::open(
        db,
        vc_engine::store_config(&spec, network, vc_engine::DEFAULT_UNDO_WINDOW),
    )?;
    Ok((app, meta, store))
}

/// Where an indexed database keeps its module's bytes (in its local, non-consensus table),
/// so that `index` resumes it without `--app`. The bytes are checked against the module hash
/// in the database's parameters whenever they are read.
pub const MODULE_KEY: &str = "vm.module";

/// Applications whose rules are a WebAssembly module (`vc-vm`): `--app path/to/app.wasm`.
///
/// The module's manifest and SHA-256 are the application's parameters, stored in the
/// database's metadata: `status` and `serve` rebuild the spec from them alone, without the
/// module. `index` stores the module's bytes in the database ([`MODULE_KEY`]), so that a later
/// `index --db` resumes without `--app`; `--app` with another module is refused (another module
/// is another database).
#[derive(Debug)]
pub struct Wasm;

impl Wasm {
    fn params(meta: &Meta) -> Result<vc_vm::VmParams> {
        vc_vm::VmParams::decode(&meta.app_params)
            .context("the database's parameters are not a WebAssembly application's")
    }

    /// The module `opts` name, loaded and checked.
    fn module(opts: &CreateOptions) -> Result<vc_vm::VmModule> {
        let path = opts.module.as_deref().ok_or_else(|| InputError::Invalid {
            what: "--app",
            detail: "a WebAssembly application needs its module: --app path/to/app.wasm".into(),
        })?;
        let module = vc_vm::VmModule::read(path)
            .with_context(|| format!("loading the module {}", path.display()))?;
        let m = module.manifest();
        if let Some(first) = opts.first_block.filter(|f| *f != m.first_block) {
            return Err(InputError::Invalid {
                what: "--first-block",
                detail: format!(
                    "{first} disagrees with the module's manifest ({})",
                    m.first_block
                ),
            }
            .into());
        }
        if let Some(scheme) = opts.scheme.filter(|s| *s != m.scheme) {
            return Err(InputError::Invalid {
                what: "--scheme",
                detail: format!(
                    "{scheme} disagrees with the module's manifest ({})",
                    m.scheme
                ),
            }
            .into());
        }
        Ok(module)
    }

    /// The module stored in an existing database.
    fn stored_module(db: &Path) -> Result<vc_vm::VmModule> {
        let store = ReadOnlyStore::open(db).with_context(|| format!("reading {}", db.display()))?;
        let params = Wasm::params(store.meta())?;
        let bytes = store
            .view()?
            .local(MODULE_KEY)?
            .ok_or_else(|| InputError::Invalid {
                what: "--app",
                detail: format!(
                    "{} does not hold its module: give it with --app path/to/app.wasm",
                    db.display()
                ),
            })?;
        vc_vm::VmModule::load_expecting(&bytes, &params)
            .with_context(|| format!("the module stored in {}", db.display()))
    }
}

impl CliApp for Wasm {
    fn cli_name(&self) -> &'static str {
        "wasm"
    }

    fn app_name(&self) -> &'static str {
        vc_vm::manifest::APP_NAME_PREFIX
    }

    fn owns(&self, stored: &str) -> bool {
        stored.starts_with(vc_vm::manifest::APP_NAME_PREFIX)
    }

    fn spec(&self, meta: &Meta) -> Result<AppSpec> {
        Ok(Wasm::params(meta)?.spec())
    }

    fn stored_options(&self, meta: &Meta) -> Result<CreateOptions> {
        let params = Wasm::params(meta)?;
        Ok(CreateOptions {
            network: stored_network(meta)?,
            first_block: Some(meta.first_block),
            registry: None,
            scheme: Some(params.manifest.scheme),
            migration: None,
            module: None,
        })
    }

    fn new_store_config(&self, opts: &CreateOptions) -> Result<StoreConfig> {
        if opts.migration.is_some() {
            return Err(InputError::Usage(
                "--migration-authority: a WebAssembly application declares no migration policy \
                 (docs/vm.md); migration is the names app's for now",
            )
            .into());
        }
        Ok(new_config(&Wasm::module(opts)?.params().spec(), opts))
    }

    fn open_engine(
        &self,
        opts: &CreateOptions,
        db: &Path,
        source: Source,
        config: EngineConfig,
    ) -> Result<Box<dyn Indexer>> {
        let module = match &opts.module {
            Some(_) => Wasm::module(opts)?,
            None => Wasm::stored_module(db)?,
        };
        let bytes = module.bytes().to_vec();
        let app = vc_vm::VmApp::new(Arc::new(module), opts.network);
        let engine = Engine::open(app, db, source, config)
            .with_context(|| format!("opening {}", db.display()))?;
        if engine.store().local(MODULE_KEY)?.as_deref() != Some(bytes.as_slice()) {
            engine.store().set_local(MODULE_KEY, &bytes)?;
        }
        Ok(Box::new(engine))
    }

    fn extension(&self, _meta: &Meta) -> Result<Option<Arc<dyn Extension>>> {
        Ok(None)
    }

    fn status(&self, meta: &Meta, view: &View) -> Result<Vec<(&'static str, String)>> {
        let params = Wasm::params(meta)?;
        let m = &params.manifest;
        Ok(vec![
            ("module", vc_chash::hex::encode(&params.module_hash)),
            (
                "module stored",
                if view.local(MODULE_KEY)?.is_some() {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ),
            (
                "fuel",
                format!(
                    "{} per operation, {} per block",
                    m.fuel_per_op, m.fuel_per_block
                ),
            ),
            ("memory", format!("{} pages", m.memory_pages)),
        ])
    }

    fn op_json(&self, meta: &Meta, op: &StoredOp) -> Result<Value> {
        let magic = Wasm::params(meta)?.manifest.magic.len();
        let body = op.payload.get(magic + 1..).unwrap_or_default();
        Ok(serde_json::json!({
            "txid": bitcoin::Txid::from_byte_array(op.txid).to_string(),
            "vtxindex": op.vtxindex,
            "opcode": char::from(op.opcode).to_string(),
            "body": vc_chash::hex::encode(body),
            "records": op.records.iter().map(|r| vc_chash::hex::encode(r)).collect::<Vec<_>>(),
        }))
    }

    fn decode(&self, _tx: &Transaction, _network: Network) -> Result<Value> {
        Err(InputError::Invalid {
            what: "--app",
            detail: "decoding needs a compiled-in application; a WebAssembly application's \
                     operations are decoded by its module when indexed"
                .into(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use vc_chash::Scheme;

    use super::*;

    #[test]
    fn every_app_is_found_by_both_names() {
        for app in APPS {
            assert_eq!(
                by_cli_name(app.cli_name()).unwrap().app_name(),
                app.app_name()
            );
            assert_eq!(
                by_stored_name(app.app_name()).unwrap().cli_name(),
                app.cli_name()
            );
        }
        assert!(by_cli_name("nope").is_err());
        // A module file is the WebAssembly application, which owns every `wasm:` database.
        assert_eq!(by_cli_name("apps/kv.wasm").unwrap().cli_name(), "wasm");
        assert_eq!(by_stored_name("wasm:kv").unwrap().cli_name(), "wasm");
        assert!(by_stored_name("wasmkv").is_err());
    }

    #[test]
    fn a_database_is_dispatched_by_its_stored_app_name() {
        let dir = tempfile::tempdir().unwrap();
        // A names marker deployment: opened through the registry with its stored parameters.
        let path = dir.path().join("names.redb");
        let names = NamesConfig::regtest(101).with_registry(vc_names::default_registry_script());
        let spec = NamesApp::new(names.clone()).spec();
        drop(Store::open(&path, vc_engine::store_config(&spec, Network::Regtest, 10)).unwrap());
        let (app, meta, store) = open_db(&path).unwrap();
        assert_eq!(app.cli_name(), "names");
        assert_eq!(store.config().app_params, names.params());
        let status = app.status(&meta, &store.view().unwrap()).unwrap();
        assert_eq!(status[0].0, "registry");
        assert!(app.extension(&meta).unwrap().is_some());

        // An application this build does not carry is refused as foreign input.
        let other = dir.path().join("other.redb");
        drop(
            Store::open(
                &other,
                StoreConfig::new("counter", "1", Scheme::V2, 1, "regtest"),
            )
            .unwrap(),
        );
        let err = open_db(&other).err().unwrap();
        assert!(
            err.chain()
                .any(|c| matches!(c.downcast_ref::<InputError>(), Some(InputError::Foreign(_)))),
            "{err:#}"
        );
    }
}
