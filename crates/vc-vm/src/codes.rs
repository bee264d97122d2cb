//! Rejection codes: the VM's own (what a module's misbehaviour costs the operation), and the
//! interning of the codes guests choose.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::limits::MAX_CODE_BYTES;

/// The hook used more fuel than the operation's budget (the manifest's fuel per operation).
pub const OUT_OF_FUEL: &str = "vm-out-of-fuel";
/// The block's fuel (the manifest's fuel per block) ran out before or during this operation.
pub const BLOCK_FUEL: &str = "vm-block-fuel";
/// The module grew its memory or table past the manifest's limit.
pub const OUT_OF_MEMORY: &str = "vm-out-of-memory";
/// The call stack grew past [`crate::limits::MAX_RECURSION_DEPTH`] or the value stack past
/// [`crate::limits::MAX_STACK_BYTES`].
pub const STACK_OVERFLOW: &str = "vm-stack-overflow";
/// The module executed `unreachable` (a Rust guest's panic).
pub const UNREACHABLE: &str = "vm-unreachable";
/// A load or store outside the module's memory.
pub const MEMORY_OUT_OF_BOUNDS: &str = "vm-memory-out-of-bounds";
/// Any other trap (division by zero, an indirect call to a null or mistyped entry, ...).
pub const TRAP: &str = "vm-trap";
/// A host call with arguments out of their bounds (a pointer outside memory, a key too long,
/// a namespace name that is not one, an opcode rejected for a guest code, ...).
pub const BAD_CALL: &str = "vm-bad-call";
/// `emit` with bytes that are not a v2 record, or more records than allowed.
pub const BAD_RECORD: &str = "vm-bad-record";
/// A state or consensus-hash call from a hook that has no state (parse, prepare).
pub const NO_STATE: &str = "vm-no-state";
/// Instantiating the module for the call failed.
pub const INSTANTIATE: &str = "vm-instantiate";
/// A guest rejection whose code is not a valid code, or one past the interning limit.
pub const GUEST: &str = "guest-reject";

/// The most distinct guest codes kept for the life of the process (they become `&'static`
/// strings); later new codes are reported as [`GUEST`] with the code in the reason.
pub const MAX_INTERNED_CODES: usize = 1_024;

static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Whether `code` may be a guest's rejection code: 1 to 32 bytes of `a-z`, `0-9`, `-`, not
/// starting with `vm-` (those are the VM's).
pub fn valid_guest_code(code: &[u8]) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_BYTES
        && !code.starts_with(b"vm-")
        && code
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The `&'static` form of a valid guest code, if it is known or there is room for it.
pub(crate) fn intern(code: &str) -> Option<&'static str> {
    // A poisoned lock still holds a valid set (an insert cannot half-happen).
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = set.get(code) {
        return Some(known);
    }
    if set.len() >= MAX_INTERNED_CODES {
        return None;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}
