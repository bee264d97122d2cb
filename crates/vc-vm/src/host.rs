//! The host side of a call: the data a call's store carries, the host functions, and the loop
//! that runs a hook, answers its state reads and turns every way it can end into a result.
//!
//! Host functions cannot borrow the engine's [`State`] (the interpreter wants `'static` data),
//! so writes and records are buffered in the call's [`Host`] and reads that the buffer cannot
//! answer suspend the guest: the host function returns a [`Trap::Need`], the loop reads the
//! state and resumes the guest with the answer. A call's buffered writes and records reach
//! the state only when the hook ends normally, so a trap anywhere leaves no trace.

use std::collections::BTreeMap;

use vc_engine::{Reject, State};
use vc_store::StoreError;
use wasmi::{
    Caller, Error, FuncType, Linker, Memory, StoreLimits, StoreLimitsBuilder, TrapCode, TypedFunc,
    TypedResumableCall, Val, ValType,
};

use crate::abi::{Hook, IMPORT_MODULE, MEMORY_EXPORT};
use crate::codes;
use crate::error::VmFault;
use crate::guest::{
    Buffers, GuestHost, charge, guest_reject, len_i32, link_buffers, put_bytes, read, text, write,
};
use crate::limits::*;
use crate::module::VmModule;
use crate::warm::{Reusable, Warm};

/// A read the guest is suspended on.
#[derive(Clone, Debug)]
pub(crate) enum Need {
    Get {
        ns: String,
        key: Vec<u8>,
    },
    Range {
        ns: String,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
        limit: u32,
    },
    IsFresh(Vec<u8>),
    FreshHashes,
    ConsensusHash(u64),
}

/// How a host function stops the guest.
#[derive(Debug)]
pub(crate) enum Trap {
    /// The guest rejected (or the host rejects it for a bad call).
    Reject(Reject),
    /// A host call's cost did not fit in the fuel left.
    OutOfFuel,
    /// A read the loop answers, then resumes.
    Need(Need),
}

impl core::fmt::Display for Trap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Trap::Reject(r) => write!(f, "{r}"),
            Trap::OutOfFuel => f.write_str("out of fuel in a host call"),
            Trap::Need(n) => write!(f, "suspended on {n:?}"),
        }
    }
}

impl wasmi::errors::HostError for Trap {}

/// What one call's store carries.
#[derive(Debug)]
pub(crate) struct Host {
    hook: Hook,
    pub(crate) limits: StoreLimits,
    pub(crate) memory: Option<Memory>,
    input: Vec<u8>,
    /// What `output` set.
    pub output: Option<Vec<u8>>,
    scratch: Vec<u8>,
    /// Buffered writes: `None` deletes.
    pub writes: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
    /// Emitted records.
    pub records: Vec<vc_codec::record::Record>,
    /// `prepare_reject` verdicts by operation index.
    pub verdicts: BTreeMap<u32, Reject>,
    /// How many operations prepare's input holds.
    pub op_count: u32,
}

impl Host {
    pub(crate) fn new(hook: Hook, input: Vec<u8>, memory_pages: u32) -> Host {
        Host {
            hook,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_pages as usize * PAGE_BYTES as usize)
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
            records: Vec::new(),
            verdicts: BTreeMap::new(),
            op_count: 0,
        }
    }
}

pub(crate) fn reject(code: &'static str, reason: impl Into<String>) -> Error {
    Error::host(Trap::Reject(Reject::new(code, reason)))
}

impl GuestHost for Host {
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
        reject(code, reason)
    }
    fn out_of_fuel() -> Error {
        Error::host(Trap::OutOfFuel)
    }
}

