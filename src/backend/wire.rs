//! The connection a node's requests go over: a socket of our own, whose
//! reads spin for a moment before they sleep.
//!
//! Why: a thread that blocks in `recv` and is woken by the reply pays a
//! scheduler wake-up, which on a loaded virtual machine can cost more than
//! Redis takes to run a lock's script (a `PING` once measured 56.5 µs with
//! a blocking read and 23-24 µs with a reader that polls the non-blocking
//! socket, on the project's 2-core VM); Go's runtime spins before it parks.
//!
//! So a read first asks the socket without blocking; then, if the client
//! allows it and the replies of this server usually come quickly, it keeps
//! asking for a bounded time ([`Spin`]), yielding the CPU between looks;
//! only then does it sleep in `poll(2)` until the reply or the read
//! timeout. Spinning is bounded four ways: by a limit (the client option,
//! else `LATCHKEY_SPIN_US`, else [`DEFAULT_SPIN`]: off), by what the
//! replies of this server took lately (a server whose replies take longer
//! than the limit is not spun for, except on a rare probe read that
//! notices when it got fast again), by the number of threads of the
//! process that may spin at once (one fewer than the cores), and by the
//! thread (the renewal thread never spins).
//!
//! The redis crate still packs the commands and parses the replies
//! (`redis::Parser`); only the socket and the waiting are ours.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::{ConnectionLike, RedisResult, Value};

use crate::net::{try_recv, wait_readable};
use crate::tls::{Tls, TlsStream};

/// How long a read spins at most unless configured otherwise: not at all.
/// Measured on the project's 2-core VM (`make bench`, the `cycle` rows
/// with and without spinning, interleaved in one process), spinning
/// saved a third of the cycle while the machine was loaded and nothing
/// while it was idle, and costs a core while it spins (see BENCHMARKS.md):
/// a choice for the user who knows the machine, not a default.
pub(crate) const DEFAULT_SPIN: Duration = Duration::ZERO;

/// The longest spin limit a client accepts.
pub(crate) const MAX_SPIN: Duration = Duration::from_millis(10);

/// The least a read spins when it spins at all (twice the recent reply
/// time may be less than one scheduler tick's worth of noise).
const MIN_SPIN: Duration = Duration::from_micros(10);

/// When replies take longer than the limit, one read in this many spins
/// anyway, to notice that they have become fast again.
const PROBE_EVERY: u64 = 16;

/// The environment variable that sets the default spin limit in
/// microseconds for every client of the process (`0` turns spinning off),
/// in every language; a client option overrides it.
pub(crate) const SPIN_ENV: &str = "LATCHKEY_SPIN_US";

/// The spin limit of clients that set none: `LATCHKEY_SPIN_US` if it is a
/// number of microseconds, else [`DEFAULT_SPIN`].
pub(crate) fn default_spin() -> Duration {
    static DEFAULT: OnceLock<Duration> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var(SPIN_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_SPIN, |us| Duration::from_micros(us).min(MAX_SPIN))
    })
}

/// The spin policy of one server's connections: its limit, and how long
/// its replies took lately.
pub(crate) struct Spin {
    limit: Duration,
    /// A moving average of how long a reply took to arrive once a read
    /// found the socket empty, in nanoseconds (0: none seen yet).
    reply_ns: AtomicU64,
    reads: AtomicU64,
}

thread_local! {
    /// Set on threads whose reads never spin (see
    /// [`never_spin_on_this_thread`]).
    static NEVER_SPIN: Cell<bool> = const { Cell::new(false) };
}

/// Makes the calling thread's reads sleep at once, whatever the client's
/// spin limit (the watchdog's: nobody waits for a renewal's reply, and
/// the replies of many renewals pipelined take long).
pub(crate) fn never_spin_on_this_thread() {
    NEVER_SPIN.with(|never| never.set(true));
}

/// Threads of this process spinning right now.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// How many threads of the process may spin at once: one fewer than the
/// cores (none on a single core, where a spinning thread keeps the server
/// it waits for from running).
fn max_spinning() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(0)
    })
}

/// A thread's place among the spinners; dropping it frees the place.
struct SpinSlot;

