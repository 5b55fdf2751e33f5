//! `wait_for_replicas` confirms renewals, not only acquires: a failover can
//! promote a replica that missed the renewals, and its copy of the lock
//! expires when the last renewal it confirmed says. A lease here must not
//! outlive that copy, or a client of the new master takes the lock while
//! the holder's `check()` is still Ok.
//!
//! Before renewals waited for the replicas, both tests here failed: the
//! holder's `check()` was Ok while a second client held the lock (each
//! failed 3 runs of 3). Real processes only: the replica misses the
//! renewals because its replication link goes through a forwarder in the
//! test that drops every byte (`support::blackhole`).

mod support;

use std::time::Duration;

use latchkey::{Client, LockOptions};
use parking_lot::{Mutex, MutexGuard};
use support::blackhole::Blackhole;
use support::cluster;
use support::sentinel::{key, SentinelDeployment};
use support::{acquire_confirmed, replication_field, wait_until, warm_up, RedisServer};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: deployments are heavy on two cores.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

/// Whether `server` says the key of lock `name` is gone (a replica says so
/// of a key past its expiry, without deleting it).
fn gone_on(server: &RedisServer, name: &str) -> bool {
    redis::cmd("PTTL")
        .arg(key(name))
        .query::<i64>(&mut server.admin())
        .is_ok_and(|pttl| pttl == -2)
}

/// Points `replica` at its master through a forwarder and waits until the
/// link is up again; returns the forwarder.
fn replicate_through_a_forwarder(replica: &RedisServer, master_port: u16) -> Blackhole {
    let link = Blackhole::start(master_port);
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(link.port)
        .query(&mut replica.admin())
        .unwrap();
    wait_until(
        "the replica replicates through the forwarder",
        Duration::from_secs(30),
        || {
            replication_field(replica, "master_port") == Some(link.port.to_string())
                && replication_field(replica, "master_link_status").as_deref() == Some("up")
        },
    );
    link
}

/// Sentinel, `wait_for_replicas` with every replica (the README's advice):
/// after the acquire the replica's replication link is cut (every byte
/// dropped) and the holder is cut off from the sentinels (it hears no
/// announcement). Its renewals reach the master only. Once the replica's
/// copy has expired, the sentinels promote that replica; a client of the
/// new master takes the lock at once. The holder must not be holding too.
/// Before the fix its renewals, which no replica confirmed, kept its
/// `check()` Ok (failed 3 of 3 runs).
#[test]
fn sentinel_a_renewal_no_replica_confirmed_does_not_outlive_the_promoted_copy() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let replica = &deployment.replicas[0];
    // A sentinel puts a replica that follows another address than the
    // master's back on the master after the failover timeout: not during
    // this test.
    for sentinel in &deployment.sentinels {
        let _: () = redis::cmd("SENTINEL")
            .arg("SET")
            .arg("mymaster")
            .arg("failover-timeout")
            .arg(600_000)
            .query(&mut sentinel.admin())
            .unwrap();
    }
    let replication = replicate_through_a_forwarder(replica, deployment.master.port);
    let paths: Vec<Blackhole> = deployment
        .sentinels
        .iter()
        .map(|s| Blackhole::start(s.port))
        .collect();
    let urls: Vec<String> = paths.iter().map(Blackhole::url).collect();
    let holder = Client::sentinel_builder(&urls, "mymaster")
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .wait_for_replicas(1, Duration::from_millis(200))
        .build()
        .unwrap();
    // The other client is not required to wait: it takes the lock on the
    // new master, which has no replica yet.
    let other = deployment.client();
    warm_up(&holder);
    warm_up(&other);

    let ours = acquire_confirmed(
        &holder
            .lock_with("split", LockOptions::new().ttl(Duration::from_secs(4)))
            .unwrap(),
    );
    replication.cut();
    for path in &paths {
        path.cut();
    }
    // The master keeps the renewed lock; the replica's copy runs out.
    wait_until(
        "the replica's copy of the lock expired",
        Duration::from_secs(30),
        || gone_on(replica, "split"),
    );
    assert!(
        !gone_on(&deployment.master, "split"),
        "the master dropped the lock: its renewals did not reach it"
    );
    deployment.fail_over();
    let mut theirs = None;
    wait_until(
        "a client of the new master takes the lock",
        Duration::from_secs(30),
        || {
            theirs = other
                .lock_with("split", LockOptions::new().ttl(Duration::from_secs(30)))
                .unwrap()
                .try_acquire()
                .ok()
                .flatten();
            theirs.is_some()
        },
    );
    let theirs = theirs.unwrap();
    let holder_says = ours.check();
    assert!(
        !(holder_says.is_ok() && theirs.check().is_ok()),
        "two clients hold 'split': the holder's check() is Ok (its renewals reached the \
         old master only) while a client of the promoted replica holds it with fencing \
         token {}",
        theirs.fencing_token()
    );
}

