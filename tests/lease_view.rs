//! One view of a lease, and waiters that hear about every way a lock
//! becomes free: extend never leaves the guard, the watchdog and Redis
//! disagreeing; a key that vanishes without a release (DEL, eviction, a
//! lease found lost) wakes its waiters; a cancel wins over an attempt in
//! flight; a single try never takes the reservation made for woken
//! waiters; a release with nobody waiting reserves nothing.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::{wait_for_waiter, wait_until, RedisServer};

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

/// Returns once a waiter of lock `name` is subscribed, and a moment more
/// so that it made its attempt after subscribing and is parked (were it
/// not yet, these tests would only pass more easily).
fn wait_for_parked_waiter(server: &RedisServer, name: &str) {
    wait_for_waiter(server, name);
    thread::sleep(Duration::from_millis(300));
}

fn pttl(server: &RedisServer, name: &str) -> Duration {
    let ms: i64 = redis::cmd("PTTL")
        .arg(key(name))
        .query(&mut server.admin())
        .unwrap();
    Duration::from_millis(ms.max(0) as u64)
}

// Before: extend(short) on a lease with more left cut the guard's own
// lease to `short` while Redis kept the longer expiry and the watchdog its
// old schedule: check() said Lost after `short` (failed 2 of 2 runs; the
// guard reported 0.497 s left, Redis 2.9 s).
#[test]
fn a_shorter_extend_leaves_the_lease_as_long_as_it_was() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    for auto_renew in [true, false] {
        let name = format!("shorter-{auto_renew}");
        let lock = client
            .lock_with(
                &name,
                LockOptions::new()
                    .ttl(Duration::from_secs(30))
                    .auto_renew(auto_renew),
            )
            .unwrap();
        let guard = lock.acquire().unwrap();
        let short = Duration::from_millis(300);
        guard.extend(short).unwrap();
        assert!(
            guard.remaining() > Duration::from_secs(20),
            "auto_renew {auto_renew}: extend({short:?}) cut the guard's lease to {:?} while Redis keeps {:?}",
            guard.remaining(),
            pttl(&server, &name)
        );
        // Past the shorter ttl the lease is still whole, in both views.
        thread::sleep(short * 2);
        guard.check().expect("the lease is still held");
        assert!(pttl(&server, &name) >= guard.remaining());
        guard.release().unwrap();
    }
}

#[test]
fn over_redlock_a_shorter_extend_leaves_the_lease_as_long_as_it_was() {
    let masters: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = masters.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls)
        .redlock_restart_delay(Duration::ZERO) // fresh test servers
        .build()
        .unwrap();
    let lock = client
        .lock_with("shorter", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap();
    let guard = lock.acquire().unwrap();
    guard.extend(Duration::from_millis(300)).unwrap();
    assert!(
        guard.remaining() > Duration::from_secs(20),
        "{:?}",
        guard.remaining()
    );
    for master in &masters {
        assert!(pttl(master, "shorter") >= guard.remaining());
    }
    guard.extend_by(Duration::from_secs(10)).unwrap();
    assert!(
        guard.remaining() > Duration::from_secs(35),
        "{:?}",
        guard.remaining()
    );
    for master in &masters {
        assert!(pttl(master, "shorter") >= guard.remaining());
    }
    guard.release().unwrap();
}

#[test]
fn a_longer_extend_moves_every_view_of_the_lease() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client
        .lock_with("longer", LockOptions::new().ttl(Duration::from_secs(2)))
        .unwrap();
    let guard = lock.acquire().unwrap();
    guard.extend(Duration::from_secs(40)).unwrap();
    assert!(guard.remaining() > Duration::from_secs(30));
    let redis_ttl = pttl(&server, "longer");
    assert!(redis_ttl >= guard.remaining(), "{redis_ttl:?}");
    // The watchdog renews with the new ttl: Redis never drops back to 2 s.
    thread::sleep(Duration::from_millis(1500));
    assert!(pttl(&server, "longer") > Duration::from_secs(30));
    guard.check().unwrap();
    guard.release().unwrap();
}

