//! A Server-Sent Events client for tests, and the map a client builds from the events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One event: its name, id and JSON data.
#[derive(Debug, Clone)]
pub struct Ev {
    pub kind: String,
    pub id: Option<String>,
    pub data: Value,
}

/// An open `GET` on an event stream, over a raw socket (no client-side buffering surprises).
pub struct Sse {
    reader: BufReader<TcpStream>,
    /// The status line and headers.
    pub head: String,
}

impl Sse {
    /// Opens `path` on `addr` (`host:port`) with extra request headers.
    pub fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Connection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        Sse { reader, head }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The rest of the body, for an answer that is not a stream.
    pub fn body(mut self) -> String {
        let mut out = String::new();
        let _ = self.reader.read_to_string(&mut out);
        out
    }

    /// The next event (keep-alive comments skipped), `None` at the end of the stream.
    pub fn next(&mut self) -> Option<Ev> {
        let (mut kind, mut id, mut data) = (String::from("message"), None, String::new());
        loop {
            // Chunked transfer encoding: chunk-size lines are hex numbers and never contain a
            // colon, SSE lines always do (or are blank).
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    return Some(Ev {
                        kind,
                        id,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let Some((field, value)) = line.split_once(':') else {
                if line == "0" {
                    return None; // the last chunk
                }
                continue;
            };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => kind = value.to_owned(),
                "id" => id = Some(value.to_owned()),
                "data" => data.push_str(value),
                _ => {}
            }
        }
    }
}

/// A block as a client holds it: hash, consensus hash and operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub block_hash: String,
    pub consensus_hash: String,
    pub operations: Vec<Value>,
}

/// What a client builds by applying events to an empty map, checking them as it goes.
#[derive(Debug, Default)]
pub struct Replica {
    pub blocks: BTreeMap<u64, Held>,
    pub applies: u64,
    pub rollbacks: u64,
    /// Each `fork` event's data, with the number of rollbacks seen before it.
    pub forks: Vec<(u64, Value)>,
}

impl Replica {
    /// Applies one event; panics when it does not fit what the replica holds.
    pub fn apply(&mut self, ev: &Ev) {
        let d = &ev.data;
        assert_eq!(d["type"].as_str(), Some(ev.kind.as_str()), "{d}");
        if ev.kind == "fork" {
            // News about the indexer, not chain data: the client's newest block is unchanged.
            assert_eq!(ev.id.as_deref(), Some(self.held_id().as_str()), "{d}");
            assert_eq!(
                d["depth"].as_u64().unwrap(),
                d["tip"].as_u64().unwrap() - d["fork_height"].as_u64().unwrap(),
                "{d}"
            );
            self.forks.push((self.rollbacks, d.clone()));
            return;
        }
        let h = d["height"].as_u64().unwrap();
        match ev.kind.as_str() {
            "apply" => {
                if let Some((&top, held)) = self.blocks.last_key_value() {
                    assert_eq!(h, top + 1, "apply out of order: {d}");
                    assert_eq!(d["prev_hash"], held.block_hash.as_str(), "parent: {d}");
                }
                self.blocks.insert(
                    h,
                    Held {
                        block_hash: d["block_hash"].as_str().unwrap().to_owned(),
                        consensus_hash: d["consensus_hash"].as_str().unwrap().to_owned(),
                        operations: d["operations"].as_array().unwrap().clone(),
                    },
                );
                let want = format!("{h}:{}", d["block_hash"].as_str().unwrap());
                assert_eq!(ev.id.as_deref(), Some(want.as_str()));
                self.applies += 1;
            }
            "rollback" => {
                let (&top, held) = self.blocks.last_key_value().expect("rollback of nothing");
                assert_eq!(h, top, "rollback not of the newest block: {d}");
                assert_eq!(d["block_hash"], held.block_hash.as_str(), "{d}");
                self.blocks.remove(&h);
                assert_eq!(ev.id.as_deref(), Some(self.held_id().as_str()));
                self.rollbacks += 1;
            }
            other => panic!("unexpected event {other}: {d}"),
        }
    }

    /// Applies a webhook's payload (which carries no event id).
    pub fn apply_body(&mut self, body: &Value) {
        let kind = body["type"].as_str().unwrap().to_owned();
        let id = match kind.as_str() {
            "apply" => format!(
                "{}:{}",
                body["height"],
                body["block_hash"].as_str().unwrap()
            ),
            "fork" => self.held_id(),
            _ => {
                let h = body["height"].as_u64().unwrap() - 1;
                match self.blocks.get(&h) {
                    Some(b) => format!("{h}:{}", b.block_hash),
                    None => "start".to_owned(),
                }
            }
        };
        self.apply(&Ev {
            kind,
            id: Some(id),
            data: body.clone(),
        });
    }

    /// The event id of the newest block held (`start` for none).
    pub fn held_id(&self) -> String {
        match self.blocks.last_key_value() {
            Some((h, b)) => format!("{h}:{}", b.block_hash),
            None => "start".to_owned(),
        }
    }

    /// The newest block held.
    pub fn tip(&self) -> Option<(u64, &Held)> {
        self.blocks.last_key_value().map(|(h, b)| (*h, b))
    }
}

/// What a receiver was sent: status answered and body.
pub type Log = Arc<Mutex<Vec<(u16, Value)>>>;

/// A receiver that answers 500 to its first `fail` requests and 200 after, recording every
/// body it was sent.
pub fn receiver(fail: usize) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("POST /hook "), "{line}");
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = if i < fail { 500 } else { 200 };
            log.lock()
                .unwrap()
                .push((status, serde_json::from_slice(&body).unwrap()));
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// The bodies a receiver accepted (answered 200), in order.
pub fn delivered(log: &Log) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v.clone())
        .collect()
}
