//! Compiling untrusted bytes without trusting the interpreter's parser with them first.
//!
//! wasmi 2.0.0 panics on some malformed modules instead of returning an error: a code section
//! that declares no function bodies but a large size reaches a division by zero in its
//! function-size limit check (a panic in release builds too), and some truncated bodies trip
//! its translator's debug assertions. A contract's bytes come from the chain, so such a module
//! would stop every node. [`compile`] therefore validates the bytes first with `wasmparser`
//! (the version wasmi itself uses), under the same feature set as the VM's configuration
//! (integer WebAssembly only), and hands wasmi only modules that parse and validate; a panic
//! of wasmi that remains is caught and the module refused, never the node stopped.

use wasmi::{Engine, Module};
use wasmparser::{Validator, WasmFeatures};

use crate::error::LoadError;

/// The proposals the VM allows (`crate::module::config`): no floats, SIMD, reference types,
/// several memories, tail calls, memory64 or extended constants.
fn features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::GC_TYPES
}

/// Validates `bytes` with `wasmparser` under the VM's rules (what [`compile`] does first).
pub(crate) fn validate(bytes: &[u8]) -> Result<(), LoadError> {
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| LoadError::Invalid(wasmi::Error::new(format!("{e}"))))
}

/// Validates `bytes`, then compiles them on `engine`.
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, LoadError> {
    validate(bytes)?;
    compile_validated(engine, bytes)
}

/// Compiles `bytes` that [`validate`] accepted, or that differ from such bytes only in their
/// export section (`crate::warm`'s copy), on `engine`; a panic of the interpreter is caught.
pub(crate) fn compile_validated(engine: &Engine, bytes: &[u8]) -> Result<Module, LoadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Module::new(engine, bytes))) {
        Ok(module) => module.map_err(LoadError::Invalid),
        Err(_) => Err(LoadError::Invalid(wasmi::Error::new(
            "the interpreter failed on the module's bytes",
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_code_section_without_bodies_is_refused_not_a_panic() {
        // A code section that declares 0 bodies in 13 050 bytes the module does not have.
        let bytes = b"\0asm\x01\0\0\0\x0a\xfa\x65\x00";
        let engine = Engine::new(&crate::module::config());
        assert!(matches!(
            compile(&engine, bytes),
            Err(LoadError::Invalid(_))
        ));
        assert!(matches!(
            crate::VmModule::load(bytes),
            Err(LoadError::Invalid(_))
        ));
        assert!(matches!(
            crate::contract::ContractModule::load(bytes),
            Err(LoadError::Invalid(_))
        ));
    }

    #[test]
    fn floats_are_refused_by_the_precheck_too() {
        let bytes = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "vc_call") (drop (f32.const 1))))"#,
        )
        .unwrap();
        let engine = Engine::new(&crate::module::config());
        assert!(matches!(
            compile(&engine, &bytes),
            Err(LoadError::Invalid(_))
        ));
    }
}
