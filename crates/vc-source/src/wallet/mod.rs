//! The writer side's wallet: which coins to spend, what fee to pay, which outputs a node will
//! relay, and how to replace a stuck transaction.
//!
//! Data flows source -> engine -> store; writing goes the other way, from an application's
//! writer to the node, and never feeds the engine. The wallet sits here, next to
//! [`Broadcaster`](crate::Broadcaster), because everything it needs to know comes from the
//! node a source already talks to (coins, the mempool, fee estimates, relay policy), and
//! because every application's writer (names today, contracts and migration later) depends on
//! vc-source already and none of them should depend on another application. It holds no key and
//! builds no payload: the caller lays out its outputs as [`Slot`]s and signs through a closure,
//! so the same funding serves any script type and any application.
//!
//! This module is pure (no I/O; unit-tested on plain data):
//!
//! - [`FeeRate`] in satoshis per 1,000 virtual bytes, and the fee of a size rounded up;
//! - [`dust_threshold`]: Bitcoin Core's dust rule (at its 3 sat/vB dust relay fee) for any
//!   output script; OP_RETURN outputs are exempt;
//! - [`split_mature`]: coinbase outputs are spendable only in a block 100 above their own
//!   (Core: `spend_height - coin_height >= 100`), so immature ones are set aside and reported;
//! - [`fund`]: picks coins (confirmed first, largest first), signs, measures the signed
//!   transaction's virtual size and signs again until the fee matches the rate; change below
//!   the dust limit goes to the fee when the change is the last output;
//! - [`replacement_fee`] and [`bump`]: BIP125 replacement of a transaction by the same inputs
//!   and outputs with a higher fee, taken from its change.
//!
//! With the `core` feature, [`node`] asks Bitcoin Core for the rest: the key's coins with their
//! maturity, the wallet's own unconfirmed spends and change (the node's mempool is the only
//! state; nothing is written locally), fee estimates and the relay floor.

#[cfg(feature = "core")]
pub mod node;

use bitcoin::{Amount, OutPoint, Script, ScriptBuf, Transaction, TxOut};

/// Blocks a coinbase output waits before it can be spent (Core's `COINBASE_MATURITY`).
pub const COINBASE_MATURITY: u64 = 100;

/// Core's default dust relay fee (`-dustrelayfee`), 3 sat/vB.
pub const DUST_RELAY_FEE: FeeRate = FeeRate::from_sat_per_kvb(3_000);

/// The lowest rate this wallet ever pays, 1 sat/vB, even where a node would relay less.
pub const MIN_FEE_RATE: FeeRate = FeeRate::from_sat_per_kvb(1_000);

/// A fee rate in satoshis per 1,000 virtual bytes (Core's unit, `BTC/kvB` times 10^8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeeRate(u64);

impl FeeRate {
    /// `sat` satoshis per 1,000 virtual bytes.
    pub const fn from_sat_per_kvb(sat: u64) -> FeeRate {
        FeeRate(sat)
    }

    /// Satoshis per 1,000 virtual bytes.
    pub const fn sat_per_kvb(self) -> u64 {
        self.0
    }

    /// A rate as Core reports it, in BTC per 1,000 virtual bytes; `None` if negative or not a
    /// number.
    pub fn from_btc_per_kvb(btc: f64) -> Option<FeeRate> {
        Amount::from_btc(btc).ok().map(|a| FeeRate(a.to_sat()))
    }

