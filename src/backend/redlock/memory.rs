//! An in-memory Redlock master for the unit tests: it runs the plain lock
//! scripts Redlock sends (acquire, release, raise the fencing counter,
//! confirm a hold) on a map of keys that expire on a [`ManualClock`], and
//! can be told to answer, refuse, hang past the timeout or answer late.
//!
//! A request costs the clock its latency, counted from when it was sent,
//! so requests in flight at once cost the slowest of them; a request that
//! is not answered in time moves the clock to the caller's deadline. Only
//! the requests of an operation move the clock: the recovery thread's
//! probes and clean-ups run in the background, in real time, and must not
//! change what a test measures.
//!
//! The fencing counter is modelled without the server clock term of
//! `next_fence` (head.lua): a token is the counter plus one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};
use redis::Value;

use super::clock::{Clock, ManualClock};
use super::node::{MasterNode, ServerRun};
use crate::backend::{Call, EndpointSource};
use crate::error::{Error, ErrorKind, Result};

/// How a memory node treats the requests it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behaviour {
    /// Runs each request and answers after its latency.
    Answer,
    /// Refuses the connection at once: nothing runs.
    Refuse,
    /// Never answers: the caller waits out its timeout, and nothing runs.
    Hang,
    /// Runs each request, but its answer arrives after the caller's
    /// timeout (a stopped server that resumes, a slow one catching up).
    Late,
}

/// An in-memory master; clones are handles on the same one, so a test
/// keeps a handle to inspect a node that Redlock owns.
#[derive(Clone)]
pub(super) struct MemoryNode(Arc<Inner>);

struct Inner {
    id: usize,
    clock: ManualClock,
    command_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    behaviour: Behaviour,
    latency: Duration,
    connected: bool,
    /// Value and expiry of each key.
    keys: HashMap<Vec<u8>, (Vec<u8>, Option<Instant>)>,
    /// Operation requests (send) that reached the node, whatever it did.
    requests: usize,
    /// Shared by nodes that connect at the same time (see [`connect_together`]).
    gate: Option<Arc<Gate>>,
    /// The current run: its number, when it started on the clock and how
    /// long it had been up by then (a node is made a day old).
    run: u64,
    run_since: Instant,
    uptime_then: Duration,
    /// Connections the client opened (a restart drops the pooled one).
    connections: u64,
}

/// Holds the sends of nodes that connect on threads of their own until
/// all of them have read the clock: with a clock moved by hand, a thread
/// that happened to start after another one's answer moved it would
/// otherwise look as if it had been started after that answer.
struct Gate {
    expected: usize,
    arrived: Mutex<usize>,
    all_in: Condvar,
}

impl Gate {
    /// Waits for the other nodes, in real time, for at most 2 s: nodes
    /// connected one after another never all arrive, and then each goes
    /// on alone (and its clock reading shows that it waited for the others).
    fn arrive(&self) {
        let mut arrived = self.arrived.lock();
        *arrived += 1;
        self.all_in.notify_all();
        let until = Instant::now() + Duration::from_secs(2);
        while *arrived < self.expected {
            if self.all_in.wait_until(&mut arrived, until).timed_out() {
                return;
            }
        }
    }
}

/// Takes `nodes` off their pooled connections, so that Redlock connects
/// to each on a thread of its own, and makes their first requests read the
/// clock together, as they would if they ran at once.
pub(super) fn connect_together(nodes: &[MemoryNode]) {
    let gate = Arc::new(Gate {
        expected: nodes.len(),
        arrived: Mutex::new(0),
        all_in: Condvar::new(),
    });
    for node in nodes {
        let mut state = node.0.state.lock();
        state.connected = false;
        state.gate = Some(gate.clone());
    }
}

/// A request written to a memory node: what it answers, decided when it
/// was sent.
pub(super) struct InFlight {
    sent: Instant,
    behaviour: Behaviour,
    latency: Duration,
    replies: Vec<Result<Value>>,
}

impl MemoryNode {
    /// Node number `id` (its identity), answering at once, with a pooled
    /// connection, on `clock`, giving up on a reply after `command_timeout`.
    pub(super) fn new(id: usize, clock: &ManualClock, command_timeout: Duration) -> Self {
        MemoryNode(Arc::new(Inner {
            id,
            clock: clock.clone(),
            command_timeout,
            state: Mutex::new(State {
                behaviour: Behaviour::Answer,
                latency: Duration::ZERO,
                connected: true,
                keys: HashMap::new(),
                requests: 0,
                gate: None,
                run: 0,
                run_since: clock.now(),
                uptime_then: Duration::from_secs(24 * 3600),
                connections: 1,
            }),
        }))
    }

