//! Redis Sentinel: 1 master, 2 replicas and 3 sentinels, all real
//! processes. The client finds the master through the sentinels, follows a
//! `SENTINEL FAILOVER` while it holds a lease, and can wait for replicas.

mod failover_check;
mod name_table;
mod support;

use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::sentinel::{request_failover, SentinelDeployment};
use support::{replication_field, wait_until, RedisServer};

/// One master, two replicas, three sentinels.
struct Deployment(SentinelDeployment);

impl Deployment {
    fn start() -> Deployment {
        Deployment(SentinelDeployment::start(2))
    }

    fn client(&self, wait_for: Option<usize>) -> Client {
        let mut builder = self.0.builder();
        if let Some(n) = wait_for {
            builder = builder.wait_for_replicas(n, Duration::from_secs(3));
        }
        builder.build().unwrap()
    }

    fn master_port_per_sentinel(&self) -> u16 {
        SentinelDeployment::master_port_per(&self.0.sentinels[0]).unwrap()
    }
}

impl std::ops::Deref for Deployment {
    type Target = SentinelDeployment;
    fn deref(&self) -> &SentinelDeployment {
        &self.0
    }
}

#[test]
fn the_client_follows_a_failover_while_holding_a_lease() {
    let deployment = Deployment::start();
    let client = deployment.client(Some(2));
    // The lease must outlast the failover: renewals that reach the old
    // master after the promotion are not replicated to the new one.
    let options = LockOptions::new().ttl(Duration::from_secs(30));
    let guard = client
        .lock_with("failover", options)
        .unwrap()
        .acquire()
        .unwrap();
    for replica in &deployment.replicas {
        let owner: Option<String> = redis::cmd("GET")
            .arg("latchkey:{failover}")
            .query(&mut replica.admin())
            .unwrap();
        assert_eq!(
            owner.as_deref(),
            Some(guard.token()),
            "WAIT put the lock on every replica"
        );
    }

    request_failover(&mut deployment.sentinels[0].admin(), "mymaster");
    let old_port = deployment.master.port;
    wait_until(
        "the sentinels name a new master",
        Duration::from_secs(30),
        || deployment.master_port_per_sentinel() != old_port,
    );
    wait_until("the old master is demoted", Duration::from_secs(30), || {
        replication_field(&deployment.master, "role").as_deref() == Some("slave")
    });

    // Renewals wait for both replicas too: wait until the new master has
    // them (the demoted master and the other replica follow it).
    let new_port = deployment.master_port_per_sentinel();
    let new_master = deployment
        .replicas
        .iter()
        .find(|r| r.port == new_port)
        .expect("a replica was promoted");
    wait_until(
        "both replicas follow the new master, in sync",
        Duration::from_secs(60),
        || {
            (0..2).all(|i| {
                replication_field(new_master, &format!("slave{i}"))
                    .is_some_and(|line| line.contains("state=online"))
            })
        },
    );
    // Our client reaches the new master: the lease is still ours there.
    guard
        .extend(Duration::from_secs(30))
        .expect("extend on the new master");
    assert!(guard.check().is_ok());
    let other = deployment.client(None);
    assert!(other
        .lock("failover")
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_none());
    let info = other
        .inspect("failover")
        .unwrap()
        .expect("held on the new master");
    assert_eq!(info.owner_token, guard.token());
    guard.release().unwrap();
    assert!(other
        .lock("failover")
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_some());
}

#[test]
fn waiting_for_replicas_fails_and_releases_when_they_cannot_confirm() {
    let deployment = Deployment::start();
    let client = deployment.client(Some(2));
    deployment.replicas[1].signal(libc::SIGSTOP);
    let err = client.lock("durable").unwrap().try_acquire().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("replicas"), "{err}");
    assert!(
        client.inspect("durable").unwrap().is_none(),
        "the unconfirmed lock was released"
    );
    deployment.replicas[1].signal(libc::SIGCONT);

    let one = deployment.client(Some(1));
    assert!(one
        .lock("durable")
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_some());
}

#[test]
fn awkward_names_work_through_sentinel() {
    let deployment = Deployment::start();
    name_table::check_every_name(&deployment.client(None));
}

/// Subscribers of lock `name`'s release channel on `server`.
fn listeners(server: &RedisServer, name: &str) -> i64 {
    let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("latchkey:{{{name}}}:ch"))
        .query(&mut server.admin())
        .unwrap_or_default();
    match reply.get(1) {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

#[test]
fn a_failover_loses_neither_waiters_nor_a_renewed_lease() {
    let deployment = Deployment::start();
    let holder = deployment.client(None);
    let waiters = vec![deployment.client(None), deployment.client(None)];
    failover_check::nobody_is_lost(
        "failover-waiters",
        &holder,
        waiters,
        || {
            wait_until("both waiters listen", Duration::from_secs(30), || {
                listeners(&deployment.master, "failover-waiters") >= 2
            })
        },
        || {
            request_failover(&mut deployment.sentinels[0].admin(), "mymaster");
            let old_port = deployment.master.port;
            wait_until(
                "the sentinels name a new master",
                Duration::from_secs(30),
                || deployment.master_port_per_sentinel() != old_port,
            );
            wait_until("the old master is demoted", Duration::from_secs(30), || {
                replication_field(&deployment.master, "role").as_deref() == Some("slave")
            });
        },
    );
}
