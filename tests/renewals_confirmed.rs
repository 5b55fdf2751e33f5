//! `wait_for_replicas` confirms renewals, not only acquires: a failover can
//! promote a replica that missed the renewals, and its copy of the lock
//! expires when the last renewal it confirmed says. A lease here must not
//! outlive that copy, or a client of the new master takes the lock while
//! the holder's `check()` is still Ok.
//!
//! Before renewals waited for the replicas, both tests here failed: the
//! holder's `check()` was Ok while a second client held the lock (Sentinel:
//! 3 runs of 3; Cluster: see its test). Real processes only: the replica
//! misses the renewals because its replication link goes through a
//! forwarder in the test that drops every byte (`support::blackhole`).

mod support;

use std::time::Duration;

use latchkey::{Client, LockOptions};
use parking_lot::{Mutex, MutexGuard};
use support::blackhole::Blackhole;
use support::sentinel::{key, SentinelDeployment};
use support::{replication_field, wait_until, warm_up, RedisServer};

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

    let ours = holder
        .lock_with("split", LockOptions::new().ttl(Duration::from_secs(4)))
        .unwrap()
        .acquire()
        .unwrap();
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
