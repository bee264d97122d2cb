//! Contracts: modules deployed on chain and called by operations (the `vc-contracts`
//! application), run under the same validation rules and limits as application modules
//! ([`crate::VmModule`]: integer WebAssembly only, eager compilation, fixed memory, table,
//! stack and call-depth limits, a fresh instance per call, fuel) with an ABI of their own,
//! smaller than an application's: a contract sees one call (who calls, what is paid, which
//! method with which arguments), reads and writes its own key space, and returns a result.
//!
//! `docs/contracts.md` in the repository specifies this ABI (section 4); `vc-vm-guest`'s
//! `contract` module wraps it for guests in Rust.
//!
//! A contract call, like an application hook, ends in one of three ways for the rules: it
//! returns (its result and writes are kept), it rejects, or it traps or runs out of fuel or
//! memory (a rejection with one of the VM's codes, [`crate::codes`]). None of them is a node
//! failure; only the store failing, or the host failing to allocate memory the limits allow,
//! is ([`ContractFault`]).

use std::collections::BTreeMap;

use bitcoin::Network;
use vc_engine::Reject;
use vc_store::StoreError;
use wasmi::{
    Caller, Engine, Error, ExternType, Linker, Memory, Module, StoreLimits, StoreLimitsBuilder,
    TrapCode, TypedResumableCall, Val, ValType,
};

use crate::abi::{IMPORT_MODULE, MEMORY_EXPORT, network_byte};
use crate::codes;
use crate::error::{LoadError, VmFault};
use crate::guest::{
    Buffers, GuestHost, charge, guest_reject, len_i32, link_buffers, put_bytes, read,
};
use crate::host::Import;
use crate::limits::{
    MAX_MESSAGE_BYTES, MAX_MODULE_BYTES, MAX_TABLE_ELEMENTS, PAGE_BYTES, byte_fuel,
};
use crate::module::{check_imports, config, module_hash};

/// The contract ABI's version: the first byte of every contract call's input.
pub const CONTRACT_ABI_VERSION: u8 = 1;

/// The most linear memory a contract may use, in 64 KiB pages (1 MiB); its initial memory
/// must fit.
pub const CONTRACT_MEMORY_PAGES: u32 = 16;

/// The longest key a contract may use in its storage.
pub const MAX_CONTRACT_KEY_BYTES: usize = 256;

/// The longest value a contract may store under one key.
pub const MAX_CONTRACT_VALUE_BYTES: usize = 4_096;

/// The longest result a call may return (it becomes part of a consensus record).
pub const MAX_CONTRACT_RESULT_BYTES: usize = 1_024;

/// The most distinct keys one call may write (put or delete): each becomes a consensus record.
pub const MAX_CONTRACT_WRITES: usize = 64;

/// The required export a call runs.
pub const CALL_EXPORT: &str = "vc_call";

/// The optional export a deploy runs (a contract without it deploys with no state).
pub const INIT_EXPORT: &str = "vc_init";

/// Which export a run calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// `vc_init`, once, when the contract is deployed.
    Init,
    /// `vc_call`, for every call operation.
    Call,
}

impl Entry {
    /// The byte naming the entry in the input.
    pub fn byte(self) -> u8 {
        match self {
            Entry::Init => 0,
            Entry::Call => 1,
        }
    }

    /// The export's name.
    pub fn export(self) -> &'static str {
        match self {
            Entry::Init => INIT_EXPORT,
            Entry::Call => CALL_EXPORT,
        }
    }
}

/// What a contract sees of the operation that runs it: its input, encoded as
/// `docs/contracts.md` section 4.3 says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractInput {
    /// Which export runs.
    pub entry: Entry,
    /// The database's network.
    pub network: Network,
    /// The contract's id: its deploy transaction's txid (internal byte order).
    pub contract: [u8; 32],
    /// The operation's txid (internal byte order); for [`Entry::Init`], the contract's id.
    pub txid: [u8; 32],
    /// The block's height.
    pub height: u64,
    /// The block header's time.
    pub time: u32,
    /// The caller: the script of the output the operation's input 0 spends.
    pub caller: Vec<u8>,
    /// The amount paid with the operation, in satoshis.
    pub amount: u64,
    /// The method (empty for [`Entry::Init`]).
    pub method: Vec<u8>,
    /// The arguments.
    pub args: Vec<u8>,
}

