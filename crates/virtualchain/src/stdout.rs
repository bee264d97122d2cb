//! Command output on standard output: `outln!` instead of `println!`.
//!
//! `println!` panics when its reader has gone away (`virtualchain status | head -1` once printed
//! a panic and a backtrace). A command's output is what it prints last, after its work, so a
//! closed standard output ends the process quietly with success, as `virtualchain man` and
//! `chash` already do: the reader asked for no more. Any other write failure (a full disk) is
//! an I/O error, exit 74, with one line on standard error.

use std::fmt;
use std::io::{self, Write};

/// `println!` for command output: see the [module](self).
macro_rules! outln {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}

/// Writes `args` and a newline to standard output; see the [module](self).
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(i32::from(crate::exit::IO));
    }
}
