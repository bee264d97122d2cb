//! The host's functions, as the module imports them from `vc` (`docs/vm.md` section 4). Only
//! meaningful inside the VM: on other targets every call reports that there is no host.
#![allow(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "vc")]
    extern "C" {
        pub fn input_len() -> i32;
        pub fn input_read(dst: *mut u8);
        pub fn output(ptr: *const u8, len: i32);
        pub fn scratch_read(dst: *mut u8);
        pub fn reject(code: *const u8, code_len: i32, reason: *const u8, reason_len: i32);
        pub fn prepare_reject(
            index: i32,
            code: *const u8,
            code_len: i32,
            reason: *const u8,
            reason_len: i32,
        );
        pub fn state_get(ns: *const u8, ns_len: i32, key: *const u8, key_len: i32) -> i32;
        pub fn state_put(
            ns: *const u8,
            ns_len: i32,
            key: *const u8,
            key_len: i32,
            value: *const u8,
            value_len: i32,
        );
        pub fn state_delete(ns: *const u8, ns_len: i32, key: *const u8, key_len: i32);
        pub fn state_range(
            ns: *const u8,
            ns_len: i32,
            start: *const u8,
            start_len: i32,
            end: *const u8,
            end_len: i32,
            limit: i32,
        ) -> i32;
        pub fn emit(ptr: *const u8, len: i32);
        pub fn is_fresh(ptr: *const u8, len: i32) -> i32;
        pub fn fresh_hashes() -> i32;
        pub fn consensus_hash(height: i64) -> i32;
        pub fn log(ptr: *const u8, len: i32);
        pub fn hash(kind: i32, ptr: *const u8, len: i32, dst: *mut u8) -> i32;
    }
}

use alloc::vec;
use alloc::vec::Vec;

fn len(b: &[u8]) -> i32 {
    // The host refuses anything near 2 GiB long; saturating keeps the call well-formed.
    if b.len() > i32::MAX as usize {
        i32::MAX
    } else {
        b.len() as i32
    }
}

/// The bytes of the host's scratch buffer after a call that returned its length `n`.
fn scratch(n: i32) -> Vec<u8> {
    let mut buf = vec![0u8; n.max(0) as usize];
    #[cfg(target_arch = "wasm32")]
    unsafe {
        imports::scratch_read(buf.as_mut_ptr())
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = &mut buf;
    buf
}

macro_rules! host {
    ($call:expr, $none:expr) => {{
        #[cfg(target_arch = "wasm32")]
        let r = unsafe { $call };
        #[cfg(not(target_arch = "wasm32"))]
        let r = $none;
        r
    }};
}

/// This call's input.
pub fn input() -> Vec<u8> {
    let n = host!(imports::input_len(), 0);
    let mut buf = vec![0u8; n.max(0) as usize];
    host!(imports::input_read(buf.as_mut_ptr()), ());
    let _ = &mut buf;
    buf
}

/// Sets this call's output.
pub fn output(bytes: &[u8]) {
    host!(imports::output(bytes.as_ptr(), len(bytes)), ());
    let _ = bytes;
}

/// Rejects: the host ends the call here.
pub fn reject(code: &str, reason: &str) {
    host!(
        imports::reject(
            code.as_ptr(),
            len(code.as_bytes()),
            reason.as_ptr(),
            len(reason.as_bytes())
        ),
        ()
    );
    let _ = (code, reason);
}

/// Turns away operation `index` of the block (prepare only).
pub fn prepare_reject(index: u32, code: &str, reason: &str) {
    host!(
        imports::prepare_reject(
            index as i32,
            code.as_ptr(),
            len(code.as_bytes()),
            reason.as_ptr(),
            len(reason.as_bytes())
        ),
        ()
    );
    let _ = (index, code, reason);
}

/// The value at `key` in namespace `ns`.
pub fn state_get(ns: &str, key: &[u8]) -> Option<Vec<u8>> {
    let n = host!(
        imports::state_get(ns.as_ptr(), len(ns.as_bytes()), key.as_ptr(), len(key)),
        -1
    );
    let _ = (ns, key);
    if n < 0 {
        None
    } else {
        Some(scratch(n))
    }
}

/// Sets `key` in `ns`.
pub fn state_put(ns: &str, key: &[u8], value: &[u8]) {
    host!(
        imports::state_put(
            ns.as_ptr(),
            len(ns.as_bytes()),
            key.as_ptr(),
            len(key),
            value.as_ptr(),
            len(value)
        ),
        ()
    );
    let _ = (ns, key, value);
}

/// Removes `key` from `ns`.
pub fn state_delete(ns: &str, key: &[u8]) {
    host!(
        imports::state_delete(ns.as_ptr(), len(ns.as_bytes()), key.as_ptr(), len(key)),
        ()
    );
    let _ = (ns, key);
}

/// The encoded entries of `ns` in `[start, end)`, at most `limit`.
pub fn state_range(ns: &str, start: Option<&[u8]>, end: Option<&[u8]>, limit: u32) -> Vec<u8> {
    let (sp, sl) = start.map_or((core::ptr::null(), -1), |s| (s.as_ptr(), len(s)));
    let (ep, el) = end.map_or((core::ptr::null(), -1), |e| (e.as_ptr(), len(e)));
    let n = host!(
        imports::state_range(
            ns.as_ptr(),
            len(ns.as_bytes()),
            sp,
            sl,
            ep,
            el,
            limit as i32
        ),
        -1
    );
    let _ = (ns, sp, sl, ep, el, limit);
    scratch(n)
}

/// Emits a v2-encoded record.
pub fn emit(record: &[u8]) {
    host!(imports::emit(record.as_ptr(), len(record)), ());
    let _ = record;
}

/// Whether `ch` is a fresh consensus hash.
pub fn is_fresh(ch: &[u8]) -> bool {
    let r = host!(imports::is_fresh(ch.as_ptr(), len(ch)), 0);
    let _ = ch;
    r == 1
}

/// The encoded list of fresh consensus hashes.
pub fn fresh_hashes() -> Vec<u8> {
    scratch(host!(imports::fresh_hashes(), 0))
}

/// The consensus hash of an earlier block.
pub fn consensus_hash(height: u64) -> Option<Vec<u8>> {
    let n = host!(imports::consensus_hash(height as i64), -1);
    let _ = height;
    if n < 0 {
        None
    } else {
        Some(scratch(n))
    }
}

/// A debug line in the node's log.
pub fn log(line: &str) {
    host!(imports::log(line.as_ptr(), len(line.as_bytes())), ());
    let _ = line;
}

/// The `hash` import: digest `kind` of `data` (without a host: zeros).
fn digest<const N: usize>(kind: i32, data: &[u8]) -> [u8; N] {
    #[allow(unused_mut)]
    let mut out = [0u8; N];
    host!(
        imports::hash(kind, data.as_ptr(), len(data), out.as_mut_ptr()),
        0
    );
    let _ = (kind, data);
    out
}

/// SHA-256, computed by the host (`docs/vm.md` section 4: far cheaper in fuel than in the
/// interpreter).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    digest(0, data)
}

/// RIPEMD-160, computed by the host.
pub fn ripemd160(data: &[u8]) -> [u8; 20] {
    digest(1, data)
}

/// HASH160 (RIPEMD-160 of SHA-256), computed by the host.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    digest(2, data)
}

/// SHA-256d (SHA-256 of SHA-256), computed by the host.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    digest(3, data)
}
