//! Attacks on the renewal path as it now is: `extend_hold` and
//! `extend_expiry` in src/scripts/head.lua (a pcall'd GET/HEXISTS, then
//! `PEXPIRE ... GT` on Redis 7, PTTL + PEXPIRE on 6.2), the renewal batches
//! of one ttl and kind (`script_calls::extend_batches`, the watchdog's
//! sort), the watchdog taking, confirming and rescheduling a lease under
//! one lock each, the hand-written RESP of every request, and the lock
//! keys kept in one allocation.
//!
//! Each test tries to make two holders both believe they hold one lock, a
//! fencing token repeat or go down, or a lease vanish without being
//! reported lost. The races are made deterministic by [`Gate`], a TCP
//! forwarder between the client and its redis-server that stops the
//! watchdog's next renewal either before it reaches Redis (the request) or
//! after Redis ran it (the reply), until the test lets it go.
//!
//! Every test runs against the redis-server `tools/redis_fixture.py`
//! starts: `REDIS_SERVER=target/redis-6.2/redis-server` runs them all on
//! Redis 6.2, whose scripts take the PTTL + PEXPIRE path.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, Guard, LockOptions};
use parking_lot::{Condvar, Mutex};
use support::{in_forked_child, wait_for_waiter, wait_until, RedisServer};

// ---------------------------------------------------------------------------
// The gate.

/// What the gate stops next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hold {
    /// The next renewal request, before Redis sees it.
    Request,
    /// The reply to the next renewal request, after Redis ran it.
    Reply,
}

#[derive(Default)]
struct GateInner {
    armed: Option<Hold>,
    /// A renewal (request or reply) is stopped at the gate now.
    caught: bool,
    /// Let the stopped bytes go.
    open: bool,
    /// Replies forwarded to a renewal the gate had stopped or armed for.
    late_replies: usize,
}

struct GateState {
    inner: Mutex<GateInner>,
    changed: Condvar,
    /// The SHA1s of extend.lua and extend_batch.lua: a request naming one
    /// of them is a renewal (the watchdog's) or an extend (a guard's).
    needles: Vec<Vec<u8>>,
}

struct Gate {
    port: u16,
    state: Arc<GateState>,
}

impl Gate {
    /// Forwards a port of its own to `server`.
    fn start(server: &RedisServer) -> Gate {
        let needles = renewal_shas(server);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(GateState {
            inner: Mutex::new(GateInner::default()),
            changed: Condvar::new(),
            needles,
        });
        let upstream = server.port;
        let accept_state = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let reply = Arc::new(AtomicU8::new(REPLY_PASSES));
                let (Ok(client_reader), Ok(server_reader)) =
                    (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let state = accept_state.clone();
                let held = reply.clone();
                thread::spawn(move || requests(client_reader, server, state, held));
                let state = accept_state.clone();
                thread::spawn(move || replies(server_reader, client, state, reply));
            }
        });
        Gate { port, state }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the next renewal (request or reply) that passes.
    fn arm(&self, hold: Hold) {
        let mut inner = self.state.inner.lock();
        assert!(!inner.caught, "a renewal is still stopped at the gate");
        inner.armed = Some(hold);
    }

    /// Waits until the armed renewal is stopped at the gate.
    fn wait_caught(&self, limit: Duration) {
        let mut inner = self.state.inner.lock();
        let deadline = std::time::Instant::now() + limit;
        while !inner.caught {
            assert!(
                !self
                    .state
                    .changed
                    .wait_until(&mut inner, deadline)
                    .timed_out()
                    || inner.caught,
                "no renewal reached the gate within {limit:?}"
            );
        }
    }

    /// Lets the stopped renewal go on.
    fn open(&self) {
        let mut inner = self.state.inner.lock();
        assert!(inner.caught, "nothing is stopped at the gate");
        inner.open = true;
        self.state.changed.notify_all();
        while inner.caught {
            self.state.changed.wait(&mut inner);
        }
    }

    /// How many replies to stopped renewals went through so far.
    fn late_replies(&self) -> usize {
        self.state.inner.lock().late_replies
    }

    /// Waits until `n` replies to stopped renewals went through.
    fn wait_late_replies(&self, n: usize) {
        wait_until(
            "the stopped renewal's reply went through",
            Duration::from_secs(10),
            || self.late_replies() >= n,
        );
    }
}

impl GateState {
    /// Stops the calling forwarder until the test opens the gate.
    fn stop_here(&self) {
        let mut inner = self.inner.lock();
        inner.caught = true;
        self.changed.notify_all();
        while !inner.open {
            self.changed.wait(&mut inner);
        }
        inner.open = false;
        inner.caught = false;
        self.changed.notify_all();
    }
}

/// What the reply direction of one connection does with its next reply.
const REPLY_PASSES: u8 = 0;
/// Counted as a late reply (its request was stopped).
const REPLY_COUNTED: u8 = 1;
/// Stopped until the gate opens, then counted.
const REPLY_STOPPED: u8 = 2;

