//! The release listener: one subscriber connection and one reader thread per
//! Client, started when the first waiter needs it.
//!
//! The redis crate's synchronous `PubSub` owns its connection while it reads,
//! so a waiter could not subscribe to a new channel while the reader is
//! blocked. This module speaks the few RESP2 replies of pub/sub itself over a
//! socket split in two: waiters write SUBSCRIBE on one half, the reader
//! thread reads the other. A waiter only parks after Redis confirmed its
//! subscription, so no release published after that can be missed.
//!
//! On a Redis 7 Cluster releases are published with `SPUBLISH`, which
//! stays on the shard that owns the channel's slot instead of being
//! broadcast to every node; waiters then listen with `SSUBSCRIBE` on the
//! slot's master, one connection ("lane") per master. A lane that loses its
//! slot (the server unsubscribes it, or refuses with `MOVED`) is closed, so
//! its waiters wake and subscribe again where the slot now lives.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};
use crate::tls::TlsStream;

use crate::error::{Error, ErrorKind, Result};
use crate::fork::PerProcess;
use crate::wait::Parker;

mod announcements;
pub(crate) use announcements::{Announcements, OnAnnouncement, Subscribed};

/// Where a pub/sub listener should connect, with the credentials it needs.
#[derive(Clone)]
pub(crate) struct PubSubEndpoint {
    pub(crate) info: redis::ConnectionInfo,
    /// Set when the server is reached over TLS.
    pub(crate) tls: Option<Arc<crate::tls::Tls>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// Set when releases are published with `SPUBLISH` (Redis 7 Cluster):
    /// where to listen for each channel instead.
    pub(crate) shard_router: Option<ShardRouter>,
}

/// The endpoint of the master that owns a channel's slot; `true` asks to
/// read the slot map again first (the last subscription there failed).
pub(crate) type ShardRouter = Arc<dyn Fn(&[u8], bool) -> Result<PubSubEndpoint> + Send + Sync>;

/// Says where a release listener should connect; asked at every
/// (re)connection, so a listener follows a Sentinel failover.
pub(crate) type EndpointSource = Arc<dyn Fn() -> Result<PubSubEndpoint> + Send + Sync>;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Shared by the reader thread and the writers (see `crate::tls`).
    Tls(Arc<TlsStream>),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tls(s) => Stream::Tls(Arc::clone(s)),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tls(s) => s.socket().shutdown(Shutdown::Both),
        };
    }

    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Stream::Tls(s) => {
                s.socket().set_read_timeout(read)?;
                s.socket().set_write_timeout(write)
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            // The socket's own read, with its timeout, under the TLS.
            Stream::Tls(s) => s.read(buf, &mut s.socket()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write_all(buf).map(|()| buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(_) => Ok(()),
        }
    }
}

/// A RESP2 reply, as far as pub/sub needs it.
#[derive(Debug)]
enum Reply {
    Simple,
    Error(Vec<u8>),
    Int,
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

fn bad_reply(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Bounds on what the listener accepts from the server, so a broken or
/// hostile peer cannot make it allocate without limit or recurse without
/// end: pub/sub replies here are a few short strings (a channel name of at
/// most a lock name plus the prefix, a token) in arrays of three or four.
const MAX_LINE: u64 = 64 * 1024;
const MAX_BULK: i64 = 1024 * 1024;
const MAX_ARRAY: i64 = 1024;
const MAX_DEPTH: usize = 4;
/// How often a wait for a SUBSCRIBE confirmation looks at its waiter's
/// parker (a cancel there ends the wait).
const CONFIRMATION_SLICE: Duration = Duration::from_millis(10);

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    read_reply_at(reader, 0)
}

fn read_reply_at(reader: &mut impl BufRead, depth: usize) -> std::io::Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(bad_reply("pub/sub reply nested too deeply"));
    }
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "subscriber connection closed",
        ));
    }
    line.truncate(line.len() - 2);
    let (kind, rest) = (line[0], &line[1..]);
    let number = || -> std::io::Result<i64> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_reply("malformed length in a pub/sub reply"))
    };
    match kind {
        b'+' => Ok(Reply::Simple),
        b'-' => Ok(Reply::Error(rest.to_vec())),
        b':' => {
            number()?;
            Ok(Reply::Int)
        }
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            if len > MAX_BULK {
                return Err(bad_reply("oversized bulk string in a pub/sub reply"));
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(Some(data)))
        }
        b'*' => {
            let len = number()?;
            if len > MAX_ARRAY {
                return Err(bad_reply("oversized array in a pub/sub reply"));
            }
            let mut items = Vec::with_capacity(len.clamp(0, 16) as usize);
            for _ in 0..len.max(0) {
                items.push(read_reply_at(reader, depth + 1)?);
            }
            Ok(Reply::Array(items))
        }
        _ => Err(bad_reply(
            "unexpected reply type on the subscriber connection",
        )),
    }
}

