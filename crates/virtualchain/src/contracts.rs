//! The contract platform (`vc-contracts`) in the tool: its registry entry (`index --app
//! contracts`, `status`, `serve`), its HTTP collection (`/v1/contracts/{id}`), and `virtualchain
//! contracts deploy | call | show`, the writer side (build, sign, broadcast through Core).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::{Network, Transaction, Txid};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vc_chash::hex;
use vc_contracts::build::{Coin, Writer};
use vc_contracts::{ContractsApp, ContractsConfig};
use vc_engine::{AppSpec, Engine, EngineConfig};
use vc_serve::Extension;
use vc_source::Broadcaster;
use vc_source::wallet::node::{CoreWallet, RateChoice};
use vc_store::{Meta, StateRead, StoreConfig, StoreError, StoredOp, View};

use crate::exit::InputError;
use crate::registry::{CliApp, CreateOptions, Indexer};

/// The contract platform (`vc-contracts`): `--app contracts`.
#[derive(Debug)]
pub struct Contracts;

impl Contracts {
    /// The deployment a database was made for.
    pub fn config(meta: &Meta) -> Result<ContractsConfig> {
        let scheme = vc_chash::Scheme::from_byte(meta.scheme)
            .with_context(|| format!("the database's scheme byte {}", meta.scheme))?;
        Ok(ContractsConfig::from_params(
            meta.first_block,
            scheme,
            &meta.app_params,
        )?)
    }

    /// The deployment `opts` describe: the default pay script and fuel, from `--first-block`
    /// (0 on regtest when not given), under `--scheme` (v2 by default).
    fn deployment(opts: &CreateOptions) -> Result<ContractsConfig> {
        if opts.registry.is_some() || opts.migration.is_some() {
            return Err(InputError::Usage(
                "--registry and --migration-authority are the names app's; the contract \
                 platform takes --first-block and --scheme",
            )
            .into());
        }
        let first = match (opts.first_block, opts.network) {
            (Some(f), _) => f,
            (None, Network::Regtest) => 0,
            (None, _) => {
                return Err(InputError::Usage(
                    "the contract platform needs --first-block outside regtest",
                )
                .into());
            }
        };
        let mut config = ContractsConfig::new(first);
        if let Some(s) = opts.scheme {
            config = config.with_scheme(s);
        }
        Ok(config)
    }
}

fn network_of(meta: &Meta) -> Result<Network> {
    meta.network
        .parse()
        .with_context(|| format!("the database's network {:?}", meta.network))
}

impl CliApp for Contracts {
    fn cli_name(&self) -> &'static str {
        "contracts"
    }

    fn app_name(&self) -> &'static str {
        vc_contracts::APP_NAME
    }

    fn spec(&self, meta: &Meta) -> Result<AppSpec> {
        Ok(Contracts::config(meta)?.spec())
    }

    fn stored_options(&self, meta: &Meta) -> Result<CreateOptions> {
        let config = Contracts::config(meta)?;
        Ok(CreateOptions {
            network: network_of(meta)?,
            first_block: Some(meta.first_block),
            registry: None,
            scheme: Some(config.scheme),
            migration: None,
            module: None,
        })
    }

    fn new_store_config(&self, opts: &CreateOptions) -> Result<StoreConfig> {
        Ok(vc_engine::store_config(
            &Contracts::deployment(opts)?.spec(),
            opts.network,
            vc_engine::DEFAULT_UNDO_WINDOW,
        ))
    }

    fn open_engine(
        &self,
        opts: &CreateOptions,
        db: &Path,
        source: vc_source::Source,
        config: EngineConfig,
    ) -> Result<Box<dyn Indexer>> {
        let app = ContractsApp::new(Contracts::deployment(opts)?, opts.network);
        let engine = Engine::open(app, db, source, config)
            .with_context(|| format!("opening {}", db.display()))?;
        Ok(Box::new(engine))
    }

    fn extension(&self, _meta: &Meta) -> Result<Option<Arc<dyn Extension>>> {
        Ok(Some(Arc::new(ContractsExtension)))
    }

    fn status(&self, meta: &Meta, view: &View) -> Result<Vec<(&'static str, String)>> {
        let config = Contracts::config(meta)?;
        let deployed = view
            .range_raw(vc_contracts::NS_CONTRACTS, None, None)?
            .len();
        Ok(vec![
            ("contracts", deployed.to_string()),
            ("pay script", hex::encode(config.pay_script.as_bytes())),
            (
                "fuel",
                format!(
                    "{} per call, {} per block",
                    config.call_fuel, config.block_fuel
                ),
            ),
        ])
    }

    fn op_json(&self, _meta: &Meta, op: &StoredOp) -> Result<Value> {
        Ok(op_json(op))
    }

    fn decode(&self, tx: &Transaction, _network: Network) -> Result<Value> {
        // The last OP_RETURN output's push, as the legacy carrier rule reads it.
        let payload = tx.output.iter().rev().find_map(|o| {
            o.script_pubkey
                .is_op_return()
                .then(|| o.script_pubkey.instructions().nth(1))
                .flatten()
                .and_then(|i| i.ok())
                .and_then(|i| i.push_bytes().map(|p| p.as_bytes().to_vec()))
                .filter(|p| p.starts_with(vc_contracts::wire::MAGIC))
        });
        let Some(p) = payload else {
            return Err(InputError::Invalid {
                what: "the transaction",
                detail: "no OP_RETURN payload with magic `ct`".into(),
            }
            .into());
        };
        Ok(body_json(
            p.get(2).copied().unwrap_or(0),
            p.get(3..).unwrap_or_default(),
        ))
    }
}

