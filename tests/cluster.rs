//! Redis Cluster: six real nodes (three masters, three replicas) created
//! with `redis-cli --cluster create`. Locks whose names fall in slots of
//! different masters, waiters woken across nodes, and a manual
//! `CLUSTER FAILOVER` while a lock is held.

mod failover_check;
mod name_table;
mod support;

use std::thread;
use std::time::Duration;

use latchkey::{Client, LockOptions};
use support::{replication_field, wait_until, RedisServer};

struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster {
            nodes: support::cluster::start_nodes(2000),
        }
    }

    fn client(&self) -> Client {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        Client::cluster_builder(&urls)
            .command_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    /// The node serving the slot of `key` as master.
    fn master_of(&self, key: &str) -> &RedisServer {
        let mut admin = self.nodes[0].admin();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut admin)
            .unwrap();
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut admin)
            .unwrap();
        for range in ranges {
            let redis::Value::Array(f) = range else {
                continue;
            };
            let (redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(master)) =
                (&f[0], &f[1], &f[2])
            else {
                continue;
            };
            if (*first..=*last).contains(&slot) {
                let redis::Value::Int(port) = master[1] else {
                    continue;
                };
                return self
                    .nodes
                    .iter()
                    .find(|n| i64::from(n.port) == port)
                    .unwrap();
            }
        }
        panic!("no master for slot {slot}");
    }

    /// A replica of `master`.
    fn replica_of(&self, master: &RedisServer) -> &RedisServer {
        let port = master.port.to_string();
        self.nodes
            .iter()
            .find(|n| replication_field(n, "master_port").as_deref() == Some(port.as_str()))
            .expect("every master has a replica")
    }
}

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

