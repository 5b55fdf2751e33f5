//! The lock's behaviour against a real redis-server: acquire, try, timeout,
//! cancel, reentrancy, extend, release of a lost lease, inspection, fencing,
//! bad input, and script reloading.

mod support;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::{scripts_run, RedisServer};

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

#[test]
fn acquire_release_and_try() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.lock("basic").unwrap();
    let other = client.lock("basic").unwrap();

    let guard = lock.acquire().unwrap();
    assert_eq!(guard.name(), "basic");
    assert_eq!(guard.token().len(), 32);
    assert!(guard.remaining() > Duration::from_secs(25));
    assert!(guard.check().is_ok());
    assert!(!guard.lost());
    assert!(
        other.try_acquire().unwrap().is_none(),
        "a held lock cannot be taken"
    );

    let info = client.inspect("basic").unwrap().expect("held");
    assert_eq!(info.owner_token, guard.token());
    assert_eq!(info.fencing_token, guard.fencing_token());
    assert!(!info.reentrant);
    assert!(info.ttl.unwrap() <= Duration::from_secs(30));
    assert!(client.is_locked("basic").unwrap());

    guard.release().unwrap();
    assert!(client.inspect("basic").unwrap().is_none());
    let again = other.try_acquire().unwrap().expect("free after release");
    drop(again);
    assert!(!client.is_locked("basic").unwrap(), "drop releases");
}

#[test]
fn fencing_tokens_strictly_increase() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.lock("fenced").unwrap();
    let mut last = 0;
    for _ in 0..50 {
        let guard = lock.acquire().unwrap();
        assert!(guard.fencing_token() > last);
        last = guard.fencing_token();
        guard.release().unwrap();
    }
    // Tokens are never below the server clock in microseconds.
    let mut admin = server.admin();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut admin).unwrap();
    assert!(last <= secs * 1_000_000 + micros);
    assert!(last > (secs - 60) * 1_000_000);
}

#[test]
fn fenced_write_refuses_older_tokens() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.lock("writer").unwrap();
    let first = lock.acquire().unwrap();
    let old_token = first.fencing_token();
    first.release().unwrap();
    let second = lock.acquire().unwrap();
    let w = client
        .fenced_write("store", second.fencing_token(), b"new")
        .unwrap();
    assert!(w.written);
    let again = client
        .fenced_write("store", second.fencing_token(), b"newer")
        .unwrap();
    assert!(again.written, "the same holder may write again");
    let stale = client.fenced_write("store", old_token, b"stale").unwrap();
    assert!(!stale.written);
    assert_eq!(stale.highest_token, second.fencing_token());
    assert_eq!(
        client.fenced_read("store").unwrap(),
        Some((second.fencing_token(), b"newer".to_vec()))
    );
    assert_eq!(client.fenced_read("never-written").unwrap(), None);
    assert_eq!(
        client.fenced_write("store", 0, b"x").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn timeout_reports_the_holder() {
    let server = RedisServer::start();
    let client = client(&server);
    let _held = client.lock("busy").unwrap().acquire().unwrap();
    let err = client
        .lock("busy")
        .unwrap()
        .acquire_timeout(Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("busy"), "{err}");
    let zero = client
        .lock("busy")
        .unwrap()
        .acquire_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::Timeout);
}

