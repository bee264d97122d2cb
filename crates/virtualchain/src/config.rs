//! Configuration the ecosystem's way: flags, then `VIRTUALCHAIN_*` environment variables, then
//! a TOML file, then built-in defaults, in that order of precedence.
//!
//! - **Environment.** Every long option `--some-flag` also reads `VIRTUALCHAIN_SOME_FLAG` when
//!   the flag is not given (`--help` shows each variable).
//! - **The file.** `--config PATH` (or `VIRTUALCHAIN_CONFIG`), else `virtualchain.toml` in the
//!   data directory when it exists. Its keys are long option names (`data-dir` or `data_dir`):
//!   top-level keys apply to every command that has the option, a table `[index]` to one
//!   command, `[names.send]` to a nested one; the deeper table wins. A key no command in its
//!   table's reach has is refused, so a typo is an error, not a silent default.
//!
//! The file's values become command-line options appended to the arguments, for the options
//! that neither a flag nor a variable set: clap then parses and validates them like typed ones.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The prefix of the environment variables.
pub const ENV_PREFIX: &str = "VIRTUALCHAIN_";

/// The file name looked for in the data directory.
pub const FILE_NAME: &str = "virtualchain.toml";

/// A configuration file that cannot be used (exit 78, EX_CONFIG).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        message: String,
    },
    /// A key no command in reach has, or a value of the wrong shape.
    #[error("the configuration file {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key and its table.
        message: String,
    },
}

/// The environment variable of a long option.
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.to_uppercase().replace('-', "_"))
}

/// Options taken from the command line alone, as (command, long option): the
/// nodes `compare` compares are named there. A `VIRTUALCHAIN_DB` or a top-level `db` in the
/// file, meant for the commands that work on one database, would otherwise add a third node
/// beside two `--server`s.
const COMMAND_LINE_ONLY: &[(&str, &str)] = &[("compare", "db"), ("compare", "server")];

/// Whether `--long` of `command` is in [`COMMAND_LINE_ONLY`].
fn command_line_only(command: &str, long: &str) -> bool {
    COMMAND_LINE_ONLY
        .iter()
        .any(|(c, only)| *c == command && *only == long)
}

/// `cmd` with an environment variable on every long option, recursively, except those of
/// [`COMMAND_LINE_ONLY`]. Secrets (passwords, keys, and source or RPC URLs, which may carry a
/// password) keep their values out of `--help`.
pub fn with_env(cmd: Command) -> Command {
    every_arg(
        cmd,
        &|command, arg| match arg.get_long().map(str::to_owned) {
            Some(long) if command_line_only(command, &long) => arg,
            Some(long) if long != "help" && long != "version" => {
                let secret = long.contains("pass")
                    || long == "wif"
                    || long == "source"
                    || long.ends_with("-url");
                arg.env(env_name(&long)).hide_env_values(secret)
            }
            _ => arg,
        },
    )
}

/// `cmd` with no option required, recursively: the first parse, which finds the configuration
/// file and which options the command line and environment already set.
fn relaxed(cmd: Command) -> Command {
    every_arg(cmd, &|_, arg| arg.required(false))
}

/// `cmd` with `f` applied to every argument of it and of its subcommands, recursively, with
/// the name of the command the argument belongs to.
fn every_arg(cmd: Command, f: &dyn Fn(&str, clap::Arg) -> clap::Arg) -> Command {
    let name = cmd.get_name().to_owned();
    let cmd = cmd.mut_args(|arg| f(&name, arg));
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, |sub| every_arg(sub, f))
    })
}

/// The default data directory: `$XDG_DATA_HOME/virtualchain`, else
/// `~/.local/share/virtualchain`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("virtualchain"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".local/share/virtualchain"))
}

