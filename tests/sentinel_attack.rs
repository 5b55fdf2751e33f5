//! Attacks on the Sentinel failover handling: the client listens to the
//! sentinels' announcements, moves to the new master, re-checks its renewed
//! leases there and moves its waiters. Every test uses real redis-server
//! and sentinel processes (`tests/support/sentinel.rs`); the faults are a
//! sentinel killed or stopped with SIGSTOP, a write lost on the way to the
//! replica (deleted on the replica before it is promoted, as asynchronous
//! replication can lose it), a fork while another thread runs a command,
//! and clients dropped in a loop.
//!
//! The tests run one at a time (`serial`): each starts its own deployment
//! and some count this process's threads.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, LockOptions};
use parking_lot::{Mutex, MutexGuard};
use support::in_forked_child;
use support::sentinel::{
    client_of, first_wait_behind_a_held_lock, forbid_subscriptions, lose_on_replica, owner_on,
    request_failover, uses, SentinelDeployment,
};
use support::{replication_field, wait_until, warm_up, RedisServer};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: deployments are heavy on two cores, and thread
/// counts must not see another test's clients.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path().join("comm");
            Some(std::fs::read_to_string(path).ok()?.trim().to_string())
        })
        .collect()
}

/// Forks a child that runs one command of `client` and leaves; returns its
/// wait status, or `None` when it was still running after `limit`.
fn run_in_child(client: &Client, limit: Duration) -> Option<i32> {
    in_forked_child(limit, || {
        let _ = client.lock("child").unwrap().try_acquire();
    })
}

/// The first command of a client starts its announcement listeners and
/// waits for one sentinel to confirm. Before the fix it waited sentinel by
/// sentinel, so the first listed sentinel being down cost the whole
/// command timeout, whatever the others did and whatever the caller's own
/// deadline: a waiter asking for 200 ms waited 3 s. Now any sentinel's
/// confirmation ends the wait.
#[test]
fn a_dead_first_sentinel_does_not_hold_a_waiter_past_its_timeout() {
    let _serial = serial();
    let mut deployment = SentinelDeployment::start(1);
    deployment.sentinels[0].kill();
    let (got, took) = first_wait_behind_a_held_lock(&deployment);
    assert_eq!(got, Some(ErrorKind::Timeout));
    assert!(
        took < Duration::from_secs(1),
        "an acquire with a 200 ms timeout took {took:?} (two sentinels of three were up)"
    );
}

