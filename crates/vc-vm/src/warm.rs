//! One instance of a module kept across hook calls, reset completely before each reuse: what
//! a fresh instance per call guarantees (`docs/vm.md` section 1), for a fraction of its cost.
//!
//! A WebAssembly instance's state is its memories, tables, globals and element and data
//! segments (functions are immutable). An application module has one memory, defined by the
//! module (only functions are imported), so [`plan`] decides when the module is loaded whether
//! the rest can be reset:
//!
//! - **tables and segments** never change after instantiation when the module has no passive
//!   or declared segments and none of the instructions that write a table or drop a segment
//!   (`table.init`, `table.copy`, `elem.drop`, `memory.init`, `data.drop`, and the reference
//!   types' `table.set`, `table.grow`, `table.fill`, which validation refuses anyway): such a
//!   module is not reused;
//! - **globals** are reset to the values instantiation gave them. A module's own globals are
//!   not reachable from the host unless exported, so such a module is compiled as a copy with
//!   one more export per global ([`rewrite`]), which fresh instances (the manifest's, and any
//!   after a grow) run too: exports do not change what a module does, and its identity stays
//!   the SHA-256 of the bytes as loaded;
//! - **memory** is restored byte for byte to its image after instantiation (data segments
//!   applied). Memory cannot shrink, so an instance whose memory grew during a call is
//!   discarded and the next call instantiates afresh.
//!
//! Instantiation itself charges no fuel (wasmi 2.0.0 charges only executed instructions), so a
//! call uses the same fuel on a reused instance as on a fresh one, and its outcome never
//! depends on earlier calls.

use std::sync::{Arc, OnceLock};

use wasmi::{Global, Instance, Memory, Mutability, Store, TypedFunc, Val};
use wasmparser::{DataKind, ElementKind, Operator, Parser, Payload, TypeRef};

use crate::abi::{Hook, MEMORY_EXPORT};
use crate::host::Host;

/// The prefix of the exports [`rewrite`] adds, one per global (`<prefix><index>`). A NUL
/// starts it, so no toolchain's export collides with it; a module that has one anyway is not
/// reused.
const GLOBAL_EXPORT_PREFIX: &str = "\0vc-vm-global-";

/// Why a module is run in a fresh instance per call instead of a reused one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum NoReuse {
    /// It imports something other than functions.
    Import,
    /// It has a passive or declared data or element segment.
    PassiveSegment,
    /// An instruction changes a table or a segment (`table.init`, `table.copy`, ...).
    TableOrSegmentInstruction(&'static str),
    /// It exports a name of the kind the host adds for its globals.
    ExportName,
    /// It has no export section, or its bytes could not be read again.
    Layout,
}

/// What it takes to reuse a module's instances: the bytes with every global exported, and
/// how many globals there are.
#[derive(Debug)]
pub(crate) struct Plan {
    pub bytes: Vec<u8>,
    pub globals: u32,
}

/// Decides whether instances of the module `bytes` (already validated) can be reused, and if
/// so rewrites it with its globals exported.
pub(crate) fn plan(bytes: &[u8]) -> Result<Plan, NoReuse> {
    let mut globals = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|_| NoReuse::Layout)?;
        match payload {
            Payload::ImportSection(imports) => {
                for import in imports {
                    let import = import.map_err(|_| NoReuse::Layout)?;
                    if !matches!(import.ty, TypeRef::Func(_)) {
                        return Err(NoReuse::Import);
                    }
                }
            }
            Payload::GlobalSection(section) => globals = section.count(),
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(|_| NoReuse::Layout)?;
                    if export.name.starts_with(GLOBAL_EXPORT_PREFIX) {
                        return Err(NoReuse::ExportName);
                    }
                }
            }
            Payload::DataSection(data) => {
                for segment in data {
                    let segment = segment.map_err(|_| NoReuse::Layout)?;
                    if !matches!(segment.kind, DataKind::Active { .. }) {
                        return Err(NoReuse::PassiveSegment);
                    }
                }
            }
            Payload::ElementSection(elements) => {
                for segment in elements {
                    let segment = segment.map_err(|_| NoReuse::Layout)?;
                    if !matches!(segment.kind, ElementKind::Active { .. }) {
                        return Err(NoReuse::PassiveSegment);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().map_err(|_| NoReuse::Layout)?;
                while !ops.eof() {
                    let op = ops.read().map_err(|_| NoReuse::Layout)?;
                    if let Some(name) = mutating(&op) {
                        return Err(NoReuse::TableOrSegmentInstruction(name));
                    }
                }
            }
            _ => {}
        }
    }
    let bytes = rewrite(bytes, globals).ok_or(NoReuse::Layout)?;
    Ok(Plan { bytes, globals })
}

