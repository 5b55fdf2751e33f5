//! Attacks on the Redlock "withheld" outcome (masters younger than the
//! restart delay are the only reason a quorum is missing) and on Cluster's
//! "answered busy" errors (TRYAGAIN, CLUSTERDOWN ridden out on the first
//! attempt), with real redis-server processes and the public API only.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::{scripts_run, wait_until, RedisServer};

const TIMEOUT: Duration = Duration::from_millis(500);
/// Longer than anything these tests wait for: a fresh master stays young.
const LONG_TTL: Duration = Duration::from_secs(3600);

fn masters(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}

fn urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

/// A client with the default restart delay (the largest ttl it uses).
fn client_over(urls: &[String]) -> Client {
    Client::redlock_builder(urls)
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .unwrap()
}

fn long_lease() -> LockOptions {
    LockOptions::new().ttl(LONG_TTL).auto_renew(false)
}

/// The lock's own key on `server` (not the fence counter or others).
fn holders_on(server: &RedisServer, name: &str) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{{{name}}}*"))
        .query(&mut server.admin())
        .unwrap();
    keys.into_iter()
        .filter(|k| !k.ends_with(":fence"))
        .collect()
}

/// Every key a lock may have left, per master, must be gone.
fn assert_no_holds(servers: &[RedisServer], name: &str) {
    for (i, s) in servers.iter().enumerate() {
        let left = holders_on(s, name);
        assert!(left.is_empty(), "master {i} kept {left:?} after the call");
    }
}

/// try_acquire and a timed-out acquire on three fresh masters: NoQuorum
/// naming the restart delay, and nothing left on any master.
#[test]
fn a_withheld_attempt_leaves_no_hold_on_any_master() {
    let servers = masters(3);
    let client = client_over(&urls(&servers));
    let lock = client.lock_with("leak", long_lease()).unwrap();
    let err = lock.try_acquire().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert!(err.to_string().contains("restart delay"), "{err}");
    assert_no_holds(&servers, "leak");
    let started = Instant::now();
    let err = lock
        .acquire_timeout(Duration::from_millis(700))
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert!(err.to_string().contains("restart delay"), "{err}");
    eprintln!("acquire_timeout(700ms) during the restart delay returned after {took:?}: {err}");
    assert_no_holds(&servers, "leak");
}

/// Runs `acquire_with(None, cancel)` on a thread until the waiter has made
/// its first attempt, then `stop`s it; returns the error and how long the
/// stop took to end the call.
fn stop_a_withheld_wait(
    stop: impl FnOnce(&Client, &CancelToken),
) -> (latchkey::Error, Duration, Vec<RedisServer>) {
    let servers = masters(3);
    let client = client_over(&urls(&servers));
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel();
    let before = scripts_run(&servers[0]);
    let (err, took) = thread::scope(|scope| {
        let lock = client.lock_with("stop", long_lease()).unwrap();
        let token = &cancel;
        scope.spawn(move || {
            let outcome = lock.acquire_with(None, Some(token));
            tx.send(outcome.map(|g| g.token().to_string())).unwrap();
        });
        // Its first attempt (an acquire and the give-back of its grant):
        // it then waits until the masters count, far beyond the test.
        wait_until(
            "the waiter has made its first attempt",
            Duration::from_secs(10),
            || scripts_run(&servers[0]) >= before + 2,
        );
        let stopped = Instant::now();
        stop(&client, &cancel);
        let outcome = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the withheld wait ignored the stop for 10 s");
        let took = stopped.elapsed();
        (outcome.unwrap_err(), took)
    });
    (err, took, servers)
}

#[test]
fn a_cancel_ends_a_withheld_wait_and_leaves_nothing() {
    let (err, took, servers) = stop_a_withheld_wait(|_, cancel| cancel.cancel());
    eprintln!("cancel ended the withheld wait after {took:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    wait_until("no hold is left", Duration::from_secs(5), || {
        servers.iter().all(|s| holders_on(s, "stop").is_empty())
    });
}

