//! `names`: the naming rules of `crates/vc-names` as a WebAssembly module on `vc-vm-guest`,
//! the proof that a real application fits the VM. Indexing a chain with `names.wasm` gives the
//! native `--app names` deployment's consensus hash at every height and the same stored state,
//! byte for byte (see `guests/names/README.md`).
//!
//! This module is the deployment of the committed fixture chain (`testdata/regtest-chain`,
//! the one `virtualchain demo` indexes): the legacy scheme from block 388. A module's
//! manifest is fixed, so another deployment is another module over the same rules:
//! `guests/names-bench` is the bench chain's.
//!
//! Built by `cargo xtask guests` into `names.wasm`.

#![no_std]

extern crate alloc;

mod codec;
mod crypto;
mod rules;
mod wire;

/// The fixture chain's names deployment starts at block 388 (`testdata/regtest-chain/chain.json`,
/// `names.first_block`).
pub const FIRST_BLOCK: u64 = 388;

vc_vm_guest::export_app!(rules::Names<FIRST_BLOCK>);
