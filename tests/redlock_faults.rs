//! Redlock over 5 masters with some of them stopped (SIGSTOP), blackholed
//! (a listening socket that accepts nothing and answers nothing), refusing
//! connections (a closed port), or stopped in the middle of an operation.
//! With a quorum healthy every operation works and costs at most about one
//! timeout; a master found dead is remembered, so the next operation does
//! not pay again; a master whose outcome was unknown is cleaned up in the
//! background; and every operation that cannot reach a quorum says so.
//!
//! Bounds are derived from the configured timeouts, never from measured
//! speed: `one_timeout` is the larger of the two timeouts plus a generous
//! allowance for scheduling, and stays below the two timeouts that the
//! old, sequential connects cost.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, LockOptions};
use support::{wait_until, wait_until_up_for, RedisServer};

const TIMEOUT: Duration = Duration::from_millis(1000);

/// One timeout, with room for a loaded machine; less than two timeouts.
fn one_timeout() -> Duration {
    TIMEOUT + TIMEOUT / 2
}

/// Far less than one timeout: the operation did not wait for a dead master.
fn no_timeout() -> Duration {
    TIMEOUT * 3 / 4
}

fn masters(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}

fn client_over(urls: &[String]) -> Client {
    Client::redlock_builder(urls)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        // Fresh test servers: only the restart tests below wait them out.
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap()
}

/// A client with the default restart delay (the largest ttl it uses).
fn delaying_client_over(urls: &[String]) -> Client {
    Client::redlock_builder(urls)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// A listening socket that never accepts: connects succeed (the kernel's
/// backlog), then nothing is ever read or answered.
fn blackhole() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    (listener, url)
}

/// A port where nothing listens: connects are refused at once.
fn refusing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

fn value_on(server: &RedisServer, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// The whole life of a lock with dead masters among the five: every step
/// succeeds, the first costs at most about one timeout, the later ones do
/// not wait for the dead masters again.
fn works_as_if_dead_masters_said_no(client: &Client, name: &str) {
    let lock = client
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(3)))
        .unwrap();
    let (first, took) = timed(|| lock.try_acquire());
    let first = first
        .unwrap()
        .expect("a free lock with 3 of 5 masters healthy is acquired");
    assert!(took < one_timeout(), "the first try_acquire took {took:?}");

    let (released, took) = timed(|| first.release());
    released.unwrap();
    assert!(
        took < no_timeout(),
        "release paid a timeout again: {took:?}"
    );

    for round in 0..3 {
        let (guard, took) = timed(|| lock.acquire_timeout(Duration::from_secs(10)));
        let guard = guard.unwrap();
        assert!(
            took < no_timeout(),
            "acquire {round} paid a timeout again: {took:?}"
        );
        let (info, took) = timed(|| client.inspect(name));
        let info = info.unwrap().expect("held on a quorum");
        assert_eq!(info.owner_token, guard.token());
        assert!(took < no_timeout(), "inspect paid a timeout: {took:?}");
        let (released, took) = timed(|| guard.release());
        released.unwrap();
        assert!(took < no_timeout(), "release paid a timeout: {took:?}");
    }
}

#[test]
fn two_stopped_masters_cost_one_timeout_once() {
    let servers = masters(5);
    servers[0].signal(libc::SIGSTOP);
    servers[1].signal(libc::SIGSTOP);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    works_as_if_dead_masters_said_no(&client_over(&urls), "stopped");
}

#[test]
fn two_blackholed_masters_cost_one_timeout_once() {
    let servers = masters(3);
    let (_hole_a, url_a) = blackhole();
    let (_hole_b, url_b) = blackhole();
    let mut urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    urls.insert(1, url_a);
    urls.push(url_b);
    works_as_if_dead_masters_said_no(&client_over(&urls), "blackholed");
}

