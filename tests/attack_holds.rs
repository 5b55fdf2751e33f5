//! Attacks on the hold model: every test here tries to make two holders
//! both believe they hold one lock, a fencing token repeat or go down, a
//! lease be lost (or said lost) while its servers answer, a hold stay in
//! Redis with nobody to give it back, a cancel wait for a silent server, a
//! forked child hang, or one malformed reply end the process.
//! All faults are real: redis-server processes stopped with SIGSTOP,
//! restarted from an older snapshot, a Redis Cluster with a stopped master,
//! a replica that falls behind, a TCP proxy in the test that holds a
//! connection's bytes back and delivers them later (a network that delays
//! some packets, as TCP retransmission does) or never, and a fake server
//! for malformed replies.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use parking_lot::Mutex;
use support::{
    in_forked_child, replication_field, wait_for_waiter, wait_until, warm_up, RedisServer,
};

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

/// How many EVALSHA commands a server has run so far.
fn evalsha_calls(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.admin())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One client connection through the proxy.
struct ProxiedConn {
    upstream: Mutex<TcpStream>,
    /// Chunks from the client not yet forwarded (while held).
    held: Mutex<Option<Vec<Vec<u8>>>>,
    /// The client closed its side while its bytes were held.
    client_closed: AtomicBool,
    /// Bytes the server sent back.
    replied: AtomicUsize,
    /// Whether a held chunk was an EVALSHA (a lock script).
    held_script: AtomicBool,
    /// When (in the proxy's order of events) the connection was held.
    held_since: AtomicUsize,
}

struct ProxyState {
    /// New chunks are held back rather than forwarded.
    holding: AtomicBool,
    conns: Mutex<Vec<Arc<ProxiedConn>>>,
    /// Counts connections as they are held.
    held_count: AtomicUsize,
    /// Hold only scripts whose bytes contain this (a lock's name).
    only: Mutex<Option<Vec<u8>>>,
    /// Hold any command (not only lock scripts) that matches `only`.
    any_command: AtomicBool,
    /// How many more connections to hold before traffic flows again
    /// (`None`: until [`Proxy::pass`]).
    budget: Mutex<Option<usize>>,
}

impl ProxyState {
    /// Whether a connection that just sent a script is to be held.
    fn take_hold(&self) -> bool {
        if !self.holding.load(Ordering::SeqCst) {
            return false;
        }
        let mut budget = self.budget.lock();
        if let Some(left) = budget.as_mut() {
            *left -= 1;
            if *left == 0 {
                *budget = None;
                self.holding.store(false, Ordering::SeqCst);
            }
        }
        true
    }
}

/// A TCP proxy in front of one redis-server. In "hold" mode a connection
/// that sends a lock script is held: that chunk and everything after it on
/// the connection are kept back (the connection stays open; the server
/// sees nothing; connection handshakes and pub/sub pass).
/// [`Proxy::deliver_held`] later forwards what was kept, in order,
/// connection by connection, as a slow network finally would.
struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

