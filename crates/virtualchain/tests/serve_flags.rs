//! `virtualchain serve`'s event and CORS flags are checked before it serves: an https webhook
//! is an invalid argument, and `--cors-origin` with `--no-cors` is a usage error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use vc_chash::Scheme;
use vc_testnode::synthetic;

fn serve(db: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_webhooks_and_conflicting_cors_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    drop(synthetic::create(&db, Scheme::V2, 100, 3).unwrap());
    let (code, err) = serve(&db, &["--webhook", "https://example.com/hook"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("--webhook") && err.contains("https"), "{err}");
    let (code, err) = serve(&db, &["--webhook", "not a url"]);
    assert_eq!(code, Some(65), "{err}");
    let (code, err) = serve(&db, &["--cors-origin", "http://a.example", "--no-cors"]);
    assert_eq!(code, Some(2), "{err}");
}
