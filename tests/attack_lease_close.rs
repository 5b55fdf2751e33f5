//! Attacks on `Client::close`, "at least" extends, announce-free wake-ups,
//! cancel-wins and the release that waits for this client's UNSUBSCRIBE,
//! against real redis-server processes. A test that found a defect says
//! what happened before the fix; the others tried hard and held.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::{wait_for_waiter, wait_until, RedisServer};

/// One extend of a scenario, named.
type Step<'a> = Box<dyn Fn() -> latchkey::Result<()> + 'a>;

fn pttl(server: &RedisServer, name: &str) -> i64 {
    let mut admin = server.admin();
    redis::cmd("PTTL")
        .arg(format!("latchkey:{{{name}}}"))
        .query(&mut admin)
        .unwrap()
}

/// Asserts that the guard does not count on more than Redis keeps, in end
/// times: the guard's end is at least `before + remaining` (`before` taken
/// before remaining() was read), Redis's at most `after + PTTL` (`after`
/// taken once PTTL answered; PTTL is the expiry less the server's whole
/// milliseconds). A renewal in between only moves both ends later.
fn assert_guard_within_key(server: &RedisServer, name: &str, guard: &latchkey::Guard, what: &str) {
    let before = Instant::now();
    let guard_left = guard.remaining();
    let key_left = pttl(server, name);
    let after = Instant::now();
    let guard_end = before + guard_left;
    let key_end = after + Duration::from_millis(key_left.max(0) as u64);
    assert!(
        guard_end <= key_end,
        "after {what}: the guard counts on {guard_left:?}, Redis keeps {key_left} ms \
         ({:?} less)",
        guard_end - key_end
    );
}

fn raw_value(server: &RedisServer, name: &str) -> Option<String> {
    let mut admin = server.admin();
    redis::cmd("GET")
        .arg(format!("latchkey:{{{name}}}"))
        .query(&mut admin)
        .unwrap_or(None)
}

/// A close whose client also waits for the lock it holds: the close
/// releases the hold while its own (cancelled) waiter is still subscribed,
/// so the release counts that waiter as a listener and reserves the lock
/// ('handoff') for a waiter that is leaving. Right after close() returned,
/// a fresh client's try_acquire must find the lock free.
#[test]
fn a_close_never_reserves_the_lock_for_its_own_leaving_waiter() {
    let server = RedisServer::start();
    let other = Client::open(&server.url()).unwrap();
    for round in 0..5 {
        let client = Client::open(&server.url()).unwrap();
        let name = format!("own-waiter-{round}");
        let guard = client.lock(&name).unwrap().acquire().unwrap();
        // Several waiters of the same client: the last to leave sends the
        // UNSUBSCRIBE, well after the close's release went out.
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let waited = client.lock(&name).unwrap();
                thread::spawn(move || waited.acquire().map(|_| ()).map_err(|e| e.kind()))
            })
            .collect();
        wait_for_waiter(&server, &name);
        client.close().unwrap();
        let value = raw_value(&server, &name);
        let fresh = other.lock(&name).unwrap().try_acquire().unwrap();
        assert!(
            fresh.is_some(),
            "round {round}: after close the lock is still taken (value {value:?}): \
             the close reserved it for its own cancelled waiter"
        );
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(ErrorKind::Closed));
        }
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld);
    }
}

