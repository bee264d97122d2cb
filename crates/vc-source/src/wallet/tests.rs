use std::cell::Cell;
use std::convert::Infallible;

use bitcoin::hashes::Hash;
use bitcoin::{
    PubkeyHash, ScriptHash, Sequence, TxIn, Txid, WPubkeyHash, WScriptHash, Witness, absolute,
    transaction,
};

use super::*;

fn p2wpkh() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([1; 20]))
}

fn p2pkh(byte: u8) -> ScriptBuf {
    ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array([byte; 20]))
}

fn out(script: ScriptBuf, sat: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sat),
        script_pubkey: script,
    }
}

fn op_return() -> TxOut {
    out(ScriptBuf::new_op_return([0x69, 0x64, b'?']), 0)
}

fn coin(n: u8, sat: u64, status: CoinStatus) -> Coin {
    Coin {
        outpoint: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
        txout: out(p2wpkh(), sat),
        status,
    }
}

fn confirmed(n: u8, sat: u64) -> Coin {
    coin(
        n,
        sat,
        CoinStatus::Confirmed {
            height: 10,
            coinbase: false,
        },
    )
}

/// A P2WPKH-shaped signer: each input gets a `sig_len`-byte signature and a 33-byte key.
fn signer(
    sig_len: impl Fn() -> usize,
) -> impl FnMut(&[Coin], &[TxOut]) -> Result<Transaction, Infallible> {
    move |coins, outputs| {
        Ok(Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: coins
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::from_slice(&[vec![0x30; sig_len()], vec![2; 33]]),
                })
                .collect(),
            output: outputs.to_vec(),
        })
    }
}

fn balanced(f: &Funded) {
    let have: u64 = f.inputs.iter().map(Coin::sat).sum();
    let paid: u64 = f.tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(have, paid + f.fee, "inputs = outputs + fee");
    assert_eq!(f.vsize, f.tx.vsize() as u64);
    assert!(first_dust(&f.tx.output).is_none(), "no dust output");
}

#[test]
fn dust_limits_follow_core() {
    assert_eq!(dust_threshold(&p2pkh(0)), 546);
    assert_eq!(dust_threshold(&p2wpkh()), 294);
    assert_eq!(
        dust_threshold(&ScriptBuf::new_p2sh(&ScriptHash::from_byte_array([0; 20]))),
        540
    );
    assert_eq!(
        dust_threshold(&ScriptBuf::new_p2wsh(&WScriptHash::from_byte_array(
            [0; 32]
        ))),
        330
    );
    let key = bitcoin::secp256k1::XOnlyPublicKey::from_slice(&[
        0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b,
        0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8,
        0x17, 0x98,
    ])
    .unwrap();
    let p2tr = ScriptBuf::new_p2tr_tweaked(
        bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(key),
    );
    assert_eq!(dust_threshold(&p2tr), 330);
    assert_eq!(dust_threshold(&op_return().script_pubkey), 0);
    let d = first_dust(&[op_return(), out(p2wpkh(), 294), out(p2pkh(0), 545)]).unwrap();
    assert_eq!(
        (d.index, d.value, d.threshold, d.kind),
        (2, 545, 546, "P2PKH")
    );
}

#[test]
fn fee_rates_parse_print_and_round_up() {
    let r = |s| FeeRate::parse_sat_per_vb(s).map(FeeRate::sat_per_kvb);
    assert_eq!(r("1"), Ok(1_000));
    assert_eq!(r("1.5"), Ok(1_500));
    assert_eq!(r("0.1"), Ok(100));
    assert_eq!(r(".25"), Ok(250));
    assert!(r("1.2345").is_err());
    assert!(r("-1").is_err());
    assert!(r("one").is_err());
    assert!(r("").is_err());
    assert_eq!(FeeRate::from_sat_per_kvb(1_500).to_string(), "1.5 sat/vB");
    assert_eq!(FeeRate::from_sat_per_kvb(2_000).to_string(), "2 sat/vB");
    assert_eq!(
        FeeRate::from_btc_per_kvb(0.00001),
        Some(FeeRate::from_sat_per_kvb(1_000))
    );
    // 1.5 sat/vB on 141 vB is 211.5 sat: rounded up.
    assert_eq!(FeeRate::from_sat_per_kvb(1_500).fee(141), 212);
    assert_eq!(FeeRate::from_sat_per_kvb(1_000).fee(141), 141);
    assert_eq!(FeeRate::of(212, 141), FeeRate::from_sat_per_kvb(1_503));
}