impl SpinSlot {
    fn take() -> Option<SpinSlot> {
        let max = max_spinning();
        SPINNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SpinSlot)
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Spin {
    pub(crate) fn new(limit: Duration) -> Arc<Self> {
        Arc::new(Spin {
            limit,
            reply_ns: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        })
    }

    /// How long the next read that finds the socket empty may spin.
    fn budget(&self) -> Duration {
        if self.limit.is_zero() || NEVER_SPIN.with(Cell::get) {
            return Duration::ZERO;
        }
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        let reply = Duration::from_nanos(self.reply_ns.load(Ordering::Relaxed));
        if reply.is_zero() {
            return self.limit;
        }
        if reply <= self.limit {
            return (reply * 2).clamp(MIN_SPIN, self.limit);
        }
        if reads % PROBE_EVERY == 0 {
            self.limit
        } else {
            Duration::ZERO
        }
    }

    /// Records that a reply came `took` after the read found the socket
    /// empty (a moving average over about the last eight).
    fn observe(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.reply_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.reply_ns.store(new, Ordering::Relaxed);
    }
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

impl Socket {
    fn fd(&self) -> RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
            Socket::Tls(s) => s.socket().as_raw_fd(),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_write_timeout(timeout),
            Socket::Unix(s) => s.set_write_timeout(timeout),
            Socket::Tls(s) => s.socket().set_write_timeout(timeout),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(bytes),
            Socket::Unix(s) => s.write_all(bytes),
            Socket::Tls(s) => s.write_all(bytes),
        }
    }
}

/// One request connection (see the module documentation).
pub(crate) struct Wire {
    socket: Socket,
    parser: redis::Parser,
    read_timeout: Option<Duration>,
    spin: Arc<Spin>,
    db: i64,
    open: bool,
}

impl Wire {
    /// Connects to `addr` within `timeout` (TCP with `TCP_NODELAY`, over
    /// TLS when `tls` is given, or a Unix socket), without any Redis
    /// handshake.
    pub(crate) fn connect(
        addr: &redis::ConnectionAddr,
        tls: Option<&Tls>,
        timeout: Duration,
        spin: Arc<Spin>,
        db: i64,
    ) -> RedisResult<Wire> {
        let started = Instant::now();
        let socket = match addr {
            redis::ConnectionAddr::Tcp(host, port) => {
                let tcp = connect_tcp(host, *port, timeout)?;
                match tls {
                    None => Socket::Tcp(tcp),
                    Some(tls) => {
                        let left = timeout.saturating_sub(started.elapsed());
                        Socket::Tls(Box::new(tls.connect(tcp, host, left)?))
                    }
                }
            }
            redis::ConnectionAddr::Unix(path) => {
                Socket::Unix(crate::net::connect_unix(path, timeout)?)
            }
            _ => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "TLS connections are not supported by this build",
                )))
            }
        };
        socket.set_write_timeout(Some(timeout))?;
        Ok(Wire {
            socket,
            parser: redis::Parser::new(),
            read_timeout: Some(timeout),
            spin,
            db,
            open: true,
        })
    }

    /// Writes one or more packed commands.
    pub(crate) fn send_packed_command(&mut self, bytes: &[u8]) -> RedisResult<()> {
        let written = self.socket.write_all(bytes);
        if written.is_err() {
            self.open = false;
        }
        Ok(written?)
    }

    /// Reads one reply (a server error is a `Value::ServerError`), within
    /// the read timeout for the whole reply: a reply that trickles in, each
    /// piece within the timeout of the one before, kept a caller for as
    /// many timeouts as it had pieces.
    pub(crate) fn recv_response(&mut self) -> RedisResult<Value> {
        let reader = Reader {
            fd: self.socket.fd(),
            deadline: self.read_timeout.map(|t| Instant::now() + t),
            spin: &self.spin,
        };
        let value = match &self.socket {
            Socket::Tls(stream) => self.parser.parse_value(TlsReader {
                stream,
                raw: reader,
            }),
            _ => self.parser.parse_value(reader),
        };
        if value.is_err() {
            // Half a reply may have been read: the stream is out of step.
            self.open = false;
        }
        value
    }

    /// How long one read may wait for data (`None`: for ever).
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) -> RedisResult<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a zero read timeout").into());
        }
        self.read_timeout = timeout;
        Ok(())
    }

    /// Whether the server closed this connection (or it is out of step: a
    /// reply nobody asked for is waiting), found without blocking. A pooled
    /// connection the server closed while idle fails the next request
    /// sent on it, though nothing of that request ran.
    pub(crate) fn closed_by_peer(&self) -> bool {
        if let Socket::Tls(stream) = &self.socket {
            return stream.closed_or_out_of_step();
        }
        let mut byte = [0u8; 1];
        // SAFETY: `byte` is valid for one byte; the socket is open.
        let n = unsafe {
            libc::recv(
                self.socket.fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return true;
        }
        io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
    }

    /// How long one write may block.
    pub(crate) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> RedisResult<()> {
        Ok(self.socket.set_write_timeout(timeout)?)
    }
}

