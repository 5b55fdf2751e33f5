//! Redis Cluster: the slot of a lock moves to another master while it is
//! held, renewed and waited for. The migration is done by hand (`CLUSTER
//! SETSLOT ... IMPORTING/MIGRATING`, `MIGRATE`, `CLUSTER SETSLOT ... NODE`,
//! the steps `redis-cli --cluster reshard` takes for each slot), so the
//! test can stop in the middle, with one key of the lock moved and the
//! other not: there a script that touches both is refused with `TRYAGAIN`,
//! and a script whose keys all moved is sent elsewhere with `ASK`.
//!
//! Before the fix, every operation that met `TRYAGAIN` failed at once with
//! a `Server` error (`try_acquire`, `inspect`; an acquire of a free lock
//! whose fence key had moved, after `ASK`, too): failed 3 of 3 runs.

mod support;

use std::thread;
use std::time::Duration;

use latchkey::{Client, LockOptions};
use support::cluster::{listeners, master_index, node_id, slot_of};
use support::{wait_until, RedisServer};

fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

fn client(nodes: &[RedisServer]) -> Client {
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    Client::cluster_builder(&urls)
        .command_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// One slot on its way from `nodes[from]` to `nodes[to]`.
struct Migration<'a> {
    nodes: &'a [RedisServer],
    slot: u16,
    from: usize,
    to: usize,
}

impl<'a> Migration<'a> {
    /// Marks the slot importing on `to` and migrating on `from` (in this
    /// order, as `redis-cli --cluster reshard` does).
    fn start(nodes: &'a [RedisServer], slot: u16, from: usize, to: usize) -> Self {
        let setslot = |node: usize, state: &str, other: usize| {
            let () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(node_id(&nodes[other]))
                .query(&mut nodes[node].admin())
                .unwrap();
        };
        setslot(to, "IMPORTING", from);
        setslot(from, "MIGRATING", to);
        Migration {
            nodes,
            slot,
            from,
            to,
        }
    }

    /// The keys of the slot still on the source.
    fn keys_left(&self) -> Vec<String> {
        redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(self.slot)
            .arg(100)
            .query(&mut self.nodes[self.from].admin())
            .unwrap()
    }