/// An operation's body as JSON.
fn body_json(opcode: u8, body: &[u8]) -> Value {
    use vc_contracts::wire::{CallBody, DeployBody, OP_DEPLOY};
    if opcode == OP_DEPLOY {
        match DeployBody::decode(body) {
            Ok(d) => json!({
                "op": "deploy",
                "envelope_input": d.envelope_input,
                "code_hash": hex::encode(&d.code_hash),
                "args": hex::encode(&d.args),
            }),
            Err(e) => json!({"op": "deploy", "error": e.to_string()}),
        }
    } else {
        match CallBody::decode(body) {
            Ok(c) => json!({
                "op": "call",
                "contract": c.contract.to_string(),
                "method": c.method,
                "args": hex::encode(&c.args),
            }),
            Err(e) => json!({"op": "call", "error": e.to_string()}),
        }
    }
}

/// A stored operation as JSON: its body and its records (hex).
fn op_json(op: &StoredOp) -> Value {
    let mut v = body_json(op.opcode, op.payload.get(3..).unwrap_or_default());
    if let Value::Object(m) = &mut v {
        m.insert(
            "txid".into(),
            Txid::from_byte_array(op.txid).to_string().into(),
        );
        m.insert("vtxindex".into(), op.vtxindex.into());
        m.insert(
            "records".into(),
            op.records
                .iter()
                .map(|r| hex::encode(r))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    v
}

/// `/v1/contracts/{id}`: a contract's record and its whole storage.
#[derive(Debug)]
pub struct ContractsExtension;

impl Extension for ContractsExtension {
    fn collection(&self) -> &'static str {
        "contracts"
    }

    fn staleness(&self) -> Option<u64> {
        None
    }

    fn keys(&self, op: &StoredOp) -> Vec<String> {
        // The contract a deploy makes (its own txid) or a call names.
        let id = if op.opcode == vc_contracts::wire::OP_DEPLOY {
            Some(Txid::from_byte_array(op.txid))
        } else {
            vc_contracts::wire::CallBody::decode(op.payload.get(3..).unwrap_or_default())
                .ok()
                .map(|c| c.contract)
        };
        id.map(|i| vec![i.to_string()]).unwrap_or_default()
    }

    fn lookup(&self, view: &View, key: &str) -> Result<Option<Value>, StoreError> {
        let Ok(id) = key.parse::<Txid>() else {
            return Ok(None);
        };
        contract_json(view, &id)
    }
}

/// A contract and its storage as JSON; `None` if no such contract.
fn contract_json(view: &View, id: &Txid) -> Result<Option<Value>, StoreError> {
    let Some(info) = vc_contracts::contract_info(view, id)? else {
        return Ok(None);
    };
    let storage: Vec<Value> = vc_contracts::storage_entries(view, id)?
        .into_iter()
        .map(|(k, v)| {
            json!({
                "key": hex::encode(&k),
                "value": hex::encode(&v),
                "state_key": hex::encode(&vc_contracts::storage_key(id, &k)),
            })
        })
        .collect();
    Ok(Some(json!({
        "contract": id.to_string(),
        "code_hash": hex::encode(&info.code_hash),
        "height": info.height,
        "deployer": hex::encode(&info.deployer),
        "storage": storage,
    })))
}

/// `virtualchain contracts ...`.
#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// A contract's record and storage as JSON.
    Show {
        /// The contract's id (its deploy's reveal txid).
        contract: Txid,
        /// The database (default: DATA_DIR/NETWORK/contracts.redb).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Deploys a contract: broadcasts the commit transaction, then the reveal that carries
    /// the code in its witness envelope. Prints the contract's id.
    Deploy {
        /// The contract's WebAssembly module.
        #[arg(long, value_name = "FILE")]
        wasm: PathBuf,
        /// The arguments of its `vc_init`, hex.
        #[arg(long, default_value = "")]
        args: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Calls a contract's method.
    Call {
        /// The contract's id.
        contract: Txid,
        /// The method.
        method: String,
        /// The arguments, hex.
        #[arg(long, default_value = "")]
        args: String,
        /// Satoshis to pay the platform's pay script with the call (the amount the contract
        /// sees).
        #[arg(long, default_value_t = 0, value_name = "SAT")]
        amount: u64,
        /// The platform's database, for its pay script (default: the default pay script).
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        send: SendArgs,
    },
}

/// What the writer commands share: the key, the node, the fee.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The writer's key (WIF). Its P2WPKH coins fund the transactions; its P2WPKH script is
    /// the caller.
    #[arg(long)]
    wif: Option<String>,
    /// Bitcoin Core, to find coins and broadcast: core://USER:PASS@HOST:PORT or
    /// core://HOST:PORT?cookie=PATH (default: from the --bitcoin-* options).
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    core: crate::source::CoreArgs,
    /// The fee rate in whole sat/vB (default: the node's estimate, at least its floor).
    #[arg(long, value_name = "SAT_PER_VB")]
    fee_rate: Option<u64>,
    /// Build and sign but do not broadcast; print the raw transactions.
    #[arg(long)]
    dry_run: bool,
}

fn unhex(what: &'static str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|e| {
        InputError::Invalid {
            what,
            detail: format!("not hex: {e}"),
        }
        .into()
    })
}