/// Many threads acquire (try and blocking) distinct and shared names in a
/// loop while the client closes: after close() returned, no acquire
/// returns a guard that says held, nothing stays held in Redis, and no
/// lost callback runs.
#[test]
fn acquires_racing_a_close_leave_nothing_held() {
    let server = RedisServer::start();
    let observer = Client::open(&server.url()).unwrap();
    for round in 0..10 {
        let client = Client::open(&server.url()).unwrap();
        let lost = Arc::new(AtomicUsize::new(0));
        let closed_returned = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(9));
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let counted = lost.clone();
                let lock = client
                    .lock_with(
                        &format!("race-{round}-{}", t % 4),
                        LockOptions::new()
                            .ttl(Duration::from_millis(300))
                            .on_lost(move |_| {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }),
                    )
                    .unwrap();
                let (start, closed_returned) = (start.clone(), closed_returned.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut kept = Vec::new();
                    loop {
                        let outcome = if t % 2 == 0 {
                            lock.try_acquire()
                        } else {
                            lock.acquire_timeout(Duration::from_millis(50)).map(Some)
                        };
                        let after_close = closed_returned.load(Ordering::SeqCst);
                        match outcome {
                            Ok(Some(guard)) => {
                                if after_close {
                                    assert!(
                                        guard.check().is_err(),
                                        "an acquire begun after close() returned is held"
                                    );
                                }
                                kept.push(guard);
                                if kept.len() > 2 {
                                    let _ = kept.remove(0).release();
                                }
                            }
                            Ok(None) => {}
                            Err(e) if e.kind() == ErrorKind::Closed => return kept,
                            Err(e) if e.kind() == ErrorKind::Timeout => {}
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        thread::sleep(Duration::from_millis(5 + round * 3));
        client.close().unwrap();
        closed_returned.store(true, Ordering::SeqCst);
        for worker in workers {
            let kept = worker.join().unwrap();
            for guard in &kept {
                assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld);
                assert!(!guard.lost());
            }
        }
        for t in 0..4 {
            assert!(
                !observer.is_locked(&format!("race-{round}-{t}")).unwrap(),
                "round {round}: a hold outlived the close"
            );
        }
        assert_eq!(lost.load(Ordering::SeqCst), 0, "a close reported a loss");
    }
}

/// A close concurrent with releases, extends, extend_bys and fast watchdog
/// renewals (ttl 30 ms: a renewal every 10 ms) of the same holds: it never
/// deadlocks, reports no loss, and leaves every name free.
#[test]
fn a_close_concurrent_with_release_extend_and_renewal_settles() {
    let server = RedisServer::start();
    let observer = Client::open(&server.url()).unwrap();
    for round in 0..10 {
        let client = Client::open(&server.url()).unwrap();
        let lost = Arc::new(AtomicUsize::new(0));
        let guards: Vec<_> = (0..6)
            .map(|i| {
                let counted = lost.clone();
                client
                    .lock_with(
                        &format!("busy-{round}-{i}"),
                        LockOptions::new()
                            .ttl(Duration::from_millis(30))
                            .on_lost(move |_| {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }),
                    )
                    .unwrap()
                    .acquire()
                    .unwrap()
            })
            .collect();
        let mut guards = guards.into_iter();
        let released = guards.next().unwrap();
        let extended: Vec<_> = guards.collect();
        let extended = Arc::new(extended);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let extender = {
            let (extended, stop, done_tx) = (extended.clone(), stop.clone(), done_tx.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for (i, g) in extended.iter().enumerate() {
                        let _ = if i % 2 == 0 {
                            g.extend(Duration::from_millis(40))
                        } else {
                            g.extend_by(Duration::from_millis(5))
                        };
                    }
                }
                let _ = done_tx.send("extender");
            })
        };
        let releaser = {
            let done_tx = done_tx.clone();
            thread::spawn(move || {
                let outcome = released.release();
                let _ = done_tx.send("releaser");
                outcome.map_err(|e| e.kind())
            })
        };
        let closer = {
            let client = client.clone();
            thread::spawn(move || {
                let outcome = client.close();
                let _ = done_tx.send("closer");
                outcome
            })
        };
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.push(
                done_rx
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or("stuck"),
            );
        }
        stop.store(true, Ordering::SeqCst);
        seen.push(
            done_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or("stuck"),
        );
        assert!(!seen.contains(&"stuck"), "round {round}: {seen:?}");
        closer.join().unwrap().unwrap();
        extender.join().unwrap();
        let release = releaser.join().unwrap();
        assert!(
            matches!(release, Ok(()) | Err(ErrorKind::NotHeld)),
            "{release:?}"
        );
        for g in extended.iter() {
            assert_eq!(g.check().unwrap_err().kind(), ErrorKind::NotHeld);
            assert!(!g.lost(), "a hold ended by close says lost");
        }
        assert_eq!(
            lost.load(Ordering::SeqCst),
            0,
            "round {round}: a loss was reported"
        );
        for i in 0..6 {
            assert!(
                !observer.is_locked(&format!("busy-{round}-{i}")).unwrap(),
                "round {round}: busy-{i} still held after close"
            );
        }
    }
}

