//! [`ContractsApp`]: the contract platform as a [`vc_engine::Application`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Network, ScriptBuf, Txid};
use sha2::{Digest, Sha256};
use vc_engine::prelude::*;
use vc_engine::{Fail, Outcome, Parsed, Reject};
use vc_store::{StateRead, StoreError};
use vc_vm::contract::{ContractFault, ContractInput, ContractModule, ContractRun, ContractStorage};

use crate::envelope;
use crate::seam::{PayScript, Settlement, default_pay_script};
use crate::wire::{CallBody, DeployBody, MAGIC, OP_CALL, OP_DEPLOY, PAYLOAD_LIMIT};

/// The application's name in a database.
pub const APP_NAME: &str = "contracts";

/// The rules' version.
pub const APP_VERSION: &str = "1";

/// The namespace of deployed contracts: contract id (32 bytes) -> [`ContractInfo`] bytes.
pub const NS_CONTRACTS: &str = "contracts";

/// The namespace of code: SHA-256 (32 bytes) -> the module's bytes.
pub const NS_CODE: &str = "code";

/// The namespace of contract storage: contract id (32 bytes) || the contract's key -> value.
pub const NS_STORAGE: &str = "storage";

/// The default fuel of one deploy's `vc_init` or one call.
pub const CALL_FUEL: u64 = 10_000_000;

/// The default fuel of all the deploys and calls of one block together.
pub const BLOCK_FUEL: u64 = 1_000_000_000;

/// The version byte of the parameters' encoding.
pub const PARAMS_VERSION: u8 = 1;

/// How many loaded modules a node keeps in memory (not consensus: a cache).
const MODULE_CACHE: usize = 32;

/// A deployment of the platform: where it starts, its consensus-hash scheme and its pay
/// script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractsConfig {
    /// The first block read.
    pub first_block: u64,
    /// The consensus-hash scheme (v2 or v3; v3 commits the whole state, so contract storage
    /// can be proven to a light client).
    pub scheme: Scheme,
    /// The pay script: what an operation pays to it is the amount its contract sees.
    pub pay_script: ScriptBuf,
    /// The fuel of one deploy's `vc_init` or one call (1 to 10⁹). Default [`CALL_FUEL`].
    pub call_fuel: u64,
    /// The fuel of a block's deploys and calls together (`call_fuel` to 2·10¹⁰). Default
    /// [`BLOCK_FUEL`].
    pub block_fuel: u64,
}

/// Why stored parameters are not this application's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// Another version or truncated bytes.
    #[error("the contract platform's parameters are not a version-1 encoding")]
    Malformed,
}

impl ContractsConfig {
    /// A deployment from `first_block` with the defaults: scheme v2, the burn pay script
    /// ([`default_pay_script`]).
    pub fn new(first_block: u64) -> Self {
        ContractsConfig {
            first_block,
            scheme: Scheme::V2,
            pay_script: default_pay_script(),
            call_fuel: CALL_FUEL,
            block_fuel: BLOCK_FUEL,
        }
    }

    /// Sets the fuel schedule: per call and per block (clamped to their ranges).
    pub fn with_fuel(mut self, per_call: u64, per_block: u64) -> Self {
        self.call_fuel = per_call.clamp(1, vc_vm::limits::MAX_FUEL_PER_OP);
        self.block_fuel = per_block.clamp(self.call_fuel, vc_vm::limits::MAX_FUEL_PER_BLOCK);
        self
    }

    /// Sets the scheme.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets the pay script.
    pub fn with_pay_script(mut self, script: ScriptBuf) -> Self {
        self.pay_script = script;
        self
    }

    /// The parameters stored in a database: `01`, the call fuel and the block fuel (`u64`
    /// big-endian each), then the pay script as a `u32` big-endian length and its bytes.
    pub fn params(&self) -> Vec<u8> {
        let s = self.pay_script.as_bytes();
        let mut out = vec![PARAMS_VERSION];
        out.extend_from_slice(&self.call_fuel.to_be_bytes());
        out.extend_from_slice(&self.block_fuel.to_be_bytes());
        out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(s);
        out
    }

