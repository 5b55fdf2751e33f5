//! Attacks on the semaphore (permits as leases in a lease set): late copies
//! of its script calls, force releases, lost leases and what a permit
//! guard says about itself. Each test names what broke before its fix.
//!
//! Late copies are the library's own script calls, captured with their
//! exact KEYS and ARGV by a MONITOR connection and delivered again through
//! a raw connection (EVALSHA of the same script), the way a command
//! delayed in the network would reach Redis (see tests/late_copies.rs).

mod support;

use std::time::Duration;

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::monitor::{deliver, Command, Monitor};
use support::{wait_until, RedisServer};

/// The lease set of semaphore `name` (default prefix).
fn lease_set(name: &str) -> String {
    format!("latchkey:sem:{{{name}}}")
}

/// The script calls on semaphore `name` among `calls` (KEYS[1] is its
/// lease set).
fn calls_on(calls: &[Command], name: &str) -> Vec<Command> {
    let key = lease_set(name).into_bytes();
    calls
        .iter()
        .filter(|c| c.get(3) == Some(&key))
        .cloned()
        .collect()
}

/// Checks the permit count of semaphore `name` (its `:q` key, see
/// src/keys.rs) against its members: when present, it is the permits its
/// members hold, ended leases not yet removed included.
fn assert_count_matches(admin: &mut redis::Connection, name: &str) {
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(lease_set(name))
        .arg(0)
        .arg(-1)
        .query(admin)
        .unwrap();
    let held: u64 = members
        .iter()
        .map(|m| {
            m.split_once(':')
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or(1)
        })
        .sum();
    let count: Option<u64> = redis::cmd("GET")
        .arg(format!("{}:q", lease_set(name)))
        .query(admin)
        .unwrap();
    if let Some(count) = count {
        assert_eq!(count, held, "the permit count is off: members {members:?}");
    }
}

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

/// Whether the lease set of `name` has `token` as a member.
fn member(admin: &mut redis::Connection, name: &str, token: &str) -> bool {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(lease_set(name))
        .arg(token)
        .query(admin)
        .unwrap();
    score.is_some()
}

// ---------------------------------------------------------------------------
// Finding 1: a late copy of force_release_all.

/// `force_release_all` sent force_unlock.lua with holder '' ("whoever holds
/// it"), which the script's header says the library never sends, because a
/// late copy of it deletes whoever holds the lock when it arrives. A copy
/// of the force (a retry whose first attempt ran, a command delayed in the
/// network) that reaches Redis after newer holds took the permits deleted
/// the whole lease set: the newer holders' permits were gone from Redis
/// while their guards said Ok, and another acquirer took them, so more
/// permits were held than the semaphore has. Before the fix: "the late copy
/// of force_release_all took away a hold made after it".
#[test]
fn a_late_copy_of_force_release_all_removes_no_newer_hold() {
    let server = RedisServer::start();
    let client = client(&server);
    let name = "forced-late";
    let options = LockOptions::new()
        .ttl(Duration::from_secs(5))
        .auto_renew(false);
    let pool = client.semaphore_with(name, 2, options).unwrap();
    let old = pool.acquire(2).unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    assert!(pool.force_release_all().unwrap());
    let forces = calls_on(&monitor.script_calls_since(&mut admin), name);
    assert!(!forces.is_empty(), "force_release_all ran no script");
    drop(old);

    let newer = pool.acquire(2).unwrap();
    for copy in &forces {
        deliver(&mut admin, copy);
    }
    assert!(
        member(&mut admin, name, newer.token()),
        "the late copy of force_release_all took away a hold made after it"
    );
    // Whatever the copy did, nobody else gets a permit while the newer
    // hold's guard says it holds both.
    newer.check().unwrap();
    assert!(
        pool.try_acquire(1).unwrap().is_none(),
        "a third permit of two was taken while the newer hold believes it holds both"
    );
}

// ---------------------------------------------------------------------------
// Finding 2: a permit guard's errors spoke of a lock.

