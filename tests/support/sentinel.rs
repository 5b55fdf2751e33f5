//! A Sentinel deployment of real processes: one master, its replicas and
//! three sentinels (quorum 2), stopped on drop. Shared by every suite that
//! needs one, so the start-up and its readiness checks live here only.

use std::time::Duration;

use latchkey::{Client, ClientBuilder};

use super::{replication_field, wait_until, RedisServer};

pub struct SentinelDeployment {
    pub master: RedisServer,
    pub replicas: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelDeployment {
    /// Starts a master with `replicas` replicas and three sentinels, and
    /// returns once every replica is in sync and every sentinel sees them
    /// all healthy (a failover before that could find no candidate).
    pub fn start(replicas: usize) -> SentinelDeployment {
        let master = RedisServer::start();
        let port = master.port.to_string();
        let replicas: Vec<RedisServer> = (0..replicas)
            .map(|_| RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]))
            .collect();
        for replica in &replicas {
            wait_until("a replica is in sync", Duration::from_secs(30), || {
                replication_field(replica, "master_link_status").as_deref() == Some("up")
            });
        }
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_sentinel(master.port, 2))
            .collect();
        for sentinel in &sentinels {
            wait_until(
                "a sentinel sees every replica healthy",
                Duration::from_secs(60),
                || {
                    let known: Vec<Vec<String>> = redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg("mymaster")
                        .query(&mut sentinel.admin())
                        .unwrap_or_default();
                    let field = |r: &Vec<String>, name: &str| {
                        r.chunks(2).find(|kv| kv[0] == name).map(|kv| kv[1].clone())
                    };
                    known.len() == replicas.len()
                        && known.iter().all(|r| {
                            field(r, "flags").as_deref() == Some("slave")
                                && field(r, "master-link-status").as_deref() == Some("ok")
                        })
                },
            );
        }
        SentinelDeployment {
            master,
            replicas,
            sentinels,
        }
    }

    /// A builder for a client of this deployment, with short timeouts.
    pub fn builder(&self) -> ClientBuilder {
        let urls: Vec<String> = self.sentinels.iter().map(RedisServer::url).collect();
        Client::sentinel_builder(&urls, "mymaster")
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
    }

    pub fn client(&self) -> Client {
        self.builder().build().unwrap()
    }

    /// The master's port according to `sentinel`.
    pub fn master_port_per(sentinel: &RedisServer) -> Option<u16> {
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("mymaster")
            .query::<(String, u16)>(&mut sentinel.admin())
            .ok()
            .map(|(_, port)| port)
    }

    /// The master's port according to every sentinel, once they agree.
    pub fn agreed_master_port(&self) -> Option<u16> {
        let ports: Vec<Option<u16>> = self.sentinels.iter().map(Self::master_port_per).collect();
        ports.iter().all(|p| *p == ports[0]).then_some(ports[0])?
    }

    /// Waits until every sentinel names `replica` as the master, after the
    /// master died. The sentinels fail over by themselves, but an attempt
    /// that found no promotable replica (one just resumed from SIGSTOP is
    /// not, until the sentinels hear from it again) or a split vote is
    /// tried again only after twice the failover timeout, and on a loaded
    /// machine that can repeat: so the first sentinel is also asked to
    /// fail over, every 200 ms (refusals ignored: NOGOODSLAVE, INPROG),
    /// until they agree. Up to 60 s.
    pub fn wait_for_promotion_of(&self, replica: &RedisServer) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut sentinel = self.sentinels[0].admin();
        while self.agreed_master_port() != Some(replica.port) {
            assert!(
                std::time::Instant::now() < deadline,
                "the sentinels did not promote the replica on port {} within 60 s",
                replica.port
            );
            if Self::master_port_per(&self.sentinels[0]) != Some(replica.port) {
                let _: redis::RedisResult<String> = redis::cmd("SENTINEL")
                    .arg("FAILOVER")
                    .arg("mymaster")
                    .query(&mut sentinel);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks the first sentinel for a failover and waits until it names
    /// another master.
    pub fn fail_over(&self) {
        let old = self.master.port;
        request_failover(&mut self.sentinels[0].admin(), "mymaster");
        wait_until(
            "the sentinels name a new master",
            Duration::from_secs(30),
            || Self::master_port_per(&self.sentinels[0]).is_some_and(|p| p != old),
        );
    }
}

/// Asks a sentinel to fail `master_name` over, and returns once it agreed.
///
/// A sentinel promotes only a replica it heard from within its INFO period
/// and whose link to the master is up in its own view, which can lag what
/// the replica itself reports by seconds; until then it answers
/// `NOGOODSLAVE` (and `INPROG` while an earlier failover still ends). Both
/// are asked again, every 100 ms, for up to 60 s; any other refusal fails
/// the test at once.
pub fn request_failover(sentinel: &mut redis::Connection, master_name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let refused = match redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(master_name)
            .query::<String>(sentinel)
        {
            Ok(_) => return,
            Err(e) => e,
        };
        let retry = matches!(refused.code(), Some("NOGOODSLAVE" | "INPROG"));
        assert!(
            retry && std::time::Instant::now() < deadline,
            "SENTINEL FAILOVER {master_name} was refused: {refused}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The key of lock `name` (default prefix).
pub fn key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

/// The owner token stored for plain lock `name` on `server`.
pub fn owner_on(server: &RedisServer, name: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key(name))
        .query(&mut server.admin())
        .unwrap()
}

/// Whether `client` now uses the server on `port` (its description says
/// `(now 127.0.0.1:port)`).
pub fn uses(client: &Client, port: u16) -> bool {
    format!("{client:?}").contains(&format!(":{port})"))
}

/// A client whose sentinels are `sentinels`, in this order (a subset of a
/// deployment's), with the fixture's short timeouts.
pub fn client_of(sentinels: &[&RedisServer]) -> Client {
    let urls: Vec<String> = sentinels.iter().map(|s| s.url()).collect();
    Client::sentinel_builder(&urls, "mymaster")
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Deletes locks `names` on `replica` only: their writes are lost on the
/// way to it, as asynchronous replication can lose them.
pub fn lose_on_replica(replica: &RedisServer, names: &[&str]) {
    let mut admin = replica.admin();
    let set_read_only = |admin: &mut redis::Connection, on: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("replica-read-only")
            .arg(on)
            .query(admin)
            .unwrap();
    };
    set_read_only(&mut admin, "no");
    for name in names {
        let _: i64 = redis::cmd("DEL").arg(key(name)).query(&mut admin).unwrap();
    }
    set_read_only(&mut admin, "yes");
}

/// Takes every channel from the sentinels' default user: SUBSCRIBE is
/// refused at once (NOPERM); every other command a client needs still
/// works (a least-privilege user for lock clients may look like this).
pub fn forbid_subscriptions(deployment: &SentinelDeployment) {
    for sentinel in &deployment.sentinels {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetchannels")
            .query(&mut sentinel.admin())
            .unwrap();
    }
}

/// A client of `deployment` (command timeout 3 s) asks for a lock another
/// client holds, with a 200 ms timeout; what it got and how long it took.
/// It is the client's first command, so it also starts its announcement
/// listeners, which must not hold it past its own deadline.
pub fn first_wait_behind_a_held_lock(
    deployment: &SentinelDeployment,
) -> (Option<latchkey::ErrorKind>, Duration) {
    let open = || {
        deployment
            .builder()
            .command_timeout(Duration::from_secs(3))
            .build()
            .unwrap()
    };
    let holder = open();
    let _held = holder
        .lock_with(
            "busy",
            latchkey::LockOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let waiter = open();
    let started = std::time::Instant::now();
    let got = waiter
        .lock("busy")
        .unwrap()
        .acquire_timeout(Duration::from_millis(200));
    (got.err().map(|e| e.kind()), started.elapsed())
}
