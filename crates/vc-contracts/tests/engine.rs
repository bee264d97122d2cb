//! The contract platform on in-memory chains: deploys from witness envelopes, calls, records,
//! storage isolation, reorgs, and hostile modules and operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use vc_contracts::seam::default_pay_script;
use vc_contracts::wire::{DeployBody, OP_DEPLOY, payload};
use vc_contracts::{ContractsConfig, codes, contract_info, storage_entries, storage_get};
use vc_engine::prelude::*;
use vc_store::StateRead;

use common::*;

fn u64_be(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

#[test]
fn counter_and_token_deploy_call_and_survive_a_reorg() {
    let (Some(counter), Some(token)) = (guest("counter"), guest("token")) else {
        return;
    };
    let (mut alice, mut bob) = (Wallet::new(1), Wallet::new(2));
    let chain = funded_chain(&mut [&mut alice, &mut bob]);
    let pay = default_pay_script();

    // Height 3: the commits; 4: the reveals (the counter starts at 5, the token mints 1 000).
    let dc = alice.deploy(&counter, &u64_be(5));
    let dt = alice.deploy(&token, &u64_be(1_000));
    chain.push(vec![dc.commit.clone(), dt.commit.clone()]);
    chain.push(vec![dc.reveal.clone(), dt.reveal.clone()]);
    let (c, t) = (dc.contract(), dt.contract());

    // 5: calls. inc by 1 paying 5 000 sat, inc by 10, a transfer of 300 to bob, bob
    // transferring more than he holds, a method the counter lacks.
    let inc = alice.call(c, "inc", &[], 5_000, &pay);
    let inc10 = bob.call(c, "inc", &u64_be(10), 0, &pay);
    let mut args = u64_be(300);
    args.extend_from_slice(bob.script().as_bytes());
    let transfer = alice.call(t, "transfer", &args, 0, &pay);
    let mut args = u64_be(301);
    args.extend_from_slice(alice.script().as_bytes());
    let overdraw = bob.call(t, "transfer", &args, 0, &pay);
    let unknown = bob.call(c, "dec", &[], 0, &pay);
    chain.push(vec![
        inc.clone(),
        inc10.clone(),
        transfer.clone(),
        overdraw,
        unknown,
    ]);

    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(&chain, &dir.path().join("c.redb"), ContractsConfig::new(1));
    let reports = sync(&mut engine);
    assert_eq!(reports.accepted(), 5);
    assert_eq!(
        reports.rejections(),
        vec![
            (5, Stage::Apply, "insufficient-funds"),
            (5, Stage::Apply, "unknown-method"),
        ]
    );

    let view = engine.store().view().unwrap();
    let info = contract_info(&view, &c).unwrap().unwrap();
    assert_eq!(info.height, 4);
    assert_eq!(info.deployer, alice.script().to_bytes());
    assert_eq!(storage_get(&view, &c, b"n").unwrap(), Some(u64_be(16)));
    let mut bal = b"b".to_vec();
    bal.extend_from_slice(alice.script().as_bytes());
    assert_eq!(storage_get(&view, &t, &bal).unwrap(), Some(u64_be(700)));
    let mut bal_b = b"b".to_vec();
    bal_b.extend_from_slice(bob.script().as_bytes());
    assert_eq!(storage_get(&view, &t, &bal_b).unwrap(), Some(u64_be(300)));
    // Isolation: each contract's key space holds only its own keys.
    assert_eq!(storage_entries(&view, &c).unwrap().len(), 1);
    assert_eq!(
        storage_entries(&view, &t)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k[0])
            .collect::<Vec<_>>(),
        vec![b'b', b'b', b'o', b's']
    );

    // The records: the call with its caller, amount, result and fuel, then its write.
    let r = records(&engine, inc.compute_txid());
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].opcode, b"call");
    assert_eq!(
        r[0].values[0],
        RecordValue::Bytes(c.to_byte_array().to_vec())
    );
    assert_eq!(r[0].values[1], RecordValue::Text("inc".into()));
    assert_eq!(
        r[0].values[2],
        RecordValue::Bytes(alice.script().to_bytes())
    );
    assert_eq!(r[0].values[3], RecordValue::Uint(5_000));
    assert_eq!(r[0].values[5], RecordValue::Bytes(u64_be(6)));
    let RecordValue::Uint(fuel) = r[0].values[6] else {
        panic!("{:?}", r[0].values[6])
    };
    assert!(fuel > 0 && fuel < vc_contracts::CALL_FUEL, "{fuel}");
    assert_eq!(r[1].opcode, b"write");
    assert_eq!(r[1].values[2], RecordValue::Bytes(u64_be(6)));
    let d = records(&engine, c);
    assert_eq!(d[0].opcode, b"deploy");
    assert_eq!(d[1].opcode, b"write");
    let fuel_of = |txid| match records(&engine, txid)[0].values.last() {
        Some(RecordValue::Uint(f)) => *f,
        other => panic!("{other:?}"),
    };
    eprintln!(
        "fuel: counter inc {fuel}, token transfer {}, token deploy (init) {}; all runs {}",
        fuel_of(transfer.compute_txid()),
        fuel_of(t),
        engine.app().fuel_used()
    );

    // A reorg replaces block 5 with one holding only bob's inc: alice's inc and transfer are
    // undone.
    chain.reorg(1, 0);
    chain.push(vec![inc10]);
    let reports = sync(&mut engine);
    assert_eq!(reports.accepted(), 1);
    let view = engine.store().view().unwrap();
    assert_eq!(storage_get(&view, &c, b"n").unwrap(), Some(u64_be(15)));
    assert_eq!(storage_get(&view, &t, &bal).unwrap(), Some(u64_be(1_000)));
    assert_eq!(storage_get(&view, &t, &bal_b).unwrap(), None);

    // A reorg past the deploys removes the contracts.
    chain.reorg(2, 3);
    sync(&mut engine);
    let view = engine.store().view().unwrap();
    assert_eq!(contract_info(&view, &c).unwrap(), None);
    assert!(storage_entries(&view, &t).unwrap().is_empty());
}