fn encode_command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Per channel: who waits on it and how far Redis has confirmed our
/// SUBSCRIBE commands (replies come in order, so counting is enough).
#[derive(Default)]
struct Channel {
    watchers: Vec<Watcher>,
    subscribed: bool,
    subs_sent: u64,
    subs_confirmed: u64,
    /// Our UNSUBSCRIBE commands sent and confirmed. Until Redis confirms
    /// one, it counts this connection as a listener: a release published
    /// meanwhile would reserve the lock for a waiter that is gone (see
    /// [`Subscriber::settle`]).
    unsubs_sent: u64,
    unsubs_confirmed: u64,
    /// The last of our SUBSCRIBE commands that Redis refused (a user
    /// without permission for the channel or the command): its number
    /// among `subs_sent` and the server's error. The waiters of that
    /// SUBSCRIBE fail with it rather than wait for a release they would
    /// never hear.
    refused: Option<(u64, String)>,
}

/// One waiter listening on a channel.
struct Watcher {
    id: u64,
    parker: Arc<Parker>,
    /// The waiter's own hold token: a broadcast release message carries
    /// the releasing token, and a waiter is not woken by its own release
    /// (Redlock gives back a failed partial acquire that way; waking
    /// ourselves would spin).
    own_token: Vec<u8>,
    /// The waiter's queue id (empty when it is not queued): a release that
    /// hands the lock to one queued waiter publishes that id, and wakes
    /// only that waiter.
    waiter: Vec<u8>,
}

impl Watcher {
    /// Whether a message with `payload` is for this waiter.
    fn is_woken_by(&self, payload: &[u8]) -> bool {
        if payload.starts_with(WAITER_ID_PREFIX.as_bytes())
            || payload.starts_with(FAIR_WAITER_ID_PREFIX.as_bytes())
        {
            self.waiter == payload
        } else {
            self.own_token != payload
        }
    }
}

/// How every waiter id starts (and no hold token does): a message that
/// starts so names the one waiter it wakes.
pub(crate) const WAITER_ID_PREFIX: &str = "w:";

/// How a fair lock's waiter ids start: the scripts keep such a waiter in
/// the queue when they hand it the lock (see src/scripts/prelude.lua).
pub(crate) const FAIR_WAITER_ID_PREFIX: &str = "f:";

impl Channel {
    /// Nothing waits on it and Redis confirmed every command about it.
    fn settled(&self) -> bool {
        self.watchers.is_empty()
            && self.subs_confirmed >= self.subs_sent
            && self.unsubs_confirmed >= self.unsubs_sent
    }
}

struct Connected {
    writer: Stream,
}