#[test]
fn a_waiter_is_woken_by_the_release() {
    let server = RedisServer::start();
    let client = client(&server);
    // The holder's lease is long: only the release message can wake the
    // waiter before its own (generous) deadline.
    let holder = client
        .lock_with("handoff", LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter_client = client.clone();
    let waiter = thread::spawn(move || {
        let lock = waiter_client.lock("handoff").unwrap();
        tx.send(()).unwrap();
        lock.acquire_timeout(Duration::from_secs(30))
            .map(|g| g.fencing_token())
    });
    rx.recv().unwrap();
    let holder_token = holder.fencing_token();
    holder.release().unwrap();
    let token = waiter.join().unwrap().unwrap();
    assert!(token > holder_token);
}

#[test]
fn cancel_interrupts_a_waiting_acquire() {
    let server = RedisServer::start();
    let client = client(&server);
    let _held = client.lock("cancel").unwrap().acquire().unwrap();
    let cancel = CancelToken::new();
    let remote = cancel.clone();
    let waiter_client = client.clone();
    let waiter = thread::spawn(move || {
        let lock = waiter_client.lock("cancel").unwrap();
        lock.acquire_with(None, Some(&cancel)).unwrap_err()
    });
    // Cancel once the waiter is parked: its subscription shows on the server.
    support::wait_for_waiter(&server, "cancel");
    remote.cancel();
    let err = waiter.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Cancelled);

    let already = CancelToken::new();
    already.cancel();
    let err = client
        .lock("cancel")
        .unwrap()
        .acquire_with(Some(Duration::from_secs(5)), Some(&already))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn reentrant_locks_nest_per_handle() {
    let server = RedisServer::start();
    let client = client(&server);
    let options = LockOptions::new().reentrant(true);
    let lock = client.lock_with("nested", options.clone()).unwrap();
    let other = client.lock_with("nested", options).unwrap();
    let outer = lock.acquire().unwrap();
    let inner = lock.acquire_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(outer.fencing_token(), inner.fencing_token());
    // One owner (the handle), two holds: each guard has its own token.
    assert_ne!(outer.token(), inner.token());
    let info = client.inspect("nested").unwrap().unwrap();
    assert!(info.reentrant);
    assert_eq!(info.hold_count, 2);
    assert!(
        other.try_acquire().unwrap().is_none(),
        "another handle is another owner"
    );
    inner.release().unwrap();
    assert!(
        other.try_acquire().unwrap().is_none(),
        "still held by the outer hold"
    );
    outer.release().unwrap();
    assert!(other.try_acquire().unwrap().is_some());
}

#[test]
fn extend_and_renewal_keep_the_lease() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client
        .lock_with("short", LockOptions::new().ttl(Duration::from_millis(600)))
        .unwrap();
    let guard = lock.acquire().unwrap();
    // Let several ttls pass: the watchdog must keep renewing. Waiting for
    // the server's own clock to move well past the ttl.
    let deadline = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(guard.check().is_ok(), "{:?}", guard.check());
    assert!(client.is_locked("short").unwrap());

    let manual = client
        .lock_with(
            "manual",
            LockOptions::new()
                .ttl(Duration::from_secs(2))
                .auto_renew(false),
        )
        .unwrap()
        .acquire()
        .unwrap();
    manual.extend(Duration::from_secs(20)).unwrap();
    assert!(manual.remaining() > Duration::from_secs(10));
    let ttl = client.inspect("manual").unwrap().unwrap().ttl.unwrap();
    assert!(ttl > Duration::from_secs(10));
    assert_eq!(
        manual.extend(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    guard.release().unwrap();
    manual.release().unwrap();
}

#[test]
fn losing_the_lease_is_reported_everywhere() {
    let server = RedisServer::start();
    let client = client(&server);
    let (tx, rx) = mpsc::channel();
    let options = LockOptions::new()
        .ttl(Duration::from_millis(600))
        .on_lost(move |lost| tx.send((lost.name.clone(), lost.reason.clone())).unwrap());
    let guard = client
        .lock_with("victim", options)
        .unwrap()
        .acquire()
        .unwrap();
    assert!(client.force_unlock("victim").unwrap());
    let (name, reason) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback runs");
    assert_eq!(name, "victim");
    assert!(
        reason.contains("expired or held by another owner"),
        "{reason}"
    );
    assert!(guard.lost());
    assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(guard.remaining(), Duration::ZERO);
    assert_eq!(
        guard.extend(Duration::from_secs(1)).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::NotHeld);
    assert!(!client.force_unlock("victim").unwrap());
}

#[test]
fn releasing_someone_elses_lock_never_deletes_it() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client
        .lock_with(
            "expired",
            LockOptions::new()
                .ttl(Duration::from_millis(50))
                .auto_renew(false),
        )
        .unwrap();
    let stale = lock.acquire().unwrap();
    // Wait until Redis itself expired the key, then let someone else take it.
    let next = client
        .lock("expired")
        .unwrap()
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(stale.lost());
    assert_eq!(stale.release().unwrap_err().kind(), ErrorKind::NotHeld);
    let info = client
        .inspect("expired")
        .unwrap()
        .expect("still held by the new owner");
    assert_eq!(info.owner_token, next.token());
}

#[test]
fn bad_input_is_an_invalid_argument() {
    let server = RedisServer::start();
    let client = client(&server);
    let invalid = |r: latchkey::Result<latchkey::Lock>| r.unwrap_err().kind();
    assert_eq!(invalid(client.lock("")), ErrorKind::InvalidArgument);
    assert_eq!(invalid(client.lock("a\0b")), ErrorKind::InvalidArgument);
    assert_eq!(
        invalid(client.lock(&"n".repeat(latchkey::MAX_NAME_LEN + 1))),
        ErrorKind::InvalidArgument
    );
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_secs(u64::MAX / 4),
    ] {
        let err = client
            .lock_with("x", LockOptions::new().ttl(ttl))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("ttl"), "{err}");
    }
    let err = client
        .lock_with(
            "x",
            LockOptions::new()
                .ttl(Duration::from_secs(1))
                .renew_every(Duration::from_secs(2)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    for url in ["", "localhost:6379", "redis://", "http://x", "rediss://"] {
        assert_eq!(
            Client::open(url).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{url}"
        );
    }
    // Names are data, never script text.
    let odd = "x'); redis.call('FLUSHALL') --{}}";
    let guard = client.lock(odd).unwrap().acquire().unwrap();
    assert!(client.is_locked(odd).unwrap());
    guard.release().unwrap();
}

#[test]
fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.lock("flushed").unwrap();
    lock.acquire().unwrap().release().unwrap();
    let mut admin = server.admin();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut admin).unwrap();
    let guard = lock.acquire().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut admin).unwrap();
    guard.release().unwrap();
}