#[test]
fn hostile_deploys_and_calls_are_rejected_with_codes() {
    let mut alice = Wallet::new(3);
    let chain = funded_chain(&mut [&mut alice]);
    let pay = default_pay_script();

    // A module with floats; a contract that loops forever.
    let floats = alice.deploy(&float_contract(), &[]);
    let looping = alice.deploy(&looping_contract(), &[]);
    chain.push(vec![floats.commit.clone(), looping.commit.clone()]);
    chain.push(vec![floats.reveal.clone(), looping.reveal.clone()]);
    // A call to a contract nobody deployed; a call of the loop; a call of the refused module.
    let nobody = alice.call(Txid::from_byte_array([9; 32]), "inc", &[], 0, &pay);
    let spin = alice.call(looping.contract(), "spin", &[], 0, &pay);
    let refused = alice.call(floats.contract(), "go", &[], 0, &pay);
    chain.push(vec![nobody, spin, refused]);

    // A deploy whose payload commits another hash than its envelope's code: the writer's
    // reveal with its payload swapped (the witness then fails the sighash, which the indexer
    // does not check, as Bitcoin would have).
    let mismatch = alice.deploy(&looping_contract(), &[]);
    let mut reveal = mismatch.reveal.clone();
    let body = DeployBody {
        envelope_input: 1,
        code_hash: [0; 32],
        args: vec![],
    };
    reveal.output[0].script_pubkey = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
        .push_slice(
            bitcoin::script::PushBytesBuf::try_from(payload(OP_DEPLOY, &body.encode())).unwrap(),
        )
        .into_script();
    // A deploy naming input 0, which carries no envelope.
    let mut no_envelope = mismatch.reveal.clone();
    no_envelope.output[0].script_pubkey = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
        .push_slice(
            bitcoin::script::PushBytesBuf::try_from(payload(
                OP_DEPLOY,
                &DeployBody {
                    envelope_input: 0,
                    code_hash: [0; 32],
                    args: vec![],
                }
                .encode(),
            ))
            .unwrap(),
        )
        .into_script();
    no_envelope.lock_time = bitcoin::absolute::LockTime::from_consensus(1);
    chain.push(vec![mismatch.commit.clone()]);
    chain.push(vec![reveal, no_envelope]);

    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(&chain, &dir.path().join("h.redb"), ContractsConfig::new(1));
    let reports = sync(&mut engine);
    assert_eq!(
        reports.rejections(),
        vec![
            (4, Stage::Apply, codes::MODULE_REFUSED),
            (5, Stage::Apply, codes::UNKNOWN_CONTRACT),
            (5, Stage::Apply, vc_vm::codes::OUT_OF_FUEL),
            (5, Stage::Apply, codes::UNKNOWN_CONTRACT),
            (7, Stage::Parse, codes::NO_ENVELOPE),
            (7, Stage::Apply, codes::CODE_MISMATCH),
        ]
    );
    // Only the looping contract was deployed; its failed call left no record or state.
    assert_eq!(reports.accepted(), 1);
    let view = engine.store().view().unwrap();
    assert!(contract_info(&view, &looping.contract()).unwrap().is_some());
    assert!(contract_info(&view, &floats.contract()).unwrap().is_none());
}