/// A cancel racing an acquire of a free lock, at many offsets: when the
/// acquire says Cancelled the lock is free in Redis (checked after the
/// lease would have been renewed), and an acquire handed an already
/// cancelled token never returns Ok.
#[test]
fn a_cancelled_acquire_leaves_the_lock_free() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let observer = Client::open(&server.url()).unwrap();
    let options = LockOptions::new().ttl(Duration::from_millis(150));
    let mut cancelled = 0;
    for round in 0..60u64 {
        let name = format!("cancel-{round}");
        let lock = client.lock_with(&name, options.clone()).unwrap();
        let cancel = CancelToken::new();
        let stopper = cancel.clone();
        let delay = Duration::from_micros(round * 37 % 900);
        let canceller = thread::spawn(move || {
            thread::sleep(delay);
            stopper.cancel();
        });
        let outcome = lock.acquire_with(None, Some(&cancel));
        canceller.join().unwrap();
        match outcome {
            Ok(guard) => drop(guard),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
                cancelled += 1;
                // Past one renewal period of the (would-be) lease.
                thread::sleep(Duration::from_millis(60));
                let fresh = observer.lock(&name).unwrap().try_acquire().unwrap();
                assert!(
                    fresh.is_some(),
                    "round {round}: Cancelled but the lock is taken"
                );
            }
        }
        // Cancelled before the call: never Ok.
        let err = lock.acquire_with(None, Some(&cancel)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
    }
    eprintln!("{cancelled} of 60 acquires were cancelled");
}

