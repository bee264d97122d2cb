//! The binary as an operator runs it: signals, configuration precedence, metrics and health,
//! `--version`, and `demo` from another directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_virtualchain"));
    // The tests' own environment must not leak settings in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VIRTUALCHAIN_") {
            c.env_remove(key);
        }
    }
    c.env("RUST_LOG", "info");
    c
}

fn blocks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-chain/blocks")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `index --follow` on the fixture chain, with stderr read line by line on a thread.
fn follow(db: &Path, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = bin()
        .args(["index", "--network", "regtest", "--first-block", "388"])
        .args([
            "--confirmations",
            "1",
            "--follow",
            "--poll-interval",
            "100ms",
        ])
        .arg("--source")
        .arg(format!("blk:{}", blocks().display()))
        .arg("--db")
        .arg(db)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `needle`; returns every line seen.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return seen;
            }
        }
    }
    panic!(
        "no line with {needle:?} within 60 s; saw:\n{}",
        seen.join("\n")
    );
}

fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the indexer did not exit within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `index` once over the fixture chain into `db`, with `args` after the subcommand.
fn index(db: &Path, args: &[&str]) -> Output {
    bin()
        .arg("index")
        .args(args)
        .args(["--confirmations", "1", "--source"])
        .arg(format!("blk:{}", blocks().display()))
        .arg("--db")
        .arg(db)
        .output()
        .unwrap()
}

/// The flags a new regtest database of the fixture needs.
const NEW: [&str; 4] = ["--network", "regtest", "--first-block", "388"];

