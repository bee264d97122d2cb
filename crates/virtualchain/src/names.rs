//! `virtualchain names`: queries, decoding, and the writer side (build, sign, broadcast).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bitcoin::hashes::Hash;
use bitcoin::{Address, Network, Transaction};
use clap::{Args, Subcommand};
use serde_json::json;
use vc_chash::hex;
use vc_names::build::{self, Plan, ScriptKind, Wallet};
use vc_names::price::name_price;
use vc_names::wire::{self, NamespaceParams};
use vc_source::Broadcaster;
use vc_source::wallet::node::{ChosenRate, CoreWallet, RateChoice, RateSource};
use vc_source::wallet::{FeeChoice, FeeRate, Funded, WalletError};
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
///
/// Coins come from the node: confirmed ones (`scantxoutset`) that no mempool transaction spends,
/// plus the change of the key's own unconfirmed transactions, so consecutive sends chain
/// without waiting for a block. Immature coinbases are skipped. The fee is the node's
/// `estimatesmartfee` rate (never below its relay floor and 1 sat/vB) times the signed
/// transaction's size; every output is checked against the dust limit before anything is sent.
/// Transactions signal replaceability (BIP125), so `--bump TXID` can raise a stuck fee.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The operation (omit it with --bump).
    #[command(subcommand)]
    op: Option<SendOp>,
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
    /// The fee rate in sat/vB (decimals allowed: 1.5), instead of the node's estimate. Refused
    /// below the node's relay floor.
    #[arg(long, global = true, value_name = "SAT_PER_VB", value_parser = parse_fee_rate)]
    fee_rate: Option<FeeRate>,
    /// The confirmation target, in blocks, for the node's fee estimate (estimatesmartfee).
    /// Without an estimate (regtest, a fresh node) the node's floor is paid, and said.
    #[arg(long, global = true, default_value_t = 6)]
    conf_target: u16,
    /// An absolute fee in satoshis, whatever the transaction's size (overrides --fee-rate and
    /// the estimate).
    #[arg(long, global = true, value_name = "SAT", conflicts_with = "fee_rate")]
    fee: Option<u64>,
    /// Burn this many satoshis instead of the price (preorders and renewals). The rules accept
    /// a burn above the price; this is how a price below the dust limit is paid.
    #[arg(long, global = true, value_name = "SAT")]
    burn: Option<u64>,
    /// Replace the key's unconfirmed transaction TXID, still in the node's mempool, by the
    /// same inputs and outputs with a higher fee (at --fee-rate or the estimate, and at least
    /// what BIP125 requires), taken from its change. No operation is given with it.
    #[arg(long, global = true, value_name = "TXID")]
    bump: Option<bitcoin::Txid>,
    /// Build and sign but do not broadcast; print the raw transaction.
    #[arg(long, global = true)]
    dry_run: bool,
}