/// The node that serves `name`'s slot as master, among `nodes`.
fn cluster_master_of<'a>(nodes: &'a [RedisServer], name: &str) -> &'a RedisServer {
    let mut admin = nodes[0].admin();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key(name))
        .query(&mut admin)
        .unwrap();
    let shards: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut admin)
        .unwrap()
        .into_iter()
        .filter_map(|range| {
            let redis::Value::Array(f) = range else {
                return None;
            };
            let (redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(m)) =
                (f.first()?, f.get(1)?, f.get(2)?)
            else {
                return None;
            };
            let redis::Value::Int(port) = m.get(1)? else {
                return None;
            };
            Some((*first as u16, *last as u16, (String::new(), *port as u16)))
        })
        .collect();
    let port = shards
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .map(|(_, _, (_, port))| *port)
        .expect("a master serves the slot");
    nodes.iter().find(|n| n.port == port).unwrap()
}

/// Cluster, `wait_for_replicas` with the one replica of each master: the
/// replica of the lock's master replicates through a forwarder (the master
/// announces the forwarder's port, so the replica follows it there; client
/// connections pass), which then drops every byte of the replication link.
/// No partition between any client and any node. Once the replica's copy
/// of the lock has expired, `CLUSTER FAILOVER FORCE` promotes it, and a new
/// client takes the lock there. The holder, renewing every 3 s on the old
/// master, must not be holding too. Before the fix its unconfirmed
/// renewals kept its `check()` Ok (failed 3 of 3 runs).
#[test]
fn cluster_a_renewal_no_replica_confirmed_does_not_outlive_the_promoted_copy() {
    let _serial = serial();
    let nodes = cluster::start_nodes(2000);
    let name = "split";
    let master = cluster_master_of(&nodes, name);
    let replica = nodes
        .iter()
        .find(|n| replication_field(n, "master_port") == Some(master.port.to_string()))
        .expect("the master has a replica");
    let link = Blackhole::start_cutting_only(master.port, Some(b"REPLCONF"));
    // The master announces the forwarder's port (its bus port unchanged):
    // its replica reconnects there.
    let mut admin = master.admin();
    for (option, value) in [
        ("cluster-announce-bus-port", master.port + 10000),
        ("cluster-announce-port", link.port),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(option)
            .arg(value)
            .query(&mut admin)
            .unwrap();
    }
    wait_until(
        "the replica replicates through the forwarder",
        Duration::from_secs(30),
        || {
            replication_field(replica, "master_port") == Some(link.port.to_string())
                && replication_field(replica, "master_link_status").as_deref() == Some("up")
        },
    );
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let open = |wait: bool| {
        let mut builder = Client::cluster_builder(&urls).command_timeout(Duration::from_secs(2));
        if wait {
            builder = builder.wait_for_replicas(1, Duration::from_millis(200));
        }
        builder.build().unwrap()
    };
    let holder = open(true);
    let other = open(false);
    warm_up(&holder);
    warm_up(&other);
    let ours = acquire_confirmed(
        &holder
            .lock_with(
                name,
                LockOptions::new()
                    .ttl(Duration::from_secs(6))
                    .renew_every(Duration::from_secs(3)),
            )
            .unwrap(),
    );
    link.cut();
    // A replica answers reads of its keys after READONLY.
    let gone_on_replica = || {
        let mut conn = replica.admin();
        let _: () = redis::cmd("READONLY").query(&mut conn).unwrap();
        redis::cmd("PTTL")
            .arg(key(name))
            .query::<i64>(&mut conn)
            .is_ok_and(|pttl| pttl == -2)
    };
    wait_until(
        "the replica's copy of the lock expired",
        Duration::from_secs(30),
        gone_on_replica,
    );
    cluster::fail_over_to(replica, true, || {
        replication_field(replica, "role").as_deref() == Some("master")
    });
    let mut theirs = None;
    wait_until(
        "a client takes the lock on the promoted replica",
        Duration::from_secs(30),
        || {
            theirs = other
                .lock_with(name, LockOptions::new().ttl(Duration::from_secs(30)))
                .unwrap()
                .try_acquire()
                .ok()
                .flatten();
            theirs.is_some()
        },
    );
    let theirs = theirs.unwrap();
    let holder_says = ours.check();
    assert!(
        !(holder_says.is_ok() && theirs.check().is_ok()),
        "two clients hold '{name}': the holder's check() is Ok (its renewals reached the \
         old master only) while a client of the promoted replica holds it with fencing \
         token {}",
        theirs.fencing_token()
    );
}