/// Client to server: stops a renewal request when armed for one; marks the
/// connection's next reply when armed for that.
fn requests(mut from: TcpStream, mut to: TcpStream, state: Arc<GateState>, reply: Arc<AtomicU8>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let renewal = state
            .needles
            .iter()
            .any(|needle| chunk.windows(needle.len()).any(|w| w == needle.as_slice()));
        if renewal {
            let armed = state.inner.lock().armed.take();
            match armed {
                Some(Hold::Request) => {
                    reply.store(REPLY_COUNTED, Ordering::SeqCst);
                    state.stop_here();
                }
                Some(Hold::Reply) => reply.store(REPLY_STOPPED, Ordering::SeqCst),
                None => {}
            }
        }
        if to.write_all(chunk).is_err() {
            return;
        }
    }
}

/// Server to client: stops the reply of a renewal the gate was armed for.
fn replies(mut from: TcpStream, mut to: TcpStream, state: Arc<GateState>, reply: Arc<AtomicU8>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let what = reply.swap(REPLY_PASSES, Ordering::SeqCst);
        if what == REPLY_STOPPED {
            state.stop_here();
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
        if what != REPLY_PASSES {
            state.inner.lock().late_replies += 1;
            state.changed.notify_all();
        }
    }
}

/// The SHA1s EVALSHA names for extend.lua and extend_batch.lua (loaded
/// here, exactly as the library assembles them).
fn renewal_shas(server: &RedisServer) -> Vec<Vec<u8>> {
    let mut admin = server.admin();
    [
        include_str!("../src/scripts/extend.lua"),
        include_str!("../src/scripts/extend_batch.lua"),
    ]
    .iter()
    .map(|body| {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(support::script_source::assemble(body))
            .query(&mut admin)
            .unwrap();
        sha.into_bytes()
    })
    .collect()
}

// ---------------------------------------------------------------------------
// Helpers.

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

/// A client through `gate` whose commands wait long enough for a renewal
/// the test holds at the gate.
fn gated_client(gate: &Gate) -> Client {
    Client::builder(&gate.url())
        .command_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Lost-lease reports, by lock name.
struct Reports {
    tx: Arc<Mutex<mpsc::Sender<(String, String)>>>,
    rx: mpsc::Receiver<(String, String)>,
}

impl Reports {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Reports {
            tx: Arc::new(Mutex::new(tx)),
            rx,
        }
    }

    fn options(&self, ttl: Duration) -> LockOptions {
        let tx = self.tx.clone();
        LockOptions::new().ttl(ttl).on_lost(move |lost| {
            let _ = tx.lock().send((lost.name.clone(), lost.reason.clone()));
        })
    }

    fn next(&self, limit: Duration) -> (String, String) {
        self.rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no lease was reported lost within {limit:?}"))
    }

    fn none_yet(&self) -> Vec<(String, String)> {
        self.rx.try_iter().collect()
    }
}

static BARRIERS: AtomicUsize = AtomicUsize::new(0);

/// Returns once the watchdog of `client` has finished every round it had
/// started (outcomes handled, callbacks run): it is a single thread, and a
/// new lease's renewal reaching the gate means it began a later round.
fn watchdog_barrier(client: &Client, gate: &Gate) {
    let n = BARRIERS.fetch_add(1, Ordering::SeqCst);
    let guard = client
        .lock_with(
            &format!("barrier-{n}"),
            LockOptions::new()
                .ttl(Duration::from_secs(30))
                .renew_every(Duration::from_millis(10)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    gate.arm(Hold::Request);
    gate.wait_caught(Duration::from_secs(10));
    gate.open();
    guard.release().unwrap();
}

/// Until when `guard` counts on its lease, on the local clock.
fn valid_until(guard: &Guard) -> Instant {
    Instant::now() + guard.remaining()
}

/// Waits until the watchdog has renewed every one of `guards` at least
/// once more (each one's validity moved on by more than `by`).
fn wait_renewed<'g>(guards: impl IntoIterator<Item = &'g Guard>, by: Duration) {
    let before: Vec<(&Guard, Instant)> = guards.into_iter().map(|g| (g, valid_until(g))).collect();
    for (guard, until) in before {
        wait_until(
            &format!("lock '{}' is renewed", guard.name()),
            Duration::from_secs(10),
            || guard.lost() || valid_until(guard) > until + by,
        );
        assert!(!guard.lost(), "{} was lost", guard.name());
    }
}

// ---------------------------------------------------------------------------
// Races with a renewal in flight.

/// A release while the watchdog's renewal request is on its way: the
/// release succeeds, nobody is told the lease was lost, and the renewal,
/// reaching Redis after another client took the lock, does not touch the
/// new holder's expiry.
#[test]
fn a_release_while_a_renewal_is_on_its_way_is_no_loss_and_the_late_renewal_touches_nobody() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let lock = client
        .lock_with("rel-req", reports.options(Duration::from_millis(900)))
        .unwrap();
    gate.arm(Hold::Request);
    let guard = lock.acquire().unwrap();
    gate.wait_caught(Duration::from_secs(10));
    guard.release().expect("a held lock's release");
    let mut admin = server.admin();
    let _: () = redis::cmd("SET")
        .arg(key("rel-req"))
        .arg("someone-else")
        .arg("PX")
        .arg(400)
        .query(&mut admin)
        .unwrap();
    gate.open();
    gate.wait_late_replies(1);
    watchdog_barrier(&client, &gate);
    assert_eq!(reports.none_yet(), vec![], "a released lease was reported");
    let left = pttl(&server, &key("rel-req"));
    assert!(
        left <= 400,
        "the late renewal extended another holder's key: PTTL {left}"
    );
}