/// `listen_for_failovers` held the `listeners` mutex while it waited for a
/// sentinel to confirm (up to the command timeout). A fork in that moment
/// copied the mutex locked; the child's first command locked it to start
/// its own listeners and never returned. Now the wait holds no lock, and
/// the listeners are per process.
#[test]
fn a_fork_during_the_first_command_does_not_hang_the_child() {
    let _serial = serial();
    let mut deployment = SentinelDeployment::start(1);
    // The first sentinel down widens the moment to the command timeout;
    // with all up it lasts until the first subscription is confirmed.
    deployment.sentinels[0].kill();
    let client = deployment
        .builder()
        .command_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let first = {
        let client = client.clone();
        thread::spawn(move || {
            let _ = client.lock("parent").unwrap().try_acquire();
        })
    };
    thread::sleep(Duration::from_millis(500));
    let status = in_forked_child(Duration::from_secs(15), || {
        if let Err(e) = client.lock("child").unwrap().try_acquire() {
            eprintln!("the child's try_acquire: {e}");
        }
    });
    first.join().unwrap();
    let status = status.expect(
        "the child's first command was still blocked 15 s after the fork \
         (its own wait for the sentinels lasts 3 s)",
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child ended with wait status {status:#x}"
    );
}

/// A child forked after the parent's first command (nothing held) while a
/// sentinel is down: the parent's listener for it is parked, backing off.
/// The child's first command starts its own listeners. When it also waited
/// for them to subscribe (a timed wait), a debug build sometimes panicked
/// inside parking_lot ("There should be no way for our thread to have been
/// removed from the queue if we timed out", parking_lot_core 0.9.12): one
/// child of six in 2 of 6 runs. A forked child no longer waits there.
#[test]
fn children_forked_while_a_sentinel_is_down_run_their_first_command() {
    let _serial = serial();
    let mut deployment = SentinelDeployment::start(1);
    deployment.sentinels[0].kill();
    let statuses: Vec<Option<i32>> = (0..6)
        .map(|_| {
            let client = deployment
                .builder()
                .command_timeout(Duration::from_secs(3))
                .build()
                .unwrap();
            // The first command on another thread, over before the fork.
            let first = client.clone();
            thread::spawn(move || warm_up(&first)).join().unwrap();
            thread::sleep(Duration::from_secs(1));
            run_in_child(&client, Duration::from_secs(10))
        })
        .collect();
    assert!(
        statuses.iter().all(|s| *s == Some(0)),
        "wait statuses of the children (None: hung): {statuses:?}"
    );
}

/// A lease with `auto_renew(false)` is not in the watchdog's schedule, so a
/// switch does not re-check it (documented: `check()` is local, only the
/// ttl ends it there): after a failover to a replica that never got the
/// lock, `check()` says held while a client of the new master holds it.
/// `confirm()` asks the new master and says no. The renewed lease of the
/// same client, lost the same way, is reported lost at once.
#[test]
fn after_a_failover_confirm_sees_that_the_new_master_lacks_an_unrenewed_lease() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let replica = &deployment.replicas[0];
    let client = deployment.client();
    let ttl = LockOptions::new().ttl(Duration::from_secs(60));
    let renewed = client
        .lock_with("renewed", ttl.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let manual = client
        .lock_with("manual", ttl.auto_renew(false))
        .unwrap()
        .acquire()
        .unwrap();
    wait_until(
        "both locks reach the replica",
        Duration::from_secs(10),
        || {
            owner_on(replica, "renewed").as_deref() == Some(renewed.token())
                && owner_on(replica, "manual").as_deref() == Some(manual.token())
        },
    );
    lose_on_replica(replica, &["renewed", "manual"]);

    deployment.fail_over();
    wait_until(
        "the client moved to the promoted replica",
        Duration::from_secs(10),
        || uses(&client, replica.port),
    );
    wait_until(
        "the renewed lease is reported lost",
        Duration::from_secs(5),
        || renewed.lost(),
    );
    let other = deployment.client();
    let theirs = other
        .lock("manual")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the new master has no 'manual' lock");
    assert!(
        manual.check().is_ok(),
        "check() is local: held until the ttl"
    );
    assert!(
        !manual.confirm().unwrap(),
        "confirm() says 'manual' is ours while the new master gives it to fencing token {}",
        theirs.fencing_token()
    );
}

/// A client cut off from its sentinels cannot hear a failover: its release
/// reaches the replaced master (still taking writes) and is reported Ok,
/// while the promoted replica keeps the hold. That costs the lock at most
/// the hold's ttl (a liveness cost, not a double hold; README, Sentinel
/// row): another client gets it once the ttl ran out.
#[test]
fn a_release_the_replaced_master_accepted_costs_the_new_master_at_most_the_ttl() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let replica = &deployment.replicas[0];
    let deaf = client_of(&[&deployment.sentinels[2]]);
    let ttl = Duration::from_secs(5);
    let guard = deaf
        .lock_with("stuck", LockOptions::new().ttl(ttl))
        .unwrap()
        .acquire()
        .unwrap();
    wait_until(
        "the lock reaches the replica",
        Duration::from_secs(10),
        || owner_on(replica, "stuck").as_deref() == Some(guard.token()),
    );
    deployment.sentinels[2].signal(libc::SIGSTOP);
    deployment.fail_over();
    wait_until("the replica is a master", Duration::from_secs(10), || {
        replication_field(replica, "role").as_deref() == Some("master")
    });
    // Ok or not: the old master may have been demoted already.
    let _ = guard.release();
    deployment.sentinels[2].signal(libc::SIGCONT);
    let other = deployment
        .client()
        .lock("stuck")
        .unwrap()
        .acquire_timeout(ttl + Duration::from_secs(10))
        .expect("the hold left on the new master outlived its ttl");
    other.release().unwrap();
}

/// Clients built and dropped in a loop, some while a sentinel is stopped,
/// leave no thread behind: each listener ends when its client is dropped.
#[test]
fn dropped_clients_leave_no_threads_behind() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let baseline = thread_names();
    for _ in 0..10 {
        let client = deployment.client();
        warm_up(&client);
        drop(client);
    }
    deployment.sentinels[2].signal(libc::SIGSTOP);
    for _ in 0..3 {
        let client = deployment.client();
        warm_up(&client);
        drop(client);
    }
    deployment.sentinels[2].signal(libc::SIGCONT);
    let mut now = thread_names();
    let deadline = Instant::now() + Duration::from_secs(10);
    while now.len() > baseline.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        now = thread_names();
    }
    assert!(
        now.len() <= baseline.len(),
        "threads before: {baseline:?}, after: {now:?}"
    );
}

