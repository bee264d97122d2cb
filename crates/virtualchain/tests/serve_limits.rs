//! `virtualchain serve` under hostile arguments and clients: extreme numbers are usage errors
//! (exit 2), not panics, and under a real `ulimit -n` idle connections cannot lock new clients
//! out. No node needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vc_chash::Scheme;

const BIN: &str = env!("CARGO_BIN_EXE_virtualchain");

#[test]
fn extreme_numbers_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    vc_testnode::synthetic::create(&db, Scheme::V2, 100, 5).unwrap();
    for (flag, value) in [
        ("--max-in-flight", "2305843009213693952"),
        ("--max-in-flight", "0"),
        ("--max-in-flight", "18446744073709551616"),
        ("--timeout", "0"),
        ("--timeout", "2h"),
        ("--timeout", "18446744073709551615"),
        ("--timeout", "1e400"),
        ("--threads", "0"),
        ("--threads", "1000000"),
        ("--max-connections", "0"),
        ("--max-connections", "9223372036854775807"),
        ("--header-timeout", "0"),
        ("--max-fresh-window", "18446744073709551615"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args([flag, value])
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

#[cfg(unix)]
#[test]
fn idle_connections_under_a_real_open_file_limit_do_not_lock_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    vc_testnode::synthetic::create(&db, Scheme::V2, 100, 5).unwrap();
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 256 && exec \"$0\" serve --listen 127.0.0.1:0 --db \"$1\"",
            BIN,
        ])
        .arg(&db)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("url=http://") {
                let url: String = line[at + 4..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                let _ = tx.send(url);
            }
            lines.lock().unwrap().push_str(&line);
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr = url.trim_start_matches("http://").to_owned();

    // 300 silent connections, more than the server has files for.
    let silent: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(silent.len() >= 250, "{}", silent.len());
    std::thread::sleep(Duration::from_millis(300));
    let mut client = TcpStream::connect(&addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET /v1/tip HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"tip\""), "{answer}");
    std::thread::sleep(Duration::from_millis(200));
    drop(silent);
    let _ = child.kill();
    let _ = child.wait();
    let log = log.lock().unwrap().clone();
    assert!(log.contains("max_connections=216"), "{log}");
    assert!(log.contains("connection cap reached"), "{log}");
}
