//! The naming rules as a [`vc_engine::Application`].

use std::collections::BTreeMap;

use bitcoin::hashes::{Hash, hash160};
use bitcoin::{Address, Network, PubkeyHash, ScriptBuf, TxOut};
use vc_chash::hex;
use vc_engine::MigrationPolicy;
use vc_engine::prelude::*;
use vc_store::Store;

use crate::price::{NamespacePrices, name_price};
use crate::state::{
    NAMES, NAMESPACE_PREORDERS, NAMESPACE_RECORDS, NameRecord, NamespaceRecord, OWNERS, Owned,
    PREORDERS, Preorder,
};
use crate::wire::{self, NameOp, name_consensus_hash, name_hash16, preorder_hash, split_fqn};

/// The application's name in the database.
pub const APP_NAME: &str = "vc-names";
/// The rules' version.
pub const APP_VERSION: &str = "1";

/// The script that burns fees: P2PKH of twenty zero bytes (`1111111111111111111114oLvT2` on
/// mainnet).
pub fn burn_script() -> ScriptBuf {
    ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([0; 20]))
}

/// The registry script of the marker deployment ([`NamesConfig::with_registry`]): P2PKH of
/// `HASH160("vc-names registry")`, which nobody holds a key for, so the dust paid to it is
/// burnt like the fees.
pub fn default_registry_script() -> ScriptBuf {
    ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(
        hash160::Hash::hash(b"vc-names registry").to_byte_array(),
    ))
}

/// A deployment's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamesConfig {
    /// The Bitcoin network (addresses in preorder hashes are rendered for it).
    pub network: Network,
    /// The first block read.
    pub first_block: u64,
    /// Staleness window for consensus hashes in payloads.
    pub staleness: u64,
    /// Blocks a preorder stays valid.
    pub preorder_expiry: u64,
    /// Blocks a revealed namespace has to become ready.
    pub reveal_expiry: u64,
    /// Namespace prices by id length.
    pub namespace_prices: NamespacePrices,
    /// The marker deployment: when set, every operation must also pay this script (at least
    /// one output, any value; the builders pay [`crate::build::DUST`]), and operations that do
    /// not are never seen. This is what lets the deployment run on an Electrum server (see
    /// `docs/electrum.md`). It is part of consensus: it is stored in the database's
    /// application parameters ([`NamesConfig::params`]), so a database made with one setting
    /// refuses to open with another.
    pub registry: Option<ScriptBuf>,
    /// The consensus-hash scheme: [`Scheme::Legacy`] (BNS's, the default) or, for new
    /// deployments, [`Scheme::V2`] or [`Scheme::V3`] (whose consensus hashes commit the names'
    /// whole state, so that a light client proves a name's current record or its absence).
    /// Stored in the database's metadata like every scheme.
    pub scheme: Scheme,
    /// The migration policy (`docs/migration.md`): who may move the deployment to another
    /// blockchain, and the confirmations and reveal window of the move. Schemes v2 and v3
    /// only. Part of consensus, stored in the application parameters like the registry.
    pub migration: Option<MigrationPolicy>,
}

impl NamesConfig {
    /// BNS's original parameters on mainnet: first block 373601, 6 confirmations, staleness
    /// 24, preorders valid 144 blocks, reveals 52595 blocks.
    pub fn mainnet() -> Self {
        NamesConfig {
            network: Network::Bitcoin,
            first_block: 373_601,
            staleness: 24,
            preorder_expiry: 144,
            reveal_expiry: 52_595,
            namespace_prices: NamespacePrices::MAINNET,
            registry: None,
            scheme: Scheme::Legacy,
            migration: None,
        }
    }

    /// This deployment with the marker rule: every operation pays `registry`.
    pub fn with_registry(self, registry: ScriptBuf) -> Self {
        NamesConfig {
            registry: Some(registry),
            ..self
        }
    }

    /// A regtest deployment from `first_block`: the mainnet rules with namespace prices
    /// divided by 100,000.
    pub fn regtest(first_block: u64) -> Self {
        NamesConfig {
            network: Network::Regtest,
            first_block,
            namespace_prices: NamespacePrices::REGTEST,
            ..NamesConfig::mainnet()
        }
    }

