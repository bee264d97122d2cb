//! Running the binary from a test.

use std::process::{Command, Output};

/// Runs `virtualchain ARGS` with warnings-only logs and no database from the environment.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VIRTUALCHAIN_DB")
        .output()
        .expect("run virtualchain")
}

/// [`run`], which must succeed: its standard output.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
