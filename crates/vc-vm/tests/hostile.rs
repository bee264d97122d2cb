//! The hostile-module suite: every module here tries to escape the VM's limits, and each is
//! refused when loaded or rejected per operation with a specific code, in bounded time and
//! memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use bitcoin::Network;
use vc_engine::prelude::*;
use vc_vm::{LoadError, VmApp, VmModule, codes};

use common::*;

fn load(bytes: &[u8]) -> VmApp {
    let module = VmModule::load(bytes).unwrap_or_else(|e| panic!("{e:#?}"));
    VmApp::new(Arc::new(module), Network::Regtest)
}

#[test]
fn a_well_behaved_module_loads_and_parses() {
    let bytes = module("", "", "");
    assert_eq!(one_op(&bytes), vec![]);
    let spec = load(&bytes).spec();
    assert_eq!(spec.name, "wasm:wat-test");
    assert_eq!(spec.version, "1+vm1");
    assert_eq!(spec.magic, MAGIC);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let bytes = module("(loop $l (br $l))", "", "");
    assert_eq!(parse_code(&bytes), codes::OUT_OF_FUEL);
}

#[test]
fn a_memory_bomb_is_out_of_memory() {
    // Grows memory page by page until refused: the manifest allows 4 pages.
    let bytes = module(
        "(loop $l (drop (memory.grow (i32.const 1))) (br $l))",
        "",
        "",
    );
    assert_eq!(parse_code(&bytes), codes::OUT_OF_MEMORY);
    // One huge grow at once is refused the same way, without allocating it.
    let bytes = module("(drop (memory.grow (i32.const 60000)))", "", "");
    assert_eq!(parse_code(&bytes), codes::OUT_OF_MEMORY);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let bytes = module("(call $down)", "", "(func $down (call $down))");
    assert_eq!(parse_code(&bytes), codes::STACK_OVERFLOW);
}

#[test]
fn a_module_starting_with_more_memory_than_its_manifest_allows_is_refused() {
    let bytes = module_with(&manifest(), 5, "", "", "");
    assert!(matches!(
        VmModule::load(&bytes),
        Err(LoadError::MemoryOverManifest {
            declared: 5,
            allowed: 4
        })
    ));
    let bytes = module_with(&manifest(), 60_000, "", "", "");
    assert!(matches!(
        VmModule::load(&bytes),
        Err(LoadError::Resource { what: "memory", .. })
    ));
}

#[test]
fn huge_tables_are_refused() {
    // An exported table past the limit, and a private one (refused when instantiated).
    let bytes = module("", "", r#"(table (export "t") 100000 funcref)"#);
    assert!(matches!(
        VmModule::load(&bytes),
        Err(LoadError::Resource { what: "table", .. })
    ));
    let bytes = module("", "", "(table 100000 funcref)");
    let err = VmModule::load(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::ManifestRun {
                code: codes::INSTANTIATE,
                ..
            }
        ),
        "{err:?}"
    );
    // Growing a table at run time needs reference types, which validation refuses.
    let bytes = module(
        "(drop (table.grow (ref.null func) (i32.const 100000)))",
        "",
        "(table 1 funcref)",
    );
    assert!(matches!(VmModule::load(&bytes), Err(LoadError::Invalid(_))));
}

