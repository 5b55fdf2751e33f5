//! One Redis server, reached through a small pool of synchronous connections.
//!
//! Every connection gets the command timeout as its read and write timeout
//! (the redis crate applies the connect timeout to the handshake only), so a
//! stopped server costs a caller at most that timeout. A connection that saw
//! an I/O error or a timeout is never reused: its next reply could belong to
//! the command that timed out. A pooled connection found dead (the server
//! restarted since it was pooled) is replaced once, by the same rule for
//! every request ([`worth_resending`]).
//!
//! Every request, scripts or a plain command, is one round trip under one
//! signal mask (see [`crate::signals`]).
//!
//! Requests are sent and received in two steps ([`SingleNode::send`],
//! [`SingleNode::receive`]) so that Redlock can write to every master before
//! reading any reply: an operation then costs the slowest master, not the sum.

use crate::tls::Tls;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;
use redis::{ConnectionLike, Value};

use super::wire::{Spin, Wire};
use super::{Call, EndpointSource, PubSubEndpoint, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;

pub(crate) struct SingleNode {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// Idle connections and the fork generation they were opened in: after a fork
    /// the child must not use its parent's sockets (the two would interleave
    /// commands on one stream), so it starts with an empty pool.
    idle: PerProcess<Mutex<Vec<Wire>>>,
    max_idle: usize,
    description: String,
    /// Connections opened so far: a new one may reach a server that
    /// restarted since the last (Redlock reads its run again).
    opened: std::sync::atomic::AtomicU64,
    /// How long reads spin before they sleep (see [`super::wire`]).
    spin: Arc<Spin>,
    /// Set when the node is reached over TLS.
    tls: Option<Arc<Tls>>,
}

/// A connection on loan from the pool, and whether it was used before (a
/// reused connection may have been closed by a server restart since).
struct Loan {
    conn: Wire,
    reused: bool,
}

/// A request written to a node whose replies are still to be read.
pub(crate) struct InFlight<'a> {
    /// The connection the request went out on, or why it could not be
    /// written (reported when the replies are collected).
    sent: std::result::Result<Loan, redis::RedisError>,
    request: Request<'a>,
}

impl InFlight<'_> {
    /// False when nothing reached the server (the connect or the write
    /// failed): then nothing can have run, and sending again is safe for
    /// any script.
    pub(crate) fn was_sent(&self) -> bool {
        self.sent.is_ok()
    }
}

/// One pipelined round trip: an optional plain command whose reply is
/// dropped (`ASKING`), the scripts, and an optional plain command whose
/// reply is kept (`WAIT` after a script; `PING` or `INFO` alone).
struct Request<'a> {
    calls: &'a [Call<'a>],
    packed: Vec<u8>,
    /// Replies dropped before the scripts' (of the prefix command).
    skip: usize,
    /// Replies kept after the scripts' (of the trailing command).
    trailing: usize,
    /// How long the replies may take, when that is longer than the command
    /// timeout (`WAIT` blocks up to its own timeout).
    patience: Option<Duration>,
}

impl<'a> Request<'a> {
    fn new(
        prefix: Option<&str>,
        calls: &'a [Call<'a>],
        trailing: Option<redis::Cmd>,
        patience: Option<Duration>,
    ) -> Self {
        // Written straight into one buffer: a renewal round's calls carry
        // thousands of arguments, and building them as `redis::Cmd`s first
        // copied each one twice more.
        let mut packed = Vec::with_capacity(calls.iter().map(encoded_len_estimate).sum());
        if let Some(command) = prefix {
            write_command(&mut packed, &[command.as_bytes()]);
        }
        for call in calls {
            write_evalsha(&mut packed, call);
        }
        let has_trailing = trailing.is_some();
        if let Some(command) = trailing {
            packed.extend_from_slice(&command.get_packed_command());
        }
        Request {
            calls,
            packed,
            skip: usize::from(prefix.is_some()),
            trailing: usize::from(has_trailing),
            patience,
        }
    }

    /// How many replies are kept.
    fn replies(&self) -> usize {
        self.calls.len() + self.trailing
    }
}