/// After every kind of extend, the guard never counts on more time than
/// Redis keeps the key: PTTL is read first, then remaining(), and
/// remaining() <= PTTL must hold. Out-of-range extends change nothing.
#[test]
fn no_extend_makes_the_guard_outlive_the_key() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let name = "extend-view";
    let guard = client
        .lock_with(name, LockOptions::new().ttl(Duration::from_millis(600)))
        .unwrap()
        .acquire()
        .unwrap();
    let agree = |what: &str| assert_guard_within_key(&server, name, &guard, what);
    agree("acquire");
    let steps: Vec<(&str, Step<'_>)> = vec![
        (
            "extend 10 s",
            Box::new(|| guard.extend(Duration::from_secs(10))),
        ),
        (
            "extend 1 s (shorter)",
            Box::new(|| guard.extend(Duration::from_secs(1))),
        ),
        ("extend_by 0", Box::new(|| guard.extend_by(Duration::ZERO))),
        (
            "extend_by 1 ms",
            Box::new(|| guard.extend_by(Duration::from_millis(1))),
        ),
        (
            "extend_by 20 s",
            Box::new(|| guard.extend_by(Duration::from_secs(20))),
        ),
        (
            "extend min ttl",
            Box::new(|| guard.extend(Duration::from_millis(10))),
        ),
    ];
    for (what, step) in &steps {
        step().unwrap();
        agree(what);
    }
    let before = guard.remaining();
    for huge in [
        Duration::MAX,
        Duration::from_secs(30 * 24 * 3600),
        Duration::from_secs(u64::MAX / 1000),
    ] {
        let err = guard.extend_by(huge).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
    assert_eq!(
        guard
            .extend(Duration::from_secs(31 * 24 * 3600))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        guard.extend(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(guard.remaining() <= before);
    agree("refused extends");
    // Up to 30 days exactly: the guard and Redis agree.
    guard
        .extend_by(Duration::from_secs(30 * 24 * 3600) - guard.remaining() - Duration::from_secs(1))
        .unwrap();
    agree("extend_by to nearly 30 days");
    // After the key vanished: NotHeld, lost, and no time claimed.
    let mut admin = server.admin();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("latchkey:{{{name}}}"))
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        guard.extend(Duration::from_secs(5)).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    assert_eq!(
        guard.extend_by(Duration::from_secs(5)).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    assert!(guard.lost());
    assert_eq!(guard.remaining(), Duration::ZERO);
}

/// A key deleted under a holder: the holder's watchdog finds the lease gone
/// and announces the lock free, so a parked waiter (told the holder has
/// 30 s) takes it within a renewal period, not after 10 s; at no moment do
/// both say held once the watchdog has spoken.
#[test]
fn a_vanished_key_wakes_the_waiter_and_never_gives_two_holders() {
    let server = RedisServer::start();
    let holder_client = Client::open(&server.url()).unwrap();
    let waiter_client = Client::open(&server.url()).unwrap();
    let name = "vanish";
    let holder = holder_client
        .lock_with(
            name,
            LockOptions::new()
                .ttl(Duration::from_secs(30))
                .renew_every(Duration::from_millis(200)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let lock = waiter_client.lock(name).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let guard = lock.acquire();
        let _ = tx.send(());
        guard
    });
    wait_for_waiter(&server, name);
    let mut admin = server.admin();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("latchkey:{{{name}}}"))
        .query(&mut admin)
        .unwrap();
    let started = Instant::now();
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the waiter was woken by the announcement, well before its 10 s re-check");
    let guard = waiter.join().unwrap().unwrap();
    wait_until("the holder sees its loss", Duration::from_secs(5), || {
        holder.lost()
    });
    guard.check().unwrap();
    assert!(holder.check().is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(guard.fencing_token() > holder.fencing_token());
}

/// A release of a lock whose UNSUBSCRIBE (from this client's own waiter
/// that timed out) is pending while the server is stopped: it returns
/// (Connection) instead of hanging. It held: each release waits at most a
/// command timeout for the confirmation, then the release itself fails.
/// (A release to a stopped server after the first takes about the connect
/// timeout, with or without a pending UNSUBSCRIBE: the pool reconnects.)
#[test]
fn a_release_waiting_for_its_unsubscribe_never_hangs() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let client = Client::builder(&server.url())
        .command_timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("settle-{i}")).collect();
    let guards: Vec<_> = names
        .iter()
        .map(|n| client.lock(n).unwrap().acquire().unwrap())
        .collect();
    // Waiters of the same client on every name time out: their
    // UNSUBSCRIBEs go out just before the server stops.
    let waiters: Vec<_> = names
        .iter()
        .map(|n| {
            let lock = client.lock(n).unwrap();
            thread::spawn(move || {
                lock.acquire_timeout(Duration::from_millis(200))
                    .map(|_| ())
                    .map_err(|e| e.kind())
            })
        })
        .collect();
    for w in waiters {
        assert_eq!(w.join().unwrap(), Err(ErrorKind::Timeout));
    }
    server.signal(libc::SIGSTOP);
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let releaser = thread::spawn(move || {
        for g in guards {
            assert_eq!(g.release().unwrap_err().kind(), ErrorKind::Connection);
        }
        let _ = tx.send(());
    });
    let finished = rx.recv_timeout(Duration::from_secs(60));
    server.signal(libc::SIGCONT);
    finished.expect("the releases finished");
    releaser.join().unwrap();
    eprintln!(
        "5 releases against a stopped server took {:?}",
        started.elapsed()
    );
}

