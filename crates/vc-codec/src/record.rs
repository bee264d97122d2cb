//! Consensus records: the canonical bytes an application commits for each accepted operation.
//!
//! Both record encodings (legacy field lists and the v2 canonical encoding) are consensus rules,
//! so they are written once, in [`vc_chash::record`], next to the hashing of their bytes; this
//! module re-exports them so that applications keep finding them among the other codecs.

pub use vc_chash::record::{
    Record, RecordError, RecordValue, V2_RECORD_VERSION, decode_v2, encode, encode_legacy,
    encode_v2, split_legacy,
};