/// A permit guard's lost reasons and errors said "lock 'x'" for a
/// semaphore's permits (and the operation contexts "releasing lock",
/// "inspecting lock", "acquiring lock ... was cancelled"): a user of a
/// semaphore that also has a lock of the same name could not tell which
/// was lost. Before the fix: "renewal found lock 'named' expired or held by
/// another owner".
#[test]
fn a_permit_guard_speaks_of_its_semaphore() {
    let server = RedisServer::start();
    let client = client(&server);
    let name = "named";
    let says_semaphore = |what: &str, message: &str| {
        assert!(
            message.contains(&format!("semaphore '{name}'")) && !message.contains("lock '"),
            "{what}: {message}"
        );
    };
    // A renewal that finds the permits taken away.
    let renewed = client
        .semaphore_with(name, 3, LockOptions::new().ttl(Duration::from_millis(300)))
        .unwrap();
    let guard = renewed.acquire(1).unwrap();
    assert!(renewed.force_release_all().unwrap());
    wait_until(
        "the renewal finds the permit gone",
        Duration::from_secs(3),
        || guard.lost(),
    );
    says_semaphore("lost reason", &guard.check().unwrap_err().to_string());
    says_semaphore(
        "release of a lost permit",
        &guard.release().unwrap_err().to_string(),
    );

    // An extension and a release of a permit taken away, without renewal.
    let pool = client
        .semaphore_with(
            name,
            3,
            LockOptions::new()
                .ttl(Duration::from_secs(5))
                .auto_renew(false),
        )
        .unwrap();
    let guard = pool.acquire(1).unwrap();
    assert!(pool.force_release_all().unwrap());
    says_semaphore(
        "extension of a permit taken away",
        &guard
            .extend(Duration::from_secs(5))
            .unwrap_err()
            .to_string(),
    );
    let guard = pool.acquire(1).unwrap();
    assert!(pool.force_release_all().unwrap());
    says_semaphore(
        "release of a permit taken away",
        &guard.release().unwrap_err().to_string(),
    );

    // A cancelled acquire.
    let full = pool.acquire(3).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = pool.acquire_with(1, None, Some(&cancel)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    says_semaphore("cancelled acquire", &err.to_string());
    drop(full);

    // An operation that fails on the wire.
    let mut admin = server.admin();
    let () = redis::cmd("SET")
        .arg(lease_set(name))
        .arg("not a lease set")
        .query(&mut admin)
        .unwrap();
    says_semaphore(
        "inspect of a key of another type",
        &pool.inspect().unwrap_err().to_string(),
    );
}

// ---------------------------------------------------------------------------
// Attacks that held (kept as regression tests).

/// Late copies of every script call of two holds (acquire, extend,
/// inspect, release, and a renewal finding its permit gone) delivered
/// after a newer hold took every permit: the newer hold keeps its lease
/// end, the set's expiry and every permit; nobody else takes one; the
/// fencing counter does not go down.
#[test]
fn late_copies_of_permit_calls_change_no_newer_hold() {
    let server = RedisServer::start();
    let client = client(&server);
    let name = "replayed";
    let options = LockOptions::new()
        .ttl(Duration::from_secs(3))
        .auto_renew(false);
    let pool = client.semaphore_with(name, 3, options).unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let a = pool.acquire(1).unwrap();
    let b = pool.acquire(2).unwrap();
    a.extend(Duration::from_secs(20)).unwrap();
    assert_eq!(pool.inspect().unwrap().in_use, 3);
    a.release().unwrap();
    b.release().unwrap();
    let copies = calls_on(&monitor.script_calls_since(&mut admin), name);
    assert!(copies.len() >= 6, "captured {} calls", copies.len());

    let newer = pool.acquire(3).unwrap();
    let score = |admin: &mut redis::Connection| -> f64 {
        redis::cmd("ZSCORE")
            .arg(lease_set(name))
            .arg(newer.token())
            .query::<Option<f64>>(admin)
            .unwrap()
            .expect("the newer hold is in the lease set")
    };
    let fence = |admin: &mut redis::Connection| -> u64 {
        redis::cmd("GET")
            .arg(format!("{}:fence", lease_set(name)))
            .query(admin)
            .unwrap()
    };
    let (score_before, fence_before) = (score(&mut admin), fence(&mut admin));
    for copy in copies.iter().chain(copies.iter().rev()) {
        deliver(&mut admin, copy);
    }
    assert!(
        score(&mut admin) >= score_before,
        "a copy shortened the lease"
    );
    // PEXPIRETIME is Redis 7: the server clock plus PTTL (one ms apart).
    let (pttl, time): (i64, (u64, u64)) = redis::pipe()
        .cmd("PTTL")
        .arg(lease_set(name))
        .cmd("TIME")
        .query(&mut admin)
        .unwrap();
    let expires_at = (time.0 * 1000 + time.1 / 1000) as f64 + pttl as f64;
    assert!(
        pttl > 0 && expires_at + 1.0 >= score_before,
        "the lease set expires at {expires_at}, before its lease ends at {score_before}"
    );
    assert!(
        fence(&mut admin) >= fence_before,
        "the fencing counter went down"
    );
    assert_count_matches(&mut admin, name);
    let info = pool.inspect().unwrap();
    assert_eq!((info.in_use, info.hold_count), (3, 1), "{info:?}");
    assert!(pool.try_acquire(1).unwrap().is_none());
    newer.check().unwrap();
    let next_token = {
        newer.release().unwrap();
        pool.acquire(1).unwrap().fencing_token()
    };
    assert!(next_token > fence_before);
}

/// An acquire that reaches a stalled server after its caller gave up
/// (the command timed out; the server ran it when it woke) takes permits
/// for nobody: the give-back returns them once the server answers, long
/// before the ttl.
#[test]
fn an_acquire_run_after_its_caller_gave_up_is_given_back() {
    let server = RedisServer::start();
    let client = Client::builder(&server.url())
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let name = "stalled";
    let pool = client
        .semaphore_with(name, 2, LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap();
    pool.acquire(2).unwrap().release().unwrap();
    server.signal(libc::SIGSTOP);
    let err = pool.try_acquire(2).unwrap_err();
    server.signal(libc::SIGCONT);
    assert!(
        matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
        "{err}"
    );
    wait_until(
        "the late take is given back",
        Duration::from_secs(4),
        || pool.available().ok() == Some(2),
    );
    let guard = pool.try_acquire(2).unwrap().expect("both permits free");
    guard.release().unwrap();
}

/// A holder cut off from Redis (every packet dropped) loses its permits
/// when its lease ends; by the time anybody else gets them, its guard
/// says so.
#[test]
fn a_partitioned_holder_knows_before_anybody_takes_its_permits() {
    let server = RedisServer::start();
    let proxy = support::blackhole::Blackhole::start(server.port);
    let cut_off = Client::builder(&proxy.url())
        .command_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let name = "partitioned";
    let options = LockOptions::new().ttl(Duration::from_millis(800));
    let held = cut_off
        .semaphore_with(name, 2, options.clone())
        .unwrap()
        .acquire(2)
        .unwrap();
    proxy.cut();
    let other = client(&server);
    let pool = other.semaphore_with(name, 2, options).unwrap();
    let taken = pool
        .acquire_timeout(1, Duration::from_secs(4))
        .expect("the cut-off holder's permits come back after its lease");
    let check = held.check();
    assert!(
        matches!(&check, Err(e) if e.kind() == ErrorKind::Lost),
        "another took a permit while the cut-off holder's guard says {check:?}"
    );
    taken.release().unwrap();
}

/// On a Redis 7 Cluster (releases published with SPUBLISH on the
/// semaphore's shard), a waiter parked with a 30 s holder lease (10 s
/// between its own re-checks) is woken by a release and by a force release,
/// not by its re-check.
#[test]
fn cluster_waiters_are_woken_by_sharded_releases() {
    let nodes = support::cluster::start_nodes_with(3, 0, 2000, &[]);
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let client = Client::cluster_builder(&urls)
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let pool = client.semaphore("sharded", 2).unwrap();
    for how in ["release", "force_release_all"] {
        let held = pool.acquire(2).unwrap();
        let started = std::time::Instant::now();
        let waiter = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| pool.acquire_timeout(1, Duration::from_secs(8)));
            wait_until("the waiter listens", Duration::from_secs(5), || {
                support::cluster::listeners(&nodes, "latchkey:sem:{sharded}:ch") > 0
            });
            if how == "release" {
                held.release().unwrap();
            } else {
                assert!(pool.force_release_all().unwrap());
                drop(held);
            }
            waiting.join().unwrap()
        });
        let guard = waiter.unwrap_or_else(|e| panic!("{how}: the waiter was not woken: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{how}: the waiter took {:?}",
            started.elapsed()
        );
        guard.release().unwrap();
    }
}