/// A release after Redis ran the renewal but before its reply: the release
/// succeeds, the confirmation that follows is not a loss, and the lease is
/// never renewed again (a renewal of the released hold would keep nothing,
/// but one that revived it would leave the key for nobody).
#[test]
fn a_release_between_a_renewal_and_its_reply_is_no_loss_and_stays_released() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let lock = client
        .lock_with("rel-reply", reports.options(Duration::from_millis(900)))
        .unwrap();
    gate.arm(Hold::Reply);
    let guard = lock.acquire().unwrap();
    gate.wait_caught(Duration::from_secs(10));
    guard.release().expect("a held lock's release");
    gate.open();
    gate.wait_late_replies(1);
    watchdog_barrier(&client, &gate);
    watchdog_barrier(&client, &gate);
    assert_eq!(reports.none_yet(), vec![], "a released lease was reported");
    assert!(!client.is_locked("rel-reply").unwrap());
    let other = Client::open(&server.url()).unwrap();
    let g2 = other
        .lock_with("rel-reply", LockOptions::new().ttl(Duration::from_secs(5)))
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the released lock is free");
    g2.release().unwrap();
}

/// The lock is taken from under a lease (deleted, then another owner's key
/// with a short expiry) while its renewal request is on its way: the
/// renewal must neither extend the new owner's key nor keep the old lease
/// alive; the old lease is reported lost.
#[test]
fn a_renewal_reaching_redis_after_the_lock_changed_hands_is_a_reported_loss() {
    for reentrant in [false, true] {
        let server = RedisServer::start();
        let gate = Gate::start(&server);
        let client = gated_client(&gate);
        let reports = Reports::new();
        let name = format!("taken-{reentrant}");
        let lock = client
            .lock_with(
                &name,
                reports
                    .options(Duration::from_millis(900))
                    .reentrant(reentrant),
            )
            .unwrap();
        gate.arm(Hold::Request);
        let guard = lock.acquire().unwrap();
        gate.wait_caught(Duration::from_secs(10));
        let mut admin = server.admin();
        let _: () = redis::cmd("DEL").arg(key(&name)).query(&mut admin).unwrap();
        let other = Client::open(&server.url()).unwrap();
        let g2 = other
            .lock_with(
                &name,
                LockOptions::new()
                    .ttl(Duration::from_millis(5000))
                    .auto_renew(false)
                    .reentrant(reentrant),
            )
            .unwrap()
            .acquire()
            .unwrap();
        let _: () = redis::cmd("PEXPIRE")
            .arg(key(&name))
            .arg(300)
            .query(&mut admin)
            .unwrap();
        gate.open();
        let (lost, _) = reports.next(Duration::from_secs(10));
        assert_eq!(lost, name);
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
        let left = pttl(&server, &key(&name));
        assert!(
            left <= 300,
            "{name}: the old hold's renewal extended the new holder's key: PTTL {left}"
        );
        drop(g2);
    }
}

/// A renewal whose reply comes only after the lease's validity ran out:
/// the lease stays lost (reported once), and its hold is given back.
#[test]
fn a_renewal_confirmed_after_the_lease_ran_out_is_reported_and_given_back() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let lock = client
        .lock_with("too-late", reports.options(Duration::from_millis(600)))
        .unwrap();
    gate.arm(Hold::Reply);
    let guard = lock.acquire().unwrap();
    gate.wait_caught(Duration::from_secs(10));
    // Redis extended the key by 600 ms; the lease's own validity ends
    // before that.
    wait_until(
        "the lease's validity runs out",
        Duration::from_secs(5),
        || guard.remaining().is_zero(),
    );
    gate.open();
    let (lost, reason) = reports.next(Duration::from_secs(10));
    assert_eq!(lost, "too-late");
    assert!(reason.contains("ran out"), "{reason}");
    watchdog_barrier(&client, &gate);
    assert_eq!(reports.none_yet(), vec![], "reported twice");
    assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
    assert!(guard.extend(Duration::from_secs(10)).is_err());
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::NotHeld);
}

