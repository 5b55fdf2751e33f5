//! Test support: real redis-server processes on free ports, each in its own
//! temporary directory, stopped (and the directory removed) on drop.

#![allow(dead_code)]

pub mod sentinel;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    /// For a sentinel: the master it monitors (port) and its quorum.
    sentinel_of: Option<(u16, u32)>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

impl RedisServer {
    /// Starts a redis-server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a redis-server with extra `--option value` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("latchkey-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the server's temp dir");
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            sentinel_of: None,
        };
        for _ in 0..10 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 10 free ports");
    }

    /// Starts a sentinel monitoring the master on `master_port` as
    /// `mymaster`, with quick failure detection.
    pub fn start_sentinel(master_port: u16, quorum: u32) -> Self {
        let mut server = Self::start_with_sentinel_of(Some((master_port, quorum)));
        server.extra.clear();
        server
    }

    fn start_with_sentinel_of(sentinel_of: Option<(u16, u32)>) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("latchkey-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the server's temp dir");
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            extra: Vec::new(),
            sentinel_of,
        };
        for _ in 0..10 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 10 free ports");
    }

    /// Starts the process on `self.port` and waits for its ready line.
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(redis_server_binary());
        let ready_marker = if let Some((master_port, quorum)) = self.sentinel_of {
            let conf = self.dir.join("sentinel.conf");
            let text = format!(
                "port {}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                self.port,
                self.dir.display()
            );
            std::fs::write(&conf, text).expect("write sentinel.conf");
            cmd.arg(&conf).args(["--sentinel", "--logfile", ""]);
            "+monitor master"
        } else {
            cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
            "Ready to accept connections"
        };
        if self.sentinel_of.is_some() {
            return self.spawn_command(cmd, ready_marker);
        }
        cmd.args(["--dir", self.dir.to_str().unwrap()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ])
            .args(&self.extra);
        self.spawn_command(cmd, ready_marker)
    }

    fn spawn_command(&mut self, mut cmd: Command, ready_marker: &'static str) -> bool {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run redis-server ({e}); install it (`make test` does: apt-get install -y redis-server) or set REDIS_SERVER"
            ),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(ready_marker) {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(true);
                    }
                }
            }
            if let Some(tx) = ready_tx.take() {
                let _ = tx.send(false);
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or(false);
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// A plain redis-crate connection for checks and admin commands.
    pub fn admin(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("admin connection");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we started.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a fresh one on the same port (no
    /// persistence: every key is gone).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            // The old socket may linger for a moment; wait for the port.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("latchkey-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `latchkey` tool built for these tests.
pub fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
}

/// Blocks until some client is subscribed to the release channel of lock
/// `name` (default prefix): a waiter is parked and listening.
pub fn wait_for_waiter(server: &RedisServer, name: &str) {
    let channel = format!("latchkey:{{{name}}}:ch");
    let mut admin = server.admin();
    loop {
        let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query(&mut admin)
            .unwrap();
        if matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0) {
            return;
        }
        std::thread::yield_now();
    }
}

/// Waits (checking every 20 ms) until `condition` holds; panics with `what`
/// after `limit`. For states of a server that no message announces.
pub fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A field of `INFO replication` on a server.
pub fn replication_field(server: &RedisServer, field: &str) -> Option<String> {
    let client = redis::Client::open(server.url()).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}
