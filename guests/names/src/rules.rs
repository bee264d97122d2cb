//! The naming rules of `crates/vc-names` (`app.rs`, `price.rs`, `state.rs`), rule for rule:
//! the same checks in the same order, the same rejection codes, the same consensus records and
//! the same stored bytes.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use vc_vm_guest::{wire as abi, App, Block, Manifest, OpBytes, OpContext, Reject, Scheme, State};

use crate::codec::{Dec, Enc};
use crate::crypto::{address, hash160, hex, NETWORK_BITCOIN};
use crate::wire::{self, NameOp, NamespaceParams};

/// Revealed namespaces, by id.
const NAMESPACE_RECORDS: &str = "namespaces";
/// Live namespace preorders, by preorder hash.
const NAMESPACE_PREORDERS: &str = "namespace_preorders";
/// Live name preorders, by preorder hash.
const PREORDERS: &str = "preorders";
/// Registered names, by name.
const NAMES: &str = "names";
/// `HASH160(owner script) || name` for every name an owner holds.
const OWNERS: &str = "owners";
/// The stored owner-index marker (`Owned`, a unit struct: the version byte alone).
const OWNED: &[u8] = &[1];

/// Blocks a preorder stays valid.
const PREORDER_EXPIRY: u64 = 144;
/// Blocks a revealed namespace has to become ready.
const REVEAL_EXPIRY: u64 = 52_595;
/// The freshness window of consensus hashes in payloads.
const STALENESS: u64 = 24;
/// The smallest name price, and its unit.
const NAME_PRICE_UNIT: u64 = 100;

/// Namespace prices by id length: mainnet BNS's, and the regtest deployment's (divided by
/// 100,000) on every other network, as `NamesConfig::deployment` chooses.
fn namespace_price(network: u8, len: usize) -> u64 {
    let prices: [u64; 4] = if network == NETWORK_BITCOIN {
        [40_000_000_000, 4_000_000_000, 400_000_000, 40_000_000]
    } else {
        [400_000, 40_000, 4_000, 400]
    };
    match len {
        0 | 1 => prices[0],
        2..=3 => prices[1],
        4..=7 => prices[2],
        _ => prices[3],
    }
}

/// A name's price under its namespace's pricing function (`vc_names::price::name_price`).
fn name_price(name: &str, params: &NamespaceParams) -> u64 {
    let len = name.len().clamp(1, 16);
    let exponent = u32::from(params.buckets[len - 1]);
    let has_vowel = name.bytes().any(|b| b"aeiouy".contains(&b));
    let nonalpha = name
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'-' || b == b'_');
    let mut discount = 1u128;
    if !has_vowel {
        discount = discount.max(u128::from(params.no_vowel_discount));
    }
    if nonalpha {
        discount = discount.max(u128::from(params.nonalpha_discount));
    }
    let price = u128::from(params.coeff)
        .checked_mul(
            u128::from(params.base)
                .checked_pow(exponent)
                .unwrap_or(u128::MAX),
        )
        .and_then(|p| p.checked_mul(u128::from(NAME_PRICE_UNIT)))
        .map(|p| p / discount)
        .unwrap_or(u128::MAX);
    u64::try_from(price)
        .unwrap_or(u64::MAX)
        .max(NAME_PRICE_UNIT)
}

/// A revealed namespace.
#[derive(Clone, Debug)]
struct NamespaceRecord {
    id: String,
    sender: Vec<u8>,
    revealer: Vec<u8>,
    reveal_block: u64,
    ready_block: Option<u64>,
    params: NamespaceParams,
}

/// A preorder.
#[derive(Clone, Debug)]
struct Preorder {
    sender: Vec<u8>,
    block: u64,
    burn: u64,
    txid: [u8; 32],
}

/// A registered name.
#[derive(Clone, Debug)]
struct NameRecord {
    name: String,
    owner: Vec<u8>,
    value_hash: Option<[u8; 20]>,
    registered: u64,
    renewed: u64,
    revoked: bool,
    last_block: u64,
    last_txid: [u8; 32],
}