fn namespace(caller: &Caller<'_, Host>, ptr: i32, len: i32) -> Result<String, Error> {
    let raw = read(caller, ptr, len, MAX_NAMESPACE_BYTES, "a namespace name")?;
    if raw.is_empty()
        || !raw
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
    {
        return Err(reject(
            codes::BAD_CALL,
            "a namespace name is 1 to 64 bytes of a-z, 0-9, '-', '_', '.'",
        ));
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn need_state(caller: &Caller<'_, Host>, need: Need) -> Error {
    if caller.data().hook.has_state() {
        Error::host(Trap::Need(need))
    } else {
        reject(
            codes::NO_STATE,
            format!("{} has no state to read", caller.data().hook.export()),
        )
    }
}

/// Refuses a write from a hook without state.
fn no_state_check(caller: &Caller<'_, Host>) -> Result<(), Error> {
    if caller.data().hook.has_state() {
        Ok(())
    } else {
        Err(reject(
            codes::NO_STATE,
            format!("{} has no state to write", caller.data().hook.export()),
        ))
    }
}

fn optional_bytes(
    caller: &Caller<'_, Host>,
    ptr: i32,
    len: i32,
    what: &str,
) -> Result<Option<Vec<u8>>, Error> {
    if len < 0 {
        Ok(None)
    } else {
        read(caller, ptr, len, MAX_KEY_BYTES, what).map(Some)
    }
}

/// One host function: its name and type.
pub(crate) struct Import {
    pub name: &'static str,
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

use ValType::{I32, I64};

/// Every function the host offers, under [`IMPORT_MODULE`].
pub(crate) const IMPORTS: &[Import] = &[
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
        name: "prepare_reject",
        params: &[I32, I32, I32, I32, I32],
        results: &[],
    },
    Import {
        name: "state_get",
        params: &[I32, I32, I32, I32],
        results: &[I32],
    },
    Import {
        name: "state_put",
        params: &[I32, I32, I32, I32, I32, I32],
        results: &[],
    },
    Import {
        name: "state_delete",
        params: &[I32, I32, I32, I32],
        results: &[],
    },
    Import {
        name: "state_range",
        params: &[I32, I32, I32, I32, I32, I32, I32],
        results: &[I32],
    },
    Import {
        name: "emit",
        params: &[I32, I32],
        results: &[],
    },
    Import {
        name: "is_fresh",
        params: &[I32, I32],
        results: &[I32],
    },
    Import {
        name: "fresh_hashes",
        params: &[],
        results: &[I32],
    },
    Import {
        name: "consensus_hash",
        params: &[I64],
        results: &[I32],
    },
    Import {
        name: "log",
        params: &[I32, I32],
        results: &[],
    },
    Import {
        name: "hash",
        params: &[I32, I32, I32, I32],
        results: &[I32],
    },
];

impl Import {
    pub fn ty(&self) -> FuncType {
        FuncType::new(self.params.iter().copied(), self.results.iter().copied())
    }
}

type C<'a> = Caller<'a, Host>;

/// The linker with every host function.
pub(crate) fn linker(engine: &wasmi::Engine) -> Result<Linker<Host>, wasmi::errors::LinkerError> {
    let mut l = Linker::<Host>::new(engine);
    let m = IMPORT_MODULE;
    link_buffers(&mut l, MAX_OUTPUT_BYTES, "the output")?;
    l.func_wrap(
        m,
        "reject",
        |mut c: C<'_>, a: i32, b: i32, d: i32, e: i32| -> Result<(), Error> {
            charge(&mut c, 0)?;
            let r = guest_reject(&c, [a, b, d, e])?;
            Err(Error::host(Trap::Reject(r)))
        },
    )?;
    l.func_wrap(
        m,
        "prepare_reject",
        |mut c: C<'_>, index: i32, a: i32, b: i32, d: i32, e: i32| -> Result<(), Error> {
            charge(&mut c, 0)?;
            if c.data().hook != Hook::Prepare {
                return Err(reject(codes::BAD_CALL, "prepare_reject outside vc_prepare"));
            }
            let index = index as u32;
            if index >= c.data().op_count {
                return Err(reject(
                    codes::BAD_CALL,
                    format!(
                        "prepare_reject of operation {index}, the block has {}",
                        c.data().op_count
                    ),
                ));
            }
            let r = guest_reject(&c, [a, b, d, e])?;
            c.data_mut().verdicts.insert(index, r);
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "state_get",
        |mut c: C<'_>, np: i32, nl: i32, kp: i32, kl: i32| -> Result<i32, Error> {
            let ns = namespace(&c, np, nl)?;
            let key = read(&c, kp, kl, MAX_KEY_BYTES, "a key")?;
            charge(&mut c, key.len())?;
            let k = (ns, key);
            match c.data().writes.get(&k) {
                Some(Some(v)) => {
                    let v = v.clone();
                    let len = len_i32(v.len());
                    c.data_mut().scratch = v;
                    Ok(len)
                }
                Some(None) => Ok(-1),
                None => Err(need_state(&c, Need::Get { ns: k.0, key: k.1 })),
            }
        },
    )?;
    l.func_wrap(
        m,
        "state_put",
        |mut c: C<'_>, np: i32, nl: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> Result<(), Error> {
            no_state_check(&c)?;
            let ns = namespace(&c, np, nl)?;
            let key = read(&c, kp, kl, MAX_KEY_BYTES, "a key")?;
            let value = read(&c, vp, vl, MAX_VALUE_BYTES, "a value")?;
            charge(&mut c, key.len() + value.len())?;
            c.data_mut().writes.insert((ns, key), Some(value));
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "state_delete",
        |mut c: C<'_>, np: i32, nl: i32, kp: i32, kl: i32| -> Result<(), Error> {
            no_state_check(&c)?;
            let ns = namespace(&c, np, nl)?;
            let key = read(&c, kp, kl, MAX_KEY_BYTES, "a key")?;
            charge(&mut c, key.len())?;
            c.data_mut().writes.insert((ns, key), None);
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "state_range",
        |mut c: C<'_>,
         np: i32,
         nl: i32,
         sp: i32,
         sl: i32,
         ep: i32,
         el: i32,
         limit: i32|
         -> Result<i32, Error> {
            let ns = namespace(&c, np, nl)?;
            let start = optional_bytes(&c, sp, sl, "a range start")?;
            let end = optional_bytes(&c, ep, el, "a range end")?;
            if limit <= 0 || limit as u32 > MAX_RANGE_ENTRIES {
                return Err(reject(
                    codes::BAD_CALL,
                    format!("a range limit is 1 to {MAX_RANGE_ENTRIES}, not {limit}"),
                ));
            }
            charge(&mut c, 0)?;
            Err(need_state(
                &c,
                Need::Range {
                    ns,
                    start,
                    end,
                    limit: limit as u32,
                },
            ))
        },
    )?;
    l.func_wrap(
        m,
        "emit",
        |mut c: C<'_>, ptr: i32, len: i32| -> Result<(), Error> {
            if c.data().hook != Hook::Apply {
                return Err(reject(codes::BAD_RECORD, "only vc_apply emits records"));
            }
            let bytes = read(&c, ptr, len, MAX_MESSAGE_BYTES, "a record")?;
            charge(&mut c, bytes.len())?;
            let record = vc_codec::record::decode_v2(&bytes)
                .map_err(|e| reject(codes::BAD_RECORD, format!("not a v2 record: {e}")))?;
            if c.data().records.len() >= MAX_RECORDS_PER_OP {
                return Err(reject(
                    codes::BAD_RECORD,
                    format!("more than {MAX_RECORDS_PER_OP} records"),
                ));
            }
            c.data_mut().records.push(record);
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "is_fresh",
        |mut c: C<'_>, ptr: i32, len: i32| -> Result<i32, Error> {
            let ch = read(&c, ptr, len, 32, "a consensus hash")?;
            charge(&mut c, ch.len())?;
            Err(need_state(&c, Need::IsFresh(ch)))
        },
    )?;
    l.func_wrap(m, "fresh_hashes", |mut c: C<'_>| -> Result<i32, Error> {
        charge(&mut c, 0)?;
        Err(need_state(&c, Need::FreshHashes))
    })?;
    l.func_wrap(
        m,
        "consensus_hash",
        |mut c: C<'_>, height: i64| -> Result<i32, Error> {
            charge(&mut c, 0)?;
            Err(need_state(&c, Need::ConsensusHash(height as u64)))
        },
    )?;
    l.func_wrap(
        m,
        "log",
        |mut c: C<'_>, ptr: i32, len: i32| -> Result<(), Error> {
            let line = text(&c, ptr, len, "a log line")?;
            charge(&mut c, line.len())?;
            tracing::debug!(target: "vc_vm::guest", "{line}");
            Ok(())
        },
    )?;
    l.func_wrap(m, "hash", hash)?;
    Ok(l)
}