    /// The deployment on `network`: [`NamesConfig::mainnet`] on Bitcoin, the
    /// [`NamesConfig::regtest`] rules (from block 1) elsewhere; `first_block` overrides the
    /// first block, and `registry` makes it a marker deployment.
    pub fn deployment(
        network: Network,
        first_block: Option<u64>,
        registry: Option<ScriptBuf>,
    ) -> Self {
        let base = if network == Network::Bitcoin {
            NamesConfig::mainnet()
        } else {
            NamesConfig::regtest(1)
        };
        NamesConfig {
            network,
            first_block: first_block.unwrap_or(base.first_block),
            registry,
            ..base
        }
    }

    /// This deployment with a migration policy.
    pub fn with_migration(self, policy: MigrationPolicy) -> Self {
        NamesConfig {
            migration: Some(policy),
            ..self
        }
    }

    /// This deployment under consensus-hash scheme `scheme`.
    pub fn with_scheme(self, scheme: Scheme) -> Self {
        NamesConfig { scheme, ..self }
    }

    /// The application parameters this deployment stores in its database
    /// ([`vc_engine::AppSpec::params`]): empty for the plain deployment; for a marker
    /// deployment, a version byte (1) and then the registry script. With a migration policy,
    /// version 2: `2 || u16(len) || registry script (empty for none) || policy`
    /// ([`MigrationPolicy::encode`]). Everything else the rules depend on follows from the
    /// network and the first block, which the database stores too.
    pub fn params(&self) -> Vec<u8> {
        if let Some(policy) = &self.migration {
            let registry = self.registry.as_ref().map_or(&[][..], |r| r.as_bytes());
            let mut out = vec![PARAMS_VERSION_MIGRATION];
            out.extend_from_slice(
                &u16::try_from(registry.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            out.extend_from_slice(registry);
            out.extend_from_slice(&policy.encode());
            return out;
        }
        match &self.registry {
            None => Vec::new(),
            Some(r) => {
                let mut out = vec![PARAMS_VERSION];
                out.extend_from_slice(r.as_bytes());
                out
            }
        }
    }

    /// The deployment a database was made for, from its metadata: network, first block and
    /// parameters ([`NamesConfig::params`]).
    pub fn from_meta(meta: &vc_store::Meta) -> Result<Self, ParamsError> {
        if meta.app_name != APP_NAME {
            return Err(ParamsError::OtherApp(meta.app_name.clone()));
        }
        if meta.app_version != APP_VERSION {
            return Err(ParamsError::Version(meta.app_version.clone()));
        }
        let network: Network = meta
            .network
            .parse()
            .map_err(|_| ParamsError::Network(meta.network.clone()))?;
        let (registry, migration) = match meta.app_params.split_first() {
            None => (None, None),
            Some((&PARAMS_VERSION, script)) => (Some(ScriptBuf::from_bytes(script.to_vec())), None),
            Some((&PARAMS_VERSION_MIGRATION, rest)) => {
                let bad = || ParamsError::Migration("truncated parameters".into());
                let len = usize::from(u16::from_be_bytes(
                    rest.get(..2)
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(bad)?,
                ));
                let script = rest.get(2..2 + len).ok_or_else(bad)?;
                let policy = MigrationPolicy::decode(rest.get(2 + len..).ok_or_else(bad)?)
                    .map_err(|e| ParamsError::Migration(e.to_string()))?;
                let registry = (!script.is_empty()).then(|| ScriptBuf::from_bytes(script.to_vec()));
                (registry, Some(policy))
            }
            Some((&v, _)) => return Err(ParamsError::ParamsVersion(v)),
        };
        let scheme = Scheme::from_byte(meta.scheme).ok_or(ParamsError::Scheme(meta.scheme))?;
        let config =
            NamesConfig::deployment(network, Some(meta.first_block), registry).with_scheme(scheme);
        Ok(NamesConfig {
            migration,
            ..config
        })
    }
}

/// The encoding version of [`NamesConfig::params`].
const PARAMS_VERSION: u8 = 1;

/// The encoding version of [`NamesConfig::params`] with a migration policy.
const PARAMS_VERSION_MIGRATION: u8 = 2;

/// Why a database's metadata does not describe a names deployment this build runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The database belongs to another application.
    #[error("the database belongs to application {0:?}, not {APP_NAME:?}")]
    OtherApp(String),
    /// Another version of the rules (databases made before the registry moved into the
    /// parameters name it in the version, `1+registry:HEX`: index them again).
    #[error(
        "the database was made for rules version {0:?}; this build runs version {APP_VERSION:?}"
    )]
    Version(String),
    /// The network name is unknown.
    #[error("the database names an unknown network {0:?}")]
    Network(String),
    /// The parameters are in an encoding this build does not know.
    #[error(
        "the database's names parameters have encoding version {0}; this build reads version 1"
    )]
    ParamsVersion(u8),
    /// The scheme byte names no scheme this build knows.
    #[error("the database names an unknown consensus-hash scheme (byte {0})")]
    Scheme(u8),
    /// The migration policy in the parameters does not decode.
    #[error("the database's migration policy: {0}")]
    Migration(String),
}

