//! The Electrum client against ElectrumX (the second server implementation, which enforces the
//! protocol's handshake and cost limits) on a real regtest bitcoind, through a recording
//! forwarder, over TLS with a certificate chain made for the test, and through a SOCKS5 proxy.
//!
//! * Every connection opens with `server.version`, reconnects included; the protocol picked is
//!   1.6 (whose `blockchain.block.headers` answers a `headers` list).
//! * A refusal for too many requests is retried after a pause, a bounded number of times, and
//!   then named; words a server sends before it closes are named in the error.
//! * TLS: the client trusts the server through `?ca=` and refuses it under another CA or the
//!   web PKI's roots.
//! * SOCKS5: every connection goes through the proxy, which sees the server's address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin::{Address, Network, ScriptBuf};
use vc_source::electrum::session::SessionError;
use vc_source::electrum::{ElectrumConfig, ElectrumSource};
use vc_source::{ChainView, SourceError};
use vc_testnode::TestNode;
use vc_testnode::electrumx::{ElectrumX, NODE_ARGS, TlsFiles};

fn node_with_blocks(n: u64) -> Option<TestNode> {
    let node = TestNode::start_with(NODE_ARGS)?;
    let anyone = Address::p2wsh(&ScriptBuf::from(vec![0x51]), Network::Regtest);
    node.mine(n, &anyone);
    Some(node)
}

/// What the forwarder does to the next requests (other than `server.version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Pass everything.
    Forward,
    /// Answer the next request with ElectrumX's cost-limit error and close, `n` times.
    Refuse(usize),
    /// Send an error without a request id and close, on every request.
    Goodbye,
}