/// `Client::close` while a renewal is on its way or its reply is held:
/// a close is an ending, never a loss; the hold is gone in Redis
/// afterwards, whatever the renewal's reply said.
#[test]
fn closing_the_client_while_a_renewal_is_in_flight_releases_and_reports_nothing() {
    for hold in [Hold::Request, Hold::Reply] {
        let server = RedisServer::start();
        let gate = Gate::start(&server);
        let client = gated_client(&gate);
        let reports = Reports::new();
        let name = format!("close-{hold:?}");
        let lock = client
            .lock_with(&name, reports.options(Duration::from_millis(900)))
            .unwrap();
        gate.arm(hold);
        let guard = lock.acquire().unwrap();
        gate.wait_caught(Duration::from_secs(10));
        client.close().expect("close");
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld);
        gate.open();
        gate.wait_late_replies(1);
        // The watchdog handles the reply at once; a loss would be reported
        // right after it.
        let extra = reports.rx.recv_timeout(Duration::from_millis(500));
        assert!(
            extra.is_err(),
            "{hold:?}: a closed hold was reported {extra:?}"
        );
        let exists: i64 = redis::cmd("EXISTS")
            .arg(key(&name))
            .query(&mut server.admin())
            .unwrap();
        assert_eq!(exists, 0, "{hold:?}: the closed hold is still in Redis");
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld);
    }
}

/// A guard's `extend` (longer, then shorter) while the watchdog's renewal
/// reply is held: afterwards the lease never claims more time than Redis
/// gives it, and a shorter extend never shortens the key.
#[test]
fn an_extend_while_a_renewal_is_in_flight_keeps_the_lease_within_the_keys_expiry() {
    for (extend_to, reentrant) in [
        (Duration::from_secs(8), false),
        (Duration::from_millis(40), false),
        (Duration::from_secs(8), true),
        (Duration::from_millis(40), true),
    ] {
        let server = RedisServer::start();
        let gate = Gate::start(&server);
        let client = gated_client(&gate);
        let reports = Reports::new();
        let name = format!("ext-{}-{reentrant}", extend_to.as_millis());
        let guard = client
            .lock_with(
                &name,
                reports
                    .options(Duration::from_millis(1500))
                    .reentrant(reentrant),
            )
            .unwrap()
            .acquire()
            .unwrap();
        gate.arm(Hold::Reply);
        gate.wait_caught(Duration::from_secs(10));
        guard.extend(extend_to).expect("extend of a held lease");
        gate.open();
        gate.wait_late_replies(1);
        wait_renewed([&guard], Duration::from_millis(100));
        for _ in 0..3 {
            let server_left = pttl(&server, &key(&name));
            let ours = guard.remaining();
            assert!(
                ours.as_millis() as i64 <= server_left,
                "{name}: the lease claims {ours:?}, Redis keeps the key {server_left} ms"
            );
            if extend_to > Duration::from_secs(1) {
                assert!(ours > Duration::from_secs(5), "{name}: {ours:?} left");
            }
            if extend_to < Duration::from_secs(1) {
                wait_renewed([&guard], Duration::from_millis(100));
            } else {
                watchdog_barrier(&client, &gate);
            }
        }
        assert_eq!(reports.none_yet(), vec![], "{name}");
        guard.release().unwrap();
    }
}

/// A fork while the parent's renewal reply is held: the child can neither
/// extend nor release the parent's hold, and the parent's lease goes on.
#[test]
fn a_fork_during_a_renewal_leaves_the_parents_hold_alone() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let guard = client
        .lock_with("forked", reports.options(Duration::from_millis(1500)))
        .unwrap()
        .acquire()
        .unwrap();
    gate.arm(Hold::Reply);
    gate.wait_caught(Duration::from_secs(10));
    let status = in_forked_child(Duration::from_secs(20), || {
        assert!(guard.extend(Duration::from_secs(30)).is_err());
        assert!(guard.check().is_err());
        let again = client
            .lock_with("forked", LockOptions::new().ttl(Duration::from_secs(5)))
            .unwrap()
            .try_acquire()
            .unwrap();
        assert!(again.is_none(), "the child took the parent's lock");
    });
    assert_eq!(status, Some(0), "the child's checks failed");
    gate.open();
    gate.wait_late_replies(1);
    wait_renewed([&guard], Duration::from_millis(100));
    guard.check().expect("the parent still holds");
    assert!(pttl(&server, &key("forked")) > 0);
    assert_eq!(reports.none_yet(), vec![]);
    guard.release().unwrap();
}

// ---------------------------------------------------------------------------
// Batches of mixed ttls and kinds.

