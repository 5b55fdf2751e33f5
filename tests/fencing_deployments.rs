//! Fencing tokens never repeat and never go down across the faults of real
//! deployments, where Redis comes back with *older* data than the tokens it
//! already handed out:
//!
//! - Sentinel promotes a replica that lagged behind its master;
//! - Redis Cluster is forced to fail over to a lagging replica;
//! - Redlock over 5 masters, one restarted empty and one restored from an
//!   older snapshot, with the newest counter left on a single master.
//!
//! In each, a holder from before the fault still believes it holds the lock
//! when a new holder takes it (the split brain fencing exists for): every
//! token issued after the fault must be above every token issued before,
//! and a fenced resource on a separate redis-server must refuse the old
//! holder once the new one has written. Each test also checks that the
//! fault really rolled the counter back (else it would prove nothing):
//! a counter alone would have repeated a token here.

mod support;
#[path = "fencing_deployments/topology.rs"]
mod topology;

use std::time::Duration;

use latchkey::{Client, ErrorKind, Guard, LockOptions};
use support::sentinel::SentinelDeployment;
use support::{replication_field, wait_until, RedisServer};
use topology::Cluster;

/// The lock every test fences with, and the resource it protects.
const NAME: &str = "ledger";

fn lock_key() -> String {
    format!("latchkey:{{{NAME}}}")
}

fn counter_key() -> String {
    format!("latchkey:{{{NAME}}}:fence")
}

/// Takes the lock and gives it back; its fencing token.
fn take_and_give_back(client: &Client) -> u64 {
    let guard = client
        .lock(NAME)
        .unwrap()
        .acquire_timeout(Duration::from_secs(20))
        .unwrap();
    let token = guard.fencing_token();
    guard.release().unwrap();
    token
}

/// A holder that is never renewed: it stands for a process paused (GC,
/// swap, SIGSTOP) that wakes up still believing it holds the lock.
fn hold(client: &Client) -> Guard {
    client
        .lock_with(
            NAME,
            LockOptions::new()
                .ttl(Duration::from_secs(60))
                .auto_renew(false),
        )
        .unwrap()
        .acquire_timeout(Duration::from_secs(20))
        .unwrap()
}

/// The fencing counter of the lock on one server (`None`: no counter).
fn counter_on(conn: &mut redis::Connection) -> Option<u64> {
    let value: Option<String> = redis::cmd("GET").arg(counter_key()).query(conn).unwrap();
    value.map(|v| v.parse().unwrap())
}

fn lock_exists_on(conn: &mut redis::Connection) -> bool {
    redis::cmd("EXISTS")
        .arg(lock_key())
        .query::<i64>(conn)
        .unwrap()
        == 1
}

/// The claim of this file, with the tokens in the message.
fn assert_every_token_after_is_above_every_token_before(before: &[u64], after: &[u64]) {
    let highest_before = before.iter().max().copied().unwrap_or(0);
    for token in after {
        assert!(
            *token > highest_before,
            "token {token} issued after the fault is not above {highest_before} issued \
             before it (before: {before:?}, after: {after:?})"
        );
    }
}

/// The protected resource: a separate redis-server, which keeps the
/// highest token it accepted whatever happens to the lock servers.
struct Storage {
    _server: RedisServer,
    client: Client,
}

impl Storage {
    fn start() -> Storage {
        let server = RedisServer::start();
        let client = Client::open(&server.url()).unwrap();
        Storage {
            _server: server,
            client,
        }
    }

    fn write(&self, token: u64, value: &[u8]) -> bool {
        self.client
            .fenced_write(NAME, token, value)
            .unwrap()
            .written
    }

    /// The old holder writes first (accepted), the new one after the fault
    /// (accepted), then the old one again (refused: its token is older),
    /// and the resource keeps the new holder's value.
    fn check_split_brain(&self, old_token: u64, new_token: u64) {
        assert!(
            self.write(new_token, b"new holder"),
            "the new holder's token {new_token} was refused"
        );
        assert!(
            !self.write(old_token, b"old holder, late"),
            "the old holder's token {old_token} was accepted after the new holder's \
             {new_token}"
        );
        assert_eq!(
            self.client.fenced_read(NAME).unwrap(),
            Some((new_token, b"new holder".to_vec()))
        );
    }
}