/// Dropping the last handle of a client while its announcement listener
/// runs the switch hook (the hook's upgrade may then hold the last
/// reference, so the client's state drops on the listener thread itself):
/// no deadlock, no panic, no thread left.
#[test]
fn dropping_a_client_while_it_moves_to_a_new_master_neither_hangs_nor_leaks() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(2);
    let baseline = thread_names().len();
    let clients: Vec<Client> = (0..6).map(|_| deployment.client()).collect();
    let mut guards = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        warm_up(client);
        guards.push(
            client
                .lock_with(&format!("held-{i}"), LockOptions::new())
                .unwrap()
                .acquire()
                .unwrap(),
        );
    }
    let (tx, rx) = mpsc::channel();
    let dropper = thread::spawn(move || {
        // Drop one client every 400 ms while the failover is announced.
        for (client, guard) in clients.into_iter().zip(guards) {
            drop(client);
            drop(guard);
            thread::sleep(Duration::from_millis(400));
        }
        tx.send(()).unwrap();
    });
    let old = deployment.master.port;
    request_failover(&mut deployment.sentinels[0].admin(), "mymaster");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("dropping the clients hung");
    dropper.join().unwrap();
    wait_until(
        "the sentinels name a new master",
        Duration::from_secs(30),
        || SentinelDeployment::master_port_per(&deployment.sentinels[0]).is_some_and(|p| p != old),
    );
    wait_until("no thread is left", Duration::from_secs(10), || {
        thread_names().len() <= baseline
    });
}

/// A client that cannot subscribe to the sentinels (their user may not use
/// channels) hears no announcement, and nothing says so. It finds the new
/// master the old way, when a command meets the demoted one (`READONLY`).
/// Before the fix that switch did not run the switch hook, so a lease the
/// new master lacked was reported lost only at its next renewal (ttl/3,
/// 20 s here) while a client of the new master held it too. Now every
/// change of master runs it.
#[test]
fn a_client_that_finds_the_new_master_through_a_refused_command_rechecks_its_leases() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let replica = &deployment.replicas[0];
    forbid_subscriptions(&deployment);
    let client = deployment.client();
    let lease = client
        .lock_with("unheard", LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();
    wait_until(
        "the lock reaches the replica",
        Duration::from_secs(10),
        || owner_on(replica, "unheard").as_deref() == Some(lease.token()),
    );
    lose_on_replica(replica, &["unheard"]);
    deployment.fail_over();
    wait_until("the old master is demoted", Duration::from_secs(30), || {
        replication_field(&deployment.master, "role").as_deref() == Some("slave")
    });
    assert!(
        !uses(&client, replica.port),
        "the client heard an announcement after all"
    );
    // Any command now meets the demoted master and moves the client.
    let poke = client.lock("poke").unwrap().try_acquire().unwrap();
    drop(poke);
    assert!(uses(&client, replica.port));
    let theirs = deployment
        .client()
        .lock("unheard")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the new master has no 'unheard' lock");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !lease.lost() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        lease.lost(),
        "3 s after the client moved, both clients hold 'unheard' (fencing tokens {} and {}); \
         the first has {:?} left",
        lease.fencing_token(),
        theirs.fencing_token(),
        lease.remaining()
    );
}