impl ContractInput {
    /// The input's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            CONTRACT_ABI_VERSION,
            self.entry.byte(),
            network_byte(self.network),
        ];
        out.extend_from_slice(&self.contract);
        out.extend_from_slice(&self.txid);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.time.to_be_bytes());
        put_bytes(&mut out, &self.caller);
        out.extend_from_slice(&self.amount.to_be_bytes());
        put_bytes(&mut out, &self.method);
        put_bytes(&mut out, &self.args);
        out
    }
}

/// A contract's own storage, as the host reads it for a call. The call's writes come back in
/// [`ContractRun::writes`]; the caller applies them (or not, if the call did not return).
pub trait ContractStorage {
    /// The value at `key` in the contract's key space.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A finished run: how it ended, with what it wrote and the fuel it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractRun {
    /// `Ok` with the result the contract returned (empty if it set none), or the rejection.
    pub outcome: Result<Vec<u8>, Reject>,
    /// The writes of a run that returned, by key: `None` deletes. Empty after a rejection.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The fuel the run used.
    pub fuel_used: u64,
}

/// A fault of the node while running a contract: never caused by what the contract does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractFault {
    /// Reading the contract's storage failed.
    #[error("reading a contract's storage")]
    Store(#[from] StoreError),
    /// The interpreter failed in a way no module behaviour explains.
    #[error(transparent)]
    Vm(#[from] VmFault),
}

/// How a host function stops a contract.
#[derive(Debug)]
enum Stop {
    Reject(Reject),
    OutOfFuel,
    /// A storage read the run loop answers, then resumes.
    Get(Vec<u8>),
}

impl core::fmt::Display for Stop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Stop::Reject(r) => write!(f, "{r}"),
            Stop::OutOfFuel => f.write_str("out of fuel in a host call"),
            Stop::Get(_) => f.write_str("suspended on a storage read"),
        }
    }
}

impl wasmi::errors::HostError for Stop {}

/// What one contract run's store carries.
#[derive(Debug)]
struct ContractHost {
    limits: StoreLimits,
    memory: Option<Memory>,
    input: Vec<u8>,
    output: Option<Vec<u8>>,
    scratch: Vec<u8>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

type C<'a> = Caller<'a, ContractHost>;

fn stop_reject(code: &'static str, reason: impl Into<String>) -> Error {
    Error::host(Stop::Reject(Reject::new(code, reason)))
}

impl GuestHost for ContractHost {
    fn memory(&self) -> Option<Memory> {
        self.memory
    }
    fn buffers(&mut self) -> Buffers<'_> {
        Buffers {
            input: &mut self.input,
            scratch: &mut self.scratch,
            output: &mut self.output,
        }
    }
    fn reject(code: &'static str, reason: String) -> Error {
        stop_reject(code, reason)
    }
    fn out_of_fuel() -> Error {
        Error::host(Stop::OutOfFuel)
    }
}

fn key(c: &C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    let k = read(c, ptr, len, MAX_CONTRACT_KEY_BYTES, "a storage key")?;
    if k.is_empty() {
        return Err(stop_reject(codes::BAD_CALL, "a storage key is empty"));
    }
    Ok(k)
}

fn record_write(c: &mut C<'_>, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), Error> {
    let writes = &mut c.data_mut().writes;
    if !writes.contains_key(&key) && writes.len() >= MAX_CONTRACT_WRITES {
        return Err(stop_reject(
            codes::BAD_CALL,
            format!("a call writes at most {MAX_CONTRACT_WRITES} keys"),
        ));
    }
    writes.insert(key, value);
    Ok(())
}

use ValType::I32;

/// Every function the host offers contracts, under [`IMPORT_MODULE`] (`vc`). The first five
/// and `log` are those of the application ABI, with the same types and meaning, so the guest
/// SDK's runtime (its panic handler rejects through `reject`) serves both.
const CONTRACT_IMPORTS: &[Import] = &[
    Import {
        name: "input_len",
        params: &[],
        results: &[I32],
    },
    Import {
        name: "input_read",
        params: &[I32],
        results: &[],
    },
    Import {
        name: "output",
        params: &[I32, I32],
        results: &[],
    },
    Import {
        name: "scratch_read",
        params: &[I32],
        results: &[],
    },
    Import {
        name: "reject",
        params: &[I32, I32, I32, I32],
        results: &[],
    },
    Import {
        name: "log",
        params: &[I32, I32],
        results: &[],
    },
    Import {
        name: "storage_get",
        params: &[I32, I32],
        results: &[I32],
    },
    Import {
        name: "storage_put",
        params: &[I32, I32, I32, I32],
        results: &[],
    },
    Import {
        name: "storage_delete",
        params: &[I32, I32],
        results: &[],
    },
];