    /// The deployment a database was made for, from its first block, scheme and parameters.
    pub fn from_params(
        first_block: u64,
        scheme: Scheme,
        params: &[u8],
    ) -> Result<ContractsConfig, ParamsError> {
        let bad = || ParamsError::Malformed;
        let (&[PARAMS_VERSION], rest) = params.split_at_checked(1).ok_or_else(bad)? else {
            return Err(bad());
        };
        let (fuel, rest) = rest.split_at_checked(16).ok_or_else(bad)?;
        let call_fuel = u64::from_be_bytes(fuel[..8].try_into().map_err(|_| bad())?);
        let block_fuel = u64::from_be_bytes(fuel[8..].try_into().map_err(|_| bad())?);
        let (len, script) = rest.split_at_checked(4).ok_or_else(bad)?;
        let len: [u8; 4] = len.try_into().map_err(|_| bad())?;
        if u32::from_be_bytes(len) as usize != script.len() {
            return Err(bad());
        }
        let config = ContractsConfig {
            first_block,
            scheme,
            pay_script: ScriptBuf::from_bytes(script.to_vec()),
            call_fuel,
            block_fuel,
        };
        // Out-of-range fuel is not an encoding `params` makes.
        if config.clone().with_fuel(call_fuel, block_fuel) != config {
            return Err(bad());
        }
        Ok(config)
    }

    /// The application's spec.
    pub fn spec(&self) -> AppSpec {
        AppSpec::new(APP_NAME, APP_VERSION, MAGIC, self.first_block)
            .with_opcodes([OP_DEPLOY, OP_CALL])
            .with_payload_limit(PAYLOAD_LIMIT)
            .with_scheme(self.scheme)
            .with_params(self.params())
            // The code travels in a witness: the source checks each block's witness
            // commitment before the envelope is read.
            .with_witnesses()
    }
}

/// A deployed contract, as stored in [`NS_CONTRACTS`]: `01`, the code's SHA-256 (32 bytes),
/// the deploy's height (`u64`), the deployer's script (`u32` length and bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractInfo {
    /// The code's SHA-256 (its key in [`NS_CODE`]).
    pub code_hash: [u8; 32],
    /// The block of the deploy.
    pub height: u64,
    /// The script the deploy's input 0 spent.
    pub deployer: Vec<u8>,
}

impl ContractInfo {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend_from_slice(&self.code_hash);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(
            &u32::try_from(self.deployer.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.deployer);
        out
    }

    /// From the stored bytes (`None` if they are not an encoding of this version).
    pub fn decode(b: &[u8]) -> Option<ContractInfo> {
        if b.first() != Some(&1) || b.len() < 45 {
            return None;
        }
        let code_hash = b.get(1..33)?.try_into().ok()?;
        let height = u64::from_be_bytes(b.get(33..41)?.try_into().ok()?);
        let len = u32::from_be_bytes(b.get(41..45)?.try_into().ok()?) as usize;
        let deployer = b.get(45..)?;
        (deployer.len() == len).then(|| ContractInfo {
            code_hash,
            height,
            deployer: deployer.to_vec(),
        })
    }
}

/// The key of a contract's storage entry in [`NS_STORAGE`].
pub fn storage_key(contract: &Txid, key: &[u8]) -> Vec<u8> {
    let mut k = contract.to_byte_array().to_vec();
    k.extend_from_slice(key);
    k
}

/// A deployed contract's record, read from any state (a store view, a snapshot).
pub fn contract_info(
    state: &(impl StateRead + ?Sized),
    contract: &Txid,
) -> Result<Option<ContractInfo>, StoreError> {
    Ok(state
        .get_raw(NS_CONTRACTS, &contract.to_byte_array())?
        .and_then(|b| ContractInfo::decode(&b)))
}

/// A value of a contract's storage.
pub fn storage_get(
    state: &(impl StateRead + ?Sized),
    contract: &Txid,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    state.get_raw(NS_STORAGE, &storage_key(contract, key))
}

/// A storage entry: key (without the contract's prefix) and value.
pub type StorageEntry = (Vec<u8>, Vec<u8>);

/// Every entry of a contract's storage, in key order (keys without the contract's prefix).
pub fn storage_entries(
    state: &(impl StateRead + ?Sized),
    contract: &Txid,
) -> Result<Vec<StorageEntry>, StoreError> {
    let start = contract.to_byte_array();
    let end = next_prefix(&start);
    Ok(state
        .range_raw(NS_STORAGE, Some(&start), end.as_deref())?
        .into_iter()
        .map(|(k, v)| (k[32..].to_vec(), v))
        .collect())
}