    /// Parses satoshis per virtual byte, with up to three decimals (`1`, `2.5`, `0.123`).
    pub fn parse_sat_per_vb(s: &str) -> Result<FeeRate, String> {
        let bad = || format!("{s:?} is not a rate in sat/vB (for example 2 or 1.5)");
        let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
        if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
            return Err(bad());
        }
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(1_000)
            .and_then(|w| w.checked_add(frac))
            .map(FeeRate)
            .ok_or_else(bad)
    }

    /// The fee of `vsize` virtual bytes at this rate, rounded up to a whole satoshi.
    pub fn fee(self, vsize: u64) -> u64 {
        let milli = u128::from(self.0) * u128::from(vsize);
        u64::try_from(milli.div_ceil(1_000)).unwrap_or(u64::MAX)
    }

    /// The rate `fee` pays for `vsize` virtual bytes, rounded down.
    pub fn of(fee: u64, vsize: u64) -> FeeRate {
        if vsize == 0 {
            return FeeRate(u64::MAX);
        }
        let rate = u128::from(fee) * 1_000 / u128::from(vsize);
        FeeRate(u64::try_from(rate).unwrap_or(u64::MAX))
    }
}

impl std::fmt::Display for FeeRate {
    /// `1.5 sat/vB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, milli) = (self.0 / 1_000, self.0 % 1_000);
        if milli == 0 {
            write!(f, "{whole} sat/vB")
        } else {
            let frac = format!("{milli:03}");
            write!(f, "{whole}.{} sat/vB", frac.trim_end_matches('0'))
        }
    }
}

/// The smallest value Bitcoin Core relays in an output paying `script` (its `GetDustThreshold`
/// at [`DUST_RELAY_FEE`]): the fee, at 3 sat/vB, of the output plus the input that would spend
/// it. 546 sat for P2PKH, 540 for P2SH, 294 for P2WPKH, 330 for P2WSH and P2TR; 0 for an
/// unspendable (OP_RETURN) output.
pub fn dust_threshold(script: &Script) -> u64 {
    if script.is_op_return() || script.len() > 10_000 {
        return 0;
    }
    let output = 8 + bitcoin::VarInt(script.len() as u64).size() + script.len();
    // An input: outpoint (36), script length (1), sequence (4), and the signature data Core
    // assumes (107 bytes; a quarter of it for a witness program).
    let input = if script.is_witness_program() {
        32 + 4 + 1 + 107 / 4 + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    DUST_RELAY_FEE.fee((output + input) as u64)
}

/// A short name for an output script's type, for messages.
pub fn script_kind(script: &Script) -> &'static str {
    if script.is_p2pkh() {
        "P2PKH"
    } else if script.is_p2sh() {
        "P2SH"
    } else if script.is_p2wpkh() {
        "P2WPKH"
    } else if script.is_p2wsh() {
        "P2WSH"
    } else if script.is_p2tr() {
        "P2TR"
    } else if script.is_op_return() {
        "OP_RETURN"
    } else {
        "non-standard"
    }
}

/// An output below its dust limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DustOutput {
    /// Its position in the transaction.
    pub index: usize,
    /// What it pays, in satoshis.
    pub value: u64,
    /// The least it must pay ([`dust_threshold`]).
    pub threshold: u64,
    /// Its script type ([`script_kind`]).
    pub kind: &'static str,
}

/// The first output below the dust limit, if any.
pub fn first_dust(outputs: &[TxOut]) -> Option<DustOutput> {
    outputs.iter().enumerate().find_map(|(index, o)| {
        let threshold = dust_threshold(&o.script_pubkey);
        (o.value.to_sat() < threshold).then(|| DustOutput {
            index,
            value: o.value.to_sat(),
            threshold,
            kind: script_kind(&o.script_pubkey),
        })
    })
}

/// Refuses the first fixed output of `slots` below its dust limit, naming its position in the
/// transaction: what [`fund`] checks first, and what a writer can check before asking a node
/// anything.
pub fn check_dust(slots: &[Slot]) -> Result<(), WalletError> {
    for (index, slot) in slots.iter().enumerate() {
        if let Slot::Fixed(o) = slot
            && let Some(d) = first_dust(std::slice::from_ref(o))
        {
            return Err(WalletError::Dust(DustOutput { index, ..d }));
        }
    }
    Ok(())
}

/// Where a coin is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoinStatus {
    /// In the block at `height`.
    Confirmed {
        /// The block's height.
        height: u64,
        /// Whether it is a coinbase output.
        coinbase: bool,
    },
    /// An output of a transaction in the node's mempool.
    Unconfirmed,
}

