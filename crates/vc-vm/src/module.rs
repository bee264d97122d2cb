//! Loading a module: the checks that refuse it before anything of it runs on an operation,
//! and its manifest.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmi::{CompilationMode, Config, EnforcedLimits, Engine, ExternType, Linker, Module};

use crate::abi::{Hook, IMPORT_MODULE, MEMORY_EXPORT, Writer};
use crate::error::LoadError;
use crate::host::{self, CallFault, Ended, Host, IMPORTS, Import};
use crate::limits::{
    MANIFEST_FUEL, MAX_MEMORY_PAGES, MAX_MODULE_BYTES, MAX_RECURSION_DEPTH, MAX_STACK_BYTES,
    MAX_TABLE_ELEMENTS,
};
use crate::manifest::{Manifest, VmParams};
use crate::warm::{self, Reusable};

/// The interpreter's configuration: the same on every node, as consensus needs.
///
/// - Only integer WebAssembly: floats (`f32`, `f64` types and instructions) are refused at
///   validation, as are SIMD, reference types, multiple memories, tail calls, memory64 and
///   start functions. Sign extension, multi-value, mutable globals, bulk memory and
///   saturating float-to-int (no floats exist to convert) stay on, as compilers emit them.
/// - Fuel metering on, with wasmi's fixed cost table.
/// - Eager compilation: every function is validated and translated when the module loads, so
///   that no translation cost is ever charged to an operation's fuel (lazy translation would
///   charge it to whichever operation first calls a function, and only on that node's first
///   run).
/// - wasmi's strict limits on the numbers of functions, globals, tables, segments and
///   parameters; call depth and value stack bounded.
pub(crate) fn config() -> Config {
    let mut c = Config::default();
    c.consume_fuel(true)
        .floats(false)
        .wasm_reference_types(false)
        .wasm_multi_memory(false)
        .wasm_tail_call(false)
        .wasm_extended_const(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .allow_start_fn(false)
        .compilation_mode(CompilationMode::Eager)
        .enforced_limits(EnforcedLimits::strict())
        .set_max_recursion_depth(MAX_RECURSION_DEPTH)
        .set_max_stack_height(MAX_STACK_BYTES);
    c
}

/// A loaded, checked module with its manifest: what a [`crate::VmApp`] runs.
pub struct VmModule {
    engine: Engine,
    module: Module,
    linker: Linker<Host>,
    bytes: Arc<[u8]>,
    hash: [u8; 32],
    manifest: Manifest,
    hooks: [bool; 5],
    /// How instances are reused across calls, if this module's can be (`crate::warm`).
    reusable: Option<Reusable>,
}

impl core::fmt::Debug for VmModule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmModule")
            .field("hash", &vc_chash::hex::encode(&self.hash))
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a module's bytes: its identity.
pub fn module_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl VmModule {
    /// Reads and loads the module at `path`.
    pub fn read(path: &Path) -> Result<VmModule, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        VmModule::load(&bytes)
    }

    /// Checks `bytes` and runs its manifest export. Everything a module could do wrong that
    /// does not depend on an operation is refused here.
    pub fn load(bytes: &[u8]) -> Result<VmModule, LoadError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit: MAX_MODULE_BYTES,
            });
        }
        let engine = Engine::new(&config());
        let (module, reusable) = compile(&engine, bytes)?;
        check_imports(&module, IMPORTS, "an application")?;
        let hooks = check_exports(&module)?;
        let linker = host::linker(&engine).map_err(|e| LoadError::Instantiate(e.into()))?;
        let mut vm = VmModule {
            engine,
            module,
            linker,
            bytes: bytes.into(),
            hash: module_hash(bytes),
            manifest: placeholder_manifest(),
            hooks,
            reusable,
        };
        vm.manifest = vm.run_manifest()?;
        let declared = initial_pages(&vm.module);
        if declared > u64::from(vm.manifest.memory_pages) {
            return Err(LoadError::MemoryOverManifest {
                declared,
                allowed: vm.manifest.memory_pages,
            });
        }
        Ok(vm)
    }

    /// Loads `bytes` for a database whose parameters name `expected`: refuses another module.
    pub fn load_expecting(bytes: &[u8], expected: &VmParams) -> Result<VmModule, LoadError> {
        let found = module_hash(bytes);
        if found != expected.module_hash {
            return Err(LoadError::WrongModule {
                expected: vc_chash::hex::encode(&expected.module_hash),
                found: vc_chash::hex::encode(&found),
            });
        }
        VmModule::load(bytes)
    }

    fn run_manifest(&self) -> Result<Manifest, LoadError> {
        let input = Writer::header(Hook::Manifest, bitcoin::Network::Bitcoin).0;
        let call = host::run(self, Hook::Manifest, input, MANIFEST_FUEL, 0, None, None).map_err(
            |fault| match fault {
                CallFault::Store(e) => LoadError::ManifestRun {
                    code: crate::codes::TRAP,
                    reason: e.to_string(),
                },
                CallFault::Vm(e) => LoadError::ManifestRun {
                    code: crate::codes::TRAP,
                    reason: e.to_string(),
                },
            },
        )?;
        match call.ended {
            Ended::Returned => {}
            Ended::OutOfFuel => {
                return Err(LoadError::ManifestRun {
                    code: crate::codes::OUT_OF_FUEL,
                    reason: format!("more than {MANIFEST_FUEL} fuel"),
                });
            }
            Ended::Rejected(r) => {
                return Err(LoadError::ManifestRun {
                    code: r.code,
                    reason: r.reason,
                });
            }
        }
        let bytes = call.host.output.unwrap_or_default();
        Ok(Manifest::decode(&bytes)?)
    }

    /// The module's SHA-256.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The module's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The parameters a database made with this module stores.
    pub fn params(&self) -> VmParams {
        VmParams {
            module_hash: self.hash,
            manifest: self.manifest.clone(),
        }
    }

    /// Whether the module exports `hook`.
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.hooks[usize::from(hook.byte())]
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn module(&self) -> &Module {
        &self.module
    }

    pub(crate) fn linker(&self) -> &Linker<Host> {
        &self.linker
    }

    /// The module its instances are reused with, if they can be (`crate::warm`).
    pub(crate) fn reusable(&self) -> Option<&Reusable> {
        self.reusable.as_ref()
    }

    /// Whether hook calls reuse one instance, reset between calls, instead of instantiating
    /// the module for each (`docs/vm.md` section 1): decided when the module is loaded.
    pub fn reuses_instances(&self) -> bool {
        self.reusable.is_some()
    }

    /// The memory limit calls run under: the manifest's, or while the manifest itself runs,
    /// the VM's.
    pub(crate) fn manifest_pages(&self) -> u32 {
        self.manifest.memory_pages
    }
}