/// A parsed BNS operation with the principal it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamesOp {
    /// The decoded payload.
    pub op: NameOp,
    /// The sender: the script of the output input 0 spends.
    pub sender: Vec<u8>,
}

/// The BNS-style naming system.
pub struct NamesApp {
    config: NamesConfig,
    spec: AppSpec,
}

impl core::fmt::Debug for NamesApp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NamesApp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What an accepted operation changes.
enum Effect {
    NamespacePreorder([u8; 20], Preorder),
    Reveal {
        preorder: [u8; 20],
        record: NamespaceRecord,
    },
    Ready(NamespaceRecord),
    NamePreorder([u8; 20], Preorder),
    Register {
        preorder: Option<[u8; 20]>,
        previous_owner: Option<Vec<u8>>,
        record: NameRecord,
        paid: u64,
    },
    Change {
        previous_owner: Vec<u8>,
        record: NameRecord,
        matched: Option<[u8; 16]>,
    },
}

/// An owner's change to a name (update, transfer, revoke), stamped with the block and txid.
fn changed(
    owner: &[u8],
    mut record: NameRecord,
    height: u64,
    txid: [u8; 32],
    matched: Option<[u8; 16]>,
) -> Effect {
    record.last_block = height;
    record.last_txid = txid;
    Effect::Change {
        previous_owner: owner.to_vec(),
        record,
        matched,
    }
}

/// A rejection. (A store failure is never one: it passes through `?` as [`Fail::Store`], so a
/// local fault stops the engine instead of changing consensus.)
fn reject(code: &'static str, reason: impl Into<String>) -> Fail<Infallible> {
    Fail::Reject(Reject::new(code, reason))
}

