//! `names-bench`: the rules of `guests/names` deployed from block 41, the first block of
//! `vc-bench`'s generated chains (after its 40 funding blocks), so that `vc-bench wasm`
//! compares it with the native app on the bench chain. The sources are `guests/names`'s.
//!
//! Built by `cargo xtask guests` into `names-bench.wasm`.

#![no_std]

extern crate alloc;

#[path = "../../names/src/codec.rs"]
mod codec;
#[path = "../../names/src/crypto.rs"]
mod crypto;
#[path = "../../names/src/rules.rs"]
mod rules;
#[path = "../../names/src/wire.rs"]
mod wire;

/// `vc-bench`'s chains start their names deployment at block 41.
pub const FIRST_BLOCK: u64 = 41;

vc_vm_guest::export_app!(rules::Names<FIRST_BLOCK>);