    /// Sets how the node treats the requests sent from now on.
    pub(super) fn behave(&self, behaviour: Behaviour) {
        self.0.state.lock().behaviour = behaviour;
    }

    /// Sets how long the node takes to answer.
    pub(super) fn set_latency(&self, latency: Duration) {
        self.0.state.lock().latency = latency;
    }

    /// Sets a lock key as held by `token` for `ttl`.
    pub(super) fn hold(&self, key: &[u8], token: &str, ttl: Duration) {
        let expiry = self.0.clock.now() + ttl;
        self.0
            .state
            .lock()
            .keys
            .insert(key.to_vec(), (token.as_bytes().to_vec(), Some(expiry)));
    }

    /// Sets a fencing counter.
    pub(super) fn set_counter(&self, key: &[u8], value: u64) {
        self.0
            .state
            .lock()
            .keys
            .insert(key.to_vec(), (value.to_string().into_bytes(), None));
    }

    /// Who holds the lock key now, if anyone.
    pub(super) fn holder(&self, key: &[u8]) -> Option<String> {
        let now = self.0.clock.now();
        let mut state = self.0.state.lock();
        state
            .get(key, now)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// A fencing counter's value now, if set.
    pub(super) fn counter(&self, key: &[u8]) -> Option<u64> {
        let now = self.0.clock.now();
        let mut state = self.0.state.lock();
        state.get(key, now).and_then(|v| decimal(&v))
    }

    /// Restarts the node empty, as a server without persistence restarts:
    /// every key is gone, a new run begins now, and the client's pooled
    /// connection is dropped (its next request opens a new one).
    pub(super) fn restart(&self) {
        let now = self.0.clock.now();
        let mut state = self.0.state.lock();
        state.keys.clear();
        state.run += 1;
        state.run_since = now;
        state.uptime_then = Duration::ZERO;
        state.connections += 1;
    }

    /// Makes the current run `uptime` old now (a node is made a day old).
    pub(super) fn set_uptime(&self, uptime: Duration) {
        let now = self.0.clock.now();
        let mut state = self.0.state.lock();
        state.run_since = now;
        state.uptime_then = uptime;
    }

    /// How many operation requests reached the node.
    pub(super) fn requests(&self) -> usize {
        self.0.state.lock().requests
    }

    fn error(&self, kind: ErrorKind, why: &str) -> Error {
        Error::new(kind, format!("on memory node {}: {why}", self.0.id))
    }

    /// What a background call (probe or clean-up) gets: it never moves
    /// the clock.
    fn background<T>(&self, run: impl FnOnce(&mut State, Instant) -> T) -> Result<T> {
        let now = self.0.clock.now();
        let mut state = self.0.state.lock();
        match state.behaviour {
            Behaviour::Answer => Ok(run(&mut state, now)),
            Behaviour::Refuse => Err(self.error(ErrorKind::Connection, "refused")),
            Behaviour::Hang => Err(self.error(ErrorKind::Timeout, "timed out")),
            Behaviour::Late => {
                run(&mut state, now);
                Err(self.error(ErrorKind::Timeout, "timed out"))
            }
        }
    }
}

impl State {
    fn get(&mut self, key: &[u8], now: Instant) -> Option<Vec<u8>> {
        match self.keys.get(key) {
            Some((_, Some(expiry))) if *expiry <= now => {
                self.keys.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8], ttl_ms: u64, now: Instant) {
        let expiry = now + Duration::from_millis(ttl_ms);
        self.keys
            .insert(key.to_vec(), (value.to_vec(), Some(expiry)));
    }

    /// Milliseconds until `key` expires (-1: no expiry, -2: no key), as PTTL.
    fn pttl(&self, key: &[u8], now: Instant) -> i64 {
        match self.keys.get(key) {
            Some((_, Some(expiry))) => {
                i64::try_from(expiry.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX)
            }
            Some((_, None)) => -1,
            None => -2,
        }
    }

    /// Runs one script as Redis would (the plain lock scripts only).
    fn run(&mut self, call: &Call<'_>, now: Instant) -> Result<Value> {
        let key = |i: usize| call.keys.get(i).copied().ok_or_else(|| bad(call));
        let arg = |i: usize| {
            call.args
                .get(i)
                .map(|a| a.as_ref())
                .ok_or_else(|| bad(call))
        };
        let number = |i: usize| arg(i).and_then(|a| decimal(a).ok_or_else(|| bad(call)));
        match call.script.name {
            "acquire.lua" => {
                let (lock, fence) = (key(0)?, key(1)?);
                let (hold, ttl, waited, retention) = (arg(0)?, number(1)?, arg(2)?, number(3)?);
                match self.get(lock, now) {
                    Some(value) if value == hold => {}
                    Some(value) if waited == b"1" && value == b"handoff" => {}
                    Some(_) => {
                        return Ok(Value::Array(vec![
                            Value::Int(0),
                            Value::Int(self.pttl(lock, now)),
                        ]))
                    }
                    None => {}
                }
                self.set(lock, hold, ttl, now);
                let token = self.get(fence, now).and_then(|v| decimal(&v)).unwrap_or(0) + 1;
                let text = token.to_string().into_bytes();
                self.set(fence, &text, retention, now);
                Ok(Value::Array(vec![Value::Int(1), Value::BulkString(text)]))
            }
            "release.lua" => {
                let lock = key(0)?;
                if self.get(lock, now).as_deref() != Some(arg(0)?) {
                    return Ok(Value::Int(0));
                }
                // Nobody listens to a memory node: the key is deleted.
                self.keys.remove(lock);
                Ok(Value::Int(1))
            }
            "raise_fence.lua" => {
                let fence = key(0)?;
                let (token, retention) = (number(0)?, number(1)?);
                let current = self.get(fence, now).and_then(|v| decimal(&v));
                if current.is_none_or(|c| c < token) {
                    self.set(fence, token.to_string().as_bytes(), retention, now);
                }
                Ok(Value::Int(1))
            }
            "hold_exists.lua" if arg(1)? == b"0" => {
                let held = self.get(key(0)?, now).as_deref() == Some(arg(0)?);
                Ok(Value::Int(i64::from(held)))
            }
            other => Err(Error::new(
                ErrorKind::Server,
                format!("the memory node does not run {other}"),
            )),
        }
    }
}

fn decimal(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn bad(call: &Call<'_>) -> Error {
    Error::new(
        ErrorKind::Server,
        format!("{}: wrong number of keys or arguments", call.script.name),
    )
}

impl MasterNode for MemoryNode {
    type InFlight<'a> = InFlight;

    fn has_idle(&self) -> bool {
        self.0.state.lock().connected
    }

    fn send<'a>(&self, calls: &'a [Call<'a>]) -> InFlight {
        let gate = self.0.state.lock().gate.clone();
        let sent = self.0.clock.now();
        if let Some(gate) = gate {
            gate.arrive();
        }
        let mut state = self.0.state.lock();
        state.requests += 1;
        let (behaviour, latency) = (state.behaviour, state.latency);
        let replies = match behaviour {
            Behaviour::Answer | Behaviour::Late => {
                calls.iter().map(|call| state.run(call, sent)).collect()
            }
            Behaviour::Refuse | Behaviour::Hang => Vec::new(),
        };
        InFlight {
            sent,
            behaviour,
            latency,
            replies,
        }
    }

    fn receive(
        &self,
        in_flight: InFlight,
        deadline: Option<Instant>,
    ) -> Result<Vec<Result<Value>>> {
        let own = in_flight.sent + self.0.command_timeout;
        let limit = deadline.map_or(own, |d| d.min(own));
        let arrival = in_flight.sent + in_flight.latency;
        match in_flight.behaviour {
            Behaviour::Refuse => Err(self.error(ErrorKind::Connection, "refused")),
            Behaviour::Answer if arrival <= limit => {
                self.0.clock.advance_to(arrival);
                Ok(in_flight.replies)
            }
            Behaviour::Answer | Behaviour::Hang | Behaviour::Late => {
                self.0.clock.advance_to(limit);
                Err(self.error(ErrorKind::Timeout, "timed out"))
            }
        }
    }

    fn eval(&self, call: &Call<'_>) -> Result<Value> {
        self.background(|state, now| state.run(call, now))?
    }

    fn ping(&self) -> Result<()> {
        self.background(|_, _| ())
            .map_err(|e| e.context("probing the server"))
    }

    fn connections_opened(&self) -> u64 {
        self.0.state.lock().connections
    }

    fn server_run(&self) -> Result<ServerRun> {
        let id = self.0.id;
        self.background(|state, now| ServerRun {
            id: format!("memory-{id}-run-{}", state.run),
            uptime: state.uptime_then + now.saturating_duration_since(state.run_since),
        })
    }

    fn server_identity(&self) -> String {
        format!("memory:{}", self.0.id)
    }

    fn pubsub_source(&self) -> EndpointSource {
        let id = self.0.id;
        Arc::new(move || {
            Err(Error::new(
                ErrorKind::Connection,
                format!("memory node {id} has no release channel"),
            ))
        })
    }

    fn describe(&self) -> String {
        format!("memory node {}", self.0.id)
    }
}