/// The name of an instruction that changes a table or drops a segment, if `op` is one.
fn mutating(op: &Operator<'_>) -> Option<&'static str> {
    Some(match op {
        Operator::MemoryInit { .. } => "memory.init",
        Operator::DataDrop { .. } => "data.drop",
        Operator::TableInit { .. } => "table.init",
        Operator::ElemDrop { .. } => "elem.drop",
        Operator::TableCopy { .. } => "table.copy",
        Operator::TableSet { .. } => "table.set",
        Operator::TableGrow { .. } => "table.grow",
        Operator::TableFill { .. } => "table.fill",
        _ => return None,
    })
}

/// The export name of global `index`.
fn global_export(index: u32) -> String {
    format!("{GLOBAL_EXPORT_PREFIX}{index}")
}

fn read_leb(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `bytes` with an export of each of its `globals` globals added to its export section; every
/// other section is copied unchanged. `None` if the module has no export section.
fn rewrite(bytes: &[u8], globals: u32) -> Option<Vec<u8>> {
    const EXPORT_SECTION: u8 = 7;
    const GLOBAL_KIND: u8 = 3;
    let mut out = bytes.get(..8)?.to_vec();
    let mut at = 8;
    let mut rewritten = false;
    while at < bytes.len() {
        let id = *bytes.get(at)?;
        let mut body_at = at + 1;
        let len = read_leb(bytes, &mut body_at)? as usize;
        let end = body_at.checked_add(len)?;
        let body = bytes.get(body_at..end)?;
        if id == EXPORT_SECTION {
            let mut entries_at = 0;
            let count = read_leb(body, &mut entries_at)?;
            let mut section = Vec::with_capacity(body.len() + 24 * globals as usize);
            write_leb(&mut section, count.checked_add(globals)?);
            section.extend_from_slice(body.get(entries_at..)?);
            for index in 0..globals {
                let name = global_export(index);
                write_leb(&mut section, u32::try_from(name.len()).ok()?);
                section.extend_from_slice(name.as_bytes());
                section.push(GLOBAL_KIND);
                write_leb(&mut section, index);
            }
            out.push(id);
            write_leb(&mut out, u32::try_from(section.len()).ok()?);
            out.extend_from_slice(&section);
            rewritten = true;
        } else {
            out.extend_from_slice(bytes.get(at..end)?);
        }
        at = end;
    }
    rewritten.then_some(out)
}

/// An instance kept for the next call, with what resets it.
pub(crate) struct Warm {
    pub store: Store<Host>,
    pub memory: Memory,
    hooks: [Option<TypedFunc<(), ()>>; 5],
    /// The memory as instantiation left it.
    image: Arc<Image>,
    /// Every mutable global and its value after instantiation.
    globals: Vec<(Global, Val)>,
    /// Whether a call ran since the last reset.
    used: bool,
}

impl core::fmt::Debug for Warm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Warm")
            .field("memory_bytes", &self.image.len)
            .field("globals", &self.globals.len())
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

impl Warm {
    /// Takes a freshly instantiated `instance` of `reusable`'s module for reuse: records its
    /// memory (once per module: every instantiation leaves the same bytes) and its globals.
    /// `None` if something the reset needs is missing.
    pub fn new(mut store: Store<Host>, instance: Instance, reusable: &Reusable) -> Option<Warm> {
        let memory = instance.get_memory(&store, MEMORY_EXPORT)?;
        let image = Arc::clone(
            reusable
                .image
                .get_or_init(|| Arc::new(Image::of(memory.data(&store)))),
        );
        let mut saved = Vec::new();
        for index in 0..reusable.globals {
            let global = instance.get_global(&store, &global_export(index))?;
            if global.ty(&store).mutability() == Mutability::Var {
                saved.push((global, global.get(&store)));
            }
        }
        let mut hooks = [None; 5];
        for hook in Hook::ALL {
            hooks[usize::from(hook.byte())] = instance.get_typed_func(&store, hook.export()).ok();
        }
        store.data_mut().memory = Some(memory);
        Some(Warm {
            store,
            memory,
            hooks,
            image,
            globals: saved,
            used: false,
        })
    }

    /// The export of `hook`, if the module has it.
    pub fn hook(&self, hook: Hook) -> Option<TypedFunc<(), ()>> {
        self.hooks[usize::from(hook.byte())]
    }

    /// Makes the instance what instantiation left, for the next call: memory and mutable
    /// globals restored. `false` if it cannot be (its memory grew): it must be discarded.
    pub fn reset(&mut self) -> bool {
        if !self.used {
            return true;
        }
        if !self.image.restore(self.memory.data_mut(&mut self.store)) {
            return false;
        }
        for (global, value) in &self.globals {
            if global.set(&mut self.store, value.clone()).is_err() {
                return false;
            }
        }
        self.used = false;
        true
    }

    /// Marks the instance as used by a call: the next reuse resets it first.
    pub fn mark_used(&mut self) {
        self.used = true;
    }
}

/// A memory's bytes as its runs of non-zero 64-byte chunks: a module's initial memory is
/// mostly zeros (its stack and free heap) around its data, so restoring it is a fill and a few
/// short copies instead of a copy of the whole.
#[derive(Debug)]
pub(crate) struct Image {
    /// The memory's length.
    len: usize,
    /// (offset, bytes): every non-zero byte of the memory is in one of them.
    runs: Vec<(usize, Vec<u8>)>,
}

impl Image {
    const CHUNK: usize = 64;

    fn of(bytes: &[u8]) -> Image {
        let mut runs: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, chunk) in bytes.chunks(Self::CHUNK).enumerate() {
            if chunk.iter().all(|&b| b == 0) {
                continue;
            }
            let at = i * Self::CHUNK;
            match runs.last_mut() {
                Some((start, run)) if *start + run.len() == at => run.extend_from_slice(chunk),
                _ => runs.push((at, chunk.to_vec())),
            }
        }
        Image {
            len: bytes.len(),
            runs,
        }
    }

    /// Makes `memory` the image's bytes; `false` (and `memory` untouched) if its length
    /// differs.
    fn restore(&self, memory: &mut [u8]) -> bool {
        if memory.len() != self.len {
            return false;
        }
        memory.fill(0);
        for (at, run) in &self.runs {
            match memory.get_mut(*at..*at + run.len()) {
                Some(dst) => dst.copy_from_slice(run),
                None => return false,
            }
        }
        true
    }
}

/// A module's instances can be reused (the module compiled is then the copy [`plan`] wrote).
#[derive(Debug)]
pub(crate) struct Reusable {
    /// How many globals the module has (exported by the copy as `<prefix><index>`).
    pub globals: u32,
    /// The memory instantiation leaves, taken from the first instance.
    pub image: OnceLock<Arc<Image>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn plan_of(wat: &str) -> Result<Plan, NoReuse> {
        plan(&wat::parse_str(wat).unwrap())
    }

    #[test]
    fn a_module_that_changes_a_table_or_a_segment_is_not_reused() {
        let cases = [
            (
                r#"(module (memory (export "memory") 1) (data "ab")
                   (func (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 1))))"#,
                NoReuse::TableOrSegmentInstruction("memory.init"),
            ),
            (
                r#"(module (memory (export "memory") 1) (data "ab"))"#,
                NoReuse::PassiveSegment,
            ),
            (
                r#"(module (memory (export "memory") 1) (table 1 funcref) (func $f)
                   (elem funcref (ref.func $f)))"#,
                NoReuse::PassiveSegment,
            ),
            (
                r#"(module (memory (export "memory") 1) (data (i32.const 0) "ab")
                   (func (data.drop 0)))"#,
                NoReuse::TableOrSegmentInstruction("data.drop"),
            ),
            (
                r#"(module (memory (export "memory") 1) (table 2 funcref)
                   (elem (i32.const 0) $f) (func $f)
                   (func (table.copy (i32.const 1) (i32.const 0) (i32.const 1))))"#,
                NoReuse::TableOrSegmentInstruction("table.copy"),
            ),
            (
                r#"(module (memory (export "memory") 1) (table 2 funcref)
                   (elem (i32.const 0) $f) (func $f) (func (elem.drop 0)))"#,
                NoReuse::TableOrSegmentInstruction("elem.drop"),
            ),
            (
                r#"(module (memory (export "memory") 1) (global (export "\00vc-vm-global-0") i32
                   (i32.const 0)))"#,
                NoReuse::ExportName,
            ),
            (
                r#"(module (import "vc" "m" (memory 1)) (export "memory" (memory 0)))"#,
                NoReuse::Import,
            ),
        ];
        for (wat, why) in cases {
            assert_eq!(plan_of(wat).unwrap_err(), why, "{wat}");
        }
    }

    #[test]
    fn an_image_restores_every_byte() {
        let len = 4 * 65_536;
        let mut original = vec![0u8; len];
        for (i, b) in original.iter_mut().enumerate() {
            // Data at the edges, in runs of every length and alone, and zeros between.
            if i < 3 || i % 9_973 < (i / 9_973) % 150 || i == len - 1 {
                *b = (i % 251) as u8 | 1;
            }
        }
        let image = Image::of(&original);
        assert!(image.runs.len() > 10);
        let mut memory: Vec<u8> = (0..original.len()).map(|i| (i % 7) as u8).collect();
        assert!(image.restore(&mut memory));
        assert_eq!(memory, original);
        // Another length is refused, not restored in part.
        let mut grown = vec![9u8; original.len() + 65_536];
        assert!(!image.restore(&mut grown));
        assert!(grown.iter().all(|&b| b == 9));
    }

    #[test]
    fn the_rewritten_module_exports_every_global_and_is_otherwise_the_same() {
        let wat = r#"(module (memory (export "memory") 1) (table 1 funcref)
            (elem (i32.const 0) $f)
            (global $a (mut i32) (i32.const 7)) (global $b i64 (i64.const 9))
            (data (i32.const 8) "xy")
            (func $f (export "f") (global.set $a (i32.const 1))))"#;
        let original = wat::parse_str(wat).unwrap();
        let plan = plan(&original).unwrap();
        assert_eq!(plan.globals, 2);
        let engine = wasmi::Engine::new(&crate::module::config());
        let module = crate::precheck::compile(&engine, &plan.bytes).unwrap();
        let mut names: Vec<_> = module.exports().map(|e| e.name().to_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            ["\0vc-vm-global-0", "\0vc-vm-global-1", "f", "memory"]
        );
        // Every section but the exports is byte for byte the original's.
        let sections = |bytes: &[u8]| -> Vec<(u8, Vec<u8>)> {
            let mut out = Vec::new();
            let mut at = 8;
            while at < bytes.len() {
                let id = bytes[at];
                let mut body = at + 1;
                let len = read_leb(bytes, &mut body).unwrap() as usize;
                out.push((id, bytes[body..body + len].to_vec()));
                at = body + len;
            }
            out
        };
        let (a, b) = (sections(&original), sections(&plan.bytes));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            if x.0 != 7 {
                assert_eq!(x, y);
            }
        }
    }
}
