//! The semaphore against a real redis-server: never more permits held than
//! it has, a dead holder's permits back after its lease, renewals, lost
//! reports, wake-ups by release, several permits per hold, a size changed
//! while in use, inspection, and what is refused.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::{scripts_run, RedisServer};

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

/// Six threads, each with its own client, take one or two permits of a
/// semaphore of three, over and over: the permits held at once, counted
/// by the holders themselves, never exceed three, and the fencing tokens
/// of one semaphore never repeat.
#[test]
fn never_more_permits_held_than_the_semaphore_has() {
    let server = RedisServer::start();
    let in_use = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..6u32)
        .map(|i| {
            let url = server.url();
            let (in_use, most) = (in_use.clone(), most.clone());
            thread::spawn(move || {
                let client = Client::open(&url).unwrap();
                let pool = client.semaphore("bounded", 3).unwrap();
                let permits = 1 + i % 2;
                let mut tokens = Vec::new();
                for _ in 0..40 {
                    let guard = pool.acquire(permits).unwrap();
                    let now = in_use.fetch_add(permits, Ordering::SeqCst) + permits;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokens.push(guard.fencing_token());
                    thread::yield_now();
                    in_use.fetch_sub(permits, Ordering::SeqCst);
                    guard.release().unwrap();
                }
                tokens
            })
        })
        .collect();
    let mut tokens: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(most.load(Ordering::SeqCst) <= 3, "more than 3 permits held");
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "the permits were never shared"
    );
    let count = tokens.len();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), count, "a fencing token repeated");
}

#[test]
fn several_permits_per_hold_and_what_is_available() {
    let server = RedisServer::start();
    let client = client(&server);
    let pool = client.semaphore("pool", 5).unwrap();
    let three = pool.acquire(3).unwrap();
    assert!(three.token().starts_with("3:"));
    assert_eq!(pool.available().unwrap(), 2);
    assert!(pool.try_acquire(3).unwrap().is_none(), "only 2 are free");
    let two = pool.try_acquire(2).unwrap().expect("2 are free");
    assert_eq!(pool.available().unwrap(), 0);
    let info = pool.inspect().unwrap();
    assert_eq!((info.in_use, info.hold_count), (5, 2));
    assert_eq!(info.fencing_token, two.fencing_token());
    let listed: Vec<(String, u64)> = info
        .holders
        .iter()
        .map(|h| (h.token.clone(), h.permits))
        .collect();
    assert!(listed.contains(&(three.token().to_string(), 3)));
    assert!(listed.contains(&(two.token().to_string(), 2)));
    three.release().unwrap();
    assert_eq!(pool.available().unwrap(), 3);
    drop(two);
    assert_eq!(pool.available().unwrap(), 5, "dropping a guard releases");
}

/// A holder that dies (its lease is not renewed and never released) gives
/// its permits back when its lease ends, and not before.
#[test]
fn a_dead_holders_permits_come_back_after_its_lease() {
    let server = RedisServer::start();
    let client = client(&server);
    let once = LockOptions::new()
        .ttl(Duration::from_millis(800))
        .auto_renew(false);
    let dying = client.semaphore_with("crash", 1, once).unwrap();
    let forgotten = dying.acquire(1).unwrap();
    std::mem::forget(forgotten);
    let pool = client.semaphore("crash", 1).unwrap();
    assert!(
        pool.try_acquire(1).unwrap().is_none(),
        "still within its lease"
    );
    let guard = pool
        .acquire_timeout(1, Duration::from_secs(20))
        .expect("the permit came back after the dead holder's lease");
    guard.check().unwrap();
}

/// A hold's lease is renewed past its ttl, and the semaphore's key lives
/// as long as its longest lease.
#[test]
fn permits_are_renewed_while_held() {
    let server = RedisServer::start();
    let client = client(&server);
    let short = LockOptions::new().ttl(Duration::from_millis(600));
    let pool = client.semaphore_with("renewed", 2, short).unwrap();
    let guard = pool.acquire(1).unwrap();
    let first = pool.inspect().unwrap().holders[0].ttl;
    // Wait for three renewals' worth of time, observed in Redis.
    let started = std::time::Instant::now();
    support::wait_until(
        "the lease outlived three ttls",
        Duration::from_secs(30),
        || started.elapsed() > Duration::from_millis(1800),
    );
    guard.check().unwrap();
    let info = pool.inspect().unwrap();
    assert_eq!(info.in_use, 1, "the permit is still held in Redis");
    assert!(info.holders[0].ttl > Duration::ZERO && first > Duration::ZERO);
    guard.release().unwrap();
}

