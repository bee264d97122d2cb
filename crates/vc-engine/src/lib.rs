//! The virtualchain pipeline.
//!
//! This crate owns  application trait, block processing, reorgs, confirmations, checkpoints:the application trait (parse, prepare, check, commit, finalize, continue), the pipelined block processor with K confirmations, consensus hashes per block, checkpoints, staleness checks and automatic reorg rollback.
//!
//! It is part of the workspace layout from the start so that the dependency direction
//! (source -> codec -> engine -> chash/store) is fixed, but it exports nothing yet: its contents
//! arrive with the issue that builds it (see the project README's roadmap).