/// A waiter cancelled while its winning attempt is on the wire gives the
/// lock back; that give-back must leave the lock free for anyone at once,
/// not reserved ('handoff') for the cancelled waiter's own subscription,
/// which is still open while it gives back. The holder's lease simply
/// runs out (no release message, so no reservation of its own); the
/// cancel is sent the moment the waiter's hold appears in Redis.
#[test]
fn a_cancelled_waiter_gives_the_lock_back_free() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let other = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let mut cancelled = 0;
    let mut reserved = Vec::new();
    let rounds = 30;
    for round in 0..rounds {
        let name = format!("cancel-woken-{round}");
        let key = format!("latchkey:{{{name}}}");
        let _holder = other
            .lock_with(
                &name,
                LockOptions::new()
                    .ttl(Duration::from_millis(150))
                    .auto_renew(false),
            )
            .unwrap()
            .acquire()
            .unwrap();
        let first: String = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
        let lock = client
            .lock_with(&name, LockOptions::new().retry_jitter(Duration::ZERO))
            .unwrap();
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let waiter =
            thread::spawn(move || lock.acquire_with(None, Some(&token)).map_err(|e| e.kind()));
        wait_for_waiter(&server, &name);
        // The holder's lease runs out; the waiter wakes and takes the lock
        // (or has already returned: then there is nothing to race).
        loop {
            let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
            if value.is_some_and(|v| v != first) || waiter.is_finished() {
                break;
            }
        }
        cancel.cancel();
        match waiter.join().unwrap() {
            Ok(guard) => drop(guard),
            Err(kind) => {
                assert_eq!(kind, ErrorKind::Cancelled, "round {round}");
                cancelled += 1;
                let value = raw_value(&server, &name);
                if other.lock(&name).unwrap().try_acquire().unwrap().is_none() {
                    reserved.push((round, value));
                }
            }
        }
    }
    eprintln!("{cancelled} of {rounds} cancelled");
    assert!(
        reserved.is_empty(),
        "a cancelled waiter left the lock taken right after it returned: {reserved:?}"
    );
}

