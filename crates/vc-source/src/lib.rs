//! Block sources for virtualchain.
//!
//! This crate owns  Bitcoin Core (JSON-RPC + REST), Electrum and Core's blk files:the block-source abstraction (a `BlockSource` trait) and its backends: Bitcoin Core over JSON-RPC (control) and REST (bulk blocks and spent outputs), Electrum servers (headers, merkle proofs, watched scripts) and Core's `blocks/` directory (blk*.dat, rev*.dat, xor.dat).
//!
//! It is part of the workspace layout from the start so that the dependency direction
//! (source -> codec -> engine -> chash/store) is fixed, but it exports nothing yet: its contents
//! arrive with the issue that builds it (see the project README's roadmap).
