//! Waiting without a herd: a release wakes the one waiter that is to get
//! the lock, not every waiter. Waiters queue in Redis (`P:{N}:q`, one
//! entry per waiting acquisition); a release hands the lock to the first
//! live entry and wakes only that waiter. A waiter that gives up leaves
//! the queue; one that dies is skipped once its entry runs out, and costs
//! the others at most one re-check period. Every test uses real
//! redis-server processes; the dead waiter is a `latchkey hold` process
//! killed with SIGKILL.

mod support;

use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, LockOptions};
use support::{scripts_run, tool, wait_until, RedisServer};

const LONG_TTL: Duration = Duration::from_secs(30);

fn queue_key(name: &str) -> String {
    format!("latchkey:{{{name}}}:q")
}

/// The waiters queued on lock `name`, live or not.
fn queued(server: &RedisServer, name: &str) -> usize {
    redis::cmd("ZCARD")
        .arg(queue_key(name))
        .query(&mut server.admin())
        .unwrap()
}

/// Waits until `count` more scripts than `since` have run: each waiter
/// makes two attempts before it parks (the first, and one right after it
/// subscribed), so `2 * waiters` scripts mean they are all parked.
fn wait_for_scripts(server: &RedisServer, since: u64, count: u64) {
    wait_until("the waiters parked", Duration::from_secs(60), || {
        scripts_run(server) >= since + count
    });
}

// Before the queue, every release woke every waiter and each of them ran
// an acquire: 16 handoffs ran 150 scripts or more (one release, then
// 16 + 15 + ... attempts).
#[test]
fn a_release_wakes_one_waiter_not_every_waiter() {
    const WAITERS: u64 = 16;
    let server = RedisServer::start();
    let clients: Vec<Client> = (0..2)
        .map(|_| Client::open(&server.url()).unwrap())
        .collect();
    let options = LockOptions::new().ttl(LONG_TTL);
    let holder = clients[0].lock_with("herd", options.clone()).unwrap();
    let guard = holder.acquire().unwrap();
    let before = scripts_run(&server);
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let lock = clients[(i % 2) as usize]
                .lock_with("herd", options.clone())
                .unwrap();
            thread::spawn(move || {
                let guard = lock.acquire_timeout(Duration::from_secs(120)).unwrap();
                guard.release().unwrap();
            })
        })
        .collect();
    wait_for_scripts(&server, before, 2 * WAITERS);
    let parked = scripts_run(&server);
    guard.release().unwrap();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    // The first release, then per waiter its acquire and its release; a
    // few more for renewals and re-checks on a slow machine.
    let ran = scripts_run(&server) - parked;
    assert!(
        ran <= 1 + 2 * WAITERS + WAITERS / 2,
        "{ran} scripts for {WAITERS} handoffs: releases woke more than the next waiter"
    );
    assert_eq!(queued(&server, "herd"), 0, "every waiter left the queue");
}

#[test]
fn a_waiter_that_times_out_or_only_tries_leaves_no_entry() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let lock = client.lock("leaves").unwrap();
    let _held = lock.acquire().unwrap();
    let other = client.lock("leaves").unwrap();
    assert!(other.try_acquire().unwrap().is_none());
    assert_eq!(queued(&server, "leaves"), 0, "a single try never queues");
    let late = other.acquire_timeout(Duration::from_millis(300));
    assert_eq!(late.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(queued(&server, "leaves"), 0, "a timed-out waiter left");
}

/// A `latchkey hold NAME` process: it waits for the lock, then holds it
/// until its input ends.
fn hold_process(server: &RedisServer, name: &str) -> Child {
    tool()
        .args(["--url", &server.url(), "hold", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

// A waiter killed while queued is at the head of the queue when the lock
// is released: the release hands the lock to it, and nobody comes. The
// next waiter looks again within its re-check period (at most 5 s while
// queued) and takes the lock then, long before the 30 s holder ttl.
#[test]
fn a_waiter_killed_while_queued_costs_the_next_at_most_one_recheck() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let options = LockOptions::new().ttl(LONG_TTL);
    let guard = client
        .lock_with("killed", options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let before = scripts_run(&server);
    let mut doomed = hold_process(&server, "killed");
    wait_for_scripts(&server, before, 2);
    let lock = client.lock_with("killed", options).unwrap();
    let waiter = thread::spawn(move || {
        let guard = lock.acquire_timeout(Duration::from_secs(60)).unwrap();
        let got_it = Instant::now();
        guard.release().unwrap();
        got_it
    });
    wait_for_scripts(&server, before, 4);
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let released = Instant::now();
    guard.release().unwrap();
    let waited = waiter.join().unwrap() - released;
    assert!(
        waited < Duration::from_secs(15),
        "the live waiter got the lock {waited:?} after the release"
    );
}
