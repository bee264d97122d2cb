//! `virtualchain chash compute | prove | verify | state-prove`.

use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use vc_chash::history::{BlockSummary, MemoryHistory, Retain};
use vc_chash::proof::{self, retention_for};
use vc_chash::state::MemoryState;
use vc_chash::{ConsensusHash, Hash256, Scheme, hex};

use crate::jsonl::{Block, stream_blocks};

/// The `chash` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChashCommand {
    /// Print `HEIGHT OPS_HASH CONSENSUS_HASH` for every block of the input, followed under v3 by
    /// the block's STATE_ROOT.
    ///
    /// Input: JSON Lines, one block per line with consecutive heights from --first-block:
    /// {"height": H, "block_hash": "64 hex digits, display order", "ops": ["hex record", ...]}.
    /// block_hash is needed by v2 and v3. Under v3 a line also lists the block's state changes,
    /// applied in order: "state": [{"ns": "names", "key": "hex", "value": "hex" or null}, ...]
    /// (null deletes the key).
    Compute {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Write the binary proof that block --height's records belong to the chain, given CH(--trusted).
    Prove {
        #[command(flatten)]
        chain: ChainArgs,
        /// The consensus hash the verifier trusts, as N:CH like everywhere else, or just its
        /// height N (the input gives CH(N); a CH that disagrees with the input is refused).
        #[arg(long, value_name = "N[:CH]")]
        trusted: String,
        /// Height M of the block to prove (first block <= M <= N).
        #[arg(long, value_name = "M")]
        height: u64,
        /// Where to write the proof.
        #[arg(long, value_name = "PROOF")]
        out: PathBuf,
    },
    /// Check a proof against a trusted consensus hash; print the block's records (hex, one per
    /// line) and exit 0 if it holds, or exit 1 with the reason.
    Verify {
        /// Consensus-hash scheme.
        #[arg(long, value_name = "legacy|v2|v3")]
        scheme: Scheme,
        /// The application's first block.
        #[arg(long, value_name = "F")]
        first_block: u64,
        /// The trusted height and consensus hash, as N:CH (CH in hex: 32 digits for legacy,
        /// 64 for v2 and v3).
        #[arg(long, value_name = "N:CH")]
        trusted: String,
        /// Height M of the block the proof is about.
        #[arg(long, value_name = "M")]
        height: u64,
        /// The proof file.
        #[arg(long, value_name = "PROOF")]
        proof: PathBuf,
    },
    /// Write the binary v3 state proof of one key as of block --height (its value then, or its
    /// absence), given CH(--trusted). The input is as for `compute --scheme v3`.
    StateProve {
        /// The application's first block: the height of the first input line.
        #[arg(long, value_name = "F")]
        first_block: u64,
        /// JSON Lines input (standard input when absent or `-`).
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The consensus hash the verifier trusts, as N:CH like everywhere else, or just its
        /// height N (the input gives CH(N); a CH that disagrees with the input is refused).
        #[arg(long, value_name = "N[:CH]")]
        trusted: String,
        /// Height M of the state to prove (first block <= M <= N).
        #[arg(long, value_name = "M")]
        height: u64,
        /// The key's namespace, as the input's "ns" gives it.
        #[arg(long, value_name = "NAME")]
        namespace: String,
        /// The key in hex, as the input's "key" gives it.
        #[arg(long, value_name = "HEX")]
        key: String,
        /// Where to write the proof.
        #[arg(long, value_name = "PROOF")]
        out: PathBuf,
    },
}

/// Arguments naming the scheme and the chain input.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// Consensus-hash scheme.
    #[arg(long, value_name = "legacy|v2|v3")]
    scheme: Scheme,
    /// The application's first block: the height of the first input line.
    #[arg(long, value_name = "F")]
    first_block: u64,
    /// JSON Lines input (standard input when absent or `-`).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

/// Parses `--trusted N:CH`. Done here rather than by clap so that, like every other
/// verification failure, a malformed value exits 1 with one line.
fn parse_trusted(s: &str) -> Result<(u64, ConsensusHash)> {
    let (n, ch) = s.split_once(':').with_context(|| {
        format!("--trusted {s:?}: expected N:CH, e.g. 1000:2a9148d8b13939723d2aca16c75c6d68")
    })?;
    let n = n
        .parse()
        .with_context(|| format!("--trusted height {n:?}"))?;
    let ch = ch
        .parse()
        .with_context(|| format!("--trusted consensus hash {ch:?}"))?;
    Ok((n, ch))
}