// redis-py's extend(additional) adds time; extend_by is that form.
#[test]
fn extend_by_adds_to_what_is_left() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client
        .lock_with(
            "additive",
            LockOptions::new()
                .ttl(Duration::from_secs(10))
                .auto_renew(false),
        )
        .unwrap();
    let guard = lock.acquire().unwrap();
    let before = guard.remaining();
    guard.extend_by(Duration::from_secs(5)).unwrap();
    let after = guard.remaining();
    assert!(
        after > before + Duration::from_secs(4),
        "{before:?} -> {after:?}"
    );
    assert!(
        after <= before + Duration::from_secs(5),
        "{before:?} -> {after:?}"
    );
    assert!(pttl(&server, "additive") >= after);
    guard.release().unwrap();
    // A hold that is gone is not extended, whichever form.
    let gone = lock.acquire().unwrap();
    assert!(client.force_unlock("additive").unwrap());
    assert_eq!(
        gone.extend_by(Duration::from_secs(1)).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
}

// Before: a key deleted without a release message left its waiter parked
// until the holder's lease end or its own deadline (failed 1 of 1 run: the
// waiter woke only at its 10 s deadline).
#[test]
fn a_deleted_key_is_taken_by_a_waiter_before_the_lease_would_have_ended() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let ttl = Duration::from_secs(12);
    let options = LockOptions::new().ttl(ttl).auto_renew(false);
    let holder = client.lock_with("deleted", options.clone()).unwrap();
    let _held = holder.acquire().unwrap();
    let waiter_client = Client::open(&server.url()).unwrap();
    // Longer than the re-check period (a third of 12 s), shorter than the
    // holder's lease.
    let timeout = Duration::from_secs(10);
    let waiter = thread::spawn(move || {
        let lock = waiter_client.lock_with("deleted", options).unwrap();
        let started = Instant::now();
        let outcome = lock.acquire_timeout(timeout);
        (outcome.map(|g| g.fencing_token()), started.elapsed())
    });
    wait_for_parked_waiter(&server, "deleted");
    let _: i64 = redis::cmd("DEL")
        .arg(key("deleted"))
        .query(&mut server.admin())
        .unwrap();
    let (outcome, waited) = waiter.join().unwrap();
    outcome.expect("the waiter took the deleted lock");
    // The last attempt at the deadline takes a free lock too: the waiter
    // must have looked before.
    assert!(
        waited < timeout,
        "the waiter slept until its deadline ({waited:?}) although the key was gone"
    );
}

// Before: a holder's watchdog that found its lease gone told nobody, and
// the waiter slept on until the ttl the holder had left or its own
// deadline (failed 1 of 1 run: woken only at its 8 s deadline).
#[test]
fn a_lease_the_watchdog_finds_lost_wakes_its_waiters() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let holder = client
        .lock_with(
            "found-lost",
            LockOptions::new()
                .ttl(Duration::from_secs(30))
                .renew_every(Duration::from_millis(200))
                .on_lost(move |_| {
                    let _ = lost_tx.send(());
                }),
        )
        .unwrap();
    let held = holder.acquire().unwrap();
    let waiter_client = Client::open(&server.url()).unwrap();
    // Well inside the waiter's own re-check period (a third of the 30 s
    // it was told the holder has left): only a message can wake it sooner.
    let timeout = Duration::from_secs(8);
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        let outcome = waiter_client
            .lock("found-lost")
            .unwrap()
            .acquire_timeout(timeout)
            .map(|g| g.fencing_token());
        (outcome, started.elapsed())
    });
    wait_for_parked_waiter(&server, "found-lost");
    let _: i64 = redis::cmd("DEL")
        .arg(key("found-lost"))
        .query(&mut server.admin())
        .unwrap();
    lost_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the watchdog found the lease lost");
    let (outcome, waited) = waiter.join().unwrap();
    let token = outcome.expect("the waiter took the lock");
    assert!(token > held.fencing_token());
    // The last attempt at the deadline takes a free lock too: the waiter
    // must have been woken before.
    assert!(
        waited < timeout,
        "the waiter slept until its deadline ({waited:?}) although the holder's watchdog found the lease lost"
    );
}

