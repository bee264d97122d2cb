//! `virtualchain`: the command-line tool of virtualchain-rs.

mod chash;
mod jsonl;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build and check virtual blockchains on top of Bitcoin.
#[derive(Debug, Parser)]
#[command(name = "virtualchain", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consensus hashes and fast-query proofs over a chain given as JSON Lines.
    #[command(subcommand)]
    Chash(chash::ChashCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chash(cmd) => chash::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes joined with ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
