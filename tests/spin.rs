//! Clients whose reads spin before they sleep (`ClientBuilder::spin`)
//! behave like any other: cycles, a handoff to a waiter of another client,
//! and a stopped server that costs the command timeout, not more and not
//! an endless spin.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind};
use support::{wait_until, RedisServer};

fn spinning(server: &RedisServer) -> Client {
    Client::builder(&server.url())
        .spin(Duration::from_micros(200))
        .command_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[test]
fn a_spinning_client_takes_releases_and_hands_over() {
    let server = RedisServer::start();
    let (a, b) = (spinning(&server), spinning(&server));
    let mut last = 0;
    for _ in 0..200 {
        let guard = a.lock("cycle").unwrap().acquire().unwrap();
        assert!(guard.fencing_token() > last, "tokens only go up");
        last = guard.fencing_token();
        guard.release().unwrap();
    }
    let guard = a.lock("handed").unwrap().acquire().unwrap();
    let held_with = guard.fencing_token();
    let waiter = thread::spawn(move || {
        let guard = b
            .lock("handed")
            .unwrap()
            .acquire_timeout(Duration::from_secs(60))
            .unwrap();
        let token = guard.fencing_token();
        guard.release().unwrap();
        token
    });
    wait_until("the waiter queued", Duration::from_secs(30), || {
        a.inspect("handed")
            .unwrap()
            .is_some_and(|info| info.queue_len == 1)
    });
    guard.release().unwrap();
    assert!(waiter.join().unwrap() > held_with);
}

#[test]
fn a_spinning_client_gives_up_on_a_stopped_server_after_the_command_timeout() {
    let server = RedisServer::start();
    let client = spinning(&server);
    let lock = client.lock("stopped").unwrap();
    // A pooled connection, so the next attempt only waits for a reply.
    lock.acquire().unwrap().release().unwrap();
    server.signal(libc::SIGSTOP);
    let started = Instant::now();
    let outcome = lock.try_acquire();
    let took = started.elapsed();
    server.signal(libc::SIGCONT);
    let Err(err) = outcome else {
        panic!("a stopped server granted a lock");
    };
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        took >= Duration::from_secs(1),
        "gave up after {took:?}, before the command timeout"
    );
    lock.acquire().unwrap().release().unwrap();
}