/// A coin the wallet can spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it pays, and to which script.
    pub txout: TxOut,
    /// Confirmed or in the mempool.
    pub status: CoinStatus,
}

impl Coin {
    /// Its value in satoshis.
    pub fn sat(&self) -> u64 {
        self.txout.value.to_sat()
    }

    /// The first block height that may spend it: `height + 100` for a coinbase output, 0
    /// otherwise.
    pub fn spendable_from(&self) -> u64 {
        match self.status {
            CoinStatus::Confirmed {
                height,
                coinbase: true,
            } => height + COINBASE_MATURITY,
            _ => 0,
        }
    }

    /// Whether a transaction in the block at `next_height` (the tip's height plus one, for the
    /// mempool) may spend it.
    pub fn is_mature(&self, next_height: u64) -> bool {
        next_height >= self.spendable_from()
    }
}

/// Coinbase outputs set aside because they cannot be spent yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Immature {
    /// Their total, in satoshis.
    pub sat: u64,
    /// How many.
    pub coins: usize,
    /// The first block height in which the earliest of them can be spent.
    pub spendable_from: u64,
}

impl std::fmt::Display for Immature {
    /// `5000000000 sat in 1 immature coinbase output, spendable from block 205`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sat in {} immature coinbase output{}, spendable from block {}",
            self.sat,
            self.coins,
            if self.coins == 1 { "" } else { "s" },
            self.spendable_from
        )
    }
}

/// Splits `coins` into those a transaction in the block at `next_height` may spend and a
/// summary of the immature coinbase outputs left out.
pub fn split_mature(coins: Vec<Coin>, next_height: u64) -> (Vec<Coin>, Option<Immature>) {
    let (mature, immature): (Vec<Coin>, Vec<Coin>) =
        coins.into_iter().partition(|c| c.is_mature(next_height));
    let summary = immature
        .iter()
        .map(Coin::spendable_from)
        .min()
        .map(|spendable_from| Immature {
            sat: immature.iter().map(Coin::sat).sum(),
            coins: immature.len(),
            spendable_from,
        });
    (mature, summary)
}

/// One output of a transaction to fund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// An output the caller fixed (an OP_RETURN payload, a payment, a burn).
    Fixed(TxOut),
    /// The wallet's change to this script: what the inputs hold beyond the fixed outputs and
    /// the fee. At most one per transaction.
    Change(ScriptBuf),
}

/// How the fee is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeChoice {
    /// This rate times the signed transaction's virtual size.
    Rate(FeeRate),
    /// This many satoshis, whatever the size.
    Absolute(u64),
}

impl FeeChoice {
    fn fee(self, vsize: u64) -> u64 {
        match self {
            FeeChoice::Rate(r) => r.fee(vsize),
            FeeChoice::Absolute(sat) => sat,
        }
    }
}

/// A funded, signed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funded {
    /// The transaction, ready to broadcast.
    pub tx: Transaction,
    /// The coins it spends, in input order.
    pub inputs: Vec<Coin>,
    /// Its fee in satoshis.
    pub fee: u64,
    /// Its virtual size.
    pub vsize: u64,
    /// The change output's position and value, if it has one.
    pub change: Option<(usize, u64)>,
}

impl Funded {
    /// The rate the fee pays.
    pub fn rate(&self) -> FeeRate {
        FeeRate::of(self.fee, self.vsize)
    }
}

/// The fees a replaced transaction paid, as the node's mempool reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// Its own fee, in satoshis.
    pub fee: u64,
    /// Its virtual size.
    pub vsize: u64,
    /// Its fee plus those of its mempool descendants (which the replacement evicts too).
    pub descendant_fees: u64,
    /// Itself and its mempool descendants.
    pub descendant_count: u64,
}

