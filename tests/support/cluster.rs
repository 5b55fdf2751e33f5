//! A Redis Cluster of real processes created with `redis-cli --cluster
//! create`: six nodes (three masters with a replica each) or another shape,
//! stopped on drop of the nodes. Shared by every suite that needs one, so the start-up and
//! its readiness check live here only.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{wait_until, RedisServer};

/// Starts six cluster-enabled nodes with `--cluster-node-timeout
/// node_timeout_ms`, joins them into a cluster (one replica per master) and
/// returns once every node reports `cluster_state:ok`.
pub fn start_nodes(node_timeout_ms: u32) -> Vec<RedisServer> {
    start_nodes_with(6, 1, node_timeout_ms, &[])
}

/// Starts `count` cluster-enabled nodes (`extra` redis-server arguments
/// added), joins them into a cluster with `replicas` replicas per master
/// and returns once every node reports `cluster_state:ok`.
pub fn start_nodes_with(
    count: usize,
    replicas: u32,
    node_timeout_ms: u32,
    extra: &[&str],
) -> Vec<RedisServer> {
    let timeout = node_timeout_ms.to_string();
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &timeout,
    ];
    args.extend_from_slice(extra);
    let nodes: Vec<RedisServer> = (0..count).map(|_| RedisServer::start_with(&args)).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .expect("redis-cli is needed (make test installs redis-tools)");
    assert!(status.success(), "redis-cli --cluster create failed");
    wait_until_ok(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60));
    nodes
}

/// Waits until each of `nodes` reports `cluster_state:ok` (each within
/// `limit`).
pub fn wait_until_ok(nodes: &[&RedisServer], limit: Duration) {
    for node in nodes {
        wait_until("the cluster is ok on every live node", limit, || {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut node.admin())
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        });
    }
}

/// The slot of `key` (`CLUSTER KEYSLOT`, asked of `node`).
pub fn slot_of(node: &RedisServer, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut node.admin())
        .expect("CLUSTER KEYSLOT answers")
}

/// The index in `nodes` of the master serving `slot`, as `nodes[asked]`
/// sees it (`None` when it names none of them or does not answer).
pub fn master_index(nodes: &[RedisServer], asked: usize, slot: u16) -> Option<usize> {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut nodes[asked].admin())
        .ok()?;
    // Each range: [first slot, last slot, [master ip, port, id], replicas...].
    let port = ranges.into_iter().find_map(|range| {
        let redis::Value::Array(f) = range else {
            return None;
        };
        let (redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(m)) =
            (f.first()?, f.get(1)?, f.get(2)?)
        else {
            return None;
        };
        match m.get(1)? {
            redis::Value::Int(port) if (*first..=*last).contains(&i64::from(slot)) => Some(*port),
            _ => None,
        }
    })?;
    nodes.iter().position(|n| i64::from(n.port) == port)
}

/// The index in `nodes` of a replica of `nodes[master]`.
pub fn replica_index(nodes: &[RedisServer], master: usize) -> usize {
    let port = nodes[master].port.to_string();
    nodes
        .iter()
        .position(|n| super::replication_field(n, "master_port").as_deref() == Some(port.as_str()))
        .expect("every master has a replica")
}

/// The cluster node id of `node` (`CLUSTER MYID`).
pub fn node_id(node: &RedisServer) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node.admin())
        .expect("CLUSTER MYID answers")
}

/// Subscribers of `channel` over all of `nodes` (plain and sharded
/// pub/sub).
pub fn listeners(nodes: &[RedisServer], channel: &str) -> i64 {
    let mut total = 0;
    for node in nodes {
        for command in ["NUMSUB", "SHARDNUMSUB"] {
            let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
                .arg(command)
                .arg(channel)
                .query(&mut node.admin())
                .unwrap_or_default();
            if let Some(redis::Value::Int(n)) = reply.get(1) {
                total += n;
            }
        }
    }
    total
}

/// Asks `replica` to take over from its master (`CLUSTER FAILOVER`, with
/// `FORCE` when `force`) until `promoted` says it did, for up to 60 s.
/// One request is not enough: a manual failover that does not complete
/// within 5 s (the master's offset not reached in time, or an election
/// that lost its votes on a loaded machine) is aborted for good, and a
/// test that asked once waited in vain (`cluster.rs`, on Redis 6.2: "timed
/// out waiting until the replica is promoted").
#[allow(dead_code)]
pub fn fail_over_to(replica: &RedisServer, force: bool, mut promoted: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut failover = redis::cmd("CLUSTER");
        failover.arg("FAILOVER");
        if force {
            failover.arg("FORCE");
        }
        // An error (the replica is busy with a failover already) is as
        // good as a request: the wait below tells.
        let _: redis::RedisResult<()> = failover.query(&mut replica.admin());
        let retry_at = std::time::Instant::now() + Duration::from_secs(6);
        while std::time::Instant::now() < retry_at {
            if promoted() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until the replica on port {} is promoted",
            replica.port
        );
    }
}
