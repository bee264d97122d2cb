//! A BNS-style naming system on the virtualchain engine: the example application.
//!
//! It speaks the real BNS wire format (magic `id`; see [`wire`]) and implements the main BNS
//! rules on top of [`vc_engine`]:
//!
//! - namespaces: preorder (`*`, burns the namespace price), reveal (`&`, pricing function and
//!   lifetime), ready (`!`, sent by the reveal address);
//! - names: preorder (`?`, hides the name behind a hash, burns the price), registration (`:`,
//!   from the preorderer, within 144 blocks, after the namespace is ready, if the burn covered
//!   the price), renewal (`:` from the owner with a burn in output 3), update (`+`), transfer
//!   (`>`, keeping or dropping the value hash) and revoke (`~`);
//! - consensus hashes in preorders and transfers (and the hash an update is keyed by) must be
//!   fresh: one of the last 24 blocks';
//! - operations in one block that claim the same name, namespace or preorder are all rejected;
//! - names expire `lifetime` blocks after registration or renewal.
//!
//! `docs/names.md` in the repository lists what it leaves out of Blockstack's BNS (name imports,
//! the historical price epochs, token payments, subdomains).
//!
//! ```
//! use vc_names::{NamesApp, NamesConfig};
//! use vc_engine::Application;
//!
//! let app = NamesApp::new(NamesConfig::regtest(101));
//! assert_eq!(app.spec().magic, b"id");
//! ```

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod app;
pub mod build;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
pub mod history;
pub mod price;
pub mod scenario;
pub mod state;
pub mod wire;

pub use app::{
    NamesApp, NamesConfig, NamesOp, ParamsError, all_names, burn_script, default_registry_script,
    lookup_name, lookup_namespace,
};
pub use wire::NameOp;