/// Two failovers in a row (X→Y, then Y→W) while two of the three sentinels
/// are stopped. When they resume, each first reads the hello messages of
/// the first failover and announces `+switch-master` to Y, the deposed
/// master, then the second and announces W. Y still says `role:master`
/// (the sentinels demote a deposed master seconds later), so before the
/// fix the client believed the late announcement and moved back to Y; with
/// W stopped for that moment it stayed on the deposed master, reported its
/// valid lease on W lost and took a lock that a client of W held. Now an
/// announcement counts only if it replaces the master in use.
#[test]
fn a_late_announcement_of_the_deposed_master_does_not_move_the_client_back() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(2);
    let client = deployment.client();
    warm_up(&client);
    let [leader, late @ ..] = &deployment.sentinels[..] else {
        unreachable!("three sentinels")
    };
    for sentinel in late {
        sentinel.signal(libc::SIGSTOP);
    }
    let fail_over_from = |old: u16| {
        request_failover(&mut leader.admin(), "mymaster");
        let mut new = old;
        wait_until(
            "the leading sentinel names a new master",
            Duration::from_secs(30),
            || {
                new = SentinelDeployment::master_port_per(leader).unwrap_or(old);
                new != old
            },
        );
        wait_until("the client moved to it", Duration::from_secs(10), || {
            uses(&client, new)
        });
        new
    };
    let deposed = fail_over_from(deployment.master.port);
    // The leader says hello (naming the first new master) every 2 s.
    thread::sleep(Duration::from_secs(3));
    let current = fail_over_from(deposed);
    let server = |port: u16| {
        std::iter::once(&deployment.master)
            .chain(&deployment.replicas)
            .find(|s| s.port == port)
            .unwrap()
    };
    let lease = client
        .lock_with("on-new", LockOptions::new().ttl(Duration::from_secs(60)))
        .unwrap()
        .acquire()
        .unwrap();

    server(current).signal(libc::SIGSTOP);
    for sentinel in late {
        sentinel.signal(libc::SIGCONT);
    }
    thread::sleep(Duration::from_millis(1500));
    server(current).signal(libc::SIGCONT);
    let moved_back = uses(&client, deposed);
    let lost_while_held = lease.lost() && owner_on(server(current), "on-new").is_some();
    let theirs = deployment
        .client()
        .lock("split")
        .unwrap()
        .try_acquire()
        .unwrap();
    let ours = client.lock("split").unwrap().try_acquire().unwrap();
    let both_hold = theirs.is_some() && ours.is_some();
    assert!(
        !(moved_back || lost_while_held || both_hold),
        "the client moved back to the deposed master on {deposed}: {moved_back}; its lease \
         on {current} reported lost while held there: {lost_while_held}; both clients hold \
         'split': {both_hold}"
    );
}

/// A connection to `server` that authenticates with `password` first.
fn admin_with_password(server: &RedisServer, password: &str) -> redis::Connection {
    let url = format!("redis://:{password}@127.0.0.1:{}", server.port);
    let conn = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

/// Sentinels that require a password: the client's announcement listeners
/// authenticate with the password of the sentinel URLs and the client
/// moves to the new master without any command of its own.
#[test]
fn a_client_of_sentinels_with_a_password_hears_the_failover() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let password = "sentinel-secret";
    for sentinel in &deployment.sentinels {
        let mut admin = sentinel.admin();
        let _: () = redis::cmd("SENTINEL")
            .arg("CONFIG")
            .arg("SET")
            .arg("sentinel-pass")
            .arg(password)
            .query(&mut admin)
            .unwrap();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetpass")
            .arg(format!(">{password}"))
            .query(&mut admin)
            .unwrap();
    }
    let urls: Vec<String> = deployment
        .sentinels
        .iter()
        .map(|s| format!("redis://:{password}@127.0.0.1:{}", s.port))
        .collect();
    let client = Client::sentinel_builder(&urls, "mymaster")
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    warm_up(&client);
    request_failover(
        &mut admin_with_password(&deployment.sentinels[0], password),
        "mymaster",
    );
    wait_until(
        "the client moved to the promoted replica",
        Duration::from_secs(20),
        || uses(&client, deployment.replicas[0].port),
    );
}

/// The sentinels also watch `mymaster2`; its failover is announced with a
/// name that starts with `mymaster`. A client of `mymaster` stays put.
#[test]
fn a_failover_of_a_master_whose_name_extends_ours_does_not_move_the_client() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let other = RedisServer::start();
    let other_replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &other.port.to_string()]);
    wait_until(
        "the other replica is in sync",
        Duration::from_secs(30),
        || replication_field(&other_replica, "master_link_status").as_deref() == Some("up"),
    );
    for sentinel in &deployment.sentinels {
        let mut admin = sentinel.admin();
        let _: () = redis::cmd("SENTINEL")
            .arg("MONITOR")
            .arg("mymaster2")
            .arg("127.0.0.1")
            .arg(other.port)
            .arg(2)
            .query(&mut admin)
            .unwrap();
        wait_until(
            "the sentinel sees the other replica",
            Duration::from_secs(30),
            || {
                let known: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg("mymaster2")
                    .query(&mut admin)
                    .unwrap_or_default();
                known.len() == 1
            },
        );
    }
    let client = deployment.client();
    warm_up(&client);
    assert!(uses(&client, deployment.master.port));
    request_failover(&mut deployment.sentinels[0].admin(), "mymaster2");
    wait_until(
        "every sentinel names the other replica for mymaster2",
        Duration::from_secs(30),
        || {
            deployment.sentinels.iter().all(|s| {
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg("mymaster2")
                    .query::<(String, u16)>(&mut s.admin())
                    .is_ok_and(|(_, port)| port == other_replica.port)
            })
        },
    );
    assert!(
        uses(&client, deployment.master.port),
        "the client of 'mymaster' moved: {client:?}"
    );
    warm_up(&client);
}