/// Many leases of mixed ttls (some equal in whole milliseconds, some not)
/// and kinds, nested reentrant holds among them, renewed in shared rounds;
/// several are taken from under their holders at once. Exactly those are
/// reported lost, the new owners' keys are never extended, and every other
/// lease keeps an expiry in Redis no shorter than the lease claims.
#[test]
fn mixed_ttls_and_kinds_map_every_renewal_outcome_to_its_own_lease() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let ttls = [
        Duration::from_millis(1200),
        Duration::from_micros(1_200_700),
        Duration::from_millis(1201),
        Duration::from_millis(1500),
        Duration::from_micros(999_999),
    ];
    let mut guards: Vec<(String, Guard)> = Vec::new();
    let mut handles = Vec::new();
    for i in 0..90 {
        let ttl = ttls[(i * 7) % ttls.len()];
        let reentrant = i % 3 == 0;
        let name = format!("mix-{i}");
        let lock = client
            .lock_with(&name, reports.options(ttl).reentrant(reentrant))
            .unwrap();
        let guard = lock.acquire().unwrap();
        if reentrant && i % 2 == 0 {
            // A nested hold: the same key twice in one batch.
            guards.push((name.clone(), lock.acquire().unwrap()));
        }
        guards.push((name, guard));
        handles.push(lock);
    }
    // Stop the watchdog while every lease is taken from under it.
    gate.arm(Hold::Request);
    gate.wait_caught(Duration::from_secs(10));
    let stolen: BTreeSet<String> = [1, 3, 6, 12, 44, 45, 88]
        .iter()
        .map(|i| format!("mix-{i}"))
        .collect();
    let mut admin = server.admin();
    for name in &stolen {
        let _: () = redis::cmd("SET")
            .arg(key(name))
            .arg("thief")
            .arg("PX")
            .arg(250)
            .query(&mut admin)
            .unwrap();
    }
    gate.open();
    let mut lost = BTreeSet::new();
    while lost.len() < stolen.len() {
        let (name, _) = reports.next(Duration::from_secs(10));
        assert!(stolen.contains(&name), "{name} was reported lost");
        lost.insert(name);
    }
    for name in &stolen {
        let left = pttl(&server, &key(name));
        assert!(
            left <= 250,
            "{name}: the thief's key was extended to {left}"
        );
    }
    for _ in 0..3 {
        wait_renewed(
            guards
                .iter()
                .filter(|(name, _)| !stolen.contains(name))
                .map(|(_, g)| g),
            Duration::from_millis(150),
        );
        for (name, guard) in &guards {
            if stolen.contains(name) {
                assert!(guard.lost(), "{name}");
                continue;
            }
            let server_left = pttl(&server, &key(name));
            let ours = guard.remaining();
            assert!(
                !guard.lost() && ours.as_millis() as i64 <= server_left,
                "{name}: lost {} / the lease claims {ours:?}, the key has {server_left} ms",
                guard.lost()
            );
        }
    }
    assert_eq!(reports.none_yet(), vec![]);
}

// ---------------------------------------------------------------------------
// Keys changed by hand between renewals.

/// A key given a longer expiry by hand keeps it through renewals; a key
/// PERSISTed gets an expiry back (and no longer than the lease's ttl); a
/// key replaced by one of another type (or by a hash naming the hold) is
/// a reported loss and keeps no expiry the renewal would have given it.
#[test]
fn renewals_never_shorten_a_key_and_read_a_key_of_another_type_as_lost() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let ttl = Duration::from_millis(900);
    let mut admin = server.admin();
    for reentrant in [false, true] {
        let longer = format!("longer-{reentrant}");
        let persisted = format!("persisted-{reentrant}");
        let g_longer = client
            .lock_with(&longer, reports.options(ttl).reentrant(reentrant))
            .unwrap()
            .acquire()
            .unwrap();
        let g_persisted = client
            .lock_with(&persisted, reports.options(ttl).reentrant(reentrant))
            .unwrap()
            .acquire()
            .unwrap();
        let _: () = redis::cmd("PEXPIRE")
            .arg(key(&longer))
            .arg(60_000)
            .query(&mut admin)
            .unwrap();
        let _: () = redis::cmd("PERSIST")
            .arg(key(&persisted))
            .query(&mut admin)
            .unwrap();
        wait_renewed([&g_longer, &g_persisted], Duration::from_millis(150));
        wait_renewed([&g_longer, &g_persisted], Duration::from_millis(150));
        let left = pttl(&server, &key(&longer));
        assert!(
            left > 55_000,
            "{longer}: a renewal shortened the key to {left}"
        );
        let left = pttl(&server, &key(&persisted));
        assert!(
            left > 0 && left <= 900,
            "{persisted}: PTTL {left} after renewals"
        );
        g_longer.check().unwrap();
        g_persisted.check().unwrap();
        g_longer.release().unwrap();
        g_persisted.release().unwrap();
    }

    // Keys of another type, each holding what a confused check could read
    // as the hold (its token as a value, a field or a member).
    let mut victims = Vec::new();
    for (i, (reentrant, kind)) in [
        (false, "hash-field"),
        (false, "list"),
        (false, "set"),
        (true, "string-token"),
        (true, "string-field"),
        (true, "list"),
        (true, "zset"),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("retyped-{i}-{kind}");
        let guard = client
            .lock_with(&name, reports.options(ttl).reentrant(*reentrant))
            .unwrap()
            .acquire()
            .unwrap();
        let token = guard.token().to_string();
        let k = key(&name);
        let _: () = redis::cmd("DEL").arg(&k).query(&mut admin).unwrap();
        let field = format!("h:{token}");
        let _: () = match *kind {
            "hash-field" => redis::cmd("HSET")
                .arg(&k)
                .arg(&field)
                .arg(1)
                .arg(&token)
                .arg(&token)
                .query(&mut admin)
                .unwrap(),
            "list" => redis::cmd("RPUSH")
                .arg(&k)
                .arg(&token)
                .query(&mut admin)
                .unwrap(),
            "set" => redis::cmd("SADD")
                .arg(&k)
                .arg(&token)
                .query(&mut admin)
                .unwrap(),
            "string-token" => redis::cmd("SET")
                .arg(&k)
                .arg(&token)
                .query(&mut admin)
                .unwrap(),
            "string-field" => redis::cmd("SET")
                .arg(&k)
                .arg(&field)
                .query(&mut admin)
                .unwrap(),
            "zset" => redis::cmd("ZADD")
                .arg(&k)
                .arg(1)
                .arg(&field)
                .query(&mut admin)
                .unwrap(),
            other => unreachable!("{other}"),
        };
        victims.push((name, guard));
    }
    let mut lost = BTreeSet::new();
    while lost.len() < victims.len() {
        let (name, _) = reports.next(Duration::from_secs(10));
        assert!(
            victims.iter().any(|(n, _)| *n == name),
            "{name} was reported lost"
        );
        lost.insert(name);
    }
    watchdog_barrier(&client, &gate);
    for (name, guard) in &victims {
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost, "{name}");
        assert_eq!(
            pttl(&server, &key(name)),
            -1,
            "{name}: a renewal gave a foreign key an expiry"
        );
    }
    assert_eq!(reports.none_yet(), vec![]);
}