/// Extends, extend_bys and 100 ms watchdog renewals of one lease at once,
/// with a checker reading PTTL and then remaining(): the guard never counts
/// on more than Redis keeps, and the lease is never lost.
#[test]
fn concurrent_extends_and_renewals_never_outrun_the_key() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let name = "extend-storm";
    let guard = Arc::new(
        client
            .lock_with(name, LockOptions::new().ttl(Duration::from_millis(300)))
            .unwrap()
            .acquire()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let extenders: Vec<_> = (0..3)
        .map(|t| {
            let (guard, stop) = (guard.clone(), stop.clone());
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let outcome = match (t + i) % 3 {
                        0 => guard.extend(Duration::from_millis(100 + i % 500)),
                        1 => guard.extend_by(Duration::from_millis(i % 7)),
                        _ => guard.extend(Duration::from_millis(300)),
                    };
                    outcome.unwrap();
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(2) {
        assert_guard_within_key(&server, name, &guard, "extends and renewals");
        checks += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for e in extenders {
        e.join().unwrap();
    }
    guard.check().unwrap();
    eprintln!("{checks} checks");
}

/// A close from inside a lost-lease callback (the watchdog thread): it
/// returns, releases the client's other hold, and the watchdog goes on.
#[test]
fn a_close_from_a_lost_callback_does_not_deadlock() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let observer = Client::open(&server.url()).unwrap();
    let (tx, rx) = mpsc::channel();
    let closer = client.clone();
    let doomed = client
        .lock_with(
            "doomed",
            LockOptions::new()
                .ttl(Duration::from_millis(300))
                .on_lost(move |_| {
                    let _ = tx.send(closer.close().map_err(|e| e.kind()));
                }),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let kept = client.lock("kept").unwrap().acquire().unwrap();
    let mut admin = server.admin();
    let _: i64 = redis::cmd("DEL")
        .arg("latchkey:{doomed}")
        .query(&mut admin)
        .unwrap();
    let closed = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback's close returned");
    assert_eq!(closed, Ok(()));
    assert!(doomed.lost());
    assert_eq!(kept.check().unwrap_err().kind(), ErrorKind::NotHeld);
    assert!(!observer.is_locked("kept").unwrap());
}

/// Redlock with a master down: extend and extend_by reach the two live
/// masters, and the guard counts on no more than the shorter of their
/// keys (both are needed for a quorum). With two masters down an extend
/// fails (NoQuorum) and moves nothing.
#[test]
fn a_redlock_extend_with_a_master_down_stays_within_the_quorum() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls)
        // Fresh test servers: no restart to wait out.
        .redlock_restart_delay(Duration::ZERO)
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let name = "redlock-extend";
    let guard = client
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(2)))
        .unwrap()
        .acquire()
        .unwrap();
    servers[0].kill();
    let within_live = |what: &str| {
        for server in &servers[1..] {
            assert_guard_within_key(server, name, &guard, what);
        }
    };
    guard.extend(Duration::from_secs(60)).unwrap();
    within_live("extend 60 s");
    guard.extend(Duration::from_secs(5)).unwrap();
    within_live("a shorter extend");
    guard.extend_by(Duration::from_secs(30)).unwrap();
    within_live("extend_by 30 s");
    servers[1].kill();
    let before = guard.remaining();
    let err = guard.extend(Duration::from_secs(600)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    let err = guard.extend_by(Duration::from_secs(600)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert!(guard.remaining() <= before);
    assert_guard_within_key(&servers[2], name, &guard, "refused extends");
}

/// Fixed finding: `renew_every` is accepted up to just below the ttl, but
/// the watchdog renewed at min(confirmed + period, validity end), and the
/// validity is the ttl less the drift (1 % + 2 ms). A period between
/// ttl - drift and ttl puts every renewal at the validity end: its reply
/// always comes after it, so `renewed()` refuses it and the lease is
/// reported lost (and given back) although Redis kept it and nobody else
/// wanted it. Here ttl 300 ms, renew_every 298 ms (validity 295 ms): lost
/// at the first renewal, 3 of 3 runs before the fix (a renewal now leaves
/// a third of the ttl to come back).
#[test]
fn a_renewal_period_near_the_ttl_never_loses_the_lease() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let guard = client
        .lock_with(
            "renew-late",
            LockOptions::new()
                .ttl(Duration::from_millis(300))
                .renew_every(Duration::from_millis(298)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let first_end = Instant::now() + guard.remaining();
    // Past the first validity end: the renewal moved the lease on, or it
    // was lost.
    wait_until("the first validity ends", Duration::from_secs(5), || {
        guard.lost() || Instant::now() > first_end + Duration::from_millis(20)
    });
    guard.check().expect("the lease was renewed in time");
}

/// Fixed finding: an extend_by (or an extend) that gives the lease a later end
/// but a shorter length than the configured `renew_every` makes that
/// length the lease's ttl; the next renewal is then due after the new
/// validity, is placed at its very end, and its reply is refused: the
/// lease is reported lost although Redis kept it. Here ttl 600 ms,
/// renew_every 400 ms; at about 300 ms, extend_by(100 ms) makes the ttl
/// about 400 ms - the time already used: lost, 3 of 3 runs before the fix.
#[test]
fn an_extend_shorter_than_the_renewal_period_never_loses_the_lease() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let guard = client
        .lock_with(
            "extend-short",
            LockOptions::new()
                .ttl(Duration::from_millis(600))
                .renew_every(Duration::from_millis(400)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    wait_until("half the lease is used", Duration::from_secs(5), || {
        guard.remaining() < Duration::from_millis(300)
    });
    guard.extend_by(Duration::from_millis(100)).unwrap();
    let end = Instant::now() + guard.remaining();
    wait_until("the extended validity ends", Duration::from_secs(5), || {
        guard.lost() || Instant::now() > end + Duration::from_millis(20)
    });
    guard.check().expect("the lease was renewed in time");
}