fn status(db: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("status")
        .arg("--db")
        .arg(db)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn sigterm_at_the_tip_exits_0_and_leaves_a_file_every_reader_opens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let (mut child, rx) = follow(&db, &[]);
    wait_for(&rx, "waiting for block 504");
    terminate(&child);
    let exit = wait_exit(&mut child);
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM must end `index --follow` with 0"
    );
    let out = status(&db, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).to_lowercase().contains("repair"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("tip:             503"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn sigterm_while_indexing_commits_what_it_has_and_exits_0() {
    // Commit after every block, so that the signal lands between commits of a busy indexer,
    // at several points from start-up on. (A signal before the process has reached `main`
    // gets the default action, like any program's: the first log line comes after the handler
    // is installed.)
    for delay_ms in [0u64, 20, 60, 150] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("names.redb");
        let (mut child, rx) = follow(&db, &["--commit-every-block"]);
        wait_for(&rx, "creating a new database");
        std::thread::sleep(Duration::from_millis(delay_ms));
        terminate(&child);
        let exit = wait_exit(&mut child);
        assert_eq!(exit.code(), Some(0), "after {delay_ms} ms");
        if db.exists() {
            let out = status(&db, &[]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            assert!(!text(&out.stderr).to_lowercase().contains("repair"));
        }
    }
}

/// Sends one GET and returns (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let code = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (code, body)
}

#[test]
fn the_indexer_serves_metrics_and_says_when_it_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (mut child, rx) = follow(&db, &["--metrics-addr", &addr]);
    wait_for(&rx, "waiting for block 504");
    let (code, body) = get(&addr, "/healthz/ready");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["tip_height"], 503);
    assert_eq!(ready["lag_blocks"], 0);
    assert_eq!(get(&addr, "/healthz/live").0, 200);
    let (code, metrics) = get(&addr, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "vc_index_blocks_total 116",
        "vc_index_operations_accepted_total 13",
        "vc_index_tip_height 503",
        "vc_index_chain_tip_height 503",
        "vc_index_operations_rejected_total{code=\"collision\"} 2",
        "vc_index_source_request_seconds_count{method=\"block\"} 116",
        "vc_index_source_errors_total{method=\"block\"} 0",
        "vc_index_commit_seconds_count ",
        "vc_index_reorgs_total 0",
        "vc_index_forks_detected_total 0",
        "vc_index_seconds_since_last_block ",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    assert_eq!(get(&addr, "/nope").0, 404);
    // A client that never finishes its request head holds no more than its own connection.
    let _silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    terminate(&child);
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn flags_beat_variables_and_variables_beat_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let (mut child, rx) = follow(&db, &[]);
    wait_for(&rx, "waiting for block 504");
    terminate(&child);
    wait_exit(&mut child);
    let missing = dir.path().join("missing.redb");
    let config = dir.path().join("virtualchain.toml");

    // The file alone.
    std::fs::write(
        &config,
        format!("[status]\ndb = {:?}\n", db.display().to_string()),
    )
    .unwrap();
    let out = bin()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The file found in the data directory, and a top-level key.
    std::fs::write(&config, format!("db = {:?}\n", db.display().to_string())).unwrap();
    let out = bin()
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A variable beats the file.
    let out = bin()
        .args(["status", "--config"])
        .arg(&config)
        .env("VIRTUALCHAIN_DB", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing.redb"));
    // A flag beats the variable.
    let out = bin()
        .args(["status", "--config"])
        .arg(&config)
        .env("VIRTUALCHAIN_DB", &missing)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A typo in the file is an error naming the key, not a silent default; so is a table
    // that is not a command, and a file that is not TOML.
    for (file, needle) in [
        ("[index]\nconfirmation = 3\n", "\"confirmation\" in [index]"),
        ("[indx]\nfollow = true\n", "\"indx\" at the top level"),
        ("db = \n", "not valid TOML"),
    ] {
        std::fs::write(&config, file).unwrap();
        let out = status(&db, &["--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
}

#[test]
fn index_resumes_an_existing_database_without_its_network_or_first_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let first = index(&db, &[&NEW[..], &["--to", "300"]].concat());
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    // No --network, no --first-block: both come from the file (a new database would be
    // mainnet, and the regtest block files would be refused).
    let again = index(&db, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let err = text(&again.stderr);
    assert!(err.contains("13 operations accepted"), "{err}");
    assert!(err.contains("tip 503"), "{err}");
    // `mainnet` is a network name, and it disagrees with the file.
    let wrong = index(&db, &["--network", "mainnet"]);
    assert_eq!(wrong.status.code(), Some(78), "{}", text(&wrong.stderr));
}

#[test]
fn version_names_the_commit_and_demo_runs_from_anywhere() {
    let out = bin().arg("--version").output().unwrap();
    let version = text(&out.stdout);
    assert!(version.starts_with(&format!("virtualchain {}", env!("CARGO_PKG_VERSION"))));
    // Built from this checkout: the commit is in the line.
    if Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(version.contains("commit "), "{version}");
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("demo")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("matches the consensus hash recorded"));
    // --json: one object with the same answer.
    let out = bin().args(["demo", "--json"]).output().unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["matches"], true);
    assert_eq!(answer["tip_height"], 503);
    assert_eq!(answer["consensus_hash"], answer["expected_consensus_hash"]);
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_have_no_colour_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let out = index(&db, &[&NEW[..], &["--log-format", "json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(lines.iter().any(|l| l["accepted"] == 13), "{lines:?}");
    let out = index(&db, &[]);
    assert!(
        !text(&out.stderr).contains('\u{1b}'),
        "colour codes in a pipe"
    );
}

#[test]
fn the_example_configuration_file_is_valid_for_every_command() {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/virtualchain.toml.example");
    for command in [
        &["index"][..],
        &["status"],
        &["names", "list"],
        &["names", "decode", "00"],
    ] {
        let out = bin()
            .args(command)
            .arg("--config")
            .arg(&example)
            .arg("--data-dir")
            .arg("/nonexistent/virtualchain")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        // Parsed and accepted: what fails is the missing database, or the node that is not
        // running here; never the file.
        assert_ne!(out.status.code(), Some(78), "{command:?}: {err}");
        assert_ne!(out.status.code(), Some(2), "{command:?}: {err}");
        assert!(
            !err.contains("virtualchain.toml.example"),
            "{command:?}: {err}"
        );
    }
}

/// Runs `script` in a detached tmux session of `cols` columns; `None` without tmux.
fn tmux_session(name: &str, cols: u16, script: &str) -> Option<()> {
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &cols.to_string(),
            "-y",
            "20",
            script,
        ])
        .status()
        .ok()?
        .success();
    assert!(ok, "tmux new-session failed");
    Some(())
}

fn tmux_screen(name: &str) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", name])
        .output()
        .unwrap();
    text(&out.stdout)
}

#[test]
fn on_a_terminal_the_bar_says_what_it_waits_for_and_ctrl_c_leaves_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let script = format!(
        "RUST_LOG=info {} index --network regtest --first-block 388 --confirmations 1 --follow \
         --commit-every-block --source blk:{} --db {}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_virtualchain"),
        blocks().display(),
        db.display()
    );
    let session = format!("vc-progress-{}", std::process::id());
    if tmux_session(&session, 160, &script).is_none() {
        assert!(
            std::env::var_os("VC_REQUIRE_TMUX").is_none(),
            "VC_REQUIRE_TMUX is set but tmux cannot run"
        );
        eprintln!("SKIPPED: tmux is not installed; the progress bar's terminal test did not run");
        return;
    }
    let kill = || {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &session])
            .status();
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut screen = String::new();
    while Instant::now() < deadline && !screen.contains("waiting for block 504") {
        std::thread::sleep(Duration::from_millis(200));
        screen = tmux_screen(&session);
    }
    if !screen.contains("waiting for block 504") {
        kill();
        panic!("no waiting line on the terminal:\n{screen}");
    }
    // Only the waiting line: the catch-up bar was replaced, not left behind.
    assert!(!screen.contains("116/116 blocks"), "{screen}");
    let _ = Command::new("tmux")
        .args(["send-keys", "-t", &session, "C-c"])
        .status();
    while Instant::now() < deadline && !screen.contains("EXIT=") {
        std::thread::sleep(Duration::from_millis(200));
        screen = tmux_screen(&session);
    }
    kill();
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("13 operations accepted"), "{screen}");
    assert!(
        !screen.contains("waiting for block"),
        "the bar stayed on screen after Ctrl-C:\n{screen}"
    );
}