/// The `hash` import (`docs/vm.md` section 4): `kind` 0 SHA-256, 1 RIPEMD-160, 2 HASH160
/// (RIPEMD-160 of SHA-256), 3 SHA-256d of the `len` bytes at `ptr`, written at `dst`;
/// returns the digest's length. The hashes a Bitcoin application computes, done natively
/// (as the EVM's precompiles do) instead of in the interpreter, where one 64-byte block costs
/// about 10 000 fuel.
fn hash(mut c: C<'_>, kind: i32, ptr: i32, len: i32, dst: i32) -> Result<i32, Error> {
    use bitcoin::hashes::{Hash, hash160, ripemd160, sha256, sha256d};
    let data = read(&c, ptr, len, MAX_VALUE_BYTES, "hashed bytes")?;
    let left = c.get_fuel()?;
    match left.checked_sub(hash_fuel(data.len())) {
        Some(rest) => c.set_fuel(rest)?,
        None => {
            c.set_fuel(0)?;
            return Err(Error::host(Trap::OutOfFuel));
        }
    }
    let digest: Vec<u8> = match kind {
        0 => sha256::Hash::hash(&data).to_byte_array().to_vec(),
        1 => ripemd160::Hash::hash(&data).to_byte_array().to_vec(),
        2 => hash160::Hash::hash(&data).to_byte_array().to_vec(),
        3 => sha256d::Hash::hash(&data).to_byte_array().to_vec(),
        other => {
            return Err(reject(
                codes::BAD_CALL,
                format!("hash kind {other} is none of 0 to 3"),
            ));
        }
    };
    write(&mut c, dst, &digest)?;
    Ok(len_i32(digest.len()))
}

