//! `counter`: the smallest contract for `vc-contracts`, built by `cargo xtask guests` into
//! `counter.wasm`.
//!
//! - deploy (`vc_init`): the counter starts at the 8-byte big-endian value in the deploy's
//!   arguments, or 0 when they are empty;
//! - `inc`: adds the 8-byte big-endian step in the arguments (1 when empty), returns the new
//!   value (8 bytes); an overflow is rejected (`overflow`);
//! - `get`: returns the value (8 bytes), writes nothing;
//! - any other method is rejected (`unknown-method`).

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use vc_vm_guest::contract::{self, Call, Contract};
use vc_vm_guest::Reject;

const KEY: &[u8] = b"n";

fn number(args: &[u8], default: u64) -> Result<u64, Reject> {
    match args.len() {
        0 => Ok(default),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(args);
            Ok(u64::from_be_bytes(a))
        }
        _ => Err(Reject::new("bad-args", "the argument is 8 bytes or nothing")),
    }
}

/// The contract.
pub struct Counter;

impl Contract for Counter {
    fn init(call: &Call) -> Result<(), Reject> {
        contract::put_u64(KEY, number(&call.args, 0)?);
        Ok(())
    }

    fn call(call: &Call) -> Result<Vec<u8>, Reject> {
        let n = contract::get_u64(KEY).unwrap_or(0);
        match call.method.as_slice() {
            b"inc" => {
                let step = number(&call.args, 1)?;
                let n = n
                    .checked_add(step)
                    .ok_or_else(|| Reject::new("overflow", "the counter would overflow"))?;
                contract::put_u64(KEY, n);
                Ok(n.to_be_bytes().to_vec())
            }
            b"get" => Ok(n.to_be_bytes().to_vec()),
            _ => Err(Reject::new("unknown-method", "methods: inc, get")),
        }
    }
}

vc_vm_guest::export_contract!(Counter);
