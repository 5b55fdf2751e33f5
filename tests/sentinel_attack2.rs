//! A second round of attacks on the Sentinel failover handling, with real
//! redis-server and sentinel processes (`tests/support/sentinel.rs`). The
//! faults: a sentinel stopped with SIGSTOP, a master killed, sentinels that
//! do not hear each other's hello messages (a channel ACL, as a partition
//! would), a master that pauses writes, and fork().
//!
//! The findings of this round (a fork while the watchdog looks up the
//! master, a lagging sentinel, sentinels that refuse subscriptions) failed
//! before their fixes; the others held and add coverage that
//! `tests/sentinel_attack.rs` lacks. They run one at a time (`serial`):
//! each starts its own deployment.

mod support;

use std::thread;
use std::time::Duration;

use latchkey::{Client, LockOptions};
use parking_lot::{Mutex, MutexGuard};
use support::in_forked_child;
use support::sentinel::{
    client_of, first_wait_behind_a_held_lock, forbid_subscriptions, key, lose_on_replica, uses,
    SentinelDeployment,
};
use support::{replication_field, wait_until, warm_up, RedisServer};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: deployments are heavy on two cores.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

/// Forks a child that runs one command of `client` and leaves; returns its
/// wait status, or `None` when it was still running after `limit`.
fn run_in_child(client: &Client, limit: Duration) -> Option<i32> {
    in_forked_child(limit, || {
        let _ = client.lock("child").unwrap().try_acquire();
    })
}

/// The README's fork rule: a fork while *another thread is inside a
/// latchkey call* may leave an internal lock taken; fork before other
/// threads use the client. Here no thread of the caller is inside a call:
/// the process holds one renewed lease and forks. But its master died, and
/// the library's own watchdog thread, renewing, asks the sentinels for the
/// master (the first one is stopped: up to 3 s). Before the fix it did so
/// with `Inner::current` locked, and the child inherited that lock held by
/// a thread it does not have: its first command waited forever. Now no
/// lock is held while asking, and the master in use is per process.
#[test]
fn a_fork_while_the_watchdog_looks_for_the_master_does_not_hang_the_child() {
    let _serial = serial();
    let mut deployment = SentinelDeployment::start(1);
    let client = deployment
        .builder()
        .command_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // Renewed every second.
    let _lease = client
        .lock_with("renewed", LockOptions::new().ttl(Duration::from_secs(3)))
        .unwrap()
        .acquire()
        .unwrap();
    deployment.sentinels[0].signal(libc::SIGSTOP);
    deployment.master.kill();
    // The next renewal (within 1 s) fails and looks for the master.
    thread::sleep(Duration::from_millis(1500));
    let status = run_in_child(&client, Duration::from_secs(15));
    deployment.sentinels[0].signal(libc::SIGCONT);
    assert!(
        status.is_some(),
        "the child's first command was still blocked 15 s after the fork; \
         no thread of the parent was inside a latchkey call"
    );
    assert!(
        status.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0),
        "the child ended with wait status {status:?}"
    );
}

/// Sentinels learn a failover from each other's hello messages
/// (`__sentinel__:hello`, published on every server and sentinel). Here the
/// `lagging` sentinels do not hear them, as if cut off from the others:
/// they reach the data servers as a user without that channel, and their
/// own default user lacks it too. Only the other sentinels learn of a
/// failover; the lagging ones still name the old master.
fn silence_hello_messages(deployment: &SentinelDeployment, lagging: &[&RedisServer]) {
    let servers = std::iter::once(&deployment.master).chain(&deployment.replicas);
    for server in servers {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("lagging")
            .arg("on")
            .arg(">lagging")
            .arg("~*")
            // Redis 6.2 gives a new user every channel unless reset first.
            .arg("resetchannels")
            .arg("&latchkey:*")
            .arg("+@all")
            .query(&mut server.admin())
            .unwrap();
    }
    for sentinel in lagging {
        let mut admin = sentinel.admin();
        for (option, value) in [("auth-user", "lagging"), ("auth-pass", "lagging")] {
            let _: () = redis::cmd("SENTINEL")
                .arg("SET")
                .arg("mymaster")
                .arg(option)
                .arg(value)
                .query(&mut admin)
                .unwrap();
        }
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetchannels")
            .arg("&+switch-master")
            .arg("&+promoted-slave")
            .query(&mut admin)
            .unwrap();
    }
}

