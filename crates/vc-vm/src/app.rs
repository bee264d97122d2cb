//! [`VmApp`]: the [`Application`] whose hooks run a module.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use bitcoin::Network;
use vc_engine::{AppSpec, Application, BlockInfo, Fail, OpContext, Outcome, Parsed, Reject, State};

use crate::abi::{Hook, Writer};
use crate::codes;
use crate::error::VmFault;
use crate::host::{self, Call, CallFault, Ended};
use crate::module::VmModule;
use crate::warm::Warm;

/// An application whose rules are a WebAssembly module.
///
/// Every hook call starts from the module's initial instance state (nothing in the guest's
/// memory or globals outlives a call: what must persist goes through state; an instance is
/// reused only with a complete reset in between, see `docs/vm.md` section 1), runs the hook with the fuel the
/// manifest grants, and turns every way the call can end into a result of the rules:
///
/// - `vc_parse` rejects, traps or runs out of fuel: the transaction is not an operation;
/// - `vc_prepare` does: every operation of the block is turned away with that code;
/// - `vc_apply` does: the operation is rejected, with nothing it wrote or emitted kept;
/// - `vc_finalize` does: its writes are dropped (it cannot reject), and a warning is logged.
///
/// Fuel: each call gets the manifest's fuel per operation, capped by what is left of the
/// block's budget (fuel per block), which prepare, every apply and finalize draw on; parse,
/// which cannot touch state, draws on its per-operation budget only. Once the block's budget is
/// spent, its remaining operations are rejected with [`codes::BLOCK_FUEL`].
#[derive(Debug)]
pub struct VmApp {
    module: Arc<VmModule>,
    network: Network,
    block_fuel: Cell<u64>,
    fuel_used: Cell<u64>,
    /// A host fault in parse or prepare, which cannot return one: the next apply or finalize
    /// (finalize runs on every block) returns it, so the engine stops and discards the block
    /// instead of keeping a rejection that depended on the machine.
    pending_fault: RefCell<Option<VmFault>>,
    /// The instance calls reuse, reset before each, when the module allows it
    /// (`crate::warm`); empty until the first call and after a call that grew memory.
    warm: RefCell<Option<Warm>>,
}

impl VmApp {
    /// The application running `module`, for a database on `network` (the network is in
    /// every hook's input; addresses are rendered for it).
    pub fn new(module: Arc<VmModule>, network: Network) -> VmApp {
        let block_fuel = module.manifest().fuel_per_block;
        VmApp {
            module,
            network,
            block_fuel: Cell::new(block_fuel),
            fuel_used: Cell::new(0),
            pending_fault: RefCell::new(None),
            warm: RefCell::new(None),
        }
    }

    /// The module.
    pub fn module(&self) -> &Arc<VmModule> {
        &self.module
    }

    /// The fuel every call so far has used, in total (a figure for benchmarks).
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used.get()
    }

    /// Runs `hook`; `in_block` calls draw on the block's budget.
    fn call(
        &self,
        hook: Hook,
        input: Vec<u8>,
        op_count: u32,
        state: Option<&mut State<'_>>,
        in_block: bool,
    ) -> Result<Call, CallFault> {
        let per_op = self.module.manifest().fuel_per_op;
        let fuel = if in_block {
            per_op.min(self.block_fuel.get())
        } else {
            per_op
        };
        let mut warm = self.warm.borrow_mut();
        let mut call = host::run(
            &self.module,
            hook,
            input,
            fuel,
            op_count,
            state,
            Some(&mut warm),
        )?;
        drop(warm);
        self.fuel_used
            .set(self.fuel_used.get().saturating_add(call.fuel_used));
        if in_block {
            let left = self.block_fuel.get().saturating_sub(call.fuel_used);
            self.block_fuel.set(left);
            if matches!(call.ended, Ended::OutOfFuel) && fuel < per_op {
                call.ended =
                    Ended::Rejected(Reject::new(codes::BLOCK_FUEL, "the block's fuel is spent"));
            }
        }
        Ok(call)
    }

    fn out_of_fuel(&self) -> Reject {
        Reject::new(
            codes::OUT_OF_FUEL,
            format!(
                "more than the {} fuel an operation gets",
                self.module.manifest().fuel_per_op
            ),
        )
    }

    fn verdict(&self, ended: Ended) -> Result<(), Reject> {
        match ended {
            Ended::Returned => Ok(()),
            Ended::OutOfFuel => Err(self.out_of_fuel()),
            Ended::Rejected(r) => Err(r),
        }
    }
}

impl VmApp {
    /// Keeps a fault of parse or prepare for the next apply or finalize; the rejection
    /// returned meanwhile never reaches the state, since the block is discarded.
    fn defer(&self, hook: Hook, fault: CallFault) -> Reject {
        let reason = format!("{fault:?}");
        let fault = match fault {
            CallFault::Vm(e) => e,
            CallFault::Store(e) => VmFault::Interpreter {
                hook: hook.export(),
                source: wasmi::Error::new(e.to_string()),
            },
        };
        self.pending_fault.borrow_mut().get_or_insert(fault);
        Reject::new(codes::TRAP, reason)
    }

