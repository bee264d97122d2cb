//! Contracts for the `vc-contracts` platform: implement [`Contract`] and [`crate::export_contract!`]
//! provides the module's exports (`vc_init`, `vc_call`).
//!
//! A contract is deployed in a transaction's witness and then called by operations naming a
//! method and arguments; it sees the call ([`Call`]: caller, amount paid, method, arguments,
//! block) and reads and writes its own key space ([`get`], [`put`], [`delete`]), which no other
//! contract can touch. The ABI is specified in `docs/contracts.md` section 4; it shares
//! `input_len`, `input_read`, `output`, `scratch_read`, `reject` and `log` with the
//! application ABI, so this crate's runtime (allocator, panic handler) serves both.
//!
//! ```no_run
//! use vc_vm_guest::contract::{self, Call, Contract};
//! use vc_vm_guest::Reject;
//!
//! struct Counter;
//!
//! impl Contract for Counter {
//!     fn call(_call: &Call) -> Result<Vec<u8>, Reject> {
//!         let n = contract::get_u64(b"n").unwrap_or(0) + 1;
//!         contract::put_u64(b"n", n);
//!         Ok(n.to_be_bytes().to_vec())
//!     }
//! }
//! ```
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use crate::wire::Reader;
use crate::{sys, Reject};

/// The contract ABI version this crate speaks (the first byte of a call's input).
pub const CONTRACT_ABI_VERSION: u8 = 1;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "vc")]
    extern "C" {
        pub fn scratch_read(dst: *mut u8);
        pub fn storage_get(key: *const u8, key_len: i32) -> i32;
        pub fn storage_put(key: *const u8, key_len: i32, value: *const u8, value_len: i32);
        pub fn storage_delete(key: *const u8, key_len: i32);
    }
}

fn len(b: &[u8]) -> i32 {
    if b.len() > i32::MAX as usize {
        i32::MAX
    } else {
        b.len() as i32
    }
}

/// The value at `key` in this contract's storage (1 to 256 bytes of key).
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    let n = unsafe { imports::storage_get(key.as_ptr(), len(key)) };
    #[cfg(not(target_arch = "wasm32"))]
    let n = {
        let _ = len(key);
        -1
    };
    if n < 0 {
        return None;
    }
    let mut buf = vec![0u8; n as usize];
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::scratch_read(buf.as_mut_ptr())
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = &mut buf;
    Some(buf)
}

/// Sets `key` to `value` (at most 4 096 bytes) in this contract's storage.
pub fn put(key: &[u8], value: &[u8]) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::storage_put(key.as_ptr(), len(key), value.as_ptr(), len(value))
    };
    let _ = (key, value);
}

/// Removes `key` from this contract's storage.
pub fn delete(key: &[u8]) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::storage_delete(key.as_ptr(), len(key))
    };
    let _ = key;
}

/// A `u64` value (8 bytes big-endian); `None` if absent or not 8 bytes.
pub fn get_u64(key: &[u8]) -> Option<u64> {
    let v = get(key)?;
    let mut a = [0; 8];
    a.copy_from_slice(v.get(..8).filter(|_| v.len() == 8)?);
    Some(u64::from_be_bytes(a))
}

/// Sets a `u64` value (8 bytes big-endian).
pub fn put_u64(key: &[u8], n: u64) {
    put(key, &n.to_be_bytes())
}

/// One run of a contract: what the operation that runs it says and carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `true` for the deploy's `vc_init`, `false` for a call.
    pub init: bool,
    /// The network byte (`0` bitcoin ... `4` regtest).
    pub network: u8,
    /// The contract's id: its deploy transaction's txid (internal byte order).
    pub contract: [u8; 32],
    /// The operation's txid.
    pub txid: [u8; 32],
    /// The block's height.
    pub height: u64,
    /// The block header's time.
    pub time: u32,
    /// The caller: the script of the output the operation's first input spends.
    pub caller: Vec<u8>,
    /// Satoshis paid to the platform's pay script with the operation.
    pub amount: u64,
    /// The method (empty for init).
    pub method: Vec<u8>,
    /// The arguments.
    pub args: Vec<u8>,
}

/// Decodes a call's input (`None`: another ABI version, or malformed).
pub fn read_call(input: &[u8]) -> Option<Call> {
    let mut r = Reader::new(input);
    if r.u8()? != CONTRACT_ABI_VERSION {
        return None;
    }
    let init = match r.u8()? {
        0 => true,
        1 => false,
        _ => return None,
    };
    Some(Call {
        init,
        network: r.u8()?,
        contract: r.hash()?,
        txid: r.hash()?,
        height: r.u64()?,
        time: r.u32()?,
        caller: r.bytes()?.to_vec(),
        amount: r.u64()?,
        method: r.bytes()?.to_vec(),
        args: r.bytes()?.to_vec(),
    })
}

/// A contract's rules.
pub trait Contract {
    /// Runs once when the contract is deployed (the deploy's arguments in [`Call::args`],
    /// the deployer in [`Call::caller`]). A rejection rejects the deploy. Default: nothing.
    fn init(call: &Call) -> Result<(), Reject> {
        let _ = call;
        Ok(())
    }

    /// Runs a call; the bytes returned are the call's result (at most 1 024). A rejection
    /// rejects the call, and nothing it wrote is kept.
    fn call(call: &Call) -> Result<Vec<u8>, Reject>;
}

fn finish(r: Result<Vec<u8>, Reject>) {
    match r {
        Ok(out) => sys::output(&out),
        Err(e) => sys::reject(e.code, &e.reason),
    }
}

/// The body of `vc_init` (what [`crate::export_contract!`] exports).
pub fn run_init<C: Contract>() {
    match read_call(&sys::input()) {
        Some(call) => finish(C::init(&call).map(|()| Vec::new())),
        None => sys::reject(
            "bad-input",
            "the host's input is not what this contract reads",
        ),
    }
}

/// The body of `vc_call`.
pub fn run_call<C: Contract>() {
    match read_call(&sys::input()) {
        Some(call) => finish(C::call(&call)),
        None => sys::reject(
            "bad-input",
            "the host's input is not what this contract reads",
        ),
    }
}

/// Exports a contract's entries for the [`Contract`] `$c`: `vc_init` and `vc_call`.
#[macro_export]
macro_rules! export_contract {
    ($c:ty) => {
        #[no_mangle]
        pub extern "C" fn vc_init() {
            $crate::contract::run_init::<$c>()
        }
        #[no_mangle]
        pub extern "C" fn vc_call() {
            $crate::contract::run_call::<$c>()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_input_decodes() {
        let mut input = vec![1, 1, 4];
        input.extend_from_slice(&[7; 32]);
        input.extend_from_slice(&[8; 32]);
        input.extend_from_slice(&101u64.to_be_bytes());
        input.extend_from_slice(&5u32.to_be_bytes());
        input.extend_from_slice(&[0, 0, 0, 1, 0x51]);
        input.extend_from_slice(&500u64.to_be_bytes());
        input.extend_from_slice(&[0, 0, 0, 3, b'i', b'n', b'c']);
        input.extend_from_slice(&[0, 0, 0, 1, 9]);
        let call = read_call(&input).unwrap_or_else(|| unreachable!());
        assert!(!call.init);
        assert_eq!(call.caller, vec![0x51]);
        assert_eq!(call.amount, 500);
        assert_eq!(call.method, b"inc".to_vec());
        assert_eq!(call.args, vec![9]);
        input[0] = 2;
        assert_eq!(read_call(&input), None);
    }
}
