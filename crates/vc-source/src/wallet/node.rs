//! The wallet against Bitcoin Core: coins, the mempool, fee rates and replacements, over
//! JSON-RPC and without Core's wallet or `-txindex`.
//!
//! - **Coins:** `scantxoutset` lists the key's confirmed coins with their height and whether
//!   they are coinbase outputs. Immature coinbases are set aside ([`split_mature`]).
//! - **The wallet's own unconfirmed spends:** `scantxoutset` does not see the mempool, so a
//!   second send before a block would pick the coin the first one spent. The node's mempool is
//!   the state (nothing is written locally, so two processes, or a user with another tool, see
//!   the same thing): `gettxspendingprevout` drops the coins a mempool transaction spends, and the
//!   spending transactions' outputs to the key (its change) become unconfirmed coins, which are
//!   checked the same way in turn. The walk follows only the key's own chain of transactions
//!   and stops after [`CoreWallet::with_mempool_limit`] transactions (default 500), so its cost
//!   does not grow with the mempool.
//! - **Fee rates:** `estimatesmartfee` at a confirmation target, never below the floor: the
//!   node's `minrelaytxfee` and `mempoolminfee` (`getmempoolinfo`) and 1 sat/vB. Without an
//!   estimate (regtest, a fresh node) the floor is used and [`RateSource::Floor`] says why. An
//!   explicit rate below the node's relay floor is refused.
//! - **Replacements:** `getmempoolentry` gives the fees a replacement must beat, including those
//!   of the descendants it evicts; the inputs' values come from `gettxout` (confirmed) or the
//!   parent in the mempool.

use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use serde_json::{Value, json};

use super::{
    Coin, CoinStatus, FeeChoice, FeeRate, Funded, Immature, MIN_FEE_RATE, Replaced, Slot,
    WalletError, bump, fund, split_mature,
};
use crate::SourceError;
use crate::core::CoreSource;

const NAME: &str = "core-rpc";

fn malformed(what: &str, detail: String) -> SourceError {
    SourceError::Malformed {
        source_name: NAME,
        what: what.to_owned(),
        detail,
    }
}

fn not_found(e: &SourceError) -> bool {
    matches!(e, SourceError::Node { code: Some(-5), .. })
}

fn btc(v: &Value, what: &str) -> Result<Amount, SourceError> {
    v.as_f64()
        .and_then(|a| Amount::from_btc(a).ok())
        .ok_or_else(|| malformed(what, format!("not an amount: {v}")))
}

fn rate(v: &Value, what: &str) -> Result<FeeRate, SourceError> {
    Ok(FeeRate::from_sat_per_kvb(btc(v, what)?.to_sat()))
}

/// The node's relay policy for fees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeFloor {
    /// `minrelaytxfee`: the least rate the node relays.
    pub min_relay: FeeRate,
    /// `mempoolminfee`: the least rate its mempool takes now (above `min_relay` when full).
    pub mempool_min: FeeRate,
    /// `incrementalrelayfee`: what a replacement pays for its own size on top of what it evicts.
    pub incremental: FeeRate,
}

impl FeeFloor {
    /// The least rate the node accepts now.
    pub fn relay(&self) -> FeeRate {
        self.min_relay.max(self.mempool_min)
    }

    /// The least rate the wallet pays unasked: [`FeeFloor::relay`], and at least
    /// [`MIN_FEE_RATE`].
    pub fn floor(&self) -> FeeRate {
        self.relay().max(MIN_FEE_RATE)
    }
}

/// How to choose the fee rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateChoice {
    /// Exactly this rate (refused below the node's relay floor).
    Given(FeeRate),
    /// `estimatesmartfee` for confirmation within this many blocks, floored.
    Estimate(u16),
}

/// Where a chosen rate came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateSource {
    /// The caller gave it.
    Given,
    /// `estimatesmartfee` (at least the floor).
    Estimated {
        /// The confirmation target asked for.
        target: u16,
        /// The target the node answered for.
        blocks: u64,
    },
    /// The floor, because the node had no estimate.
    Floor {
        /// The confirmation target asked for.
        target: u16,
        /// The node's reason.
        reason: String,
    },
}

/// A fee rate and its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenRate {
    /// The rate.
    pub rate: FeeRate,
    /// Where it came from.
    pub source: RateSource,
    /// The node's policy it was checked against.
    pub floor: FeeFloor,
}