/// How a call ended for the rules.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The hook returned.
    Returned,
    /// It ran out of the fuel it was given.
    OutOfFuel,
    /// It was rejected (by the guest or for what it did).
    Rejected(Reject),
}

/// A finished call.
#[derive(Debug)]
pub(crate) struct Call {
    pub host: Host,
    pub fuel_used: u64,
    pub ended: Ended,
}

/// Why a call could not be judged at all: the store failed, or the host did.
#[derive(Debug)]
pub(crate) enum CallFault {
    Store(StoreError),
    Vm(VmFault),
}

impl From<StoreError> for CallFault {
    fn from(e: StoreError) -> Self {
        CallFault::Store(e)
    }
}

/// The rejection a wasmi error that ends a call stands for; `None` for the one trap that
/// depends on the machine (the host could not allocate memory the limits allow), which must
/// stop the node rather than make its state differ.
fn classify(err: &Error) -> Option<Ended> {
    classify_rule(err)
}

fn classify_rule(err: &Error) -> Option<Ended> {
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::Reject(r) => Some(Ended::Rejected(r.clone())),
            Trap::OutOfFuel => Some(Ended::OutOfFuel),
            Trap::Need(_) => Some(Ended::Rejected(Reject::new(
                codes::TRAP,
                "unanswered host call",
            ))),
        };
    }
    let code = match err.as_trap_code() {
        Some(TrapCode::OutOfFuel) => return Some(Ended::OutOfFuel),
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
    Some(Ended::Rejected(Reject::new(code, err.to_string())))
}