impl NamespaceRecord {
    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::stored();
        e.bytes(self.id.as_bytes())
            .bytes(&self.sender)
            .bytes(&self.revealer)
            .varint(self.reveal_block);
        match self.ready_block {
            None => e.byte(0),
            Some(b) => e.byte(1).varint(b),
        };
        let p = &self.params;
        e.varint(u64::from(p.lifetime))
            .byte(p.coeff)
            .byte(p.base)
            .array(&p.buckets)
            .byte(p.nonalpha_discount)
            .byte(p.no_vowel_discount)
            .varint(u64::from(p.version));
        e.0
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut d = Dec::stored(bytes)?;
        let r = NamespaceRecord {
            id: d.string()?,
            sender: d.bytes()?,
            revealer: d.bytes()?,
            reveal_block: d.varint()?,
            ready_block: if d.some()? { Some(d.varint()?) } else { None },
            params: NamespaceParams {
                lifetime: u32::try_from(d.varint()?).ok()?,
                coeff: d.byte()?,
                base: d.byte()?,
                buckets: d.array()?,
                nonalpha_discount: d.byte()?,
                no_vowel_discount: d.byte()?,
                version: u16::try_from(d.varint()?).ok()?,
            },
        };
        d.done().then(|| r)
    }
}

impl Preorder {
    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::stored();
        e.bytes(&self.sender)
            .varint(self.block)
            .varint(self.burn)
            .array(&self.txid);
        e.0
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut d = Dec::stored(bytes)?;
        let p = Preorder {
            sender: d.bytes()?,
            block: d.varint()?,
            burn: d.varint()?,
            txid: d.array()?,
        };
        d.done().then(|| p)
    }
}

impl NameRecord {
    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::stored();
        e.bytes(self.name.as_bytes()).bytes(&self.owner);
        match &self.value_hash {
            None => e.byte(0),
            Some(v) => e.byte(1).array(v),
        };
        e.varint(self.registered)
            .varint(self.renewed)
            .byte(u8::from(self.revoked))
            .varint(self.last_block)
            .array(&self.last_txid);
        e.0
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut d = Dec::stored(bytes)?;
        let r = NameRecord {
            name: d.string()?,
            owner: d.bytes()?,
            value_hash: if d.some()? { Some(d.array()?) } else { None },
            registered: d.varint()?,
            renewed: d.varint()?,
            revoked: d.boolean()?,
            last_block: d.varint()?,
            last_txid: d.array()?,
        };
        d.done().then(|| r)
    }

    fn expired_at(&self, height: u64, lifetime: u32) -> bool {
        lifetime != u32::MAX && height >= self.renewed.saturating_add(u64::from(lifetime))
    }
}

/// A parsed operation and its sender (the script input 0 spends).
pub struct NamesOp {
    op: NameOp,
    body: Vec<u8>,
    sender: Vec<u8>,
}

impl OpBytes for NamesOp {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.body.len() + self.sender.len());
        out.push(self.op.opcode());
        abi::put_bytes(&mut out, &self.body);
        abi::put_bytes(&mut out, &self.sender);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = abi::Reader::new(bytes);
        let opcode = r.u8()?;
        let body = r.bytes()?.to_vec();
        let sender = r.bytes()?.to_vec();
        Some(NamesOp {
            op: wire::decode(opcode, &body).ok()?,
            body,
            sender,
        })
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

fn reject(code: &'static str, reason: impl Into<String>) -> Reject {
    Reject::new(code, reason)
}

/// A stored value this module cannot read: never written by these rules.
fn corrupt(ns: &str) -> Reject {
    reject("corrupt-state", format!("a value in {ns} does not decode"))
}

fn owner_key(owner: &[u8], name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(20 + name.len());
    key.extend_from_slice(&hash160(owner));
    key.extend_from_slice(name.as_bytes());
    key
}

