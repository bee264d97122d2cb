//! Puts the git commit into `--version` when the binary is built from a checkout.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Writes `fixture.rs` into OUT_DIR: every file of the demo's fixture chain (`fixture/`, a link
/// to the repository's `testdata/regtest-chain`, followed when the crate is packaged), embedded
/// with `include_bytes!` so that an installed binary runs `demo` from anywhere.
fn embed_fixture() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let root = std::path::Path::new(&manifest).join("fixture");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(&root) {
                files.push((rel.to_string_lossy().into_owned(), path.clone()));
            }
        }
    }
    files.sort();
    let mut code = String::from("/// The demo's fixture chain: (path in the fixture, bytes).\n");
    code.push_str("pub static FIXTURE: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out.join("fixture.rs"), code) {
        println!("cargo:warning=writing fixture.rs: {e}");
    }
    println!("cargo:rerun-if-changed={}", root.display());
    println!("cargo:rerun-if-changed={}", root.join("blocks").display());
}

fn main() {
    embed_fixture();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let line = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=VIRTUALCHAIN_VERSION_LINE={line}");
    // A new commit or checkout changes HEAD or the ref it names (a missing file would make
    // every build rerun this script, so only files that exist are named).
    let reference = git(&["symbolic-ref", "-q", "HEAD"]);
    let mut watch = Vec::new();
    for dir in [
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ]
    .into_iter()
    .flatten()
    {
        watch.push(format!("{dir}/HEAD"));
        watch.push(format!("{dir}/packed-refs"));
        if let Some(r) = &reference {
            watch.push(format!("{dir}/{r}"));
        }
    }
    for path in watch {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
