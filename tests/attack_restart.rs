//! Attacks on Redlock's delayed restart (a master whose run is younger than
//! the restart delay does not count toward a quorum), with real
//! redis-server processes and the public API only.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey::{Client, ErrorKind, LockOptions};
use support::{uptime, wait_until, wait_until_up_for, RedisServer};

const TIMEOUT: Duration = Duration::from_millis(1000);

fn masters(n: usize, extra: &[&str]) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start_with(extra)).collect()
}

/// A client with the default restart delay (the largest ttl it uses).
fn client_over(urls: &[String]) -> Client {
    Client::redlock_builder(urls)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// The wall clock's position within its current second.
fn subsecond() -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Duration::from_nanos(u64::from(now.subsec_nanos()))
}

fn not_renewed(ttl: Duration) -> LockOptions {
    LockOptions::new().ttl(ttl).auto_renew(false)
}

/// `uptime_in_seconds` is `floor(now) - floor(start)` of the server's
/// wall clock, not the whole seconds elapsed: it reads 1 about 0.5 s after
/// a start that fell at .5 of a second. When the client took it as the
/// run's age, a restarted master counted up to a second before the restart
/// delay had passed. Here: a lock of ttl 2 s is taken at .5 of a
/// wall-clock second, two of three masters restart empty at once, and as
/// soon as both report `uptime_in_seconds: 2` a new client (a fresh
/// process, so it reads INFO then) tries the lock. Before the age was
/// counted as the uptime less one second, it took the lock while the first
/// guard's check() was still Ok, 3 of 3 runs: "two holders of 'round': the
/// second client took it 1.481121182s after the restarts; the first guard
/// has 426.424339ms left" (then 1.513 s / 429 ms, 1.501 s / 416 ms).
#[test]
fn whole_second_uptime_lets_restarted_masters_count_before_the_delay() {
    let ttl = Duration::from_secs(2);
    let mut servers = masters(3, &[]);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    wait_until_up_for(&servers, ttl * 2);
    let first = client_over(&urls);
    // Warm: the first client's connections and its reading of the runs.
    drop(first.lock_with("warm", not_renewed(ttl)).unwrap().acquire());
    // The restarts then start at about .5 of a second: by the next whole
    // second the servers say they have been up for a second.
    wait_until(
        "the wall clock is at .45 to .55 of a second",
        Duration::from_secs(3),
        || (450..550).contains(&subsecond().as_millis()),
    );
    let ours = first
        .lock_with("round", not_renewed(ttl))
        .unwrap()
        .acquire()
        .unwrap();
    servers[0].restart();
    servers[1].restart();
    let restarted = Instant::now();
    wait_until(
        "both restarted masters report an uptime of a ttl",
        Duration::from_secs(10),
        || uptime(&servers[0]) >= ttl && uptime(&servers[1]) >= ttl,
    );
    let second = client_over(&urls);
    let theirs = second
        .lock_with("round", not_renewed(ttl))
        .unwrap()
        .try_acquire()
        .unwrap();
    let after = restarted.elapsed();
    let left = ours.remaining();
    assert!(
        !(ours.check().is_ok() && theirs.is_some()),
        "two holders of 'round': the second client took it {after:?} after the restarts; \
         the first guard has {left:?} left"
    );
}

/// DOCUMENTED LIMITATION (rustdoc of `redlock_restart_delay`: "A longer
/// delay covers other clients' longer ttls"; README's Redlock row). Two
/// clients with the default delay and different ttls: the one with the
/// short ttl counts restarted masters after its own ttl, while the other
/// client's long lease is still valid. Observed 3 of 3 runs, e.g. "two
/// holders of 'ttls': the 1 s client took it 1.002465699s after the
/// restarts; the 10 s guard has 8.855675396s left".
#[test]
#[ignore = "documented limitation: the default delay is this client's largest ttl only"]
fn a_short_ttl_client_takes_a_lock_held_with_a_longer_ttl_after_restarts() {
    let long = Duration::from_secs(10);
    let short = Duration::from_secs(1);
    let mut servers = masters(3, &[]);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    wait_until_up_for(&servers, long + Duration::from_secs(1));
    let ours = client_over(&urls)
        .lock_with("ttls", not_renewed(long))
        .unwrap()
        .acquire()
        .unwrap();
    servers[0].restart();
    servers[1].restart();
    let restarted = Instant::now();
    let theirs = client_over(&urls)
        .lock_with("ttls", not_renewed(short))
        .unwrap()
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    let after = restarted.elapsed();
    let left = ours.remaining();
    assert!(
        ours.check().is_err(),
        "two holders of 'ttls': the 1 s client took it {after:?} after the restarts; the \
         10 s guard has {left:?} left"
    );
    drop(theirs);
}