#[test]
fn a_close_ends_a_withheld_wait_and_leaves_nothing() {
    let (err, took, servers) = stop_a_withheld_wait(|client, _| client.close().unwrap());
    eprintln!("close ended the withheld wait after {took:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    wait_until("no hold is left", Duration::from_secs(5), || {
        servers.iter().all(|s| holders_on(s, "stop").is_empty())
    });
}

/// Two waiters during the restart delay, then the delay ends: exactly one
/// holds at a time (the withheld attempts' transient grants must not turn
/// into two guards).
#[test]
fn two_withheld_waiters_never_both_hold() {
    let servers = masters(3);
    let u = urls(&servers);
    let delay = Duration::from_secs(3);
    let ttl = Duration::from_secs(2);
    let build = || {
        Client::redlock_builder(&u)
            .connect_timeout(TIMEOUT)
            .command_timeout(TIMEOUT)
            .redlock_restart_delay(delay)
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let opts = || LockOptions::new().ttl(ttl);
    let la = a.lock_with("pair", opts()).unwrap();
    let lb = b.lock_with("pair", opts()).unwrap();
    // Each holds for a moment, checking that the other does not; both
    // get the lock once the masters count, one after the other, whoever
    // is first.
    let holding = std::sync::atomic::AtomicBool::new(false);
    let take = |lock: &latchkey::Lock| {
        let guard = lock.acquire_timeout(Duration::from_secs(30)).unwrap();
        assert!(
            !holding.swap(true, std::sync::atomic::Ordering::SeqCst),
            "both withheld waiters hold 'pair'"
        );
        thread::sleep(Duration::from_millis(300));
        holding.store(false, std::sync::atomic::Ordering::SeqCst);
        let token = guard.fencing_token();
        guard.release().unwrap();
        token
    };
    let (ta, tb) = thread::scope(|scope| {
        let ha = scope.spawn(|| take(&la));
        let hb = scope.spawn(|| take(&lb));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_ne!(ta, tb);
}

// ---- Cluster ---------------------------------------------------------------

fn cluster_client(nodes: &[&RedisServer]) -> Client {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    Client::cluster_builder(&urls)
        .connect_timeout(TIMEOUT)
        .command_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Every master of a 3-master cluster killed (their replicas live on but
/// can never be elected): the cluster is down for good. Passes: every call
/// fails at once with Connection (try_acquire, acquire_timeout(5 s), a
/// fresh client seeded with the replicas, acquire() without deadline: each
/// after 1.0 s, one command timeout), as the slot map still names the dead
/// masters and no CLUSTERDOWN is ever answered.
#[test]
fn a_cluster_down_for_good() {
    let mut nodes = support::cluster::start_nodes(1000);
    let client = cluster_client(&nodes.iter().collect::<Vec<_>>());
    support::warm_up(&client);
    let lock = client.lock("down").unwrap();
    drop(lock.acquire().unwrap());
    let masters: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query(&mut nodes[i].admin())
                .unwrap_or_default();
            matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master")
        })
        .collect();
    assert_eq!(masters.len(), 3);
    for &i in &masters {
        nodes[i].kill();
    }
    let replicas: Vec<&RedisServer> = (0..nodes.len())
        .filter(|i| !masters.contains(i))
        .map(|i| &nodes[i])
        .collect();
    wait_until(
        "the replicas say the cluster is down",
        Duration::from_secs(30),
        || {
            replicas.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.admin())
                    .unwrap_or_default();
                info.contains("cluster_state:fail")
            })
        },
    );
    let started = Instant::now();
    let tried = lock.try_acquire();
    eprintln!(
        "try_acquire on a dead cluster: {:?} after {:?}",
        tried.as_ref().map(Option::is_some),
        started.elapsed()
    );
    let started = Instant::now();
    let waited = lock.acquire_timeout(Duration::from_secs(5));
    eprintln!(
        "acquire_timeout(5 s) on a dead cluster: {:?} after {:?}",
        waited.as_ref().map(|g| g.token().to_string()),
        started.elapsed()
    );
    // A fresh client, seeded with the dead masters' replicas only.
    let fresh = cluster_client(&replicas);
    let started = Instant::now();
    let fresh_lock = fresh.lock("down").unwrap();
    let waited = fresh_lock.acquire_timeout(Duration::from_secs(5));
    eprintln!(
        "fresh client, acquire_timeout(5 s) on a dead cluster: {:?} after {:?}",
        waited.as_ref().map(|g| g.token().to_string()),
        started.elapsed()
    );
    let unbounded = acquire_without_deadline(&lock, Duration::from_secs(8));
    eprintln!("acquire() with no deadline on a dead cluster: {unbounded}");
    // The slot map still names the dead masters: a refused connection, not
    // CLUSTERDOWN, so every call fails at once (as before f7855bf).
    assert!(matches!(tried, Err(e) if e.kind() == ErrorKind::Connection));
    assert!(unbounded.starts_with("returned Err"), "{unbounded}");
}