/// The same split brain against a resource kept by the lock's own servers
/// ([`Guard::fenced_write`]): the old holder wrote there before the fault
/// (the fault may have lost that write), the new holder writes, then the
/// old holder's late write is refused.
fn check_split_brain_on_the_lock_servers(old: &Guard, new: &Guard, reader: &Client) {
    assert!(
        new.fenced_write(NAME, b"new holder").unwrap().written,
        "the lock servers refused the new holder's token {}",
        new.fencing_token()
    );
    assert!(
        !late_write(old).written,
        "the lock servers accepted the old holder's token {} after the new holder's {}",
        old.fencing_token(),
        new.fencing_token()
    );
    assert_eq!(
        reader.fenced_read(NAME).unwrap(),
        Some((new.fencing_token(), b"new holder".to_vec()))
    );
}

/// The old holder's late write to the lock servers. Its client may still
/// have pooled connections to a master that died: a fenced write on a
/// dropped connection may have run, so the client reports it instead of
/// sending it again (see `src/backend/sentinel.rs`), and the holder tries
/// again, as a caller would. In Redis Cluster only a call that may be sent
/// twice re-reads the slot map after a connection error (see the ignored
/// `cluster_client_finds_the_new_master_for_releases_and_fenced_writes`),
/// so before trying again the holder asks whether it still holds the lock
/// (an answer it ignores: a paused holder does not know better).
fn late_write(old: &Guard) -> latchkey::FencedWrite {
    match old.fenced_write(NAME, b"old holder, late") {
        Err(e) if e.kind() == ErrorKind::Connection => {
            let _ = old.confirm();
            old.fenced_write(NAME, b"old holder, late").unwrap()
        }
        outcome => outcome.unwrap(),
    }
}

/// What a replica must not see before its master dies.
///
/// A SIGSTOPped replica still has the master's writes delivered into its
/// socket buffers by the kernel, and reads them after SIGCONT even when the
/// master is dead by then: on loopback a few MB fit there (tcp_wmem max is
/// 4 MB, and the receive buffer grows only while the replica reads). So the
/// writes to lose are queued behind a backlog larger than that, and stay in
/// the master's own output buffer (64 MB soft limit for replicas), which
/// dies with the master.
const BACKLOG_BYTES: usize = 32 << 20;

/// Writes `BACKLOG_BYTES` of filler to `conn` under hash tag `{NAME}` (so in
/// Redis Cluster they go to the lock's master too).
fn queue_a_replication_backlog(conn: &mut redis::Connection) {
    let chunk = vec![b'x'; 1 << 20];
    for i in 0..BACKLOG_BYTES / chunk.len() {
        let () = redis::cmd("SET")
            .arg(format!("backlog:{{{NAME}}}:{i}"))
            .arg(&chunk)
            .query(conn)
            .unwrap();
    }
}

/// Waits until `replica` has the lock's counter at `token` (replicated).
fn wait_for_replicated_counter(replica: &RedisServer, token: u64, readonly: bool) {
    wait_until(
        "the replica has the newest counter",
        Duration::from_secs(20),
        || {
            let mut conn = replica.admin();
            if readonly {
                let () = redis::cmd("READONLY").query(&mut conn).unwrap();
            }
            counter_on(&mut conn) == Some(token)
        },
    );
}

// --- Sentinel ----------------------------------------------------------------------

