//! A lying server for the tamper tests: it answers every request with whatever body the test
//! last told it, so that a test can serve a rewritten proof in place of the honest one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Answers every request with the body it holds (HTTP/1.1, one request per connection).
pub struct Liar {
    pub url: String,
    body: Arc<Mutex<Vec<u8>>>,
}

impl Liar {
    pub fn start() -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(Vec::new()));
        let shared = body.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = shared.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        Liar { url, body }
    }

    pub fn tell(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }
}
