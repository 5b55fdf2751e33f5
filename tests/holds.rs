//! A hold is its own: every acquisition, nested reentrant ones included, has
//! an identity that Redis checks, so nothing done through a former hold (a
//! stale guard, a re-sent script, a forked child, a cancelled wait) can
//! release, extend or vouch for a later one. Each test tries to make two
//! holders both believe they hold one lock, or a lease vanish unreported.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::{wait_for_waiter, wait_until, RedisServer};

fn reentrant(ttl: Duration, auto_renew: bool) -> LockOptions {
    LockOptions::new()
        .ttl(ttl)
        .auto_renew(auto_renew)
        .reentrant(true)
}

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

#[test]
fn a_stale_reentrant_guard_cannot_release_a_newer_hold_of_the_same_handle() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client
        .lock_with("stale", reentrant(Duration::from_millis(100), false))
        .unwrap();
    let g1 = lock.acquire().unwrap();
    wait_until("g1's key expires", Duration::from_secs(5), || {
        !client.is_locked("stale").unwrap()
    });
    let g2 = lock.acquire().unwrap();
    g2.extend(Duration::from_secs(10)).unwrap();

    let stale = g1.release();
    assert_eq!(stale.unwrap_err().kind(), ErrorKind::NotHeld);
    g2.check().expect("g2 still holds");
    let other = client
        .lock_with("stale", reentrant(Duration::from_secs(10), false))
        .unwrap();
    assert!(
        other.try_acquire().unwrap().is_none(),
        "another handle acquired while g2 holds: g1's release freed g2's hold"
    );
    g2.release().unwrap();
}

#[test]
fn a_broken_reentrant_hold_is_reported_lost_even_when_the_handle_holds_again() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let lost_tx = parking_lot::Mutex::new(lost_tx);
    let options = reentrant(Duration::from_millis(600), true).on_lost(move |lost| {
        let _ = lost_tx.lock().send(lost.token.clone());
    });
    let lock = client.lock_with("broken", options).unwrap();
    let g1 = lock.acquire().unwrap();
    assert!(client.force_unlock("broken").unwrap());
    let other = client
        .lock_with("broken", reentrant(Duration::from_secs(5), false))
        .unwrap();
    other.acquire().unwrap().release().unwrap();
    let g2 = lock.acquire().unwrap();

    let reported = lost_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("g1 was never reported lost; its renewal keeps the new hold alive for it");
    assert_eq!(reported, g1.token());
    assert_eq!(g1.check().unwrap_err().kind(), ErrorKind::Lost);
    g2.check().expect("g2 is a hold of its own");
    assert!(
        lost_rx.recv_timeout(Duration::from_millis(700)).is_err(),
        "reported twice or g2 reported"
    );
    g2.release().unwrap();
}

#[test]
fn nested_guards_never_shorten_each_others_lease() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client
        .lock_with("nested", reentrant(Duration::from_secs(10), false))
        .unwrap();
    let g1 = lock.acquire().unwrap();
    let g2 = lock.acquire().unwrap();
    g2.extend(Duration::from_millis(50)).unwrap();
    thread::sleep(Duration::from_millis(150));
    g1.check().expect("g1 was granted 10 s");
    let other = client
        .lock_with("nested", reentrant(Duration::from_secs(10), false))
        .unwrap();
    assert!(
        other.try_acquire().unwrap().is_none(),
        "another handle acquired while g1 is told it holds the lock"
    );
    drop(g2);
    g1.release().unwrap();
}

#[test]
fn a_key_of_another_type_does_not_poison_other_renewals() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lost = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let seen = lost.clone();
    // A ttl of seconds, not of a few hundred ms: a loaded machine can stall
    // a renewal for seconds (1 of 20 repeat runs with 900 ms: b's release
    // found its lease expired; 1 of 2 with 3 s while four builds ran
    // beside the tests, CPU pressure 55 %), and b must outlive such a stall
    // for what this test checks to be about the renewals.
    let ttl = Duration::from_secs(6);
    let options = LockOptions::new()
        .ttl(ttl)
        .on_lost(move |l| seen.lock().push(l.name.clone()));
    // Taken together so that one renewal round trip carries both.
    let a = client.lock_with("poison-a", options.clone()).unwrap();
    let b = client.lock_with("poison-b", options).unwrap();
    let ga = a.acquire().unwrap();
    let gb = b.acquire().unwrap();
    // `a` is broken and retaken as a reentrant lock (a hash) by someone else.
    let other = Client::open(&server.url()).unwrap();
    assert!(other.force_unlock("poison-a").unwrap());
    let hash_holder = other
        .lock_with("poison-a", reentrant(Duration::from_secs(30), false))
        .unwrap()
        .acquire()
        .unwrap();

    let started = Instant::now();
    wait_until("a is reported lost", Duration::from_secs(10), || ga.lost());
    // At the first renewal (a third of the ttl), not when validity runs out.
    assert!(
        started.elapsed() < ttl - Duration::from_millis(300),
        "a was reported lost only after {:?}",
        started.elapsed()
    );
    // b goes on being renewed, in the rounds that carry a's broken key too:
    // twice more the end of its validity moves on. (Comparing remaining()
    // with its value right after the last renewal raced: it shrinks all the
    // while, and a renewal sent a little late left it below that value.)
    let valid_until = || Instant::now() + gb.remaining();
    for round in 0..2 {
        let before = valid_until();
        wait_until(
            &format!("b is renewed again (round {round})"),
            Duration::from_secs(20),
            || {
                assert!(!gb.lost(), "b was lost: {:?}", gb.check());
                valid_until() > before + Duration::from_millis(500)
            },
        );
        gb.check().expect("b is healthy and must stay renewed");
    }
    assert_eq!(*lost.lock(), vec!["poison-a".to_string()]);
    gb.release().unwrap();
    hash_holder.release().unwrap();
}