#[derive(Default)]
struct State {
    conn: Option<Connected>,
    epoch: u64,
    next_watch_id: u64,
    channels: HashMap<Vec<u8>, Channel>,
    closed: bool,
    /// The command timeout of the endpoint `conn` was opened to.
    command_timeout: Duration,
    /// The fork generation that opened `conn`. A forked child must neither use nor
    /// shut down its parent's socket (shutdown would cut the parent off).
    generation: u64,
    /// Plain lanes: our SUBSCRIBE (true) and UNSUBSCRIBE (false) commands
    /// on `conn` not answered yet, in the order sent. Each names one
    /// channel and gets one reply, in order, so an error reply (which names
    /// no channel) belongs to the first of them.
    unanswered: VecDeque<(bool, Vec<u8>)>,
}

struct Shared {
    state: Mutex<State>,
    confirmed: Condvar,
    kind: Kind,
}

/// Plain pub/sub (heard on any node of a Cluster) or sharded pub/sub (heard
/// on the shard that owns the channel's slot).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Sharded,
}

impl Kind {
    fn subscribe(self) -> &'static [u8] {
        match self {
            Kind::Plain => b"SUBSCRIBE",
            Kind::Sharded => b"SSUBSCRIBE",
        }
    }

    fn unsubscribe(self) -> &'static [u8] {
        match self {
            Kind::Plain => b"UNSUBSCRIBE",
            Kind::Sharded => b"SUNSUBSCRIBE",
        }
    }

    fn message(self) -> &'static [u8] {
        match self {
            Kind::Plain => b"message",
            Kind::Sharded => b"smessage",
        }
    }

    fn confirmation(self) -> &'static [u8] {
        match self {
            Kind::Plain => b"subscribe",
            Kind::Sharded => b"ssubscribe",
        }
    }

    fn unsubscribed(self) -> &'static [u8] {
        match self {
            Kind::Plain => b"unsubscribe",
            Kind::Sharded => b"sunsubscribe",
        }
    }
}

/// The Client's release listener for one source of releases: one lane
/// (connection and reader thread) for plain pub/sub, or one lane per shard
/// master when the source says releases are sharded. Dropping it closes the
/// connections, which ends the reader threads.
pub(crate) struct Subscriber {
    source: EndpointSource,
    plain: Lane,
    /// Learned from the source's first endpoint: where each channel's
    /// shard lives, when releases are sharded.
    router: Mutex<Option<Option<ShardRouter>>>,
    /// Sharded lanes by master address.
    shards: Mutex<HashMap<String, Arc<Lane>>>,
}

/// One subscriber connection and its reader thread.
struct Lane {
    source: EndpointSource,
    /// Per process: the reader thread locks the state for every message,
    /// and a child forked meanwhile must not wait on that lock; it starts
    /// with no connection and no waiters of its own.
    shared: PerProcess<Arc<Shared>>,
}

/// A waiter's interest in one channel; dropping it unsubscribes when it was
/// the last one.
pub(crate) struct Watch {
    shared: Arc<Shared>,
    channel: Vec<u8>,
    id: u64,
    epoch: u64,
}

impl Subscriber {
    pub(crate) fn new(source: EndpointSource) -> Self {
        Subscriber {
            plain: Lane::new(source.clone(), Kind::Plain),
            source,
            router: Mutex::new(None),
            shards: Mutex::new(HashMap::new()),
        }
    }

    /// Subscribes `parker` to `channel` and returns once Redis confirmed the
    /// subscription (or fails after the command timeout).
    pub(crate) fn watch(
        &self,
        channel: &[u8],
        parker: &Arc<Parker>,
        woken_from: u64,
        own_token: &str,
        waiter: &str,
    ) -> Result<Watch> {
        let Some(router) = self.router()? else {
            return self
                .plain
                .watch(channel, parker, woken_from, own_token, waiter);
        };
        let endpoint = router(channel, false)?;
        let lane_key = format!("{:?}", endpoint.info.addr());
        let lane = self
            .shards
            .lock()
            .entry(lane_key)
            .or_insert_with(|| {
                let fixed = endpoint.clone();
                Arc::new(Lane::new(
                    Arc::new(move || Ok(fixed.clone())),
                    Kind::Sharded,
                ))
            })
            .clone();
        let watched = lane.watch(channel, parker, woken_from, own_token, waiter);
        if watched.is_err() {
            // The slot may have moved (failover, resharding): read the slot
            // map again, so the next attempt goes where the slot is now.
            let _ = router(channel, true);
        }
        watched
    }