#[test]
fn a_refusing_and_a_stopped_master_cost_one_timeout_once() {
    let servers = masters(4);
    servers[3].signal(libc::SIGSTOP);
    let mut urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    urls.insert(0, refusing());
    works_as_if_dead_masters_said_no(&client_over(&urls), "refusing");
}

#[test]
fn renewal_keeps_a_lease_with_two_dead_masters() {
    let servers = masters(5);
    servers[0].signal(libc::SIGSTOP);
    let (_hole, hole_url) = blackhole();
    let mut urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    urls[1] = hole_url;
    let client = client_over(&urls);
    let (lost_tx, lost_rx) = std::sync::mpsc::channel();
    // A ttl of 3 s: renewals every second, each needing the three live
    // masters. With 1.5 s a loaded machine let one live master's copy run
    // out between renewals once in 20 runs (the release then found it gone
    // there and had no quorum).
    let options = LockOptions::new()
        .ttl(Duration::from_secs(3))
        .on_lost(move |lost| {
            let _ = lost_tx.send(lost.reason.clone());
        });
    let guard = client
        .lock_with("renewed", options)
        .unwrap()
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    // Several renewal periods (ttl/3 each) pass; none may lose the lease.
    if let Ok(reason) = lost_rx.recv_timeout(Duration::from_secs(4)) {
        panic!("the lease was reported lost: {reason}");
    }
    assert!(guard.check().is_ok());
    guard.release().unwrap();
}

#[test]
fn a_master_stopped_in_the_middle_of_a_release_is_cleaned_up_later() {
    let servers = masters(5);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    let lock = client.lock("mid-release").unwrap();
    let guard = lock.try_acquire().unwrap().expect("free");
    // Pooled connections to every master exist now; one master stops with
    // the release already on its way.
    servers[4].signal(libc::SIGSTOP);
    let (released, took) = timed(|| guard.release());
    released.unwrap();
    assert!(took < one_timeout(), "release took {took:?}");
    let (again, took) = timed(|| lock.try_acquire());
    again
        .unwrap()
        .expect("released on a quorum")
        .release()
        .unwrap();
    assert!(
        took < no_timeout(),
        "the dead master was paid for again: {took:?}"
    );
    servers[4].signal(libc::SIGCONT);
    wait_until(
        "the stopped master no longer holds our token",
        Duration::from_secs(10),
        || value_on(&servers[4], "latchkey:{mid-release}").is_none(),
    );
}