// ---------------------------------------------------------------------------
// Keys and bytes.

/// The slot rule of Redis Cluster: the text between the first `{` and
/// the next `}` when not empty, else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// The module docs' layout (src/keys.rs) of the lock key of `name`.
fn documented_lock_key(prefix: &str, name: &str) -> Vec<u8> {
    let escape = if name.starts_with('}') { "{\0}" } else { "" };
    format!("{prefix}:{escape}{{{name}}}").into_bytes()
}

fn all_keys(server: &RedisServer) -> HashSet<Vec<u8>> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.admin())
        .unwrap();
    keys.into_iter().collect()
}

/// Names that are prefixes and suffixes of each other, begin with '}',
/// hold braces, multibyte UTF-8, RESP framing, or are as long as allowed,
/// under the default and a custom prefix, all held at once: every key is
/// where the module docs say, all of one lock share one hash tag, no two
/// names share a key, each lock's holder is its own, and the fencing
/// tokens of each name only grow.
#[test]
fn every_name_keeps_its_own_keys_in_one_slot_where_the_docs_say() {
    let server = RedisServer::start();
    let long_multibyte: String = "ключ".repeat(4096 / "ключ".len());
    let long_ascii = "n".repeat(4096);
    let mut names: Vec<String> = [
        "a",
        "a:fence",
        "a:ch",
        "a:q",
        "a:qa",
        "a}",
        "a}:fence",
        "}a",
        "}",
        "}}",
        "}a}:fence",
        "{a}",
        "{}",
        "x{y}z",
        "a}b{c",
        "ключ",
        "🔒:{🔑}",
        "\r\n*1\r\n$4\r\nPING\r\n",
        "$-1\r\n",
        " ",
        "fence",
        ":fence",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push(long_ascii.clone());
    names.push(long_ascii[1..].to_string());
    names.push(long_multibyte.clone());
    assert!(long_multibyte.len() <= 4096);
    for prefix in ["latchkey", "tenant:7", "x"] {
        let client = Client::builder(&server.url())
            .prefix(prefix)
            .build()
            .unwrap();
        let before = all_keys(&server);
        let mut expected: HashSet<Vec<u8>> = HashSet::new();
        let mut guards = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let lock = client
                .lock_with(
                    name,
                    LockOptions::new()
                        .ttl(Duration::from_secs(30))
                        .reentrant(i % 2 == 1),
                )
                .unwrap();
            let guard = lock.acquire().unwrap();
            assert_eq!(guard.name(), name);
            let lock_key = documented_lock_key(prefix, name);
            let fence_key = [lock_key.as_slice(), b":fence"].concat();
            let tag = hash_tag(&lock_key).to_vec();
            assert!(!tag.is_empty() && tag != lock_key, "{name:?}: no hash tag");
            for suffix in [&b":fence"[..], b":ch", b":q", b":qa"] {
                let derived = [lock_key.as_slice(), suffix].concat();
                assert_eq!(hash_tag(&derived), tag.as_slice(), "{name:?} {suffix:?}");
            }
            assert!(
                expected.insert(lock_key.clone()),
                "{name:?}: lock key shared"
            );
            assert!(expected.insert(fence_key), "{name:?}: fence key shared");
            guards.push((name.clone(), guard));
        }
        let now: HashSet<Vec<u8>> = all_keys(&server).difference(&before).cloned().collect();
        assert_eq!(
            now.len(),
            expected.len(),
            "{prefix}: keys made that the docs do not name: {:?}",
            now.difference(&expected)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(now, expected, "{prefix}");
        for (name, guard) in &guards {
            let info = client.inspect(name).unwrap().expect("held");
            assert_eq!(info.fencing_token, guard.fencing_token(), "{name:?}");
            guard.extend(Duration::from_secs(40)).unwrap();
        }
        // Fencing tokens of each name only grow, whatever the others do.
        for (name, guard) in guards.drain(..) {
            let first = guard.fencing_token();
            guard.release().unwrap();
            let again = client.lock(&name).unwrap().acquire().unwrap();
            assert!(again.fencing_token() > first, "{name:?}");
            again.release().unwrap();
        }
    }
    // The channel and the queue keys, for the names most likely to be
    // confused: a waiter listens on the documented channel and queues in
    // the documented keys.
    let client = Client::open(&server.url()).unwrap();
    for name in ["}a", "a}:fence", "🔒:{🔑}", long_multibyte.as_str()] {
        let held = client.lock(name).unwrap().acquire().unwrap();
        let waiter_client = Client::open(&server.url()).unwrap();
        let owned = name.to_string();
        let waiter = thread::spawn(move || {
            waiter_client
                .lock(&owned)
                .unwrap()
                .acquire_timeout(Duration::from_secs(20))
                .map(|g| g.release())
        });
        let lock_key = documented_lock_key("latchkey", name);
        let channel = [lock_key.as_slice(), b":ch"].concat();
        let queue = [lock_key.as_slice(), b":q"].concat();
        let order = [lock_key.as_slice(), b":qa"].concat();
        wait_until("the waiter listens", Duration::from_secs(10), || {
            let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut server.admin())
                .unwrap();
            matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0)
        });
        wait_until("the waiter queues", Duration::from_secs(10), || {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&queue)
                .arg(&order)
                .query(&mut server.admin())
                .unwrap();
            n == 2
        });
        held.release().unwrap();
        waiter
            .join()
            .unwrap()
            .expect("the waiter got the lock")
            .unwrap();
    }
    let _ = wait_for_waiter;
}

