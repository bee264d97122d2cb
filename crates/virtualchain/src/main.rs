//! `virtualchain`: the command-line tool of virtualchain-rs.

// Command output goes through `outln!` (stdout.rs), which a closed pipe does not make panic;
// the workspace lint against `println!` holds here too.

#[macro_use]
mod stdout;

mod chash;
mod compare;
mod config;
mod contracts;
mod demo;
mod docs;
mod exit;
mod fetch;
mod index;
mod jsonl;
mod light;
mod logging;
mod metered;
mod metrics;
mod names;
mod network;
mod progress;
mod registry;
mod serve;
mod source;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use bitcoin::Network;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Build and check virtual blockchains on top of Bitcoin.
///
/// Every option can also be set with an environment variable (VIRTUALCHAIN_ and the option's
/// name, for example VIRTUALCHAIN_DB) or in a TOML file (--config, or virtualchain.toml in the
/// data directory); flags win over variables, variables over the file. Logs go to stderr,
/// filtered by RUST_LOG (default: info; for example RUST_LOG=vc_engine=debug shows each
/// rejected operation).
#[derive(Debug, Parser)]
#[command(
    name = "virtualchain",
    version = version(),
    about,
    long_about,
    after_help = exit::SUMMARY
)]
pub struct Cli {
    /// A TOML configuration file (default: virtualchain.toml in the data directory, if present).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// The data directory: databases default to DATA_DIR/NETWORK/APP.redb (default:
    /// $XDG_DATA_HOME/virtualchain or ~/.local/share/virtualchain).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    data_dir: Option<PathBuf>,
    /// The Bitcoin network: mainnet (or bitcoin), testnet (testnet3), testnet4, signet,
    /// regtest. An existing database knows its own; the default for a new one is mainnet.
    #[arg(long, global = true, help_heading = "Global options", value_parser = network::parse)]
    network: Option<Network>,
    /// Print results as JSON (one object, or one per line for lists) instead of text.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// How log lines are written on stderr.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The version line: the package version and, when built from a git checkout, its commit.
const fn version() -> &'static str {
    env!("VIRTUALCHAIN_VERSION_LINE")
}

/// What every command may need besides its own options.
#[derive(Clone, Debug)]
pub struct Globals {
    /// `--data-dir`, or the default.
    pub data_dir: Option<PathBuf>,
    /// `--network`, if given (flag, variable or file).
    pub network: Option<Network>,
}

impl Globals {
    /// The database path: `db` if given, else DATA_DIR/NETWORK/APP.redb (the network defaults
    /// to mainnet).
    pub fn db(&self, db: Option<PathBuf>, app: &str) -> anyhow::Result<PathBuf> {
        if let Some(db) = db {
            return Ok(db);
        }
        let dir = self.data_dir.clone().ok_or_else(|| {
            anyhow::Error::new(exit::InputError::Config(
                "no --db, and no data directory (set --data-dir, or HOME)".into(),
            ))
        })?;
        let network = self.network.unwrap_or(Network::Bitcoin);
        Ok(dir
            .join(network::dir_name(network))
            .join(format!("{app}.redb")))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consensus hashes and fast-query proofs over a chain given as JSON Lines.
    #[command(subcommand)]
    Chash(chash::ChashCommand),
    /// Index an application from a block source into a database.
    Index(Box<index::IndexArgs>),
    /// A database's tip, consensus hash and counts. Read-only: it never writes the file, and
    /// works beside a running `index` and on a read-only file. Every run checks the file
    /// (redb's page checksums, one read of the file) and recomputes the tip's consensus hash
    /// from its stored inputs; a damaged file exits 74.
    Status {
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Also replay every block's consensus hash from the stored records (a full audit).
        #[arg(long)]
        verify: bool,
    },
    /// The accepted operations of a block, one JSON object per line, as the database's
    /// application renders them.
    Ops {
        /// The database (default: DATA_DIR/NETWORK/names.redb).
        #[arg(long)]
        db: Option<PathBuf>,
        /// The block height.
        #[arg(long)]
        height: u64,
    },
    /// Write a snapshot of a database (read-only; works beside a running `index`), to back it
    /// up or publish it (`--out-dir` names it for `serve --snapshot-dir`); `recover checkpoint`
    /// installs one, and `snapshot fetch` downloads and installs one, only if it reproduces a
    /// trusted consensus hash.
    Snapshot(index::SnapshotArgs),
    /// The names application: show, list, decode, send.
    #[command(subcommand)]
    Names(names::NamesCommand),
    /// The contract platform: deploy, call, show (docs/contracts.md).
    #[command(subcommand)]
    Contracts(contracts::ContractsCommand),
    /// Recover from a fork deeper than the automatic limit.
    #[command(subcommand)]
    Recover(index::RecoverCommand),
    /// Index the committed fixture chain with the names app (no node needed).
    Demo(demo::DemoArgs),
    /// Serve a database over HTTP (JSON endpoints and proofs under /v1), read-only.
    Serve(serve::ServeArgs),
    /// Light client: verify an untrusted server's answers against a trusted consensus hash.
    /// Exit codes: 0 proven, 1 refuted, 2 unreachable or malformed.
    #[command(subcommand)]
    Light(light::LightCommand),
    /// Find the first height where two nodes' consensus hashes differ, by binary search over
    /// their servers (`GET /v1/blocks/{h}`) or databases: at most 2*ceil(log2 n)+4 requests per
    /// server for n common blocks. Prints that height, both answers and the last agreeing
    /// height. Exit codes: 0 agree, 1 diverged, 2 unreachable or malformed.
    Compare(compare::CompareArgs),
    /// Print shell completions (for example: virtualchain completions bash >
    /// /etc/bash_completion.d/virtualchain).
    Completions(docs::CompletionsArgs),
    /// Print the man page, or write every command's page into a directory.
    Man(docs::ManArgs),
    /// Print the Markdown reference of every command (docs/cli.md).
    #[command(hide = true)]
    Reference,
}

/// Parses the command line, the environment and the configuration file.
fn parse() -> Result<(Cli, Option<PathBuf>), ExitCode> {
    let command = config::with_env(Cli::command());
    let parsed = match config::parse(command, std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(config::ParseError::Clap(e)) => return Err(clap_exit(e)),
        Err(config::ParseError::Config(e)) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(exit::CONFIG));
        }
    };
    let cli = Cli::from_arg_matches(&parsed.matches).map_err(clap_exit)?;
    Ok((cli, parsed.file))
}

