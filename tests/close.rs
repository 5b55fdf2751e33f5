//! Closing a client ends what was made through it, the same way in all four
//! languages (this file is the Rust side; ffi-tests, the Python and the Go
//! tests run the same scenario): its live holds are released in Redis at
//! once and their guards say "not held" (an ending, not a loss), and its
//! waits return promptly with `ErrorKind::Closed`.
//!
//! Before `Client::close` existed, only Go's binding released on close (in
//! its own loop); a Rust, C or Python client that was dropped or freed left
//! its holds held and renewed, and a waiter parked for ever.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::{wait_for_waiter, RedisServer};

#[test]
fn close_releases_every_hold_and_ends_every_wait() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let other = Client::open(&server.url()).unwrap();
    let lost_calls = Arc::new(AtomicUsize::new(0));
    let counted = lost_calls.clone();
    let held_lock = client
        .lock_with(
            "close-held",
            LockOptions::new().on_lost(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    let guard = held_lock.acquire().unwrap();
    let unrenewed = client
        .lock_with("close-unrenewed", LockOptions::new().auto_renew(false))
        .unwrap()
        .acquire()
        .unwrap();

    // A waiter of the client, parked behind another client's hold.
    let blocker = other.lock("close-waited").unwrap().acquire().unwrap();
    let waited = client.lock("close-waited").unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let outcome = waited.acquire();
        let _ = done_tx.send(outcome.map(|_| ()).map_err(|e| e.kind()));
    });
    wait_for_waiter(&server, "close-waited");

    client.close().unwrap();
    assert!(client.is_closed());

    // The holds are free in Redis at once, for anyone.
    for name in ["close-held", "close-unrenewed"] {
        let fresh = other.lock(name).unwrap().try_acquire().unwrap();
        assert!(fresh.is_some(), "{name} is still held after close");
    }
    // The guards say "not held", not "lost".
    for g in [&guard, &unrenewed] {
        assert_eq!(g.check().unwrap_err().kind(), ErrorKind::NotHeld);
        assert!(!g.lost());
        assert_eq!(g.remaining(), Duration::ZERO);
        assert!(!g.confirm().unwrap());
    }
    // The waiter ends with Closed, without waiting for the blocker.
    let outcome = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter returns after close");
    assert_eq!(outcome, Err(ErrorKind::Closed));
    waiter.join().unwrap();
    drop(blocker);

    // Later acquires fail at once; releasing a closed guard says not held
    // and touches nothing in Redis.
    assert_eq!(
        held_lock.try_acquire().unwrap_err().kind(),
        ErrorKind::Closed
    );
    let retaken = other.lock("close-held").unwrap().acquire().unwrap();
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::NotHeld);
    retaken.check().unwrap();
    assert!(
        retaken.confirm().unwrap(),
        "a closed guard's release touched a later hold"
    );
    assert_eq!(
        lost_calls.load(Ordering::SeqCst),
        0,
        "a close is not a loss"
    );
    // Closing again does nothing.
    client.close().unwrap();
}

#[test]
fn an_acquire_racing_a_close_never_leaves_a_hold_behind() {
    let server = RedisServer::start();
    let observer = Client::open(&server.url()).unwrap();
    for round in 0..20 {
        let client = Client::open(&server.url()).unwrap();
        let name = format!("race-{round}");
        let lock = client.lock(&name).unwrap();
        let acquirer = thread::spawn(move || lock.acquire());
        client.close().unwrap();
        match acquirer.join().unwrap() {
            // Acquired before the close: the close released it.
            Ok(guard) => assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Closed, "{e}"),
        }
        assert!(
            !observer.is_locked(&name).unwrap(),
            "round {round}: a hold outlived the close"
        );
    }
}

/// A close while Redis does not answer: it returns the unconfirmed release
/// (a connection error) instead of hanging, the guards already say "not
/// held", and the holds are given back in the background once Redis
/// answers again, not left for their ttl.
#[test]
fn a_close_while_redis_is_silent_gives_the_holds_back_later() {
    let server = RedisServer::start();
    let client = Client::builder(&server.url())
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let observer = Client::open(&server.url()).unwrap();
    let guards: Vec<_> = (0..5)
        .map(|i| {
            client
                .lock_with(
                    &format!("silent-{i}"),
                    LockOptions::new().ttl(Duration::from_secs(60)),
                )
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    server.signal(libc::SIGSTOP);
    let closed = client.close();
    server.signal(libc::SIGCONT);
    let err = closed.expect_err("the releases were not confirmed");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    for guard in &guards {
        assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::NotHeld);
    }
    support::wait_until("the holds are given back", Duration::from_secs(20), || {
        (0..5).all(|i| !observer.is_locked(&format!("silent-{i}")).unwrap())
    });
}
