//! `https://` servers: accepted, checked against the roots given, refused when their certificate
//! is not trusted, and told apart from unreachable ones.
//!
//! The server is rustls' own on loopback, with the self-signed certificate of `tests/tls/`
//! (valid for 127.0.0.1 until 2125; `tests/tls/README.md` says how it was made).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vc_chash::history::MemoryHistory;
use vc_chash::{Hash256, Scheme};
use vc_light::{LightClient, LightError, Trusted};

const CERT: &[u8] = include_bytes!("tls/cert.pem");
const KEY: &[u8] = include_bytes!("tls/key.pem");
const TIMEOUT: Duration = Duration::from_secs(10);
const FIRST: u64 = 100;

/// A TLS server on loopback answering `GET`s from a fixed table, one connection at a time,
/// until `connections` have been handled.
struct TlsServer {
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start(routes: HashMap<String, (u16, Vec<u8>)>, connections: usize) -> TlsServer {
        let certs = CertificateDer::pem_slice_iter(CERT)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            for _ in 0..connections {
                let Ok((tcp, _)) = listener.accept() else {
                    return;
                };
                // A client that refuses the certificate ends the handshake: not an error here.
                let _ = serve_one(&config, tcp, &routes);
            }
        });
        TlsServer {
            port,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn serve_one(
    config: &Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    routes: &HashMap<String, (u16, Vec<u8>)>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(TIMEOUT))?;
    let conn = rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    let (status, body) = routes.get(&path).cloned().unwrap_or((
        404,
        br#"{"code":"not_found","message":"no such route"}"#.to_vec(),
    ));
    write!(
        tls,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    tls.write_all(&body)?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// A v2 chain of 50 blocks from `FIRST`, the server's routes for its tip and the proof of
/// block `FIRST + 10`, and the trusted pair of its tip.
fn chain_routes() -> (HashMap<String, (u16, Vec<u8>)>, Trusted) {
    let mut chain = MemoryHistory::new(Scheme::V2, FIRST);
    for i in 0..50u8 {
        chain.push_block(Hash256([i; 32]), &[vec![b'?', i]]);
    }
    let (n, consensus_hash) = chain.tip().unwrap();
    let proof = vc_chash::prove(&chain, n, FIRST + 10).unwrap().encode();
    let routes = HashMap::from([
        (
            "/v1/tip".to_owned(),
            (
                200,
                format!(r#"{{"app":{{"first_block":{FIRST}}}}}"#).into_bytes(),
            ),
        ),
        (
            format!("/v1/proofs/{}?trusted={n}", FIRST + 10),
            (200, proof),
        ),
    ]);
    (
        routes,
        Trusted {
            height: n,
            consensus_hash,
        },
    )
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn https_to_a_closed_port_is_a_transport_error() {
    let url = format!("https://127.0.0.1:{}", closed_port());
    let client = LightClient::new(&url, TIMEOUT).unwrap();
    match client.first_block() {
        Err(LightError::Unreachable { url: u, source }) => {
            assert_eq!(u, format!("{url}/v1/tip"));
            let msg = source.to_string().to_lowercase();
            assert!(!msg.contains("scheme") && !msg.contains("tls"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn https_with_the_servers_root_fetches_and_verifies_a_proof() {
    let (routes, trusted) = chain_routes();
    let server = TlsServer::start(routes, 3);
    let client = LightClient::builder(&server.url())
        .timeout(TIMEOUT)
        .root_certificates_pem(CERT)
        .build()
        .unwrap();
    assert_eq!(client.first_block().unwrap(), FIRST);
    let block = client.verify(FIRST, &trusted, FIRST + 10).unwrap();
    assert_eq!(block.height, FIRST + 10);
    assert_eq!(block.records, vec![vec![b'?', 10u8]]);
    // An error answer comes through TLS as the server's error.
    match client.get("/v1/nowhere") {
        Err(LightError::Server { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "not_found"));
        }
        other => panic!("{other:?}"),
    }
    server.join();
}

#[test]
fn https_with_mozillas_roots_refuses_a_self_signed_server() {
    let (routes, _) = chain_routes();
    let server = TlsServer::start(routes, 1);
    let client = LightClient::new(&server.url(), TIMEOUT).unwrap();
    match client.first_block() {
        Err(e @ LightError::Tls { .. }) => {
            let source = std::error::Error::source(&e).unwrap().to_string();
            assert!(source.contains("certificate"), "{source}");
            assert_eq!(e.url(), Some(format!("{}/v1/tip", server.url()).as_str()));
        }
        other => panic!("{other:?}"),
    }
    server.join();
}