    /// Waits (at most the command timeout) until Redis confirmed every
    /// UNSUBSCRIBE this client sent for `channel` and no waiter of this
    /// client listens there any more: a release sent before that would
    /// count this connection as a listener and reserve the lock for 100 ms
    /// for a waiter that is gone, and the releaser's own next acquire would
    /// wait that reservation out.
    pub(crate) fn settle(&self, channel: &[u8]) {
        self.plain.settle(channel);
        let shards: Vec<Arc<Lane>> = self.shards.lock().values().cloned().collect();
        for lane in shards {
            lane.settle(channel);
        }
    }

    /// Closes the listener connections, so every waiter wakes, tries again
    /// and subscribes anew where the source now points (after a failover).
    pub(crate) fn reconnect(&self) {
        self.plain.reconnect();
        for lane in self.shards.lock().values() {
            lane.reconnect();
        }
    }

    /// Whether releases of this source are sharded, asked of the source once.
    fn router(&self) -> Result<Option<ShardRouter>> {
        let mut router = self.router.lock();
        if let Some(known) = router.as_ref() {
            return Ok(known.clone());
        }
        let endpoint = (self.source)()?;
        *router = Some(endpoint.shard_router.clone());
        Ok(endpoint.shard_router)
    }
}

impl Lane {
    fn new(source: EndpointSource, kind: Kind) -> Self {
        let make = move || {
            Arc::new(Shared {
                state: Mutex::new(State::default()),
                confirmed: Condvar::new(),
                kind,
            })
        };
        Lane {
            source,
            shared: PerProcess::new(make, |_| {}),
        }
    }