#[test]
fn sentinel_promoting_a_lagging_replica_never_repeats_a_token() {
    let mut deployment = SentinelDeployment::start(1);
    let storage = Storage::start();
    let client = deployment.client();
    let mut before: Vec<u64> = (0..3).map(|_| take_and_give_back(&client)).collect();
    wait_for_replicated_counter(&deployment.replicas[0], before[2], false);

    // The replica falls behind: what follows stays in the master's output
    // buffer.
    deployment.replicas[0].signal(libc::SIGSTOP);
    queue_a_replication_backlog(&mut deployment.master.admin());
    before.extend((0..3).map(|_| take_and_give_back(&client)));
    let old_holder = hold(&client);
    before.push(old_holder.fencing_token());
    assert!(storage.write(old_holder.fencing_token(), b"old holder"));
    assert!(
        old_holder
            .fenced_write(NAME, b"old holder")
            .unwrap()
            .written
    );

    // The master dies; the sentinels promote the replica that lagged.
    deployment.master.kill();
    deployment.replicas[0].signal(libc::SIGCONT);
    deployment.wait_for_promotion_of(&deployment.replicas[0]);
    wait_until(
        "the replica serves as master",
        Duration::from_secs(10),
        || replication_field(&deployment.replicas[0], "role").as_deref() == Some("master"),
    );
    let mut promoted = deployment.replicas[0].admin();
    let stale = counter_on(&mut promoted).expect("the replica had the early counter");
    assert!(
        stale < old_holder.fencing_token(),
        "the promoted replica was not behind (counter {stale}): the test did not exercise \
         a rollback"
    );
    assert!(
        !lock_exists_on(&mut promoted),
        "the old holder's lock reached the replica"
    );

    // Split brain: the old holder still believes it holds the lock, and a
    // new holder takes it on the promoted replica.
    let new_client = deployment.client();
    let new_holder = new_client
        .lock(NAME)
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the promoted replica has no lock");
    let mut after = vec![new_holder.fencing_token()];
    assert_every_token_after_is_above_every_token_before(&before, &after);
    assert!(old_holder.remaining() > Duration::ZERO);
    storage.check_split_brain(old_holder.fencing_token(), new_holder.fencing_token());
    check_split_brain_on_the_lock_servers(&old_holder, &new_holder, &new_client);
    new_holder.release().unwrap();
    after.extend((0..3).map(|_| take_and_give_back(&new_client)));
    assert_every_token_after_is_above_every_token_before(&before, &after);
}

// --- Cluster -----------------------------------------------------------------------

#[test]
fn cluster_forced_failover_to_a_lagging_replica_never_repeats_a_token() {
    let mut cluster = Cluster::start();
    let storage = Storage::start();
    let master = cluster
        .master_of(&lock_key(), &cluster.nodes[0])
        .expect("the lock's slot has a master");
    let replica = cluster.replica_of(master);
    let all: Vec<&RedisServer> = cluster.nodes.iter().collect();
    let client = cluster.client(&all);
    let mut before: Vec<u64> = (0..3).map(|_| take_and_give_back(&client)).collect();
    wait_for_replicated_counter(&cluster.nodes[replica], before[2], true);

    cluster.nodes[replica].signal(libc::SIGSTOP);
    queue_a_replication_backlog(&mut cluster.nodes[master].admin());
    before.extend((0..3).map(|_| take_and_give_back(&client)));
    let old_holder = hold(&client);
    before.push(old_holder.fencing_token());
    assert!(storage.write(old_holder.fencing_token(), b"old holder"));
    assert!(
        old_holder
            .fenced_write(NAME, b"old holder")
            .unwrap()
            .written
    );

    // The master dies; the lagging replica is forced to take over its slots.
    cluster.force_failover(master, replica, &lock_key());
    let alive = cluster.alive_without(master);
    let mut promoted = cluster.nodes[replica].admin();
    let stale = counter_on(&mut promoted).expect("the replica had the early counter");
    assert!(
        stale < old_holder.fencing_token(),
        "the promoted replica was not behind (counter {stale}): the test did not exercise \
         a rollback"
    );
    assert!(
        !lock_exists_on(&mut promoted),
        "the old holder's lock reached the replica"
    );

    let new_client = cluster.client(&alive);
    let new_holder = new_client
        .lock(NAME)
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the promoted replica has no lock");
    let mut after = vec![new_holder.fencing_token()];
    assert_every_token_after_is_above_every_token_before(&before, &after);
    assert!(old_holder.remaining() > Duration::ZERO);
    storage.check_split_brain(old_holder.fencing_token(), new_holder.fencing_token());
    check_split_brain_on_the_lock_servers(&old_holder, &new_holder, &new_client);
    new_holder.release().unwrap();
    after.extend((0..3).map(|_| take_and_give_back(&new_client)));
    assert_every_token_after_is_above_every_token_before(&before, &after);
}