/// The client heard the failover announced and moved to the new master.
/// Then one command times out (the new master pauses writes for a moment)
/// and `master(true)` asks the sentinels again. The first one listed lags
/// and still names the old master, which nothing has demoted yet and which
/// still says `role:master`. Before the fix the client took the first
/// answer, moved back, re-sent the acquire there and took a lock that a
/// client of the new master held: a double hold the README's Sentinel row
/// does not admit (the client had heard the announcement, and it reaches
/// every sentinel). Now the answer with the highest configuration epoch
/// wins. Without the ACL the same
/// window opens after every failover: the other sentinels learn the new
/// master from the next hello (every 2 s), and the old master is demoted
/// seconds later.
#[test]
fn a_lagging_first_sentinel_does_not_move_the_client_back_to_the_deposed_master() {
    let _serial = serial();
    let back = back_to_the_deposed_master(None);
    assert!(
        !(back.moved_back || back.both_hold),
        "{back:?}: the client moved back to the deposed master, or holds 'split' \
         there while another client holds it on the new master"
    );
}

/// `wait_for_replicas` with every replica (README: it closes the Sentinel
/// row's double holds): the same scenario never ends with two holders.
/// (Before lookups compared configuration epochs, the client was led back
/// to the deposed master, which had no replica left to confirm the lock.)
#[test]
fn waiting_for_every_replica_refuses_the_lock_on_the_deposed_master() {
    let _serial = serial();
    let back = back_to_the_deposed_master(Some(1));
    assert!(!back.both_hold, "{back:?}: two clients hold 'split'");
}

/// What [`back_to_the_deposed_master`] saw.
struct LedBack {
    old_is_master: bool,
    moved_back: bool,
    both_hold: bool,
    ours: String,
    theirs_fencing_token: u64,
}

impl std::fmt::Debug for LedBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the old master said role:master: {}; the client moved back to it: {}; \
             its attempt on 'split': {}; the other client holds 'split' on the new \
             master with fencing token {}; both hold it: {}",
            self.old_is_master,
            self.moved_back,
            self.ours,
            self.theirs_fencing_token,
            self.both_hold
        )
    }
}

/// A client of sentinels listed lagging first hears a failover (from the
/// leader) and moves; one of its commands then times out on the new master
/// (it pauses writes for a moment), and it tries to take a lock that a
/// client of the new master holds. `wait_for_replicas`: that client's
/// replica count (waiting 200 ms).
fn back_to_the_deposed_master(wait_for_replicas: Option<usize>) -> LedBack {
    let deployment = SentinelDeployment::start(1);
    let [leader, lagging @ ..] = &deployment.sentinels[..] else {
        unreachable!("three sentinels")
    };
    let old = &deployment.master;
    let new = &deployment.replicas[0];
    silence_hello_messages(&deployment, &[&lagging[0], &lagging[1]]);
    let urls: Vec<String> = [&lagging[0], &lagging[1], leader]
        .iter()
        .map(|s| s.url())
        .collect();
    let mut builder = Client::sentinel_builder(&urls, "mymaster")
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500));
    if let Some(replicas) = wait_for_replicas {
        builder = builder.wait_for_replicas(replicas, Duration::from_millis(200));
    }
    let client = builder.build().unwrap();
    let other = client_of(&[leader]);
    warm_up(&client);
    warm_up(&other);

    deployment.fail_over();
    wait_until(
        "the client heard the failover and moved",
        Duration::from_secs(10),
        || uses(&client, new.port),
    );
    assert_eq!(
        SentinelDeployment::master_port_per(&lagging[0]),
        Some(old.port),
        "the first sentinel of the client already knows the new master"
    );
    let theirs = other
        .lock_with("split", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the new master has 'split' free");
    let old_is_master = replication_field(old, "role").as_deref() == Some("master");

    // One slow moment on the new master: the client's next command times out.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query(&mut new.admin())
        .unwrap();
    let ours = client
        .lock_with("split", LockOptions::new().ttl(Duration::from_secs(30)))
        .unwrap()
        .try_acquire();
    LedBack {
        old_is_master,
        moved_back: uses(&client, old.port),
        both_hold: matches!(ours, Ok(Some(_))),
        ours: match &ours {
            Ok(Some(guard)) => format!("held, fencing token {}", guard.fencing_token()),
            Ok(None) => "held by another".to_string(),
            Err(e) => format!("error: {e}"),
        },
        theirs_fencing_token: theirs.fencing_token(),
    }
}