    /// Subscribes `parker` to `channel` and returns once Redis confirmed the
    /// subscription (or fails after the command timeout).
    fn watch(
        &self,
        channel: &[u8],
        parker: &Arc<Parker>,
        woken_from: u64,
        own_token: &str,
        waiter: &str,
    ) -> Result<Watch> {
        let _masked = crate::signals::mask();
        let mut state = self.shared.get().state.lock();
        forget_parents_connection(&mut state);
        if state.conn.is_none() {
            let (writer, command_timeout) = self.connect(&mut state)?;
            state.conn = Some(Connected { writer });
            state.command_timeout = command_timeout;
        }
        let epoch = state.epoch;
        let id = state.next_watch_id;
        state.next_watch_id += 1;
        let entry = state.channels.entry(channel.to_vec()).or_default();
        entry.watchers.push(Watcher {
            id,
            parker: parker.clone(),
            own_token: own_token.as_bytes().to_vec(),
            waiter: waiter.as_bytes().to_vec(),
        });
        let watch = Watch {
            shared: self.shared.get().clone(),
            channel: channel.to_vec(),
            id,
            epoch,
        };
        let target = if entry.subscribed {
            entry.subs_sent
        } else {
            entry.subscribed = true;
            entry.subs_sent += 1;
            let target = entry.subs_sent;
            let command = encode_command(&[self.shared.get().kind.subscribe(), channel]);
            state.unanswered.push_back((true, channel.to_vec()));
            if let Err(e) = write_all(&mut state, &command) {
                drop(state);
                drop(watch);
                return Err(e);
            }
            target
        };
        let deadline = Instant::now() + state.command_timeout;
        // The waiter's parker counts cancels (and release messages heard on
        // other servers) since `woken_from`, what the waiter last saw:
        // waiting for the confirmation ends with them, in short slices, so
        // a cancel is not held up for a command timeout.
        loop {
            if parker.wakeups() != woken_from {
                drop(state);
                drop(watch);
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "woken while waiting for Redis to confirm a SUBSCRIBE",
                ));
            }
            if state.epoch != epoch || state.closed {
                drop(state);
                drop(watch);
                return Err(Error::new(
                    ErrorKind::Connection,
                    "the subscriber connection closed while subscribing",
                ));
            }
            let entry = state.channels.get(channel);
            if let Some((_, refusal)) = entry
                .and_then(|c| c.refused.as_ref())
                .filter(|(number, _)| *number == target)
            {
                let err = subscribe_refused(channel, refusal);
                drop(state);
                drop(watch);
                return Err(err);
            }
            if entry.is_some_and(|c| c.subs_confirmed >= target) {
                return Ok(watch);
            }
            let slice = deadline.min(Instant::now() + CONFIRMATION_SLICE);
            if self
                .shared
                .get()
                .confirmed
                .wait_until(&mut state, slice)
                .timed_out()
                && Instant::now() >= deadline
            {
                drop(state);
                drop(watch);
                return Err(Error::new(
                    ErrorKind::Connection,
                    "Redis did not confirm a SUBSCRIBE within the command timeout",
                ));
            }
        }
    }

    /// See [`Subscriber::settle`]. Returns at once when a waiter of this
    /// client listens on `channel` (it is a listener indeed).
    fn settle(&self, channel: &[u8]) {
        let shared = self.shared.get().clone();
        let mut state = shared.state.lock();
        let deadline = Instant::now() + state.command_timeout;
        loop {
            let pending = state
                .channels
                .get(channel)
                .is_some_and(|c| c.watchers.is_empty() && c.unsubs_confirmed < c.unsubs_sent);
            if !pending || state.conn.is_none() || state.closed {
                return;
            }
            if shared
                .confirmed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return;
            }
        }
    }

    /// Shuts the connection down; its reader thread then wakes every waiter.
    fn reconnect(&self) {
        let mut state = self.shared.get().state.lock();
        forget_parents_connection(&mut state);
        if let Some(conn) = state.conn.as_ref() {
            conn.writer.shutdown();
        }
    }

    fn connect(&self, state: &mut State) -> Result<(Stream, Duration)> {
        if state.closed {
            return Err(Error::new(ErrorKind::Connection, "the client is closed"));
        }
        let endpoint = (self.source)()?;
        let stream = open_stream(&endpoint)?;
        let reader = stream.try_clone().map_err(io_error)?;
        state.epoch += 1;
        state.unanswered.clear();
        state.generation = crate::fork::generation();
        let epoch = state.epoch;
        let shared = self.shared.get().clone();
        crate::thread::spawn("latchkey-pubsub", move || read_loop(shared, reader, epoch)).map_err(
            |e| {
                Error::new(
                    ErrorKind::Connection,
                    format!("cannot start the pub/sub thread: {e}"),
                )
            },
        )?;
        Ok((stream, endpoint.command_timeout))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut state = self.shared.get().state.lock();
        state.closed = true;
        forget_parents_connection(&mut state);
        if let Some(conn) = state.conn.take() {
            conn.writer.shutdown();
        }
    }
}

impl Watch {
    /// False once the subscriber connection this watch was made on is gone:
    /// the waiter must watch again to hear releases.
    pub(crate) fn is_live(&self) -> bool {
        let state = self.shared.state.lock();
        state.epoch == self.epoch && state.conn.is_some()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        let same_connection = state.epoch == self.epoch && state.conn.is_some();
        let Some(entry) = state.channels.get_mut(&self.channel) else {
            return;
        };
        entry.watchers.retain(|watcher| watcher.id != self.id);
        if !entry.watchers.is_empty() {
            return;
        }
        let unsubscribe = entry.subscribed && same_connection;
        entry.subscribed = false;
        if unsubscribe {
            entry.unsubs_sent += 1;
        }
        if entry.settled() {
            state.channels.remove(&self.channel);
        }
        if unsubscribe {
            let command = encode_command(&[self.shared.kind.unsubscribe(), &self.channel]);
            state.unanswered.push_back((false, self.channel.clone()));
            let _ = write_all(&mut state, &command);
        }
    }
}