fn linker(engine: &Engine) -> Result<Linker<ContractHost>, wasmi::errors::LinkerError> {
    let mut l = Linker::<ContractHost>::new(engine);
    let m = IMPORT_MODULE;
    link_buffers(&mut l, MAX_CONTRACT_RESULT_BYTES, "the result")?;
    l.func_wrap(
        m,
        "reject",
        |mut c: C<'_>, cp: i32, cl: i32, rp: i32, rl: i32| -> Result<(), Error> {
            charge(&mut c, 0)?;
            let r = guest_reject(&c, [cp, cl, rp, rl])?;
            Err(Error::host(Stop::Reject(r)))
        },
    )?;
    l.func_wrap(
        m,
        "log",
        |mut c: C<'_>, ptr: i32, len: i32| -> Result<(), Error> {
            let line = read(&c, ptr, len, MAX_MESSAGE_BYTES, "a log line")?;
            charge(&mut c, line.len())?;
            tracing::debug!(target: "vc_vm::contract", "{}", String::from_utf8_lossy(&line));
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "storage_get",
        |mut c: C<'_>, kp: i32, kl: i32| -> Result<i32, Error> {
            let k = key(&c, kp, kl)?;
            charge(&mut c, k.len())?;
            match c.data().writes.get(&k) {
                Some(Some(v)) => {
                    let v = v.clone();
                    let n = len_i32(v.len());
                    c.data_mut().scratch = v;
                    Ok(n)
                }
                Some(None) => Ok(-1),
                None => Err(Error::host(Stop::Get(k))),
            }
        },
    )?;
    l.func_wrap(
        m,
        "storage_put",
        |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32| -> Result<(), Error> {
            let k = key(&c, kp, kl)?;
            let v = read(&c, vp, vl, MAX_CONTRACT_VALUE_BYTES, "a storage value")?;
            charge(&mut c, k.len() + v.len())?;
            record_write(&mut c, k, Some(v))
        },
    )?;
    l.func_wrap(
        m,
        "storage_delete",
        |mut c: C<'_>, kp: i32, kl: i32| -> Result<(), Error> {
            let k = key(&c, kp, kl)?;
            charge(&mut c, k.len())?;
            record_write(&mut c, k, None)
        },
    )?;
    Ok(l)
}

/// How a run ended for the rules; `None` for the one trap that depends on the machine (the
/// host could not allocate memory the limits allow), which stops the node.
fn classify(err: &Error) -> Option<Result<(), Reject>> {
    let out_of_fuel = || {
        Err(Reject::new(
            codes::OUT_OF_FUEL,
            "the call used all the fuel it was given",
        ))
    };
    if let Some(stop) = err.downcast_ref::<Stop>() {
        return Some(match stop {
            Stop::Reject(r) => Err(r.clone()),
            Stop::OutOfFuel => out_of_fuel(),
            Stop::Get(_) => Err(Reject::new(codes::TRAP, "unanswered host call")),
        });
    }
    let code = match err.as_trap_code() {
        Some(TrapCode::OutOfFuel) => return Some(out_of_fuel()),
        Some(TrapCode::OutOfSystemMemory) => return None,
        Some(TrapCode::GrowthOperationLimited) => codes::OUT_OF_MEMORY,
        Some(TrapCode::StackOverflow) => codes::STACK_OVERFLOW,
        Some(TrapCode::UnreachableCodeReached) => codes::UNREACHABLE,
        Some(TrapCode::MemoryOutOfBounds) => codes::MEMORY_OUT_OF_BOUNDS,
        Some(_) => codes::TRAP,
        None => match err.kind() {
            wasmi::errors::ErrorKind::Memory(_) | wasmi::errors::ErrorKind::Table(_) => {
                codes::OUT_OF_MEMORY
            }
            _ => codes::TRAP,
        },
    };
    Some(Err(Reject::new(code, err.to_string())))
}

/// A checked contract module, ready to run.
pub struct ContractModule {
    engine: Engine,
    module: Module,
    linker: Linker<ContractHost>,
    hash: [u8; 32],
    has_init: bool,
}

