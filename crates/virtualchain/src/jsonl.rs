//! Streaming reader for the chain input of `virtualchain chash`: one JSON object per line,
//! `{"height": H, "block_hash": "<64 hex>", "ops": ["<hex record>", ...]}`, heights consecutive,
//! plus for v3 the block's state changes in order,
//! `"state": [{"ns": "<namespace>", "key": "<hex>", "value": "<hex>" or null}, ...]`.
//!
//! Parsing runs on its own thread and hands blocks over in batches through a bounded channel,
//! so hashing and parsing overlap while memory stays bounded.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use vc_chash::{Hash256, hex};

#[derive(Deserialize)]
struct Line<'a> {
    height: u64,
    #[serde(borrow, default)]
    block_hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ops: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    state: Vec<ChangeLine<'a>>,
}

#[derive(Deserialize)]
struct ChangeLine<'a> {
    #[serde(borrow)]
    ns: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

/// One state change of a block (v3 input).
pub struct StateChange {
    /// The namespace's name, UTF-8 bytes.
    pub namespace: Vec<u8>,
    /// The key.
    pub key: Vec<u8>,
    /// The new value, or `None` when the key is deleted.
    pub value: Option<Vec<u8>>,
}

/// One block of input.
pub struct Block {
    /// Its hash in internal byte order (the input gives it in Bitcoin's display order); zero
    /// when the scheme does not use it.
    pub block_hash: Hash256,
    /// Its serialized records.
    pub records: Vec<Vec<u8>>,
    /// Its state changes, in order (v3; empty when the line has none).
    pub state: Vec<StateChange>,
}

/// Blocks per batch handed from the parser thread.
const BATCH: usize = 1024;
/// Batches in flight: bounds memory to about `BATCH * DEPTH` blocks.
const DEPTH: usize = 8;

/// Reads blocks one at a time, checking that heights run consecutively from the first block.
struct BlockReader {
    input: Box<dyn BufRead + Send>,
    name: String,
    line: String,
    line_no: u64,
    next_height: u64,
    need_block_hash: bool,
}

impl BlockReader {
    fn next_block(&mut self) -> Result<Option<Block>> {
        loop {
            self.line.clear();
            self.line_no += 1;
            let n = self
                .input
                .read_line(&mut self.line)
                .with_context(|| format!("reading {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            if !self.line.trim().is_empty() {
                break;
            }
        }
        let at = || format!("{} line {}", self.name, self.line_no);
        let parsed: Line<'_> = serde_json::from_str(&self.line).with_context(at)?;
        if parsed.height != self.next_height {
            bail!(
                "{}: expected height {}, found {} (heights must be consecutive from the first block)",
                at(),
                self.next_height,
                parsed.height
            );
        }
        self.next_height += 1;
        let block_hash = match (&parsed.block_hash, self.need_block_hash) {
            (Some(h), true) => {
                Hash256::from_display_hex(h).with_context(|| format!("{}: block_hash", at()))?
            }
            (None, true) => bail!(
                "{}: the scheme needs \"block_hash\" (v2 and v3 bind the block hash)",
                at()
            ),
            (_, false) => Hash256::ZERO,
        };
        let records = parsed
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| hex::decode(op).with_context(|| format!("{}: ops[{i}]", at())))
            .collect::<Result<Vec<_>>>()?;
        let state = parsed
            .state
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let field = |f: &str| format!("{}: state[{i}].{f}", at());
                Ok(StateChange {
                    namespace: c.ns.as_bytes().to_vec(),
                    key: hex::decode(&c.key).with_context(|| field("key"))?,
                    value: match &c.value {
                        Some(v) => Some(hex::decode(v).with_context(|| field("value"))?),
                        None => None,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Block {
            block_hash,
            records,
            state,
        }))
    }
}

/// Starts parsing `path` (standard input when `None` or `-`) on a background thread and returns
/// the stream of block batches; an error ends the stream. Parsing stops at `last_height` if given.
pub fn stream_blocks(
    path: Option<&Path>,
    first_block: u64,
    last_height: Option<u64>,
    need_block_hash: bool,
) -> Result<Receiver<Result<Vec<Block>>>> {
    let (input, name): (Box<dyn Read + Send>, String) = match path {
        Some(p) if p != Path::new("-") => (
            Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
            p.display().to_string(),
        ),
        _ => (Box::new(io::stdin()), "<stdin>".into()),
    };
    let mut reader = BlockReader {
        input: Box::new(BufReader::with_capacity(1 << 20, input)),
        name,
        line: String::new(),
        line_no: 0,
        next_height: first_block,
        need_block_hash,
    };
    let (tx, rx) = sync_channel(DEPTH);
    thread::spawn(move || {
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            let mut done = false;
            while batch.len() < BATCH {
                if last_height.is_some_and(|last| reader.next_height > last) {
                    done = true;
                    break;
                }
                match reader.next_block() {
                    Ok(Some(b)) => batch.push(b),
                    Ok(None) => {
                        done = true;
                        break;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            // A closed receiver means the consumer stopped early: nothing left to do.
            if (!batch.is_empty() && tx.send(Ok(batch)).is_err()) || done {
                return;
            }
        }
    });
    Ok(rx)
}