/// The script that burns fees: P2PKH of twenty zero bytes.
fn is_burn_script(script: &[u8]) -> bool {
    script.len() == 25
        && script[..3] == [0x76, 0xa9, 0x14]
        && script[3..23].iter().all(|&b| b == 0)
        && script[23..] == [0x88, 0xac]
}

fn burn_at(ctx: &OpContext, index: usize) -> Option<u64> {
    ctx.outputs
        .get(index)
        .filter(|o| is_burn_script(&o.script))
        .map(|o| o.value)
}

/// One evaluation of an operation against the state: read-only.
struct Eval<'s> {
    state: &'s State,
    height: u64,
    network: u8,
    /// The fresh consensus hashes' 16-byte payload forms, nearest first (read once).
    fresh: Option<Vec<[u8; 16]>>,
}

/// Whether the host's list of fresh hashes (`fresh_hashes`: a count, then per hash a `u64`
/// height and the hash as a byte string) has one whose payload form (its first 16 bytes) is
/// `ch`: [`Eval::fresh_list`]'s answer, read in place without building the list.
fn fresh_in(raw: &[u8], ch: &[u8; 16]) -> bool {
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let n = raw.get(..4).map_or(0, be32);
    let mut at = 4usize;
    for _ in 0..n {
        let len = match raw.get(at + 8..at + 12) {
            Some(b) => be32(b) as usize,
            None => return false,
        };
        match raw.get(at + 12..at + 12 + len) {
            Some(hash) if hash.get(..16) == Some(&ch[..]) => return true,
            Some(_) => {}
            None => return false,
        }
        at += 12 + len;
    }
    false
}

impl<'s> Eval<'s> {
    fn fresh_list(&mut self) -> &[[u8; 16]] {
        self.fresh.get_or_insert_with(|| {
            // The host's list (`fresh_hashes`: a count, then per hash a height and the hash
            // as a byte string), read in place: only the 16-byte payload forms are kept.
            let raw = vc_vm_guest::sys::fresh_hashes();
            let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let n = raw.get(..4).map_or(0, be32);
            let mut out = Vec::with_capacity(n.min(64) as usize);
            let mut at = 4usize;
            for _ in 0..n {
                // A u64 height, then the hash as a byte string.
                let len = match raw.get(at + 8..at + 12) {
                    Some(b) => be32(b) as usize,
                    None => break,
                };
                let ch = match raw.get(at + 12..at + 12 + len) {
                    Some(ch) => ch,
                    None => break,
                };
                out.extend(wire::payload_consensus_hash(ch));
                at += 12 + len;
            }
            out
        })
    }

    fn fresh(&mut self, ch: &[u8; 16]) -> Result<(), Reject> {
        let found = match &self.fresh {
            Some(list) => list.iter().any(|c| c == ch),
            None => fresh_in(&vc_vm_guest::sys::fresh_hashes(), ch),
        };
        if found {
            Ok(())
        } else {
            Err(reject(
                "stale-consensus-hash",
                format!(
                    "consensus hash {} is not one of the last {STALENESS} blocks'",
                    hex(ch)
                ),
            ))
        }
    }

    fn live_preorder(&self, table: &str, hash: &[u8; 20]) -> Result<Option<Preorder>, Reject> {
        match self.state.get(table, hash) {
            None => Ok(None),
            Some(v) => {
                let p = Preorder::decode(&v).ok_or_else(|| corrupt(table))?;
                Ok((self.height <= p.block.saturating_add(PREORDER_EXPIRY)).then(|| p))
            }
        }
    }

    fn namespace_record(&self, id: &str) -> Result<Option<NamespaceRecord>, Reject> {
        self.state
            .get(NAMESPACE_RECORDS, id.as_bytes())
            .map(|v| NamespaceRecord::decode(&v).ok_or_else(|| corrupt(NAMESPACE_RECORDS)))
            .transpose()
    }

    fn name_record(&self, name: &str) -> Result<Option<NameRecord>, Reject> {
        self.state
            .get(NAMES, name.as_bytes())
            .map(|v| NameRecord::decode(&v).ok_or_else(|| corrupt(NAMES)))
            .transpose()
    }