#[test]
fn prefixes_separate_lock_spaces() {
    let server = RedisServer::start();
    let a = Client::builder(&server.url())
        .prefix("app-a")
        .build()
        .unwrap();
    let b = Client::builder(&server.url())
        .prefix("app-b")
        .build()
        .unwrap();
    let _ga = a.lock("same").unwrap().acquire().unwrap();
    let gb = b.lock("same").unwrap().try_acquire().unwrap();
    assert!(gb.is_some());
}

#[test]
fn many_threads_share_one_client() {
    let server = RedisServer::start();
    let client = client(&server);
    let counter = Arc::new(parking_lot::Mutex::new((0u64, false)));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let counter = counter.clone();
            thread::spawn(move || {
                let lock = client.lock("shared").unwrap();
                for _ in 0..100 {
                    let guard = lock.acquire().unwrap();
                    {
                        let mut c = counter.lock();
                        assert!(!c.1, "two holders at once");
                        c.1 = true;
                    }
                    thread::yield_now();
                    {
                        let mut c = counter.lock();
                        c.0 += 1;
                        c.1 = false;
                    }
                    guard.release().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter.lock().0, 800);
}

/// A holder and a waiter on one client: exercises the pool and the pub/sub
/// listener over whatever transport the URL names.
fn handoff_over(url: &str) {
    let client = Client::open(url).unwrap();
    let guard = client.lock("transport").unwrap().acquire().unwrap();
    let waiter_client = client.clone();
    let waiter = thread::spawn(move || {
        let lock = waiter_client.lock("transport").unwrap();
        lock.acquire_timeout(Duration::from_secs(20))
            .map(|g| g.fencing_token())
    });
    // The holder's 30 s lease would outlast the waiter's deadline: only the
    // release message can hand the lock over in time.
    let mut admin = redis::Client::open(url).unwrap().get_connection().unwrap();
    loop {
        let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("latchkey:{transport}:ch")
            .query(&mut admin)
            .unwrap();
        if matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0) {
            break;
        }
    }
    let token = guard.fencing_token();
    guard.release().unwrap();
    assert!(waiter.join().unwrap().unwrap() > token);
}

#[test]
fn unix_sockets_work() {
    let dir = support::TempDir::new("unix");
    let socket = dir.0.join("redis.sock");
    let server = RedisServer::start_with(&[
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
    ]);
    let _ = &server;
    handoff_over(&format!("unix://{}", socket.display()));
}

#[test]
fn passwords_are_used_and_never_shown() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    handoff_over(&format!("redis://:s3cret-pw@127.0.0.1:{}", server.port));

    let wrong = Client::open(&format!("redis://:wrong-pw@127.0.0.1:{}", server.port)).unwrap();
    let err = wrong.lock("x").unwrap().try_acquire().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
    assert!(!format!("{wrong:?}").contains("wrong-pw"));
}

