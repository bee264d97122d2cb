//! `virtualchain names`: queries, decoding, and the writer side (build, sign, broadcast).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bitcoin::{Address, Network, Transaction};
use clap::{Args, Subcommand};
use serde_json::json;
use vc_chash::{ConsensusHash, hex};
use vc_names::build::{self, Coin, Plan, ScriptKind, Wallet};
use vc_names::price::name_price;
use vc_names::wire::{self, NamespaceParams};
use vc_source::Broadcaster;
use vc_store::StateReadExt;

use crate::exit::InputError;

/// `virtualchain names ...`.
#[derive(Debug, Subcommand)]
pub enum NamesCommand {
    /// A name's record as JSON.
    Show {
        /// The fully qualified name (`foo.test`).
        name: String,
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Every name, one JSON object per line.
    List {
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Decodes a raw transaction's BNS operation as JSON (opcode and every field).
    Decode {
        /// The transaction, hex. Addresses are rendered for --network (default: mainnet).
        tx: String,
    },
    /// Builds, signs and broadcasts an operation.
    Send(Box<SendArgs>),
}

/// `virtualchain names send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The operation.
    #[command(subcommand)]
    op: SendOp,
    /// The sender's key (WIF). Its coins fund the transaction.
    #[arg(long, global = true)]
    wif: Option<String>,
    /// The key's coins are P2PKH (default: P2WPKH).
    #[arg(long, global = true)]
    p2pkh: bool,
    /// Bitcoin Core, to find coins and broadcast: core://USER:PASS@HOST:PORT or
    /// core://HOST:PORT?cookie=PATH (default: from the --bitcoin-* options).
    #[arg(long, global = true)]
    source: Option<String>,
    #[command(flatten)]
    core: crate::source::CoreArgs,
    /// The names database, for the current consensus hash and prices (default:
    /// DATA_DIR/NETWORK/names.redb).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// The fee in satoshis.
    #[arg(long, global = true, default_value_t = 2_000)]
    fee: u64,
    /// Build and sign but do not broadcast; print the raw transaction.
    #[arg(long, global = true)]
    dry_run: bool,
}

/// The operations `names send` builds.
#[derive(Debug, Subcommand)]
enum SendOp {
    /// `*`: preorder a namespace (burns its price).
    NamespacePreorder {
        /// The namespace id.
        id: String,
        /// The address that will reveal it and make it ready.
        #[arg(long)]
        reveal: Address<bitcoin::address::NetworkUnchecked>,
    },
    /// `&`: reveal a preordered namespace.
    NamespaceReveal {
        /// The namespace id.
        id: String,
        /// The reveal address named in the preorder.
        #[arg(long)]
        reveal: Address<bitcoin::address::NetworkUnchecked>,
        /// Blocks a name lives (4294967295: forever).
        #[arg(long)]
        lifetime: u32,
        /// Price coefficient.
        #[arg(long)]
        coeff: u8,
        /// Price base.
        #[arg(long)]
        base: u8,
        /// 16 price exponents (0-15) by name length, comma-separated (6,5,4,3,...).
        #[arg(long, value_delimiter = ',', required = true)]
        buckets: Vec<u8>,
        /// Divisor for names with digits, '-' or '_'.
        #[arg(long, default_value_t = 1)]
        nonalpha_discount: u8,
        /// Divisor for names without vowels.
        #[arg(long, default_value_t = 1)]
        no_vowel_discount: u8,
    },
    /// `!`: make a revealed namespace ready (sent by the reveal address).
    NamespaceReady {
        /// The namespace id.
        id: String,
    },
    /// `?`: preorder a name (burns its price).
    Preorder {
        /// The fully qualified name.
        name: String,
        /// The address that will own it.
        #[arg(long)]
        owner: Address<bitcoin::address::NetworkUnchecked>,
    },
    /// `:`: register a preordered name.
    Register {
        /// The fully qualified name.
        name: String,
        /// The owner address named in the preorder.
        #[arg(long)]
        owner: Address<bitcoin::address::NetworkUnchecked>,
        /// A value hash (40 hex digits).
        #[arg(long)]
        value_hash: Option<String>,
    },
    /// `:` from the owner: renew a name (burns its price again).
    Renew {
        /// The fully qualified name.
        name: String,
    },
    /// `+`: set a name's value hash.
    Update {
        /// The fully qualified name.
        name: String,
        /// The value hash (40 hex digits).
        #[arg(long)]
        value_hash: String,
    },
    /// `>`: transfer a name.
    Transfer {
        /// The fully qualified name.
        name: String,
        /// The recipient.
        #[arg(long)]
        to: Address<bitcoin::address::NetworkUnchecked>,
        /// Drop the value hash.
        #[arg(long)]
        drop_data: bool,
    },
    /// `~`: revoke a name.
    Revoke {
        /// The fully qualified name.
        name: String,
    },
}

fn unhex<const N: usize>(s: &str) -> Result<[u8; N]> {
    let invalid = || InputError::Invalid {
        what: "hex argument",
        detail: format!("{s:?} is not {} hex digits", 2 * N),
    };
    if s.len() != 2 * N {
        return Err(invalid().into());
    }
    hex::decode_array(s).map_err(|_| invalid().into())
}

/// Decodes a raw transaction into the JSON `names decode` prints.
pub fn decode_json(raw_hex: &str, network: Network) -> Result<serde_json::Value> {
    let bytes = hex::decode(raw_hex.trim()).map_err(|e| InputError::Invalid {
        what: "the transaction",
        detail: format!("not hex: {e}"),
    })?;
    let tx: Transaction =
        bitcoin::consensus::deserialize(&bytes).map_err(|e| InputError::Invalid {
            what: "the transaction",
            detail: format!("not a transaction: {e}"),
        })?;
    crate::registry::CliApp::decode(&crate::registry::Names, &tx, network)
}

/// Opens a names database read-only (the query commands never write it) and takes a view.
fn read_names_db(db: &std::path::Path) -> Result<(vc_names::NamesConfig, vc_store::View)> {
    let (app, store) = crate::registry::open_read_only(db)?;
    if app.app_name() != vc_names::app::APP_NAME {
        return Err(InputError::Foreign(format!(
            "{} belongs to application {:?}, not {:?}",
            db.display(),
            store.meta().app_name,
            vc_names::app::APP_NAME
        ))
        .into());
    }
    let config = crate::registry::Names::config(store.meta())?;
    Ok((config, store.view()?))
}

/// Runs `names`.
pub fn run(cmd: NamesCommand, globals: &crate::Globals) -> Result<ExitCode> {
    match cmd {
        NamesCommand::Show { name, db } => {
            let (config, view) = read_names_db(&globals.db(db, "names")?)?;
            match view.get(&vc_names::state::NAMES, &name)? {
                Some(r) => println!(
                    "{}",
                    serde_json::to_string_pretty(&vc_names::cli::name_json(&r, config.network))?
                ),
                None => {
                    eprintln!("{name} is not registered");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        NamesCommand::List { db } => {
            let (config, view) = read_names_db(&globals.db(db, "names")?)?;
            for (_, r) in view.range(&vc_names::state::NAMES, None, None)? {
                println!("{}", vc_names::cli::name_json(&r, config.network));
            }
        }
        NamesCommand::Decode { tx } => {
            let network = globals.network.unwrap_or(Network::Bitcoin);
            println!(
                "{}",
                serde_json::to_string_pretty(&decode_json(&tx, network)?)?
            );
        }
        NamesCommand::Send(mut args) => {
            if args.db.is_none() {
                args.db = Some(globals.db(None, "names")?);
            }
            send(*args)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn send(args: SendArgs) -> Result<()> {
    let db = args.db.as_deref().ok_or(InputError::Usage(
        "--db is required (for the consensus hash and prices)",
    ))?;
    let wif = args
        .wif
        .as_deref()
        .ok_or(InputError::Usage("--wif (or VIRTUALCHAIN_WIF) is required"))?;
    let (config, view) = read_names_db(db)?;
    let network = config.network;
    let kind = if args.p2pkh {
        ScriptKind::P2pkh
    } else {
        ScriptKind::P2wpkh
    };
    let wallet = Wallet::from_wif(wif, kind, network)?;
    let ch = match view.tip()?.map(|t| t.consensus_hash) {
        Some(ConsensusHash::Legacy(ch)) => ch,
        _ => bail!("{} has no consensus hash yet: index first", db.display()),
    };
    let check = |a: Address<bitcoin::address::NetworkUnchecked>| {
        a.require_network(network)
            .with_context(|| format!("the address is not for {network}"))
    };
    let namespace_params = |fqn: &str| -> Result<NamespaceParams> {
        let (_, ns) = wire::split_fqn(fqn)?;
        Ok(view
            .get(&vc_names::state::NAMESPACE_RECORDS, &ns.to_owned())?
            .with_context(|| format!("namespace {ns} is not revealed"))?
            .params)
    };
    let price = |fqn: &str| -> Result<u64> {
        let (label, _) = wire::split_fqn(fqn)?;
        Ok(name_price(label, &namespace_params(fqn)?))
    };
    let plan: Plan = match args.op {
        SendOp::NamespacePreorder { id, reveal } => build::plan_namespace_preorder(
            &id,
            &wallet.script(),
            &check(reveal)?,
            ch,
            config.namespace_prices.price(id.len()),
        )?,
        SendOp::NamespaceReveal {
            id,
            reveal,
            lifetime,
            coeff,
            base,
            buckets,
            nonalpha_discount,
            no_vowel_discount,
        } => {
            let buckets: [u8; 16] = buckets
                .try_into()
                .map_err(|_| InputError::Usage("--buckets needs 16 values"))?;
            if buckets.iter().any(|b| *b > 15) {
                return Err(InputError::Invalid {
                    what: "--buckets",
                    detail: "bucket exponents are 0 to 15".into(),
                }
                .into());
            }
            build::plan_namespace_reveal(
                &id,
                NamespaceParams {
                    lifetime,
                    coeff,
                    base,
                    buckets,
                    nonalpha_discount: nonalpha_discount.min(15),
                    no_vowel_discount: no_vowel_discount.min(15),
                    version: 1,
                },
                &check(reveal)?,
            )?
        }
        SendOp::NamespaceReady { id } => build::plan_namespace_ready(&id)?,
        SendOp::Preorder { name, owner } => {
            build::plan_name_preorder(&name, &wallet.script(), &check(owner)?, ch, price(&name)?)?
        }
        SendOp::Register {
            name,
            owner,
            value_hash,
        } => build::plan_name_register(
            &name,
            &check(owner)?,
            value_hash.as_deref().map(unhex::<20>).transpose()?,
        )?,
        SendOp::Renew { name } => build::plan_name_renew(&name, &wallet.address(), price(&name)?)?,
        SendOp::Update { name, value_hash } => {
            build::plan_name_update(&name, ch, unhex::<20>(&value_hash)?)?
        }
        SendOp::Transfer {
            name,
            to,
            drop_data,
        } => build::plan_name_transfer(&name, &check(to)?, !drop_data, ch)?,
        SendOp::Revoke { name } => build::plan_name_revoke(&name)?,
    }
    // A marker deployment's operations also pay its registry.
    .for_deployment(&config);
    let core = args
        .core
        .spec(args.source.as_deref(), network)?
        .core(network)?;
    let coins = pick_coins(&core.unspent(&wallet.script())?, &plan, args.fee)?;
    let tx = wallet.sign(&plan, &coins, args.fee)?;
    let raw = hex::encode(&bitcoin::consensus::serialize(&tx));
    if args.dry_run {
        println!("{raw}");
        return Ok(());
    }
    let txid = core.broadcast(&tx)?;
    println!(
        "{}",
        json!({"txid": txid.to_string(), "op": plan.op.name(), "fields": serde_json::to_value(&plan.op)?})
    );
    Ok(())
}

/// The largest coins first until they cover the plan, the fee and the change's dust floor.
fn pick_coins(
    utxos: &[(bitcoin::OutPoint, bitcoin::TxOut)],
    plan: &Plan,
    fee: u64,
) -> Result<Vec<Coin>> {
    let need: u64 = plan
        .outputs
        .iter()
        .map(|o| match o {
            build::PlannedOutput::Pay(t) => t.value.to_sat(),
            build::PlannedOutput::Change => 0,
        })
        .sum::<u64>()
        + fee
        + build::DUST;
    let mut sorted: Vec<&(bitcoin::OutPoint, bitcoin::TxOut)> = utxos.iter().collect();
    sorted.sort_by(|a, b| b.1.value.cmp(&a.1.value).then(a.0.cmp(&b.0)));
    let mut coins = Vec::new();
    let mut have = 0u64;
    for (outpoint, txout) in sorted {
        if have >= need {
            break;
        }
        have += txout.value.to_sat();
        coins.push(Coin {
            outpoint: *outpoint,
            txout: txout.clone(),
        });
    }
    if have < need {
        bail!("the key's confirmed coins hold {have} sat; the operation needs {need} sat");
    }
    Ok(coins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_issue_example() {
        let tx = "01000000000101a7ef2b09722ad786c569c0812005a731ce19290bb0a2afc16cb91056c2e4c19e0100000017160014393ffec4f09b38895b8502377693f23c6ae00f19ffffffff0300000000000000000d6a0b69643a666f6f2e746573747c1500000000000017a9144b85301ba8e42bf98472b8ed4939d5f76b98fcea87144d9c290100000017a91431f8968eb1730c83fb58409a9a560a0a0835027f8702483045022100fc82815edf1c0ef0c601cf1e26494626d7b01597be5ab83df025ff1ee67730130220016c4c29d77aadb5ff57c0c9272a43950ca29b84d8adfaed95ac69db90b35d5b012102d341f728783eb93e6fb5921a1ebe9d149e941de31e403cd69afa2f0f1e698e8100000000";
        let v = decode_json(tx, Network::Bitcoin).unwrap();
        assert_eq!(v["opcode"], ":");
        assert_eq!(v["fields"]["op"], "NAME_REGISTRATION");
        assert_eq!(v["fields"]["name"], "foo.test");
        assert_eq!(v["owner"]["index"], 1);
        assert_eq!(
            v["owner"]["script"],
            "a9144b85301ba8e42bf98472b8ed4939d5f76b98fcea87"
        );
        assert_eq!(v["owner"]["address"], "38aL9zNvuZMK5YcwWqTib4D8Gc64q8z6r1");
        assert_eq!(
            v["txid"],
            "b908952b30ccfdfa59985dc1ffdd2a22ef054d20fa253510d2af7797dddee459"
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(decode_json("zz", Network::Bitcoin).is_err());
        assert!(decode_json("00", Network::Bitcoin).is_err());
    }
}