/// The smallest key after every key starting with `prefix` (`None`: there is none).
fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// A decoded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractOp {
    /// A deploy, with the code its envelope carries.
    Deploy {
        /// The body.
        body: DeployBody,
        /// The code from the witness envelope (not yet checked against the body's hash).
        code: Vec<u8>,
    },
    /// A call.
    Call(CallBody),
}

/// A fault of the platform: the engine stops, nothing committed is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractsError {
    /// The VM failed in a way no contract explains.
    #[error("the contract VM failed")]
    Vm(#[source] ContractFault),
    /// A deployed contract's code is missing from the state (a damaged database).
    #[error("contract {contract} names code {code_hash}, which the state does not hold")]
    MissingCode {
        /// The contract.
        contract: Txid,
        /// Its code's SHA-256, in hex.
        code_hash: String,
    },
}

/// Rejection codes of the platform's own (the VM's are in [`vc_vm::codes`], a contract's own
/// are its own).
pub mod codes {
    /// A body that does not decode (parse).
    pub const MALFORMED: &str = "malformed";
    /// A deploy whose named input carries no envelope (parse).
    pub const NO_ENVELOPE: &str = "no-envelope";
    /// A deploy whose envelope's code does not hash to the body's SHA-256.
    pub const CODE_MISMATCH: &str = "code-mismatch";
    /// A deploy whose module the VM refuses (floats, imports, limits, ...).
    pub const MODULE_REFUSED: &str = "module-refused";
    /// A call to a contract id no deploy made.
    pub const UNKNOWN_CONTRACT: &str = "unknown-contract";
    /// An operation without input 0 (only a coinbase; never on a valid chain).
    pub const NO_CALLER: &str = "no-caller";
}

/// The contract platform: deploys contracts from witness envelopes, runs their calls.
#[derive(Debug)]
pub struct ContractsApp {
    config: ContractsConfig,
    network: Network,
    settlement: Box<dyn Settlement>,
    modules: BTreeMap<[u8; 32], Arc<ContractModule>>,
    block_fuel: Cell<u64>,
    fuel_used: u64,
}

impl ContractsApp {
    /// The platform for `config` on `network`.
    pub fn new(config: ContractsConfig, network: Network) -> Self {
        let settlement = Box::new(PayScript(config.pay_script.clone()));
        let config_block_fuel = config.block_fuel;
        ContractsApp {
            config,
            network,
            settlement,
            modules: BTreeMap::new(),
            block_fuel: Cell::new(config_block_fuel),
            fuel_used: 0,
        }
    }

    /// The platform with another settlement than the pay script of `config` (the seam a
    /// drivechain plugs into, [`crate::seam`]). The settlement is part of the rules: a
    /// deployment that uses another one must say so in its own application name or version,
    /// so that its databases are never mixed with this one's.
    pub fn with_settlement(mut self, settlement: Box<dyn Settlement>) -> Self {
        self.settlement = settlement;
        self
    }

    /// The deployment.
    pub fn config(&self) -> &ContractsConfig {
        &self.config
    }

