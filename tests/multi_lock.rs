//! Multi-locks against a real redis-server: processes taking overlapping
//! sets in opposite orders never deadlock and never overlap, an
//! acquisition that cannot take every lock holds none, a lost lease loses
//! the whole, and what is refused.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::RedisServer;

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

/// Three threads with their own clients take {x, y}, {y, x} and {y, z}
/// over and over (named in opposite orders): a lock taken one by one in
/// the caller's order would deadlock the first two; here all finish, and
/// no two holders of one name overlap.
#[test]
fn overlapping_sets_in_opposite_orders_never_deadlock_or_overlap() {
    let server = RedisServer::start();
    let held: Arc<[AtomicBool; 3]> = Arc::new(Default::default());
    let sets: [&[&str]; 3] = [&["x", "y"], &["y", "x"], &["z", "y"]];
    let workers: Vec<_> = sets
        .iter()
        .map(|names| {
            let url = server.url();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let held = held.clone();
            thread::spawn(move || {
                let client = Client::open(&url).unwrap();
                let multi = client.multi_lock(&names).unwrap();
                let slots: Vec<usize> = multi
                    .names()
                    .iter()
                    .map(|n| usize::from(n.as_bytes()[0] - b'x'))
                    .collect();
                for _ in 0..25 {
                    let guard = multi
                        .acquire_timeout(Duration::from_secs(30))
                        .expect("no deadlock");
                    for &slot in &slots {
                        assert!(!held[slot].swap(true, Ordering::SeqCst), "two holders");
                    }
                    thread::yield_now();
                    for &slot in &slots {
                        held[slot].store(false, Ordering::SeqCst);
                    }
                    guard.check().unwrap();
                    guard.release().unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

/// When one lock is held elsewhere, a try or a timed acquisition takes
/// none: the locks before it in the order are given back.
#[test]
fn all_or_nothing() {
    let server = RedisServer::start();
    let client = client(&server);
    let middle = client.lock("b").unwrap().acquire().unwrap();
    let multi = client.multi_lock(&["c", "b", "a"]).unwrap();
    assert!(multi.try_acquire().unwrap().is_none());
    assert!(!client.is_locked("a").unwrap(), "a was given back");
    let err = multi
        .acquire_timeout(Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("'b'"), "{err}");
    assert!(!client.is_locked("a").unwrap() && !client.is_locked("c").unwrap());
    middle.release().unwrap();
    let all = multi.try_acquire().unwrap().expect("all free");
    assert_eq!(all.names(), ["a", "b", "c"]);
    let tokens: Vec<u64> = all.guards().iter().map(|g| g.fencing_token()).collect();
    assert!(tokens.iter().all(|&t| t > 0));
    drop(all);
    assert!(
        !client.is_locked("b").unwrap(),
        "dropping releases every lock"
    );
}

/// Losing any one lease loses the whole multi-lock.
#[test]
fn one_lost_lease_loses_the_whole() {
    let server = RedisServer::start();
    let client = client(&server);
    let options = LockOptions::new().ttl(Duration::from_millis(600));
    let multi = client.multi_lock_with(&["p", "q"], options).unwrap();
    let guard = multi.acquire().unwrap();
    assert!(client.force_unlock("q").unwrap());
    support::wait_until("the loss is seen", Duration::from_secs(20), || guard.lost());
    assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
    let err = guard.release().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotHeld);
    assert!(!client.is_locked("p").unwrap(), "the held one was released");
}

#[test]
fn bad_input_is_refused() {
    let server = RedisServer::start();
    let client = client(&server);
    let none: [&str; 0] = [];
    assert_eq!(
        client.multi_lock(&none).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        client.multi_lock(&["a", ""]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let reentrant = LockOptions::new().reentrant(true);
    assert_eq!(
        client
            .multi_lock_with(&["a"], reentrant)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    let too_many: Vec<String> = (0..=latchkey::MAX_MULTI_LOCK_NAMES)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        client.multi_lock(&too_many).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        client.multi_lock(&["b", "a", "b"]).unwrap().names(),
        ["a", "b"]
    );
}