fn owner_key(owner: &[u8], name: &str) -> Vec<u8> {
    let mut key = hash160::Hash::hash(owner).to_byte_array().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn output(ctx: &OpContext, index: usize) -> Option<&TxOut> {
    ctx.outputs.get(index)
}

fn burn_at(ctx: &OpContext, index: usize) -> Option<u64> {
    output(ctx, index)
        .filter(|o| o.script_pubkey == burn_script())
        .map(|o| o.value.to_sat())
}

impl NamesApp {
    /// The naming system with `config`.
    pub fn new(config: NamesConfig) -> Self {
        let mut spec = AppSpec::new(APP_NAME, APP_VERSION, wire::MAGIC, config.first_block)
            .with_params(config.params())
            .with_opcodes(wire::OPCODES)
            .with_carrier(CarrierRule::Legacy)
            .with_payload_limit(wire::PAYLOAD_LIMIT)
            .with_scheme(config.scheme)
            .with_staleness(config.staleness);
        if let Some(registry) = &config.registry {
            spec = spec.with_marker(registry.clone());
        }
        if let Some(policy) = &config.migration {
            spec = spec.with_migration(policy.clone());
        }
        NamesApp { config, spec }
    }

    /// The deployment's parameters.
    pub fn config(&self) -> &NamesConfig {
        &self.config
    }

    fn address(&self, script: &[u8]) -> Option<String> {
        Address::from_script(bitcoin::Script::from_bytes(script), self.config.network)
            .ok()
            .map(|a| a.to_string())
    }

    fn fresh(&self, state: &State<'_>, ch: &[u8; 16]) -> Result<(), Fail<Infallible>> {
        if state
            .fresh_hashes()?
            .iter()
            .any(|(_, c)| wire::payload_consensus_hash(c) == *ch)
        {
            Ok(())
        } else {
            Err(reject(
                "stale-consensus-hash",
                format!(
                    "consensus hash {} is not one of the last {} blocks'",
                    hex::encode(ch),
                    self.config.staleness
                ),
            ))
        }
    }

    fn live_preorder(
        &self,
        state: &State<'_>,
        ns: &Namespace<[u8; 20], Preorder>,
        hash: &[u8; 20],
    ) -> Result<Option<Preorder>, Fail<Infallible>> {
        let height = state.block().height;
        Ok(state
            .get(ns, hash)?
            .filter(|p| height <= p.block.saturating_add(self.config.preorder_expiry)))
    }

    fn namespace_of(
        &self,
        state: &State<'_>,
        fqn: &str,
    ) -> Result<(String, NamespaceRecord), Fail<Infallible>> {
        let (label, ns_id) = split_fqn(fqn).map_err(|e| reject("bad-name", e.to_string()))?;
        let ns = state
            .get(&NAMESPACE_RECORDS, &ns_id.to_owned())?
            .filter(|n| n.ready_block.is_some())
            .ok_or_else(|| {
                reject(
                    "namespace-not-ready",
                    format!("namespace {ns_id} is not ready"),
                )
            })?;
        Ok((label.to_owned(), ns))
    }

    /// The live preorder a reveal or registration of `label` claims: the one whose hash binds
    /// `label`, the sender's script and the address of `target` (output 1).
    fn claimed_preorder(
        &self,
        state: &State<'_>,
        table: &Namespace<[u8; 20], Preorder>,
        label: &str,
        sender: &[u8],
        target: &[u8],
    ) -> Result<([u8; 20], Preorder), Fail<Infallible>> {
        let address = self
            .address(target)
            .ok_or_else(|| reject("bad-address", "output 1 has no address"))?;
        let hash = preorder_hash(label, sender, &address)
            .ok_or_else(|| reject("bad-name", format!("{label} is outside base 40")))?;
        let preorder = self.live_preorder(state, table, &hash)?.ok_or_else(|| {
            reject(
                "no-preorder",
                format!("no live preorder for {label} from this sender to the address of output 1"),
            )
        })?;
        Ok((hash, preorder))
    }

    /// The names `owner` holds, from the owner index.
    fn owned(&self, state: &State<'_>, owner: &[u8]) -> Result<Vec<String>, Fail<Infallible>> {
        let prefix = hash160::Hash::hash(owner).to_byte_array().to_vec();
        let mut end = prefix.clone();
        end.push(0xff);
        end.push(0xff);
        let rows = state.range(&OWNERS, Some(&prefix), Some(&end))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, _)| String::from_utf8(k.get(20..)?.to_vec()).ok())
            .collect())
    }

    /// A live (registered, unexpired, unrevoked) name the sender owns.
    fn owned_live(
        &self,
        state: &State<'_>,
        sender: &[u8],
        name: &str,
    ) -> Result<NameRecord, Fail<Infallible>> {
        let height = state.block().height;
        let record = state
            .get(&NAMES, &name.to_owned())?
            .ok_or_else(|| reject("no-such-name", format!("{name} is not registered")))?;
        let (_, ns) = self.namespace_of(state, name)?;
        if record.expired_at(height, ns.params.lifetime) {
            return Err(reject("expired", format!("{name} has expired")));
        }
        if record.owner != sender {
            return Err(reject(
                "not-owner",
                format!("the sender does not own {name}"),
            ));
        }
        if record.revoked {
            return Err(reject("revoked", format!("{name} is revoked")));
        }
        Ok(record)
    }

    /// Decides an operation: the change it makes, or why it is rejected. Read-only.
    fn evaluate(&self, state: &State<'_>, p: &Parsed<NamesOp>) -> Result<Effect, Fail<Infallible>> {
        let ctx = &p.ctx;
        let sender = &p.op.sender;
        let height = state.block().height;
        let txid = ctx.txid.to_byte_array();
        match &p.op.op {
            NameOp::NamespacePreorder {
                preorder_hash: hash,
                consensus_hash,
            }
            | NameOp::NamePreorder {
                preorder_hash: hash,
                consensus_hash,
            } => {
                let is_name = matches!(p.op.op, NameOp::NamePreorder { .. });
                let table = if is_name {
                    &PREORDERS
                } else {
                    &NAMESPACE_PREORDERS
                };
                self.fresh(state, consensus_hash)?;
                let burn = burn_at(ctx, 2)
                    .ok_or_else(|| reject("no-burn", "output 2 does not pay the burn address"))?;
                if self.live_preorder(state, table, hash)?.is_some() {
                    return Err(reject(
                        "duplicate-preorder",
                        format!(
                            "this {} preorder exists",
                            if is_name { "name" } else { "namespace" }
                        ),
                    ));
                }
                let preorder = Preorder {
                    sender: sender.clone(),
                    block: height,
                    burn,
                    txid,
                };
                Ok(if is_name {
                    Effect::NamePreorder(*hash, preorder)
                } else {
                    Effect::NamespacePreorder(*hash, preorder)
                })
            }
            NameOp::NamespaceReveal {
                namespace_id,
                params,
            } => {
                if params.version != 1 {
                    return Err(reject(
                        "unsupported-version",
                        format!(
                            "namespace version {} (only 1, burn, is implemented)",
                            params.version
                        ),
                    ));
                }
                let revealer = output(ctx, 1)
                    .ok_or_else(|| reject("no-reveal-output", "no output 1"))?
                    .script_pubkey
                    .to_bytes();
                let (hash, preorder) = self.claimed_preorder(
                    state,
                    &NAMESPACE_PREORDERS,
                    namespace_id,
                    sender,
                    &revealer,
                )?;
                let price = self.config.namespace_prices.price(namespace_id.len());
                if preorder.burn < price {
                    return Err(reject(
                        "underpaid",
                        format!(
                            "namespace {namespace_id} costs {price} sat; the preorder burned {}",
                            preorder.burn
                        ),
                    ));
                }
                if let Some(existing) = state.get(&NAMESPACE_RECORDS, namespace_id)? {
                    let lapsed = existing.ready_block.is_none()
                        && height
                            > existing
                                .reveal_block
                                .saturating_add(self.config.reveal_expiry);
                    if !lapsed {
                        return Err(reject(
                            "namespace-exists",
                            format!("namespace {namespace_id} exists"),
                        ));
                    }
                }
                Ok(Effect::Reveal {
                    preorder: hash,
                    record: NamespaceRecord {
                        id: namespace_id.clone(),
                        sender: sender.clone(),
                        revealer,
                        reveal_block: height,
                        ready_block: None,
                        params: params.clone(),
                    },
                })
            }
            NameOp::NamespaceReady { namespace_id } => {
                let mut record = state
                    .get(&NAMESPACE_RECORDS, namespace_id)?
                    .ok_or_else(|| {
                        reject(
                            "no-such-namespace",
                            format!("namespace {namespace_id} is not revealed"),
                        )
                    })?;
                if record.ready_block.is_some() {
                    return Err(reject(
                        "already-ready",
                        format!("namespace {namespace_id} is ready"),
                    ));
                }
                if height
                    > record
                        .reveal_block
                        .saturating_add(self.config.reveal_expiry)
                {
                    return Err(reject(
                        "reveal-expired",
                        format!("the reveal of {namespace_id} expired"),
                    ));
                }
                if &record.revealer != sender {
                    return Err(reject(
                        "not-revealer",
                        "only the reveal address may make a namespace ready",
                    ));
                }
                record.ready_block = Some(height);
                Ok(Effect::Ready(record))
            }
            NameOp::NameRegistration { name, value_hash } => {
                let (label, ns) = self.namespace_of(state, name)?;
                let price = name_price(&label, &ns.params);
                let new_owner = output(ctx, 1)
                    .ok_or_else(|| reject("no-owner-output", "no output 1"))?
                    .script_pubkey
                    .to_bytes();
                let existing = state.get(&NAMES, name)?;
                let live = existing
                    .as_ref()
                    .filter(|r| !r.expired_at(height, ns.params.lifetime));
                if let Some(current) = live {
                    // A renewal: the owner pays the price again to the burn output 3.
                    if &current.owner != sender {
                        return Err(reject("name-taken", format!("{name} is registered")));
                    }
                    if current.revoked {
                        return Err(reject("revoked", format!("{name} is revoked")));
                    }
                    let paid = burn_at(ctx, 3).unwrap_or(0);
                    if paid < price {
                        return Err(reject(
                            "underpaid",
                            format!("renewing {name} costs {price} sat; output 3 burns {paid}"),
                        ));
                    }
                    let mut record = current.clone();
                    record.owner = new_owner;
                    record.renewed = height;
                    if value_hash.is_some() {
                        record.value_hash = *value_hash;
                    }
                    record.last_block = height;
                    record.last_txid = txid;
                    return Ok(Effect::Register {
                        preorder: None,
                        previous_owner: Some(current.owner.clone()),
                        record,
                        paid,
                    });
                }
                let (hash, preorder) =
                    self.claimed_preorder(state, &PREORDERS, name, sender, &new_owner)?;
                if preorder.burn < price {
                    return Err(reject(
                        "underpaid",
                        format!(
                            "{name} costs {price} sat; its preorder burned {}",
                            preorder.burn
                        ),
                    ));
                }
                Ok(Effect::Register {
                    preorder: Some(hash),
                    previous_owner: existing.map(|r| r.owner),
                    record: NameRecord {
                        name: name.clone(),
                        owner: new_owner,
                        value_hash: *value_hash,
                        registered: height,
                        renewed: height,
                        revoked: false,
                        last_block: height,
                        last_txid: txid,
                    },
                    paid: preorder.burn,
                })
            }
            NameOp::NameUpdate {
                name_consensus_hash: wanted,
                value_hash,
            } => {
                let fresh = state.fresh_hashes()?;
                let mut found = None;
                'search: for name in self.owned(state, sender)? {
                    for (_, ch) in fresh {
                        let ch = wire::payload_consensus_hash(ch);
                        if name_consensus_hash(&name, &ch) == *wanted {
                            found = Some((name, ch));
                            break 'search;
                        }
                    }
                }
                let (name, ch) = found.ok_or_else(|| {
                    reject(
                        "no-such-name",
                        "no name of the sender matches the update's hash under a fresh consensus hash",
                    )
                })?;
                let mut record = self.owned_live(state, sender, &name)?;
                record.value_hash = Some(*value_hash);
                Ok(changed(sender, record, height, txid, Some(ch)))
            }
            NameOp::NameTransfer {
                keep_data,
                name_hash,
                consensus_hash,
            } => {
                self.fresh(state, consensus_hash)?;
                let recipient = output(ctx, 1)
                    .ok_or_else(|| reject("no-recipient", "no output 1"))?
                    .script_pubkey
                    .to_bytes();
                let name = self
                    .owned(state, sender)?
                    .into_iter()
                    .find(|n| name_hash16(n) == *name_hash)
                    .ok_or_else(|| {
                        reject("no-such-name", "the sender owns no name with this hash")
                    })?;
                let mut record = self.owned_live(state, sender, &name)?;
                record.owner = recipient;
                if !keep_data {
                    record.value_hash = None;
                }
                Ok(changed(sender, record, height, txid, None))
            }
            NameOp::NameRevoke { name } => {
                let mut record = self.owned_live(state, sender, name)?;
                record.revoked = true;
                record.value_hash = None;
                Ok(changed(sender, record, height, txid, None))
            }
        }
    }

    /// The consensus record of an accepted operation: the opcode, then its fields (see the
    /// crate docs for the list per operation), then the sender and the txid.
    fn record(p: &Parsed<NamesOp>, effect: &Effect) -> Record {
        use RecordValue::{Bool, Null, Text, Uint};
        let h = |b: &[u8]| Text(hex::encode(b));
        let mut values = match (&p.op.op, effect) {
            (
                NameOp::NamespacePreorder {
                    preorder_hash,
                    consensus_hash,
                }
                | NameOp::NamePreorder {
                    preorder_hash,
                    consensus_hash,
                },
                Effect::NamespacePreorder(_, pre) | Effect::NamePreorder(_, pre),
            ) => vec![h(preorder_hash), h(consensus_hash), Uint(pre.burn)],
            (NameOp::NamespaceReveal { .. }, Effect::Reveal { record, .. }) => vec![
                Text(record.id.clone()),
                Uint(u64::from(record.params.lifetime)),
                Uint(u64::from(record.params.coeff)),
                Uint(u64::from(record.params.base)),
                h(&record.params.buckets),
                Uint(u64::from(record.params.nonalpha_discount)),
                Uint(u64::from(record.params.no_vowel_discount)),
                Uint(u64::from(record.params.version)),
                h(&record.revealer),
            ],
            (NameOp::NamespaceReady { namespace_id }, _) => vec![Text(namespace_id.clone())],
            (
                NameOp::NameRegistration { .. },
                Effect::Register {
                    record,
                    paid,
                    preorder,
                    ..
                },
            ) => vec![
                Text(record.name.clone()),
                h(&record.owner),
                record.value_hash.map_or(Null, |v| h(&v)),
                Bool(preorder.is_none()),
                Uint(*paid),
            ],
            (
                NameOp::NameUpdate { .. },
                Effect::Change {
                    record, matched, ..
                },
            ) => vec![
                Text(record.name.clone()),
                record.value_hash.map_or(Null, |v| h(&v)),
                matched.map_or(Null, |m| h(&m)),
            ],
            (NameOp::NameTransfer { keep_data, .. }, Effect::Change { record, .. }) => {
                vec![
                    Text(record.name.clone()),
                    h(&record.owner),
                    Bool(*keep_data),
                ]
            }
            (NameOp::NameRevoke { name }, _) => vec![Text(name.clone())],
            _ => Vec::new(),
        };
        values.push(h(&p.op.sender));
        values.push(Text(p.ctx.txid.to_string()));
        Record {
            opcode: vec![p.op.op.opcode()],
            values,
        }
    }
}