#[test]
fn a_release_hands_the_lock_to_a_waiter_not_back_to_the_releaser() {
    let server = RedisServer::start();
    let releaser = client(&server);
    let waiter_client = client(&server);
    let mut reserved = 0;
    let rounds = 20;
    for round in 0..rounds {
        let name = format!("fair-{round}");
        let lock = releaser.lock(&name).unwrap();
        let guard = lock.acquire().unwrap();
        // The waiter keeps what it gets until the releaser has tried: the
        // lock is then either reserved for it or held by it, never free
        // again by the time the releaser asks.
        let (tried_tx, tried_rx) = mpsc::channel::<()>();
        let waiter = {
            let client = waiter_client.clone();
            let name = name.clone();
            thread::spawn(move || {
                let guard = client
                    .lock(&name)
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(20))
                    .unwrap();
                let _ = tried_rx.recv();
                guard.release().unwrap();
            })
        };
        support::wait_for_waiter(&server, &name);
        // Release and at once try to take it back, as a busy loop would:
        // the lock is reserved for the woken waiter (or already its), so
        // the releaser's immediate attempt finds it held. (Asserted on the
        // releaser's next command, not on how fast the waiter's thread is
        // scheduled, which a loaded machine can delay past the window.)
        guard.release().unwrap();
        match lock.acquire_timeout(Duration::ZERO) {
            Err(e) if e.kind() == ErrorKind::Timeout => reserved += 1,
            Ok(again) => drop(again),
            Err(e) => panic!("{e}"),
        }
        tried_tx.send(()).unwrap();
        waiter.join().unwrap();
    }
    // Without the handoff reservation the releaser, one round trip ahead,
    // wins nearly every round.
    assert!(
        reserved >= rounds * 3 / 4,
        "the lock was reserved for the waiter in only {reserved} of {rounds} rounds"
    );
}

#[test]
fn a_waiter_does_not_poll() {
    let server = RedisServer::start();
    let client = client(&server);
    let _held = client
        .lock_with("quiet", LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    let before = scripts_run(&server);
    let err = client
        .lock("quiet")
        .unwrap()
        .acquire_timeout(Duration::from_millis(1500))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // One attempt, one more right after subscribing, one at the deadline.
    let attempts = scripts_run(&server) - before;
    assert!(
        attempts <= 3,
        "a waiter ran {attempts} scripts while the lock stayed held"
    );
}

#[test]
fn many_leases_are_renewed_together_and_only_the_lost_one_is_reported() {
    let server = RedisServer::start();
    let client = client(&server);
    let (tx, rx) = mpsc::channel();
    let guards: Vec<_> = (0..300)
        .map(|i| {
            let tx = tx.clone();
            let options = LockOptions::new()
                .ttl(Duration::from_secs(3))
                .reentrant(i % 2 == 0)
                .on_lost(move |lost| tx.send(lost.name.clone()).unwrap());
            client
                .lock_with(&format!("many-{i}"), options)
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    assert!(client.force_unlock("many-7").unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "many-7");
    // A ttl of seconds: a loaded machine can stall a renewal thread for
    // most of a second. Several more renewal rounds (every second): nobody
    // else is lost, and the 299 leases are renewed together, a few scripts
    // per round, not one script per lease (about 299 per round).
    let scripts_before = scripts_run(&server);
    let until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(50));
    }
    let scripts = scripts_run(&server) - scripts_before;
    assert!(
        (1..299).contains(&scripts),
        "{scripts} scripts in 3.5 s of renewing 299 leases"
    );
    assert!(rx.try_recv().is_err(), "only many-7 was lost");
    for (i, guard) in guards.iter().enumerate() {
        assert_eq!(guard.lost(), i == 7, "lease {i}");
    }
    assert!(client.is_locked("many-299").unwrap());
}

/// A release while the watchdog's renewal of the same lease is in flight.
/// The renewal's answer came after the release had marked the lease
/// released, so the watchdog took the lease for one confirmed too late and
/// gave the hold back in the background; when that give-back reached Redis
/// before the holder's own release, the key was gone and the release
/// reported `NotHeld` for a lock it did hold (1 of 20 repeat runs of
/// claims::renew_every_sets_the_renewal_period, "lock 'renew-often' was no
/// longer held by this owner"). Here many releases race a renewal every
/// 5 ms; every one must succeed.
#[test]
fn a_release_racing_a_renewal_is_never_told_the_lock_was_lost() {
    let server = RedisServer::start();
    // One connection: the release waits for the renewal's round trip to
    // end, which puts it right where the race is.
    let client = Client::builder(&server.url()).pool_size(1).build().unwrap();
    let options = LockOptions::new()
        .ttl(Duration::from_secs(30))
        .renew_every(Duration::from_millis(1));
    let lock = client.lock_with("renew-race", options).unwrap();
    for round in 0..1000 {
        let guard = lock.acquire().unwrap();
        // Let a renewal or two go out, so that one is in flight now and then.
        thread::sleep(Duration::from_micros(round % 3000));
        guard
            .release()
            .unwrap_or_else(|e| panic!("round {round}: the release of a held lock failed: {e}"));
    }
}