/// Runs `hook` of `module` on `input` with `fuel`, answering reads from `state`.
///
/// With a `warm` slot and a module whose instances can be reused (`crate::warm`), the call
/// runs in the slot's instance, reset first, and leaves it there for the next call; otherwise
/// (or when the instance cannot be reset) in a fresh instance. Either way the call starts from
/// the module's initial instance state, with the same fuel.
pub(crate) fn run(
    module: &VmModule,
    hook: Hook,
    input: Vec<u8>,
    fuel: u64,
    op_count: u32,
    state: Option<&mut State<'_>>,
    warm: Option<&mut Option<Warm>>,
) -> Result<Call, CallFault> {
    let mut host = Host::new(hook, input, module.manifest_pages());
    host.op_count = op_count;
    if let (Some(slot), Some(reusable)) = (warm, module.reusable()) {
        let ready = match slot.take() {
            Some(mut w) => {
                if w.reset() {
                    Some(w)
                } else {
                    instantiate_warm(module, reusable)
                }
            }
            None => instantiate_warm(module, reusable),
        };
        if let Some(mut w) = ready
            && let Some(func) = w.hook(hook)
        {
            host.memory = Some(w.memory);
            let idle = std::mem::replace(w.store.data_mut(), host);
            w.mark_used();
            let ended = drive(&mut w.store, func, hook, fuel, state);
            let left = w.store.get_fuel().unwrap_or(0);
            let host = std::mem::replace(w.store.data_mut(), idle);
            let ended = ended?;
            *slot = Some(w);
            return Ok(Call {
                fuel_used: fuel.saturating_sub(left),
                host,
                ended,
            });
        }
    }
    run_fresh(module, hook, host, fuel, state)
}

/// A new instance of `reusable`'s module to keep; `None` if instantiating it fails (the call
/// then instantiates the module afresh, and reports the failure as such).
fn instantiate_warm(module: &VmModule, reusable: &Reusable) -> Option<Warm> {
    let idle = Host::new(Hook::Manifest, Vec::new(), module.manifest_pages());
    let mut store = wasmi::Store::new(module.engine(), idle);
    store.limiter(|h| &mut h.limits);
    let instance = module
        .linker()
        .instantiate_and_start(&mut store, module.module())
        .ok()?;
    Warm::new(store, instance, reusable)
}

/// Runs `hook` in a fresh instance of `module`.
fn run_fresh(
    module: &VmModule,
    hook: Hook,
    host: Host,
    fuel: u64,
    state: Option<&mut State<'_>>,
) -> Result<Call, CallFault> {
    let mut store = wasmi::Store::new(module.engine(), host);
    store.limiter(|h| &mut h.limits);
    store.set_fuel(fuel).map_err(|e| fault(hook, e))?;
    let finish = |store: wasmi::Store<Host>, ended: Ended| -> Result<Call, CallFault> {
        let left = store.get_fuel().unwrap_or(0);
        Ok(Call {
            fuel_used: fuel.saturating_sub(left),
            host: store.into_data(),
            ended,
        })
    };
    let instance = match module
        .linker()
        .instantiate_and_start(&mut store, module.module())
    {
        Ok(i) => i,
        Err(e) => {
            let ended = match classify(&e) {
                Some(Ended::OutOfFuel) => Ended::OutOfFuel,
                Some(_) => Ended::Rejected(Reject::new(codes::INSTANTIATE, e.to_string())),
                None => return Err(fault(hook, e)),
            };
            return finish(store, ended);
        }
    };
    let memory = instance.get_memory(&store, MEMORY_EXPORT);
    store.data_mut().memory = memory;
    let func = match instance.get_typed_func::<(), ()>(&store, hook.export()) {
        Ok(f) => f,
        // Checked when the module was loaded.
        Err(e) => return Err(fault(hook, e)),
    };
    let ended = drive(&mut store, func, hook, fuel, state)?;
    finish(store, ended)
}

fn fault(hook: Hook, source: Error) -> CallFault {
    CallFault::Vm(VmFault::Interpreter {
        hook: hook.export(),
        source,
    })
}