#[test]
fn a_master_stopped_through_a_whole_hold_gives_our_token_back_when_it_resumes() {
    let servers = masters(5);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    // Warm up: every master has a pooled connection and knows the
    // scripts (else the stopped master would answer NOSCRIPT, unheard).
    client
        .lock("warm-up")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("free")
        .release()
        .unwrap();
    servers[4].signal(libc::SIGSTOP);
    let lock = client
        .lock_with(
            "whole-hold",
            LockOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap();
    let (guard, took) = timed(|| lock.try_acquire());
    let guard = guard.unwrap().expect("4 of 5 masters grant a free lock");
    assert!(took < one_timeout(), "try_acquire took {took:?}");
    let (released, took) = timed(|| guard.release());
    released.unwrap();
    assert!(
        took < no_timeout(),
        "release paid a timeout again: {took:?}"
    );
    // The stopped master runs our acquire when it resumes, after the
    // release: the client must take it back there, long before the ttl.
    servers[4].signal(libc::SIGCONT);
    wait_until(
        "the resumed master no longer holds our token",
        Duration::from_secs(10),
        || value_on(&servers[4], "latchkey:{whole-hold}").is_none(),
    );
}

#[test]
fn a_master_stopped_in_the_middle_of_a_failed_acquire_is_cleaned_up_later() {
    let servers = masters(5);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    // Warm the pool: every master answered once.
    assert!(!client.is_locked("mid-acquire").unwrap());
    for server in &servers[..3] {
        let _: () = redis::cmd("SET")
            .arg("latchkey:{mid-acquire}")
            .arg("someone-else")
            .arg("PX")
            .arg(60_000)
            .query(&mut server.admin())
            .unwrap();
    }
    servers[4].signal(libc::SIGSTOP);
    let lock = client
        .lock_with(
            "mid-acquire",
            LockOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap();
    let (attempt, took) = timed(|| lock.try_acquire());
    assert!(attempt.unwrap().is_none(), "held by someone else");
    assert!(took < one_timeout(), "try_acquire took {took:?}");
    // The stopped master runs our acquire when it resumes: the client must
    // take that back long before the 60 s ttl.
    servers[4].signal(libc::SIGCONT);
    wait_until(
        "the resumed master gives our stray acquire back",
        Duration::from_secs(10),
        || value_on(&servers[4], "latchkey:{mid-acquire}").is_none(),
    );
    assert_eq!(
        value_on(&servers[0], "latchkey:{mid-acquire}").as_deref(),
        Some("someone-else")
    );
}

#[test]
fn release_without_a_quorum_is_no_quorum_not_not_owner() {
    let servers = masters(3);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    let guard = client
        .lock("release-quorum")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("free");
    servers[0].signal(libc::SIGSTOP);
    servers[1].signal(libc::SIGSTOP);
    let err = guard.release().unwrap_err();
    servers[0].signal(libc::SIGCONT);
    servers[1].signal(libc::SIGCONT);
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
}

#[test]
fn inspect_and_force_unlock_need_a_quorum() {
    let mut servers = masters(3);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    let guard = client
        .lock("inspect-quorum")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("free");
    let token = guard.token().to_string();
    std::mem::forget(guard);
    servers[0].kill();
    servers[1].kill();
    let inspected = client.inspect("inspect-quorum");
    assert_eq!(
        inspected
            .as_ref()
            .map(Option::is_some)
            .map_err(|e| e.kind()),
        Err(ErrorKind::NoQuorum),
        "{inspected:?}"
    );
    let locked = client.is_locked("inspect-quorum");
    assert_eq!(
        locked.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::NoQuorum),
        "{locked:?}"
    );
    let unlocked = client.force_unlock("inspect-quorum");
    assert_eq!(
        unlocked.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::NoQuorum),
        "{unlocked:?}"
    );
    assert_eq!(
        value_on(&servers[2], "latchkey:{inspect-quorum}").as_deref(),
        Some(token.as_str()),
        "the third master still holds the lock"
    );
}

#[test]
fn duplicate_masters_are_refused() {
    let port = 6390;
    let same = format!("redis://127.0.0.1:{port}");
    let cases: Vec<Vec<String>> = vec![
        vec![same.clone(), same.clone(), same.clone()],
        vec![
            same.clone(),
            format!("redis://localhost:{port}"),
            "redis://127.0.0.1:6391".to_string(),
        ],
        vec![
            format!("redis://127.0.0.1:{port}/0"),
            format!("redis://127.0.0.1:{port}/1"),
            "redis://127.0.0.1:6391".to_string(),
        ],
        vec![
            "redis://Redis-A.example:6379".to_string(),
            "redis://redis-a.example:6379".to_string(),
            "redis://redis-b.example:6379".to_string(),
        ],
    ];
    for urls in cases {
        let err = Client::redlock_builder(&urls).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{urls:?}: {err}");
        assert!(err.message().contains("same server"), "{urls:?}: {err}");
    }
    let distinct = [
        "redis://127.0.0.1:6390",
        "redis://127.0.0.1:6391",
        "redis://127.0.0.1:6392",
    ];
    assert!(Client::redlock_builder(&distinct).build().is_ok());
    for n in [0, 1, 2, 4, 6] {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("redis://127.0.0.1:{}", 7000 + i))
            .collect();
        let err = Client::redlock_builder(&urls).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("odd number"), "{n}: {err}");
        assert!(err.message().contains("at least 3"), "{n}: {err}");
    }
}