/// In a forked child, drops (closes, without shutting down) the socket
/// inherited from the parent, and the parent's waiters with it; the child
/// subscribes on a connection of its own.
fn forget_parents_connection(state: &mut State) {
    if state.conn.is_some() && state.generation != crate::fork::generation() {
        state.conn = None;
        state.channels.clear();
        state.unanswered.clear();
        state.epoch += 1;
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Connection, format!("pub/sub connection: {e}"))
}

fn write_all(state: &mut State, bytes: &[u8]) -> Result<()> {
    let Some(conn) = state.conn.as_mut() else {
        return Err(Error::new(
            ErrorKind::Connection,
            "pub/sub connection is closed",
        ));
    };
    if let Err(e) = conn.writer.write_all(bytes) {
        conn.writer.shutdown();
        return Err(io_error(e));
    }
    Ok(())
}

fn open_stream(endpoint: &PubSubEndpoint) -> Result<Stream> {
    let stream = match endpoint.info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => {
            let addrs = (host.as_str(), *port).to_socket_addrs().map_err(io_error)?;
            let mut last = None;
            let mut connected = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, endpoint.connect_timeout) {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let s = connected.ok_or_else(|| {
                io_error(last.unwrap_or_else(|| bad_reply("the host name resolved to no address")))
            })?;
            let _ = s.set_nodelay(true);
            match &endpoint.tls {
                None => Stream::Tcp(s),
                Some(tls) => Stream::Tls(Arc::new(
                    tls.connect(s, host, endpoint.connect_timeout)
                        .map_err(io_error)?,
                )),
            }
        }
        redis::ConnectionAddr::Unix(path) => Stream::Unix(
            crate::net::connect_unix(path, endpoint.connect_timeout).map_err(io_error)?,
        ),
        _ => {
            return Err(Error::invalid(
                "waiting on this kind of connection (TLS) is not supported yet",
            ))
        }
    };
    stream
        .set_timeouts(
            Some(endpoint.command_timeout),
            Some(endpoint.command_timeout),
        )
        .map_err(io_error)?;
    let mut stream = stream;
    authenticate(&mut stream, endpoint)?;
    // From now on the reader blocks until a message comes, however long.
    stream
        .set_timeouts(None, Some(endpoint.command_timeout))
        .map_err(io_error)?;
    Ok(stream)
}

fn authenticate(stream: &mut Stream, endpoint: &PubSubEndpoint) -> Result<()> {
    let settings = endpoint.info.redis_settings();
    let Some(password) = settings.password() else {
        return Ok(());
    };
    let command = match settings.username() {
        Some(user) => encode_command(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
        None => encode_command(&[b"AUTH", password.as_bytes()]),
    };
    stream.write_all(&command).map_err(io_error)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io_error)?);
    match read_reply(&mut reader).map_err(io_error)? {
        Reply::Simple => Ok(()),
        // The server's message names no password; we never echo ours.
        Reply::Error(text) => Err(Error::new(
            ErrorKind::Connection,
            format!(
                "pub/sub connection: authentication failed: {}",
                String::from_utf8_lossy(&text)
            ),
        )),
        _ => Err(Error::new(
            ErrorKind::Connection,
            "pub/sub connection: unexpected reply to AUTH",
        )),
    }
}

/// What a pub/sub reply of a lane of `kind` is.
enum Heard {
    Message,
    Confirmation,
    /// Redis confirmed one of our UNSUBSCRIBE (or SUNSUBSCRIBE) commands.
    Unsubscribed,
    Other,
}

fn kind_of_reply(kind: Kind, reply_kind: &[u8]) -> Heard {
    if reply_kind == kind.message() {
        Heard::Message
    } else if reply_kind == kind.confirmation() {
        Heard::Confirmation
    } else if reply_kind == kind.unsubscribed() {
        Heard::Unsubscribed
    } else {
        Heard::Other
    }
}