/// What parsing the command line gave: the matches of the final parse, and the file used.
#[derive(Debug)]
pub struct Parsed {
    /// The matches (flags, environment, file and defaults merged).
    pub matches: ArgMatches,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Why parsing failed.
#[derive(Debug)]
pub enum ParseError {
    /// The command line itself (clap's error, with its suggestions).
    Clap(clap::Error),
    /// The configuration file.
    Config(ConfigError),
}

/// Parses `argv` for `cmd` (built with [`with_env`]), merging the configuration file.
pub fn parse(cmd: Command, argv: Vec<OsString>) -> Result<Parsed, ParseError> {
    let mut cmd = cmd;
    cmd.build();
    let without_file = |cmd: Command, argv: Vec<OsString>| {
        cmd.try_get_matches_from(argv)
            .map(|matches| Parsed {
                matches,
                file: None,
            })
            .map_err(ParseError::Clap)
    };
    // Help, version and real errors come from the real command, with its own texts.
    let Ok(loose) = relaxed(cmd.clone()).try_get_matches_from(&argv) else {
        return without_file(cmd, argv);
    };
    let Some(file) = config_path(&loose) else {
        return without_file(cmd, argv);
    };
    let text = std::fs::read_to_string(&file).map_err(|source| {
        ParseError::Config(ConfigError::Read {
            path: file.clone(),
            source,
        })
    })?;
    let extra = file_args(&cmd, &loose, &file, &text).map_err(ParseError::Config)?;
    let mut argv = argv;
    argv.extend(extra);
    let matches = cmd.try_get_matches_from(argv).map_err(ParseError::Clap)?;
    Ok(Parsed {
        matches,
        file: Some(file),
    })
}

/// The configuration file: `--config` (which must exist), else `virtualchain.toml` in the data
/// directory if it exists.
fn config_path(loose: &ArgMatches) -> Option<PathBuf> {
    if let Ok(Some(path)) = loose.try_get_one::<PathBuf>("config") {
        return Some(path.clone());
    }
    let dir = match loose.try_get_one::<PathBuf>("data_dir") {
        Ok(Some(dir)) => dir.clone(),
        _ => default_data_dir()?,
    };
    let path = dir.join(FILE_NAME);
    path.is_file().then_some(path)
}

/// The subcommand path of `m` (`["names", "send", "preorder"]`) and its leaf matches.
fn leaf(m: &ArgMatches) -> (Vec<String>, &ArgMatches) {
    let mut path = Vec::new();
    let mut at = m;
    while let Some((name, sub)) = at.subcommand() {
        path.push(name.to_owned());
        at = sub;
    }
    (path, at)
}

/// The command at `path` under `cmd`.
fn command_at<'c>(cmd: &'c Command, path: &[String]) -> Option<&'c Command> {
    path.iter().try_fold(cmd, |c, name| c.find_subcommand(name))
}

/// Whether `cmd` or any command under it has the long option `long`.
fn reaches(cmd: &Command, long: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_long() == Some(long))
        || cmd.get_subcommands().any(|s| reaches(s, long))
}

/// One table's settings, with its dotted name (`""` for the top level).
type Settings = BTreeMap<String, toml::Value>;

/// Splits the file into its tables, checking every key against the commands it can reach.
fn tables(
    cmd: &Command,
    file: &Path,
    table: &toml::Table,
    prefix: &[String],
    out: &mut BTreeMap<Vec<String>, Settings>,
) -> Result<(), ConfigError> {
    let Some(scope) = command_at(cmd, prefix) else {
        return Err(ConfigError::Key {
            path: file.to_owned(),
            message: format!("[{}] is not a command", prefix.join(".")),
        });
    };
    let mut settings = Settings::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        if let toml::Value::Table(sub) = value
            && scope.find_subcommand(&long).is_some()
        {
            let mut path = prefix.to_vec();
            path.push(long);
            tables(cmd, file, sub, &path, out)?;
            continue;
        }
        if !reaches(scope, &long) {
            let place = if prefix.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", prefix.join("."))
            };
            return Err(ConfigError::Key {
                path: file.to_owned(),
                message: format!("unknown key {key:?} {place}: no command there has --{long}"),
            });
        }
        settings.insert(long, value.clone());
    }
    out.insert(prefix.to_vec(), settings);
    Ok(())
}

/// The options the file adds for the command `loose` parsed: those its leaf has and neither a
/// flag nor a variable set, as `--long=value` arguments.
fn file_args(
    cmd: &Command,
    loose: &ArgMatches,
    file: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: file.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
    let mut by_table = BTreeMap::new();
    tables(cmd, file, &table, &[], &mut by_table)?;
    let (path, leaf_matches) = leaf(loose);
    let Some(leaf_cmd) = command_at(cmd, &path) else {
        return Ok(Vec::new());
    };
    // The top level, then each table on the way down: the deeper one wins.
    let mut merged = Settings::new();
    for depth in 0..=path.len() {
        if let Some(settings) = by_table.get(&path[..depth]) {
            merged.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut args = Vec::new();
    for (long, value) in merged {
        let Some(arg) = leaf_cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(&long))
        else {
            continue; // another command's option, from a shared table
        };
        if path.last().is_some_and(|c| command_line_only(c, &long)) {
            continue;
        }
        let id = arg.get_id().as_str();
        if let Some(ValueSource::CommandLine | ValueSource::EnvVariable) =
            leaf_matches.value_source(id)
        {
            continue;
        }
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let values = match &value {
            toml::Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if flag => {
                    if b {
                        args.push(OsString::from(format!("--{long}")));
                    }
                    continue;
                }
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Key {
                        path: file.to_owned(),
                        message: format!(
                            "{long:?} has a {} value; it takes a string, number or boolean",
                            other.type_str()
                        ),
                    });
                }
            };
            if flag {
                return Err(ConfigError::Key {
                    path: file.to_owned(),
                    message: format!("{long:?} is a switch: write {long} = true or false"),
                });
            }
            args.push(OsString::from(format!("--{long}={text}")));
        }
    }
    Ok(args)
}