/// Why the wallet cannot produce a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// An output pays less than the dust limit of its script; nodes do not relay it.
    #[error(
        "output {} pays {} sat, below the dust limit of {} sat for a {} output: nodes will not relay it; it must pay at least {} sat",
        .0.index, .0.value, .0.threshold, .0.kind, .0.threshold
    )]
    Dust(DustOutput),
    /// The only coins the key holds are coinbase outputs that are not mature yet.
    #[error("the key has no spendable coins: {immature}")]
    OnlyImmature {
        /// The immature coins.
        immature: Immature,
    },
    /// The spendable coins do not cover the outputs and the fee.
    #[error(
        "the key's spendable coins hold {have} sat; the transaction needs {need} sat (outputs, fee and change){}",
        .immature.map(|i| format!("; besides, {i}")).unwrap_or_default()
    )]
    Insufficient {
        /// Satoshis in the spendable coins.
        have: u64,
        /// Outputs, fee at the chosen rate, and a change output at its dust limit.
        need: u64,
        /// Immature coinbase outputs left out, if any.
        immature: Option<Immature>,
    },
    /// The plan has more than one change slot.
    #[error("a transaction has at most one change output")]
    TwoChanges,
    /// An explicit fee rate is below what the node relays.
    #[error("the fee rate {rate} is below the node's floor of {floor}")]
    BelowFloor {
        /// The rate asked for.
        rate: FeeRate,
        /// The node's floor.
        floor: FeeRate,
    },
    /// The transaction to replace has no change output to take a higher fee from.
    #[error("{txid} has no change output of this wallet to take a higher fee from")]
    NoChange {
        /// The transaction.
        txid: bitcoin::Txid,
    },
    /// The change of the transaction to replace cannot pay the higher fee.
    #[error(
        "the change of {txid} holds {change} sat; the replacement's fee is {fee} sat and what remains must be at least {dust} sat"
    )]
    ChangeTooSmall {
        /// The transaction.
        txid: bitcoin::Txid,
        /// Its change, in satoshis.
        change: u64,
        /// The replacement's fee.
        fee: u64,
        /// The change output's dust limit.
        dust: u64,
    },
    /// The transaction to replace is already in a block.
    #[error("{txid} is already confirmed{}: there is nothing to bump", .height.map(|h| format!(" (block {h})")).unwrap_or_default())]
    Confirmed {
        /// The transaction.
        txid: bitcoin::Txid,
        /// Its block's height, when known.
        height: Option<u64>,
    },
    /// The transaction to replace is not in the node's mempool and not found in the chain.
    #[error(
        "{txid} is not in the node's mempool and none of its outputs is unspent in the chain: it was never sent to this node, was replaced or evicted, or confirmed and was spent since"
    )]
    Unknown {
        /// The transaction.
        txid: bitcoin::Txid,
    },
    /// An input of the transaction to replace is not the wallet's.
    #[error("input {index} of {txid} does not spend this wallet's coins")]
    ForeignInput {
        /// The transaction.
        txid: bitcoin::Txid,
        /// The input.
        index: usize,
    },
    /// The caller's signer failed.
    #[error("signing")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The node failed or answered something unexpected.
    #[error("asking the node")]
    Source(#[from] crate::SourceError),
}

fn vsize(tx: &Transaction) -> u64 {
    tx.vsize() as u64
}

fn sign_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> WalletError {
    WalletError::Sign(Box::new(e))
}

/// The outputs of `slots` with the change paying `change` (dropped when `None`), and the
/// change's position.
fn layout(slots: &[Slot], change: Option<u64>) -> (Vec<TxOut>, Option<usize>) {
    let mut out = Vec::with_capacity(slots.len());
    let mut at = None;
    for s in slots {
        match s {
            Slot::Fixed(t) => out.push(t.clone()),
            Slot::Change(script) => {
                if let Some(v) = change {
                    at = Some(out.len());
                    out.push(TxOut {
                        value: Amount::from_sat(v),
                        script_pubkey: script.clone(),
                    });
                }
            }
        }
    }
    (out, at)
}