fn parse_fee_rate(s: &str) -> Result<FeeRate, String> {
    FeeRate::parse_sat_per_vb(s)
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
    /// Announce that this chain ends at --last-block and that the names move to another
    /// blockchain (docs/migration.md). Sent on the current chain by the deployment's migration
    /// authority (--wif).
    MigrateAnnounce {
        /// H_A: the last block of this chain the names read (this block or a later one).
        #[arg(long, value_name = "HEIGHT")]
        last_block: u64,
        /// The target chain's genesis block hash (as bitcoind shows it).
        #[arg(long, value_name = "BLOCKHASH")]
        genesis: bitcoin::BlockHash,
        /// A block of the target chain that exists now (as bitcoind shows it): it tells two
        /// chains with the same genesis apart. The binding must come after it.
        #[arg(long, value_name = "BLOCKHASH")]
        anchor: bitcoin::BlockHash,
        /// The target chain's network magic, 8 hex digits (default: this network's).
        #[arg(long, value_name = "HEX")]
        magic: Option<String>,
    },
    /// The first step of the binding on the target chain: commit to the frozen state's
    /// consensus hash with a salt. Send it with --source pointing at the target chain; the
    /// database must be frozen at the announced block.
    MigrateCommit {
        /// 64 hex digits, chosen at random and kept for the reveal.
        #[arg(long, value_name = "HEX")]
        salt: String,
    },
    /// The second step: reveal the frozen state's consensus hash and the salt, within the
    /// deployment's window after the commit, on the target chain.
    MigrateReveal {
        /// The salt of the commit.
        #[arg(long, value_name = "HEX")]
        salt: String,
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
                Some(r) => outln!(
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
                outln!("{}", vc_names::cli::name_json(&r, config.network));
            }
        }
        NamesCommand::Decode { tx } => {
            let network = globals.network.unwrap_or(Network::Bitcoin);
            outln!(
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

fn send(mut args: SendArgs) -> Result<()> {
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
    let sign = |coins: &[vc_source::wallet::Coin], outputs: &[bitcoin::TxOut]| {
        wallet.sign_outputs(coins, outputs)
    };
    let connect = || -> Result<vc_source::core::CoreSource> {
        args.core
            .spec(args.source.as_deref(), network)?
            .core(network)
    };
    if let Some(txid) = args.bump {
        if args.op.is_some() {
            return Err(
                InputError::Usage("--bump replaces a sent transaction: give no operation").into(),
            );
        }
        if args.fee.is_some() {
            return Err(InputError::Usage("--bump takes --fee-rate, not --fee").into());
        }
        let core = connect()?;
        let node = CoreWallet::new(&core, wallet.script());
        let chosen = choose_rate(&node, &args)?;
        let (funded, replaced) = node.bump(txid, build::change_index, chosen.rate, sign)?;
        if replaced.descendant_count > 1 {
            eprintln!(
                "note: the replacement also evicts {} unconfirmed transaction(s) that spend {txid}'s outputs; send them again",
                replaced.descendant_count - 1
            );
        }
        return finish(
            &core,
            &funded,
            args.dry_run,
            || json!({"replaces": txid.to_string(), "replaced_fee": replaced.fee}),
        );
    }
    let op = args.op.take().ok_or(InputError::Usage(
        "name an operation (names send preorder ...), or --bump TXID",
    ))?;
    let ch = match view.tip()?.map(|t| t.consensus_hash) {
        Some(ch) => vc_names::wire::payload_consensus_hash(&ch),
        None => bail!("{} has no consensus hash yet: index first", db.display()),
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
    // What a preorder or renewal burns: the price, or --burn when it is at least the price.
    let burn = |price: u64| -> Result<u64> {
        match args.burn {
            Some(b) if b < price => Err(InputError::Invalid {
                what: "--burn",
                detail: format!("{b} sat is below the price, {price} sat: the registration would be rejected as underpaid"),
            }
            .into()),
            Some(b) => Ok(b),
            None => Ok(price),
        }
    };
    let price = |fqn: &str| -> Result<u64> {
        let (label, _) = wire::split_fqn(fqn)?;
        burn(name_price(label, &namespace_params(fqn)?))
    };
    if let Some((opcode, body)) = migration_op(&op, &config, &view, network)? {
        let slots = build::migration_slots(opcode, &body, &wallet.script(), &config)?;
        let core = connect()?;
        let node = CoreWallet::new(&core, wallet.script());
        let fee = match args.fee {
            Some(sat) => FeeChoice::Absolute(sat),
            None => FeeChoice::Rate(choose_rate(&node, &args)?.rate),
        };
        let funded = node.fund(&slots, fee, sign)?;
        return finish(
            &core,
            &funded,
            args.dry_run,
            || json!({"op": format!("migrate-{}", migration_name(opcode, &config)), "body": hex::encode(&body)}),
        );
    }
    let plan: Plan = match op {
        SendOp::NamespacePreorder { id, reveal } => build::plan_namespace_preorder(
            &id,
            &wallet.script(),
            &check(reveal)?,
            ch,
            burn(config.namespace_prices.price(id.len()))?,
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
        SendOp::MigrateAnnounce { .. }
        | SendOp::MigrateCommit { .. }
        | SendOp::MigrateReveal { .. } => {
            unreachable!("migration operations are sent above")
        }
    }
    // A marker deployment's operations also pay its registry.
    .for_deployment(&config);
    let slots = plan.slots(&wallet.script())?;
    // A burn below the dust limit is refused before the node is asked anything.
    vc_source::wallet::check_dust(&slots).map_err(burn_hint)?;
    let core = connect()?;
    let node = CoreWallet::new(&core, wallet.script());
    let fee = match args.fee {
        Some(sat) => FeeChoice::Absolute(sat),
        None => FeeChoice::Rate(choose_rate(&node, &args)?.rate),
    };
    let funded = node.fund(&slots, fee, sign).map_err(burn_hint)?;
    finish(
        &core,
        &funded,
        args.dry_run,
        || json!({"op": plan.op.name(), "fields": serde_json::to_value(&plan.op).unwrap_or_default()}),
    )
}

/// The opcode and body of a migration operation (`None` for the names operations), checked
/// against the deployment's policy and the database's state.
fn migration_op(
    op: &SendOp,
    config: &vc_names::NamesConfig,
    view: &vc_store::View,
    network: Network,
) -> Result<Option<(u8, Vec<u8>)>> {
    use vc_chash::migration::{Announcement, ChainId, Reveal, commitment, encode_commit};
    if !matches!(
        op,
        SendOp::MigrateAnnounce { .. }
            | SendOp::MigrateCommit { .. }
            | SendOp::MigrateReveal { .. }
    ) {
        return Ok(None);
    }
    let policy = config.migration.as_ref().ok_or(InputError::Usage(
        "this deployment declares no migration policy (index it with --migration-authority)",
    ))?;
    let frozen = || -> Result<(Announcement, vc_chash::Hash256)> {
        let (_, ann) = vc_engine::migrate::pending_announcement(view)?
            .context("no migration is announced in this database")?;
        let entry = view.chain_entry(ann.last_height)?.with_context(|| {
            format!(
                "the database has not reached the announced last block {}: index it first",
                ann.last_height
            )
        })?;
        let ch: [u8; 32] = entry
            .consensus_hash
            .as_slice()
            .try_into()
            .context("the deployment's consensus hashes are not 32 bytes")?;
        Ok((ann, vc_chash::Hash256(ch)))
    };
    let salt = |s: &str| unhex::<32>(s);
    Ok(Some(match op {
        SendOp::MigrateAnnounce {
            last_block,
            genesis,
            anchor,
            magic,
        } => {
            let magic = match magic {
                Some(m) => unhex::<4>(m)?,
                None => vc_engine::migrate::network_magic(network),
            };
            let ann = Announcement {
                last_height: *last_block,
                target: ChainId {
                    magic,
                    genesis: vc_chash::Hash256(genesis.to_byte_array()),
                },
                anchor: vc_chash::Hash256(anchor.to_byte_array()),
            };
            (policy.announce, ann.encode())
        }
        SendOp::MigrateCommit { salt: s } => {
            let (ann, ch) = frozen()?;
            (
                policy.commit,
                encode_commit(&commitment(&ann, &ch, &salt(s)?)),
            )
        }
        SendOp::MigrateReveal { salt: s } => {
            let (_, ch) = frozen()?;
            let reveal = Reveal {
                ch_a: ch,
                salt: salt(s)?,
            };
            (policy.reveal, reveal.encode())
        }
        _ => return Ok(None),
    }))
}

/// The name of a migration opcode under the deployment's policy.
fn migration_name(opcode: u8, config: &vc_names::NamesConfig) -> &'static str {
    match &config.migration {
        Some(p) if opcode == p.announce => "announce",
        Some(p) if opcode == p.commit => "commit",
        _ => "reveal",
    }
}

/// The fee rate from --fee-rate or the node's estimate, saying so when the node had none.
fn choose_rate(node: &CoreWallet<'_>, args: &SendArgs) -> Result<ChosenRate> {
    let choice = match args.fee_rate {
        Some(r) => RateChoice::Given(r),
        None => RateChoice::Estimate(args.conf_target),
    };
    let chosen = node.fee_rate(choice)?;
    if let RateSource::Floor { target, reason } = &chosen.source {
        eprintln!(
            "note: the node has no fee estimate for {target} blocks ({reason}): paying its floor, {}",
            chosen.rate
        );
    }
    Ok(chosen)
}

/// A dust burn's error, with what to do about it.
fn burn_hint(e: WalletError) -> anyhow::Error {
    match &e {
        WalletError::Dust(d) if d.kind == "P2PKH" && d.index >= 2 && d.value > 0 => {
            let detail = format!(
                "output {} burns {} sat, below the dust limit of {} sat for its {} script, so no node would relay the transaction; the price is below the dust limit: burn at least {} sat with --burn {} (the rules accept a burn above the price)",
                d.index, d.value, d.threshold, d.kind, d.threshold, d.threshold
            );
            anyhow::Error::new(InputError::Invalid {
                what: "the burn",
                detail,
            })
        }
        _ => e.into(),
    }
}

/// Checks the last things, then prints the raw transaction (dry run) or broadcasts it and
/// prints its txid, fee and rate with `extra` fields.
fn finish(
    core: &vc_source::core::CoreSource,
    funded: &Funded,
    dry_run: bool,
    extra: impl FnOnce() -> serde_json::Value,
) -> Result<()> {
    if let Some(d) = vc_source::wallet::first_dust(&funded.tx.output) {
        return Err(WalletError::Dust(d).into());
    }
    let raw = hex::encode(&bitcoin::consensus::serialize(&funded.tx));
    if dry_run {
        outln!("{raw}");
        return Ok(());
    }
    let txid = core.broadcast(&funded.tx)?;
    let mut v = json!({
        "txid": txid.to_string(),
        "fee": funded.fee,
        "vsize": funded.vsize,
        "fee_rate": funded.rate().to_string(),
        "inputs": funded.inputs.iter().map(|c| json!({
            "outpoint": c.outpoint.to_string(),
            "unconfirmed": c.status == vc_source::wallet::CoinStatus::Unconfirmed,
        })).collect::<Vec<_>>(),
    });
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra()) {
        v.extend(extra);
    }
    outln!("{v}");
    Ok(())
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