fn read_loop(shared: Arc<Shared>, reader: Stream, epoch: u64) {
    crate::signals::mask_for_this_thread();
    let mut reader = BufReader::new(reader);
    let kind = shared.kind;
    while let Ok(reply) = read_reply(&mut reader) {
        let items = match reply {
            Reply::Array(items) => items,
            // A sharded subscription refused (MOVED after a failover or a
            // resharding): start over on a fresh connection, where the
            // waiters ask for the slot's master again.
            Reply::Error(_) if kind == Kind::Sharded => break,
            // A plain one refused (NOPERM: an ACL user without the channel
            // or the command): its waiters fail with the server's reason.
            Reply::Error(text) => {
                if refused(&shared, epoch, &text) {
                    continue;
                }
                break;
            }
            _ => continue,
        };
        let mut items = items.into_iter();
        let (Some(Reply::Bulk(Some(message_kind))), Some(Reply::Bulk(Some(channel)))) =
            (items.next(), items.next())
        else {
            continue;
        };
        let payload = match items.next() {
            Some(Reply::Bulk(Some(payload))) => payload,
            _ => Vec::new(),
        };
        let mut state = shared.state.lock();
        let heard = kind_of_reply(kind, &message_kind);
        if kind == Kind::Plain
            && state.epoch == epoch
            && matches!(heard, Heard::Confirmation | Heard::Unsubscribed)
        {
            state.unanswered.pop_front();
        }
        match heard {
            Heard::Message => {
                if let Some(entry) = state.channels.get(&channel) {
                    for watcher in &entry.watchers {
                        if watcher.is_woken_by(&payload) {
                            watcher.parker.wake();
                        }
                    }
                }
            }
            Heard::Confirmation => {
                if let Some(entry) = state.channels.get_mut(&channel) {
                    entry.subs_confirmed += 1;
                    if entry.settled() {
                        state.channels.remove(&channel);
                    }
                }
                shared.confirmed.notify_all();
            }
            Heard::Unsubscribed => {
                let Some(entry) = state.channels.get_mut(&channel) else {
                    continue;
                };
                if entry.unsubs_confirmed < entry.unsubs_sent {
                    entry.unsubs_confirmed += 1;
                    if entry.settled() {
                        state.channels.remove(&channel);
                    }
                    shared.confirmed.notify_all();
                } else if kind == Kind::Sharded && entry.subscribed && !entry.watchers.is_empty() {
                    // Not ours: the server gave up a shard channel we still
                    // listen on (its slot moved away). Start over where the
                    // slot is now.
                    break;
                }
            }
            Heard::Other => {}
        }
    }
    // The connection is gone: forget it and wake everyone, so waiters retry
    // at once and subscribe again on a new connection.
    let mut state = shared.state.lock();
    if state.epoch == epoch {
        state.unanswered.clear();
        if let Some(conn) = state.conn.take() {
            conn.writer.shutdown();
        }
        for entry in state.channels.values_mut() {
            entry.subscribed = false;
            entry.subs_sent = 0;
            entry.subs_confirmed = 0;
            entry.unsubs_sent = 0;
            entry.unsubs_confirmed = 0;
            for watcher in &entry.watchers {
                watcher.parker.wake();
            }
        }
        state.channels.retain(|_, c| !c.watchers.is_empty());
        shared.confirmed.notify_all();
    }
}