/// Two masters of three restart empty (no persistence), one after the
/// other, while a client holds a lock on all three: together they are a
/// quorum that never heard of it. A second client must not get the lock
/// while the first one's check() is Ok; it gets it once the ttl has passed
/// since the restarts. Before restarted masters were kept out of the
/// quorum for the ttl, the second client got the lock at once while the
/// first one's check() stayed Ok (failed 3 of 3 runs).
#[test]
fn two_masters_restarted_empty_one_after_the_other_do_not_grant_the_lock_twice() {
    let ttl = Duration::from_secs(6);
    let mut servers = masters(3);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    // Masters that ran for over a ttl before the restarts (younger ones
    // would not count toward the first client's quorum either).
    wait_until_up_for(&servers, ttl * 2);
    let first = delaying_client_over(&urls);
    // Not renewed: its check() stays Ok for the whole ttl.
    let ours = first
        .lock_with("twice", LockOptions::new().ttl(ttl).auto_renew(false))
        .unwrap()
        .acquire()
        .unwrap();
    servers[0].restart();
    servers[1].restart();

    let second = delaying_client_over(&urls);
    let lock = second
        .lock_with("twice", LockOptions::new().ttl(ttl))
        .unwrap();
    let theirs = lock.try_acquire();
    let ours_ok = ours.check().is_ok();
    assert!(
        !(ours_ok && matches!(theirs, Ok(Some(_)))),
        "two clients hold 'twice': the second took it on the two restarted masters \
         while the first one's check() is Ok"
    );
    assert!(
        matches!(theirs, Ok(None)),
        "the lock must look held until the restarted masters count again: {theirs:?}"
    );
    // The restarted masters count again a ttl after their restart.
    let mut theirs = None;
    wait_until(
        "the second client gets the lock once the ttl has passed",
        Duration::from_secs(60),
        || {
            theirs = lock.try_acquire().ok().flatten();
            theirs.is_some()
        },
    );
    assert!(
        ours.check().is_err(),
        "the first client's lease outlived its ttl"
    );
}

/// Every master restarts empty at once (a whole deployment rebooted, or
/// restarted by its orchestrator) while a lock is held: no master keeps
/// the lock, and all three are equally young, which is also how a new
/// deployment looks. Before the strict delayed restart, masters that all
/// started within one ttl of each other all counted (as a new deployment)
/// and the second client got the lock at once while the first one's
/// check() was Ok (failed 3 of 3 runs). The client cannot tell a
/// deployment that lost its locks from a new one, so neither grants for a
/// ttl; a waiter gets the lock once that ttl has passed.
#[test]
fn a_deployment_restarted_whole_does_not_grant_a_held_lock_again() {
    let ttl = Duration::from_secs(4);
    let mut servers = masters(3);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    wait_until_up_for(&servers, ttl);
    let first = delaying_client_over(&urls);
    let ours = first
        .lock_with("whole", LockOptions::new().ttl(ttl).auto_renew(false))
        .unwrap()
        .acquire()
        .unwrap();
    for server in &mut servers {
        server.restart();
    }

    for (who, client) in [
        ("a new client", delaying_client_over(&urls)),
        ("the same client", first.clone()),
    ] {
        let theirs = client
            .lock_with("whole", LockOptions::new().ttl(ttl))
            .unwrap()
            .try_acquire();
        assert!(
            !(ours.check().is_ok() && matches!(theirs, Ok(Some(_)))),
            "two holders of 'whole': {who} took it on three restarted masters while the \
             first hold's check() is Ok"
        );
        assert!(
            matches!(&theirs, Err(e) if e.kind() == ErrorKind::NoQuorum),
            "{who}: {theirs:?}"
        );
    }
    let waiter = delaying_client_over(&urls)
        .lock_with("whole", LockOptions::new().ttl(ttl))
        .unwrap()
        .acquire_timeout(Duration::from_secs(60))
        .expect("the lock is granted once the masters have run a ttl");
    assert!(ours.check().is_err(), "the first hold outlived its ttl");
    drop(waiter);
}