impl Proxy {
    fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            holding: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            held_count: AtomicUsize::new(0),
            only: Mutex::new(None),
            budget: Mutex::new(None),
            any_command: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let conn = Arc::new(ProxiedConn {
                    upstream: Mutex::new(upstream.try_clone().unwrap()),
                    held: Mutex::new(None),
                    client_closed: AtomicBool::new(false),
                    replied: AtomicUsize::new(0),
                    held_script: AtomicBool::new(false),
                    held_since: AtomicUsize::new(0),
                });
                accept_state.conns.lock().push(conn.clone());
                // Server -> client: always straight through.
                let mut from_server = upstream;
                let mut to_client = client.try_clone().unwrap();
                let counter = conn.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        match from_server.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = to_client.shutdown(Shutdown::Write);
                                return;
                            }
                            Ok(n) => {
                                counter.replied.fetch_add(n, Ordering::SeqCst);
                                let _ = to_client.write_all(&buf[..n]);
                            }
                        }
                    }
                });
                // Client -> server: forwarded, or held back.
                let mut from_client = client;
                let state = accept_state.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match from_client.read(&mut buf) {
                            Ok(0) | Err(_) => 0,
                            Ok(n) => n,
                        };
                        let mut held = conn.held.lock();
                        if n == 0 {
                            if held.is_some() {
                                conn.client_closed.store(true, Ordering::SeqCst);
                            } else {
                                let _ = conn.upstream.lock().shutdown(Shutdown::Write);
                            }
                            return;
                        }
                        let chunk = &buf[..n];
                        let script = (state.any_command.load(Ordering::SeqCst)
                            || chunk.windows(7).any(|w| w == b"EVALSHA"))
                            && state.only.lock().as_ref().is_none_or(|pattern| {
                                chunk
                                    .windows(pattern.len())
                                    .any(|w| w == pattern.as_slice())
                            });
                        if held.is_none() && script && state.take_hold() {
                            *held = Some(Vec::new());
                            let order = state.held_count.fetch_add(1, Ordering::SeqCst);
                            conn.held_since.store(order, Ordering::SeqCst);
                        }
                        match held.as_mut() {
                            Some(chunks) => {
                                if script {
                                    conn.held_script.store(true, Ordering::SeqCst);
                                }
                                chunks.push(buf[..n].to_vec());
                            }
                            None => {
                                let _ = conn.upstream.lock().write_all(&buf[..n]);
                            }
                        }
                    }
                });
            }
        });
        Proxy { port, state }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on, hold back every connection that sends a lock script.
    fn hold(&self) {
        self.state.holding.store(true, Ordering::SeqCst);
    }

    /// Holds back the next `count` connections that send a lock script;
    /// traffic flows again after them.
    fn hold_next(&self, count: usize) {
        *self.state.budget.lock() = Some(count);
        self.hold();
    }

    /// From now on, hold back every connection that sends a script naming
    /// `pattern` (other scripts pass).
    fn hold_only(&self, pattern: &str) {
        *self.state.only.lock() = Some(pattern.as_bytes().to_vec());
        self.hold();
    }

    /// Holds back the next `count` connections that send a script naming
    /// `pattern`.
    fn hold_next_only(&self, count: usize, pattern: &str) {
        *self.state.budget.lock() = Some(count);
        self.hold_only(pattern);
    }

    /// From now on, hold back every connection that sends any command
    /// naming `pattern` (a SUBSCRIBE, say).
    fn hold_any_command(&self, pattern: &str) {
        self.state.any_command.store(true, Ordering::SeqCst);
        self.hold_only(pattern);
    }

    /// New traffic flows again; connections already held stay held until
    /// [`deliver_held`](Self::deliver_held).
    fn pass(&self) {
        self.state.holding.store(false, Ordering::SeqCst);
    }

    /// Connections holding back at least one lock script.
    fn held_scripts(&self) -> usize {
        self.state
            .conns
            .lock()
            .iter()
            .filter(|c| c.held_script.load(Ordering::SeqCst))
            .count()
    }

    /// Held connections that their client has closed meanwhile (it gave
    /// up waiting for the answer).
    fn held_and_abandoned(&self) -> usize {
        self.state
            .conns
            .lock()
            .iter()
            .filter(|c| {
                c.held_script.load(Ordering::SeqCst) && c.client_closed.load(Ordering::SeqCst)
            })
            .count()
    }

    /// Drops everything held and cuts those connections (the packets
    /// never arrive).
    fn discard_held(&self) {
        let conns: Vec<Arc<ProxiedConn>> = self.state.conns.lock().clone();
        for conn in conns {
            if conn.held.lock().take().is_some() {
                let _ = conn.upstream.lock().shutdown(Shutdown::Both);
            }
        }
    }

    /// Forwards everything held, connection after connection (in the
    /// order they were held), waiting for the server's answer to each
    /// connection's scripts before the next.
    fn deliver_held(&self) {
        let mut conns: Vec<Arc<ProxiedConn>> = self.state.conns.lock().clone();
        conns.sort_by_key(|c| c.held_since.load(Ordering::SeqCst));
        for conn in conns {
            let mut held = conn.held.lock();
            let Some(chunks) = held.take() else { continue };
            let before = conn.replied.load(Ordering::SeqCst);
            let mut upstream = conn.upstream.lock();
            for chunk in &chunks {
                let _ = upstream.write_all(chunk);
            }
            if conn.client_closed.load(Ordering::SeqCst) {
                let _ = upstream.shutdown(Shutdown::Write);
            }
            drop(upstream);
            drop(held);
            if conn.held_script.load(Ordering::SeqCst) {
                wait_until(
                    "the server answers a delivered script",
                    Duration::from_secs(5),
                    || conn.replied.load(Ordering::SeqCst) > before,
                );
            }
        }
    }
}

fn redlock(urls: &[String], timeout: Duration) -> Client {
    Client::redlock_builder(urls)
        .connect_timeout(timeout)
        .command_timeout(timeout)
        // Fresh test servers: no restart here to wait out (see
        // tests/redlock_faults.rs for the restart delay).
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap()
}

