//! A loopback TCP listener whose accept loop runs on its own thread until the handle drops:
//! what the fake Core node and the lying Electrum proxy both serve on.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A listening port on 127.0.0.1; dropping it stops accepting.
pub(crate) struct LoopbackServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    /// Binds a free loopback port and hands every accepted connection to `handle` (on the
    /// accept thread: `handle` spawns its own thread when a connection should not block the
    /// next one).
    pub(crate) fn start(handle: impl Fn(TcpStream) + Send + 'static) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    handle(stream);
                }
            }
        });
        LoopbackServer { addr, stop }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