/// The key's coins as the node sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coins {
    /// The height of the chain the scan saw.
    pub tip: u64,
    /// Coins a transaction in the next block may spend: confirmed ones no mempool transaction
    /// spends, and unspent outputs of the key's own mempool transactions.
    pub spendable: Vec<Coin>,
    /// Coinbase outputs that are not mature yet.
    pub immature: Option<Immature>,
    /// The key's own transactions found in the mempool.
    pub mempool_txs: usize,
}

/// A wallet of one script on a Core node ([module docs](self)).
#[derive(Debug)]
pub struct CoreWallet<'a> {
    node: &'a CoreSource,
    script: ScriptBuf,
    mempool_limit: usize,
}

impl<'a> CoreWallet<'a> {
    /// The coins paying `script` on `node`.
    pub fn new(node: &'a CoreSource, script: ScriptBuf) -> Self {
        CoreWallet {
            node,
            script,
            mempool_limit: 500,
        }
    }

    /// Follows at most `n` of the key's mempool transactions (see the module docs).
    pub fn with_mempool_limit(mut self, n: usize) -> Self {
        self.mempool_limit = n;
        self
    }

    /// The wallet's script.
    pub fn script(&self) -> &ScriptBuf {
        &self.script
    }

    /// The key's coins: confirmed, minus those mempool transactions spend, plus the key's
    /// unconfirmed change; immature coinbases set aside.
    pub fn coins(&self) -> Result<Coins, WalletError> {
        let desc = format!("raw({})", vc_chash::hex::encode(self.script.as_bytes()));
        let v: Value = self
            .node
            .call("scantxoutset", &["start".into(), json!([desc])])?;
        let what = "scantxoutset response";
        let tip = v["height"]
            .as_u64()
            .ok_or_else(|| malformed(what, "no height".into()))?;
        let rows = v["unspents"]
            .as_array()
            .ok_or_else(|| malformed(what, "no unspents list".into()))?;
        let mut confirmed = Vec::with_capacity(rows.len());
        for r in rows {
            let txid: Txid = r["txid"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| malformed(what, format!("bad txid in {r}")))?;
            let vout = r["vout"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| malformed(what, format!("bad vout in {r}")))?;
            let height = r["height"].as_u64().ok_or_else(|| {
                malformed(
                    what,
                    format!("no height in {r} (Core 25 or later lists it)"),
                )
            })?;
            let coinbase = r["coinbase"].as_bool().ok_or_else(|| {
                malformed(
                    what,
                    format!("no coinbase flag in {r} (Core 25 or later lists it)"),
                )
            })?;
            confirmed.push(Coin {
                outpoint: OutPoint::new(txid, vout),
                txout: TxOut {
                    value: btc(&r["amount"], what)?,
                    script_pubkey: self.script.clone(),
                },
                status: CoinStatus::Confirmed { height, coinbase },
            });
        }
        confirmed.sort_by_key(|c| c.outpoint);
        // Immature coinbases first: no mempool transaction can spend them.
        let (mature, immature) = split_mature(confirmed, tip + 1);
        let (spendable, mempool_txs) = self.unspent_in_mempool(mature)?;
        Ok(Coins {
            tip,
            spendable,
            immature,
            mempool_txs,
        })
    }

