//! Exit codes: each kind of failure a script may want to tell apart has its own, following
//! BSD's `sysexits.h` where one fits.
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | success |
//! | 1 | the command ran and the answer is no (a consensus hash differs), or an error of no class below |
//! | 2 | usage: an unknown flag, a missing or malformed argument (clap) |
//! | 65 | bad data in an argument or input file: an invalid WIF key, name, hex string or snapshot |
//! | 66 | missing or unreadable input: the database file, the blocks directory, a fixture |
//! | 69 | the block source is unavailable: unreachable, refusing the credentials, or failing |
//! | 74 | the database cannot be read or written: I/O failure or corruption |
//! | 76 | the block source answered something impossible: malformed, mismatched or unproven data |
//! | 78 | a foreign database or a wrong setting: not a virtualchain file, another application's, another network's |
//!
//! The error is printed as one line on standard error either way. A reader that closes standard
//! output early (`virtualchain status | head -1`) ends the command quietly with 0; a failure to
//! write it otherwise (a full disk) is 74.

use std::process::ExitCode;

use vc_engine::EngineError;
use vc_source::SourceError;
use vc_store::StoreError;

/// The table above, for `--help`.
pub const SUMMARY: &str = "Exit codes: 0 success; 1 a negative answer or another error; \
2 usage; 65 bad data in an argument or file (key, name, hex, snapshot); 66 missing or unreadable \
input (database, blocks directory); 69 block source unavailable; 74 database I/O or corruption; \
76 block source answered something impossible; 78 foreign database or wrong setting \
(another application or network).";

/// Usage errors (clap's own code).
pub const USAGE: u8 = 2;
/// Bad data in an argument or an input file.
pub const DATA: u8 = 65;
/// A missing or unreadable input.
pub const NO_INPUT: u8 = 66;
/// The source is unavailable.
pub const UNAVAILABLE: u8 = 69;
/// The database cannot be read or written.
pub const IO: u8 = 74;
/// The source answered something impossible.
pub const PROTOCOL: u8 = 76;
/// A foreign database or a wrong setting.
pub const CONFIG: u8 = 78;

/// A problem with what the user gave the CLI, found by the CLI itself.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A required argument is missing, or arguments that exclude each other were both given.
    #[error("{0}")]
    Usage(&'static str),
    /// A file or directory that must exist does not.
    #[error("{0} does not exist")]
    Missing(String),
    /// A path that exists (or is a link) but cannot be used as the input it names: a
    /// directory where a file is needed, a symbolic-link loop, no permission.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The path.
        path: String,
        /// What it is, or the system's error.
        reason: String,
    },
    /// An argument that parsed as text but is not valid.
    #[error("{what}: {detail}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The database belongs to another application, or its settings cannot be used.
    #[error("{0}")]
    Foreign(String),
    /// A setting is missing or cannot be used (configuration, data directory).
    #[error("{0}")]
    Config(String),
    /// The source cannot be reached as configured (no cookie file: the node is not running,
    /// or another data directory).
    #[error("{0}")]
    Unavailable(String),
}

/// `error` on one line: its message and each cause joined with ": ", leaving out a cause whose
/// text the line already has (many errors repeat their source in their own message).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// What a person can do about `error`, when the binary knows more than the error says: after a
/// fork deeper than the automatic limit, the three `virtualchain recover` commands, filled in.
pub fn remedies(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| match cause.downcast_ref::<EngineError>()? {
        EngineError::DeepReorg {
            db,
            fork_height,
            new_branch_hash,
            ..
        } => {
            let db = db.display();
            Some(format!(
                "Recovery options:\n  \
                 1. revert to the fork (any depth, in time proportional to it), then index the new branch:\n       \
                 virtualchain recover revert --db {db} --to {fork_height}\n  \
                 2. accept a checkpoint the application's developers publish for the new branch:\n       \
                 virtualchain recover checkpoint --db {db} --snapshot SNAPSHOT --trusted HEIGHT:CONSENSUS_HASH\n  \
                 3. stay on the old branch as a separate deployment:\n       \
                 virtualchain recover split --db {db} --fork-height {fork_height}\n     \
                 and keep the node on it: bitcoin-cli invalidateblock {new_branch_hash}",
            ))
        }
        _ => None,
    })
}

/// The exit code for a failed command: the class of the first cause in `error`'s chain that
/// has one (wrappers such as [`EngineError::Source`] defer to their cause).
pub fn code_for(error: &anyhow::Error) -> u8 {
    error.chain().find_map(class).unwrap_or(1)
}

/// [`code_for`] as an [`ExitCode`].
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_for(error))
}