// Before: a cancel that arrived while the attempt was on the wire lost to
// it: acquire_with returned Ok(guard) after the server resumed (failed 2
// of 2 runs).
#[test]
fn a_cancel_during_an_attempt_in_flight_wins_and_gives_the_lock_back() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    support::warm_up(&client);
    let lock = Arc::new(client.lock("cancel-in-flight").unwrap());
    // Connected and scripts loaded.
    lock.acquire().unwrap().release().unwrap();
    server.signal(libc::SIGSTOP);
    let cancel = CancelToken::new();
    let (started_tx, started_rx) = mpsc::channel();
    let acquiring = {
        let (lock, cancel) = (lock.clone(), cancel.clone());
        thread::spawn(move || {
            started_tx.send(()).unwrap();
            lock.acquire_with(None, Some(&cancel))
                .map(|g| g.token().to_string())
        })
    };
    started_rx.recv().unwrap();
    // The attempt is now sent (or about to be) to a server that is asleep.
    thread::sleep(Duration::from_millis(100));
    cancel.cancel();
    thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGCONT);
    let outcome = acquiring.join().unwrap();
    assert_eq!(
        outcome.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::Cancelled),
        "a cancel before the call returned must win: {outcome:?}"
    );
    wait_until(
        "the cancelled attempt's lock is given back",
        Duration::from_secs(10),
        || !client.is_locked("cancel-in-flight").unwrap(),
    );
}

// Before: try_acquire might take the reservation a release made for the
// waiters it woke; a holder looping release + try_acquire kept a parked
// waiter out for many cycles (failed 2 of 2 runs: 5 and 12 cycles).
#[test]
fn a_single_try_never_takes_the_reservation_for_woken_waiters() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let holder = client.lock("fair").unwrap();
    let mut held = holder.acquire().unwrap();
    let waiter_client = Client::open(&server.url()).unwrap();
    let got_it = Arc::new(AtomicBool::new(false));
    let waiter = {
        let got_it = got_it.clone();
        thread::spawn(move || {
            let guard = waiter_client
                .lock("fair")
                .unwrap()
                .acquire_timeout(Duration::from_secs(30))
                .unwrap();
            got_it.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(50));
            guard.release().unwrap();
        })
    };
    wait_for_parked_waiter(&server, "fair");
    let cycles = AtomicU32::new(0);
    loop {
        held.release().unwrap();
        cycles.fetch_add(1, Ordering::SeqCst);
        match holder.try_acquire().unwrap() {
            Some(again) if cycles.load(Ordering::SeqCst) < 100 => held = again,
            Some(_) => panic!("the waiter never got the lock in 100 cycles"),
            None => break,
        }
    }
    assert_eq!(
        cycles.load(Ordering::SeqCst),
        1,
        "the holder took the lock back past a woken waiter"
    );
    waiter.join().unwrap();
    assert!(got_it.load(Ordering::SeqCst));
}

// Before: a release by a handle that had waited once left the lock
// reserved for 100 ms for waiters that did not exist (the handle's own,
// lingering subscription counted as a listener).
#[test]
fn a_release_with_nobody_waiting_leaves_no_reservation() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client.lock("alone").unwrap();
    let other = client.lock("alone").unwrap();
    // `lock` waits once (so it subscribed), then holds alone.
    let first = other.acquire().unwrap();
    let waited = thread::scope(|s| {
        let waiting = s.spawn(|| lock.acquire().unwrap());
        wait_for_waiter(&server, "alone");
        first.release().unwrap();
        waiting.join().unwrap()
    });
    let mut reservations = 0;
    let mut guard = waited;
    for _ in 0..20 {
        guard.release().unwrap();
        let value: Option<String> = redis::cmd("GET")
            .arg(key("alone"))
            .query(&mut server.admin())
            .unwrap();
        if value.as_deref() == Some("handoff") {
            reservations += 1;
        }
        guard = lock.acquire().unwrap();
    }
    guard.release().unwrap();
    assert_eq!(reservations, 0, "releases reserved the lock for nobody");
}