    /// Drops the coins mempool transactions spend and adds the key's outputs of those
    /// transactions, recursively; returns the coins and how many transactions were followed.
    fn unspent_in_mempool(&self, coins: Vec<Coin>) -> Result<(Vec<Coin>, usize), WalletError> {
        let mut frontier = coins;
        let mut unspent = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while !frontier.is_empty() {
            let spenders = match self.spenders(&frontier) {
                Ok(s) => s,
                Err(SourceError::Node {
                    code: Some(-32601), ..
                }) => {
                    tracing::warn!(
                        "the node has no gettxspendingprevout (Core 24 or later): coins spent by unconfirmed transactions may be picked again"
                    );
                    unspent.append(&mut frontier);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let mut next_txs = Vec::new();
            for (coin, spender) in frontier.drain(..).zip(spenders) {
                match spender {
                    None => unspent.push(coin),
                    Some(txid) => {
                        if seen.insert(txid) {
                            next_txs.push(txid);
                        }
                    }
                }
            }
            for txid in next_txs {
                if seen.len() > self.mempool_limit {
                    tracing::warn!(
                        limit = self.mempool_limit,
                        "the key has more unconfirmed transactions than the wallet follows: their later change is left out"
                    );
                    break;
                }
                // The transaction may have left the mempool since: then its outputs are not
                // ours to spend, and the coin it spent is found again on the next run.
                let Some(tx) = self.mempool_tx(&txid)? else {
                    continue;
                };
                for (vout, out) in tx.output.iter().enumerate() {
                    if out.script_pubkey == self.script {
                        frontier.push(Coin {
                            outpoint: OutPoint::new(txid, vout as u32),
                            txout: out.clone(),
                            status: CoinStatus::Unconfirmed,
                        });
                    }
                }
            }
        }
        unspent.sort_by_key(|c| c.outpoint);
        Ok((unspent, seen.len()))
    }

    /// The mempool transaction spending each coin, if any.
    fn spenders(&self, coins: &[Coin]) -> Result<Vec<Option<Txid>>, SourceError> {
        let what = "gettxspendingprevout response";
        let mut out = Vec::with_capacity(coins.len());
        for chunk in coins.chunks(1_000) {
            let outpoints: Vec<Value> = chunk
                .iter()
                .map(|c| json!({"txid": c.outpoint.txid.to_string(), "vout": c.outpoint.vout}))
                .collect();
            let v: Value = self
                .node
                .call("gettxspendingprevout", &[Value::Array(outpoints)])?;
            let rows = v
                .as_array()
                .filter(|r| r.len() == chunk.len())
                .ok_or_else(|| malformed(what, format!("not one row per coin: {v}")))?;
            for r in rows {
                out.push(match r.get("spendingtxid") {
                    None => None,
                    Some(t) => Some(
                        t.as_str()
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| malformed(what, format!("bad spendingtxid in {r}")))?,
                    ),
                });
            }
        }
        Ok(out)
    }

    /// A transaction in the node's mempool; `None` if it is not there.
    fn mempool_tx(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        let hex: String = match self.node.call(
            "getrawtransaction",
            &[txid.to_string().into(), false.into()],
        ) {
            Ok(h) => h,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = vc_chash::hex::decode(&hex)
            .map_err(|e| malformed("getrawtransaction response", e.to_string()))?;
        bitcoin::consensus::deserialize(&bytes)
            .map(Some)
            .map_err(|e| malformed("getrawtransaction response", e.to_string()))
    }

    /// The node's fee policy (`getmempoolinfo`).
    pub fn fee_floor(&self) -> Result<FeeFloor, WalletError> {
        let v: Value = self.node.call("getmempoolinfo", &[])?;
        let what = "getmempoolinfo response";
        Ok(FeeFloor {
            min_relay: rate(&v["minrelaytxfee"], what)?,
            mempool_min: rate(&v["mempoolminfee"], what)?,
            incremental: rate(&v["incrementalrelayfee"], what)?,
        })
    }

    /// The rate to pay ([`RateChoice`]), checked against the node's floor.
    pub fn fee_rate(&self, choice: RateChoice) -> Result<ChosenRate, WalletError> {
        let floor = self.fee_floor()?;
        match choice {
            RateChoice::Given(rate) => {
                if rate < floor.relay() {
                    return Err(WalletError::BelowFloor {
                        rate,
                        floor: floor.relay(),
                    });
                }
                Ok(ChosenRate {
                    rate,
                    source: RateSource::Given,
                    floor,
                })
            }
            RateChoice::Estimate(target) => {
                let v: Value = self.node.call("estimatesmartfee", &[target.into()])?;
                let (rate, source) = match v.get("feerate") {
                    Some(r) => (
                        rate(r, "estimatesmartfee response")?.max(floor.floor()),
                        RateSource::Estimated {
                            target,
                            blocks: v["blocks"].as_u64().unwrap_or(u64::from(target)),
                        },
                    ),
                    None => (
                        floor.floor(),
                        RateSource::Floor {
                            target,
                            reason: v["errors"]
                                .as_array()
                                .and_then(|e| e.first())
                                .and_then(Value::as_str)
                                .unwrap_or("no estimate")
                                .to_owned(),
                        },
                    ),
                };
                Ok(ChosenRate {
                    rate,
                    source,
                    floor,
                })
            }
        }
    }

    /// Funds and signs `slots` from the key's spendable coins ([`fund`]). When the key holds
    /// only immature coinbases the error says how much and from which block.
    pub fn fund<E: std::error::Error + Send + Sync + 'static>(
        &self,
        slots: &[Slot],
        fee: FeeChoice,
        sign: impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, E>,
    ) -> Result<Funded, WalletError> {
        let coins = self.coins()?;
        if coins.spendable.is_empty()
            && let Some(immature) = coins.immature
        {
            return Err(WalletError::OnlyImmature { immature });
        }
        fund(slots, &coins.spendable, fee, sign).map_err(|e| match e {
            WalletError::Insufficient { have, need, .. } => WalletError::Insufficient {
                have,
                need,
                immature: coins.immature,
            },
            e => e,
        })
    }

    /// Replaces the mempool transaction `txid` by the same inputs and outputs with a higher fee
    /// ([`bump`]), at `target` or more. `change_index` finds the change output of the
    /// transaction (the caller knows its layout).
    pub fn bump<E: std::error::Error + Send + Sync + 'static>(
        &self,
        txid: Txid,
        change_index: impl FnOnce(&Transaction) -> Option<usize>,
        target: FeeRate,
        sign: impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, E>,
    ) -> Result<(Funded, Replaced), WalletError> {
        let entry: Value = match self
            .node
            .call("getmempoolentry", &[txid.to_string().into()])
        {
            Ok(v) => v,
            Err(e) if not_found(&e) => return Err(self.not_in_mempool(txid)),
            Err(e) => return Err(e.into()),
        };
        let what = "getmempoolentry response";
        let replaced = Replaced {
            fee: btc(&entry["fees"]["base"], what)?.to_sat(),
            vsize: entry["vsize"]
                .as_u64()
                .ok_or_else(|| malformed(what, "no vsize".into()))?,
            descendant_fees: btc(&entry["fees"]["descendant"], what)?.to_sat(),
            descendant_count: entry["descendantcount"].as_u64().unwrap_or(1),
        };
        let original = self
            .mempool_tx(&txid)?
            .ok_or_else(|| self.not_in_mempool(txid))?;
        let mut inputs = Vec::with_capacity(original.input.len());
        for (index, input) in original.input.iter().enumerate() {
            let coin = self
                .prevout(input.previous_output)?
                .filter(|c| c.txout.script_pubkey == self.script)
                .ok_or(WalletError::ForeignInput { txid, index })?;
            inputs.push(coin);
        }
        let change = change_index(&original)
            .filter(|i| {
                original
                    .output
                    .get(*i)
                    .is_some_and(|o| o.script_pubkey == self.script)
            })
            .ok_or(WalletError::NoChange { txid })?;
        let floor = self.fee_floor()?;
        let funded = bump(
            &original,
            &inputs,
            change,
            &replaced,
            target.max(floor.relay()),
            floor.incremental,
            sign,
        )?;
        Ok((funded, replaced))
    }