/// Masters configured with `rename-command INFO ""` (hardening guides
/// recommend renaming admin commands; proxies such as twemproxy do not
/// pass INFO) cannot say how long they have run, and keep refusing after a
/// restart. When such a master counted at once, two of them restarted
/// empty granted a held lock again at once (3 of 3 runs: "two holders of
/// 'info': the second client took it 4.78274ms after the restarts; the
/// first guard has 9.82160933s left"). Now a master of unknown age counts
/// only with a zero restart delay (the user's word that masters keep their
/// keys): by default nothing is granted, and the error says why.
#[test]
fn masters_that_refuse_info_count_only_with_a_zero_restart_delay() {
    let ttl = Duration::from_secs(10);
    let servers = masters(3, &["--rename-command", "INFO", ""]);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let refused = client_over(&urls)
        .lock_with("info", not_renewed(ttl))
        .unwrap()
        .try_acquire()
        .expect_err("masters of unknown age granted a lock");
    assert_eq!(refused.kind(), ErrorKind::NoQuorum, "{refused}");
    assert!(refused.message().contains("INFO server"), "{refused}");
    let trusting = Client::redlock_builder(&urls)
        .command_timeout(TIMEOUT)
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap();
    let ours = trusting
        .lock_with("info", not_renewed(ttl))
        .unwrap()
        .try_acquire()
        .unwrap();
    assert!(ours.is_some(), "a zero restart delay counts every master");
}

/// A renewed lease whose masters restart empty: the next renewal confirms
/// it on one master of three and reports it lost, and no other client gets
/// the lock while the guard's check() is Ok.
#[test]
fn a_renewed_lease_on_restarted_masters_is_reported_lost_and_never_shared() {
    let ttl = Duration::from_secs(3);
    let mut servers = masters(3, &[]);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    wait_until_up_for(&servers, ttl + Duration::from_secs(1));
    let ours = client_over(&urls)
        .lock_with("renewed", LockOptions::new().ttl(ttl))
        .unwrap()
        .acquire()
        .unwrap();
    servers[0].restart();
    servers[1].restart();
    let other = client_over(&urls);
    let lock = other
        .lock_with("renewed", LockOptions::new().ttl(ttl))
        .unwrap();
    wait_until(
        "the renewal reports the lease lost",
        Duration::from_secs(10),
        || {
            let theirs = lock.try_acquire().unwrap();
            let ours_ok = ours.check().is_ok();
            assert!(
                !(ours_ok && theirs.is_some()),
                "two holders of 'renewed' while the first guard's check() is Ok"
            );
            !ours_ok
        },
    );
    assert!(ours.lost(), "{:?}", ours.check());
}

/// What a user of a brand-new deployment sees: for a ttl after the
/// masters start (30 s with the default ttl) no lock is granted. Before,
/// every lock looked held though nobody held it, and nothing said why
/// (3 of 3 runs: "try_acquire: Ok(None) / is_locked: Ok(false) /
/// acquire_timeout: Err(Timeout, \"lock 'fresh' is held by another owner;
/// not acquired within 500ms\")"). Now both fail with `NoQuorum`, naming
/// the restart delay.
#[test]
fn a_fresh_deployment_explains_why_a_free_lock_is_not_granted() {
    let servers = masters(3, &[]);
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = client_over(&urls);
    let lock = client.lock("fresh").unwrap();
    let tried = lock.try_acquire().map(|_| ());
    let waited = lock.acquire_timeout(Duration::from_millis(500)).map(|_| ());
    assert_eq!(client.is_locked("fresh").ok(), Some(false));
    for (what, outcome) in [("try_acquire", tried), ("acquire_timeout", waited)] {
        let err = outcome.expect_err("granted on masters younger than the ttl");
        assert_eq!(err.kind(), ErrorKind::NoQuorum, "{what}: {err}");
        for expected in [
            "no master says the lock is held",
            "restart delay",
            "(re)started",
        ] {
            assert!(
                err.message().contains(expected),
                "{what}: {expected:?} not in {err}"
            );
        }
    }
}
