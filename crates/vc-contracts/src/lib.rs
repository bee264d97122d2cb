//! Contracts stored on Bitcoin, on virtualchain: a contract's WebAssembly code travels in a
//! taproot witness envelope ([`envelope`]), its deploy operation commits the code's SHA-256,
//! and call operations name the contract, a method and arguments ([`wire`]). Every contract
//! runs under `vc-vm`'s rules (integer WebAssembly only, fixed limits, fuel, a fresh instance
//! per call; [`vc_vm::contract`]), in a key space of its own, and sees its caller and the
//! amount paid ([`seam`]). Deploys and calls, their results and every storage change are
//! consensus records.
//!
//! `docs/contracts.md` in the repository specifies the wire format, the envelope, the
//! contract ABI, the state layout and the records, for a second implementation.
//!
//! ```
//! use vc_contracts::{ContractsApp, ContractsConfig};
//! use vc_engine::prelude::*;
//!
//! let app = ContractsApp::new(ContractsConfig::new(101), Network::Regtest);
//! assert_eq!(app.spec().magic, b"ct");
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod app;
pub mod build;
pub mod envelope;
pub mod seam;
pub mod wire;

pub use app::{
    APP_NAME, APP_VERSION, BLOCK_FUEL, CALL_FUEL, ContractInfo, ContractOp, ContractsApp,
    ContractsConfig, ContractsError, NS_CODE, NS_CONTRACTS, NS_STORAGE, ParamsError, StorageEntry,
    codes, contract_info, storage_entries, storage_get, storage_key,
};