/// After a failover, the client's slot map still names the dead master.
/// A call that may not be sent twice (a release, a fenced write, a
/// force-unlock) may fail once, but the connection error makes the client
/// read the slot map again, and a call that never reached the dead master
/// (a refused connect) is sent to the new one: the next call works, as with
/// Sentinel.
#[test]
fn cluster_client_finds_the_new_master_for_releases_and_fenced_writes() {
    let mut cluster = Cluster::start();
    let master = cluster
        .master_of(&lock_key(), &cluster.nodes[0])
        .expect("the lock's slot has a master");
    let replica = cluster.replica_of(master);
    let client = cluster.client(&cluster.nodes.iter().collect::<Vec<_>>());
    let guard = hold(&client);
    wait_until("the replica has the lock", Duration::from_secs(20), || {
        let mut conn = cluster.nodes[replica].admin();
        let () = redis::cmd("READONLY").query(&mut conn).unwrap();
        let owner: Option<String> = redis::cmd("GET").arg(lock_key()).query(&mut conn).unwrap();
        owner.as_deref() == Some(guard.token())
    });

    cluster.force_failover(master, replica, &lock_key());

    // One failed call is what Sentinel allows too; the next must reach the
    // new master.
    let first = guard.fenced_write(NAME, b"v1");
    if let Err(e) = &first {
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    }
    let second = guard.fenced_write(NAME, b"v2");
    assert!(
        second.as_ref().is_ok_and(|w| w.written),
        "the second fenced write after the failover: {second:?} (the first: {first:?})"
    );
    guard
        .release()
        .expect("release on the new master, where the lock was replicated");
}

// --- Redlock -----------------------------------------------------------------------

fn redlock_client(masters: &[RedisServer]) -> Client {
    let urls: Vec<String> = masters.iter().map(RedisServer::url).collect();
    Client::redlock_builder(&urls)
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        // Restarted masters count at once: tokens must still never repeat
        // (the restart delay is a second line, tested in redlock_faults).
        .redlock_restart_delay(Duration::ZERO)
        .build()
        .unwrap()
}

/// Five masters. The old holder's quorum is masters 0, 3 and 4 (1 and 2
/// are held by a third party for that moment), so the highest counter,
/// written back to that quorum, is then lost on 3 (restored from an older
/// snapshot) and on 4 (restarted empty): it survives on master 0 alone,
/// which still carries the old holder's lock. The new holder's quorum is
/// masters 1 to 4, none of which knows the old holder's token.
#[test]
fn redlock_with_a_master_restarted_empty_and_one_from_an_old_snapshot_never_repeats_a_token() {
    let mut masters: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let storage = Storage::start();
    let client = redlock_client(&masters);
    let mut before = vec![take_and_give_back(&client)];
    let () = redis::cmd("SAVE").query(&mut masters[3].admin()).unwrap();
    before.extend((0..3).map(|_| take_and_give_back(&client)));

    // Masters 1 and 2 are briefly held by someone else: the old holder
    // wins on 0, 3 and 4 only.
    for m in &masters[1..3] {
        let () = redis::cmd("SET")
            .arg(lock_key())
            .arg("someone-else")
            .arg("PX")
            .arg(60_000)
            .query(&mut m.admin())
            .unwrap();
    }
    let old_holder = hold(&client);
    let old_token = old_holder.fencing_token();
    before.push(old_token);
    assert!(storage.write(old_token, b"old holder"));
    assert!(
        old_holder
            .fenced_write(NAME, b"old holder")
            .unwrap()
            .written
    );
    for m in &masters[1..3] {
        let _: i64 = redis::cmd("DEL")
            .arg(lock_key())
            .query(&mut m.admin())
            .unwrap();
    }

    // kill -9: master 3 comes back from its early snapshot, master 4 empty.
    masters[3].restart();
    masters[4].restart();
    assert_eq!(counter_on(&mut masters[0].admin()), Some(old_token));
    for (i, m) in masters.iter().enumerate().skip(1) {
        let counter = counter_on(&mut m.admin());
        assert!(
            counter.is_none_or(|c| c < old_token),
            "master {i} kept counter {counter:?}: the test did not exercise a rollback"
        );
    }
    assert!(lock_exists_on(&mut masters[0].admin()));

    let new_client = redlock_client(&masters);
    let new_holder = new_client
        .lock(NAME)
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("masters 1 to 4 are a quorum without the old holder's lock");
    let mut after = vec![new_holder.fencing_token()];
    assert_every_token_after_is_above_every_token_before(&before, &after);
    assert!(old_holder.remaining() > Duration::ZERO);
    storage.check_split_brain(old_token, new_holder.fencing_token());
    check_split_brain_on_the_lock_servers(&old_holder, &new_holder, &new_client);
    new_holder.release().unwrap();
    after.extend((0..3).map(|_| take_and_give_back(&new_client)));
    assert_every_token_after_is_above_every_token_before(&before, &after);
}