#[test]
fn a_snapshot_taken_beside_the_indexer_installs_with_recover_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.redb");
    let (mut child, rx) = follow(&db, &[]);
    wait_for(&rx, "waiting for block 504");
    // Read-only: the indexer keeps running and holding the file.
    let file = dir.path().join("names.snap");
    let out = bin()
        .args(["snapshot", "--json", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["tip_height"], 503);
    assert_eq!(written["blocks"], 116);
    assert!(!dir.path().join("names.snap.partial").exists());
    terminate(&child);
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let before = text(&status(&db, &[]).stdout);

    // Installed over the database: only if it reproduces the trusted consensus hash.
    let ch = written["consensus_hash"].as_str().unwrap();
    let wrong = format!("503:{}", "0".repeat(ch.len()));
    let refused = bin()
        .args(["recover", "checkpoint", "--db"])
        .arg(&db)
        .arg("--snapshot")
        .arg(&file)
        .args(["--trusted", &wrong])
        .output()
        .unwrap();
    assert_ne!(refused.status.code(), Some(0));
    assert_eq!(
        text(&status(&db, &[]).stdout),
        before,
        "a refused snapshot changed nothing"
    );
    let installed = bin()
        .args(["recover", "checkpoint", "--db"])
        .arg(&db)
        .arg("--snapshot")
        .arg(&file)
        .args(["--trusted", &format!("503:{ch}")])
        .output()
        .unwrap();
    assert_eq!(
        installed.status.code(),
        Some(0),
        "{}",
        text(&installed.stderr)
    );
    assert_eq!(text(&status(&db, &[]).stdout), before);
}

/// `--source-cache` keeps the blk source's block index between runs: the first run scans the
/// files and writes it, a restart reads it, and a damaged file is rebuilt, never trusted; every
/// run ends on the same tip.
#[test]
fn the_source_cache_keeps_the_block_index_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap().to_owned();
    let tips: Vec<String> = ["Scanned", "Loaded", "Rebuilt"]
        .iter()
        .enumerate()
        .map(|(run, origin)| {
            if *origin == "Rebuilt" {
                let file = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap();
                let mut bytes = std::fs::read(file.path()).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(file.path(), bytes).unwrap();
            }
            let db = dir.path().join(format!("db{run}"));
            let o = index(&db, &[&NEW[..], &["--source-cache", &cache_arg]].concat());
            let err = text(&o.stderr);
            assert!(o.status.success(), "run {run}: {err}");
            assert!(
                err.contains(&format!("origin={origin}")),
                "run {run}: {err}"
            );
            let files: Vec<String> = std::fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(files.len(), 1, "{files:?}");
            assert!(files[0].starts_with("blk-regtest-"), "{files:?}");
            let s = status(&db, &["--json"]);
            assert!(s.status.success(), "{}", text(&s.stderr));
            let out = text(&s.stdout);
            out.lines()
                .find(|l| l.contains("consensus_hash"))
                .unwrap_or(&out)
                .to_owned()
        })
        .collect();
    assert_eq!(tips[0], tips[1]);
    assert_eq!(tips[0], tips[2]);
}