/// A child forked while its parent holds permits inherits an inert guard:
/// it cannot release, extend or drop the parent's permits away, and it
/// says so; the parent keeps them.
#[test]
fn a_forked_child_never_touches_its_parents_permits() {
    let server = RedisServer::start();
    let client = client(&server);
    let name = "forked";
    let pool = client.semaphore(name, 2).unwrap();
    let mut slot = Some(pool.acquire(2).unwrap());
    let token = slot.as_ref().unwrap().token().to_string();
    let status = support::in_forked_child(Duration::from_secs(10), || {
        // The child's own copy of the slot: the parent's keeps its guard.
        let guard = slot.take().unwrap();
        let err = guard.check().unwrap_err();
        assert!(err.to_string().contains("semaphore 'forked'"), "{err}");
        assert!(guard.extend(Duration::from_secs(60)).is_err());
        let copy = pool.acquire_timeout(1, Duration::from_millis(100));
        assert!(copy.is_err(), "the child took a permit of a full semaphore");
        assert!(guard.release().is_err());
    });
    assert_eq!(status, Some(0), "the child failed its checks");
    let guard = slot.unwrap();
    let mut admin = server.admin();
    assert!(
        member(&mut admin, name, &token),
        "the child removed the parent's permits"
    );
    guard.check().unwrap();
    assert!(guard.confirm().unwrap());
    guard.release().unwrap();
}

// ---------------------------------------------------------------------------
// Finding 3: every attempt scans every hold.

