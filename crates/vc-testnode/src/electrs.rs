//! A regtest `electrs` in front of a [`TestNode`]: started on 127.0.0.1 with ports chosen at
//! run time and a temporary index directory, stopped on drop.
//!
//! Finding the binary: `ELECTRS_EXE`, else the cache `cargo xtask electrs` fills
//! (`cargo install electrs --locked` at [`ELECTRS_VERSION`]). Without either,
//! [`Electrs::start`] returns `None` after a loud message; with `VC_REQUIRE_ELECTRS` set (as CI
//! does) it panics instead.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use electrum_client::ElectrumApi;

use crate::{TestNode, cache_root, find_exe, free_port, wait_or_kill};

/// The environment variable that names an electrs binary.
pub const ELECTRS_EXE: &str = "ELECTRS_EXE";
/// Set (to anything) to make a missing electrs a test failure instead of a skip.
pub const REQUIRE_ELECTRS_ENV: &str = "VC_REQUIRE_ELECTRS";
/// The electrs version `cargo xtask electrs` installs: the cache key.
pub const ELECTRS_VERSION: &str = "0.12.0";

/// Where `cargo xtask electrs` installs `bin/electrs`.
pub fn electrs_install_dir() -> Option<PathBuf> {
    Some(cache_root()?.join("electrs").join(ELECTRS_VERSION))
}

/// The electrs to run, or `None` (after a loud message) when there is none and CI did not ask
/// for one.
pub fn electrs_exe() -> Option<PathBuf> {
    let cached = electrs_install_dir()
        .map(|d| d.join("bin/electrs"))
        .filter(|e| e.exists());
    find_exe(
        "electrs",
        ELECTRS_EXE,
        cached,
        REQUIRE_ELECTRS_ENV,
        "cargo xtask electrs",
    )
}

/// A running electrs.
pub struct Electrs {
    /// The process (behind a lock so that `wait_synced` can notice it died).
    child: std::sync::Mutex<Option<Child>>,
    _db: tempfile::TempDir,
    port: u16,
}

impl std::fmt::Debug for Electrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Electrs")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Electrs {
    /// Starts electrs against `node` and waits until it serves the node's tip, or returns
    /// `None` when no electrs is available (see the module docs). The node must have mined at
    /// least one block (electrs waits for the node to leave initial block download).
    pub fn start(node: &TestNode) -> Option<Electrs> {
        let exe = electrs_exe()?;
        let db = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let monitoring = free_port();
        let child = Command::new(&exe)
            .args([
                "--skip-default-conf-files",
                "--network",
                "regtest",
                "--log-filters",
                "ERROR",
                "--wait-duration-secs",
                "1",
            ])
            .arg("--daemon-dir")
            .arg(node.datadir())
            .arg("--cookie-file")
            .arg(node.cookie_file())
            .arg("--daemon-rpc-addr")
            .arg(format!("127.0.0.1:{}", node.rpc_port()))
            .arg("--electrum-rpc-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--monitoring-addr")
            .arg(format!("127.0.0.1:{monitoring}"))
            .arg("--db-dir")
            .arg(db.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let electrs = Electrs {
            child: std::sync::Mutex::new(Some(child)),
            _db: db,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = electrs.exited() {
                panic!("electrs exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "electrs did not open its port in 120 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        electrs.wait_synced(node);
        Some(electrs)
    }

    /// The exit status, if the process has exited.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The Electrum port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Waits until electrs serves `node`'s best block as its tip (after new blocks or a
    /// reorganisation).
    ///
    /// It asks for the headers at the tip's height and one above, not
    /// `blockchain.headers.subscribe`: electrs 0.12.0 opens its port before it has loaded any
    /// header, and `headers.subscribe` then unwraps a missing tip and kills the server
    /// (electrum.rs:236), which made tests that started electrs fail now and then.
    /// `blockchain.block.header` answers an error instead.
    pub fn wait_synced(&self, node: &TestNode) {
        let height = node.height();
        let want = node.block_hash(height);
        let at = usize::try_from(height).expect("a height that fits usize");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.exited() {
                panic!("electrs exited: {status}");
            }
            let answer = electrum_client::Client::new(&self.url()).and_then(|c| {
                let tip = c.block_header(at)?.block_hash();
                Ok((tip, c.block_header(at + 1).is_ok()))
            });
            // Its header at the node's height is the node's tip, and it has none above.
            if let Ok((tip, false)) = &answer
                && *tip == want
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "electrs did not reach the node's tip {want} at {height} in 120 s (last answer: {answer:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Electrs {
    fn drop(&mut self) {
        let taken = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = taken {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            wait_or_kill(&mut child, Duration::from_secs(10));
        }
    }
}
