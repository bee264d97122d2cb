//! The seam for drivechains: how value enters (and, later, leaves) the contract platform.
//!
//! Today a contract sees the *amount paid* with an operation: the satoshis its transaction
//! pays to the platform's pay script ([`PayScript`], a parameter of the deployment; by default
//! a provably unspendable script, so paying is burning). That is all the platform knows of
//! value on Bitcoin.
//!
//! A drivechain (BIP300/301-style sidechain) would replace exactly this boundary, and nothing
//! else of the platform:
//!
//! - **deposits**: [`Settlement::amount_paid`] would recognise a deposit to the sidechain's
//!   treasury output instead of a payment to a fixed script, and the contract would credit it
//!   as it credits a payment today;
//! - **withdrawals**: contracts would emit withdrawal requests as consensus records, and an
//!   implementation of this trait would gather a block's requests into the withdrawal bundle
//!   the miners vote on. No such method exists yet: adding one is a new version of the
//!   application (another database), as every rule change is.
//!
//! The application calls [`Settlement`] only through `&dyn Settlement`, so a drivechain is a
//! new implementation and a new parameter encoding, not a change to deploy or call.

use bitcoin::ScriptBuf;
use vc_engine::OpContext;

/// How the platform reads value moving in with an operation (and, for a drivechain, out).
pub trait Settlement: core::fmt::Debug + Send + Sync {
    /// The satoshis `ctx`'s transaction pays into the platform: what the contract sees as the
    /// amount paid. Must be a function of the transaction alone (consensus).
    fn amount_paid(&self, ctx: &OpContext) -> u64;
}

/// The settlement of this version: the amount paid is the sum of the values of the
/// transaction's outputs whose script is exactly the pay script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayScript(pub ScriptBuf);

impl Settlement for PayScript {
    fn amount_paid(&self, ctx: &OpContext) -> u64 {
        ctx.outputs
            .iter()
            .filter(|o| o.script_pubkey == self.0)
            .fold(0u64, |sum, o| sum.saturating_add(o.value.to_sat()))
    }
}

/// The default pay script: P2WSH of the one-byte script `OP_RETURN`, which no witness can
/// satisfy. Paying it burns the coins; everyone can check that from the script.
pub fn default_pay_script() -> ScriptBuf {
    let burn = ScriptBuf::from_bytes(vec![bitcoin::opcodes::all::OP_RETURN.to_u8()]);
    ScriptBuf::new_p2wsh(&burn.wscript_hash())
}