/// A line-by-line forwarder to an Electrum server that records the first method of every
/// connection and can cut connections or refuse requests.
struct Forwarder {
    port: u16,
    first_methods: Arc<Mutex<Vec<String>>>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Forwarder {
    fn start(upstream: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_methods = Arc::new(Mutex::new(Vec::new()));
        let live = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let (f, l, m) = (first_methods.clone(), live.clone(), mode.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                l.lock().unwrap().push(client.try_clone().unwrap());
                let (mut to_client, mut from_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                let (f, m) = (f.clone(), m.clone());
                std::thread::spawn(move || relay(client, server, &f, &m));
            }
        });
        Forwarder {
            port,
            first_methods,
            live,
            mode,
        }
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Breaks every open connection.
    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn first_methods(&self) -> Vec<String> {
        self.first_methods.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, mut server: TcpStream, first: &Mutex<Vec<String>>, mode: &Mutex<Mode>) {
    let mut reply = client.try_clone().unwrap();
    let mut lines = BufReader::new(client);
    let mut line = String::new();
    let mut n = 0;
    while lines.read_line(&mut line).is_ok_and(|r| r > 0) {
        let request: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let method = request["method"].as_str().unwrap_or("?").to_owned();
        if n == 0 {
            first.lock().unwrap().push(method.clone());
        }
        n += 1;
        let action = {
            let mut mode = mode.lock().unwrap();
            match *mode {
                Mode::Refuse(k) if k > 0 && method != "server.version" => {
                    *mode = if k == 1 {
                        Mode::Forward
                    } else {
                        Mode::Refuse(k - 1)
                    };
                    Some(serde_json::json!({"jsonrpc": "2.0", "id": request["id"],
                        "error": {"code": -101, "message": "excessive resource usage"}}))
                }
                Mode::Goodbye if method != "server.version" => {
                    Some(serde_json::json!({"jsonrpc": "2.0", "id": null,
                        "error": {"code": -32600, "message": "closing: maintenance"}}))
                }
                _ => None,
            }
        };
        if let Some(answer) = action {
            let _ = writeln!(reply, "{answer}");
            let _ = reply.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(line.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
    let _ = server.shutdown(Shutdown::Both);
}

fn config(url: &str) -> ElectrumConfig {
    let mut c = ElectrumConfig::new(url, Network::Regtest);
    c.connections = 2;
    c
}

/// Before the fix, ElectrumX answered the first request of every connection with "use
/// server.version to identify client" and closed it; and electrum-client's own reconnect
/// skipped the handshake.
#[test]
fn every_connection_opens_with_the_version_handshake_and_negotiates_1_6() {
    let Some(node) = node_with_blocks(150) else {
        return;
    };
    let Some(server) = ElectrumX::start(&node) else {
        return;
    };
    let forwarder = Forwarder::start(server.port());
    let source = ElectrumSource::connect(config(&forwarder.url())).unwrap();
    assert_eq!(source.tip().unwrap().height, 150);
    let (software, protocol) = source.negotiated().unwrap();
    assert!(software.starts_with("ElectrumX"), "{software}");
    assert_eq!(protocol, "1.6", "the newest version both speak");
    // 1.6's header answers (a `headers` list) validate like the older `hex`.
    assert_eq!(
        source.headers(1, 150).unwrap().last().unwrap().block_hash(),
        node.block_at(150).block_hash()
    );

    // Broken connections: the next requests reconnect, handshake first.
    let before = source.stats().connections;
    forwarder.cut();
    let anyone = Address::p2wsh(&ScriptBuf::from(vec![0x51]), Network::Regtest);
    node.mine(3, &anyone);
    server.wait_synced(&node);
    assert_eq!(source.tip().unwrap().height, 153);
    assert!(source.stats().connections > before, "{:?}", source.stats());
    let first = forwarder.first_methods();
    assert!(first.len() >= 2, "{first:?}");
    assert!(
        first.iter().all(|m| m == "server.version"),
        "a connection began with something else: {first:?}"
    );
}

#[test]
fn refusals_for_too_many_requests_pause_retry_and_are_named() {
    let Some(node) = node_with_blocks(120) else {
        return;
    };
    let Some(server) = ElectrumX::start(&node) else {
        return;
    };
    let forwarder = Forwarder::start(server.port());
    let source = ElectrumSource::connect(config(&forwarder.url())).unwrap();

    // Two refusals: both retried on new connections after a pause; the answer is right.
    forwarder.set(Mode::Refuse(2));
    assert_eq!(
        source.block_hash(120).unwrap(),
        node.block_at(120).block_hash()
    );
    let anyone = Address::p2wsh(&ScriptBuf::from(vec![0x51]), Network::Regtest);
    node.mine(1, &anyone);
    server.wait_synced(&node);
    assert_eq!(source.tip().unwrap().height, 121);
    assert_eq!(source.stats().refusals, 2, "{:?}", source.stats());

    // More refusals than retries: a typed error that says so, after a bounded number of tries.
    let mut few = config(&forwarder.url());
    few.retries = 1;
    let source = ElectrumSource::connect(few).unwrap();
    forwarder.set(Mode::Refuse(10));
    let err = source.tip().unwrap_err();
    match &err {
        SourceError::Transport { source, .. } => match source.downcast_ref::<SessionError>() {
            Some(SessionError::RateLimited { attempts, message }) => {
                assert_eq!(*attempts, 2);
                assert!(message.contains("excessive resource usage"), "{message}");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other}"),
    }
    assert!(err.is_transient());

    // A server that says something and closes: its words are in the error.
    forwarder.set(Mode::Goodbye);
    let err = source.tip().unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("closing: maintenance"), "{chain}");
}

fn tls_files() -> TlsFiles {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/electrum_tls");
    TlsFiles {
        cert: dir.join("server-chain.pem"),
        key: dir.join("server.key"),
    }
}

#[test]
fn tls_trusts_the_given_ca_and_refuses_others() {
    let Some(node) = node_with_blocks(110) else {
        return;
    };
    let files = tls_files();
    let Some(server) = ElectrumX::start_with(&node, Some(&files)) else {
        return;
    };
    let dir = files.cert.parent().unwrap().to_path_buf();
    let port = server.ssl_port().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("ssl://{host}:{port}");
        let source = ElectrumSource::connect(config(&url).with_ca(dir.join("ca.pem"))).unwrap();
        assert_eq!(source.tip().unwrap().height, 110, "{url}");
    }
    let url = format!("ssl://127.0.0.1:{port}");
    for (what, c) in [
        ("another CA", config(&url).with_ca(dir.join("other-ca.pem"))),
        ("the web PKI", config(&url)),
    ] {
        let mut c = c;
        c.retries = 0;
        let err = ElectrumSource::connect(c).unwrap_err();
        let chain = format!("{err}: {:?}", std::error::Error::source(&err));
        assert!(
            chain.contains("UnknownIssuer") || chain.contains("certificate"),
            "{what}: {chain}"
        );
    }
    // A CA file that holds no certificate is refused before connecting.
    let err = ElectrumSource::connect(config(&url).with_ca(dir.join("README.md"))).unwrap_err();
    assert!(matches!(err, SourceError::File { .. }), "{err}");
}

/// A SOCKS5 proxy (no authentication, CONNECT only) that records each target it is asked for.
fn socks5_proxy() -> (u16, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let targets = Arc::new(Mutex::new(Vec::new()));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (t, b) = (targets.clone(), bytes.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let (t, b) = (t.clone(), b.clone());
            std::thread::spawn(move || {
                let mut head = [0u8; 2];
                client.read_exact(&mut head).unwrap();
                assert_eq!(head[0], 5, "SOCKS version");
                let mut methods = vec![0u8; head[1] as usize];
                client.read_exact(&mut methods).unwrap();
                assert!(methods.contains(&0), "no-authentication offered");
                client.write_all(&[5, 0]).unwrap();
                let mut req = [0u8; 4];
                client.read_exact(&mut req).unwrap();
                assert_eq!(&req[..3], &[5, 1, 0], "CONNECT");
                let host = match req[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        client.read_exact(&mut ip).unwrap();
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let mut len = [0u8; 1];
                        client.read_exact(&mut len).unwrap();
                        let mut name = vec![0u8; len[0] as usize];
                        client.read_exact(&mut name).unwrap();
                        String::from_utf8(name).unwrap()
                    }
                    other => panic!("address type {other}"),
                };
                let mut port = [0u8; 2];
                client.read_exact(&mut port).unwrap();
                let port = u16::from_be_bytes(port);
                t.lock().unwrap().push(format!("{host}:{port}"));
                let upstream = TcpStream::connect((host.as_str(), port)).unwrap();
                client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
                let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                let (mut c_r, mut c_w) = (client.try_clone().unwrap(), client);
                let b2 = b.clone();
                std::thread::spawn(move || {
                    let n = std::io::copy(&mut up_r, &mut c_w).unwrap_or(0);
                    b2.fetch_add(n as usize, Ordering::Relaxed);
                    let _ = c_w.shutdown(Shutdown::Both);
                });
                let n = std::io::copy(&mut c_r, &mut up_w).unwrap_or(0);
                b.fetch_add(n as usize, Ordering::Relaxed);
                let _ = up_w.shutdown(Shutdown::Both);
            });
        }
    });
    (port, targets, bytes)
}

#[test]
fn a_socks5_proxy_carries_every_connection() {
    let Some(node) = node_with_blocks(110) else {
        return;
    };
    let Some(server) = ElectrumX::start(&node) else {
        return;
    };
    let (proxy_port, targets, bytes) = socks5_proxy();
    // The name is resolved by the proxy (as Tor resolves .onion names).
    let url = format!("tcp://localhost:{}", server.port());
    let source = ElectrumSource::connect(
        config(&url).with_proxy(format!("socks5://127.0.0.1:{proxy_port}")),
    )
    .unwrap();
    assert_eq!(
        source.block_hash(110).unwrap(),
        node.block_at(110).block_hash()
    );
    let targets = targets.lock().unwrap().clone();
    assert_eq!(
        targets.len() as u64,
        source.stats().connections,
        "every connection went through the proxy: {targets:?}"
    );
    assert!(!targets.is_empty());
    assert!(
        targets
            .iter()
            .all(|t| *t == format!("localhost:{}", server.port())),
        "{targets:?}"
    );
    // The headers came through it: once the connections close, it has counted their bytes.
    drop(source);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bytes.load(Ordering::Relaxed) < 110 * 80 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes through the proxy",
            bytes.load(Ordering::Relaxed)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