impl SingleNode {
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        command_timeout: Duration,
        max_idle: usize,
        spin: Duration,
    ) -> Self {
        let description = describe_addr(client.get_connection_info().addr());
        SingleNode {
            client,
            connect_timeout,
            command_timeout,
            idle: PerProcess::new(
                || Mutex::new(Vec::new()),
                |inherited| {
                    // Closing the inherited descriptors in the child leaves
                    // the parent's connections alone; a pool a thread of
                    // the parent held at the fork is left as it is.
                    if let Some(mut connections) = inherited.try_lock() {
                        connections.clear();
                    }
                },
            ),
            max_idle,
            description,
            opened: std::sync::atomic::AtomicU64::new(0),
            spin: Spin::new(spin),
            tls: None,
        }
    }

    /// Reaches the node over TLS with `tls` (none: plain TCP or Unix).
    pub(crate) fn with_tls(mut self, tls: Option<Arc<Tls>>) -> Self {
        self.tls = tls;
        self
    }

    /// How many connections this node has opened so far.
    pub(crate) fn connections_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn borrow(&self) -> redis::RedisResult<Loan> {
        if let Some(conn) = self.idle.get().lock().pop() {
            return Ok(Loan { conn, reused: true });
        }
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut conn = connect(
            &self.client,
            self.tls.as_deref(),
            self.connect_timeout,
            self.spin.clone(),
        )?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(Loan {
            conn,
            reused: false,
        })
    }

    /// Whether a pooled connection is ready, so that sending costs no
    /// connect (Redlock opens the missing connections in parallel).
    pub(crate) fn has_idle(&self) -> bool {
        !self.idle.get().lock().is_empty()
    }

    /// Connects if needed and checks that the server answers a `PING`
    /// within the command timeout; the connection goes back to the pool.
    pub(crate) fn ping(&self) -> Result<()> {
        match self.command(redis::cmd("PING")) {
            Ok(Value::ServerError(e)) => Err(self.error(&e.into())),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| e.context("probing the server"))
    }

    /// One section of `INFO`, within the command timeout.
    pub(crate) fn info(&self, section: &str) -> Result<String> {
        let mut info = redis::cmd("INFO");
        info.arg(section);
        match self.command(info) {
            Ok(Value::ServerError(e)) => Err(self.error(&e.into())),
            Ok(value) => redis::from_redis_value(value).map_err(|e| self.error(&e.into())),
            Err(e) => Err(e),
        }
        .map_err(|e| e.context(format_args!("reading INFO {section}")))
    }

    /// Runs one plain command as a round trip of its own, like a script
    /// (these commands change nothing: they may always go again).
    fn command(&self, command: redis::Cmd) -> Result<Value> {
        let _masked = crate::signals::mask();
        let request = Request::new(None, &[], Some(command), None);
        let mut values = self.receive_values(self.write(request), None)?;
        values.pop().ok_or_else(no_reply)
    }

    /// The server this node talks to, in a form where two spellings of one
    /// address compare equal (`localhost` is `127.0.0.1`; host names are
    /// compared without case; IPv6 in canonical form); the database is left
    /// out, since two databases of one server share its fate.
    pub(crate) fn server_identity(&self) -> String {
        match self.client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{}:{port}", canonical_host(host))
            }
            redis::ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
            other => format!("{other:?}"),
        }
    }

    fn give_back(&self, conn: Wire) {
        let mut idle = self.idle.get().lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Writes `calls` (pipelined) to the node. Never fails: a failure to
    /// connect or write is reported by [`receive`](Self::receive).
    pub(crate) fn send<'a>(&self, calls: &'a [Call<'a>]) -> InFlight<'a> {
        self.send_prefixed(None, calls)
    }

    /// Like [`send`](Self::send), with a plain command first whose reply is
    /// dropped (Cluster sends `ASKING` before a command for a migrating slot).
    pub(crate) fn send_prefixed<'a>(
        &self,
        prefix: Option<&str>,
        calls: &'a [Call<'a>],
    ) -> InFlight<'a> {
        self.write(Request::new(prefix, calls, None, None))
    }

    /// Like [`send_prefixed`](Self::send_prefixed), followed by `WAIT
    /// replicas timeout` in the same round trip: its reply comes after the
    /// scripts', and the read allows for the `WAIT`'s own timeout.
    pub(crate) fn send_then_wait<'a>(
        &self,
        prefix: Option<&str>,
        calls: &'a [Call<'a>],
        replicas: usize,
        timeout: Duration,
    ) -> InFlight<'a> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis().max(1) as u64);
        let patience = self.command_timeout + timeout;
        self.write(Request::new(prefix, calls, Some(wait), Some(patience)))
    }

    /// Writes `request` on a pooled or new connection.
    fn write<'a>(&self, request: Request<'a>) -> InFlight<'a> {
        let _masked = crate::signals::mask();
        let sent = self.borrow().and_then(|mut loan| {
            if loan.reused && !resend_safe(request.calls) && loan.conn.closed_by_peer() {
                // The server closed it while it sat in the pool (its
                // `timeout` setting, a restart): nothing was sent, so a
                // fresh connection is safe even for a request that is
                // never sent twice (a release failed with "unexpected end
                // of file" on a healthy lock before).
                return self.write_fresh(&request.packed);
            }
            match loan.conn.send_packed_command(&request.packed) {
                Ok(()) => Ok(loan),
                // Nothing reached the server.
                Err(e) if worth_resending(&loan, &e, false, request.calls) => {
                    self.write_fresh(&request.packed)
                }
                Err(e) => Err(e),
            }
        });
        InFlight { sent, request }
    }

    /// The one retry of a request: the pooled connection it went out on
    /// was found dead (see [`worth_resending`]), so every pooled connection
    /// is dropped and the request is written again on a fresh one.
    fn write_fresh(&self, packed: &[u8]) -> redis::RedisResult<Loan> {
        self.idle.get().lock().clear();
        let mut fresh = self.borrow()?;
        fresh.conn.send_packed_command(packed)?;
        Ok(fresh)
    }

    /// Reads the replies of [`send`](Self::send), waiting at most until
    /// `deadline` (and never longer than the command timeout). Scripts the
    /// server forgot (NOSCRIPT) are loaded and run again.
    pub(crate) fn receive(
        &self,
        in_flight: InFlight<'_>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Result<Value>>> {
        let calls = in_flight.request.calls;
        Ok(self
            .receive_values(in_flight, deadline)?
            .into_iter()
            .zip(calls)
            .map(|(value, call)| server_error_to_result(call.script.name, value))
            .collect())
    }

    /// Like [`receive`](Self::receive), but a script's error stays a raw
    /// `Value::ServerError` (Cluster needs to read MOVED and ASK).
    pub(crate) fn receive_values(
        &self,
        in_flight: InFlight<'_>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Value>> {
        let _masked = crate::signals::mask();
        let InFlight { sent, request } = in_flight;
        let mut loan = sent.map_err(|e| self.error(&e))?;
        // A shared deadline (Redlock reads master after master) shortens
        // this read only when much of it is used up: a setsockopt per read
        // would cost more than the whole difference in the common case.
        let read_timeout = request.patience.or_else(|| {
            deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .filter(|left| *left < self.command_timeout * 9 / 10)
                .map(|left| left.max(Duration::from_millis(1)))
        });
        let mut outcome = read_replies(&mut loan.conn, &request, read_timeout);
        if let Err(e) = &outcome {
            if worth_resending(&loan, e, true, request.calls) {
                loan = self
                    .write_fresh(&request.packed)
                    .map_err(|e| self.error(&e))?;
                outcome = read_replies(&mut loan.conn, &request, read_timeout);
            }
        }
        match outcome {
            Ok(values) => {
                self.give_back_read(loan.conn, read_timeout);
                Ok(values)
            }
            Err(e) => {
                if is_broken(&e) {
                    self.idle.get().lock().clear();
                } else {
                    self.give_back_read(loan.conn, read_timeout);
                }
                Err(self.error(&e))
            }
        }
    }

    /// Gives back a connection whose read timeout was changed for one
    /// request, with the command timeout again.
    fn give_back_read(&self, mut conn: Wire, read_timeout: Option<Duration>) {
        if read_timeout.is_some() {
            let _ = conn.set_read_timeout(Some(self.command_timeout));
        }
        self.give_back(conn);
    }

    /// Runs `calls` (pipelined) followed by one `WAIT replicas timeout` on
    /// the same connection (WAIT counts the replicas that have every write
    /// this connection made); the scripts' raw replies (a script's error
    /// stays a `Value::ServerError`, so a Cluster can read MOVED and ASK)
    /// and how many replicas confirmed them all.
    pub(crate) fn eval_values_then_wait(
        &self,
        calls: &[Call<'_>],
        replicas: usize,
        timeout: Duration,
    ) -> Result<(Vec<Value>, usize)> {
        let _masked = crate::signals::mask();
        let in_flight = self.send_then_wait(None, calls, replicas, timeout);
        let mut values = self.receive_values(in_flight, None)?;
        let confirmed = match values.pop() {
            Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
            _ => 0,
        };
        Ok((values, confirmed))
    }

    /// Where a release listener for this node connects.
    pub(crate) fn endpoint(&self) -> PubSubEndpoint {
        PubSubEndpoint {
            info: self.client.get_connection_info().clone(),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            shard_router: None,
        }
    }

    /// A failure of this node; the caller adds which operation it was.
    fn error(&self, err: &redis::RedisError) -> Error {
        Error::from_redis(&format!("on {}", self.description), err)
    }
}