/// Signs until the fee matches the size: a signature one byte longer than the previous
/// attempt's raises the fee, which changes the change and so the signature. Returns the
/// transaction and its fee. `outputs_for(fee)` lays the outputs out for a fee, or `None` when
/// the inputs cannot pay it.
fn settle<E: std::error::Error + Send + Sync + 'static>(
    coins: &[Coin],
    fee_of: impl Fn(u64) -> u64,
    mut outputs_for: impl FnMut(u64) -> Option<Vec<TxOut>>,
    sign: &mut impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, E>,
    mut fee: u64,
) -> Result<Option<(Transaction, u64)>, WalletError> {
    for _ in 0..4 {
        let Some(outputs) = outputs_for(fee) else {
            return Ok(None);
        };
        let tx = sign(coins, &outputs).map_err(sign_err)?;
        let wanted = fee_of(vsize(&tx));
        if wanted <= fee {
            return Ok(Some((tx, fee)));
        }
        fee = wanted;
    }
    Ok(None)
}

/// Funds `slots` from `candidates` (all spendable) at `fee`, signing with `sign(coins,
/// outputs)`, which must spend `coins` in order and keep `outputs` as given.
///
/// Confirmed coins go first, then unconfirmed ones, each largest first, and coins are added
/// until they pay the fixed outputs, the fee of the signed transaction, and a change output at
/// or above its dust limit. When the change would be dust and it is the last output, it is left
/// out and its satoshis go to the fee; a change output followed by other outputs stays (the
/// outputs after it may be read by position) and more coins are added instead.
pub fn fund<E: std::error::Error + Send + Sync + 'static>(
    slots: &[Slot],
    candidates: &[Coin],
    fee: FeeChoice,
    mut sign: impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, E>,
) -> Result<Funded, WalletError> {
    let fixed_outputs: Vec<TxOut> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Fixed(t) => Some(t.clone()),
            Slot::Change(_) => None,
        })
        .collect();
    check_dust(slots)?;
    let changes: Vec<&ScriptBuf> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Change(script) => Some(script),
            Slot::Fixed(_) => None,
        })
        .collect();
    if changes.len() > 1 {
        return Err(WalletError::TwoChanges);
    }
    let change_dust = changes.first().map_or(0, |s| dust_threshold(s));
    let droppable = !matches!(slots.last(), Some(Slot::Fixed(_)));
    let fixed: u64 = fixed_outputs.iter().map(|o| o.value.to_sat()).sum();

    let mut sorted: Vec<&Coin> = candidates.iter().collect();
    sorted.sort_by(|a, b| {
        let unconfirmed = |c: &Coin| c.status == CoinStatus::Unconfirmed;
        unconfirmed(a)
            .cmp(&unconfirmed(b))
            .then(b.sat().cmp(&a.sat()))
            .then(a.outpoint.cmp(&b.outpoint))
    });
    let mut coins: Vec<Coin> = Vec::new();
    let mut last_need = fixed + change_dust;
    for c in sorted {
        coins.push(c.clone());
        let have: u64 = coins.iter().map(Coin::sat).sum();
        if have < fixed {
            continue;
        }
        // A first signature, to measure the size (the values do not change it).
        let (probe_outputs, _) = layout(slots, (!changes.is_empty()).then_some(0));
        let probe = sign(&coins, &probe_outputs).map_err(sign_err)?;
        let first_fee = fee.fee(vsize(&probe));
        last_need = fixed + first_fee + change_dust;
        if !changes.is_empty() {
            let with_change = settle(
                &coins,
                |v| fee.fee(v),
                |f| {
                    let change = have.checked_sub(fixed + f)?;
                    (change >= change_dust).then(|| layout(slots, Some(change)).0)
                },
                &mut sign,
                first_fee,
            )?;
            if let Some((tx, fee)) = with_change {
                let change = have - fixed - fee;
                let at = layout(slots, Some(change)).1;
                return Ok(done(tx, coins, fee, at.map(|i| (i, change))));
            }
            if !droppable {
                continue;
            }
        }
        // Without change: everything beyond the fixed outputs is the fee.
        let (outputs, _) = layout(slots, None);
        let tx = sign(&coins, &outputs).map_err(sign_err)?;
        if have - fixed >= fee.fee(vsize(&tx)) {
            return Ok(done(tx, coins, have - fixed, None));
        }
    }
    Err(WalletError::Insufficient {
        have: candidates.iter().map(Coin::sat).sum(),
        need: last_need,
        immature: None,
    })
}