/// Compiles `bytes` once: when its instances can be reused (`crate::warm`), as the copy with
/// its globals exported (which runs exactly as the original, and serves fresh instances too);
/// otherwise, or if that copy does not compile, as they are. A module that is not valid is
/// refused for what is wrong with it as loaded.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<(Module, Option<Reusable>), LoadError> {
    crate::precheck::validate(bytes)?;
    match warm::plan(bytes) {
        // wasmi validates the copy again as it compiles it.
        Ok(plan) => match crate::precheck::compile_validated(engine, &plan.bytes) {
            Ok(module) => {
                let reusable = Reusable {
                    globals: plan.globals,
                    image: std::sync::OnceLock::new(),
                };
                return Ok((module, Some(reusable)));
            }
            Err(e) => tracing::debug!("the module with its globals exported failed: {e}"),
        },
        Err(why) => tracing::debug!("each call instantiates the module afresh: {why:?}"),
    }
    Ok((crate::precheck::compile(engine, bytes)?, None))
}

/// The manifest in force while `vc_manifest` runs: the VM's own limits.
fn placeholder_manifest() -> Manifest {
    Manifest {
        name: String::new(),
        version: String::new(),
        magic: Vec::new(),
        opcodes: Vec::new(),
        first_block: 0,
        scheme: vc_chash::Scheme::V2,
        staleness: 0,
        payload_limit: 0,
        carrier: vc_codec::carrier::CarrierRule::Legacy,
        memory_pages: MAX_MEMORY_PAGES,
        fuel_per_op: MANIFEST_FUEL,
        fuel_per_block: MANIFEST_FUEL,
        markers: Vec::new(),
    }
}