    /// The fuel every deploy and call so far used, in total (a figure for benchmarks).
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// The module with `hash`, from the cache or loaded from `code`.
    fn module(&mut self, hash: [u8; 32], code: &[u8]) -> Result<Arc<ContractModule>, Reject> {
        if let Some(m) = self.modules.get(&hash) {
            return Ok(m.clone());
        }
        let m = ContractModule::load(code).map_err(|e| {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason.push_str(": ");
                reason.push_str(&s.to_string());
                source = s.source();
            }
            Reject::new(codes::MODULE_REFUSED, reason)
        })?;
        let m = Arc::new(m);
        if self.modules.len() >= MODULE_CACHE {
            self.modules.pop_first();
        }
        self.modules.insert(hash, m.clone());
        Ok(m)
    }

    /// Runs `entry` of `module` for `contract`, drawing on the block's fuel.
    fn run(
        &mut self,
        state: &mut State<'_>,
        module: &ContractModule,
        input: ContractInput,
    ) -> Result<ContractRun, Fail<ContractsError>> {
        let per_call = self.config.call_fuel;
        let fuel = per_call.min(self.block_fuel.get());
        let contract = Txid::from_byte_array(input.contract);
        let mut storage = Scoped { state, contract };
        let mut run = module
            .run(&input, fuel, &mut storage)
            .map_err(|e| match e {
                ContractFault::Store(s) => Fail::Store(s),
                other => Fail::App(ContractsError::Vm(other)),
            })?;
        self.block_fuel
            .set(self.block_fuel.get().saturating_sub(run.fuel_used));
        self.fuel_used = self.fuel_used.saturating_add(run.fuel_used);
        if let Err(r) = &run.outcome
            && r.code == vc_vm::codes::OUT_OF_FUEL
            && fuel < per_call
        {
            run.outcome = Err(Reject::new(
                vc_vm::codes::BLOCK_FUEL,
                "the block's contract fuel is spent",
            ));
        }
        Ok(run)
    }

    fn input(
        &self,
        entry: vc_vm::contract::Entry,
        state: &State<'_>,
        op: &Parsed<ContractOp>,
        contract: Txid,
        method: &str,
        args: &[u8],
    ) -> Result<ContractInput, Reject> {
        let caller = op
            .ctx
            .sender()
            .ok_or_else(|| Reject::new(codes::NO_CALLER, "the operation has no input"))?;
        Ok(ContractInput {
            entry,
            network: self.network,
            contract: contract.to_byte_array(),
            txid: op.ctx.txid.to_byte_array(),
            height: state.block().height,
            time: state.block().time,
            caller: caller.script_pubkey.to_bytes(),
            amount: self.settlement.amount_paid(&op.ctx),
            method: method.as_bytes().to_vec(),
            args: args.to_vec(),
        })
    }

    fn deploy(
        &mut self,
        state: &mut State<'_>,
        op: &Parsed<ContractOp>,
        body: &DeployBody,
        code: &[u8],
    ) -> Outcome<ContractsError> {
        let hash: [u8; 32] = Sha256::digest(code).into();
        if hash != body.code_hash {
            return Err(Reject::new(
                codes::CODE_MISMATCH,
                format!(
                    "the envelope's code hashes to {}, the operation commits {}",
                    vc_chash::hex::encode(&hash),
                    vc_chash::hex::encode(&body.code_hash)
                ),
            )
            .into());
        }
        let module = self.module(hash, code)?;
        let id = op.ctx.txid;
        let input = self.input(vc_vm::contract::Entry::Init, state, op, id, "", &body.args)?;
        let (caller, amount) = (input.caller.clone(), input.amount);
        let run = self.run(state, &module, input)?;
        run.outcome.clone()?;
        if state.raw().get_raw(NS_CODE, &hash)?.is_none() {
            state.raw().put_raw(NS_CODE, &hash, code.to_vec())?;
        }
        let info = ContractInfo {
            code_hash: hash,
            height: state.block().height,
            deployer: caller.clone(),
        };
        state
            .raw()
            .put_raw(NS_CONTRACTS, &id.to_byte_array(), info.encode())?;
        state.emit(
            Record::new("deploy")
                .with(RecordValue::Bytes(id.to_byte_array().to_vec()))
                .with(RecordValue::Bytes(hash.to_vec()))
                .with(RecordValue::Bytes(caller))
                .with(amount)
                .with(RecordValue::Bytes(body.args.clone()))
                .with(run.fuel_used),
        );
        write_back(state, &id, run)
    }

    fn call(
        &mut self,
        state: &mut State<'_>,
        op: &Parsed<ContractOp>,
        body: &CallBody,
    ) -> Outcome<ContractsError> {
        let Some(info) = contract_info(&*state.raw(), &body.contract)? else {
            return Err(Reject::new(
                codes::UNKNOWN_CONTRACT,
                format!("no contract {} is deployed", body.contract),
            )
            .into());
        };
        let module = match self.modules.get(&info.code_hash) {
            Some(m) => m.clone(),
            None => {
                let code = state
                    .raw()
                    .get_raw(NS_CODE, &info.code_hash)?
                    .ok_or_else(|| {
                        Fail::App(ContractsError::MissingCode {
                            contract: body.contract,
                            code_hash: vc_chash::hex::encode(&info.code_hash),
                        })
                    })?;
                self.module(info.code_hash, &code)?
            }
        };
        let input = self.input(
            vc_vm::contract::Entry::Call,
            state,
            op,
            body.contract,
            &body.method,
            &body.args,
        )?;
        let (caller, amount) = (input.caller.clone(), input.amount);
        let run = self.run(state, &module, input)?;
        let result = run.outcome.clone()?;
        state.emit(
            Record::new("call")
                .with(RecordValue::Bytes(body.contract.to_byte_array().to_vec()))
                .with(RecordValue::Text(body.method.clone()))
                .with(RecordValue::Bytes(caller))
                .with(amount)
                .with(RecordValue::Bytes(body.args.clone()))
                .with(RecordValue::Bytes(result))
                .with(run.fuel_used),
        );
        write_back(state, &body.contract, run)
    }
}