fn done(tx: Transaction, inputs: Vec<Coin>, fee: u64, change: Option<(usize, u64)>) -> Funded {
    Funded {
        vsize: vsize(&tx),
        tx,
        inputs,
        fee,
        change,
    }
}

/// The least fee a replacement of `vsize` virtual bytes pays for `old` under BIP125, at
/// `target` or more: at least the fees of everything it evicts plus `incremental` for its own
/// size (rules 3 and 4), and a higher rate than the original's (rule 6).
pub fn replacement_fee(old: &Replaced, vsize: u64, target: FeeRate, incremental: FeeRate) -> u64 {
    let by_rate = target.fee(vsize);
    let pays_for_evicted = old.descendant_fees.max(old.fee) + incremental.fee(vsize);
    // fee / vsize > old.fee / old.vsize.
    let higher_rate = (u128::from(old.fee) * u128::from(vsize) / u128::from(old.vsize.max(1)))
        .try_into()
        .unwrap_or(u64::MAX - 1)
        + 1;
    by_rate.max(pays_for_evicted).max(higher_rate)
}

/// Replaces `original` by the same inputs (`inputs`, in its input order) and outputs with a fee
/// of at least [`replacement_fee`], taken from its change output at `change_index`. A change
/// left below its dust limit is dropped when it is the last output; otherwise that is an error.
pub fn bump<E: std::error::Error + Send + Sync + 'static>(
    original: &Transaction,
    inputs: &[Coin],
    change_index: usize,
    old: &Replaced,
    target: FeeRate,
    incremental: FeeRate,
    mut sign: impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, E>,
) -> Result<Funded, WalletError> {
    let txid = original.compute_txid();
    let change_out = original
        .output
        .get(change_index)
        .ok_or(WalletError::NoChange { txid })?;
    let have: u64 = inputs.iter().map(Coin::sat).sum();
    let others: u64 = original
        .output
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != change_index)
        .map(|(_, o)| o.value.to_sat())
        .sum();
    let dust = dust_threshold(&change_out.script_pubkey);
    let slots: Vec<Slot> = original
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if i == change_index {
                Slot::Change(o.script_pubkey.clone())
            } else {
                Slot::Fixed(o.clone())
            }
        })
        .collect();
    let fee_of = |v: u64| replacement_fee(old, v, target, incremental);
    let first = fee_of(vsize(original));
    let with_change = settle(
        inputs,
        fee_of,
        |f| {
            let change = have.checked_sub(others + f)?;
            (change >= dust).then(|| layout(&slots, Some(change)).0)
        },
        &mut sign,
        first,
    )?;
    if let Some((tx, fee)) = with_change {
        return Ok(done(
            tx,
            inputs.to_vec(),
            fee,
            Some((change_index, have - others - fee)),
        ));
    }
    let change = change_out.value.to_sat();
    if change_index + 1 == original.output.len() {
        let (outputs, _) = layout(&slots, None);
        let tx = sign(inputs, &outputs).map_err(sign_err)?;
        let fee = have.saturating_sub(others);
        if fee >= fee_of(vsize(&tx)) {
            return Ok(done(tx, inputs.to_vec(), fee, None));
        }
    }
    Err(WalletError::ChangeTooSmall {
        txid,
        change,
        fee: first,
        dust,
    })
}

#[cfg(test)]
mod tests;