impl ConnectionLike for Wire {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send_packed_command(cmd)?;
        self.recv_response()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send_packed_command(cmd)?;
        let mut values = Vec::with_capacity(count);
        for i in 0..offset + count {
            let value = self.recv_response()?;
            if i >= offset {
                values.push(value);
            }
        }
        Ok(values)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        let ping = redis::cmd("PING").get_packed_command();
        matches!(self.req_packed_command(&ping), Ok(Value::SimpleString(_)))
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                // One write per request: nothing to gain from Nagle's
                // algorithm, a delayed reply to lose.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolved to no address",
        )
    }))
}

/// A read of a TLS connection: decrypted bytes, the socket's read the
/// way [`Reader`] does it.
struct TlsReader<'a> {
    stream: &'a TlsStream,
    raw: Reader<'a>,
}

impl Read for TlsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf, &mut self.raw)
    }
}

/// A read of a connection's socket: at once if data is there, else spin
/// (see [`Spin`]), else sleep in `poll(2)` until data or the deadline.
struct Reader<'a> {
    fd: RawFd,
    deadline: Option<Instant>,
    spin: &'a Spin,
}

impl Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = try_recv(self.fd, buf)? {
            return Ok(n);
        }
        let started = Instant::now();
        let budget = self.spin.budget();
        if !budget.is_zero() {
            if let Some(_slot) = SpinSlot::take() {
                let until = started + budget;
                loop {
                    // Yield, not a busy pause: the kernel tends to wake the
                    // server on the CPU of the client that wrote to it (a
                    // synchronous wake-up), and a client spinning there
                    // kept it from running until the spin ran out
                    // (measured: every round trip took the whole limit).
                    // SAFETY: sched_yield takes no arguments and cannot fail
                    // in a way that matters here.
                    unsafe { libc::sched_yield() };
                    if let Some(n) = try_recv(self.fd, buf)? {
                        self.spin.observe(started.elapsed());
                        return Ok(n);
                    }
                    if Instant::now() >= until {
                        break;
                    }
                }
            }
        }
        loop {
            wait_readable(self.fd, self.deadline)?;
            if let Some(n) = try_recv(self.fd, buf)? {
                self.spin.observe(started.elapsed());
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_means_no_spin() {
        let spin = Spin::new(Duration::ZERO);
        spin.observe(Duration::from_micros(5));
        assert_eq!(spin.budget(), Duration::ZERO);
    }

    #[test]
    fn a_fast_server_is_spun_for_about_twice_its_reply_time() {
        let spin = Spin::new(Duration::from_micros(100));
        assert_eq!(
            spin.budget(),
            Duration::from_micros(100),
            "nothing seen yet"
        );
        spin.observe(Duration::from_micros(30));
        assert_eq!(spin.budget(), Duration::from_micros(60));
        spin.observe(Duration::from_micros(1));
        assert!(spin.budget() >= MIN_SPIN);
    }

    #[test]
    fn a_slow_server_is_only_probed() {
        let spin = Spin::new(Duration::from_micros(100));
        for _ in 0..64 {
            spin.observe(Duration::from_millis(2));
        }
        let spun = (0..PROBE_EVERY * 4)
            .filter(|_| !spin.budget().is_zero())
            .count();
        assert_eq!(spun, 4, "one read in {PROBE_EVERY} probes");
    }

    #[test]
    fn a_read_times_out_and_a_reply_is_read_whole() {
        let (mut server, client) = UnixStream::pair().unwrap();
        let mut wire = Wire {
            socket: Socket::Unix(client),
            parser: redis::Parser::new(),
            read_timeout: Some(Duration::from_millis(20)),
            spin: Spin::new(Duration::from_micros(100)),
            db: 0,
            open: true,
        };
        let err = wire.recv_response().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(!wire.is_open(), "a timed-out connection is never reused");
        let mut wire = Wire {
            open: true,
            parser: redis::Parser::new(),
            ..wire
        };
        let writer = std::thread::spawn(move || {
            server.write_all(b"*2\r\n:1\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(5));
            server.write_all(b"$3\r\nabc\r\n").unwrap();
            server
        });
        wire.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let value = wire.recv_response().unwrap();
        assert_eq!(
            value,
            Value::Array(vec![Value::Int(1), Value::BulkString(b"abc".to_vec())])
        );
        drop(writer.join().unwrap());
        let err = wire.recv_response().unwrap_err();
        assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");
    }
}