impl Runner for SingleNode {
    fn eval(&self, call: &Call<'_>) -> Result<Value> {
        let _masked = crate::signals::mask();
        let calls = std::slice::from_ref(call);
        let mut values = self.receive(self.send(calls), None)?;
        values.pop().unwrap_or_else(|| Err(no_reply()))
    }

    fn eval_many(&self, calls: &[Call<'_>]) -> Result<Vec<Result<Value>>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let _masked = crate::signals::mask();
        self.receive(self.send(calls), None)
    }

    fn eval_then_wait(
        &self,
        call: &Call<'_>,
        replicas: usize,
        timeout: Duration,
    ) -> Result<(Value, usize)> {
        let calls = std::slice::from_ref(call);
        let (mut values, confirmed) = self.eval_values_then_wait(calls, replicas, timeout)?;
        let reply = values.pop().unwrap_or(Value::Nil);
        Ok((server_error_to_result(call.script.name, reply)?, confirmed))
    }

    fn eval_many_then_wait(
        &self,
        calls: &[Call<'_>],
        replicas: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<(Value, usize)>>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let (values, confirmed) = self.eval_values_then_wait(calls, replicas, timeout)?;
        Ok(values
            .into_iter()
            .zip(calls)
            .map(|(value, call)| {
                server_error_to_result(call.script.name, value).map(|v| (v, confirmed))
            })
            .collect())
    }

    fn scan(&self, pattern: &[u8], visit: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        let mut cursor = b"0".to_vec();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(super::SCAN_COUNT);
            let reply = match self.command(scan)? {
                Value::ServerError(e) => return Err(self.error(&e.into())),
                reply => reply,
            };
            let (next, keys) = parse_scan(reply).ok_or_else(|| {
                Error::new(
                    ErrorKind::Server,
                    format!("on {}: SCAN gave a reply it never gives", self.description),
                )
            })?;
            for key in keys {
                if let Value::BulkString(key) = key {
                    if !visit(&key) {
                        return Ok(());
                    }
                }
            }
            if next == b"0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn pubsub_source(&self) -> EndpointSource {
        let endpoint = self.endpoint();
        Arc::new(move || Ok(endpoint.clone()))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// The next cursor and the keys of a `SCAN` reply.
fn parse_scan(reply: Value) -> Option<(Vec<u8>, Vec<Value>)> {
    let Value::Array(mut parts) = reply else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let keys = match parts.pop() {
        Some(Value::Array(keys)) | Some(Value::Set(keys)) => keys,
        _ => return None,
    };
    match parts.pop() {
        Some(Value::BulkString(cursor)) => Some((cursor, keys)),
        Some(Value::SimpleString(cursor)) => Some((cursor.into_bytes(), keys)),
        _ => None,
    }
}

/// Whether a request that failed on `loan` goes again on a fresh
/// connection: only when `loan` came from the pool and is found dead (most
/// likely the server restarted since it was pooled), and only if running
/// it twice does no harm: nothing reached the server, or every script is
/// [`resend_safe`] (it may have run before the connection died).
fn worth_resending(
    loan: &Loan,
    err: &redis::RedisError,
    reached_server: bool,
    calls: &[Call<'_>],
) -> bool {
    loan.reused && err.is_connection_dropped() && (!reached_server || resend_safe(calls))
}

/// Reads the replies of `request` (after the scripts the server forgot, on
/// NOSCRIPT, are loaded and the request is sent again).
fn read_replies(
    conn: &mut Wire,
    request: &Request<'_>,
    read_timeout: Option<Duration>,
) -> redis::RedisResult<Vec<Value>> {
    if let Some(timeout) = read_timeout {
        conn.set_read_timeout(Some(timeout))?;
    }
    for _ in 0..request.skip {
        conn.recv_response()?;
    }
    let mut values = Vec::with_capacity(request.replies());
    for _ in 0..request.replies() {
        values.push(conn.recv_response()?);
    }
    if !values.iter().any(is_noscript) {
        return Ok(values);
    }
    // The server forgot our scripts (restart or SCRIPT FLUSH).
    for call in request.calls {
        call.script.script.load(conn)?;
    }
    conn.req_packed_commands(&request.packed, request.skip, request.replies())
}

fn no_reply() -> Error {
    Error::new(ErrorKind::Server, "no reply")
}

/// Whether every call may be sent again when its outcome is unknown (see
/// [`LuaScript::resend_safe`](crate::scripts::LuaScript)).
pub(crate) fn resend_safe(calls: &[Call<'_>]) -> bool {
    calls.iter().all(|call| call.script.resend_safe)
}

/// Whether a connection must be thrown away after this error.
fn is_broken(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
}

fn is_noscript(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOSCRIPT")
}

/// Appends `EVALSHA sha numkeys keys... args...` in RESP.
fn write_evalsha(out: &mut Vec<u8>, call: &Call<'_>) {
    write_array_len(out, 3 + call.keys.len() + call.args.len());
    write_bulk(out, b"EVALSHA");
    write_bulk(out, call.script.script.get_hash().as_bytes());
    let mut digits = [0u8; 20];
    write_bulk(out, decimal(call.keys.len(), &mut digits));
    for key in &call.keys {
        write_bulk(out, key);
    }
    for arg in &call.args {
        write_bulk(out, arg);
    }
}

/// Appends a plain command (its words) in RESP.
fn write_command(out: &mut Vec<u8>, words: &[&[u8]]) {
    write_array_len(out, words.len());
    for word in words {
        write_bulk(out, word);
    }
}

fn write_array_len(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 20];
    out.push(b'*');
    out.extend_from_slice(decimal(len, &mut digits));
    out.extend_from_slice(b"\r\n");
}

fn write_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut digits = [0u8; 20];
    out.push(b'$');
    out.extend_from_slice(decimal(bytes.len(), &mut digits));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, written at the end of `digits` (no allocation: RESP
/// writes a length before every argument).
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[start..];
        }
    }
}

/// About the bytes [`write_evalsha`] writes for `call` (a capacity hint).
fn encoded_len_estimate(call: &Call<'_>) -> usize {
    let words = call.keys.iter().map(|k| k.len()).sum::<usize>()
        + call.args.iter().map(|a| a.len()).sum::<usize>();
    64 + words + 8 * (call.keys.len() + call.args.len())
}

/// A script's error reply as an error naming the script (the caller adds
/// which operation it was); any other reply as it is.
pub(crate) fn server_error_to_result(script: &str, value: Value) -> Result<Value> {
    match value {
        Value::ServerError(err) => {
            let err: redis::RedisError = err.into();
            Err(Error::from_redis(&format!("script {script}"), &err))
        }
        other => Ok(other),
    }
}

/// "redis at 127.0.0.1:6379", "redis at [::1]:6379" or "redis at
/// unix:/run/redis.sock"; never a password.
pub(crate) fn describe_addr(addr: &redis::ConnectionAddr) -> String {
    // `host:port`, with an IPv6 address in brackets so that the port
    // cannot be read as part of the address.
    let endpoint = |host: &str, port: u16| {
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    match addr {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis at {}", endpoint(host, *port)),
        redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("redis (TLS) at {}", endpoint(host, *port))
        }
        redis::ConnectionAddr::Unix(path) => format!("redis at unix:{}", path.display()),
        _ => "redis".to_string(),
    }
}

/// A host as an identity: the loopback name and address are one host, an
/// IP address is written the canonical way, a name is compared without case.
fn canonical_host(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return "127.0.0.1".to_string();
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

/// A connection for an occasional question (a sentinel's, a cluster's slot
/// map): like [`connect`], without spinning, and always in RESP2, whose
/// replies the questions are read as (under RESP3 `SENTINEL MASTER`
/// answers a map, and a sentinel URL with `protocol=3` found no master).
pub(crate) fn connect_admin(
    client: &redis::Client,
    tls: Option<&Tls>,
    connect_timeout: Duration,
) -> redis::RedisResult<Wire> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP2);
    let resp2 = redis::Client::open(info.set_redis_settings(settings))?;
    connect(&resp2, tls, connect_timeout, Spin::new(Duration::ZERO))
}

/// Opens a connection to `client`'s server within `connect_timeout`,
/// handshake included: `AUTH` and `SELECT` as needed (or `HELLO 3` with
/// the credentials, for RESP3) and a `PING`, whose replies are read against
/// one deadline, so a server that accepts connections but never answers
/// (stopped, or a listening socket nobody reads) fails here, within the
/// connect timeout, not at the first command.
pub(crate) fn connect(
    client: &redis::Client,
    tls: Option<&Tls>,
    connect_timeout: Duration,
    spin: Arc<Spin>,
) -> redis::RedisResult<Wire> {
    let deadline = Instant::now() + connect_timeout;
    let info = client.get_connection_info();
    let settings = info.redis_settings();
    let mut conn = Wire::connect(info.addr(), tls, connect_timeout, spin, settings.db())?;
    let mut setup = redis::pipe();
    let resp3 = settings.protocol() != redis::ProtocolVersion::RESP2;
    if resp3 {
        let hello = setup.cmd("HELLO").arg(3);
        if let Some(password) = settings.password() {
            hello
                .arg("AUTH")
                .arg(settings.username().unwrap_or("default"))
                .arg(password);
        }
    } else if let Some(password) = settings.password() {
        let auth = setup.cmd("AUTH");
        if let Some(username) = settings.username() {
            auth.arg(username);
        }
        auth.arg(password);
    }
    if settings.db() != 0 {
        setup.cmd("SELECT").arg(settings.db());
    }
    setup.cmd("PING");
    let authenticates = settings.password().is_some() || resp3;
    let count = setup.cmd_iter().count();
    conn.send_packed_command(&setup.get_packed_pipeline())?;
    for i in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection handshake timed out",
            )
            .into());
        }
        conn.set_read_timeout(Some(left))?;
        let reply = conn.recv_response().map_err(|e| {
            // A TLS port drops a plain-text client without a word.
            if tls.is_none() && i == 0 && e.is_connection_dropped() {
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    format!(
                        "the server closed the connection before its first reply \
                         (if the port speaks TLS, use a rediss:// URL): {e}"
                    ),
                )
                .into()
            } else {
                e
            }
        })?;
        if let Value::ServerError(e) = reply {
            if authenticates && i == 0 {
                // Like the redis crate: a refused password is a failure
                // to connect. The server's text never holds the password.
                return Err(redis::RedisError::from((
                    redis::ErrorKind::AuthenticationFailed,
                    "authentication failed",
                    format!("{}: {}", e.code(), e.details().unwrap_or_default()),
                )));
            }
            return Err(e.into());
        }
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// The hand-written RESP is byte for byte what the redis crate packs.
    #[test]
    fn requests_are_encoded_as_the_redis_crate_encodes_them() {
        let long = vec![b'x'; 1000];
        let calls = [
            Call {
                script: crate::scripts::extend_batch(),
                keys: vec![b"latchkey:{a}", b"latchkey:{b}"],
                args: vec![
                    Cow::Borrowed(b"token-a"),
                    Cow::Borrowed(b""),
                    Cow::Owned(b"3000".to_vec()),
                    Cow::Borrowed(&long),
                ],
            },
            Call {
                script: crate::scripts::inspect(),
                keys: vec![],
                args: vec![],
            },
        ];
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        let request = Request::new(Some("ASKING"), &calls, Some(wait.clone()), None);
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING");
        for call in &calls {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(call.script.script.get_hash()).arg(call.keys.len());
            for key in &call.keys {
                cmd.arg(*key);
            }
            for arg in &call.args {
                cmd.arg(arg.as_ref());
            }
            pipe.add_command(cmd);
        }
        pipe.add_command(wait);
        assert_eq!(request.packed, pipe.get_packed_pipeline());
        assert_eq!(
            (request.skip, request.trailing, request.replies()),
            (1, 1, 3)
        );
    }

    #[test]
    fn decimals_are_written_without_allocating() {
        let mut digits = [0u8; 20];
        for n in [0, 7, 10, 199, usize::MAX] {
            assert_eq!(decimal(n, &mut digits), n.to_string().as_bytes());
        }
    }
}
