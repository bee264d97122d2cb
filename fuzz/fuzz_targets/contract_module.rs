//! Arbitrary contracts and contract operations for the contract platform (`vc-contracts` on
//! `vc-vm`'s contract modules). The first byte chooses:
//!
//! - even: the rest is a contract module. Loading never panics; a module that loads runs its
//!   `vc_init` and `vc_call` (input built from the module's own bytes) with little fuel over
//!   an in-memory storage, and whatever it does: the run ends (a result or a rejection with a
//!   code), a rejected run keeps no writes, no run uses more fuel than it was given, and two
//!   runs of the same input agree exactly.
//! - odd: the rest is a leaf script and payload bodies. Reading an envelope from a script-path
//!   witness carrying that script never panics, and an envelope the writer makes from the
//!   bytes reads back as them; deploy and call bodies decode to what re-encodes to them.
//!
//! `cargo xtask fuzz` seeds the contract guests `cargo xtask guests` built, if any.
#![no_main]

use std::collections::BTreeMap;

use bitcoin::key::{Keypair, Secp256k1};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, Network, ScriptBuf, TxOut, Witness};
use libfuzzer_sys::fuzz_target;
use vc_contracts::envelope;
use vc_contracts::wire::{CallBody, DeployBody};
use vc_store::StoreError;
use vc_vm::contract::{ContractInput, ContractModule, ContractStorage, Entry};

/// Storage from a map.
#[derive(Default)]
struct Map(BTreeMap<Vec<u8>, Vec<u8>>);

impl ContractStorage for Map {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }
}

const FUEL: u64 = 200_000;

fn module(bytes: &[u8]) {
    let Ok(m) = ContractModule::load(bytes) else {
        return;
    };
    let seed = bytes.get(..8).unwrap_or_default();
    let mut storage = Map::default();
    for entry in [Entry::Init, Entry::Call] {
        let input = ContractInput {
            entry,
            network: Network::Regtest,
            contract: [1; 32],
            txid: [2; 32],
            height: 7,
            time: 1_700_000_000,
            caller: seed.to_vec(),
            amount: 1_000,
            method: b"m".to_vec(),
            args: seed.to_vec(),
        };
        let run = m.run(&input, FUEL, &mut storage).expect("no host fault");
        let again = m.run(&input, FUEL, &mut storage).expect("no host fault");
        assert_eq!(run, again, "two runs of one input differ");
        assert!(run.fuel_used <= FUEL);
        if run.outcome.is_err() {
            assert!(run.writes.is_empty());
        }
        for (k, v) in run.writes {
            match v {
                Some(v) => storage.0.insert(k, v),
                None => storage.0.remove(&k),
            };
        }
    }
}

fn wire(bytes: &[u8]) {
    // The bytes as a leaf script, spent by its script path.
    let mut control = vec![0xc0];
    control.extend_from_slice(&[2; 32]);
    let spent = TxOut {
        value: Amount::from_sat(1_000),
        script_pubkey: ScriptBuf::new_p2tr_tweaked(
            bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(key()),
        ),
    };
    let w = Witness::from_slice(&[vec![1; 64], bytes.to_vec(), control.clone()]);
    let _ = envelope::extract(Some(&w), Some(&spent), 1);
    // An envelope made from the bytes reads back as them.
    let leaf = envelope::leaf_script(bytes, &key());
    let w = Witness::from_slice(&[vec![1; 64], leaf.to_bytes(), control]);
    assert_eq!(
        envelope::extract(Some(&w), Some(&spent), 1).as_deref(),
        Ok(bytes)
    );
    if let Ok(d) = DeployBody::decode(bytes) {
        assert_eq!(d.encode(), bytes);
    }
    if let Ok(c) = CallBody::decode(bytes) {
        assert_eq!(c.encode(), bytes);
    }
}

fn key() -> bitcoin::XOnlyPublicKey {
    static K: std::sync::OnceLock<bitcoin::XOnlyPublicKey> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&[3; 32]).expect("a key");
        Keypair::from_secret_key(&secp, &sk).x_only_public_key().0
    })
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => module(rest),
        Some((_, rest)) => wire(rest),
        None => {}
    }
});