/// Runs `virtualchain contracts ...`.
pub fn run(cmd: ContractsCommand, globals: &crate::Globals) -> Result<ExitCode> {
    let network = globals.network.unwrap_or(Network::Bitcoin);
    match cmd {
        ContractsCommand::Show { contract, db } => {
            let db = globals.db(db, "contracts")?;
            let (_, store) = crate::registry::open_read_only(&db)?;
            match contract_json(&store.view()?, &contract)? {
                Some(v) => outln!("{}", serde_json::to_string_pretty(&v)?),
                None => {
                    eprintln!("no contract {contract} in {}", db.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        ContractsCommand::Deploy { wasm, args, send } => {
            let code =
                std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            // Refused here rather than on chain, where a refused module costs its fees.
            vc_vm::contract::ContractModule::load(&code)
                .with_context(|| format!("{} is not a valid contract", wasm.display()))?;
            let args = unhex("--args", &args)?;
            let (writer, core, coin, rate) = prepare(&send, network)?;
            let deploy = writer.deploy(&coin, &code, &args, rate)?;
            let contract = deploy.contract();
            if send.dry_run {
                outln!(
                    "{}",
                    hex::encode(&bitcoin::consensus::serialize(&deploy.commit))
                );
                outln!(
                    "{}",
                    hex::encode(&bitcoin::consensus::serialize(&deploy.reveal))
                );
                return Ok(ExitCode::SUCCESS);
            }
            let commit = core.broadcast(&deploy.commit)?;
            let reveal = core.broadcast(&deploy.reveal)?;
            outln!(
                "{}",
                json!({
                    "contract": contract.to_string(),
                    "commit": commit.to_string(),
                    "reveal": reveal.to_string(),
                    "code_hash": hex::encode(&vc_vm::module_hash(&code)),
                })
            );
        }
        ContractsCommand::Call {
            contract,
            method,
            args,
            amount,
            db,
            send,
        } => {
            let args = unhex("--args", &args)?;
            let pay = match db {
                Some(db) => {
                    let (_, store) = crate::registry::open_read_only(&db)?;
                    Contracts::config(store.meta())?.pay_script
                }
                None => vc_contracts::seam::default_pay_script(),
            };
            let (writer, core, coin, rate) = prepare(&send, network)?;
            let tx = writer.call(&coin, contract, &method, &args, amount, &pay, rate)?;
            if send.dry_run {
                outln!("{}", hex::encode(&bitcoin::consensus::serialize(&tx)));
                return Ok(ExitCode::SUCCESS);
            }
            let txid = core.broadcast(&tx)?;
            outln!("{}", json!({"txid": txid.to_string(), "method": method}));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The writer, the node, the coin to spend (the largest spendable one) and the fee rate.
fn prepare(
    send: &SendArgs,
    network: Network,
) -> Result<(Writer, vc_source::core::CoreSource, Coin, u64)> {
    let wif = send
        .wif
        .as_deref()
        .ok_or(InputError::Usage("--wif (or VIRTUALCHAIN_WIF) is required"))?;
    let key = bitcoin::PrivateKey::from_wif(wif).map_err(|e| InputError::Invalid {
        what: "--wif",
        detail: e.to_string(),
    })?;
    let writer = Writer::new(key.inner);
    let core = send
        .core
        .spec(send.source.as_deref(), network)?
        .core(network)?;
    let wallet = CoreWallet::new(&core, writer.script());
    let coins = wallet.coins()?;
    let coin = coins
        .spendable
        .into_iter()
        .max_by_key(|c| (c.sat(), c.outpoint))
        .ok_or_else(|| InputError::Invalid {
            what: "--wif",
            detail: format!(
                "the key's P2WPKH address ({}) has no spendable coin",
                bitcoin::Address::from_script(&writer.script(), network).map_or_else(
                    |_| hex::encode(writer.script().as_bytes()),
                    |a| a.to_string()
                )
            ),
        })?;
    let rate = match send.fee_rate {
        Some(r) => r.max(1),
        None => wallet
            .fee_rate(RateChoice::Estimate(6))?
            .rate
            .sat_per_kvb()
            .div_ceil(1000)
            .max(1),
    };
    Ok((
        writer,
        core,
        Coin {
            outpoint: coin.outpoint,
            txout: coin.txout,
        },
        rate,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_call_transaction_decodes() {
        let writer = Writer::new(bitcoin::secp256k1::SecretKey::from_slice(&[5; 32]).unwrap());
        let coin = Coin {
            outpoint: bitcoin::OutPoint::null(),
            txout: bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(50_000),
                script_pubkey: writer.script(),
            },
        };
        let id = Txid::from_byte_array([4; 32]);
        let pay = vc_contracts::seam::default_pay_script();
        let tx = writer
            .call(&coin, id, "inc", &[1, 2], 600, &pay, 1)
            .unwrap();
        let v = Contracts.decode(&tx, Network::Regtest).unwrap();
        assert_eq!(v["op"], "call");
        assert_eq!(v["contract"], id.to_string());
        assert_eq!(v["method"], "inc");
        assert_eq!(v["args"], "0102");
        // The amount is paid to the pay script, the change to the writer.
        assert_eq!(tx.output[1].script_pubkey, pay);
        assert_eq!(tx.output[1].value.to_sat(), 600);
        assert_eq!(tx.output[2].script_pubkey, writer.script());
        let plain = Transaction {
            output: vec![tx.output[2].clone()],
            ..tx
        };
        assert!(Contracts.decode(&plain, Network::Regtest).is_err());
    }
}