#[test]
fn coinbases_mature_after_100_blocks() {
    let cb = coin(
        1,
        5_000,
        CoinStatus::Confirmed {
            height: 100,
            coinbase: true,
        },
    );
    // Core: a block at height h spends it when h - 100 >= 100.
    assert!(!cb.is_mature(199));
    assert!(cb.is_mature(200));
    let plain = confirmed(2, 700);
    let (mature, immature) = split_mature(vec![cb.clone(), plain.clone()], 150);
    assert_eq!(mature, vec![plain]);
    let immature = immature.unwrap();
    assert_eq!(
        (immature.sat, immature.coins, immature.spendable_from),
        (5_000, 1, 200)
    );
    assert_eq!(
        immature.to_string(),
        "5000 sat in 1 immature coinbase output, spendable from block 200"
    );
    let (mature, immature) = split_mature(vec![cb], 200);
    assert_eq!(mature.len(), 1);
    assert_eq!(immature, None);
}

#[test]
fn funding_pays_the_rate_on_the_signed_size() {
    let rate = FeeRate::from_sat_per_kvb(2_500);
    let slots = [
        Slot::Fixed(op_return()),
        Slot::Change(p2wpkh()),
        Slot::Fixed(out(p2pkh(0), 10_000)),
    ];
    // The largest confirmed coin covers it: the unconfirmed one and the small one stay.
    let coins = [
        confirmed(1, 3_000),
        confirmed(2, 50_000),
        coin(3, 90_000, CoinStatus::Unconfirmed),
    ];
    let f = fund(&slots, &coins, FeeChoice::Rate(rate), signer(|| 72)).unwrap();
    assert_eq!(f.inputs, vec![coins[1].clone()]);
    assert_eq!(f.fee, rate.fee(f.tx.vsize() as u64));
    assert_eq!(f.change, Some((1, 50_000 - 10_000 - f.fee)));
    assert_eq!(f.tx.output[2], out(p2pkh(0), 10_000));
    balanced(&f);
    // Without confirmed coins it chains from the unconfirmed change.
    let f = fund(&slots, &coins[2..], FeeChoice::Rate(rate), signer(|| 72)).unwrap();
    assert_eq!(f.inputs, vec![coins[2].clone()]);
    balanced(&f);
    // An absolute fee is paid as given.
    let f = fund(&slots, &coins, FeeChoice::Absolute(1_234), signer(|| 72)).unwrap();
    assert_eq!(f.fee, 1_234);
    balanced(&f);
}

#[test]
fn a_longer_signature_is_paid_for() {
    // The first signature is 71 bytes, every later one 73: the fee measured on the first
    // would be short by a byte's worth.
    let calls = Cell::new(0);
    let sig = || {
        calls.set(calls.get() + 1);
        if calls.get() == 1 { 71 } else { 73 }
    };
    let rate = FeeRate::from_sat_per_kvb(10_000);
    let slots = [Slot::Fixed(op_return()), Slot::Change(p2wpkh())];
    let f = fund(
        &slots,
        &[confirmed(1, 100_000)],
        FeeChoice::Rate(rate),
        signer(sig),
    )
    .unwrap();
    assert_eq!(f.fee, rate.fee(f.tx.vsize() as u64));
    balanced(&f);
}