fn class(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<InputError>() {
        return Some(match e {
            InputError::Usage(_) => USAGE,
            InputError::Missing(_) | InputError::Unreadable { .. } => NO_INPUT,
            InputError::Invalid { .. } => DATA,
            InputError::Foreign(_) | InputError::Config(_) => CONFIG,
            InputError::Unavailable(_) => UNAVAILABLE,
        });
    }
    if let Some(e) = cause.downcast_ref::<EngineError>() {
        return match e {
            EngineError::Source(_) | EngineError::Store(_) => None,
            EngineError::WrongNetwork { .. }
            | EngineError::NeedsMarkers { .. }
            | EngineError::Spec(_) => Some(CONFIG),
            // Spent outputs that cannot be right: the source is broken or lying.
            EngineError::BadBlock { .. } => Some(PROTOCOL),
            _ => Some(1),
        };
    }
    if let Some(e) = cause.downcast_ref::<SourceError>() {
        return Some(match e {
            SourceError::Transport { .. }
            | SourceError::BadCredentials { .. }
            | SourceError::Node { .. } => UNAVAILABLE,
            SourceError::WrongNetwork { .. } => CONFIG,
            SourceError::File { .. } => NO_INPUT,
            SourceError::Malformed { .. }
            | SourceError::Mismatch { .. }
            | SourceError::Unverified { .. }
            | SourceError::NotFound { .. }
            | SourceError::Pruned { .. } => PROTOCOL,
            _ => 1,
        });
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return Some(match e {
            StoreError::NotAStore { .. } | StoreError::Mismatch { .. } => CONFIG,
            StoreError::Snapshot { .. } => DATA,
            StoreError::Db { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Damaged { .. }
            | StoreError::NeedsRecovery { .. }
            | StoreError::Inconsistent(_)
            | StoreError::Io { .. } => IO,
            _ => 1,
        });
    }
    if let Some(e) = cause.downcast_ref::<vc_names::build::BuildError>() {
        return Some(match e {
            vc_names::build::BuildError::Wif(_)
            | vc_names::build::BuildError::Uncompressed
            | vc_names::build::BuildError::Name(_) => DATA,
            _ => 1,
        });
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        return match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => Some(NO_INPUT),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use anyhow::Context;
    use clap::Parser;

    #[test]
    fn every_remedy_of_a_deep_reorg_is_a_command_that_parses() {
        let err = anyhow::Error::new(EngineError::DeepReorg {
            db: "/var/lib/vc/names.redb".into(),
            fork_height: 800,
            depth: 150,
            tip: 950,
            limit: 100,
            new_branch_hash: "00000000000000000001c6b3b0f6bd8b0d5c6be7f4c1e6a4a2c9bb7d2b1d7a3f"
                .parse()
                .unwrap(),
        })
        .context("indexing");
        assert_eq!(code_for(&err), 1);
        let advice = remedies(&err).unwrap();
        let commands: Vec<&str> = advice
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("virtualchain "))
            .collect();
        assert_eq!(commands.len(), 3, "{advice}");
        for command in commands {
            let args = command.split_whitespace();
            crate::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{command}: {e}"));
        }
        assert!(
            advice.contains("recover revert --db /var/lib/vc/names.redb --to 800")
                && advice.contains("--fork-height 800")
        );
        assert!(advice.contains("invalidateblock 00000000000000000001c6b3"));
        // Other errors get no advice.
        assert!(remedies(&anyhow::anyhow!("something else")).is_none());
    }

    #[test]
    fn a_cause_the_message_already_says_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("listening on 127.0.0.1:1: {source}")]
        struct Bind {
            #[source]
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let err = anyhow::Error::new(Bind { source: io }).context("starting the server");
        assert_eq!(
            one_line(&err),
            "starting the server: listening on 127.0.0.1:1: address in use"
        );
        let plain = Err::<(), _>(std::io::Error::other("disk full"))
            .context("writing x")
            .unwrap_err();
        assert_eq!(one_line(&plain), "writing x: disk full");
    }

    fn source(e: SourceError) -> anyhow::Error {
        // As the engine reports it, under the CLI's own context.
        Err::<(), _>(EngineError::Source(e))
            .context("indexing")
            .unwrap_err()
    }

    #[test]
    fn each_class_of_cause_has_its_code_through_wrappers_and_context() {
        let transport = SourceError::Transport {
            source_name: "core-rpc",
            what: "getblockcount".into(),
            source: "refused".into(),
        };
        assert_eq!(code_for(&source(transport)), UNAVAILABLE);
        let lie = SourceError::Mismatch {
            source_name: "core-rest",
            detail: "asked for block x, got block y".into(),
        };
        assert_eq!(code_for(&source(lie)), PROTOCOL);
        let network = SourceError::WrongNetwork {
            source_name: "core-rpc",
            expected: bitcoin::Network::Bitcoin,
            found: "regtest".into(),
        };
        assert_eq!(code_for(&source(network)), CONFIG);
        let bad_block = EngineError::BadBlock {
            height: 7,
            hash: bitcoin::BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
            txid: bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
            detail: "outputs worth more than their inputs".into(),
        };
        assert_eq!(code_for(&anyhow::Error::new(bad_block)), PROTOCOL);
        let foreign = StoreError::NotAStore {
            path: "notes.txt".into(),
        };
        assert_eq!(code_for(&anyhow::Error::new(foreign)), CONFIG);
        let corrupt = StoreError::Inconsistent("no tip".into());
        assert_eq!(code_for(&anyhow::Error::new(corrupt)), IO);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            code_for(&Err::<(), _>(missing).context("reading x").unwrap_err()),
            NO_INPUT
        );
        assert_eq!(
            code_for(&anyhow::Error::new(InputError::Usage("--db is required"))),
            USAGE
        );
        assert_eq!(code_for(&anyhow::anyhow!("something else")), 1);
    }
}