/// Applies a returned run's writes to the contract's key space and records each.
fn write_back(state: &mut State<'_>, contract: &Txid, run: ContractRun) -> Outcome<ContractsError> {
    for (key, value) in run.writes {
        let k = storage_key(contract, &key);
        match &value {
            Some(v) => state.raw().put_raw(NS_STORAGE, &k, v.clone())?,
            None => state.raw().delete_raw(NS_STORAGE, &k),
        }
        state.emit(
            Record::new("write")
                .with(RecordValue::Bytes(contract.to_byte_array().to_vec()))
                .with(RecordValue::Bytes(key))
                .with(value.map_or(RecordValue::Null, RecordValue::Bytes)),
        );
    }
    Ok(())
}

/// A contract's view of the state: its own key space only.
struct Scoped<'s, 'a> {
    state: &'s mut State<'a>,
    contract: Txid,
}

impl ContractStorage for Scoped<'_, '_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.state
            .raw()
            .get_raw(NS_STORAGE, &storage_key(&self.contract, key))
    }
}

impl Application for ContractsApp {
    type Op = ContractOp;
    type Error = ContractsError;

    fn spec(&self) -> AppSpec {
        self.config.spec()
    }

    fn parse(&self, op: &OpContext) -> Result<ContractOp, Reject> {
        let malformed = |e: crate::wire::WireError| Reject::new(codes::MALFORMED, e.to_string());
        match op.opcode {
            OP_DEPLOY => {
                let body = DeployBody::decode(op.body()).map_err(malformed)?;
                let i = usize::from(body.envelope_input);
                let code = envelope::extract(op.witnesses.get(i), op.senders.get(i), i)
                    .map_err(|e| Reject::new(codes::NO_ENVELOPE, e.to_string()))?;
                Ok(ContractOp::Deploy { body, code })
            }
            _ => Ok(ContractOp::Call(
                CallBody::decode(op.body()).map_err(malformed)?,
            )),
        }
    }

    fn prepare(&self, _block: &BlockInfo, ops: &[Parsed<ContractOp>]) -> Vec<Option<Reject>> {
        // A new block: a new fuel budget (prepare runs once per block, before any apply).
        self.block_fuel.set(self.config.block_fuel);
        vec![None; ops.len()]
    }

    fn apply(&mut self, state: &mut State<'_>, op: &Parsed<ContractOp>) -> Outcome<ContractsError> {
        match &op.op {
            ContractOp::Deploy { body, code } => self.deploy(state, op, body, code),
            ContractOp::Call(body) => self.call(state, op, body),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parameters_round_trip_and_others_are_refused() {
        let c = ContractsConfig::new(7)
            .with_scheme(Scheme::V3)
            .with_fuel(5_000, 80_000);
        let p = c.params();
        assert_eq!(ContractsConfig::from_params(7, Scheme::V3, &p).unwrap(), c);
        assert!(ContractsConfig::from_params(7, Scheme::V3, &p[..p.len() - 1]).is_err());
        let mut other = p.clone();
        other[0] = 2;
        assert!(ContractsConfig::from_params(7, Scheme::V3, &other).is_err());
        // A block budget below the call budget is not a valid schedule.
        let mut bad = p;
        bad[9..17].copy_from_slice(&1u64.to_be_bytes());
        assert!(ContractsConfig::from_params(7, Scheme::V3, &bad).is_err());
    }

    #[test]
    fn contract_records_round_trip() {
        let i = ContractInfo {
            code_hash: [4; 32],
            height: 9,
            deployer: vec![0x51, 0x20],
        };
        assert_eq!(ContractInfo::decode(&i.encode()), Some(i.clone()));
        assert_eq!(ContractInfo::decode(&i.encode()[..46]), None);
        assert_eq!(next_prefix(&[1, 0xff]), Some(vec![2]));
        assert_eq!(next_prefix(&[0xff]), None);
    }
}