/// Permits taken away (here by an operator) are reported lost to their
/// holder: the callback runs and `check()` says `Lost`.
#[test]
fn a_permit_taken_away_is_reported_lost() {
    let server = RedisServer::start();
    let client = client(&server);
    let (lost_tx, lost_rx) = mpsc::channel();
    let options = LockOptions::new().ttl(Duration::from_millis(900)).on_lost(
        move |lost: &latchkey::LostLease| {
            let _ = lost_tx.send((lost.name.clone(), lost.token.clone()));
        },
    );
    let pool = client.semaphore_with("taken", 2, options).unwrap();
    let guard = pool.acquire(2).unwrap();
    assert!(pool.force_release_all().unwrap());
    let (name, token) = lost_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a lost report");
    assert_eq!((name.as_str(), token.as_str()), ("taken", guard.token()));
    assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::NotHeld);
}

/// A waiter is woken by a release, not by asking again and again: while it
/// waits for a permit held for 30 s, it runs a handful of scripts.
#[test]
fn a_waiter_is_woken_by_a_release() {
    let server = RedisServer::start();
    let client = client(&server);
    let pool = client.semaphore("woken", 1).unwrap();
    let held = pool.acquire(1).unwrap();
    let before = scripts_run(&server);
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn({
        let client = Client::open(&server.url()).unwrap();
        move || {
            let pool = client.semaphore("woken", 1).unwrap();
            let guard = pool.acquire_timeout(1, Duration::from_secs(25)).unwrap();
            tx.send(guard.fencing_token()).unwrap();
            guard.release().unwrap();
        }
    });
    // The waiter has asked and is listening when its channel has a
    // subscriber.
    support::wait_until("the waiter listens", Duration::from_secs(10), || {
        let subscribers: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("latchkey:sem:{woken}:ch")
            .query(&mut server.admin())
            .unwrap();
        subscribers.first().is_some_and(|(_, n)| *n > 0)
    });
    held.release().unwrap();
    let token = rx.recv_timeout(Duration::from_secs(20)).expect("woken");
    waiter.join().unwrap();
    assert!(token > 0);
    let scripts = scripts_run(&server) - before;
    assert!(scripts <= 8, "the waiter polled: {scripts} scripts");
}

/// A smaller size while permits are in use: the holders keep their
/// permits, and nobody takes one until fewer than the new size are in use.
#[test]
fn a_smaller_size_lets_holders_keep_their_permits() {
    let server = RedisServer::start();
    let client = client(&server);
    let four = client.semaphore("resized", 4).unwrap();
    let mut held: Vec<_> = (0..4).map(|_| four.acquire(1).unwrap()).collect();
    let two = client.semaphore("resized", 2).unwrap();
    assert!(two.try_acquire(1).unwrap().is_none());
    assert_eq!(two.available().unwrap(), 0);
    held.pop().unwrap().release().unwrap();
    held.pop().unwrap().release().unwrap();
    assert!(two.try_acquire(1).unwrap().is_none(), "2 of 2 in use");
    for guard in &held {
        guard.check().unwrap();
    }
    held.pop().unwrap().release().unwrap();
    assert!(two.try_acquire(1).unwrap().is_some());
}

/// A lock and a semaphore of one name are independent.
#[test]
fn a_lock_and_a_semaphore_of_one_name_do_not_meet() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.lock("shared-name").unwrap().acquire().unwrap();
    let permit = client
        .semaphore("shared-name", 1)
        .unwrap()
        .try_acquire(1)
        .unwrap()
        .expect("the semaphore is free");
    lock.check().unwrap();
    assert!(client.inspect("shared-name").unwrap().is_some());
    permit.release().unwrap();
    lock.release().unwrap();
}

#[test]
fn bad_sizes_and_counts_are_refused() {
    let server = RedisServer::start();
    let client = client(&server);
    fn invalid<T>(result: latchkey::Result<T>) -> ErrorKind {
        result.map(drop).unwrap_err().kind()
    }
    assert_eq!(
        invalid(client.semaphore("s", 0)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        invalid(client.semaphore("s", latchkey::MAX_PERMITS + 1)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(invalid(client.semaphore("", 1)), ErrorKind::InvalidArgument);
    let reentrant = LockOptions::new().reentrant(true);
    assert_eq!(
        invalid(client.semaphore_with("s", 1, reentrant)),
        ErrorKind::InvalidArgument
    );
    let pool = client.semaphore("s", 2).unwrap();
    assert_eq!(invalid(pool.try_acquire(0)), ErrorKind::InvalidArgument);
    assert_eq!(invalid(pool.try_acquire(3)), ErrorKind::InvalidArgument);
    assert_eq!(pool.available().unwrap(), 2, "nothing was taken");
}

/// Over Redlock's independent masters a semaphore is not sound: refused
/// with a message that says why.
#[test]
fn redlock_refuses_semaphores() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls).build().unwrap();
    let err = client.semaphore("s", 2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("Redlock"), "{err}");
}