/// A wrong seed address (nothing listens there) still fails at once, and a
/// seed that is a plain (non-cluster) server too.
#[test]
fn a_wrong_cluster_seed_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = Instant::now();
    let built = Client::cluster_builder(&[format!("redis://127.0.0.1:{port}")])
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build();
    let outcome = built.and_then(|c| {
        let lock = c.lock("seed")?;
        lock.acquire_timeout(Duration::from_secs(20)).map(|_| ())
    });
    let took = started.elapsed();
    eprintln!("wrong seed: {outcome:?} after {took:?}");
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    // The acquire must not wait out its 20 s deadline.
    assert!(took < Duration::from_secs(15), "took {took:?}");

    let plain = RedisServer::start();
    let started = Instant::now();
    let outcome = Client::cluster_builder(&[plain.url()])
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .and_then(|c| {
            let lock = c.lock("seed")?;
            lock.acquire_timeout(Duration::from_secs(20)).map(|_| ())
        });
    let took = started.elapsed();
    eprintln!("non-cluster seed: {outcome:?} after {took:?}");
    assert!(outcome.is_err());
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A real loss of quorum (two of three masters stopped with SIGSTOP):
/// how long acquire_timeout takes in Rust (compare with Python).
#[test]
fn a_real_no_quorum_costs_one_attempt() {
    let servers = masters(3);
    let client = Client::redlock_builder(&urls(&servers))
        .connect_timeout(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(1))
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap();
    let lock = client.lock("gone").unwrap();
    drop(lock.acquire().unwrap());
    servers[1].signal(libc::SIGSTOP);
    servers[2].signal(libc::SIGSTOP);
    let started = Instant::now();
    let err = lock
        .acquire_timeout(Duration::from_millis(100))
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("Rust acquire_timeout(100ms), 2 of 3 stopped: {err} after {took:?}");
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    servers[1].signal(libc::SIGCONT);
    servers[2].signal(libc::SIGCONT);
}

/// A waiter during the restart delay asks again when the youngest master
/// counts again (or at its deadline), not before. Before, `Withheld`'s
/// `retry_in` went to `park`, which clamped it to 100 ms as the withheld
/// waiter never subscribed: 22 attempts (each an acquire on every master
/// and a give-back, which PUBLISHes a release message to every real
/// waiter) in a 2 s acquire_timeout, 3 of 3 runs, for a restart delay of
/// an hour. README: "No polling".
#[test]
fn a_withheld_waiter_does_not_poll() {
    let servers = masters(3);
    let client = client_over(&urls(&servers));
    let lock = client.lock_with("poll", long_lease()).unwrap();
    let before = scripts_run(&servers[0]);
    let err = lock.acquire_timeout(Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    // Every attempt runs two scripts on each master: the acquire and the
    // give-back of its grant.
    let attempts = (scripts_run(&servers[0]) - before) / 2;
    eprintln!("a 2 s wait during a 1 h restart delay made {attempts} attempts");
    assert!(
        attempts <= 3,
        "{attempts} attempts in 2 s while nothing can change for an hour"
    );
}

/// Waits `limit` for `lock.acquire_with(None, cancel)`, then cancels it;
/// says what happened.
fn acquire_without_deadline(lock: &latchkey::Lock, limit: Duration) -> String {
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        let token = &cancel;
        scope.spawn(move || {
            let started = Instant::now();
            let outcome = lock.acquire_with(None, Some(token));
            tx.send((outcome.map(|g| g.token().to_string()), started.elapsed()))
                .unwrap();
        });
        match rx.recv_timeout(limit) {
            Ok((outcome, took)) => format!("returned {outcome:?} after {took:?}"),
            Err(_) => {
                cancel.cancel();
                let (outcome, took) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                format!("still waiting after {limit:?}, cancelled: {outcome:?} after {took:?}")
            }
        }
    })
}

