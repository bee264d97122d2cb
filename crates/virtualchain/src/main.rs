//! `virtualchain`: the command-line tool of virtualchain-rs.

// A command-line tool prints its results; the workspace lint against `println!` guards the
// library crates.
#![allow(clippy::print_stdout)]

mod chash;
mod demo;
mod exit;
mod index;
mod jsonl;
mod light;
mod names;
mod registry;
mod serve;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build and check virtual blockchains on top of Bitcoin.
#[derive(Debug, Parser)]
#[command(name = "virtualchain", version, about, long_about = None, after_help = exit::SUMMARY)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consensus hashes and fast-query proofs over a chain given as JSON Lines.
    #[command(subcommand)]
    Chash(chash::ChashCommand),
    /// Index an application from a block source into a database.
    Index(index::IndexArgs),
    /// A database's tip, consensus hash and counts.
    Status {
        /// The database.
        #[arg(long)]
        db: std::path::PathBuf,
    },
    /// The accepted operations of a block, one JSON object per line, as the database's
    /// application renders them.
    Ops {
        /// The database.
        #[arg(long)]
        db: std::path::PathBuf,
        /// The block height.
        #[arg(long)]
        height: u64,
    },
    /// The names application: show, list, decode, send.
    #[command(subcommand)]
    Names(names::NamesCommand),
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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            // One line, like every other error; the usage is one --help away.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            return ExitCode::from(exit::USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Chash(cmd) => chash::run(cmd),
        Command::Index(args) => index::index(args),
        Command::Status { db } => index::status(&db),
        Command::Ops { db, height } => index::ops(&db, height),
        Command::Names(cmd) => names::run(cmd),
        Command::Recover(cmd) => index::recover(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Light(cmd) => return light::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes joined with ": ".
            eprintln!("error: {e:#}");
            if let Some(advice) = exit::remedies(&e) {
                eprintln!("{advice}");
            }
            exit::exit_code(&e)
        }
    }
}
