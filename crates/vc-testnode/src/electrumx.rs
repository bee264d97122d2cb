//! A regtest ElectrumX (spesmilo's `e-x` from PyPI) in front of a [`TestNode`]: the second,
//! independent Electrum server implementation the light-mode tests run against. Started on
//! 127.0.0.1 with ports chosen at run time and a temporary database, stopped on drop. Its cost
//! limits (`COST_SOFT_LIMIT`, `COST_HARD_LIMIT`, `INITIAL_CONCURRENT`) stay at their defaults,
//! so clients meet the limits public servers enforce.
//!
//! Finding the program: `ELECTRUMX_EXE` (an `electrumx_server`), else the virtualenv
//! `cargo xtask electrumx` fills (`pip install e-x==`[`ELECTRUMX_VERSION`] with `plyvel`, under
//! `$VC_CACHE_DIR/electrumx/VERSION`). Without either, [`ElectrumX::start`] returns `None`
//! after a loud message; with `VC_REQUIRE_ELECTRUMX` set (as CI does) it panics instead.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestNode, cache_root, find_exe, free_port, wait_or_kill};

/// The environment variable that names an `electrumx_server`.
pub const ELECTRUMX_EXE: &str = "ELECTRUMX_EXE";
/// Set (to anything) to make a missing ElectrumX a test failure instead of a skip.
pub const REQUIRE_ELECTRUMX_ENV: &str = "VC_REQUIRE_ELECTRUMX";
/// The `e-x` version `cargo xtask electrumx` installs: the cache key.
pub const ELECTRUMX_VERSION: &str = "2.0.0";
/// The `plyvel` (LevelDB, manylinux wheels with LevelDB inside) version installed with it.
pub const PLYVEL_VERSION: &str = "1.5.1";

/// The options the node needs for ElectrumX 2: its transaction index and its spender index
/// (`TestNode::start_with(NODE_ARGS)`).
pub const NODE_ARGS: &[&str] = &["-txindex", "-txospenderindex"];

/// The virtualenv `cargo xtask electrumx` creates (`bin/electrumx_server` inside).
pub fn electrumx_install_dir() -> Option<PathBuf> {
    Some(cache_root()?.join("electrumx").join(ELECTRUMX_VERSION))
}

/// The `electrumx_server` to run, or `None` (after a loud message) when there is none and CI
/// did not ask for one.
pub fn electrumx_exe() -> Option<PathBuf> {
    let cached = electrumx_install_dir()
        .map(|d| d.join("bin/electrumx_server"))
        .filter(|e| e.exists());
    find_exe(
        "electrumx_server",
        ELECTRUMX_EXE,
        cached,
        REQUIRE_ELECTRUMX_ENV,
        "cargo xtask electrumx",
    )
}

/// A TLS certificate chain and key for ElectrumX's `ssl://` service.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The PEM chain (leaf first).
    pub cert: PathBuf,
    /// The leaf's PEM private key.
    pub key: PathBuf,
}

/// A running ElectrumX.
pub struct ElectrumX {
    child: std::sync::Mutex<Option<Child>>,
    /// The database (`db/`) and the log (`electrumx.log`).
    dir: tempfile::TempDir,
    port: u16,
    ssl_port: Option<u16>,
}

impl std::fmt::Debug for ElectrumX {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElectrumX")
            .field("port", &self.port)
            .field("ssl_port", &self.ssl_port)
            .finish_non_exhaustive()
    }
}

impl ElectrumX {
    /// Starts ElectrumX against `node` (plain TCP) and waits until it serves the node's tip,
    /// or returns `None` when there is no ElectrumX (see the module docs). ElectrumX reads
    /// transactions through the node's indexes: start the node with [`NODE_ARGS`].
    pub fn start(node: &TestNode) -> Option<ElectrumX> {
        ElectrumX::start_with(node, None)
    }

    /// [`ElectrumX::start`], also serving TLS with `tls` on [`ElectrumX::ssl_port`].
    pub fn start_with(node: &TestNode, tls: Option<&TlsFiles>) -> Option<ElectrumX> {
        let exe = electrumx_exe()?;
        node.wait_for_txindex();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("the database directory");
        // ElectrumX logs to standard output: kept in a file, shown when it dies.
        let log = std::fs::File::create(dir.path().join("electrumx.log")).expect("a log file");
        let port = free_port();
        let ssl_port = tls.map(|_| free_port());
        let cookie = std::fs::read_to_string(node.cookie_file()).expect("the node's cookie");
        let mut services = format!("tcp://127.0.0.1:{port}");
        if let Some(p) = ssl_port {
            services.push_str(&format!(",ssl://127.0.0.1:{p}"));
        }
        let mut command = Command::new(&exe);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DB_ENGINE", "leveldb")
            .env(
                "DAEMON_URL",
                format!("http://{}@127.0.0.1:{}/", cookie.trim(), node.rpc_port()),
            )
            .env("DB_DIRECTORY", &db)
            .env("SERVICES", &services)
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("LOG_LEVEL", "info")
            // New blocks are noticed within 200 ms instead of 5 s (the tests mine often).
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "200")
            // The tests run as root in containers; ElectrumX refuses to otherwise.
            .env("ALLOW_ROOT", "1");
        if let Some(tls) = tls {
            command
                .env("SSL_CERTFILE", &tls.cert)
                .env("SSL_KEYFILE", &tls.key);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let server = ElectrumX {
            child: std::sync::Mutex::new(Some(child)),
            dir,
            port,
            ssl_port,
        };
        server.wait_synced(node);
        Some(server)
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The plain Electrum port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port on 127.0.0.1, when started with TLS.
    pub fn ssl_port(&self) -> Option<u16> {
        self.ssl_port
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Waits until ElectrumX serves `node`'s best block as its tip and nothing above it
    /// (after new blocks or a reorganisation).
    pub fn wait_synced(&self, node: &TestNode) {
        let height = node.height();
        let want = node.block_at(height).header;
        let want_hex = hex_of(&bitcoin::consensus::serialize(&want));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.exited() {
                let log = std::fs::read_to_string(self.dir.path().join("electrumx.log"))
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
                panic!("electrumx exited: {status}; the end of its log, last line first:\n{tail}");
            }
            let answer = ask_headers(self.port, height);
            if let Ok((Some(tip), None)) = &answer
                && *tip == want_hex
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "electrumx did not reach the node's tip {} at {height} in 120 s (last answer: {answer:?})",
                want.block_hash()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// On a new session (the version handshake first, as ElectrumX requires): the header at
/// `height` and at `height + 1`, as hex, `None` where the server has none.
fn ask_headers(port: u16, height: u64) -> std::io::Result<(Option<String>, Option<String>)> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut ask = |id: u32, method: &str, params: String| -> std::io::Result<serde_json::Value> {
        writeln!(
            writer,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        )?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    };
    ask(0, "server.version", r#"["vc-testnode", "1.4"]"#.into())?;
    let header = |v: serde_json::Value| v["result"].as_str().map(str::to_owned);
    let at = header(ask(1, "blockchain.block.header", format!("[{height}]"))?);
    let above = header(ask(
        2,
        "blockchain.block.header",
        format!("[{}]", height + 1),
    )?);
    Ok((at, above))
}

impl Drop for ElectrumX {
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