/// Values, resources and names with RESP framing, CRLF, NUL and every
/// byte value, empty and large: each arrives byte for byte, and nothing
/// else is written.
#[test]
fn odd_bytes_reach_redis_byte_for_byte() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let values: Vec<&[u8]> = vec![
        b"",
        b"\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"$-1\r\n",
        b"\0",
        &all_bytes,
        &big,
    ];
    let resources = [
        "plain",
        "\r\n*2\r\n$3\r\nDEL\r\n",
        "ключ",
        "}x",
        "{a}b",
        &"r".repeat(4096),
    ];
    for (i, resource) in resources.iter().enumerate() {
        let name = format!("writer-{i}\r\n$0\r\n");
        let guard = client.lock(&name).unwrap().acquire().unwrap();
        for value in &values {
            let outcome = guard.fenced_write(resource, value).unwrap();
            assert!(outcome.written, "{resource:?}");
            let (token, read) = client.fenced_read(resource).unwrap().expect("written");
            assert_eq!(token, guard.fencing_token());
            assert_eq!(read.as_slice(), *value, "{resource:?}");
        }
        guard.extend(Duration::from_secs(45)).unwrap();
        let left = pttl(&server, &key(&name));
        assert!(left > 40_000, "{name:?}: {left}");
        guard.release().unwrap();
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut server.admin()).unwrap();
    // One resource hash and one fence counter per resource / name.
    assert_eq!(
        dbsize as usize,
        2 * resources.len(),
        "stray keys were written"
    );
}

// ---------------------------------------------------------------------------
// Redlock: every renewal is a batch script, answered per master.