#[test]
fn huge_data_segments_are_refused() {
    // A segment past the end of memory fails instantiation; a module over the size limit is
    // refused before it is parsed.
    let big = "\\00".repeat(70_000);
    let bytes = module("", "", &format!(r#"(data (i32.const 0) "{big}")"#));
    let err = VmModule::load(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::ManifestRun {
                code: codes::INSTANTIATE | codes::MEMORY_OUT_OF_BOUNDS,
                ..
            }
        ),
        "{err:?}"
    );
    let huge = vec![0u8; vc_vm::limits::MAX_MODULE_BYTES + 1];
    assert!(matches!(
        VmModule::load(&huge),
        Err(LoadError::TooLarge { .. })
    ));
}

#[test]
fn missing_and_mistyped_imports_are_refused() {
    let bytes = module("", "", r#"(import "vc" "clock" (func (result i64)))"#);
    assert!(
        matches!(VmModule::load(&bytes), Err(LoadError::Import { name, .. }) if name == "clock")
    );
    let bytes = module("", "", r#"(import "env" "abort" (func))"#);
    assert!(
        matches!(VmModule::load(&bytes), Err(LoadError::Import { module, .. }) if module == "env")
    );
    let bytes = module("", "", r#"(import "vc" "emit" (func $e2 (param i64)))"#);
    assert!(
        matches!(VmModule::load(&bytes), Err(LoadError::Import { name, .. }) if name == "emit")
    );
    let bytes = module("", "", r#"(import "vc" "mem" (memory 1))"#);
    assert!(VmModule::load(&bytes).is_err());
}

#[test]
fn exports_of_the_wrong_type_are_refused() {
    let text = |apply: &str| {
        let m = manifest().encode();
        format!(
            r#"(module {IMPORTS}
              (memory (export "memory") 1)
              (data (i32.const 1024) "{}")
              (func (export "vc_manifest") (call $output (i32.const 1024) (i32.const {})))
              (func (export "vc_parse"))
              {apply})"#,
            wat_string(&m),
            m.len()
        )
    };
    let load = |apply: &str| VmModule::load(&wat::parse_str(text(apply)).unwrap());
    assert!(matches!(
        load(r#"(func (export "vc_apply") (param i32))"#),
        Err(LoadError::Export {
            name: "vc_apply",
            ..
        })
    ));
    assert!(matches!(
        load(r#"(global (export "vc_apply") i32 (i32.const 0))"#),
        Err(LoadError::Export {
            name: "vc_apply",
            ..
        })
    ));
    assert!(matches!(
        load(""),
        Err(LoadError::Export {
            name: "vc_apply",
            ..
        })
    ));
    // A memory that is not exported as `memory`.
    let bytes =
        wat::parse_str(text(r#"(func (export "vc_apply"))"#).replace(r#"(export "memory")"#, ""))
            .unwrap();
    assert!(matches!(
        VmModule::load(&bytes),
        Err(LoadError::Export { name: "memory", .. })
    ));
}

#[test]
fn float_instructions_are_refused_at_validation() {
    let bytes = module("(drop (f64.add (f64.const 1) (f64.const 2)))", "", "");
    assert!(matches!(VmModule::load(&bytes), Err(LoadError::Invalid(_))));
    let bytes = module("", "", "(global f32 (f32.const 0))");
    assert!(matches!(VmModule::load(&bytes), Err(LoadError::Invalid(_))));
}

#[test]
fn a_start_function_is_refused() {
    let bytes = module("", "", "(func $s) (start $s)");
    assert!(matches!(VmModule::load(&bytes), Err(LoadError::Invalid(_))));
}

#[test]
fn modules_differing_only_in_custom_sections_are_different_applications() {
    let a = module("", "", "");
    let mut b = a.clone();
    // A custom section: id 0, size, name "x", one byte.
    b.extend_from_slice(&[0, 3, 1, b'x', 7]);
    let (ma, mb) = (VmModule::load(&a).unwrap(), VmModule::load(&b).unwrap());
    assert_eq!(ma.manifest(), mb.manifest());
    assert_ne!(ma.hash(), mb.hash());
    // The hash is in the parameters, which the store checks on every open.
    let (sa, sb) = (
        VmApp::new(Arc::new(ma), Network::Regtest).spec(),
        VmApp::new(Arc::new(mb), Network::Regtest).spec(),
    );
    assert_eq!(sa.name, sb.name);
    assert_ne!(sa.params, sb.params);
}

#[test]
fn a_trap_and_bad_host_calls_are_rejections() {
    let bytes = module("(unreachable)", "", "");
    assert_eq!(parse_code(&bytes), codes::UNREACHABLE);
    let bytes = module("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "", "");
    assert_eq!(parse_code(&bytes), codes::TRAP);
    let bytes = module("(drop (i32.load (i32.const 70000)))", "", "");
    assert_eq!(parse_code(&bytes), codes::MEMORY_OUT_OF_BOUNDS);
    // A pointer past the end of memory handed to the host.
    let bytes = module("(call $output (i32.const 65000) (i32.const 1000))", "", "");
    assert_eq!(parse_code(&bytes), codes::BAD_CALL);
    // Parse has no state.
    let bytes = module(
        "(drop (call $state_get (i32.const 2000) (i32.const 2) (i32.const 2010) (i32.const 3)))",
        "",
        "",
    );
    assert_eq!(parse_code(&bytes), codes::NO_STATE);
    // A guest's own code.
    let bytes = module(
        "(call $reject (i32.const 2020) (i32.const 4) (i32.const 2030) (i32.const 9))",
        "",
        "",
    );
    assert_eq!(parse_code(&bytes), "nope");
    // A guest may not use the VM's codes.
    let bytes = module(
        r#"(call $reject (i32.const 2040) (i32.const 6) (i32.const 2030) (i32.const 9))"#,
        "",
        r#"(data (i32.const 2040) "vm-out")"#,
    );
    assert_eq!(parse_code(&bytes), codes::BAD_CALL);
}