fn initial_pages(module: &Module) -> u64 {
    module
        .exports()
        .filter_map(|e| match e.ty() {
            ExternType::Memory(m) => Some(m.minimum()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Refuses a module that imports anything but functions of `offered` under
/// [`IMPORT_MODULE`], with their types; `whose` names the module's kind in the refusals ("an
/// application", "a contract").
pub(crate) fn check_imports(
    module: &Module,
    offered: &[Import],
    whose: &str,
) -> Result<(), LoadError> {
    for import in module.imports() {
        let refuse = |reason: String| LoadError::Import {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
            reason,
        };
        if import.module() != IMPORT_MODULE {
            return Err(refuse(format!(
                "{whose} imports from module `{IMPORT_MODULE}` only"
            )));
        }
        let Some(offered) = offered.iter().find(|i| i.name == import.name()) else {
            return Err(refuse(format!(
                "the host offers {whose} no function of that name"
            )));
        };
        match import.ty() {
            ExternType::Func(ty) if *ty == offered.ty() => {}
            ExternType::Func(ty) => {
                return Err(refuse(format!(
                    "the host's function has type {:?} -> {:?}, the module asks {:?} -> {:?}",
                    offered.params,
                    offered.results,
                    ty.params(),
                    ty.results()
                )));
            }
            other => {
                return Err(refuse(format!(
                    "only functions can be imported, not {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn check_exports(module: &Module) -> Result<[bool; 5], LoadError> {
    let mut hooks = [false; 5];
    for hook in Hook::ALL {
        match module.get_export(hook.export()) {
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => {
                hooks[usize::from(hook.byte())] = true;
            }
            Some(other) => {
                return Err(LoadError::Export {
                    name: hook.export(),
                    reason: format!("must be a function () -> (), is {other:?}"),
                });
            }
            None if hook.required() => {
                return Err(LoadError::Export {
                    name: hook.export(),
                    reason: "missing (a module exports vc_manifest, vc_parse and vc_apply)".into(),
                });
            }
            None => {}
        }
    }
    check_memory_and_tables(module, MAX_MEMORY_PAGES, "a module")?;
    Ok(hooks)
}

/// Checks a module's exported memory (present, at most `max_pages` initial pages) and its
/// tables (at most [`MAX_TABLE_ELEMENTS`] initial elements): the same rules for applications
/// and contracts, whose page limits differ. `kind` names the module in errors.
pub(crate) fn check_memory_and_tables(
    module: &Module,
    max_pages: u32,
    kind: &str,
) -> Result<(), LoadError> {
    match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) if m.minimum() > u64::from(max_pages) => {
            return Err(LoadError::Resource {
                what: "memory",
                reason: format!(
                    "{} initial pages, {kind} has at most {max_pages}",
                    m.minimum()
                ),
            });
        }
        Some(ExternType::Memory(_)) => {}
        Some(other) => {
            return Err(LoadError::Export {
                name: MEMORY_EXPORT,
                reason: format!("must be a memory, is {other:?}"),
            });
        }
        None => {
            return Err(LoadError::Export {
                name: MEMORY_EXPORT,
                reason: format!("missing: {kind} exports its linear memory"),
            });
        }
    }
    for export in module.exports() {
        if let ExternType::Table(t) = export.ty()
            && t.minimum() > u64::from(MAX_TABLE_ELEMENTS)
        {
            return Err(LoadError::Resource {
                what: "table",
                reason: format!(
                    "{} initial elements, at most {MAX_TABLE_ELEMENTS}",
                    t.minimum()
                ),
            });
        }
    }
    Ok(())
}
