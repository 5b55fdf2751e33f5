//! Redlock over 5 (and 3) independent redis-server processes: quorum,
//! masters that are down or paused, locks partly held by someone else,
//! clean-up after a failed attempt, fencing across the quorum, lost quorum
//! during renewal, and mutual exclusion between processes.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, LockOptions};
use support::{tool, RedisServer, TempDir};

fn masters(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}

fn urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

fn client(servers: &[RedisServer], timeout: Duration) -> Client {
    Client::redlock_builder(&urls(servers))
        .connect_timeout(timeout)
        .command_timeout(timeout)
        // Fresh test servers: no restart here to wait out (see
        // tests/redlock_faults.rs for the restart delay).
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap()
}

fn value_on(server: &RedisServer, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

#[test]
fn a_quorum_survives_two_of_five_masters_down_but_not_three() {
    let mut servers = masters(5);
    let client = client(&servers, Duration::from_millis(500));
    let lock = client.lock("quorum").unwrap();
    let guard = lock.acquire_timeout(Duration::from_secs(5)).unwrap();
    let held_on = servers
        .iter()
        .filter(|s| value_on(s, "latchkey:{quorum}").as_deref() == Some(guard.token()))
        .count();
    assert_eq!(held_on, 5);
    guard.release().unwrap();

    servers[0].kill();
    servers[1].kill();
    let guard = lock
        .acquire_timeout(Duration::from_secs(5))
        .expect("3 of 5 is a quorum");
    let info = client.inspect("quorum").unwrap().expect("held on a quorum");
    assert_eq!(info.owner_token, guard.token());
    assert_eq!(info.masters.len(), 5);
    assert_eq!(info.masters.iter().filter(|m| m.error.is_some()).count(), 2);
    guard.release().unwrap();

    servers[2].kill();
    let started = Instant::now();
    let err = lock.acquire_timeout(Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert!(err.message().contains("no quorum"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_paused_master_is_a_vote_against_not_a_hang() {
    let servers = masters(5);
    let client = client(&servers, Duration::from_millis(300));
    servers[4].signal(libc::SIGSTOP);
    let started = Instant::now();
    let guard = client
        .lock("paused")
        .unwrap()
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(guard.check().is_ok());
    guard.release().unwrap();
    servers[4].signal(libc::SIGCONT);
}

#[test]
fn a_lock_partly_held_by_another_needs_a_real_quorum() {
    let servers = masters(5);
    let client = client(&servers, Duration::from_millis(500));
    let set_other = |s: &RedisServer| {
        let _: () = redis::cmd("SET")
            .arg("latchkey:{partial}")
            .arg("someone-else")
            .arg("PX")
            .arg(60_000)
            .query(&mut s.admin())
            .unwrap();
    };
    set_other(&servers[0]);
    set_other(&servers[1]);
    let lock = client.lock("partial").unwrap();
    let guard = lock
        .try_acquire()
        .unwrap()
        .expect("3 free masters make a quorum");
    assert_eq!(
        value_on(&servers[2], "latchkey:{partial}").as_deref(),
        Some(guard.token())
    );
    let token = guard.token().to_string();
    guard.release().unwrap();
    assert_eq!(
        value_on(&servers[0], "latchkey:{partial}").as_deref(),
        Some("someone-else")
    );

    set_other(&servers[2]);
    assert!(
        lock.try_acquire().unwrap().is_none(),
        "only 2 free masters: no quorum"
    );
    assert!(lock.acquire_timeout(Duration::from_millis(300)).is_err());
    for server in &servers {
        let value = value_on(server, "latchkey:{partial}");
        assert_ne!(value.as_deref(), Some(token.as_str()));
        // A give-back that woke waiters leaves a short reservation for them.
        assert!(
            matches!(
                value.as_deref(),
                None | Some("someone-else") | Some("handoff")
            ),
            "a failed attempt left {value:?} behind"
        );
    }
}

#[test]
fn fencing_tokens_keep_growing_across_the_quorum() {
    let mut servers = masters(3);
    let client = client(&servers, Duration::from_millis(500));
    let lock = client.lock("fence").unwrap();
    let first = lock.acquire().unwrap();
    let t1 = first.fencing_token();
    first.release().unwrap();
    // One master forgets everything; the other two still know t1.
    servers[0].restart();
    let second = lock.acquire().unwrap();
    assert!(second.fencing_token() > t1);
    let t2 = second.fencing_token();
    second.release().unwrap();
    // Now another master forgets; the write-back kept a majority at t2.
    servers[1].restart();
    let third = lock.acquire().unwrap();
    assert!(third.fencing_token() > t2);
}

#[test]
fn losing_the_quorum_marks_the_lease_lost() {
    let servers = masters(3);
    let client = client(&servers, Duration::from_millis(300));
    let (tx, rx) = mpsc::channel();
    let options = LockOptions::new()
        .ttl(Duration::from_millis(900))
        .on_lost(move |lost| tx.send(lost.reason.clone()).unwrap());
    let guard = client
        .lock_with("renewed", options)
        .unwrap()
        .acquire()
        .unwrap();
    let admin = Client::open(&servers[0].url()).unwrap();
    assert!(admin.force_unlock("renewed").unwrap());
    let admin = Client::open(&servers[1].url()).unwrap();
    assert!(admin.force_unlock("renewed").unwrap());
    let reason = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reported lost");
    assert!(
        reason.contains("expired or held by another owner"),
        "{reason}"
    );
    assert_eq!(guard.check().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn renewal_keeps_a_redlock_lease_alive() {
    let servers = masters(3);
    let client = client(&servers, Duration::from_millis(500));
    // Longer than a stall of a loaded machine, and the lease outlives it
    // only by being renewed.
    let ttl = Duration::from_secs(3);
    let options = LockOptions::new().ttl(ttl);
    let guard = client
        .lock_with("kept", options)
        .unwrap()
        .acquire()
        .unwrap();
    let until = Instant::now() + ttl + Duration::from_millis(1000);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(guard.check().is_ok());
    assert!(client.is_locked("kept").unwrap());
}

#[test]
fn processes_exclude_each_other_over_redlock() {
    let servers = masters(3);
    let dir = TempDir::new("redlock-exclusion");
    let counter = dir.0.join("counter");
    std::fs::write(&counter, "0").unwrap();
    let mut args = Vec::new();
    for url in urls(&servers) {
        args.push("--url".to_string());
        args.push(url);
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            tool()
                .args(&args)
                .args(["worker", "redlock-exclusion", "--count", "300"])
                .args(["--counter", counter.to_str().unwrap()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
    let count: u64 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 1200);
}

#[test]
fn redlock_needs_an_odd_number_of_masters() {
    for n in [1, 2, 4] {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("redis://127.0.0.1:{}", 7000 + i))
            .collect();
        let err = Client::redlock_builder(&urls).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}

/// One master's counter runs far ahead (raised by hand), another's is
/// wiped. The masters then issue different tokens; the acquire must hand
/// out the highest, write it back to a majority, and every later token
/// must be above it.
#[test]
fn tokens_keep_growing_when_one_masters_counter_runs_ahead() {
    let servers = masters(5);
    let client = client(&servers, Duration::from_secs(2));
    let lock = client.lock("ahead").unwrap();
    let first = lock.acquire().unwrap();
    let t1 = first.fencing_token();
    first.release().unwrap();
    // An hour ahead of every clock (in µs), on one master only.
    let ahead = t1 + 3_600_000_000;
    let _: () = redis::cmd("SET")
        .arg("latchkey:{ahead}:fence")
        .arg(ahead)
        .query(&mut servers[2].admin())
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg("latchkey:{ahead}:fence")
        .query(&mut servers[4].admin())
        .unwrap();
    let second = lock.acquire().unwrap();
    let t2 = second.fencing_token();
    assert!(t2 > ahead, "{t2} <= {ahead}: the highest master's token");
    let at_least_t2 = servers
        .iter()
        .filter(|s| {
            value_on(s, "latchkey:{ahead}:fence")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v >= t2)
        })
        .count();
    assert!(at_least_t2 >= 3, "only {at_least_t2} masters know {t2}");
    second.release().unwrap();
    let mut last = t2;
    for _ in 0..5 {
        let next = lock.acquire().unwrap();
        assert!(
            next.fencing_token() > last,
            "{} <= {last}",
            next.fencing_token()
        );
        last = next.fencing_token();
        next.release().unwrap();
    }
}