/// Redlock: an attempt that fails (its replies from two masters are late)
/// undoes itself by releasing its hold token on those masters; the retry
/// of the same acquisition uses the same token and wins. When the late
/// masters finally run the undo, it deletes the hold the retry just won:
/// the winner keeps one master of three, believes it holds the lock, and
/// another client takes a quorum.
#[test]
fn a_late_undo_of_a_failed_redlock_attempt_cannot_release_the_retry_that_won() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let proxy_a = Proxy::start(servers[0].port);
    let proxy_b = Proxy::start(servers[1].port);
    let name = "late-undo";
    // Someone else holds the lock on every master.
    for server in &servers {
        let _: () = redis::cmd("SET")
            .arg(key(name))
            .arg("someone-else")
            .arg("PX")
            .arg(60_000)
            .query(&mut server.admin())
            .unwrap();
    }
    let waiter_client = redlock(
        &[proxy_a.url(), proxy_b.url(), servers[2].url()],
        Duration::from_millis(500),
    );
    // Every script loaded on every master (a late script must not meet
    // NOSCRIPT).
    warm_up(&waiter_client);
    let baseline: Vec<u64> = servers.iter().map(evalsha_calls).collect();
    let (guard_tx, guard_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let lock = waiter_client
            .lock_with(name, LockOptions::new().ttl(Duration::from_secs(30)))
            .unwrap();
        let guard = lock.acquire_timeout(Duration::from_secs(30));
        guard_tx.send(guard).unwrap();
        // Keep the client (and its watchdog) alive while the test looks.
        thread::sleep(Duration::from_secs(3));
    });
    // The waiter is parked: subscribed everywhere, and its attempt after
    // subscribing (the second script on each master) has been answered.
    for (server, before) in servers.iter().zip(&baseline) {
        wait_for_waiter(server, name);
        wait_until(
            "the waiter's second attempt",
            Duration::from_secs(10),
            || evalsha_calls(server) >= before + 2,
        );
    }

    // Masters a and b now answer late; the lock is freed and the waiter
    // woken (through master c).
    proxy_a.hold_next(2);
    proxy_b.hold_next(2);
    for server in &servers {
        let _: () = redis::cmd("DEL")
            .arg(key(name))
            .query(&mut server.admin())
            .unwrap();
    }
    let _: () = redis::cmd("PUBLISH")
        .arg(format!("{}:ch", key(name)))
        .arg("released")
        .query(&mut servers[2].admin())
        .unwrap();
    // The attempt and its undo are both stuck on a and b; the retry that
    // follows gets through.
    wait_until(
        "the failed attempt and its undo are held back",
        Duration::from_secs(10),
        || proxy_a.held_scripts() >= 2 && proxy_b.held_scripts() >= 2,
    );
    let guard = guard_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the waiter acquires once a and b answer again");

    // The network delivers the late packets.
    proxy_a.deliver_held();
    proxy_b.deliver_held();

    let holders: Vec<Option<String>> = servers
        .iter()
        .map(|s| {
            redis::cmd("GET")
                .arg(key(name))
                .query(&mut s.admin())
                .unwrap()
        })
        .collect();
    let other = redlock(
        &servers.iter().map(RedisServer::url).collect::<Vec<_>>(),
        Duration::from_millis(500),
    );
    let second = other.lock(name).unwrap().try_acquire().unwrap();
    let first_ok = guard.check().is_ok();
    assert!(
        second.is_none() || !first_ok,
        "two holders: the waiter's guard (token {}) says check() = Ok while another client \
         acquired with fencing token {}; the key on masters a, b, c after the late packets: {holders:?}",
        guard.token(),
        second.as_ref().map_or(0, |g| g.fencing_token()),
    );
    drop(second);
    drop(guard);
    waiter.join().unwrap();
}

/// Redlock with one of three masters stopped: every operation waits for
/// the stopped master until the command timeout. With a ttl shorter than
/// that timeout, every attempt's validity is spent before it completes, so
/// the lock can never be acquired although two healthy masters grant it
/// within milliseconds.
#[test]
fn a_stopped_redlock_master_does_not_make_a_short_lease_unobtainable() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let client = redlock(
        &servers.iter().map(RedisServer::url).collect::<Vec<_>>(),
        Duration::from_secs(2),
    );
    let lock = client
        .lock_with(
            "short-lease",
            LockOptions::new().ttl(Duration::from_millis(1500)),
        )
        .unwrap();
    // Warm every connection first.
    lock.acquire().unwrap().release().unwrap();
    servers[2].signal(libc::SIGSTOP);
    let outcome = lock.acquire_timeout(Duration::from_secs(8));
    servers[2].signal(libc::SIGCONT);
    let guard = outcome
        .unwrap_or_else(|e| panic!("two healthy masters of three, yet no acquire within 8 s: {e}"));
    drop(guard);
}

/// Redlock with one of three masters stopped while a lease is held: two
/// masters confirm every renewal at once. On the old code each renewal
/// round waited for the stopped master until the command timeout, so the
/// healthy masters' keys ran out between renewals and the lease was
/// reported lost. Now the first round after the stop pays one command
/// timeout (chosen here below the renewal period, as a lease needs) and
/// later rounds skip the master remembered as down.
#[test]
fn a_stopped_redlock_master_does_not_cost_a_lease_that_a_quorum_renews() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let client = redlock(
        &servers.iter().map(RedisServer::url).collect::<Vec<_>>(),
        Duration::from_millis(400),
    );
    let (lost_tx, lost_rx) = mpsc::channel();
    let lost_tx = Mutex::new(lost_tx);
    let lock = client
        .lock_with(
            "renewed-lease",
            LockOptions::new()
                .ttl(Duration::from_millis(1500))
                .on_lost(move |l| {
                    let _ = lost_tx.lock().send(l.reason.clone());
                }),
        )
        .unwrap();
    let guard = lock.acquire().unwrap();
    servers[2].signal(libc::SIGSTOP);
    let reported = lost_rx.recv_timeout(Duration::from_secs(6));
    let check = guard.check();
    servers[2].signal(libc::SIGCONT);
    assert!(
        reported.is_err(),
        "lease lost although two of three masters answer every renewal: {}",
        reported.unwrap_or_default()
    );
    check.expect("the lease is held on a quorum");
}

