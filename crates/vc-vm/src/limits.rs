//! The fixed limits every module runs under. They are consensus rules: changing one changes
//! which operations are accepted, so a change is a new ABI version ([`crate::abi::ABI_VERSION`]).

/// The largest module accepted, in bytes.
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// The size of a WebAssembly page, in bytes.
pub const PAGE_BYTES: u64 = 65_536;

/// The most linear memory any module may declare in its manifest, in 64 KiB pages (32 MiB).
pub const MAX_MEMORY_PAGES: u32 = 512;

/// The most elements a table may hold (a module's function table).
pub const MAX_TABLE_ELEMENTS: u32 = 16_384;

/// The most fuel a manifest may give one hook call.
pub const MAX_FUEL_PER_OP: u64 = 1_000_000_000;

/// The most fuel a manifest may give one block (prepare, every apply, finalize).
pub const MAX_FUEL_PER_BLOCK: u64 = 20_000_000_000;

/// The fuel the manifest export gets when a module is loaded.
pub const MANIFEST_FUEL: u64 = 10_000_000;

/// The deepest call stack (nested wasm calls) a hook may reach.
pub const MAX_RECURSION_DEPTH: usize = 1_024;

/// The largest value stack of one call, in bytes (the interpreter's registers).
pub const MAX_STACK_BYTES: usize = 1 << 20;

/// The largest output of one hook (a parsed operation, a manifest), in bytes.
pub const MAX_OUTPUT_BYTES: usize = 64 << 10;

/// The longest namespace name.
pub const MAX_NAMESPACE_BYTES: usize = 64;

/// The longest state key.
pub const MAX_KEY_BYTES: usize = 1_024;

/// The longest state value.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// The most entries one `state_range` call returns.
pub const MAX_RANGE_ENTRIES: u32 = 1_024;

/// The most consensus records one operation may emit.
pub const MAX_RECORDS_PER_OP: usize = 64;

/// The longest record, log line or rejection reason, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4_096;

/// The longest guest rejection code.
pub const MAX_CODE_BYTES: usize = 32;

/// Fuel every host call costs on top of the instructions that made it.
pub const HOST_CALL_FUEL: u64 = 100;

/// Fuel per byte a host call moves between the guest and the host (keys, values, records,
/// scratch buffers): 1 per 8 bytes, rounded up.
pub const fn byte_fuel(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(8)
}

/// Fuel of a `hash` call per 64 bytes hashed (a block of SHA-256 or RIPEMD-160), on top of a
/// host call's.
pub const HASH_BLOCK_FUEL: u64 = 100;

/// Fuel of a `hash` call over `bytes` bytes: a host call's, the bytes moved, and each 64-byte
/// block (the padding's block included).
pub const fn hash_fuel(bytes: usize) -> u64 {
    HOST_CALL_FUEL + byte_fuel(bytes) + HASH_BLOCK_FUEL * (bytes as u64 / 64 + 1)
}
