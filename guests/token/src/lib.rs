//! `token`: a simple fungible token for `vc-contracts`, built by `cargo xtask guests` into
//! `token.wasm`. Holders are scripts (the caller of an operation is the script its first
//! input spends).
//!
//! Storage: `o` the owner's script (the deployer), `s` the supply (8 bytes), `b` + script a
//! holder's balance (8 bytes, absent when zero).
//!
//! - deploy (`vc_init`): arguments = the supply (8 bytes big-endian), minted to the deployer;
//! - `mint`: arguments = amount (8 bytes); the owner only (`not-owner`), to the owner;
//! - `transfer`: arguments = amount (8 bytes) then the recipient's script (1 to 200 bytes);
//!   `insufficient-funds` if the caller holds less; returns the caller's new balance;
//! - `balance`: arguments = a script; returns its balance (8 bytes);
//! - `supply`: returns the supply (8 bytes).

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use vc_vm_guest::contract::{self, Call, Contract};
use vc_vm_guest::Reject;

fn amount(args: &[u8]) -> Result<(u64, &[u8]), Reject> {
    if args.len() < 8 {
        return Err(Reject::new("bad-args", "an amount is 8 bytes"));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&args[..8]);
    Ok((u64::from_be_bytes(a), &args[8..]))
}

fn balance_key(script: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + script.len());
    k.push(b'b');
    k.extend_from_slice(script);
    k
}

fn balance(script: &[u8]) -> u64 {
    contract::get_u64(&balance_key(script)).unwrap_or(0)
}

fn set_balance(script: &[u8], n: u64) {
    if n == 0 {
        contract::delete(&balance_key(script));
    } else {
        contract::put_u64(&balance_key(script), n);
    }
}

fn credit(script: &[u8], n: u64) -> Result<(), Reject> {
    let b = balance(script)
        .checked_add(n)
        .ok_or_else(|| Reject::new("overflow", "a balance would overflow"))?;
    set_balance(script, b);
    Ok(())
}

/// The contract.
pub struct Token;

impl Contract for Token {
    fn init(call: &Call) -> Result<(), Reject> {
        let (supply, rest) = amount(&call.args)?;
        if !rest.is_empty() {
            return Err(Reject::new("bad-args", "the deploy's argument is the supply"));
        }
        contract::put(b"o", &call.caller);
        contract::put_u64(b"s", supply);
        credit(&call.caller, supply)
    }

    fn call(call: &Call) -> Result<Vec<u8>, Reject> {
        match call.method.as_slice() {
            b"mint" => {
                if contract::get(b"o").as_deref() != Some(call.caller.as_slice()) {
                    return Err(Reject::new("not-owner", "only the deployer mints"));
                }
                let (n, rest) = amount(&call.args)?;
                if !rest.is_empty() {
                    return Err(Reject::new("bad-args", "mint takes an amount"));
                }
                let supply = contract::get_u64(b"s")
                    .unwrap_or(0)
                    .checked_add(n)
                    .ok_or_else(|| Reject::new("overflow", "the supply would overflow"))?;
                contract::put_u64(b"s", supply);
                credit(&call.caller, n)?;
                Ok(supply.to_be_bytes().to_vec())
            }
            b"transfer" => {
                let (n, to) = amount(&call.args)?;
                if to.is_empty() || to.len() > 200 {
                    return Err(Reject::new("bad-args", "a recipient is a 1-200 byte script"));
                }
                let from = balance(&call.caller);
                if from < n {
                    return Err(Reject::new("insufficient-funds", "the caller holds less"));
                }
                set_balance(&call.caller, from - n);
                credit(to, n)?;
                Ok(balance(&call.caller).to_be_bytes().to_vec())
            }
            b"balance" => Ok(balance(&call.args).to_be_bytes().to_vec()),
            b"supply" => Ok(contract::get_u64(b"s").unwrap_or(0).to_be_bytes().to_vec()),
            _ => Err(Reject::new(
                "unknown-method",
                "methods: mint, transfer, balance, supply",
            )),
        }
    }
}

vc_vm_guest::export_contract!(Token);
