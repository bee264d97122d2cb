//! `kv`: a key/value register on the VM, the example guest of `vc-vm-guest`.
//!
//! - `s` sets a key: body = key length (1 byte), key, value. The first setter owns the key;
//!   others are rejected (`not-owner`).
//! - `d` deletes a key its owner names: body = key.
//! - Two operations of one block on the same key are both turned away (`collision`).
//! - Every block's finalize records the last height seen (`meta`/`height`).
//!
//! Built by `cargo xtask guests` into `kv.wasm`.

#![no_std]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use vc_vm_guest::*;

/// A decoded operation: its opcode, key, value (empty for `d`) and sender script.
pub struct Op {
    opcode: u8,
    key: Vec<u8>,
    value: Vec<u8>,
    sender: Vec<u8>,
}

impl OpBytes for Op {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = alloc::vec![self.opcode];
        wire::put_bytes(&mut out, &self.key);
        wire::put_bytes(&mut out, &self.value);
        wire::put_bytes(&mut out, &self.sender);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = wire::Reader::new(bytes);
        Some(Op {
            opcode: r.u8()?,
            key: r.bytes()?.to_vec(),
            value: r.bytes()?.to_vec(),
            sender: r.bytes()?.to_vec(),
        })
    }
}

/// The application.
pub struct Kv;

const VALUES: &str = "values";
const OWNERS: &str = "owners";

impl App for Kv {
    type Op = Op;

    fn manifest() -> Manifest {
        let mut m = Manifest::new("kv", "1", b"kv", 1, b"sd");
        m.memory_pages = 4;
        m.fuel_per_op = 2_000_000;
        m
    }

    fn parse(ctx: &OpContext) -> Result<Op, Reject> {
        let sender = ctx
            .sender()
            .ok_or_else(|| Reject::new("no-sender", "no inputs"))?
            .script
            .to_vec();
        let body = ctx.body();
        let (key, value) = match ctx.opcode {
            b's' => {
                let (&n, rest) = body
                    .split_first()
                    .ok_or_else(|| Reject::new("malformed", "empty body"))?;
                let n = usize::from(n);
                if n == 0 || rest.len() < n {
                    return Err(Reject::new("malformed", "key length out of the body"));
                }
                (rest[..n].to_vec(), rest[n..].to_vec())
            }
            _ => (body.to_vec(), Vec::new()),
        };
        if key.is_empty() {
            return Err(Reject::new("malformed", "empty key"));
        }
        Ok(Op {
            opcode: ctx.opcode,
            key,
            value,
            sender,
        })
    }

    fn prepare(_block: &Block, ops: &[(OpContext, Op)]) -> Vec<Option<Reject>> {
        let mut counts: BTreeMap<&[u8], u32> = BTreeMap::new();
        for (_, op) in ops {
            *counts.entry(&op.key).or_insert(0) += 1;
        }
        ops.iter()
            .map(|(_, op)| {
                if counts.get(op.key.as_slice()).copied().unwrap_or(0) > 1 {
                    Some(Reject::new("collision", "two operations on one key in a block"))
                } else {
                    None
                }
            })
            .collect()
    }

    fn apply(state: &mut State, _ctx: &OpContext, op: Op) -> Result<(), Reject> {
        let owner = state.get(OWNERS, &op.key);
        if let Some(owner) = &owner {
            if *owner != op.sender {
                return Err(Reject::new("not-owner", "the key belongs to another sender"));
            }
        }
        match op.opcode {
            b's' => {
                state.put(VALUES, &op.key, &op.value);
                state.put(OWNERS, &op.key, &op.sender);
                state.emit(Record::new(b"s").bytes(&op.key).bytes(&op.value));
            }
            _ => {
                if owner.is_none() {
                    return Err(Reject::new("no-such-key", "nothing to delete"));
                }
                state.delete(VALUES, &op.key);
                state.delete(OWNERS, &op.key);
                state.emit(Record::new(b"d").bytes(&op.key));
            }
        }
        Ok(())
    }

    fn finalize(state: &mut State) {
        let height = state.block().height;
        state.put_u64("meta", b"height", height);
    }
}

export_app!(Kv);