impl Application for NamesApp {
    type Op = NamesOp;

    type Error = Infallible;

    fn spec(&self) -> AppSpec {
        self.spec.clone()
    }

    fn parse(&self, ctx: &OpContext) -> Result<NamesOp, Reject> {
        if ctx.carrier_vout != 0 {
            return Err(Reject::new(
                "payload-not-first",
                format!(
                    "the payload is in output {}, BNS requires output 0",
                    ctx.carrier_vout
                ),
            ));
        }
        let op = NameOp::decode(ctx.opcode, ctx.body())
            .map_err(|e| Reject::new("malformed", e.to_string()))?;
        let sender = ctx
            .sender()
            .ok_or_else(|| Reject::new("no-sender", "the transaction has no inputs"))?
            .script_pubkey
            .to_bytes();
        Ok(NamesOp { op, sender })
    }

    /// Operations in one block that create or claim the same name, namespace or preorder are
    /// all rejected: no order inside a block decides between them.
    fn prepare(&self, _block: &BlockInfo, ops: &[Parsed<NamesOp>]) -> Vec<Option<Reject>> {
        let claim = |p: &Parsed<NamesOp>| -> Option<Vec<u8>> {
            let (tag, key): (u8, &[u8]) = match &p.op.op {
                NameOp::NamespacePreorder { preorder_hash, .. } => (b'*', preorder_hash),
                NameOp::NamePreorder { preorder_hash, .. } => (b'?', preorder_hash),
                NameOp::NamespaceReveal { namespace_id, .. } => (b'&', namespace_id.as_bytes()),
                NameOp::NameRegistration { name, .. } => (b':', name.as_bytes()),
                _ => return None,
            };
            let mut k = vec![tag];
            k.extend_from_slice(key);
            Some(k)
        };
        let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for p in ops {
            if let Some(k) = claim(p) {
                *counts.entry(k).or_default() += 1;
            }
        }
        ops.iter()
            .map(|p| {
                let k = claim(p)?;
                let n = counts.get(&k).copied().unwrap_or(0);
                (n > 1).then(|| {
                    Reject::new(
                        "collision",
                        format!(
                            "{} operations in this block claim the same {}",
                            n,
                            p.op.op.name()
                        ),
                    )
                })
            })
            .collect()
    }