/// Redlock over three masters, leases of mixed ttls and kinds renewed in
/// shared batches: a lease taken on two masters is lost (and only it); one
/// taken on a single master keeps its quorum and is not lost; every live
/// lease claims no more than the majority of masters keeps.
#[test]
fn redlock_maps_each_masters_batch_answers_to_the_right_lease() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls)
        .command_timeout(Duration::from_secs(5))
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap();
    let reports = Reports::new();
    let ttls = [
        Duration::from_millis(1200),
        Duration::from_micros(1_200_400),
        Duration::from_millis(1500),
    ];
    let guards: Vec<(String, Guard)> = (0..45)
        .map(|i| {
            let name = format!("rl-{i}");
            let options = reports.options(ttls[i % ttls.len()]).reentrant(i % 4 == 1);
            let guard = client.lock_with(&name, options).unwrap().acquire().unwrap();
            (name, guard)
        })
        .collect();
    let majority: BTreeSet<String> = ["rl-2", "rl-9", "rl-21", "rl-40"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let minority = ["rl-5", "rl-13"];
    for name in &majority {
        for server in &servers[..2] {
            let _: () = redis::cmd("SET")
                .arg(key(name))
                .arg("thief")
                .arg("PX")
                .arg(250)
                .query(&mut server.admin())
                .unwrap();
        }
    }
    for name in minority {
        let _: () = redis::cmd("DEL")
            .arg(key(name))
            .query(&mut servers[2].admin())
            .unwrap();
    }
    let mut lost = BTreeSet::new();
    while lost.len() < majority.len() {
        let (name, _) = reports.next(Duration::from_secs(10));
        assert!(majority.contains(&name), "{name} was reported lost");
        lost.insert(name);
    }
    for _ in 0..2 {
        wait_renewed(
            guards
                .iter()
                .filter(|(name, _)| !majority.contains(name))
                .map(|(_, g)| g),
            Duration::from_millis(150),
        );
    }
    for (name, guard) in &guards {
        if majority.contains(name) {
            assert!(guard.lost(), "{name}");
            for server in &servers[..2] {
                let left = pttl(server, &key(name));
                assert!(
                    left <= 250,
                    "{name}: the thief's key was extended to {left}"
                );
            }
            continue;
        }
        let mut lefts: Vec<i64> = servers.iter().map(|s| pttl(s, &key(name))).collect();
        lefts.sort();
        let ours = guard.remaining();
        // The second largest: what a majority (two of three) keeps.
        assert!(
            !guard.lost() && ours.as_millis() as i64 <= lefts[1],
            "{name}: lost {} / claims {ours:?}, masters keep {lefts:?}",
            guard.lost()
        );
    }
    assert_eq!(reports.none_yet(), vec![]);
}

// ---------------------------------------------------------------------------
// Many renewals racing extends, nested holds and releases.

/// Threads take, extend (shorter and longer), nest and release locks while
/// the watchdog renews them every millisecond: no release of a lease that
/// was never reported lost is told it was not held, no lease is reported
/// lost, and at no moment do two threads hold one lock with both of their
/// guards saying so.
#[test]
fn renewals_racing_extends_nested_holds_and_releases_never_lose_a_lease() {
    let server = RedisServer::start();
    let client = Arc::new(Client::builder(&server.url()).pool_size(2).build().unwrap());
    let reports = Reports::new();
    let inside: Arc<Vec<Mutex<Option<String>>>> =
        Arc::new((0..2).map(|_| Mutex::new(None)).collect());
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let client = client.clone();
            let inside = inside.clone();
            let options = reports
                .options(Duration::from_millis(400))
                .renew_every(Duration::from_millis(1))
                .reentrant(t % 2 == 1);
            thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for round in 0..150 {
                    let which = (next() % 2) as usize;
                    let lock = client
                        .lock_with(&format!("race-{which}"), options.clone())
                        .unwrap();
                    let guard = lock.acquire_timeout(Duration::from_secs(20)).unwrap();
                    {
                        let mut slot = inside[which].lock();
                        if let Some(other) = slot.as_ref() {
                            panic!(
                                "round {round}: {other} and {} hold race-{which}",
                                guard.token()
                            );
                        }
                        *slot = Some(guard.token().to_string());
                    }
                    let nested = if t % 2 == 1 && next() % 2 == 0 {
                        Some(lock.acquire().unwrap())
                    } else {
                        None
                    };
                    match next() % 4 {
                        0 => guard.extend(Duration::from_millis(15)).unwrap(),
                        1 => guard.extend(Duration::from_millis(900)).unwrap(),
                        2 => guard.extend_by(Duration::from_millis(5)).unwrap(),
                        _ => {}
                    }
                    thread::sleep(Duration::from_micros(next() % 3000));
                    if let Some(inner) = nested {
                        inner.release().unwrap();
                    }
                    guard.check().unwrap();
                    *inside[which].lock() = None;
                    guard
                        .release()
                        .unwrap_or_else(|e| panic!("round {round}: release: {e}"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(reports.none_yet(), vec![]);
}

/// `SCRIPT FLUSH` while a renewal round of mixed kinds (two batch scripts
/// and a single extend in one request) is on its way: Redis answers
/// NOSCRIPT, the library loads the scripts and sends the same hand-written
/// request again; every lease is renewed, none is reported lost.
#[test]
fn a_renewal_round_answered_noscript_is_sent_again_whole() {
    let server = RedisServer::start();
    let gate = Gate::start(&server);
    let client = gated_client(&gate);
    let reports = Reports::new();
    let guards: Vec<Guard> = (0..9)
        .map(|i| {
            let options = reports
                .options(Duration::from_millis(1200 + 300 * (i % 3)))
                .reentrant(i % 2 == 0);
            client
                .lock_with(&format!("flushed-{i}\r\n"), options)
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    gate.arm(Hold::Request);
    gate.wait_caught(Duration::from_secs(10));
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.admin())
        .unwrap();
    gate.open();
    gate.wait_late_replies(1);
    wait_renewed(&guards, Duration::from_millis(150));
    assert_eq!(reports.none_yet(), vec![]);
    for guard in guards {
        guard.release().unwrap();
    }
}