impl core::fmt::Debug for ContractModule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ContractModule")
            .field("hash", &vc_chash::hex::encode(&self.hash))
            .field("has_init", &self.has_init)
            .finish_non_exhaustive()
    }
}

impl ContractModule {
    /// Checks `bytes` under the VM's rules and the contract ABI: at most
    /// [`MAX_MODULE_BYTES`], valid integer WebAssembly under [`crate::VmModule`]'s
    /// configuration, only the contract imports with their exact types, `vc_call` (and, if
    /// present, `vc_init`) exported as `() -> ()`, `memory` exported with at most
    /// [`CONTRACT_MEMORY_PAGES`] initial pages, tables within the limit, and data and element
    /// segments that fit (the module is instantiated once).
    pub fn load(bytes: &[u8]) -> Result<ContractModule, LoadError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit: MAX_MODULE_BYTES,
            });
        }
        let engine = Engine::new(&config());
        let module = crate::precheck::compile(&engine, bytes)?;
        check_imports(&module, CONTRACT_IMPORTS, "a contract")?;
        let has_init = check_exports(&module)?;
        let linker = linker(&engine).map_err(|e| LoadError::Instantiate(e.into()))?;
        let contract = ContractModule {
            engine,
            module,
            linker,
            hash: module_hash(bytes),
            has_init,
        };
        // Instantiating once refuses segments that do not fit, as the application loader's
        // manifest run does; no export runs.
        let mut store = contract.store(Vec::new());
        store
            .set_fuel(crate::limits::MANIFEST_FUEL)
            .map_err(LoadError::Instantiate)?;
        contract
            .linker
            .instantiate_and_start(&mut store, &contract.module)
            .map_err(LoadError::Instantiate)?;
        Ok(contract)
    }

    /// The module's SHA-256 (over the whole file).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Whether the module exports `vc_init`.
    pub fn has_init(&self) -> bool {
        self.has_init
    }

    fn store(&self, input: Vec<u8>) -> wasmi::Store<ContractHost> {
        let host = ContractHost {
            limits: StoreLimitsBuilder::new()
                .memory_size(CONTRACT_MEMORY_PAGES as usize * PAGE_BYTES as usize)
                .table_elements(MAX_TABLE_ELEMENTS as usize)
                .instances(1)
                .tables(1)
                .memories(1)
                .trap_on_grow_failure(true)
                .build(),
            memory: None,
            input,
            output: None,
            scratch: Vec::new(),
            writes: BTreeMap::new(),
        };
        let mut store = wasmi::Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        store
    }

    /// Runs `input.entry` in a fresh instance with `fuel`, answering storage reads from
    /// `storage`. [`Entry::Init`] on a module without `vc_init` returns an empty result and
    /// writes nothing, using no fuel.
    pub fn run(
        &self,
        input: &ContractInput,
        fuel: u64,
        storage: &mut dyn ContractStorage,
    ) -> Result<ContractRun, ContractFault> {
        let export = input.entry.export();
        if input.entry == Entry::Init && !self.has_init {
            return Ok(ContractRun {
                outcome: Ok(Vec::new()),
                writes: BTreeMap::new(),
                fuel_used: 0,
            });
        }
        let fault = |source: Error| {
            ContractFault::Vm(VmFault::Interpreter {
                hook: export,
                source,
            })
        };
        let mut store = self.store(input.encode());
        store.set_fuel(fuel).map_err(fault)?;
        let finish = |store: wasmi::Store<ContractHost>,
                      ended: Result<(), Reject>|
         -> Result<ContractRun, ContractFault> {
            let left = store.get_fuel().unwrap_or(0);
            let host = store.into_data();
            let (outcome, writes) = match ended {
                Ok(()) => (Ok(host.output.unwrap_or_default()), host.writes),
                Err(r) => (Err(r), BTreeMap::new()),
            };
            Ok(ContractRun {
                outcome,
                writes,
                fuel_used: fuel.saturating_sub(left),
            })
        };
        let instance = match self.linker.instantiate_and_start(&mut store, &self.module) {
            Ok(i) => i,
            Err(e) => {
                let ended = match classify(&e) {
                    Some(Err(r)) if r.code == codes::OUT_OF_FUEL => Err(r),
                    Some(_) => Err(Reject::new(codes::INSTANTIATE, e.to_string())),
                    None => return Err(fault(e)),
                };
                return finish(store, ended);
            }
        };
        store.data_mut().memory = instance.get_memory(&store, MEMORY_EXPORT);
        // Checked when the module was loaded.
        let func = instance
            .get_typed_func::<(), ()>(&store, export)
            .map_err(fault)?;
        let mut call = func.call_resumable(&mut store, ());
        loop {
            match call {
                Ok(TypedResumableCall::Finished(())) => return finish(store, Ok(())),
                Ok(TypedResumableCall::OutOfFuel(_)) => {
                    let r = Reject::new(codes::OUT_OF_FUEL, format!("more than {fuel} fuel"));
                    return finish(store, Err(r));
                }
                Ok(TypedResumableCall::HostTrap(invocation)) => {
                    let key = match invocation.host_error().downcast_ref::<Stop>() {
                        Some(Stop::Get(k)) => k.clone(),
                        _ => match classify(invocation.host_error()) {
                            Some(ended) => return finish(store, ended),
                            None => {
                                return Err(fault(Error::new(invocation.host_error().to_string())));
                            }
                        },
                    };
                    let value = storage.get(&key)?;
                    let cost = byte_fuel(value.as_ref().map_or(0, Vec::len));
                    let left = store.get_fuel().map_err(fault)?;
                    if left < cost {
                        let r = Reject::new(codes::OUT_OF_FUEL, format!("more than {fuel} fuel"));
                        return finish(store, Err(r));
                    }
                    store.set_fuel(left - cost).map_err(fault)?;
                    let ret = match value {
                        Some(v) => {
                            let n = len_i32(v.len());
                            store.data_mut().scratch = v;
                            n
                        }
                        None => -1,
                    };
                    call = invocation.resume(&mut store, &[Val::I32(ret)]);
                }
                Err(e) => match classify(&e) {
                    Some(ended) => return finish(store, ended),
                    None => return Err(fault(e)),
                },
            }
        }
    }
}

