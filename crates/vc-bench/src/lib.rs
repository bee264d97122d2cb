//! The end-to-end indexing benchmark behind `cargo xtask bench index` (the `vc-bench` binary).
//!
//! `vc-bench run` generates (once, cached) a mainnet-shaped regtest chain, starts a bitcoind on
//! a copy of it, and measures, each the median of `--reps` repetitions:
//!
//! 1. the raw lower bound: deserializing every block from bytes in memory;
//! 2. `virtualchain index` with the names application from the blk files;
//! 3. the same from Core REST;
//! 4. the naive baseline (one thread of `getblockhash`, `getblock <hash> 0` and
//!    `getrawtransaction` per input) feeding the same engine;
//! 5. ord with its runes index, from empty to the tip;
//!
//! plus the consensus-hash-and-commit rate of empty blocks, and the scheme comparison below. It
//! writes the figures to a JSON file and into the generated parts of `docs/benchmarks.md`.
//!
//! `scale` ([`scale`]) measures the blk index, the Electrum header cache and a deep first
//! block on a synthetic blocks directory of mainnet's length.
//!
//! `schemes` ([`v3`], also a part of `run`) indexes the small chain made for each of the
//! legacy, v2 and v3 consensus-hash schemes (same seed and shape, each embedding its scheme's
//! consensus hashes) under its scheme and compares their speed and disk use.
//!
//! `wasm` ([`wasm`], also a part of `run`) indexes the small chain with the names rules as a
//! WebAssembly module (`guests/names-bench`, run by `vc-vm`) and with the native app, refuses
//! to report unless both give the same consensus hash at every height and the same state, and
//! measures the module's speed against native, its fuel and the time spent in the VM.
//!
//! The other subcommands are its parts: `chain` (only generate the chain), `measure` (the
//! one-child wrapper that reads a command's CPU time and peak RSS) and `naive-index` (run 4's
//! indexer process).

pub mod chain;
pub mod measure;
pub mod naive;
pub mod report;
pub mod runs;
pub mod scale;
pub mod v3;
pub mod wasm;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