/// Calls `func` with `fuel` in `store`'s instance until it ends, answering its reads.
fn drive(
    store: &mut wasmi::Store<Host>,
    func: TypedFunc<(), ()>,
    hook: Hook,
    fuel: u64,
    mut state: Option<&mut State<'_>>,
) -> Result<Ended, CallFault> {
    store.set_fuel(fuel).map_err(|e| fault(hook, e))?;
    let mut call = func.call_resumable(&mut *store, ());
    loop {
        match call {
            Ok(TypedResumableCall::Finished(())) => return Ok(Ended::Returned),
            Ok(TypedResumableCall::OutOfFuel(_)) => return Ok(Ended::OutOfFuel),
            Ok(TypedResumableCall::HostTrap(invocation)) => {
                let need = match invocation.host_error().downcast_ref::<Trap>() {
                    Some(Trap::Need(n)) => n.clone(),
                    _ => match classify(invocation.host_error()) {
                        Some(ended) => return Ok(ended),
                        None => {
                            return Err(fault(
                                hook,
                                Error::new(invocation.host_error().to_string()),
                            ));
                        }
                    },
                };
                let Some(state) = state.as_deref_mut() else {
                    let r = Reject::new(codes::NO_STATE, "no state in this hook");
                    return Ok(Ended::Rejected(r));
                };
                let (ret, scratch) = answer(state, store.data(), need)?;
                let cost = byte_fuel(scratch.len());
                let left = store.get_fuel().map_err(|e| fault(hook, e))?;
                if left < cost {
                    return Ok(Ended::OutOfFuel);
                }
                store.set_fuel(left - cost).map_err(|e| fault(hook, e))?;
                store.data_mut().scratch = scratch;
                call = invocation.resume(&mut *store, &[Val::I32(ret)]);
            }
            Err(e) => {
                return match classify(&e) {
                    Some(ended) => Ok(ended),
                    None => Err(fault(hook, e)),
                };
            }
        }
    }
}

/// Answers a read: the value the host function returns and the new scratch buffer.
fn answer(state: &mut State<'_>, host: &Host, need: Need) -> Result<(i32, Vec<u8>), StoreError> {
    Ok(match need {
        Need::Get { ns, key } => match state.raw().get_raw(&ns, &key)? {
            Some(v) => (len_i32(v.len()), v),
            None => (-1, Vec::new()),
        },
        Need::Range {
            ns,
            start,
            end,
            limit,
        } => {
            let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = state
                .raw()
                .range_raw(&ns, start.as_deref(), end.as_deref())?
                .into_iter()
                .collect();
            let in_range = |k: &[u8]| {
                start.as_deref().is_none_or(|s| k >= s) && end.as_deref().is_none_or(|e| k < e)
            };
            for ((wns, key), value) in &host.writes {
                if *wns != ns || !in_range(key) {
                    continue;
                }
                match value {
                    Some(v) => {
                        entries.insert(key.clone(), v.clone());
                    }
                    None => {
                        entries.remove(key);
                    }
                }
            }
            let taken: Vec<_> = entries.into_iter().take(limit as usize).collect();
            let mut out = Vec::new();
            out.extend_from_slice(&(taken.len() as u32).to_be_bytes());
            for (k, v) in &taken {
                put_bytes(&mut out, k);
                put_bytes(&mut out, v);
            }
            (len_i32(out.len()), out)
        }
        Need::IsFresh(ch) => {
            let fresh = state
                .fresh_hashes()?
                .iter()
                .any(|(_, c)| c.as_bytes() == ch.as_slice());
            (i32::from(fresh), Vec::new())
        }
        Need::FreshHashes => {
            let list = state.fresh_hashes()?;
            let mut out = Vec::new();
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for (h, c) in list {
                out.extend_from_slice(&h.to_be_bytes());
                put_bytes(&mut out, c.as_bytes());
            }
            (len_i32(out.len()), out)
        }
        Need::ConsensusHash(h) => match state.consensus_hash(h)? {
            Some(c) => (len_i32(c.as_bytes().len()), c.as_bytes().to_vec()),
            None => (-1, Vec::new()),
        },
    })
}
