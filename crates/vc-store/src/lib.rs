//! State storage for virtualchain applications on redb.
//!
//! This crate owns  chain index, accepted ops, app state, undo logs:the redb schema of an application instance: chain index with consensus hashes and the v2 accumulator, accepted operations, typed application state, per-block undo logs and seeds; it implements `vc_chash::History` so that proofs are served straight from the store.
//!
//! It is part of the workspace layout from the start so that the dependency direction
//! (source -> codec -> engine -> chash/store) is fixed, but it exports nothing yet: its contents
//! arrive with the issue that builds it (see the project README's roadmap).