    fn namespace_of<'n>(&self, fqn: &'n str) -> Result<(&'n str, NamespaceRecord), Reject> {
        let (label, ns_id) = wire::split_fqn(fqn).map_err(|e| reject("bad-name", e))?;
        let ns = self
            .namespace_record(ns_id)?
            .filter(|n| n.ready_block.is_some())
            .ok_or_else(|| {
                reject(
                    "namespace-not-ready",
                    format!("namespace {ns_id} is not ready"),
                )
            })?;
        Ok((label, ns))
    }

    fn claimed_preorder(
        &self,
        table: &str,
        label: &str,
        sender: &[u8],
        target: &[u8],
    ) -> Result<([u8; 20], Preorder), Reject> {
        let address = address(target, self.network)
            .ok_or_else(|| reject("bad-address", "output 1 has no address"))?;
        let hash = wire::preorder_hash(label, sender, &address)
            .ok_or_else(|| reject("bad-name", format!("{label} is outside base 40")))?;
        let preorder = self.live_preorder(table, &hash)?.ok_or_else(|| {
            reject(
                "no-preorder",
                format!("no live preorder for {label} from this sender to the address of output 1"),
            )
        })?;
        Ok((hash, preorder))
    }

    /// The names `owner` holds, from the owner index, in key order.
    fn owned(&self, owner: &[u8]) -> Vec<String> {
        let prefix = hash160(owner).to_vec();
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff, 0xff]);
        let mut names = Vec::new();
        let mut start = prefix;
        loop {
            let page = self.state.range(OWNERS, Some(&start), Some(&end), PAGE);
            let full = page.len() == PAGE as usize;
            for (k, _) in &page {
                if let Some(name) = k.get(20..).and_then(|n| String::from_utf8(n.to_vec()).ok()) {
                    names.push(name);
                }
            }
            match page.last() {
                Some((k, _)) if full => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return names,
            }
        }
    }

    fn owned_live(&self, sender: &[u8], name: &str) -> Result<NameRecord, Reject> {
        let record = self
            .name_record(name)?
            .ok_or_else(|| reject("no-such-name", format!("{name} is not registered")))?;
        let (_, ns) = self.namespace_of(name)?;
        if record.expired_at(self.height, ns.params.lifetime) {
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

    fn changed(
        &self,
        owner: &[u8],
        mut record: NameRecord,
        txid: [u8; 32],
        matched: Option<[u8; 16]>,
    ) -> Effect {
        record.last_block = self.height;
        record.last_txid = txid;
        Effect::Change {
            previous_owner: owner.to_vec(),
            record,
            matched,
        }
    }

    /// Decides an operation: the change it makes, or why it is rejected.
    fn evaluate(&mut self, ctx: &OpContext, p: &NamesOp) -> Result<Effect, Reject> {
        let sender = &p.sender;
        let height = self.height;
        let txid = ctx.txid;
        match &p.op {
            NameOp::NamespacePreorder {
                preorder_hash: hash,
                consensus_hash,
            }
            | NameOp::NamePreorder {
                preorder_hash: hash,
                consensus_hash,
            } => {
                let is_name = matches!(p.op, NameOp::NamePreorder { .. });
                let table = if is_name {
                    PREORDERS
                } else {
                    NAMESPACE_PREORDERS
                };
                self.fresh(consensus_hash)?;
                let burn = burn_at(ctx, 2)
                    .ok_or_else(|| reject("no-burn", "output 2 does not pay the burn address"))?;
                if self.live_preorder(table, hash)?.is_some() {
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
                let revealer = ctx
                    .outputs
                    .get(1)
                    .ok_or_else(|| reject("no-reveal-output", "no output 1"))?
                    .script
                    .to_vec();
                let (hash, preorder) =
                    self.claimed_preorder(NAMESPACE_PREORDERS, namespace_id, sender, &revealer)?;
                let price = namespace_price(self.network, namespace_id.len());
                if preorder.burn < price {
                    return Err(reject(
                        "underpaid",
                        format!(
                            "namespace {namespace_id} costs {price} sat; the preorder burned {}",
                            preorder.burn
                        ),
                    ));
                }
                if let Some(existing) = self.namespace_record(namespace_id)? {
                    let lapsed = existing.ready_block.is_none()
                        && height > existing.reveal_block.saturating_add(REVEAL_EXPIRY);
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
                let mut record = self.namespace_record(namespace_id)?.ok_or_else(|| {
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
                if height > record.reveal_block.saturating_add(REVEAL_EXPIRY) {
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
                let (label, ns) = self.namespace_of(name)?;
                let price = name_price(label, &ns.params);
                let new_owner = ctx
                    .outputs
                    .get(1)
                    .ok_or_else(|| reject("no-owner-output", "no output 1"))?
                    .script
                    .to_vec();
                let existing = self.name_record(name)?;
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
                    self.claimed_preorder(PREORDERS, name, sender, &new_owner)?;
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
                let owned = self.owned(sender);
                let fresh = self.fresh_list().to_vec();
                let mut found = None;
                'search: for name in owned {
                    for ch in &fresh {
                        if wire::name_consensus_hash(&name, ch) == *wanted {
                            found = Some((name, *ch));
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
                let mut record = self.owned_live(sender, &name)?;
                record.value_hash = Some(*value_hash);
                Ok(self.changed(sender, record, txid, Some(ch)))
            }
            NameOp::NameTransfer {
                keep_data,
                name_hash,
                consensus_hash,
            } => {
                self.fresh(consensus_hash)?;
                let recipient = ctx
                    .outputs
                    .get(1)
                    .ok_or_else(|| reject("no-recipient", "no output 1"))?
                    .script
                    .to_vec();
                let name = self
                    .owned(sender)
                    .into_iter()
                    .find(|n| wire::name_hash16(n) == *name_hash)
                    .ok_or_else(|| {
                        reject("no-such-name", "the sender owns no name with this hash")
                    })?;
                let mut record = self.owned_live(sender, &name)?;
                record.owner = recipient;
                if !keep_data {
                    record.value_hash = None;
                }
                Ok(self.changed(sender, record, txid, None))
            }
            NameOp::NameRevoke { name } => {
                let mut record = self.owned_live(sender, name)?;
                record.revoked = true;
                record.value_hash = None;
                Ok(self.changed(sender, record, txid, None))
            }
        }
    }
}

/// Entries per `state_range` page (the host's largest).
const PAGE: u32 = 1024;

/// A consensus record in the v2 record encoding (`docs/consensus-hash-v2.md` 2.1, what
/// `vc_vm_guest::Record` writes), with hex text written in place: building the hex strings
/// first and copying them into a `Record` cost twice as much fuel.
struct Rec {
    bytes: Vec<u8>,
    count: u16,
}

impl Rec {
    fn new(opcode: u8) -> Rec {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&[1, 1, opcode, 0, 0]);
        Rec { bytes, count: 0 }
    }

    fn value(mut self, tag: u8, body: &[u8]) -> Rec {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(body);
        self.count += 1;
        self
    }

    fn null(self) -> Rec {
        self.value(0, &[])
    }

    fn boolean(self, b: bool) -> Rec {
        self.value(1, &[u8::from(b)])
    }

    fn uint(self, n: u64) -> Rec {
        self.value(2, &n.to_be_bytes())
    }

    fn text(mut self, t: &str) -> Rec {
        self.bytes.push(5);
        self.bytes
            .extend_from_slice(&(t.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(t.as_bytes());
        self.count += 1;
        self
    }

    /// Text: the lowercase hex of `b`, reversed first if `reversed` (a txid as displayed).
    fn hex_text(mut self, b: &[u8], reversed: bool) -> Rec {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.bytes.push(5);
        self.bytes
            .extend_from_slice(&((2 * b.len()) as u32).to_be_bytes());
        let at = self.bytes.len();
        self.bytes.resize(at + 2 * b.len(), 0);
        for (i, pair) in self.bytes[at..].chunks_exact_mut(2).enumerate() {
            let byte = if reversed { b[b.len() - 1 - i] } else { b[i] };
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        self.count += 1;
        self
    }

    fn hex(self, b: &[u8]) -> Rec {
        self.hex_text(b, false)
    }

    fn finish(mut self) -> Vec<u8> {
        let c = self.count.to_be_bytes();
        self.bytes[3] = c[0];
        self.bytes[4] = c[1];
        self.bytes
    }
}

/// The consensus record of an accepted operation: the opcode, its fields, the sender and the
/// txid, exactly as the native app emits it.
fn record(ctx: &OpContext, p: &NamesOp, effect: &Effect) -> Vec<u8> {
    let r = Rec::new(p.op.opcode());
    let hex_or_null = |r: Rec, v: Option<&[u8]>| match v {
        Some(v) => r.hex(v),
        None => r.null(),
    };
    let r = match (&p.op, effect) {
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
        ) => r.hex(preorder_hash).hex(consensus_hash).uint(pre.burn),
        (NameOp::NamespaceReveal { .. }, Effect::Reveal { record, .. }) => r
            .text(&record.id)
            .uint(u64::from(record.params.lifetime))
            .uint(u64::from(record.params.coeff))
            .uint(u64::from(record.params.base))
            .hex(&record.params.buckets)
            .uint(u64::from(record.params.nonalpha_discount))
            .uint(u64::from(record.params.no_vowel_discount))
            .uint(u64::from(record.params.version))
            .hex(&record.revealer),
        (NameOp::NamespaceReady { namespace_id }, _) => r.text(namespace_id),
        (
            NameOp::NameRegistration { .. },
            Effect::Register {
                record,
                paid,
                preorder,
                ..
            },
        ) => hex_or_null(
            r.text(&record.name).hex(&record.owner),
            record.value_hash.as_ref().map(|v| &v[..]),
        )
        .boolean(preorder.is_none())
        .uint(*paid),
        (
            NameOp::NameUpdate { .. },
            Effect::Change {
                record, matched, ..
            },
        ) => hex_or_null(
            hex_or_null(
                r.text(&record.name),
                record.value_hash.as_ref().map(|v| &v[..]),
            ),
            matched.as_ref().map(|m| &m[..]),
        ),
        (NameOp::NameTransfer { keep_data, .. }, Effect::Change { record, .. }) => {
            r.text(&record.name).hex(&record.owner).boolean(*keep_data)
        }
        (NameOp::NameRevoke { name }, _) => r.text(name),
        _ => r,
    };
    r.hex(&p.sender).hex_text(&ctx.txid, true).finish()
}

/// The naming system, deployed from block `FIRST_BLOCK` under the legacy consensus-hash
/// scheme (the native app's `NamesConfig::regtest(FIRST_BLOCK)`; its network is the
/// database's).
pub struct Names<const FIRST_BLOCK: u64>;

impl<const FIRST_BLOCK: u64> App for Names<FIRST_BLOCK> {
    type Op = NamesOp;

    fn manifest() -> Manifest {
        let mut m = Manifest::new("names", "1", wire::MAGIC, FIRST_BLOCK, wire::OPCODES);
        m.scheme = Scheme::Legacy;
        m.staleness = STALENESS;
        m.payload_limit = wire::PAYLOAD_LIMIT;
        m.strict_carrier = false;
        // An owner's names are read in pages of 1024 owner-index entries, and an update hashes
        // each against every fresh consensus hash (about 24 k fuel per name owned): 100 M fuel
        // lets an owner of about 4 000 names update one, where the bench chain's operations
        // take 46 k on average. The bounds are consensus: an operation past them is
        // rejected (`vm-out-of-fuel`) where the native app has no bound. They also keep a
        // looping variant of this module (the fuzz target mutates it) within seconds.
        m.memory_pages = 256;
        m.fuel_per_op = 100_000_000;
        m.fuel_per_block = 2_000_000_000;
        m
    }

    fn parse(ctx: &OpContext) -> Result<NamesOp, Reject> {
        if ctx.carrier_vout != 0 {
            return Err(reject(
                "payload-not-first",
                format!(
                    "the payload is in output {}, BNS requires output 0",
                    ctx.carrier_vout
                ),
            ));
        }
        let body = ctx.body().to_vec();
        let op = wire::decode(ctx.opcode, &body).map_err(|e| reject("malformed", e))?;
        let sender = ctx
            .sender()
            .ok_or_else(|| reject("no-sender", "the transaction has no inputs"))?
            .script
            .to_vec();
        Ok(NamesOp { op, body, sender })
    }

    fn prepare(_block: &Block, ops: &[(OpContext, NamesOp)]) -> Vec<Option<Reject>> {
        // What an operation claims: its kind and key, borrowed from the operation.
        fn claim(p: &NamesOp) -> Option<(u8, &[u8])> {
            Some(match &p.op {
                NameOp::NamespacePreorder { preorder_hash, .. } => (b'*', &preorder_hash[..]),
                NameOp::NamePreorder { preorder_hash, .. } => (b'?', &preorder_hash[..]),
                NameOp::NamespaceReveal { namespace_id, .. } => (b'&', namespace_id.as_bytes()),
                NameOp::NameRegistration { name, .. } => (b':', name.as_bytes()),
                _ => return None,
            })
        }
        let mut counts: BTreeMap<(u8, &[u8]), usize> = BTreeMap::new();
        for (_, p) in ops {
            if let Some(k) = claim(p) {
                *counts.entry(k).or_insert(0) += 1;
            }
        }
        ops.iter()
            .map(|(_, p)| {
                let k = claim(p)?;
                let n = counts.get(&k).copied().unwrap_or(0);
                (n > 1).then(|| {
                    reject(
                        "collision",
                        format!(
                            "{} operations in this block claim the same {}",
                            n,
                            p.op.name()
                        ),
                    )
                })
            })
            .collect()
    }

    fn apply(state: &mut State, ctx: &OpContext, p: NamesOp) -> Result<(), Reject> {
        let mut eval = Eval {
            state,
            height: state.block().height,
            network: state.network(),
            fresh: None,
        };
        let effect = eval.evaluate(ctx, &p)?;
        vc_vm_guest::sys::emit(&record(ctx, &p, &effect));
        match effect {
            Effect::NamespacePreorder(hash, pre) => {
                state.put(NAMESPACE_PREORDERS, &hash, &pre.encode())
            }
            Effect::NamePreorder(hash, pre) => state.put(PREORDERS, &hash, &pre.encode()),
            Effect::Reveal { preorder, record } => {
                state.delete(NAMESPACE_PREORDERS, &preorder);
                state.put(NAMESPACE_RECORDS, record.id.as_bytes(), &record.encode());
            }
            Effect::Ready(record) => {
                state.put(NAMESPACE_RECORDS, record.id.as_bytes(), &record.encode())
            }
            Effect::Register {
                preorder,
                previous_owner,
                record,
                ..
            } => {
                if let Some(hash) = preorder {
                    state.delete(PREORDERS, &hash);
                }
                if let Some(prev) = previous_owner {
                    state.delete(OWNERS, &owner_key(&prev, &record.name));
                }
                state.put(OWNERS, &owner_key(&record.owner, &record.name), OWNED);
                state.put(NAMES, record.name.as_bytes(), &record.encode());
            }
            Effect::Change {
                previous_owner,
                record,
                ..
            } => {
                state.delete(OWNERS, &owner_key(&previous_owner, &record.name));
                state.put(OWNERS, &owner_key(&record.owner, &record.name), OWNED);
                state.put(NAMES, record.name.as_bytes(), &record.encode());
            }
        }
        Ok(())
    }
}
