//! A TCP forwarder in the test process that can turn into a black hole: once
//! cut, the bytes of its connections are read and dropped in both
//! directions while every connection stays open, as a network that loses
//! every packet would look to both ends (no reset, no close: each side
//! finds out only by its own timeouts).
//!
//! A replica's replication link through it is cut without stopping either
//! server; so is a client's path to the sentinels.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

pub struct Blackhole {
    pub port: u16,
    state: Arc<State>,
}

struct State {
    cut: AtomicBool,
    /// Only connections whose client sent these bytes are cut (`None`: all).
    only: Option<Vec<u8>>,
}

impl Blackhole {
    /// Forwards 127.0.0.1:`port` (the returned one) to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Blackhole {
        Self::start_cutting_only(upstream, None)
    }

    /// Like [`start`](Self::start), but [`cut`](Self::cut) drops the bytes
    /// of a connection only once its client sent `pattern` (`REPLCONF`: a
    /// replica's replication link, and no client's connection).
    pub fn start_cutting_only(upstream: u16, pattern: Option<&[u8]>) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            only: pattern.map(<[u8]>::to_vec),
        });
        let accept_state = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let matched = Arc::new(AtomicBool::new(accept_state.only.is_none()));
                let (Ok(client_reader), Ok(server_reader)) =
                    (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                forward(
                    client_reader,
                    server,
                    accept_state.clone(),
                    matched.clone(),
                    true,
                );
                forward(server_reader, client, accept_state.clone(), matched, false);
            }
        });
        Blackhole { port, state }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on nothing gets through (on the connections it applies to).
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes, dropping what is read while
/// the forwarder is cut and the connection is one it cuts.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    state: Arc<State>,
    matched: Arc<AtomicBool>,
    from_client: bool,
) {
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
            };
            if from_client {
                if let Some(pattern) = &state.only {
                    if buf[..n]
                        .windows(pattern.len())
                        .any(|w| w == pattern.as_slice())
                    {
                        matched.store(true, Ordering::SeqCst);
                    }
                }
            }
            if state.cut.load(Ordering::SeqCst) && matched.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
}
