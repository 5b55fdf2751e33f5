//! Minimal reproductions of what the chaos checker (tools/chaos) found;
//! each is ignored until the core is fixed (`cargo test --release --test
//! chaos_findings -- --ignored` runs them).
//!
//! Fair handoff on Redis Cluster (chaos run `make chaos DURATION=120
//! SEED=21 PROFILE=short`, deployment `cluster`: a liveness violation, "a
//! released lock went to no waiter within 1.0 s"). The release script
//! reserved the lock for woken waiters only when `PUBLISH` reported a
//! receiver, but on a cluster `PUBLISH` counted only the subscribers of the
//! node that ran it, while the waiters' listener could subscribe on any
//! node; a releaser that acquired again at once took the lock back (the
//! waiter went first in 4 of 12 rounds). Sharded pub/sub on Redis 7
//! (`SPUBLISH` on the slot's master, waiters `SSUBSCRIBE` there) fixed it
//! since; the test stays as the regression test.
//!
//! A silent double hold after a Sentinel failover: see
//! [`after_a_sentinel_failover_two_clients_never_both_hold_a_lock`].

mod support;

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use latchkey::Client;
use support::{wait_until, RedisServer};

fn start_cluster() -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..6)
        .map(|_| {
            RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ])
        })
        .collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli is needed (make test installs redis-tools)");
    assert!(status.success(), "redis-cli --cluster create failed");
    for node in &nodes {
        wait_until("the cluster is up", Duration::from_secs(60), || {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut node.admin())
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        });
    }
    nodes
}

/// Waits until some node has a subscriber on the lock's release channel.
fn wait_for_waiter_on_any_node(nodes: &[RedisServer], name: &str) {
    let channel = format!("latchkey:{{{name}}}:ch");
    wait_until("the waiter subscribed", Duration::from_secs(20), || {
        // Plain pub/sub, or sharded (SSUBSCRIBE) on Redis 7.
        nodes.iter().any(|node| {
            ["NUMSUB", "SHARDNUMSUB"].iter().any(|sub| {
                let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
                    .arg(sub)
                    .arg(&channel)
                    .query(&mut node.admin())
                    .unwrap_or_default();
                matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0)
            })
        })
    });
}

#[test]
fn on_a_cluster_a_release_hands_the_lock_to_a_waiter_not_back_to_the_releaser() {
    let nodes = start_cluster();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let open = || {
        Client::cluster_builder(&urls)
            .command_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let releaser = open();
    let waiter_client = open();
    let mut waiter_first = 0;
    // Names spread over the three masters, so most are not on the node the
    // waiter's listener subscribed on.
    let rounds = 12;
    for round in 0..rounds {
        let name = format!("fair-{round}");
        let lock = releaser.lock(&name).unwrap();
        let guard = lock.acquire().unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let client = waiter_client.clone();
            let name = name.clone();
            thread::spawn(move || {
                let guard = client
                    .lock(&name)
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(20))
                    .unwrap();
                tx.send("waiter").unwrap();
                guard.release().unwrap();
            })
        };
        wait_for_waiter_on_any_node(&nodes, &name);
        // Release and at once take it back, as a busy loop would.
        guard.release().unwrap();
        let again = lock.acquire_timeout(Duration::from_secs(20)).unwrap();
        if rx.try_recv() == Ok("waiter") {
            waiter_first += 1;
        }
        drop(again);
        waiter.join().unwrap();
    }
    assert!(
        waiter_first >= rounds * 3 / 4,
        "the waiter went first in only {waiter_first} of {rounds} rounds"
    );
}

/// The master the sentinels name now (its port).
fn master_port(sentinel: &RedisServer) -> Option<u16> {
    let reply: Vec<String> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg("mymaster")
        .query(&mut sentinel.admin())
        .ok()?;
    reply.get(1)?.parse().ok()
}

/// Sentinel, `SENTINEL FAILOVER` (chaos run `make chaos DURATION=1800
/// SEED=4242 PROFILE=long`, deployment `sentinel`: an exclusion and a
/// no-silent-loss violation). After the sentinels switch to the new master,
/// the old one keeps accepting writes until they reconfigure it; a client
/// that learned the master before the switch acquires there, a new client
/// acquires the same lock on the new master, and both are told they hold
/// it.
#[test]
#[ignore = "known, not fixed yet: a Sentinel client keeps using the old master after a failover (run with --ignored)"]
fn after_a_sentinel_failover_two_clients_never_both_hold_a_lock() {
    let master = RedisServer::start();
    let port = master.port.to_string();
    let replicas: Vec<RedisServer> = (0..2)
        .map(|_| RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]))
        .collect();
    for replica in &replicas {
        wait_until("a replica is in sync", Duration::from_secs(30), || {
            support::replication_field(replica, "master_link_status").as_deref() == Some("up")
        });
    }
    let sentinels: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_sentinel(master.port, 2))
        .collect();
    for sentinel in &sentinels {
        wait_until(
            "a sentinel sees both replicas",
            Duration::from_secs(60),
            || {
                let replicas: Vec<Vec<String>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg("mymaster")
                    .query(&mut sentinel.admin())
                    .unwrap_or_default();
                let field = |r: &Vec<String>, name: &str| {
                    r.chunks(2).find(|kv| kv[0] == name).map(|kv| kv[1].clone())
                };
                replicas.len() == 2
                    && replicas.iter().all(|r| {
                        field(r, "flags").as_deref() == Some("slave")
                            && field(r, "master-link-status").as_deref() == Some("ok")
                    })
            },
        );
    }
    let urls: Vec<String> = sentinels.iter().map(RedisServer::url).collect();
    let open = || {
        Client::sentinel_builder(&urls, "mymaster")
            .command_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    // A client that has talked to the master before the failover.
    let before = open();
    before
        .lock("warm-up")
        .unwrap()
        .acquire()
        .unwrap()
        .release()
        .unwrap();
    let _: String = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("mymaster")
        .query(&mut sentinels[0].admin())
        .unwrap();
    wait_until(
        "the sentinels name a new master",
        Duration::from_secs(30),
        || master_port(&sentinels[0]).is_some_and(|p| p != master.port),
    );
    let old_client_guard = before.lock("split").unwrap().try_acquire().unwrap();
    let new_client_guard = open().lock("split").unwrap().try_acquire().unwrap();
    let held = |g: &Option<latchkey::Guard>| g.as_ref().is_some_and(|g| g.check().is_ok());
    assert!(
        !(held(&old_client_guard) && held(&new_client_guard)),
        "both clients hold 'split' after the failover: the old client's fencing token {:?}, the new one's {:?}",
        old_client_guard.as_ref().map(latchkey::Guard::fencing_token),
        new_client_guard.as_ref().map(latchkey::Guard::fencing_token),
    );
}