    fn apply(&mut self, state: &mut State<'_>, p: &Parsed<NamesOp>) -> Outcome<Infallible> {
        // One evaluation decides, and its effect is what gets written.
        let effect = self.evaluate(state, p)?;
        state.emit(Self::record(p, &effect));
        match effect {
            Effect::NamespacePreorder(hash, pre) => state.put(&NAMESPACE_PREORDERS, &hash, &pre)?,
            Effect::NamePreorder(hash, pre) => state.put(&PREORDERS, &hash, &pre)?,
            Effect::Reveal { preorder, record } => {
                state.delete(&NAMESPACE_PREORDERS, &preorder);
                state.put(&NAMESPACE_RECORDS, &record.id.clone(), &record)?;
            }
            Effect::Ready(record) => state.put(&NAMESPACE_RECORDS, &record.id.clone(), &record)?,
            Effect::Register {
                preorder,
                previous_owner,
                record,
                ..
            } => {
                if let Some(hash) = preorder {
                    state.delete(&PREORDERS, &hash);
                }
                if let Some(prev) = previous_owner {
                    state.delete(&OWNERS, &owner_key(&prev, &record.name));
                }
                state.put(&OWNERS, &owner_key(&record.owner, &record.name), &Owned)?;
                state.put(&NAMES, &record.name.clone(), &record)?;
            }
            Effect::Change {
                previous_owner,
                record,
                ..
            } => {
                state.delete(&OWNERS, &owner_key(&previous_owner, &record.name));
                state.put(&OWNERS, &owner_key(&record.owner, &record.name), &Owned)?;
                state.put(&NAMES, &record.name.clone(), &record)?;
            }
        }
        Ok(())
    }
}