/// One shard of the cluster lost for good (a master and its replica
/// killed; `cluster-require-full-coverage` is on by default), so every
/// live master answers CLUSTERDOWN for every slot. When CLUSTERDOWN was
/// "answered busy" (ridden out from the first attempt), an acquire() with
/// no deadline of a lock whose slot is on a LIVE master waited silently
/// forever, while a lock whose slot was on the dead master failed at once
/// with Connection (the slot map still names the dead master): one outage,
/// two behaviours, 4 of 4 runs. Observed then:
///   live master: acquire_timeout(5 s): Err(CLUSTERDOWN ...) after 5.754s
///   live master: acquire() with no deadline: still waiting after 8s
///   dead master: every call: Err(Connection refused) after 1.0007s
/// Now only TRYAGAIN (a migration under way) is waited out on a first
/// attempt; CLUSTERDOWN, which a cluster may say for ever, fails it.
#[test]
fn a_cluster_with_one_shard_lost_for_good() {
    let mut nodes = support::cluster::start_nodes(1000);
    let client = cluster_client(&nodes.iter().collect::<Vec<_>>());
    support::warm_up(&client);
    // Two lock names, one on each of two different masters.
    let master_of = |name: &str| {
        let slot = support::cluster::slot_of(&nodes[0], &format!("latchkey:{{{name}}}"));
        support::cluster::master_index(&nodes, 0, slot).unwrap()
    };
    let dead_name = "shard-a";
    let dead = master_of(dead_name);
    let live_name = (0..100)
        .map(|i| format!("shard-b{i}"))
        .find(|n| master_of(n) != dead)
        .unwrap();
    let on_live = client.lock(&live_name).unwrap();
    let on_dead = client.lock(dead_name).unwrap();
    drop(on_live.acquire().unwrap());
    drop(on_dead.acquire().unwrap());
    let replica = support::cluster::replica_index(&nodes, dead);
    nodes[replica].kill();
    nodes[dead].kill();
    let live: Vec<usize> = (0..nodes.len())
        .filter(|&i| i != dead && i != replica)
        .collect();
    wait_until(
        "the live nodes say the cluster is down",
        Duration::from_secs(30),
        || {
            live.iter().all(|&i| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut nodes[i].admin())
                    .unwrap_or_default();
                info.contains("cluster_state:fail")
            })
        },
    );
    let mut outcomes = Vec::new();
    for (what, lock) in [("live master", &on_live), ("dead master", &on_dead)] {
        let started = Instant::now();
        let tried = lock.try_acquire().map(|g| g.is_some());
        eprintln!(
            "{what}: try_acquire: {tried:?} after {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let waited = lock
            .acquire_timeout(Duration::from_secs(5))
            .map(|g| g.token().to_string());
        eprintln!(
            "{what}: acquire_timeout(5 s): {waited:?} after {:?}",
            started.elapsed()
        );
        let unbounded = acquire_without_deadline(lock, Duration::from_secs(8));
        eprintln!("{what}: acquire() with no deadline: {unbounded}");
        outcomes.push((what, unbounded));
    }
    // Both locks meet the same outage: both should give up by themselves
    // (as the lock on the dead master does), not wait silently forever.
    for (what, unbounded) in outcomes {
        assert!(
            unbounded.starts_with("returned"),
            "lock on the {what}: acquire() with no deadline {unbounded}"
        );
    }
}
