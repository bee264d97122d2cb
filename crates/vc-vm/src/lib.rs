//! Applications whose rules are a WebAssembly module, run by [wasmi] under fixed limits.
//!
//! A module exports the application's hooks (`vc_manifest`, `vc_parse`, optionally
//! `vc_prepare`, `vc_apply`, optionally `vc_finalize`) and its linear memory, and imports a small
//! host API from module `vc`: its input, state get/put/delete/range, consensus-hash freshness,
//! emitting consensus records. [`VmModule::load`] refuses a module that breaks the rules
//! (floats, imports the host does not offer, exports of the wrong type, memories or tables
//! past the limits, a manifest out of range); [`VmApp`] is the [`vc_engine::Application`] that
//! runs it, where running out of fuel or memory, a trap or a guest's rejection is a
//! deterministic rejection of that operation with a code ([`codes`]), never a node failure.
//!
//! The module's SHA-256 is part of the application's identity (its parameters, see
//! [`VmParams`]): another module makes another database. `docs/vm.md` in the repository
//! specifies the ABI; the `vc-vm-guest` crate wraps it for guests written in Rust.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod abi;
mod app;
pub mod codes;
pub mod contract;
mod error;
mod guest;
mod host;
pub mod limits;
pub mod manifest;
mod module;
mod precheck;
mod warm;

pub use app::VmApp;
pub use error::{LoadError, ManifestError, VmFault};
pub use manifest::{Manifest, VmParams};
pub use module::{VmModule, module_hash};