/// The first command of a client waits up to the command timeout for one
/// sentinel to confirm its subscription. Here every sentinel answers at
/// once, refusing SUBSCRIBE (NOPERM): the listener skips the error reply
/// and keeps reading, so nothing ends the wait but the command timeout. A
/// waiter asking for 200 ms waits 3 s, although every server answered
/// every command at once (round 1 fixed the same overrun for a dead first
/// sentinel only).
#[test]
fn sentinels_that_refuse_subscriptions_do_not_hold_a_waiter_past_its_timeout() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    forbid_subscriptions(&deployment);
    let (got, took) = first_wait_behind_a_held_lock(&deployment);
    assert_eq!(got, Some(latchkey::ErrorKind::Timeout));
    assert!(
        took < Duration::from_secs(1),
        "an acquire with a 200 ms timeout took {took:?}; every sentinel answered at once"
    );
}

/// A reentrant handle with two nested holds, whose tenure the promoted
/// replica never got: after the failover both holds are reported lost at
/// once, a client of the new master takes the lock, and the handle's next
/// attempt does not nest into anything (it is refused, the lock being
/// held); once the other client gives it back, the handle starts a new
/// tenure with a higher fencing token.
#[test]
fn a_reentrant_tenure_lost_in_a_failover_is_reported_and_not_nested_into() {
    let _serial = serial();
    let deployment = SentinelDeployment::start(1);
    let replica = &deployment.replicas[0];
    let client = deployment.client();
    let handle = client
        .lock_with(
            "nested",
            LockOptions::new()
                .reentrant(true)
                .ttl(Duration::from_secs(60)),
        )
        .unwrap();
    let outer = handle.acquire().unwrap();
    let inner = handle.acquire().unwrap();
    wait_until(
        "the tenure reaches the replica",
        Duration::from_secs(10),
        || {
            redis::cmd("HLEN")
                .arg(key("nested"))
                .query::<i64>(&mut replica.admin())
                .is_ok_and(|n| n >= 4)
        },
    );
    lose_on_replica(replica, &["nested"]);
    deployment.fail_over();
    wait_until(
        "the client moved to the promoted replica",
        Duration::from_secs(10),
        || uses(&client, replica.port),
    );
    wait_until(
        "both nested holds are reported lost",
        Duration::from_secs(3),
        || outer.lost() && inner.lost(),
    );
    let other = deployment.client();
    let theirs = other
        .lock("nested")
        .unwrap()
        .try_acquire()
        .unwrap()
        .expect("the new master has 'nested' free");
    assert!(
        handle.try_acquire().unwrap().is_none(),
        "the handle nested into a tenure it lost while another client holds the lock"
    );
    let fence = theirs.fencing_token();
    theirs.release().unwrap();
    let again = handle.try_acquire().unwrap().expect("'nested' is free");
    assert!(again.fencing_token() > fence.max(outer.fencing_token()));
}