/// The server time (µs) Redis spent in script calls so far
/// (`INFO commandstats`).
fn script_usec(admin: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            let usec = l.split("usec=").nth(1)?;
            usec.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// permit_acquire.lua counted the permits in use by reading every member
/// of the lease set (ZRANGE 0 -1) on every attempt, and permit_inspect.lua
/// did the same: with many holds (a size up to MAX_PERMITS, one permit
/// each) one attempt on a full semaphore blocked Redis for about a second
/// (1.3 s measured at 1,000,000 holds), and every release wakes every
/// waiter for one such attempt each, so the renewals of every other lease
/// on the server waited behind them past their ttl. Here 300,000 holds
/// (written directly, as that many holders would leave them). Before the
/// fix: "one attempt on a full semaphore of 300000 holds cost the server
/// 230.466ms".
#[test]
fn an_attempt_on_a_full_semaphore_does_not_scan_every_hold() {
    let server = RedisServer::start();
    let mut admin = server.admin();
    let name = "crowded";
    let holds: u32 = 300_000;
    // Leases that end in an hour, one permit each.
    let (secs, _): (u64, u64) = redis::cmd("TIME").query(&mut admin).unwrap();
    let ends = secs * 1000 + 3_600_000;
    let mut pipe = redis::pipe();
    for chunk in 0..holds / 10_000 {
        let cmd = pipe.cmd("ZADD").arg(lease_set(name));
        for i in 0..10_000 {
            cmd.arg(ends).arg(format!("1:{:032x}", chunk * 10_000 + i));
        }
        cmd.ignore();
    }
    let () = pipe.query(&mut admin).unwrap();
    let client = client(&server);
    let pool = client.semaphore(name, holds).unwrap();
    assert!(
        pool.try_acquire(1).unwrap().is_none(),
        "the semaphore is full"
    );
    let before = script_usec(&mut admin);
    for _ in 0..3 {
        assert!(pool.try_acquire(1).unwrap().is_none());
    }
    let per_attempt = Duration::from_micros((script_usec(&mut admin) - before) / 3);
    assert!(
        per_attempt < Duration::from_millis(20),
        "one attempt on a full semaphore of {holds} holds cost the server {per_attempt:?}"
    );
    let t = std::time::Instant::now();
    assert_eq!(pool.available().unwrap(), 0);
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "available() took {:?}",
        t.elapsed()
    );
}

/// The permit count stays right through what moves it: leases that end
/// without a release (counted out once, by the next attempt), releases,
/// force releases, a count that is lost (counted again from the members)
/// and a lease set that is deleted under it (the count goes with it).
#[test]
fn the_permit_count_follows_the_lease_set() {
    let server = RedisServer::start();
    let client = client(&server);
    let mut admin = server.admin();
    let name = "counted";
    let short = LockOptions::new()
        .ttl(Duration::from_millis(200))
        .auto_renew(false);
    let dying = client.semaphore_with(name, 5, short).unwrap();
    let pool = client
        .semaphore_with(
            name,
            5,
            LockOptions::new()
                .ttl(Duration::from_secs(10))
                .auto_renew(false),
        )
        .unwrap();
    // Two permits whose holder dies (its lease ends without a release).
    std::mem::forget(dying.acquire(2).unwrap());
    let kept = pool.acquire(3).unwrap();
    assert_count_matches(&mut admin, name);
    assert!(pool.try_acquire(1).unwrap().is_none());
    wait_until(
        "the dead holder's lease ends",
        Duration::from_secs(3),
        || pool.available().unwrap() == 2,
    );
    let two = pool
        .try_acquire(2)
        .unwrap()
        .expect("the dead holder's permits");
    assert_count_matches(&mut admin, name);
    two.release().unwrap();
    assert_count_matches(&mut admin, name);
    assert_eq!(pool.available().unwrap(), 2);
    // A lost count is counted again.
    let () = redis::cmd("SET")
        .arg(format!("{}:q", lease_set(name)))
        .arg("garbage")
        .query(&mut admin)
        .unwrap();
    assert!(pool.try_acquire(3).unwrap().is_none(), "3 of 5 are held");
    assert_count_matches(&mut admin, name);
    let one = pool.try_acquire(1).unwrap().unwrap();
    assert_count_matches(&mut admin, name);
    assert!(pool.force_release_all().unwrap());
    assert_count_matches(&mut admin, name);
    assert_eq!(pool.available().unwrap(), 5);
    drop((one, kept));
    // A lease set deleted under a count leaves no permit counted.
    let held = pool.acquire(4).unwrap();
    let () = redis::cmd("DEL")
        .arg(lease_set(name))
        .query(&mut admin)
        .unwrap();
    let all = pool.try_acquire(5).unwrap().expect("every permit is free");
    assert_count_matches(&mut admin, name);
    drop((held, all));
    assert_count_matches(&mut admin, name);
}