/// Checks the exports; returns whether `vc_init` is present.
fn check_exports(module: &Module) -> Result<bool, LoadError> {
    let mut has_init = false;
    for (name, required) in [(CALL_EXPORT, true), (INIT_EXPORT, false)] {
        match module.get_export(name) {
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => {
                has_init |= name == INIT_EXPORT;
            }
            Some(other) => {
                return Err(LoadError::Export {
                    name,
                    reason: format!("must be a function () -> (), is {other:?}"),
                });
            }
            None if required => {
                return Err(LoadError::Export {
                    name,
                    reason: "missing (a contract exports vc_call)".into(),
                });
            }
            None => {}
        }
    }
    crate::module::check_memory_and_tables(module, CONTRACT_MEMORY_PAGES, "a contract")?;
    Ok(has_init)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::limits::HOST_CALL_FUEL;

    /// Storage from a map, counting reads.
    #[derive(Default)]
    struct Map(BTreeMap<Vec<u8>, Vec<u8>>, usize);

    impl ContractStorage for Map {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.1 += 1;
            Ok(self.0.get(key).cloned())
        }
    }

    fn input(entry: Entry) -> ContractInput {
        ContractInput {
            entry,
            network: Network::Regtest,
            contract: [7; 32],
            txid: [8; 32],
            height: 101,
            time: 1_700_000_000,
            caller: vec![0x51],
            amount: 500,
            method: b"inc".to_vec(),
            args: vec![],
        }
    }

    /// A counter: `vc_call` reads key "n" (a byte, absent = 0), writes it plus one, and
    /// returns the new value; `vc_init` writes 10.
    const COUNTER: &str = r#"(module
      (import "vc" "storage_get" (func $get (param i32 i32) (result i32)))
      (import "vc" "storage_put" (func $put (param i32 i32 i32 i32)))
      (import "vc" "scratch_read" (func $scratch (param i32)))
      (import "vc" "output" (func $out (param i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "n")
      (func (export "vc_init")
        (i32.store8 (i32.const 16) (i32.const 10))
        (call $put (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 1)))
      (func (export "vc_call")
        (if (i32.eq (call $get (i32.const 0) (i32.const 1)) (i32.const 1))
          (then (call $scratch (i32.const 16)))
          (else (i32.store8 (i32.const 16) (i32.const 0))))
        (i32.store8 (i32.const 16) (i32.add (i32.load8_u (i32.const 16)) (i32.const 1)))
        (call $put (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 1))
        (call $out (i32.const 16) (i32.const 1))))"#;

    #[test]
    fn a_counter_reads_writes_and_returns() {
        let m = ContractModule::load(&wat::parse_str(COUNTER).unwrap()).unwrap();
        assert!(m.has_init());
        let mut s = Map::default();
        let init = m.run(&input(Entry::Init), 1_000_000, &mut s).unwrap();
        assert_eq!(init.outcome, Ok(vec![]));
        assert_eq!(init.writes.get(&b"n"[..]), Some(&Some(vec![10])));
        s.0.insert(b"n".to_vec(), vec![41]);
        let run = m.run(&input(Entry::Call), 1_000_000, &mut s).unwrap();
        assert_eq!(run.outcome, Ok(vec![42]));
        assert_eq!(run.writes.get(&b"n"[..]), Some(&Some(vec![42])));
        assert_eq!(s.1, 1);
        assert!(run.fuel_used > 2 * HOST_CALL_FUEL);
    }

    #[test]
    fn a_loop_runs_out_of_fuel_and_keeps_nothing() {
        let wat = r#"(module
          (import "vc" "storage_put" (func $put (param i32 i32 i32 i32)))
          (memory (export "memory") 1)
          (func (export "vc_call")
            (call $put (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1))
            (loop $l (br $l))))"#;
        let m = ContractModule::load(&wat::parse_str(wat).unwrap()).unwrap();
        let run = m
            .run(&input(Entry::Call), 100_000, &mut Map::default())
            .unwrap();
        assert_eq!(run.outcome.unwrap_err().code, codes::OUT_OF_FUEL);
        assert!(run.writes.is_empty());
        assert!(run.fuel_used > 99_000 && run.fuel_used <= 100_000);
    }

    #[test]
    fn modules_breaking_the_rules_are_refused() {
        let refused = |wat: &str| ContractModule::load(&wat::parse_str(wat).unwrap()).unwrap_err();
        // Floats.
        let e = refused(
            r#"(module (memory (export "memory") 1)
                (func (export "vc_call") (drop (f32.add (f32.const 1) (f32.const 2)))))"#,
        );
        assert!(matches!(e, LoadError::Invalid(_)), "{e}");
        // An application import a contract does not have.
        let e = refused(
            r#"(module (import "vc" "state_get" (func (param i32 i32 i32 i32) (result i32)))
                (memory (export "memory") 1) (func (export "vc_call")))"#,
        );
        assert!(matches!(e, LoadError::Import { .. }), "{e}");
        // No vc_call.
        let e = refused(r#"(module (memory (export "memory") 1) (func (export "vc_init")))"#);
        assert!(matches!(e, LoadError::Export { .. }), "{e}");
        // vc_init of the wrong type.
        let e = refused(
            r#"(module (memory (export "memory") 1) (func (export "vc_call"))
                (func (export "vc_init") (param i32)))"#,
        );
        assert!(matches!(e, LoadError::Export { .. }), "{e}");
        // Too much memory.
        let e = refused(r#"(module (memory (export "memory") 17) (func (export "vc_call")))"#);
        assert!(matches!(e, LoadError::Resource { .. }), "{e}");
        // A data segment past the memory.
        let e = refused(
            r#"(module (memory (export "memory") 1) (data (i32.const 65535) "ab")
                (func (export "vc_call")))"#,
        );
        assert!(matches!(e, LoadError::Instantiate(_)), "{e}");
    }

    #[test]
    fn growing_memory_past_the_limit_is_out_of_memory() {
        let wat = r#"(module (memory (export "memory") 1)
          (func (export "vc_call") (drop (memory.grow (i32.const 16)))))"#;
        let m = ContractModule::load(&wat::parse_str(wat).unwrap()).unwrap();
        let run = m
            .run(&input(Entry::Call), 100_000, &mut Map::default())
            .unwrap();
        assert_eq!(run.outcome.unwrap_err().code, codes::OUT_OF_MEMORY);
    }

    /// The code `wat`'s `vc_call` ends with.
    fn call_code(wat: &str) -> &'static str {
        let m = ContractModule::load(&wat::parse_str(wat).unwrap()).unwrap();
        let run = m
            .run(&input(Entry::Call), 1_000_000, &mut Map::default())
            .unwrap();
        run.outcome.unwrap_err().code
    }

    #[test]
    fn hostile_calls_end_in_codes() {
        // Endless recursion.
        let code = call_code(
            r#"(module (memory (export "memory") 1)
                (func $f (call $f)) (func (export "vc_call") (call $f)))"#,
        );
        assert_eq!(code, codes::STACK_OVERFLOW);
        // A key outside memory.
        let code = call_code(
            r#"(module (import "vc" "storage_put" (func $put (param i32 i32 i32 i32)))
                (memory (export "memory") 1)
                (func (export "vc_call")
                  (call $put (i32.const 65535) (i32.const 8) (i32.const 0) (i32.const 1))))"#,
        );
        assert_eq!(code, codes::BAD_CALL);
        // An empty key.
        let code = call_code(
            r#"(module (import "vc" "storage_delete" (func $del (param i32 i32)))
                (memory (export "memory") 1)
                (func (export "vc_call") (call $del (i32.const 0) (i32.const 0))))"#,
        );
        assert_eq!(code, codes::BAD_CALL);
        // A 65th key written.
        let code = call_code(
            r#"(module (import "vc" "storage_put" (func $put (param i32 i32 i32 i32)))
                (memory (export "memory") 1)
                (func (export "vc_call") (local $i i32)
                  (loop $l
                    (i32.store (i32.const 0) (local.get $i))
                    (call $put (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 4))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $i) (i32.const 65))))))"#,
        );
        assert_eq!(code, codes::BAD_CALL);
        // A result past the limit.
        let code = call_code(
            r#"(module (import "vc" "output" (func $out (param i32 i32)))
                (memory (export "memory") 1)
                (func (export "vc_call") (call $out (i32.const 0) (i32.const 1025))))"#,
        );
        assert_eq!(code, codes::BAD_CALL);
        // The guest's own code, and a code it may not use.
        let code = call_code(
            r#"(module (import "vc" "reject" (func $r (param i32 i32 i32 i32)))
                (memory (export "memory") 1) (data (i32.const 0) "no-way")
                (func (export "vc_call") (call $r (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0))))"#,
        );
        assert_eq!(code, "no-way");
        let code = call_code(
            r#"(module (import "vc" "reject" (func $r (param i32 i32 i32 i32)))
                (memory (export "memory") 1) (data (i32.const 0) "vm-trap")
                (func (export "vc_call") (call $r (i32.const 0) (i32.const 7) (i32.const 0) (i32.const 0))))"#,
        );
        assert_eq!(code, codes::BAD_CALL);
    }

    #[test]
    fn imports_tables_and_custom_sections() {
        let load = |wat: &str| ContractModule::load(&wat::parse_str(wat).unwrap());
        // An import nobody offers, one of another type, one from another module.
        for import in [
            r#"(import "vc" "nope" (func))"#,
            r#"(import "vc" "storage_get" (func (param i32) (result i32)))"#,
            r#"(import "env" "input_len" (func (result i32)))"#,
        ] {
            let wat = format!(
                r#"(module {import} (memory (export "memory") 1) (func (export "vc_call")))"#
            );
            assert!(
                matches!(load(&wat), Err(LoadError::Import { .. })),
                "{import}"
            );
        }
        // A huge table.
        let e = load(
            r#"(module (table (export "t") 16385 funcref) (memory (export "memory") 1)
                (func (export "vc_call")))"#,
        )
        .unwrap_err();
        assert!(matches!(e, LoadError::Resource { .. }), "{e}");
        // Modules that differ only in a custom section are two codes.
        let a =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "vc_call")))"#)
                .unwrap();
        let mut b = a.clone();
        b.extend_from_slice(&[0, 4, 1, b'x', b'y', b'z']);
        let (ma, mb) = (
            ContractModule::load(&a).unwrap(),
            ContractModule::load(&b).unwrap(),
        );
        assert_ne!(ma.hash(), mb.hash());
    }

    #[test]
    fn the_input_is_what_the_documentation_says() {
        let bytes = input(Entry::Call).encode();
        assert_eq!(&bytes[..3], &[1, 1, 4]);
        assert_eq!(&bytes[3..35], &[7; 32]);
        assert_eq!(&bytes[35..67], &[8; 32]);
        assert_eq!(&bytes[67..75], &101u64.to_be_bytes());
        assert_eq!(&bytes[75..79], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&bytes[79..84], &[0, 0, 0, 1, 0x51]);
        assert_eq!(&bytes[84..92], &500u64.to_be_bytes());
        assert_eq!(&bytes[92..99], &[0, 0, 0, 3, b'i', b'n', b'c']);
        assert_eq!(&bytes[99..], &[0, 0, 0, 0]);
    }
}