    /// Moves `key` to the target (`MIGRATE`, as reshard does).
    fn move_key(&self, key: &str) {
        let () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(self.nodes[self.to].port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(key)
            .query(&mut self.nodes[self.from].admin())
            .unwrap();
    }

    /// Moves the keys left and gives the slot to the target on both
    /// nodes and on every other master.
    fn finish(self) {
        for key in self.keys_left() {
            self.move_key(&key);
        }
        let target = node_id(&self.nodes[self.to]);
        let mut order = vec![self.to, self.from];
        order.extend((0..self.nodes.len()).filter(|i| *i != self.to && *i != self.from));
        for node in order {
            // Replicas refuse SETSLOT; they learn the owner by gossip.
            let _: redis::RedisResult<()> = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(self.slot)
                .arg("NODE")
                .arg(&target)
                .query(&mut self.nodes[node].admin());
        }
        wait_until(
            "every master routes the slot to its new owner",
            Duration::from_secs(30),
            || {
                (0..self.nodes.len()).all(|i| {
                    super_role(&self.nodes[i]) != "master"
                        || master_index(self.nodes, i, self.slot) == Some(self.to)
                })
            },
        );
    }
}

/// The slot of lock `name`, the master serving it, and another master to
/// migrate it to.
fn slot_and_masters(nodes: &[RedisServer], name: &str) -> (u16, usize, usize) {
    let slot = slot_of(&nodes[0], &key(name));
    let source = master_index(nodes, 0, slot).unwrap();
    let target = (0..nodes.len())
        .find(|&i| i != source && super_role(&nodes[i]) == "master")
        .unwrap();
    (slot, source, target)
}

fn super_role(node: &RedisServer) -> String {
    support::replication_field(node, "role").unwrap_or_default()
}

/// How long the test keeps a migration half done while operations are
/// under way: they must wait it out (a reshard is done slot by slot, each
/// in a moment), not fail.
const HALF_DONE: Duration = Duration::from_millis(500);

#[test]
fn a_slot_migration_under_holders_and_waiters_fails_nobody() {
    let nodes = support::cluster::start_nodes(2000);
    let name = "migrating";
    let (slot, source, target) = slot_and_masters(&nodes, name);
    let holder = client(&nodes);
    let options = LockOptions::new().ttl(Duration::from_secs(6));
    let guard = holder
        .lock_with(name, options.clone())
        .unwrap()
        .acquire()
        .unwrap();

    // A waiter parked behind the holder, on a client of its own.
    let waiter = {
        let client = client(&nodes);
        let options = options.clone();
        thread::spawn(move || {
            client
                .lock_with(name, options)
                .unwrap()
                .acquire_timeout(Duration::from_secs(90))
                .and_then(|g| {
                    let token = g.fencing_token();
                    g.release().map(|_| token)
                })
        })
    };
    let channel = format!("{}:ch", key(name));
    wait_until("the waiter listens", Duration::from_secs(30), || {
        listeners(&nodes, &channel) > 0
    });

    // Half a migration: the lock key moved, the fence key did not.
    let migration = Migration::start(&nodes, slot, source, target);
    migration.move_key(&key(name));
    assert!(migration
        .keys_left()
        .contains(&format!("{}:fence", key(name))));

    let inspect = {
        let client = client(&nodes);
        thread::spawn(move || client.inspect(name))
    };
    let other = {
        let client = client(&nodes);
        thread::spawn(move || {
            client
                .lock(name)
                .unwrap()
                .try_acquire()
                .map(|g| g.is_some())
        })
    };
    // The renewal of the holder (its keys moved: ASK) goes on meanwhile.
    guard
        .extend(Duration::from_secs(6))
        .expect("an extend in a migrating slot goes to the importing node");
    thread::sleep(HALF_DONE);
    migration.finish();

    let info = inspect
        .join()
        .unwrap()
        .expect("inspect waits out the migration (TRYAGAIN)");
    assert_eq!(info.map(|i| i.fencing_token), Some(guard.fencing_token()));
    assert!(
        !other
            .join()
            .unwrap()
            .expect("try_acquire waits out the migration (TRYAGAIN)"),
        "the lock was held: nobody else may take it"
    );
    assert!(guard.check().is_ok(), "the holder still holds the lock");
    let held_token = guard.fencing_token();
    guard.release().unwrap();
    let waited_token = waiter
        .join()
        .unwrap()
        .expect("the waiter gets the lock after the release");
    assert!(waited_token > held_token);

    // The lock is free now; only its fence key is left. Move the slot back
    // and stop once that key has moved: an acquire then meets ASK, and on
    // the importing node TRYAGAIN (one of its two keys is missing).
    let migration = Migration::start(&nodes, slot, target, source);
    for k in migration.keys_left() {
        migration.move_key(&k);
    }
    let late = {
        let client = client(&nodes);
        thread::spawn(move || {
            client
                .lock(name)
                .unwrap()
                .acquire_timeout(Duration::from_secs(60))
                .map(|g| g.fencing_token())
        })
    };
    thread::sleep(HALF_DONE);
    migration.finish();
    let late_token = late
        .join()
        .unwrap()
        .expect("an acquire of a free lock waits out the migration");
    assert!(late_token > waited_token);
}

/// A migration stuck for longer than the command timeout (a reshard
/// interrupted, waiting for its operator): an acquire of a free lock whose
/// keys are split between the two nodes (TRYAGAIN) waits until its own
/// deadline, not until the command timeout. Before, its first attempt
/// failed with `Connection` once the command timeout was spent (1 of 1
/// run: "the slot is being migrated ... (TRYAGAIN) ... still so after
/// 0.5 s"): the acquire loop waited out only outages met while already
/// waiting, to fail a wrong address at once.
#[test]
fn an_acquire_waits_out_a_migration_stuck_past_the_command_timeout() {
    let nodes = support::cluster::start_nodes(2000);
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let quick = || {
        Client::cluster_builder(&urls)
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let name = "stuck";
    let (slot, source, target) = slot_and_masters(&nodes, name);
    // Taken once, so that a fence key is left to split from the lock key.
    quick()
        .lock(name)
        .unwrap()
        .acquire()
        .unwrap()
        .release()
        .unwrap();
    let migration = Migration::start(&nodes, slot, source, target);
    for k in migration.keys_left() {
        migration.move_key(&k);
    }
    let waiter = {
        let client = quick();
        thread::spawn(move || {
            client
                .lock(name)
                .unwrap()
                .acquire_timeout(Duration::from_secs(60))
                .map(|g| g.fencing_token())
        })
    };
    // Stuck for four command timeouts: the acquire cannot succeed
    // meanwhile (its keys are split), so it must still be waiting.
    thread::sleep(Duration::from_secs(2));
    assert!(
        !waiter.is_finished(),
        "the acquire gave up on a stuck migration: {:?}",
        waiter.join()
    );
    migration.finish();
    let token = waiter
        .join()
        .unwrap()
        .expect("the acquire gets the lock once the migration goes on");
    assert!(token > 0);
}

/// The CRC16 of the cluster specification, to find a name whose slot is
/// the first of its master's (the one `redis-cli --cluster reshard
/// --cluster-slots 1` moves).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Moves the lowest slot of `nodes[from]` to `nodes[to]` with `redis-cli
/// --cluster reshard`, and waits until every node agrees.
fn reshard_one_slot(nodes: &[RedisServer], from: usize, to: usize, slot: u16) {
    let status = std::process::Command::new("redis-cli")
        .args(["--cluster", "reshard"])
        .arg(format!("127.0.0.1:{}", nodes[from].port))
        .args(["--cluster-from", &node_id(&nodes[from])])
        .args(["--cluster-to", &node_id(&nodes[to])])
        .args(["--cluster-slots", "1", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli runs");
    assert!(status.success(), "redis-cli --cluster reshard failed");
    // The next reshard refuses to start until every node agrees.
    let views = || -> Vec<Option<usize>> {
        (0..nodes.len())
            .map(|i| master_index(nodes, i, slot))
            .collect()
    };
    let limit = std::time::Instant::now() + Duration::from_secs(60);
    while views().iter().any(|v| *v != Some(to)) {
        assert!(
            std::time::Instant::now() < limit,
            "after a reshard to node {to}, the nodes still route slot {slot} to {:?}",
            views()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Before the fix, workers cycling through one lock while `redis-cli
/// --cluster reshard` moved its slot back and forth failed with a `Server`
/// error (TRYAGAIN) whenever an attempt met the slot half moved: failed 2
/// of 3 runs (the test above meets it every time).
///
/// It runs in `make fuzz`, not `make test`: once in six runs on a loaded
/// machine the nodes had not agreed on the slot's owner 60 s after a
/// reshard that redis-cli reported done (not yet explained; the library's
/// part is covered deterministically by the test above).
#[test]
#[ignore = "long and load-sensitive: make fuzz runs it"]
fn a_busy_lock_lives_through_reshards_of_its_slot() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let nodes = support::cluster::start_nodes(2000);
    // A name whose slot is slot 0, the first of the first master's range.
    let name = (0..)
        .map(|i| format!("resharded-{i}"))
        .find(|n| crc16(n.as_bytes()) % 16384 == 0)
        .unwrap();
    let slot = slot_of(&nodes[0], &key(&name));
    assert_eq!(slot, 0);
    let first = master_index(&nodes, 0, slot).unwrap();
    let second = (0..nodes.len())
        .find(|&i| i != first && super_role(&nodes[i]) == "master")
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client(&nodes);
            let (name, stop, inside, tokens) =
                (name.clone(), stop.clone(), inside.clone(), tokens.clone());
            thread::spawn(move || -> Result<(), String> {
                let lock = client
                    .lock_with(&name, LockOptions::new().ttl(Duration::from_secs(5)))
                    .unwrap();
                while !stop.load(Ordering::SeqCst) {
                    let guard = lock
                        .acquire_timeout(Duration::from_secs(60))
                        .map_err(|e| format!("acquire: {e}"))?;
                    if inside.swap(true, Ordering::SeqCst) {
                        return Err("two holders at once".into());
                    }
                    tokens.lock().unwrap().push(guard.fencing_token());
                    thread::sleep(Duration::from_millis(1));
                    inside.store(false, Ordering::SeqCst);
                    guard.release().map_err(|e| format!("release: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    // Each reshard leaves the slot half moved for a few milliseconds only
    // (between MIGRATE and SETSLOT NODE): many of them, for attempts to
    // meet it.
    for round in 0..20 {
        let (from, to) = if round % 2 == 0 {
            (first, second)
        } else {
            (second, first)
        };
        reshard_one_slot(&nodes, from, to, slot);
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap().expect("no worker met an error");
    }
    let tokens = tokens.lock().unwrap();
    assert!(!tokens.is_empty());
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens go up with every acquisition"
    );
}
