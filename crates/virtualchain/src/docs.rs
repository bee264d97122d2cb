//! Documentation generated from the command-line definitions themselves, so it cannot drift:
//! shell completions, man pages, and the Markdown CLI reference (`docs/cli.md`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_complete::Shell;

/// `virtualchain completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// `virtualchain man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (virtualchain.1, virtualchain-index.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The command tree as users see it (with the environment variables).
fn command() -> Command {
    let mut cmd = crate::config::with_env(<crate::Cli as clap::CommandFactory>::command());
    cmd.build();
    cmd
}

/// Writes `bytes` to standard output; a reader that went away (`| head`) is no error.
fn emit(bytes: &[u8]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to standard output"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Prints completions for a shell.
pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "virtualchain", &mut buf);
    emit(&buf)
}

/// Prints the main man page, or writes every page into a directory.
pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let cmd = command();
    match &args.dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .context("rendering the man page")?;
            return emit(&buf);
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the Markdown reference of every command (`docs/cli.md`; `cargo xtask ci` checks it is
/// current).
pub fn reference() -> Result<ExitCode> {
    let mut cmd = command();
    let mut out = String::from(
        "# The `virtualchain` command-line reference\n\n\
         Generated from the command's own definitions by `virtualchain reference` \
         (`cargo xtask ci` fails when this file is out of date; regenerate it with \
         `cargo run -p virtualchain -- reference > docs/cli.md`).\n\n\
         Every option can also be set with the environment variable shown beside it, or in the \
         configuration file (see [operator.md](operator.md)); flags win over variables, \
         variables over the file.\n",
    );
    section(&mut cmd, &mut Vec::new(), &mut out);
    emit(out.as_bytes())
}

/// One command's section, then its subcommands'.
fn section(cmd: &mut Command, path: &mut Vec<String>, out: &mut String) {
    path.push(cmd.get_name().to_owned());
    let title = path.join(" ");
    let help = cmd.render_long_help().to_string();
    let _ = write!(out, "\n## `{title}`\n\n```text\n{}\n```\n", help.trim_end());
    let mut subs: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect();
    for sub in &mut subs {
        section(sub, path, out);
    }
    path.pop();
}