/// Parses `--trusted N` or `--trusted N:CH`.
fn parse_trusted_height(s: &str) -> Result<(u64, Option<ConsensusHash>)> {
    if s.contains(':') {
        let (n, ch) = parse_trusted(s)?;
        Ok((n, Some(ch)))
    } else {
        let n = s
            .parse()
            .with_context(|| format!("--trusted {s:?}: expected N or N:CH"))?;
        Ok((n, None))
    }
}

/// Runs one `chash` subcommand.
pub fn run(cmd: ChashCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        ChashCommand::Compute { chain } => compute(&chain, json),
        ChashCommand::Prove {
            chain,
            trusted,
            height,
            out,
        } => prove(&chain, &trusted, height, &out),
        ChashCommand::Verify {
            scheme,
            first_block,
            trusted,
            height,
            proof,
        } => verify(scheme, first_block, &trusted, height, &proof, json),
        ChashCommand::StateProve {
            first_block,
            input,
            trusted,
            height,
            namespace,
            key,
            out,
        } => {
            let chain = ChainArgs {
                scheme: Scheme::V3,
                first_block,
                input,
            };
            state_prove(&chain, &trusted, height, &namespace, &key, &out)
        }
    }
}

/// A chain replayed from the input: its consensus hashes and, under v3, its state.
struct Replay {
    chain: MemoryHistory,
    /// The current state (v3 only).
    state: Option<MemoryState>,
}

impl Replay {
    fn new(scheme: Scheme, first_block: u64, retain: Retain) -> Self {
        Replay {
            chain: MemoryHistory::with_retention(scheme, first_block, retain),
            state: scheme.commits_state().then(MemoryState::new),
        }
    }

    /// Appends one block, applying its state changes under v3; returns its summary and, under
    /// v3, its state root.
    fn push(&mut self, block: &Block) -> Result<(BlockSummary, Option<Hash256>)> {
        let root = match &mut self.state {
            Some(state) => Some(
                state.apply(
                    block
                        .state
                        .iter()
                        .map(|c| (c.namespace.as_slice(), c.key.as_slice(), c.value.clone())),
                ),
            ),
            None if block.state.is_empty() => None,
            None => bail!(
                "block {}: the input lists state changes, which only the v3 scheme commits (use --scheme v3)",
                self.chain.next_height()
            ),
        };
        let summary = self
            .chain
            .push_block_with_state(block.block_hash, &block.records, root);
        Ok((summary, root))
    }
}

/// Retention that keeps nothing but consensus hashes (and the v2 peaks).
fn hashes_only() -> Retain {
    Retain {
        ops_hashes: Some(Default::default()),
        block_hashes: Some(Default::default()),
        records: Some(Default::default()),
        mmr_nodes: Some(Default::default()),
    }
}

/// Buffered standard output that ends quietly when its reader goes away (`| head`).
struct Output {
    writer: BufWriter<io::StdoutLock<'static>>,
    closed: bool,
}

impl Output {
    fn new() -> Self {
        Output {
            writer: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
            closed: false,
        }
    }

