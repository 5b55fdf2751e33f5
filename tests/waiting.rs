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
use std::sync::mpsc;
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

/// The ids `client.inspect(name)` lists in the queue of the held lock.
fn listed(client: &Client, name: &str) -> Vec<String> {
    let info = client.inspect(name).unwrap().expect("the lock is held");
    info.queue.into_iter().map(|w| w.id).collect()
}

// What inspect says about the queue: the live waiters in the order a
// release hands the lock on (the first parked waiter first, as long as no
// waiter asked again since: each asks every 5 s, all with the same
// period), each with a `w:` id and an entry that runs out within the 15 s
// entry lease; the waiter a release handed the lock to is gone from it,
// and so is a waiter that timed out.
#[test]
fn inspect_lists_the_queue_in_the_order_a_release_hands_the_lock_on() {
    const NAME: &str = "inspected-queue";
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let options = LockOptions::new().ttl(LONG_TTL);
    let guard = client
        .lock_with(NAME, options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    assert!(listed(&client, NAME).is_empty(), "nobody waits yet");
    // Each waiter says which it is and its hold token when it takes the
    // lock, then holds it until told to release.
    let (took_tx, took_rx) = mpsc::channel::<(usize, String, mpsc::Sender<()>)>();
    let mut waiters = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for i in 0..3 {
        let before = scripts_run(&server);
        let lock = client.lock_with(NAME, options.clone()).unwrap();
        let took = took_tx.clone();
        waiters.push(thread::spawn(move || {
            let guard = lock.acquire_timeout(Duration::from_secs(120)).unwrap();
            let (release_tx, release_rx) = mpsc::channel();
            took.send((i, guard.token().to_string(), release_tx))
                .unwrap();
            release_rx.recv().unwrap();
            guard.release().unwrap();
        }));
        // Parked (both attempts made) before the next one comes: its
        // second attempt renews its entry, which moves it back in line.
        wait_for_scripts(&server, before, 2);
        let now = listed(&client, NAME);
        assert_eq!(now.len(), i + 1, "waiter {i} queued: {now:?}");
        assert_eq!(now[..i], ids[..], "the earlier waiters kept their places");
        ids.push(now[i].clone());
    }
    let info = client.inspect(NAME).unwrap().expect("held");
    assert_eq!(info.owner_token, guard.token());
    assert_eq!(info.queue_len, 3);
    let in_queue: Vec<&str> = info.queue.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(in_queue, ids, "arrival order, the first parked first");
    for waiter in &info.queue {
        assert!(waiter.id.starts_with("w:"), "{waiter:?}");
        assert!(
            waiter.expires_in > Duration::ZERO && waiter.expires_in <= Duration::from_secs(15),
            "{waiter:?}"
        );
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 3, "{ids:?}");

    // A waiter that times out leaves the queue.
    let late = client.lock_with(NAME, options.clone()).unwrap();
    let impatient = thread::spawn(move || late.acquire_timeout(Duration::from_secs(3)));
    let mut impatient_id = String::new();
    wait_until(
        "the impatient waiter queued",
        Duration::from_secs(3),
        || {
            let now = listed(&client, NAME);
            match now.len() {
                4 => {
                    impatient_id = now[3].clone();
                    true
                }
                _ => false,
            }
        },
    );
    let outcome = impatient.join().unwrap();
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Timeout);
    let now = listed(&client, NAME);
    assert!(
        !now.contains(&impatient_id),
        "{impatient_id} timed out: {now:?}"
    );
    assert_eq!(now, ids, "the others wait on");

    // A release hands the lock to the first listed waiter, which then is
    // no longer listed.
    guard.release().unwrap();
    let (first, token, release_first) = took_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(first, 0, "the first parked waiter got the lock");
    let info = client
        .inspect(NAME)
        .unwrap()
        .expect("held by the first waiter");
    assert_eq!(info.owner_token, token);
    let now: Vec<String> = info.queue.into_iter().map(|w| w.id).collect();
    assert_eq!(now, ids[1..], "the handed-to waiter left the queue");
    assert_eq!(info.queue_len, 2);

    // The others take it in turn; then nobody is queued.
    release_first.send(()).unwrap();
    for _ in 1..3 {
        let (_, _, release) = took_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        release.send(()).unwrap();
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }
    assert_eq!(queued(&server, NAME), 0, "every waiter left the queue");
}