/// Read access to a names database for queries (the CLI's `names show`).
pub fn lookup_name(store: &Store, name: &str) -> Result<Option<NameRecord>, StoreError> {
    store.view()?.get(&NAMES, &name.to_owned())
}

/// Every registered name (expired and revoked ones included), in name order.
pub fn all_names(store: &Store) -> Result<Vec<NameRecord>, StoreError> {
    Ok(store
        .view()?
        .range(&NAMES, None, None)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// A namespace's record.
pub fn lookup_namespace(store: &Store, id: &str) -> Result<Option<NamespaceRecord>, StoreError> {
    store.view()?.get(&NAMESPACE_RECORDS, &id.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_database_made_for_a_deployment_rebuilds_it() {
        let dir = tempfile::tempdir().unwrap();
        for config in [
            NamesConfig::regtest(101),
            NamesConfig::regtest(101).with_registry(default_registry_script()),
            NamesConfig::mainnet(),
            NamesConfig::regtest(101)
                .with_scheme(Scheme::V3)
                .with_migration(MigrationPolicy::new(burn_script()).with_window(9)),
            NamesConfig::regtest(101)
                .with_scheme(Scheme::V2)
                .with_registry(default_registry_script())
                .with_migration(MigrationPolicy::new(burn_script()).with_confirmations(2)),
        ] {
            let path = dir.path().join(format!("{}.redb", config.params().len()));
            let app = NamesApp::new(config.clone());
            assert_eq!(app.spec().version, APP_VERSION);
            let store_config = vc_engine::store_config(&app.spec(), config.network, 10);
            drop(Store::open(&path, store_config).unwrap());
            let meta = Store::read_meta(&path).unwrap();
            assert_eq!(meta.app_params, config.params());
            assert_eq!(NamesConfig::from_meta(&meta).unwrap(), config);
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn foreign_metadata_is_refused() {
        let meta = |name: &str, version: &str, params: Vec<u8>| vc_store::Meta {
            schema_version: vc_store::schema::SCHEMA_VERSION,
            app_name: name.into(),
            app_version: version.into(),
            scheme: Scheme::Legacy.to_byte(),
            first_block: 1,
            network: "regtest".into(),
            namespaces: Vec::new(),
            app_params: params,
        };
        assert!(NamesConfig::from_meta(&meta(APP_NAME, "1", vec![])).is_ok());
        assert_eq!(
            NamesConfig::from_meta(&meta("other", "1", vec![])),
            Err(ParamsError::OtherApp("other".into()))
        );
        assert!(matches!(
            NamesConfig::from_meta(&meta(APP_NAME, "1+registry:00", vec![])),
            Err(ParamsError::Version(_))
        ));
        assert_eq!(
            NamesConfig::from_meta(&meta(APP_NAME, "1", vec![9, 1])),
            Err(ParamsError::ParamsVersion(9))
        );
        assert!(matches!(
            NamesConfig::from_meta(&meta(APP_NAME, "1", vec![2, 0, 0, 1])),
            Err(ParamsError::Migration(_))
        ));
    }
}
