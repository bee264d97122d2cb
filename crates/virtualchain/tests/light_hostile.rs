//! The light client against a hostile server (a loopback thread answering canned HTTP): the
//! server's list does not set the client's work (history de-duplicated and capped), `--timeout`
//! bounds the whole command however slowly the server answers, the server's text is escaped
//! before it is printed, and extreme arguments or a garbage proof exit 2, never 101.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A server whose `/v1/names/...` lists `history`, and whose proofs come after `delay` as a
/// 500 carrying terminal escapes (or as garbage bytes with `garbage`). Returns its URL and the
/// count of proof requests.
fn hostile(history: Vec<u64>, delay: Duration, garbage: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let proofs = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&proofs);
    let names = serde_json::json!({"state": null, "history": history}).to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (names, counter) = (names.clone(), Arc::clone(&counter));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let (status, body): (&str, Vec<u8>) = if path.starts_with("/v1/proofs/") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    if garbage {
                        ("200 OK", b"\x00garbage, not a proof".to_vec())
                    } else {
                        let message = format!("\u{1b}[2J\u{1b}]0;pwned\u{7}{}", "A".repeat(5_000));
                        let body =
                            serde_json::json!({"code": "oops\u{1b}[31m", "message": message});
                        ("500 Internal Server Error", body.to_string().into_bytes())
                    }
                } else if path.starts_with("/v1/names/") {
                    ("200 OK", names.into_bytes())
                } else {
                    ("200 OK", br#"{"app":{"first_block":100}}"#.to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    (url, proofs)
}

const TRUSTED: &str = "200:2a9148d8b13939723d2aca16c75c6d68";

fn light(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtualchain"))
        .arg("light")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

#[test]
fn one_block_listed_5000_times_is_asked_for_once_and_its_text_is_escaped() {
    let (url, proofs) = hostile(vec![150; 5_000], Duration::ZERO, false);
    let o = light(&["name", "x.id", "--server", &url, "--trusted", TRUSTED]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(proofs.load(Ordering::SeqCst), 1, "{stderr}");
    assert!(
        !o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07),
        "raw terminal escapes printed: {stderr:?}"
    );
    assert!(stderr.contains("\\u{1b}"), "{stderr}");
    assert!(
        stderr.len() < 2_000,
        "the server's message was not trimmed: {} bytes",
        stderr.len()
    );
}

#[test]
fn a_history_beyond_the_limit_is_refused_before_any_proof() {
    let (url, proofs) = hostile((100..1_101).collect(), Duration::ZERO, false);
    let o = light(&["name", "x.id", "--server", &url, "--trusted", TRUSTED]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("1001 blocks") && stderr.contains("1000"),
        "{stderr}"
    );
    assert_eq!(proofs.load(Ordering::SeqCst), 0);
}

#[test]
fn the_timeout_bounds_the_whole_command() {
    // 50 distinct blocks, each proof answered after 1 s: 50 s of work the server sets.
    let (url, proofs) = hostile((100..150).collect(), Duration::from_secs(1), false);
    let started = Instant::now();
    let o = light(&[
        "name",
        "x.id",
        "--server",
        &url,
        "--trusted",
        TRUSTED,
        "--timeout",
        "3",
    ]);
    let took = started.elapsed();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        took < Duration::from_secs(10),
        "ran {took:?} with --timeout 3"
    );
    assert!(proofs.load(Ordering::SeqCst) <= 4);
}

#[test]
fn extreme_timeouts_and_garbage_proofs_exit_2() {
    let (url, _) = hostile(vec![150], Duration::ZERO, true);
    for timeout in ["9223372036854775807", "18446744073709551615", "0"] {
        let o = light(&[
            "verify",
            "--height",
            "150",
            "--server",
            &url,
            "--trusted",
            TRUSTED,
            "--timeout",
            timeout,
        ]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "--timeout {timeout}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // A proof that does not decode is a malformed answer (2), not a refutation (1).
    let o = light(&[
        "verify",
        "--height",
        "150",
        "--server",
        &url,
        "--trusted",
        TRUSTED,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("malformed"), "{stderr}");
}