#[test]
fn locks_spread_over_masters_and_waiters_wake_across_nodes() {
    let cluster = Cluster::start();
    let client = cluster.client();
    // Three names whose slots belong to three different masters.
    let mut names: Vec<String> = Vec::new();
    let mut masters: Vec<u16> = Vec::new();
    for i in 0..200 {
        let name = format!("spread-{i}");
        let port = cluster.master_of(&key(&name)).port;
        if !masters.contains(&port) {
            masters.push(port);
            names.push(name);
        }
        if names.len() == 3 {
            break;
        }
    }
    assert_eq!(names.len(), 3);
    let guards: Vec<_> = names
        .iter()
        .map(|n| {
            client
                .lock_with(n, LockOptions::new().ttl(Duration::from_secs(60)))
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    for (name, guard) in names.iter().zip(&guards) {
        let owner: Option<String> = redis::cmd("GET")
            .arg(key(name))
            .query(&mut cluster.master_of(&key(name)).admin())
            .unwrap();
        assert_eq!(owner.as_deref(), Some(guard.token()));
    }

    // A waiter on each lock, woken by the release wherever it subscribed.
    let waiters: Vec<_> = names
        .iter()
        .map(|name| {
            let client = cluster.client();
            let name = name.clone();
            thread::spawn(move || {
                client
                    .lock(&name)
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(30))
                    .map(|g| g.fencing_token())
            })
        })
        .collect();
    for name in &names {
        wait_until("a waiter listens", Duration::from_secs(30), || {
            listeners(&cluster, name) > 0
        });
    }
    let tokens: Vec<u64> = guards.iter().map(|g| g.fencing_token()).collect();
    for guard in guards {
        guard.release().unwrap();
    }
    for (waiter, token) in waiters.into_iter().zip(tokens) {
        assert!(waiter.join().unwrap().expect("woken by the release") > token);
    }
}

#[test]
fn a_manual_failover_during_a_hold_is_followed() {
    let cluster = Cluster::start();
    let client = cluster.client();
    let guard = client
        .lock_with("failover", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap()
        .acquire()
        .unwrap();
    let old_master = cluster.master_of(&key("failover"));
    let replica = cluster.replica_of(old_master);
    wait_until("the replica has the lock", Duration::from_secs(30), || {
        let mut conn = replica.admin();
        let _: () = redis::cmd("READONLY").query(&mut conn).unwrap();
        let owner: Option<String> = redis::cmd("GET")
            .arg(key("failover"))
            .query(&mut conn)
            .unwrap();
        owner.as_deref() == Some(guard.token())
    });
    support::cluster::fail_over_to(replica, false, || {
        replication_field(replica, "role").as_deref() == Some("master")
            && replication_field(old_master, "role").as_deref() == Some("slave")
    });

    guard
        .extend(Duration::from_secs(30))
        .expect("extend reaches the new master");
    assert!(guard.check().is_ok());
    let other = cluster.client();
    assert!(other
        .lock("failover")
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_none());
    guard.release().unwrap();
    assert!(other
        .lock("failover")
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_some());
}

#[test]
fn awkward_names_and_the_lock_family_work_on_a_cluster() {
    let cluster = Cluster::start();
    let client = cluster.client();
    name_table::check_every_name(&client);

    // A multi-lock whose names live on different masters.
    let names = ["family:a", "family:b", "family:c", "family:d"];
    let masters: std::collections::HashSet<u16> = names
        .iter()
        .map(|n| cluster.master_of(&key(n)).port)
        .collect();
    assert!(masters.len() > 1, "the names share one master");
    let all = client.multi_lock(&names).unwrap().acquire().unwrap();
    assert!(client
        .multi_lock(&names)
        .unwrap()
        .try_acquire()
        .unwrap()
        .is_none());
    all.release().unwrap();

    // A semaphore (its keys in one slot) with a waiter woken by a release
    // published on the slot's shard.
    let pool = client.semaphore("family-pool", 1).unwrap();
    let held = pool.acquire(1).unwrap();
    let waiter = std::thread::spawn({
        let client = cluster.client();
        move || {
            let pool = client.semaphore("family-pool", 1).unwrap();
            pool.acquire_timeout(1, Duration::from_secs(20)).map(drop)
        }
    });
    held.release().unwrap();
    waiter.join().unwrap().unwrap();

    // An election, observed.
    let election = client.election("family-election").unwrap();
    let leadership = election.campaign(b"v").unwrap();
    assert_eq!(election.leader().unwrap().unwrap().term, leadership.term());
    leadership.resign().unwrap();
    assert!(election.leader().unwrap().is_none());
}

/// Subscribers of lock `name`'s release channel, over all nodes (plain
/// and sharded pub/sub).
fn listeners(cluster: &Cluster, name: &str) -> i64 {
    support::cluster::listeners(&cluster.nodes, &format!("{}:ch", key(name)))
}

#[test]
fn a_failover_loses_neither_waiters_nor_a_renewed_lease() {
    let cluster = Cluster::start();
    let holder = cluster.client();
    let waiters = vec![cluster.client(), cluster.client()];
    let name = "failover-waiters";
    failover_check::nobody_is_lost(
        name,
        &holder,
        waiters,
        || {
            wait_until("both waiters listen", Duration::from_secs(30), || {
                listeners(&cluster, name) >= 2
            })
        },
        || {
            let old_master = cluster.master_of(&key(name));
            let replica = cluster.replica_of(old_master);
            // A manual failover needs a replica in sync.
            wait_until("the replica has the lock", Duration::from_secs(30), || {
                let mut conn = replica.admin();
                let _: () = redis::cmd("READONLY").query(&mut conn).unwrap();
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(key(name))
                    .query(&mut conn)
                    .unwrap();
                exists == 1
            });
            support::cluster::fail_over_to(replica, false, || {
                replication_field(replica, "role").as_deref() == Some("master")
                    && replication_field(old_master, "role").as_deref() == Some("slave")
            });
        },
    );
}

/// Pub/sub messages (plain and sharded) a node received over the cluster
/// bus, all messages it received over the bus, and the bytes it read from
/// the network (`INFO stats`).
fn bus_publish_received(node: &RedisServer) -> (i64, i64, i64) {
    let mut admin = node.admin();
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut admin).unwrap();
    let input_bytes = stats
        .lines()
        .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut admin).unwrap();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    (
        field("cluster_stats_messages_publish_received")
            + field("cluster_stats_messages_publishshard_received"),
        field("cluster_stats_messages_received"),
        input_bytes,
    )
}

#[test]
fn a_release_message_stays_on_its_shard() {
    let cluster = Cluster::start();
    let client = cluster.client();
    let name = "shard-local";
    let master = cluster.master_of(&key(name));
    let replica = cluster.replica_of(master);
    let lock = client.lock(name).unwrap();
    const RELEASES: i64 = 200;
    let before: Vec<(i64, i64, i64)> = cluster.nodes.iter().map(bus_publish_received).collect();
    for _ in 0..RELEASES {
        lock.acquire().unwrap().release().unwrap();
    }
    let after: Vec<(i64, i64, i64)> = cluster.nodes.iter().map(bus_publish_received).collect();
    let mut outside = 0;
    for ((node, b), a) in cluster.nodes.iter().zip(&before).zip(&after) {
        let in_shard = node.port == master.port || node.port == replica.port;
        eprintln!(
            "node {} ({}): {} release messages, {} cluster-bus messages, {} network bytes received for {RELEASES} releases",
            node.port,
            if node.port == master.port {
                "the slot's master"
            } else if in_shard {
                "its replica"
            } else {
                "another shard"
            },
            a.0 - b.0,
            a.1 - b.1,
            a.2 - b.2
        );
        if !in_shard {
            outside += a.0 - b.0;
        }
    }
    // Other traffic on the bus (pings) carries no pub/sub message.
    assert!(
        outside < RELEASES / 10,
        "{outside} release messages reached nodes outside the slot's shard"
    );
}
