//! Test support: real redis-server processes on free ports, each in its own
//! temporary directory, stopped (and the directory removed) on drop.
//!
//! Each server is started by `tools/redis_fixture.py` (the one fixture every
//! suite uses), which stays with it: it kills, restarts and stops the server
//! on request, and stops it by itself when this process goes away.

#![allow(dead_code)]

pub mod blackhole;
pub mod cluster;
pub mod monitor;
/// How the library puts a script's text together (its own file, shared).
#[path = "../../src/scripts/source.rs"]
pub mod script_source;
pub mod sentinel;
#[cfg(feature = "tls")]
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct RedisServer {
    fixture: Fixture,
    pid: Option<i32>,
    pub port: u16,
    /// The TLS port, for a server started with `--tls-port auto`.
    pub tls_port: Option<u16>,
    pub dir: PathBuf,
}

/// The running `tools/redis_fixture.py start`: commands on its stdin, one
/// JSON line back per command.
struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// The fixture tool all suites share.
pub fn fixture_tool() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/redis_fixture.py")
}

/// One field of the fixture's flat JSON line: a number, `null` or a
/// string (with `\\` and `\"` escapes).
fn json_field(line: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\": ");
    let rest = &line[line.find(&key)? + key.len()..];
    if let Some(text) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(value),
                '\\' => value.push(chars.next()?),
                c => value.push(c),
            }
        }
        None
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    }
}

impl Fixture {
    /// Runs `redis_fixture.py start ARGS` and returns it with its first line.
    fn start(args: &[String]) -> (Fixture, String) {
        let mut child = match Command::new("python3")
            .arg(fixture_tool())
            .arg("start")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot run python3 {} ({e})", fixture_tool().display()),
        };
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut fixture = Fixture {
            child,
            stdin,
            stdout,
        };
        let line = fixture.read_line();
        (fixture, line)
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => line,
            _ => panic!(
                "tools/redis_fixture.py ended without an answer (its message, if any, is above); \
                 install redis-server (`make test` does: apt-get install -y redis-server) or set REDIS_SERVER"
            ),
        }
    }

    /// Sends one command and returns the answer.
    fn command(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("the fixture is running");
        if let Err(e) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            panic!("tools/redis_fixture.py is gone ({e})");
        }
        let line = self.read_line();
        if let Some(error) = json_field(&line, "error") {
            panic!("tools/redis_fixture.py {command}: {error}");
        }
        line
    }

    /// Stops the server, removes its directory and reaps the fixture.
    fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop").and_then(|()| stdin.flush());
        }
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts a redis-server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a redis-server with extra `--option value` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut args = vec!["--prefix".to_string(), Self::prefix(), "--".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(&args)
    }

    /// Starts a sentinel monitoring the master on `master_port` as
    /// `mymaster`, with quick failure detection.
    pub fn start_sentinel(master_port: u16, quorum: u32) -> Self {
        Self::start_sentinel_with(master_port, quorum, &[])
    }

    /// As [`start_sentinel`](Self::start_sentinel), with extra
    /// configuration lines (e.g. `tls-port auto`).
    pub fn start_sentinel_with(master_port: u16, quorum: u32, lines: &[&str]) -> Self {
        let mut args = vec![
            "--prefix".to_string(),
            Self::prefix(),
            "--sentinel-of".to_string(),
            master_port.to_string(),
            "--quorum".to_string(),
            quorum.to_string(),
            "--".to_string(),
            "sentinel down-after-milliseconds mymaster 1000".to_string(),
            "sentinel failover-timeout mymaster 5000".to_string(),
        ];
        args.extend(lines.iter().map(|line| line.to_string()));
        Self::launch(&args)
    }

    fn prefix() -> String {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        format!("latchkey-test-{}-{n}-", std::process::id())
    }

    fn launch(args: &[String]) -> Self {
        let (fixture, line) = Fixture::start(args);
        let field = |name: &str| {
            json_field(&line, name)
                .unwrap_or_else(|| panic!("no {name} in the fixture's line {line:?}"))
        };
        let port = field("port").parse().expect("a port number");
        let pid = field("pid").parse().ok();
        let dir = PathBuf::from(field("dir"));
        let tls_port = json_field(&line, "tls_port").and_then(|p| p.parse().ok());
        RedisServer {
            fixture,
            pid,
            port,
            tls_port,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.pid.expect("server running")
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
        // SAFETY: kill(2) on the pid of a server we started.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        if self.pid.is_some() {
            self.fixture.command("kill");
            self.pid = None;
        }
    }

    /// Kills the server and starts a fresh one on the same port (no
    /// persistence: every key is gone).
    pub fn restart(&mut self) {
        let line = self.fixture.command("restart");
        self.pid = json_field(&line, "pid").and_then(|pid| pid.parse().ok());
        assert!(
            self.pid.is_some(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The fixture wakes a stopped server, kills it and removes the dir.
        self.fixture.stop();
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
    info_field(server, "replication", field)
}

/// A field of `INFO <section>` on a server; `None` when the server does
/// not answer within 2 s (it may be stopped or restarting).
pub fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let client = redis::Client::open(server.url()).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let info: String = redis::cmd("INFO").arg(section).query(&mut conn).ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// `uptime_in_seconds` of `server`, as it reports it (zero when it does
/// not answer).
pub fn uptime(server: &RedisServer) -> Duration {
    let seconds = info_field(server, "server", "uptime_in_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_secs(seconds)
}

/// Waits until every one of `servers` says it has been up for more than
/// `age` (Redlock counts a master only once it has run its restart delay).
pub fn wait_until_up_for(servers: &[RedisServer], age: Duration) {
    wait_until(
        &format!("every server has been up for over {age:?}"),
        age * 2 + Duration::from_secs(60),
        || servers.iter().all(|s| uptime(s) > age),
    );
}

/// How many scripts `server` has run (EVAL and EVALSHA calls).
pub fn scripts_run(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.admin())
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Forks; the child runs `child` and leaves with `_exit` (status 0, or 1
/// if it panicked); returns the child's wait status, or `None` when it was
/// still running after `limit` (it is then killed and reaped).
pub fn in_forked_child(limit: Duration, child: impl FnOnce()) -> Option<i32> {
    // SAFETY: the child only runs `child` (library calls) and leaves with
    // _exit, without running the parent's destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let forked_at = std::time::Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: polls the child forked above.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return Some(status);
        }
        if forked_at.elapsed() > limit {
            // SAFETY: kills and reaps the hung child forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Takes and gives back a lock, so the client has found its server(s) and
/// loaded its scripts (and, on Sentinel, started listening to the
/// sentinels).
pub fn warm_up(client: &latchkey::Client) {
    acquire_confirmed(&client.lock("warm-up").unwrap())
        .release()
        .unwrap();
}

/// Acquires `lock` while its replicas are healthy. With a short
/// `wait_for_replicas` timeout (kept short so that the tests' later,
/// blackholed phases fail fast), a loaded machine may let a healthy
/// replica's confirmation come late: the acquire then fails with `Timeout`
/// and gives the lock back, and is simply tried again (seen once in 20
/// runs of `make rust-test` next to parallel builds).
pub fn acquire_confirmed(lock: &latchkey::Lock) -> latchkey::Guard {
    let mut tries = 0;
    loop {
        match lock.acquire() {
            Ok(guard) => return guard,
            Err(e) if e.kind() == latchkey::ErrorKind::Timeout && tries < 20 => tries += 1,
            Err(e) => panic!("acquiring {}: {e}", lock.name()),
        }
    }
}