    /// The fault parse or prepare left, if any.
    fn take_fault(&self) -> Result<(), Fail<VmFault>> {
        match self.pending_fault.borrow_mut().take() {
            Some(fault) => Err(Fail::App(fault)),
            None => Ok(()),
        }
    }
}

fn fail(fault: CallFault) -> Fail<VmFault> {
    match fault {
        CallFault::Store(e) => Fail::Store(e),
        CallFault::Vm(e) => Fail::App(e),
    }
}

/// Writes a call's buffered changes into the state.
fn flush(state: &mut State<'_>, call: Call) -> Result<(), Fail<VmFault>> {
    for ((ns, key), value) in call.host.writes {
        match value {
            Some(v) => state.raw().put_raw(&ns, &key, v)?,
            None => state.raw().delete_raw(&ns, &key),
        }
    }
    for record in call.host.records {
        state.emit(record);
    }
    Ok(())
}

impl Application for VmApp {
    /// The bytes `vc_parse` wrote with `output`.
    type Op = Vec<u8>;

    type Error = VmFault;

    fn spec(&self) -> AppSpec {
        self.module.params().spec()
    }

    fn parse(&self, op: &OpContext) -> Result<Vec<u8>, Reject> {
        let mut input = Writer::header(Hook::Parse, self.network);
        input.context(op);
        let call = self
            .call(Hook::Parse, input.0, 0, None, false)
            .map_err(|fault| self.defer(Hook::Parse, fault))?;
        let Call { host, ended, .. } = call;
        self.verdict(ended)?;
        Ok(host.output.unwrap_or_default())
    }

    fn prepare(&self, block: &BlockInfo, ops: &[Parsed<Vec<u8>>]) -> Vec<Option<Reject>> {
        // A new block: a new budget (prepare runs once per block, before any apply).
        self.block_fuel.set(self.module.manifest().fuel_per_block);
        if !self.module.has_hook(Hook::Prepare) || ops.is_empty() {
            return vec![None; ops.len()];
        }
        let mut input = Writer::header(Hook::Prepare, self.network);
        input
            .block(block)
            .u32(u32::try_from(ops.len()).unwrap_or(u32::MAX));
        for p in ops {
            input.context(&p.ctx).bytes(&p.op);
        }
        let count = u32::try_from(ops.len()).unwrap_or(u32::MAX);
        let whole = |r: Reject| vec![Some(r); ops.len()];
        let call = match self.call(Hook::Prepare, input.0, count, None, true) {
            Ok(call) => call,
            Err(fault) => return whole(self.defer(Hook::Prepare, fault)),
        };
        match self.verdict(call.ended) {
            Ok(()) => {
                let mut verdicts = call.host.verdicts;
                (0..count).map(|i| verdicts.remove(&i)).collect()
            }
            Err(r) => whole(r),
        }
    }

    fn apply(&mut self, state: &mut State<'_>, op: &Parsed<Vec<u8>>) -> Outcome<VmFault> {
        self.take_fault()?;
        let mut input = Writer::header(Hook::Apply, self.network);
        input.block(state.block()).context(&op.ctx).bytes(&op.op);
        let mut call = self
            .call(Hook::Apply, input.0, 0, Some(state), true)
            .map_err(fail)?;
        let ended = std::mem::replace(&mut call.ended, Ended::Returned);
        self.verdict(ended)?;
        flush(state, call)
    }

    fn finalize(&mut self, state: &mut State<'_>) -> Outcome<VmFault> {
        self.take_fault()?;
        if !self.module.has_hook(Hook::Finalize) {
            return Ok(());
        }
        let mut input = Writer::header(Hook::Finalize, self.network);
        input.block(state.block());
        let mut call = self
            .call(Hook::Finalize, input.0, 0, Some(state), true)
            .map_err(fail)?;
        let ended = std::mem::replace(&mut call.ended, Ended::Returned);
        match self.verdict(ended) {
            Ok(()) => flush(state, call),
            Err(r) => {
                tracing::warn!(
                    height = state.block().height,
                    "vc_finalize failed, its writes are dropped: {r}"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_fault_in_parse_is_returned_by_the_next_hook_with_state() {
        let mut m = crate::Manifest::new("t", "1", b"t", 1);
        m.opcodes = b"a".to_vec();
        let bytes = m.encode();
        let data: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        let wat = format!(
            r#"(module (import "vc" "output" (func $o (param i32 i32)))
              (memory (export "memory") 1) (data (i32.const 0) "{data}")
              (func (export "vc_manifest") (call $o (i32.const 0) (i32.const {})))
              (func (export "vc_parse")) (func (export "vc_apply")))"#,
            bytes.len()
        );
        let module = VmModule::load(&wat::parse_str(wat).unwrap()).unwrap();
        let app = VmApp::new(Arc::new(module), Network::Regtest);
        assert!(app.take_fault().is_ok());
        let fault = VmFault::Interpreter {
            hook: "vc_parse",
            source: wasmi::Error::new("out of system memory"),
        };
        let r = app.defer(Hook::Parse, CallFault::Vm(fault));
        assert_eq!(r.code, codes::TRAP);
        // The fault, not the rejection, is what the engine sees next; once.
        assert!(matches!(
            app.take_fault(),
            Err(Fail::App(VmFault::Interpreter { .. }))
        ));
        assert!(app.take_fault().is_ok());
    }
}