/// An acquire whose outcome is unknown (its answer does not come) is given
/// up and its hold released in the background "once Redis answers" -- but
/// the watchdog stops trying one ttl after the attempt was sent. When the
/// network delivers the attempt later than that (a retransmission after a
/// partition heals), the lock is held by nobody for a whole ttl.
#[test]
fn an_abandoned_acquire_that_runs_late_is_still_given_back() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let name = "late-acquire";
    let ttl = Duration::from_secs(4);
    let lock = client.lock_with(name, LockOptions::new().ttl(ttl)).unwrap();

    // The scripts are loaded (a late script must not meet NOSCRIPT).
    lock.acquire().unwrap().release().unwrap();

    proxy.hold_next(1);
    let attempt = lock.try_acquire();
    assert!(
        attempt.is_err(),
        "an attempt held back answered: {attempt:?}"
    );
    // The watchdog tries to give the hold back while the attempt is still
    // on its way; then the attempt arrives.
    thread::sleep(ttl + Duration::from_secs(2));
    proxy.deliver_held();

    let delivered = Instant::now();
    let held_by: Option<String> = redis::cmd("GET")
        .arg(key(name))
        .query(&mut server.admin())
        .unwrap();
    let limit = Duration::from_secs(3);
    while client.is_locked(name).unwrap() {
        assert!(
            delivered.elapsed() < limit,
            "the abandoned acquire's hold ({held_by:?}) still holds the lock {:?} after it \
             reached Redis, and nobody will give it back before its ttl ({ttl:?}) ends",
            delivered.elapsed()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A nested acquire of a reentrant handle returns the fencing token stored
/// in the lock's hash. When Redis comes back from an older snapshot that
/// still has the handle's hash, the nested acquire returns that old token,
/// lower than a token issued to another owner before the restart.
#[test]
fn a_nested_hold_after_an_older_snapshot_never_gets_a_lower_fencing_token() {
    let mut server = RedisServer::start();
    let name = "snapshot-fence";
    let reentrant = LockOptions::new()
        .ttl(Duration::from_secs(60))
        .auto_renew(false)
        .reentrant(true);
    let client = Client::open(&server.url()).unwrap();
    let handle = client.lock_with(name, reentrant.clone()).unwrap();
    let first = handle.acquire().unwrap();
    let first_token = first.fencing_token();
    let _: () = redis::cmd("SAVE").query(&mut server.admin()).unwrap();
    first.release().unwrap();

    let other = client.lock_with(name, reentrant).unwrap();
    let second = other.acquire().unwrap();
    let second_token = second.fencing_token();
    second.release().unwrap();
    assert!(second_token > first_token);

    // The server dies and comes back from the snapshot taken above.
    server.restart();
    let third = handle.acquire().unwrap();
    assert!(
        third.fencing_token() > second_token,
        "fencing token went down: {} was issued to another owner, then this hold got {} \
         (the first hold's token was {first_token})",
        second_token,
        third.fencing_token()
    );
}

/// A renewal whose answer is late (the watchdog gives up on it) may still
/// run. If the holder extends its lease meanwhile (say to 60 s), the late
/// renewal then sets the key back to the old, short ttl: Redis lets the key
/// expire after that while the guard counts on the 60 s, and another client
/// takes the lock while the first one's check() is still Ok.
#[test]
fn a_late_renewal_never_shortens_a_lease_that_was_extended_since() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let client = Client::builder(&proxy.url())
        // Long enough that the extend below is done before the watchdog
        // gives up on its late renewal.
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let name = "late-renewal";
    let (lost_tx, lost_rx) = mpsc::channel();
    let lost_tx = Mutex::new(lost_tx);
    let lock = client
        .lock_with(
            name,
            LockOptions::new()
                .ttl(Duration::from_secs(3))
                .on_lost(move |l| {
                    let _ = lost_tx.lock().send(l.reason.clone());
                }),
        )
        .unwrap();
    let guard = lock.acquire().unwrap();
    // The watchdog's first renewal (after a third of the ttl) is delayed
    // by the network.
    proxy.hold_next(1);
    wait_until("the first renewal is sent", Duration::from_secs(10), || {
        proxy.held_scripts() >= 1
    });
    guard.extend(Duration::from_secs(60)).unwrap();
    wait_until(
        "the watchdog gives up on the late renewal",
        Duration::from_secs(10),
        || proxy.held_and_abandoned() >= 1,
    );
    // The network delivers it after all.
    proxy.deliver_held();

    // The late renewal set the key back to 3 s: another client gets the
    // lock once that runs out (a key that keeps its 60 s is never free).
    let other = Client::open(&server.url()).unwrap();
    let contender = other.lock(name).unwrap();
    let delivered = Instant::now();
    let mut second = None;
    while second.is_none() && delivered.elapsed() < Duration::from_secs(8) {
        second = contender.try_acquire().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    let first = guard.check();
    assert!(
        second.is_none() || first.is_err(),
        "two holders: the guard extended to 60 s says check() = Ok ({:?} left, no lost report: {:?}) \
         while another client holds the lock with fencing token {}",
        guard.remaining(),
        lost_rx.try_recv().ok(),
        second.as_ref().map_or(0, |g| g.fencing_token())
    );
}

/// The same class as above, on the path where the acquisition succeeds: an
/// attempt whose answer is late is followed by a retry (same hold token)
/// that wins; the holder works and releases. Then the late attempt reaches
/// Redis and takes the free lock for the dead hold: nothing gives it back,
/// and the lock is held by nobody for a whole ttl.
#[test]
fn a_late_attempt_of_an_acquisition_that_won_and_released_does_not_hold_the_lock() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let name = "late-attempt";
    let ttl = Duration::from_secs(10);
    let other = Client::open(&server.url()).unwrap();
    let holder = other
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // Scripts loaded (a late script must not meet NOSCRIPT).
    warm_up(&client);
    let calls = evalsha_calls(&server);
    let (guard_tx, guard_rx) = mpsc::channel();
    let waiter = {
        let client = client.clone();
        thread::spawn(move || {
            let lock = client.lock_with(name, LockOptions::new().ttl(ttl)).unwrap();
            let guard = lock.acquire_timeout(Duration::from_secs(30)).unwrap();
            guard_tx.send(guard.token().to_string()).unwrap();
            guard.release().unwrap();
        })
    };
    wait_for_waiter(&server, name);
    wait_until(
        "the waiter's second attempt",
        Duration::from_secs(10),
        || evalsha_calls(&server) >= calls + 2,
    );
    // The next attempt (after the release wakes the waiter) is late.
    proxy.hold_next(1);
    holder.release().unwrap();
    let token = guard_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
    assert!(!other.is_locked(name).unwrap());

    proxy.deliver_held();
    let delivered = Instant::now();
    let limit = Duration::from_secs(3);
    while other.is_locked(name).unwrap() {
        let held_by: Option<String> = redis::cmd("GET")
            .arg(key(name))
            .query(&mut server.admin())
            .unwrap();
        assert!(
            delivered.elapsed() < limit,
            "the lock is held {:?} after the late attempt arrived, by {held_by:?} (the hold {token} \
             that was released), and nobody gives it back before its ttl ({ttl:?}) ends",
            delivered.elapsed()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Redlock: a release that only one master of three heard (the other two
/// never got the packets) reports NotHeld -- "no longer held by this
/// owner" -- and gives nothing back in the background, although the hold
/// is still on a quorum: the lock stays held by nobody for its whole ttl.
#[test]
fn a_redlock_release_most_masters_never_heard_is_given_back_in_the_background() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let proxy_a = Proxy::start(servers[0].port);
    let proxy_b = Proxy::start(servers[1].port);
    let name = "unheard-release";
    let ttl = Duration::from_secs(10);
    let client = redlock(
        &[proxy_a.url(), proxy_b.url(), servers[2].url()],
        Duration::from_millis(300),
    );
    let lock = client
        .lock_with(name, LockOptions::new().ttl(ttl).auto_renew(false))
        .unwrap();
    let guard = lock.acquire().unwrap();
    proxy_a.hold();
    proxy_b.hold();
    let released = guard.release();
    // The partition heals; the release's packets to a and b are lost.
    proxy_a.pass();
    proxy_b.pass();
    proxy_a.discard_held();
    proxy_b.discard_held();

    let healed = Instant::now();
    let other = redlock(
        &servers.iter().map(RedisServer::url).collect::<Vec<_>>(),
        Duration::from_millis(300),
    );
    let limit = Duration::from_secs(3);
    while other.is_locked(name).unwrap() {
        assert!(
            healed.elapsed() < limit,
            "the lock is still held on a quorum {:?} after the network healed (release said \
             {released:?}), and nothing gives it back before its ttl ({ttl:?}) ends",
            healed.elapsed()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The watchdog gives back a hold whose acquire had an unknown outcome on
/// the same thread that renews every lease, and waits up to the command
/// timeout for that one give-back. While one connection is stuck, every
/// other lease of the client goes without renewal and is lost.
#[test]
fn a_stuck_give_back_does_not_delay_other_leases_renewals() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_secs(3))
        .command_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let lost_tx = Mutex::new(lost_tx);
    let renewed = client
        .lock_with(
            "kept-alive",
            LockOptions::new()
                .ttl(Duration::from_millis(1500))
                .on_lost(move |l| {
                    let _ = lost_tx.lock().send(l.reason.clone());
                }),
        )
        .unwrap()
        .acquire()
        .unwrap();
    // Only the scripts of lock "stuck-lock" meet a stuck network.
    proxy.hold_only("stuck-lock");
    let attempt = client.lock("stuck-lock").unwrap().try_acquire();
    assert!(
        attempt.is_err(),
        "a held-back attempt answered: {attempt:?}"
    );

    let reported = lost_rx.recv_timeout(Duration::from_secs(6));
    let check = renewed.check();
    proxy.pass();
    proxy.discard_held();
    assert!(
        reported.is_err(),
        "lease 'kept-alive' lost while its own renewals had a working connection: {}",
        reported.unwrap_or_default()
    );
    check.expect("'kept-alive' was renewable all along");
}

/// A reentrant handle whose release had an unknown outcome (its packets
/// are late) acquires again: the new acquisition nests into the former
/// hold's hash, which the late release has not removed yet, and gets the
/// former hold's fencing token (one uninterrupted tenure). The new holder's
/// fenced writes must then be accepted, not refused because the former
/// hold wrote with that token.
#[test]
fn a_new_acquisition_that_nests_into_a_hold_whose_release_is_late_may_write() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let name = "token-reuse";
    let handle = client
        .lock_with(
            name,
            LockOptions::new()
                .ttl(Duration::from_secs(30))
                .reentrant(true),
        )
        .unwrap();
    let first = handle.acquire().unwrap();
    let first_token = first.fencing_token();
    assert!(first.fenced_write("ledger", b"first").unwrap().written);
    // Releases (their scripts name the lock's channel) meet a slow network.
    proxy.hold_only(&format!("{{{name}}}:ch"));
    let released = first.release();
    assert!(
        released.is_err(),
        "a held-back release answered: {released:?}"
    );

    let second = handle.acquire().unwrap();
    let write = second.fenced_write("ledger", b"second").unwrap();
    proxy.pass();
    proxy.discard_held();
    assert!(
        write.written,
        "the current holder's fenced write was refused: it got fencing token {} (the released \
         hold's was {first_token}) and the released hold wrote with it",
        second.fencing_token(),
    );
}

/// Answers every command of a client like a Redis server would, except
/// that the lock is always held by someone else and SUBSCRIBE is answered
/// with `reply` (what a broken server, or anything on an unencrypted path,
/// may send).
fn fake_redis(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    let commands = 1 + chunk.windows(3).filter(|w| w == b"\r\n*").count();
                    let has = |word: &[u8]| chunk.windows(word.len()).any(|w| w == word);
                    let answer: Vec<u8> = if has(b"SUBSCRIBE") {
                        reply.to_vec()
                    } else if has(b"EVALSHA") {
                        b"*2\r\n:0\r\n:60000\r\n".repeat(commands)
                    } else {
                        b"+OK\r\n".repeat(commands)
                    };
                    if conn.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Runs this test's body in a child process (`ATTACK_CHILD` set to
/// `variant`) and returns how the child ended, so an abort fails the test
/// without taking the whole test binary down.
fn in_child_process(test: &str, variant: &str) -> Option<std::process::ExitStatus> {
    if std::env::var_os("ATTACK_CHILD").is_some() {
        return None;
    }
    Some(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads", "1"])
            .env("ATTACK_CHILD", variant)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map(|out| {
                eprintln!("{variant}: {}", String::from_utf8_lossy(&out.stderr));
                out.status
            })
            .unwrap(),
    )
}

/// A waiter's release listener trusts the lengths and nesting in a reply:
/// a bulk reply announcing nearly 2^63 bytes is allocated before it is
/// read (the allocation fails and the process aborts), and an array nested
/// a million deep is read by recursion (the listener thread's stack
/// overflows). Either ends the whole process, a Python or Go host
/// included. A malformed reply must be a connection error.
#[test]
fn a_malformed_pubsub_reply_does_not_abort_the_process() {
    let name = "a_malformed_pubsub_reply_does_not_abort_the_process";
    let huge_bulk: &'static [u8] = b"$9223372036854775805\r\n";
    let deep_array: &'static [u8] = Box::leak(b"*1\r\n".repeat(1_000_000).into_boxed_slice());
    let mut outcomes = Vec::new();
    for variant in ["huge-bulk", "deep-array"] {
        if let Some(status) = in_child_process(name, variant) {
            outcomes.push((variant, status));
        }
    }
    if !outcomes.is_empty() {
        assert!(
            outcomes.iter().all(|(_, status)| status.success()),
            "the process died on one malformed pub/sub reply: {outcomes:?}"
        );
        return;
    }
    let reply = match std::env::var("ATTACK_CHILD").as_deref() {
        Ok("deep-array") => deep_array,
        _ => huge_bulk,
    };
    let port = fake_redis(reply);
    let client = Client::builder(&format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let outcome = client
        .lock("held-elsewhere")
        .unwrap()
        .acquire_timeout(Duration::from_millis(500));
    assert!(outcome.is_err());
}

/// A renewal period just under the ttl is accepted, but the watchdog then
/// renews only once the lease's validity has already run out: while that
/// renewal is on its way, check() says Lost (with no lost report), and
/// after it, Ok again. A lease check() called lost must stay lost (or
/// rather: the watchdog must renew before the validity ends).
#[test]
fn a_lease_that_check_called_lost_never_comes_back() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let client = Client::builder(&proxy.url())
        .command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // A long ttl, so the key outlives the guard's validity (by the drift
    // allowance, 102 ms) while the renewal is held back a moment.
    let ttl = Duration::from_secs(10);
    let lock = client
        .lock_with(
            "late-period",
            LockOptions::new()
                .ttl(ttl)
                .renew_every(ttl - Duration::from_millis(1)),
        )
        .unwrap();
    let guard = lock.acquire().unwrap();
    proxy.hold_next(1);
    wait_until("the first renewal is sent", Duration::from_secs(15), || {
        proxy.held_scripts() >= 1
    });
    let while_renewing = guard.check();
    proxy.deliver_held();
    let after = Instant::now();
    while after.elapsed() < Duration::from_secs(1) {
        if let (Err(before), Ok(())) = (&while_renewing, guard.check()) {
            panic!(
                "check() said the lease was lost while its renewal was on its way ({before}), \
                 then Ok again"
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The same class as the late Redlock undo, on one server with
/// `wait_for_replicas`: an attempt that took the lock but was not confirmed
/// by the replica in time gives it back (release by the hold's token) and
/// fails with Timeout; the waiting acquisition retries with the same token
/// and wins. When the give-back's packets arrive late, they delete the
/// hold the retry won, and another client takes the lock while the first
/// one's check() is Ok.
#[test]
fn a_late_give_back_of_an_unreplicated_attempt_cannot_release_the_retry_that_won() {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_until("the replica is in sync", Duration::from_secs(10), || {
        replication_field(&replica, "master_link_status").as_deref() == Some("up")
    });
    let proxy = Proxy::start(master.port);
    let name = "late-give-back";
    let other = Client::open(&master.url()).unwrap();
    let holder = other
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .wait_for_replicas(1, Duration::from_millis(200))
        .build()
        .unwrap();
    // Scripts loaded (a late script must not meet NOSCRIPT).
    warm_up(&client);
    let calls = evalsha_calls(&master);
    let (guard_tx, guard_rx) = mpsc::channel();
    let waiter = {
        let client = client.clone();
        thread::spawn(move || {
            let lock = client
                .lock_with(name, LockOptions::new().ttl(Duration::from_secs(30)))
                .unwrap();
            // Far less than the ttl: the attempt that was given back must
            // not keep the lock from this very acquisition for its ttl.
            let guard = lock.acquire_timeout(Duration::from_secs(10));
            guard_tx.send(guard).unwrap();
            thread::sleep(Duration::from_secs(2));
        })
    };
    wait_for_waiter(&master, name);
    wait_until(
        "the waiter's second attempt",
        Duration::from_secs(10),
        || evalsha_calls(&master) >= calls + 2,
    );

    // The replica falls behind; the next give-back (a release: its script
    // names the lock's channel) meets a slow network.
    replica.signal(libc::SIGSTOP);
    proxy.hold_next_only(1, &format!("{{{name}}}:ch"));
    holder.release().unwrap();
    wait_until(
        "the give-back is held back",
        Duration::from_secs(10),
        || proxy.held_scripts() >= 1,
    );
    replica.signal(libc::SIGCONT);
    let guard = guard_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .unwrap_or_else(|e| {
            let holder: Option<String> = redis::cmd("GET")
                .arg(key(name))
                .query(&mut master.admin())
                .unwrap_or(None);
            panic!(
                "the waiter did not acquire within 10 s once the replica was back (ttl 30 s): the \
                 lock is held by {holder:?}, its own attempt that the replica did not confirm, \
                 whose give-back got no answer and was never retried: {e}"
            )
        });

    proxy.deliver_held();
    let second = other.lock(name).unwrap().try_acquire().unwrap();
    let first_ok = guard.check().is_ok();
    assert!(
        second.is_none() || !first_ok,
        "two holders: the waiter's guard (token {}) says check() = Ok while another client \
         acquired with fencing token {}",
        guard.token(),
        second.as_ref().map_or(0, |g| g.fencing_token()),
    );
    drop(second);
    drop(guard);
    waiter.join().unwrap();
}

/// The master (port) serving `key`'s slot, and the slot.
fn cluster_master_of(admin_of: &RedisServer, key: &str) -> (u16, i64) {
    let mut admin = admin_of.admin();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut admin)
        .unwrap();
    let ranges: Vec<(i64, i64, Vec<redis::Value>)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut admin)
        .unwrap();
    for (first, last, master) in ranges {
        if (first..=last).contains(&slot) {
            if let Some(redis::Value::Int(port)) = master.get(1) {
                return (u16::try_from(*port).unwrap(), slot);
            }
        }
    }
    panic!("no master for slot {slot}");
}

/// Redis Cluster: the watchdog renews slot after slot, each in its own
/// round trip, one after the other. With one master stopped, every slot
/// of that master costs the command timeout in turn, and a lease on a
/// healthy master waits for all of them: it is not renewed in time and is
/// lost although its own master answers at once.
///
/// The ttl (10 s) leaves a healthy lease 6.7 s between renewals, room for a
/// loaded machine (with 6 s and 4 s of room, a machine running four builds
/// beside the suite lost it twice); twelve stopped slots cost 12 s in
/// turn, far more than that.
#[test]
fn a_stopped_cluster_master_does_not_cost_leases_on_healthy_masters() {
    let nodes =
        support::cluster::start_nodes_with(3, 0, 30000, &["--cluster-require-full-coverage", "no"]);
    // Twelve locks in twelve slots of the first master, one lock elsewhere.
    let (stopped_port, _) = cluster_master_of(&nodes[0], &key("victim-0"));
    let mut on_stopped: Vec<String> = Vec::new();
    let mut slots = Vec::new();
    let mut healthy: Option<String> = None;
    for i in 0..2000 {
        let name = format!("victim-{i}");
        let (port, slot) = cluster_master_of(&nodes[0], &key(&name));
        if port == stopped_port {
            if on_stopped.len() < 12 && !slots.contains(&slot) {
                slots.push(slot);
                on_stopped.push(name);
            }
        } else if healthy.is_none() {
            healthy = Some(name);
        }
    }
    let healthy = healthy.unwrap();
    let client = Client::cluster_builder(&nodes.iter().map(RedisServer::url).collect::<Vec<_>>())
        .command_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let lost_tx = Mutex::new(lost_tx);
    let options = LockOptions::new().ttl(Duration::from_secs(10));
    let healthy_guard = client
        .lock_with(
            &healthy,
            options.clone().on_lost(move |l| {
                let _ = lost_tx.lock().send(l.reason.clone());
            }),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let _others: Vec<_> = on_stopped
        .iter()
        .map(|n| {
            client
                .lock_with(n, options.clone())
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    let stopped = nodes.iter().find(|n| n.port == stopped_port).unwrap();
    stopped.signal(libc::SIGSTOP);
    let reported = lost_rx.recv_timeout(Duration::from_secs(25));
    let check = healthy_guard.check();
    stopped.signal(libc::SIGCONT);
    assert!(
        reported.is_err() && check.is_ok(),
        "lease '{healthy}' on a healthy master was lost: report {reported:?}, check {check:?}"
    );
}

/// The same promise while the acquire subscribes to release messages: the
/// SUBSCRIBE is on its way (its confirmation does not come), and the
/// acquire waits for it until the command timeout, whatever the cancel.
#[test]
fn cancel_interrupts_a_wait_for_a_subscription_confirmation() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let name = "cancel-subscribing";
    let other = Client::open(&server.url()).unwrap();
    let _holder = other
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    let client = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_secs(10))
        .command_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    proxy.hold_any_command("SUBSCRIBE");
    let cancel = CancelToken::new();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            let lock = client.lock(name).unwrap();
            let outcome = lock
                .acquire_with(None, Some(&cancel))
                .map(|g| g.token().to_string());
            done_tx.send((outcome, Instant::now())).unwrap();
        })
    };
    wait_until(
        "the waiter's SUBSCRIBE reaches the network",
        Duration::from_secs(10),
        || proxy.held_scripts() >= 1,
    );
    let cancelled_at = Instant::now();
    cancel.cancel();
    let (outcome, returned_at) = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let took = returned_at.duration_since(cancelled_at);
    proxy.pass();
    proxy.discard_held();
    waiter.join().unwrap();
    assert!(
        took < Duration::from_secs(2),
        "the cancelled acquire returned only after {took:?} (command timeout 10 s): {outcome:?}"
    );
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Cancelled);
}

/// fork() from a process whose only user thread is the one that forks
/// (as the README asks: no other thread inside a latchkey call), while the
/// library's own watchdog renews the parent's leases: the child takes a
/// lock of its own and gives it back. The child's watchdog reuses the
/// parent's schedule mutex, which the parent's watchdog thread may hold at
/// the fork: the child then hangs on its first acquire.
#[test]
fn a_child_forked_while_the_watchdog_renews_never_hangs() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    // Many short leases keep the parent's watchdog busy all the time.
    let leases: Vec<_> = (0..200)
        .map(|i| {
            client
                .lock_with(
                    &format!("forked-lease-{i}"),
                    LockOptions::new().ttl(Duration::from_millis(30)),
                )
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut forks = 0;
    let mut hung = None;
    while started.elapsed() < Duration::from_secs(15) && hung.is_none() {
        forks += 1;
        let status = in_forked_child(Duration::from_secs(5), || {
            let own = client.lock("forked-child-own").unwrap();
            if let Ok(guard) = own.acquire_timeout(Duration::from_millis(500)) {
                let _ = guard.release();
            }
        });
        hung = status.is_none().then_some(forks);
    }
    let lost = leases.iter().filter(|g| g.lost()).count();
    assert!(
        hung.is_none(),
        "fork {forks}: the child did not take and give back a lock and exit within 5 s (it \
         hung); {lost} of the parent's 200 leases were lost meanwhile"
    );
}

/// The release listener's reader thread locks its state for every message.
/// A child forked while it did must still be able to wait for a lock (it
/// subscribes on a connection of its own) rather than hang on that lock.
#[test]
fn a_child_forked_while_the_release_listener_reads_never_hangs() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let busy = Client::open(&server.url()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Another client takes and gives back 'chatty' without pause: every
    // release is a message that the parent's listener reads.
    let releaser = {
        let (busy, stop) = (busy.clone(), stop.clone());
        thread::spawn(move || {
            let lock = busy.lock("chatty").unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(guard) = lock.acquire_timeout(Duration::from_secs(1)) {
                    let _ = guard.release();
                }
            }
        })
    };
    // The parent waits on 'chatty' too, so its listener is subscribed.
    let waiter = {
        let (client, stop) = (client.clone(), stop.clone());
        thread::spawn(move || {
            let lock = client.lock("chatty").unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(guard) = lock.acquire_timeout(Duration::from_secs(1)) {
                    let _ = guard.release();
                }
            }
        })
    };
    wait_for_waiter(&server, "chatty");
    // Held for the whole test, so the child's attempt must subscribe.
    let _held = busy
        .lock_with(
            "held-for-the-child",
            LockOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let started = Instant::now();
    let mut forks = 0;
    let mut hung = None;
    while started.elapsed() < Duration::from_secs(10) && hung.is_none() {
        forks += 1;
        let status = in_forked_child(Duration::from_secs(5), || {
            let lock = client.lock("held-for-the-child").unwrap();
            // Timeout is the expected answer; only a hang is wrong.
            let _ = lock.acquire_timeout(Duration::from_millis(200));
        });
        hung = status.is_none().then_some(forks);
    }
    stop.store(true, Ordering::Relaxed);
    releaser.join().unwrap();
    waiter.join().unwrap();
    assert!(
        hung.is_none(),
        "fork {forks}: the child did not finish waiting for a lock within 5 s (it hung)"
    );
}

/// An operator's force-unlock whose packets are late (it timed out, so
/// it is not sent again) still runs when they arrive. It deletes the lock
/// whoever holds it by then: a holder that took the lock after the
/// operator gave up is broken, and a third client takes the lock while
/// that holder's check() is Ok (until its next renewal).
#[test]
fn a_late_force_unlock_never_breaks_a_hold_taken_after_it() {
    let server = RedisServer::start();
    let proxy = Proxy::start(server.port);
    let name = "late-force-unlock";
    let direct = Client::open(&server.url()).unwrap();
    let options = LockOptions::new().ttl(Duration::from_secs(30));
    let first = direct
        .lock_with(name, options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let operator = Client::builder(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // Scripts loaded (a late script must not meet NOSCRIPT).
    assert!(!operator.force_unlock("warm-up").unwrap());
    proxy.hold_next(1);
    let broken = operator.force_unlock(name);
    assert!(
        broken.is_err(),
        "a held-back force-unlock answered: {broken:?}"
    );
    first.release().unwrap();
    let second = direct
        .lock_with(name, options.clone())
        .unwrap()
        .acquire()
        .unwrap();

    proxy.deliver_held();
    let third = direct
        .lock_with(name, options)
        .unwrap()
        .try_acquire()
        .unwrap();
    assert!(
        third.is_none() || second.check().is_err(),
        "two holders: a force-unlock sent while the first holder held the lock deleted the \
         hold taken after it; the later holder's check() is Ok and a third client holds \
         fencing token {}",
        third.as_ref().map_or(0, |g| g.fencing_token())
    );
}