    fn line(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        match writeln!(self.writer, "{args}") {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.closed = true,
            other => other?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ExitCode> {
        match self.writer.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(ExitCode::SUCCESS),
        }
    }
}

fn compute(args: &ChainArgs, json: bool) -> Result<ExitCode> {
    let need_hash = args.scheme.has_accumulator();
    let batches = stream_blocks(args.input.as_deref(), args.first_block, None, need_hash)?;
    let mut replay = Replay::new(args.scheme, args.first_block, hashes_only());
    let mut out = Output::new();
    for batch in batches {
        for block in batch? {
            let (s, root) = replay.push(&block)?;
            match (json, root) {
                (true, None) => out.line(format_args!(
                    "{{\"height\":{},\"ops_hash\":\"{}\",\"consensus_hash\":\"{}\"}}",
                    s.height, s.ops_hash, s.consensus_hash
                ))?,
                (true, Some(root)) => out.line(format_args!(
                    "{{\"height\":{},\"ops_hash\":\"{}\",\"consensus_hash\":\"{}\",\"state_root\":\"{root}\"}}",
                    s.height, s.ops_hash, s.consensus_hash
                ))?,
                (false, None) => out.line(format_args!(
                    "{} {} {}",
                    s.height, s.ops_hash, s.consensus_hash
                ))?,
                (false, Some(root)) => out.line(format_args!(
                    "{} {} {} {root}",
                    s.height, s.ops_hash, s.consensus_hash
                ))?,
            }
        }
        if out.closed {
            break;
        }
    }
    out.finish()
}

/// Replays the input up to the trusted height, keeping what a proof of block `target` needs,
/// and checks the trusted hash if one is given. Returns the chain and, under v3, the state as
/// it was after block `target`.
fn replay_to(
    args: &ChainArgs,
    trusted: &str,
    target: u64,
) -> Result<(u64, MemoryHistory, Option<MemoryState>)> {
    let (trusted, expected) = parse_trusted_height(trusted)?;
    if !(args.first_block <= target && target <= trusted) {
        bail!(
            "need first block {} <= --height {target} <= --trusted {trusted}",
            args.first_block
        );
    }
    let need_hash = args.scheme.has_accumulator();
    // Only blocks up to the trusted height matter; later lines are not read.
    let batches = stream_blocks(
        args.input.as_deref(),
        args.first_block,
        Some(trusted),
        need_hash,
    )?;
    let mut retain = retention_for(args.scheme, args.first_block, trusted, target);
    // An operation proof recomputes the target's ops hash from its records; a state proof
    // carries it.
    if let Some(ops_hashes) = &mut retain.ops_hashes {
        ops_hashes.insert(target);
    }
    let mut replay = Replay::new(args.scheme, args.first_block, retain);
    let mut state_at_target = None;
    for batch in batches {
        for block in batch? {
            let (summary, _) = replay.push(&block)?;
            if summary.height == target {
                state_at_target.clone_from(&replay.state);
            }
        }
    }
    let chain = replay.chain;
    if chain.next_height() <= trusted {
        bail!(
            "input ends at height {} before the trusted height {trusted}",
            chain.next_height().saturating_sub(1)
        );
    }
    if let (Some(want), Some((_, got))) = (expected, chain.tip())
        && want != got
    {
        bail!("--trusted {trusted}:{want} disagrees with the input, whose CH({trusted}) is {got}");
    }
    Ok((trusted, chain, state_at_target))
}

fn prove(args: &ChainArgs, trusted: &str, target: u64, out: &PathBuf) -> Result<ExitCode> {
    let (trusted, chain, _) = replay_to(args, trusted, target)?;
    let proof = proof::prove(&chain, trusted, target).map_err(|e| anyhow!("{e}"))?;
    fs::write(out, proof.encode()).with_context(|| format!("writing {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn state_prove(
    args: &ChainArgs,
    trusted: &str,
    target: u64,
    namespace: &str,
    key: &str,
    out: &PathBuf,
) -> Result<ExitCode> {
    let key = hex::decode(key).with_context(|| format!("--key {key:?}: expected hex"))?;
    let namespace = namespace.as_bytes();
    let (trusted, chain, state) = replay_to(args, trusted, target)?;
    let tree = state.context("no state at the target height")?;
    let proof = vc_chash::state::proof::prove(
        &chain,
        &tree,
        |_| tree.get(namespace, &key).map(<[u8]>::to_vec),
        trusted,
        target,
        namespace,
        &key,
    )
    .map_err(|e| anyhow!("{e}"))?;
    fs::write(out, proof.encode()).with_context(|| format!("writing {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn verify(
    scheme: Scheme,
    first_block: u64,
    trusted: &str,
    target: u64,
    path: &PathBuf,
    json: bool,
) -> Result<ExitCode> {
    let (n, ch) = parse_trusted(trusted)?;
    if !ch.fits(scheme) {
        bail!(
            "--trusted hash has {} hex characters but the {scheme} scheme uses {}",
            ch.as_bytes().len() * 2,
            scheme.hash_len() * 2
        );
    }
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let verified = proof::verify(&bytes, first_block, n, &ch, target).map_err(|e| match e {
        // Not a proof at all: bad data in an input file, not a refuted proof.
        vc_chash::VerifyError::Decode(_) => anyhow::Error::new(crate::exit::InputError::Invalid {
            what: "the proof file",
            detail: format!("{} is not a proof: {e}", path.display()),
        }),
        e => anyhow!("proof rejected: {e}"),
    })?;
    let mut out = Output::new();
    if json {
        let records: Vec<String> = verified.records.iter().map(|r| hex::encode(r)).collect();
        let mut answer = serde_json::json!({
            "proven": true,
            "height": target,
            "trusted_height": n,
            "trusted_consensus_hash": ch.to_string(),
            "records": records,
        });
        if let Some(root) = verified.state_root {
            answer["state_root"] = root.to_string().into();
        }
        out.line(format_args!("{answer}"))?;
    } else {
        for r in &verified.records {
            out.line(format_args!("{}", hex::encode(r)))?;
        }
    }
    out.finish()
}