#[test]
fn the_block_fuel_budget_turns_away_calls_past_it() {
    let mut alice = Wallet::new(4);
    let chain = funded_chain(&mut [&mut alice]);
    let pay = default_pay_script();
    let looping = alice.deploy(&looping_contract(), &[]);
    chain.push(vec![looping.commit.clone()]);
    chain.push(vec![looping.reveal.clone()]);
    // A deployment with 100 000 fuel per call and 1 000 000 per block: of twelve spinning calls,
    // ten get their full budget, the rest find the block's fuel spent.
    let mut spins = Vec::new();
    for _ in 0..12 {
        spins.push(alice.call(looping.contract(), "spin", &[], 0, &pay));
    }
    chain.push(spins);
    let dir = tempfile::tempdir().unwrap();
    let config = ContractsConfig::new(1).with_fuel(100_000, 1_000_000);
    let mut engine = engine(&chain, &dir.path().join("f.redb"), config);
    let reports = sync(&mut engine);
    let codes: Vec<_> = reports.rejections().into_iter().map(|r| r.2).collect();
    let mut expected = vec![vc_vm::codes::OUT_OF_FUEL; 10];
    expected.extend([vc_vm::codes::BLOCK_FUEL; 2]);
    assert_eq!(codes, expected);
    assert!(engine.app().fuel_used() <= 1_000_000);
    assert!(engine.app().fuel_used() > 1_000_000 - 100);
}

#[test]
fn the_pay_script_decides_the_amount_paid() {
    let Some(counter) = guest("counter") else {
        return;
    };
    let mut alice = Wallet::new(5);
    let chain = funded_chain(&mut [&mut alice]);
    let platform = Wallet::new(6).script();
    let d = alice.deploy(&counter, &[]);
    chain.push(vec![d.commit.clone()]);
    chain.push(vec![d.reveal.clone()]);
    // One call pays the platform's script, one pays the default burn script.
    let paid = alice.call(d.contract(), "get", &[], 7_000, &platform);
    let burnt = alice.call(d.contract(), "get", &[], 8_000, &default_pay_script());
    chain.push(vec![paid.clone(), burnt.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let config = ContractsConfig::new(1).with_pay_script(platform);
    let mut engine = engine(&chain, &dir.path().join("p.redb"), config);
    sync(&mut engine);
    assert_eq!(
        records(&engine, paid.compute_txid())[0].values[3],
        RecordValue::Uint(7_000)
    );
    assert_eq!(
        records(&engine, burnt.compute_txid())[0].values[3],
        RecordValue::Uint(0)
    );
}

/// A settlement that counts the fee as the amount paid: what a drivechain's deposit rule
/// would replace the pay script with, here only to show the seam is the one place value is
/// read.
#[derive(Debug)]
struct FeeAsPayment;

impl vc_contracts::seam::Settlement for FeeAsPayment {
    fn amount_paid(&self, ctx: &OpContext) -> u64 {
        ctx.fee
    }
}

#[test]
fn the_settlement_seam_decides_the_amount_and_code_is_stored_once() {
    let Some(counter) = guest("counter") else {
        return;
    };
    let mut alice = Wallet::new(7);
    let chain = funded_chain(&mut [&mut alice]);
    // The same code deployed twice: two contracts, each with its own storage, one code entry.
    let a = alice.deploy(&counter, &u64_be(1));
    let b = alice.deploy(&counter, &u64_be(100));
    chain.push(vec![a.commit.clone(), b.commit.clone()]);
    chain.push(vec![a.reveal.clone(), b.reveal.clone()]);
    let call = alice.call(b.contract(), "inc", &[], 0, &default_pay_script());
    chain.push(vec![call.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let app = vc_contracts::ContractsApp::new(ContractsConfig::new(1), Network::Regtest)
        .with_settlement(Box::new(FeeAsPayment));
    let config = EngineConfig::default().with_confirmations(1);
    let mut engine = vc_engine::Engine::open(
        app,
        dir.path().join("s.redb"),
        Source::blocks(chain.clone()),
        config,
    )
    .unwrap();
    let reports = sync(&mut engine);
    assert_eq!(reports.accepted(), 3);
    let view = engine.store().view().unwrap();
    assert_eq!(
        storage_get(&view, &a.contract(), b"n").unwrap(),
        Some(u64_be(1))
    );
    assert_eq!(
        storage_get(&view, &b.contract(), b"n").unwrap(),
        Some(u64_be(101))
    );
    assert_eq!(
        view.range_raw(vc_contracts::NS_CODE, None, None)
            .unwrap()
            .len(),
        1
    );
    // The call's amount is its fee, as the settlement says.
    // The call's amount is its fee (1 sat/vB of the signed transaction), as the settlement
    // says.
    let r = records(&engine, call.compute_txid());
    let RecordValue::Uint(fee) = r[0].values[3] else {
        panic!("{:?}", r[0].values[3])
    };
    assert!(fee.abs_diff(call.vsize() as u64) <= 2, "{fee}");
}