#[test]
fn dust_change_goes_to_the_fee_only_when_it_is_last() {
    let rate = FeeRate::from_sat_per_kvb(1_000);
    let last = [Slot::Fixed(op_return()), Slot::Change(p2wpkh())];
    // 400 sat: after a fee of about 100 sat the change is below 294.
    let f = fund(
        &last,
        &[confirmed(1, 400)],
        FeeChoice::Rate(rate),
        signer(|| 72),
    )
    .unwrap();
    assert_eq!(f.change, None);
    assert_eq!(f.tx.output.len(), 1);
    assert_eq!(f.fee, 400);
    balanced(&f);

    // A change followed by a burn cannot go: the burn would move. A second coin is added.
    let middle = [
        Slot::Fixed(op_return()),
        Slot::Change(p2wpkh()),
        Slot::Fixed(out(p2pkh(0), 1_000)),
    ];
    let coins = [confirmed(1, 1_300), confirmed(2, 600)];
    let f = fund(&middle, &coins, FeeChoice::Rate(rate), signer(|| 72)).unwrap();
    assert_eq!(f.inputs.len(), 2);
    assert!(f.change.unwrap().1 >= 294);
    balanced(&f);
    // Without the second coin it is refused, naming what is needed.
    match fund(&middle, &coins[..1], FeeChoice::Rate(rate), signer(|| 72)) {
        Err(WalletError::Insufficient { have, need, .. }) => {
            assert_eq!(have, 1_300);
            assert!(need > 1_000 + 294, "{need}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_dust_output_is_refused_before_signing() {
    let slots = [
        Slot::Fixed(op_return()),
        Slot::Change(p2wpkh()),
        Slot::Fixed(out(p2pkh(0), 100)),
    ];
    let e = fund(
        &slots,
        &[confirmed(1, 100_000)],
        FeeChoice::Rate(MIN_FEE_RATE),
        |_: &[Coin], _: &[TxOut]| -> Result<Transaction, std::io::Error> {
            panic!("signed a transaction with a dust output")
        },
    )
    .unwrap_err();
    match &e {
        WalletError::Dust(d) => assert_eq!((d.index, d.value, d.threshold), (2, 100, 546)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("at least 546 sat"), "{e}");
}

#[test]
fn no_coins_is_insufficient() {
    let slots = [Slot::Fixed(op_return()), Slot::Change(p2wpkh())];
    assert!(matches!(
        fund(&slots, &[], FeeChoice::Rate(MIN_FEE_RATE), signer(|| 72)),
        Err(WalletError::Insufficient { have: 0, .. })
    ));
}

#[test]
fn replacements_follow_bip125() {
    let one = FeeRate::from_sat_per_kvb(1_000);
    let old = Replaced {
        fee: 200,
        vsize: 200,
        descendant_fees: 200,
        descendant_count: 1,
    };
    // Rule 4: what it evicts plus 1 sat/vB for its own 200 vB.
    assert_eq!(replacement_fee(&old, 200, one, one), 400);
    // Evicted descendants are paid for too.
    let with_children = Replaced {
        descendant_fees: 1_000,
        descendant_count: 3,
        ..old
    };
    assert_eq!(replacement_fee(&with_children, 200, one, one), 1_200);
    // A higher target wins.
    assert_eq!(
        replacement_fee(&old, 200, FeeRate::from_sat_per_kvb(5_000), one),
        1_000
    );
    // With no incremental fee the rate must still be strictly higher.
    assert_eq!(replacement_fee(&old, 200, one, FeeRate::default()), 201);
}

#[test]
fn bumping_takes_the_fee_from_the_change() {
    let rate = FeeRate::from_sat_per_kvb(1_000);
    let slots = [
        Slot::Fixed(op_return()),
        Slot::Change(p2wpkh()),
        Slot::Fixed(out(p2pkh(0), 10_000)),
    ];
    let coins = [confirmed(1, 50_000)];
    let first = fund(&slots, &coins, FeeChoice::Rate(rate), signer(|| 72)).unwrap();
    let old = Replaced {
        fee: first.fee,
        vsize: first.vsize,
        descendant_fees: first.fee,
        descendant_count: 1,
    };
    let target = FeeRate::from_sat_per_kvb(5_000);
    let b = bump(
        &first.tx,
        &first.inputs,
        1,
        &old,
        target,
        rate,
        signer(|| 72),
    )
    .unwrap();
    assert_eq!(b.fee, target.fee(b.vsize));
    assert!(b.fee >= old.fee + rate.fee(b.vsize));
    assert_eq!(b.tx.output[0], first.tx.output[0]);
    assert_eq!(b.tx.output[2], first.tx.output[2]);
    assert_eq!(b.tx.output[1].value.to_sat(), 50_000 - 10_000 - b.fee);
    assert_eq!(
        b.tx.input[0].previous_output,
        first.tx.input[0].previous_output
    );
    balanced(&b);

    // A change too small for the higher fee, and not last: refused.
    let target = FeeRate::from_sat_per_kvb(1_000_000);
    assert!(matches!(
        bump(
            &first.tx,
            &first.inputs,
            1,
            &old,
            target,
            rate,
            signer(|| 72)
        ),
        Err(WalletError::ChangeTooSmall { .. })
    ));
    // Last: dropped, and everything goes to the fee.
    let last = [Slot::Fixed(op_return()), Slot::Change(p2wpkh())];
    let small = [confirmed(1, 1_000)];
    let first = fund(&last, &small, FeeChoice::Rate(rate), signer(|| 72)).unwrap();
    let old = Replaced {
        fee: first.fee,
        vsize: first.vsize,
        descendant_fees: first.fee,
        descendant_count: 1,
    };
    let b = bump(
        &first.tx,
        &first.inputs,
        1,
        &old,
        FeeRate::from_sat_per_kvb(7_000),
        rate,
        signer(|| 72),
    )
    .unwrap();
    assert_eq!((b.change, b.fee, b.tx.output.len()), (None, 1_000, 1));
}