#[test]
fn an_inherited_guard_is_inert_in_a_forked_child() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let guard = client
        .lock_with("forked", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap()
        .acquire()
        .unwrap();
    // SAFETY: the child only drops/inspects the guard and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // In the child: the guard belongs to the parent.
        let check_says_lost = guard.check().is_err();
        drop(guard);
        let code = if check_says_lost { 0 } else { 3 };
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child was told it holds its parent's lock"
    );
    guard.check().expect("the parent still holds");
    let info = client
        .inspect("forked")
        .unwrap()
        .expect("the child released the parent's lock");
    assert_eq!(info.owner_token, guard.token());
    guard.release().unwrap();
}

#[test]
fn a_reentrant_handle_inherited_by_a_child_does_not_nest_into_the_parents_hold() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client
        .lock_with("forked-reentrant", reentrant(Duration::from_secs(30), true))
        .unwrap();
    let guard = lock.acquire().unwrap();
    // SAFETY: the child makes one try and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match lock.try_acquire() {
            Ok(None) => 0,
            Ok(Some(g)) => {
                std::mem::forget(g);
                3
            }
            Err(_) => 4,
        };
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child nested into its parent's reentrant hold (3) or failed (4)"
    );
    guard.release().unwrap();
    assert!(!client.is_locked("forked-reentrant").unwrap());
}