/// Redis answered the first unanswered command of a plain lane's connection
/// (of `epoch`) with an error. A refused SUBSCRIBE counts as answered and
/// records the refusal for its waiters. False for a refused UNSUBSCRIBE:
/// the connection still listens there, and dropping it (the caller does)
/// is the only way to stop. An error that answers none of ours is ignored.
fn refused(shared: &Shared, epoch: u64, text: &[u8]) -> bool {
    let mut state = shared.state.lock();
    if state.epoch != epoch {
        return true;
    }
    let channel = match state.unanswered.pop_front() {
        Some((true, channel)) => channel,
        Some((false, _)) => return false,
        None => return true,
    };
    if let Some(entry) = state.channels.get_mut(&channel) {
        entry.subs_confirmed += 1;
        let text = String::from_utf8_lossy(text).into_owned();
        entry.refused = Some((entry.subs_confirmed, text));
        if entry.subs_confirmed >= entry.subs_sent {
            // Not listening: the next waiter sends a SUBSCRIBE of its own.
            entry.subscribed = false;
        }
        if entry.settled() {
            state.channels.remove(&channel);
        }
    }
    shared.confirmed.notify_all();
    true
}

/// The error of a waiter whose SUBSCRIBE Redis refused with `refusal`: a
/// server error when the user lacks the permission (retrying cannot help,
/// so the acquisition fails with it), else a connection error, which a
/// waiter rides out as before (it waits without hearing releases).
fn subscribe_refused(channel: &[u8], refusal: &str) -> Error {
    let hint = crate::error::permission_hint(refusal);
    let kind = if hint.is_empty() {
        ErrorKind::Connection
    } else {
        ErrorKind::Server
    };
    Error::new(
        kind,
        format!(
            "Redis refused to SUBSCRIBE to the release channel '{}': {refusal}{}",
            String::from_utf8_lossy(channel),
            hint,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_message_reply() {
        let bytes = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$8\r\nreleased\r\n";
        let reply = read_reply(&mut &bytes[..]).unwrap();
        match reply {
            Reply::Array(items) => assert_eq!(items.len(), 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sharded_lanes_hear_sharded_replies_only() {
        assert!(matches!(
            kind_of_reply(Kind::Plain, b"message"),
            Heard::Message
        ));
        assert!(matches!(
            kind_of_reply(Kind::Plain, b"smessage"),
            Heard::Other
        ));
        assert!(matches!(
            kind_of_reply(Kind::Sharded, b"smessage"),
            Heard::Message
        ));
        assert!(matches!(
            kind_of_reply(Kind::Sharded, b"ssubscribe"),
            Heard::Confirmation
        ));
        assert!(matches!(
            kind_of_reply(Kind::Sharded, b"sunsubscribe"),
            Heard::Unsubscribed
        ));
        assert!(matches!(
            kind_of_reply(Kind::Plain, b"sunsubscribe"),
            Heard::Other
        ));
        assert_eq!(Kind::Sharded.subscribe(), b"SSUBSCRIBE");
        assert_eq!(Kind::Sharded.unsubscribe(), b"SUNSUBSCRIBE");
    }

    #[test]
    fn rejects_a_truncated_reply() {
        assert!(read_reply(&mut &b"*3\r\n$7\r\nmess"[..]).is_err());
        assert!(read_reply(&mut &b""[..]).is_err());
        assert!(read_reply(&mut &b"$x\r\n"[..]).is_err());
    }

    #[test]
    fn refuses_replies_that_would_exhaust_memory_or_the_stack() {
        // A huge bulk length, an endless line, deep nesting, a huge array.
        assert!(read_reply(&mut &b"$9223372036854775807\r\n"[..]).is_err());
        let endless = vec![b'+'; 10 * 1024 * 1024];
        assert!(read_reply(&mut &endless[..]).is_err());
        let deep = b"*1\r\n".repeat(100_000);
        assert!(read_reply(&mut &deep[..]).is_err());
        assert!(read_reply(&mut &b"*9223372036854775807\r\n"[..]).is_err());
        // What Redis really sends still parses.
        let pmessage = b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$1\r\nx\r\n";
        assert!(read_reply(&mut &pmessage[..]).is_ok());
    }

    #[test]
    fn encodes_commands_as_resp_arrays() {
        assert_eq!(
            encode_command(&[b"SUBSCRIBE", b"a b"]),
            b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\na b\r\n"
        );
    }
}