    /// The coin `outpoint` spent by a mempool transaction: in the chain (`gettxout` without
    /// the mempool) or an output of a mempool parent.
    fn prevout(&self, outpoint: OutPoint) -> Result<Option<Coin>, SourceError> {
        let v: Value = self.node.call(
            "gettxout",
            &[
                outpoint.txid.to_string().into(),
                outpoint.vout.into(),
                false.into(),
            ],
        )?;
        let what = "gettxout response";
        if !v.is_null() {
            let script = v["scriptPubKey"]["hex"]
                .as_str()
                .and_then(|h| vc_chash::hex::decode(h).ok())
                .ok_or_else(|| malformed(what, format!("no script in {v}")))?;
            let tip: u64 = self.node.call("getblockcount", &[])?;
            let confirmations = v["confirmations"].as_u64().unwrap_or(1).max(1);
            return Ok(Some(Coin {
                outpoint,
                txout: TxOut {
                    value: btc(&v["value"], what)?,
                    script_pubkey: ScriptBuf::from_bytes(script),
                },
                status: CoinStatus::Confirmed {
                    height: tip + 1 - confirmations,
                    coinbase: v["coinbase"].as_bool().unwrap_or(false),
                },
            }));
        }
        Ok(self.mempool_tx(&outpoint.txid)?.and_then(|parent| {
            parent.output.get(outpoint.vout as usize).map(|txout| Coin {
                outpoint,
                txout: txout.clone(),
                status: CoinStatus::Unconfirmed,
            })
        }))
    }

    /// Why `txid` cannot be bumped: confirmed (one of its outputs is in the chain's UTXO set)
    /// or unknown.
    fn not_in_mempool(&self, txid: Txid) -> WalletError {
        for vout in 0..16u32 {
            let v: Result<Value, _> = self.node.call(
                "gettxout",
                &[txid.to_string().into(), vout.into(), false.into()],
            );
            match v {
                Ok(v) if !v.is_null() => {
                    let height = self
                        .node
                        .call::<u64>("getblockcount", &[])
                        .ok()
                        .zip(v["confirmations"].as_u64())
                        .map(|(tip, c)| tip + 1 - c.max(1));
                    return WalletError::Confirmed { txid, height };
                }
                Ok(_) => {}
                Err(e) => return e.into(),
            }
        }
        WalletError::Unknown { txid }
    }
}