#[test]
fn cancel_takes_effect_promptly_at_any_moment() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let holder = client
        .lock_with(
            "cancel-any",
            LockOptions::new().ttl(Duration::from_secs(30)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let lock = Arc::new(client.lock("cancel-any").unwrap());
    let slow = Arc::new(AtomicUsize::new(0));
    // Many cancel moments, spread over the first milliseconds of the wait
    // (before, during and after the first attempt and the subscription).
    for i in 0..200u64 {
        let cancel = CancelToken::new();
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = {
            let (lock, cancel) = (lock.clone(), cancel.clone());
            thread::spawn(move || {
                let outcome = lock.acquire_with(None, Some(&cancel));
                let _ = done_tx.send(outcome.map(drop).map_err(|e| e.kind()));
            })
        };
        thread::sleep(Duration::from_micros((i * 37) % 3000));
        cancel.cancel();
        match done_rx.recv_timeout(Duration::from_secs(3)) {
            Ok(outcome) => assert_eq!(outcome, Err(ErrorKind::Cancelled)),
            Err(_) => {
                slow.fetch_add(1, Ordering::SeqCst);
                panic!("iteration {i}: a cancel was missed (the wait went on past 3 s)");
            }
        }
        waiter.join().unwrap();
    }
    holder.release().unwrap();
}

#[test]
fn a_release_with_unknown_outcome_gives_the_lock_back_once_redis_answers() {
    let server = RedisServer::start();
    let client = Client::builder(&server.url())
        .command_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let guard = client
        .lock_with(
            "unknown-release",
            LockOptions::new().ttl(Duration::from_secs(30)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let busy = busy_for(&server, Duration::from_millis(600));
    let outcome = guard.release();
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Connection);
    busy.join().unwrap();
    let observer = Client::open(&server.url()).unwrap();
    wait_until(
        "the lock is free again (not after its 30 s ttl)",
        Duration::from_secs(5),
        || !observer.is_locked("unknown-release").unwrap_or(true),
    );
}

/// A master, one sentinel; a client that finds the master through it with a
/// command timeout shorter than a pause of the master, and a connect
/// timeout long enough to reconnect to it once it resumes (so a re-send,
/// if the library made one, would reach the server).
fn sentinel_client() -> (RedisServer, RedisServer, Client) {
    let master = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(master.port, 1);
    let client = Client::sentinel_builder(&[sentinel.url()], "mymaster")
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    wait_until(
        "the sentinel knows the master",
        Duration::from_secs(30),
        || client.is_locked("probe").is_ok(),
    );
    (master, sentinel, client)
}

/// Makes the server answer nothing for `pause` (SIGSTOP, then SIGCONT from
/// another thread): commands sent meanwhile time out on the client and run
/// when the server resumes, like a server busy with a long command.
fn busy_for(server: &RedisServer, pause: Duration) -> thread::JoinHandle<()> {
    server.signal(libc::SIGSTOP);
    let pid = server.pid();
    thread::spawn(move || {
        thread::sleep(pause);
        // SAFETY: kill(2) on the pid of the server this test started.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    })
}

#[test]
fn a_nested_release_that_timed_out_is_not_sent_twice() {
    let (master, _sentinel, client) = sentinel_client();
    let lock = client
        .lock_with("resent-release", reentrant(Duration::from_secs(30), true))
        .unwrap();
    let outer = lock.acquire().unwrap();
    let inner = lock.acquire().unwrap();
    let busy = busy_for(&master, Duration::from_millis(500));
    let _ = inner.release();
    busy.join().unwrap();
    thread::sleep(Duration::from_millis(300));
    outer.check().expect("the outer hold was never released");
    let info = client
        .inspect("resent-release")
        .unwrap()
        .expect("the outer guard is told it holds, but the lock is free");
    assert_eq!(info.hold_count, 1);
    outer.release().unwrap();
    assert!(!client.is_locked("resent-release").unwrap());
}

#[test]
fn a_nested_acquire_that_timed_out_leaves_no_hold_behind() {
    let (master, _sentinel, client) = sentinel_client();
    let lock = client
        .lock_with("resent-acquire", reentrant(Duration::from_secs(30), true))
        .unwrap();
    let outer = lock.acquire().unwrap();
    let busy = busy_for(&master, Duration::from_millis(500));
    let inner = lock.acquire_timeout(Duration::from_secs(5));
    busy.join().unwrap();
    if let Ok(inner) = inner {
        inner.release().unwrap();
    }
    outer.release().unwrap();
    let observer = Client::open(&master.url()).unwrap();
    wait_until(
        "the lock is free after every guard was released",
        Duration::from_secs(5),
        || !observer.is_locked("resent-acquire").unwrap_or(true),
    );
}

#[test]
fn waiters_and_holders_of_both_kinds_exclude_each_other() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let plain = client.lock("mixed").unwrap();
    let nested = client
        .lock_with("mixed", reentrant(Duration::from_secs(30), true))
        .unwrap();
    let g = plain.acquire().unwrap();
    assert!(nested.try_acquire().unwrap().is_none());
    let waiter = {
        let client = Client::open(&server.url()).unwrap();
        thread::spawn(move || {
            let nested = client
                .lock_with("mixed", reentrant(Duration::from_secs(30), true))
                .unwrap();
            let g = nested.acquire_timeout(Duration::from_secs(10)).unwrap();
            g.release().unwrap();
        })
    };
    wait_for_waiter(&server, "mixed");
    g.release().unwrap();
    waiter.join().unwrap();
    let h = nested.acquire().unwrap();
    assert!(plain.try_acquire().unwrap().is_none());
    h.release().unwrap();
    let mut admin = server.admin();
    let kind: String = redis::cmd("TYPE")
        .arg(key("mixed"))
        .query(&mut admin)
        .unwrap();
    assert!(kind == "none" || kind == "string", "left {kind}");
}

/// Renewals read the lock key with commands that answer an error for a key
/// of another type (src/scripts/head.lua, extend_hold): a reentrant hold
/// whose key became a plain lock is lost, and the plain lock that took it
/// keeps its key. A hold whose key lost its expiry (PERSIST by hand) gets
/// one back when it is extended, as before Redis 7's PEXPIRE ... GT, which
/// alone would leave such a key without one.
#[test]
fn renewals_read_a_key_of_another_type_as_gone_and_give_a_persisted_key_an_expiry() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let held = client
        .lock_with("turned-plain", reentrant(Duration::from_secs(6), true))
        .unwrap()
        .acquire()
        .unwrap();
    let other = Client::open(&server.url()).unwrap();
    assert!(other.force_unlock("turned-plain").unwrap());
    let plain = other
        .lock_with(
            "turned-plain",
            LockOptions::new().ttl(Duration::from_secs(30)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    wait_until(
        "the reentrant hold is reported lost",
        Duration::from_secs(10),
        || held.lost(),
    );
    assert!(plain.check().is_ok(), "the plain hold lost its lock");
    let kind: String = redis::cmd("TYPE")
        .arg(key("turned-plain"))
        .query(&mut admin)
        .unwrap();
    assert_eq!(kind, "string");

    let kept = client
        .lock_with("persisted", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap()
        .acquire()
        .unwrap();
    let persisted: i64 = redis::cmd("PERSIST")
        .arg(key("persisted"))
        .query(&mut admin)
        .unwrap();
    assert_eq!(persisted, 1);
    kept.extend(Duration::from_secs(20)).unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key("persisted"))
        .query(&mut admin)
        .unwrap();
    assert!(pttl > 0 && pttl <= 20_000, "PTTL {pttl} after the extend");
}
