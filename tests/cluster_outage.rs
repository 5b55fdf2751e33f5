//! Redis Cluster: the lock's master goes away (a manual failover, or
//! `kill -9` and its replica's promotion) and the clients that knew it
//! follow, through every path: the acquire confirmed by `WAIT`, and a
//! waiter parked for a long time.

mod support;

use std::thread;
use std::time::Duration;

use latchkey::{Client, LockOptions};
use support::cluster::{listeners, master_index, replica_index, slot_of, start_nodes};
use support::{replication_field, wait_until, RedisServer};

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

fn urls(nodes: &[RedisServer]) -> Vec<String> {
    nodes.iter().map(RedisServer::url).collect()
}

/// Waits until the replica `nodes[replica]` has the key `key`.
fn replica_has(nodes: &[RedisServer], replica: usize, key: &str) {
    wait_until("the replica has the lock", Duration::from_secs(30), || {
        let mut conn = nodes[replica].admin();
        let _: () = redis::cmd("READONLY").query(&mut conn).unwrap();
        let exists: i64 = redis::cmd("EXISTS").arg(key).query(&mut conn).unwrap();
        exists == 1
    });
}

/// Before the fix, the acquire confirmed by `WAIT` went to the master the
/// client knew and never followed its `MOVED`: every acquire failed with a
/// `Server` error ("MOVED ...") after a manual failover (failed 3 of 3
/// runs).
#[test]
fn an_acquire_confirmed_by_wait_follows_a_failover() {
    let nodes = start_nodes(2000);
    let name = "wait-failover";
    let client = Client::cluster_builder(&urls(&nodes))
        .command_timeout(Duration::from_secs(2))
        .wait_for_replicas(1, Duration::from_secs(5))
        .build()
        .unwrap();
    let lock = client.lock(name).unwrap();
    let first = lock.acquire().unwrap();
    let first_token = first.fencing_token();
    first.release().unwrap();

    let slot = slot_of(&nodes[0], &key(name));
    let master = master_index(&nodes, 0, slot).unwrap();
    let replica = replica_index(&nodes, master);
    replica_has(&nodes, replica, &format!("{}:fence", key(name)));
    support::cluster::fail_over_to(&nodes[replica], false, || {
        replication_field(&nodes[replica], "role").as_deref() == Some("master")
            && replication_field(&nodes[master], "role").as_deref() == Some("slave")
    });

    let guard = lock
        .acquire_timeout(Duration::from_secs(30))
        .expect("the acquire follows MOVED to the promoted replica");
    assert!(guard.fencing_token() > first_token);
    guard.release().unwrap();
}

/// Before the fix, a waiter parked behind a holder gave up a few seconds
/// after its master's `kill -9`, with a `Server` error "too many cluster
/// redirections" (refused connections counted as redirections), though its
/// own timeout was 90 s (failed 3 of 3 runs).
#[test]
fn a_waiter_rides_out_a_killed_master_until_its_replica_takes_over() {
    let mut nodes = start_nodes(2000);
    let name = "killed-master";
    let slot = slot_of(&nodes[0], &key(name));
    let master = master_index(&nodes, 0, slot).unwrap();
    let replica = replica_index(&nodes, master);
    let open = |nodes: &[RedisServer]| {
        Client::cluster_builder(&urls(nodes))
            .command_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let holder = open(&nodes);
    let guard = holder
        // A short lease: the waiter tries again when it ends, in the middle
        // of the outage (the failover takes longer than cluster-node-timeout).
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(2)))
        .unwrap()
        .acquire()
        .unwrap();
    let waiter = {
        let client = open(&nodes);
        thread::spawn(move || {
            client
                .lock(name)
                .unwrap()
                .acquire_timeout(Duration::from_secs(90))
                .map(|g| g.fencing_token())
        })
    };
    let channel = format!("{}:ch", key(name));
    wait_until("the waiter listens", Duration::from_secs(30), || {
        listeners(&nodes, &channel) > 0
    });
    replica_has(&nodes, replica, &key(name));

    nodes[master].kill();
    let killed = std::time::Instant::now();
    // The replica takes over by itself once the others agree the master
    // failed (cluster-node-timeout, then an election): seconds, many
    // command timeouts of the clients.
    let alive: Vec<usize> = (0..nodes.len()).filter(|&i| i != master).collect();
    wait_until(
        "every live node routes the slot to the promoted replica",
        Duration::from_secs(60),
        || {
            alive
                .iter()
                .all(|&i| master_index(&nodes, i, slot) == Some(replica))
        },
    );
    eprintln!(
        "the replica took over {:?} after the kill",
        killed.elapsed()
    );
    if waiter.is_finished() {
        // It may have got the lock from the new master already (the
        // holder's lease ran out); it must not have given up.
        if let Err(e) = waiter.join().unwrap() {
            panic!("the waiter gave up during the outage: {e}");
        }
        return;
    }
    let held = guard.fencing_token();
    // The holder's lease is renewed on the new master, or it ran out:
    // either way the waiter gets the lock, before its own deadline.
    let _ = guard.release();
    let token = waiter
        .join()
        .unwrap()
        .expect("the waiter got the lock after the failover");
    assert!(token > held);
}

/// Before the fix, the acquire confirmed by `WAIT` went on asking the
/// master the client knew after it was killed (`kill -9`) and its replica
/// had taken over: "connection refused", with the slot map never read
/// again (failed 3 of 3 runs). Two replicas per master, so the promoted one still has a replica
/// to confirm.
#[test]
fn an_acquire_confirmed_by_wait_follows_a_killed_master() {
    let mut nodes = support::cluster::start_nodes_with(9, 2, 2000, &[]);
    let name = "wait-killed";
    let client = Client::cluster_builder(&urls(&nodes))
        .command_timeout(Duration::from_secs(2))
        .wait_for_replicas(1, Duration::from_secs(5))
        .build()
        .unwrap();
    let lock = client.lock(name).unwrap();
    let first = lock.acquire().unwrap();
    let first_token = first.fencing_token();
    first.release().unwrap();

    let slot = slot_of(&nodes[0], &key(name));
    let master = master_index(&nodes, 0, slot).unwrap();
    // Whichever replica wins the election must know the token given.
    let port = nodes[master].port.to_string();
    for replica in 0..nodes.len() {
        if replication_field(&nodes[replica], "master_port").as_deref() == Some(port.as_str()) {
            replica_has(&nodes, replica, &format!("{}:fence", key(name)));
        }
    }
    nodes[master].kill();
    let alive: Vec<usize> = (0..nodes.len()).filter(|&i| i != master).collect();
    let mut promoted = None;
    wait_until(
        "a replica took over and every live node routes the slot to it",
        Duration::from_secs(60),
        || {
            let views: Vec<Option<usize>> = alive
                .iter()
                .map(|&i| master_index(&nodes, i, slot))
                .collect();
            promoted = views[0].filter(|&p| p != master);
            promoted.is_some() && views.iter().all(|v| *v == promoted)
        },
    );
    let promoted = promoted.unwrap();
    wait_until(
        "the other replica follows the promoted one",
        Duration::from_secs(60),
        || {
            replication_field(&nodes[promoted], "connected_slaves").as_deref() == Some("1")
                && replication_field(&nodes[promoted], "slave0")
                    .is_some_and(|s| s.contains("state=online"))
        },
    );

    let guard = lock
        .acquire_timeout(Duration::from_secs(30))
        .expect("the acquire finds the promoted replica");
    assert!(guard.fencing_token() > first_token);
    guard.release().unwrap();
}