/// One server with a replica, `wait_for_replicas(1)`: while the replica is
/// stopped (SIGSTOP: `WAIT` times out), an explicit `extend` fails with
/// `Timeout` and leaves the lease as it was, and the watchdog's renewals
/// do not extend it either: the lease runs out at its confirmed ttl and
/// is reported lost. Once the replica answers again, `extend` works.
#[test]
fn an_extension_no_replica_confirmed_changes_nothing() {
    let _serial = serial();
    let master = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_until("the replica is in sync", Duration::from_secs(30), || {
        replication_field(&replica, "master_link_status").as_deref() == Some("up")
    });
    let client = Client::builder(&master.url())
        .wait_for_replicas(1, Duration::from_millis(100))
        .build()
        .unwrap();
    let lock = client
        .lock_with("stalled", LockOptions::new().ttl(Duration::from_secs(2)))
        .unwrap();
    let guard = acquire_confirmed(&lock);
    // Confirmed by the healthy replica (a late confirmation on a loaded
    // machine is a Timeout that changes nothing: ask again).
    let mut extended = guard.extend(Duration::from_secs(3));
    for _ in 0..20 {
        match &extended {
            Err(e) if e.kind() == latchkey::ErrorKind::Timeout => {
                extended = guard.extend(Duration::from_secs(3));
            }
            _ => break,
        }
    }
    extended.unwrap();

    replica.signal(libc::SIGSTOP);
    let before = guard.remaining();
    let err = guard
        .extend(Duration::from_secs(60))
        .expect_err("no replica can confirm");
    assert_eq!(err.kind(), latchkey::ErrorKind::Timeout, "{err}");
    assert!(
        guard.remaining() <= before,
        "an unconfirmed extension moved the lease on: {:?} left, {before:?} before",
        guard.remaining()
    );
    assert!(guard.check().is_ok(), "the lease is still within its ttl");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key("stalled"))
        .query(&mut master.admin())
        .unwrap();
    assert!(
        pttl > 10_000,
        "the master took the extension (PTTL {pttl} ms): only the lease ignores it"
    );
    // Renewed every ttl/3, never confirmed: lost at its confirmed ttl
    // although the master keeps extending the key.
    wait_until(
        "the lease runs out unconfirmed",
        Duration::from_secs(10),
        || guard.check().is_err(),
    );
    replica.signal(libc::SIGCONT);
    drop(guard);
    let guard = lock.acquire_timeout(Duration::from_secs(70)).unwrap();
    guard.extend(Duration::from_secs(5)).unwrap();
    guard.release().unwrap();
}