/// Prints a clap error (or help) and gives its exit code.
fn clap_exit(e: clap::Error) -> ExitCode {
    match e {
        e if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        e if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(exit::USAGE)
        }
        e => {
            // One line, like every other error, keeping clap's suggestions ("tip: a similar
            // argument exists") and leaving out the usage block, which is one --help away.
            let rendered = e.render().to_string();
            let mut lines = rendered
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .filter(|l| !l.starts_with("For more information"));
            let first = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_owned();
            let mut notes: Vec<&str> = lines.collect();
            notes.push("see --help");
            eprintln!("{first} ({})", notes.join("; "));
            ExitCode::from(exit::USAGE)
        }
    }
}

/// redb can panic on a damaged file; vc-store catches those panics at its boundary and reports
/// the file as damaged (exit 74). The default hook would still print each one as a crash
/// first, so panics raised inside redb are left to that one error line. Any other panic is
/// printed as usual.
fn quiet_caught_store_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info.location().is_some_and(|l| {
            let file = l.file().replace('\\', "/");
            file.contains("/redb-") || file.starts_with("redb-")
        });
        if !in_redb {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    let (cli, file) = match parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    logging::init(cli.log_format);
    if let Some(file) = file {
        tracing::debug!(file = %file.display(), "read the configuration file");
    }
    let globals = Globals {
        data_dir: cli.data_dir.clone().or_else(config::default_data_dir),
        network: cli.network,
    };
    quiet_caught_store_panics();
    let result = match cli.command {
        Command::Chash(cmd) => chash::run(cmd, cli.json),
        Command::Index(args) => index::index(*args, &globals),
        Command::Status { db, verify } => globals
            .db(db, "names")
            .and_then(|db| index::status(&db, verify, cli.json)),
        Command::Ops { db, height } => globals
            .db(db, "names")
            .and_then(|db| index::ops(&db, height)),
        Command::Snapshot(args) => index::snapshot_command(args, &globals, cli.json),
        Command::Names(cmd) => names::run(cmd, &globals),
        Command::Contracts(cmd) => contracts::run(cmd, &globals),
        Command::Recover(cmd) => index::recover(cmd, &globals, cli.json),
        Command::Demo(args) => demo::run(args, cli.json),
        Command::Serve(args) => serve::serve(args, &globals),
        Command::Light(cmd) => return light::run(cmd),
        Command::Compare(args) => return compare::run(args, cli.json),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Reference => docs::reference(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and those of its causes that it does not already say.
            eprintln!("error: {}", exit::one_line(&e));
            if let Some(advice) = exit::remedies(&e) {
                eprintln!("{advice}");
            }
            exit::exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn parses(args: &[&str]) -> Cli {
        let command = config::with_env(Cli::command());
        let argv: Vec<std::ffi::OsString> = std::iter::once("virtualchain")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from)
            .collect();
        let matches = command
            .try_get_matches_from(argv)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        Cli::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        config::with_env(Cli::command()).debug_assert();
    }

    #[test]
    fn buckets_take_one_comma_separated_list() {
        let cli = parses(&[
            "names",
            "send",
            "namespace-reveal",
            "test",
            "--reveal",
            "bcrt1qn454ga9rqwkx6ax309knw5hs0z2erz7j2ulcnh",
            "--lifetime",
            "52595",
            "--coeff",
            "250",
            "--base",
            "4",
            "--buckets",
            "6,5,4,3,2,1,0,0,0,0,0,0,0,0,0,0",
        ]);
        let text = format!("{cli:?}");
        assert!(
            text.contains("buckets: [6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"),
            "{text}"
        );
    }

    #[test]
    fn every_network_name_is_taken_by_every_command() {
        let cli = parses(&["--network", "mainnet", "names", "decode", "00"]);
        assert_eq!(cli.network, Some(Network::Bitcoin));
        let cli = parses(&["names", "decode", "00", "--network", "regtest"]);
        assert_eq!(cli.network, Some(Network::Regtest));
        let cli = parses(&["status", "--db", "x", "--network", "testnet4"]);
        assert_eq!(cli.network, Some(Network::Testnet4));
    }
}
