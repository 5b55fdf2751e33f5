//! The Sentinel and Cluster deployments the fencing tests break: real
//! redis-server processes started by the test, stopped on drop.

use std::time::Duration;

use latchkey::Client;

use crate::support::{cluster, replication_field, wait_until, RedisServer};

/// Six nodes: three masters with a replica each.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster {
            nodes: cluster::start_nodes(2000),
        }
    }

    pub fn wait_until_ok(&self, nodes: &[&RedisServer]) {
        cluster::wait_until_ok(nodes, Duration::from_secs(30));
    }

    pub fn client(&self, alive: &[&RedisServer]) -> Client {
        let urls: Vec<String> = alive.iter().map(|n| n.url()).collect();
        Client::cluster_builder(&urls)
            .command_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    /// The index of the node serving the slot of `key` as master, as
    /// `asked` sees it.
    pub fn master_of(&self, key: &str, asked: &RedisServer) -> Option<usize> {
        let mut admin = asked.admin();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut admin)
            .ok()?;
        let ranges: Vec<redis::Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query(&mut admin).ok()?;
        // Each range: [first slot, last slot, [master ip, port, ...], ...].
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
                redis::Value::Int(port) if (*first..=*last).contains(&slot) => Some(*port),
                _ => None,
            }
        })?;
        self.nodes.iter().position(|n| i64::from(n.port) == port)
    }

    /// The index of a replica of node `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let port = self.nodes[master].port.to_string();
        self.nodes
            .iter()
            .position(|n| replication_field(n, "master_port").as_deref() == Some(port.as_str()))
            .expect("every master has a replica")
    }

    /// The live nodes once node `dead` is gone.
    pub fn alive_without(&self, dead: usize) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != dead)
            .map(|(_, n)| n)
            .collect()
    }

    /// Kills node `master` (`kill -9`), resumes `replica` if it was
    /// stopped, forces it to take over (`CLUSTER FAILOVER FORCE`: the
    /// master cannot agree) and waits until every live node routes the
    /// slot of `key` to it and the cluster is ok again.
    pub fn force_failover(&mut self, master: usize, replica: usize, key: &str) {
        self.nodes[master].kill();
        self.nodes[replica].signal(libc::SIGCONT);
        cluster::fail_over_to(&self.nodes[replica], true, || {
            replication_field(&self.nodes[replica], "role").as_deref() == Some("master")
        });
        let alive = self.alive_without(master);
        wait_until(
            "every live node routes the slot to the promoted replica",
            Duration::from_secs(25),
            || {
                alive
                    .iter()
                    .all(|n| self.master_of(key, n) == Some(replica))
            },
        );
        self.wait_until_ok(&alive);
    }
}
