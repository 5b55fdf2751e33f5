//! Attacks on the read-write lock's downgrade (RwLock::downgrade,
//! src/scripts/rw_downgrade.lua, Guard::handed_over). Each finding's test
//! names what broke before its fix; the attacks that held are kept as
//! passing tests.
//!
//! Late copies are the library's own script calls, captured with their
//! exact KEYS and ARGV by a MONITOR connection and delivered again through
//! a raw connection (as in tests/attack_family.rs).

mod support;

use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::monitor::{deliver, Monitor};
use support::{wait_until, RedisServer};

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

fn query_i64(server: &RedisServer, command: &str, key: &str) -> i64 {
    redis::cmd(command)
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

fn writer_key(server: &RedisServer, name: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(format!("latchkey:rw:{{{name}}}"))
        .query(&mut server.admin())
        .unwrap()
}

fn readers(server: &RedisServer, name: &str) -> i64 {
    query_i64(server, "ZCARD", &format!("latchkey:rwr:{{{name}}}"))
}

// ---------------------------------------------------------------------------
// Finding 1: a downgrade refused because the write hold is gone in Redis
// left the writer guard passing check() beside the new writer.

#[test]
fn a_downgrade_refused_as_not_held_reports_the_writer_lost() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let lock = a.rwlock("gone-writer").unwrap();
    let mut writer = lock.write().unwrap();
    // The hold goes (an eviction, a force-unlock, a failover that lost it):
    // the guard's own lease still has most of its ttl to run here.
    assert_eq!(query_i64(&server, "DEL", "latchkey:rw:{gone-writer}"), 1);
    let other = b.rwlock("gone-writer").unwrap().try_write().unwrap();
    let other = other.expect("the lock is free in Redis");
    let err = lock.downgrade(&mut writer).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotHeld);
    other.check().unwrap();
    // The downgrade learnt that the write hold is gone (the docs: "writer
    // then reports the loss"), yet the old writer still vouched for it.
    assert!(
        writer.check().is_err(),
        "two writers pass check(): the downgrade found the write hold gone but the old guard still says held"
    );
    assert!(writer.lost(), "the loss is reported");
    other.release().unwrap();
}

// ---------------------------------------------------------------------------
// Finding 2: a plain lock's guard whose key is the read-write lock's writer
// key (a client with prefix "latchkey:rw") was downgraded.

#[test]
fn a_plain_lock_guard_is_not_a_write_hold() {
    let server = RedisServer::start();
    let rw_client = client(&server);
    let plain_client = Client::builder(&server.url())
        .prefix("latchkey:rw")
        .build()
        .unwrap();
    let mut plain = plain_client.lock("collide").unwrap().acquire().unwrap();
    let lock = rw_client.rwlock("collide").unwrap();
    let outcome = lock.downgrade(&mut plain);
    let made_reader = outcome.is_ok();
    drop(outcome);
    assert!(
        !made_reader,
        "a plain lock's guard was taken for a write hold and downgraded"
    );
    plain.check().unwrap();
}

// ---------------------------------------------------------------------------
// Finding 3: with wait_for_replicas, a downgrade no replica confirmed gave a
// read hold that counts as held (an acquire or renewal no replica
// confirmed never does): a failover loses it while the guard vouches.

#[test]
fn an_unconfirmed_downgrade_is_not_a_read_hold() {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_until("the replica is in sync", Duration::from_secs(30), || {
        support::replication_field(&replica, "master_link_status").as_deref() == Some("up")
    });
    let client = Client::builder(&master.url())
        .wait_for_replicas(1, Duration::from_millis(100))
        .build()
        .unwrap();
    let lock = client.rwlock("unconfirmed-down").unwrap();
    let mut writer = None;
    for _ in 0..20 {
        match lock.write() {
            Ok(guard) => {
                writer = Some(guard);
                break;
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut writer = writer.expect("a confirmed write hold");
    replica.signal(libc::SIGSTOP);
    let outcome = lock.downgrade(&mut writer);
    replica.signal(libc::SIGCONT);
    let confirmed = outcome.is_ok();
    drop(outcome);
    assert!(
        !confirmed,
        "a downgrade no replica confirmed gave a read hold that counts as held"
    );
}

// ---------------------------------------------------------------------------
// Attacks that held.

/// A late copy of the downgrade, arriving after a newer writer took the
/// lock (or after the reader it made was released), changes nothing.
#[test]
fn a_late_downgrade_copy_changes_nothing() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let lock = a.rwlock("late-down").unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let mut writer = lock.write().unwrap();
    monitor.script_calls_since(&mut admin);
    let reader = lock.downgrade(&mut writer).unwrap();
    let calls = monitor.script_calls_since(&mut admin);
    let copy = calls
        .into_iter()
        .find(|call| call.iter().any(|arg| arg == reader.token().as_bytes()))
        .expect("the downgrade's script call");
    // Again at once: the reader made is still there.
    deliver(&mut admin, &copy);
    assert_eq!(readers(&server, "late-down"), 1);
    reader.release().unwrap();
    assert_eq!(readers(&server, "late-down"), 0);
    deliver(&mut admin, &copy);
    assert_eq!(readers(&server, "late-down"), 0, "no lease revived");
    let newer = b.rwlock("late-down").unwrap().try_write().unwrap().unwrap();
    let before = writer_key(&server, "late-down");
    deliver(&mut admin, &copy);
    assert_eq!(writer_key(&server, "late-down"), before);
    assert_eq!(readers(&server, "late-down"), 0);
    newer.check().unwrap();
    newer.release().unwrap();
}

/// The old writer guard, after the downgrade: its release, extend, drop
/// and its client's close leave the new holds alone; a second downgrade
/// is refused and changes nothing.
#[test]
fn the_old_writer_guard_touches_nothing_afterwards() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let mut writer = a.rwlock("old-writer").unwrap().write().unwrap();
    // Downgraded through another client's handle on the same lock: the
    // read hold is b's, the ended write guard a's.
    let lock_b = b.rwlock("old-writer").unwrap();
    let reader = lock_b.downgrade(&mut writer).unwrap();
    assert_eq!(
        lock_b.downgrade(&mut writer).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    assert_eq!(readers(&server, "old-writer"), 1);
    assert!(writer.extend(Duration::from_secs(60)).is_err());
    assert!(!writer.lost());
    let another = lock_b.try_read().unwrap().unwrap();
    a.close().unwrap();
    assert_eq!(writer.release().unwrap_err().kind(), ErrorKind::NotHeld);
    assert_eq!(readers(&server, "old-writer"), 2);
    reader.check().unwrap();
    another.check().unwrap();
    // No writer comes in beside them.
    assert!(lock_b.try_write().unwrap().is_none());
    drop((reader, another));
    assert!(lock_b.try_write().unwrap().is_some());
}

/// The downgraded reader's lease is renewed, and its loss is reported.
#[test]
fn the_downgraded_reader_is_renewed_and_its_loss_reported() {
    let server = RedisServer::start();
    let client = client(&server);
    let options = LockOptions::new().ttl(Duration::from_millis(600));
    let lock = client.rwlock_with("renewed-down", options).unwrap();
    let mut writer = lock.write().unwrap();
    let reader = lock.downgrade(&mut writer).unwrap();
    thread::sleep(Duration::from_millis(2000));
    reader.check().unwrap();
    assert_eq!(readers(&server, "renewed-down"), 1);
    assert!(lock.try_write().unwrap().is_none());
    let _: i64 = redis::cmd("ZREM")
        .arg("latchkey:rwr:{renewed-down}")
        .arg(reader.token())
        .query(&mut server.admin())
        .unwrap();
    wait_until("the loss is reported", Duration::from_secs(5), || {
        reader.lost()
    });
    assert_eq!(reader.check().unwrap_err().kind(), ErrorKind::Lost);
}

/// Fencing tokens only grow across a downgrade: the writer's, the
/// downgraded reader's, a reader that came in with it, the next writer's.
#[test]
fn fencing_tokens_grow_across_a_downgrade() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.rwlock("fenced-down").unwrap();
    let mut writer = lock.write().unwrap();
    let w = writer.fencing_token();
    let reader = lock.downgrade(&mut writer).unwrap();
    let other = lock.try_read().unwrap().unwrap();
    assert!(w < reader.fencing_token());
    assert!(reader.fencing_token() < other.fencing_token());
    drop((reader, other));
    let next = lock.try_write().unwrap().unwrap();
    assert!(next.fencing_token() > w + 2);
}

// ---------------------------------------------------------------------------
// Finding 4: a downgrade through a closed client's handle went ahead: it
// made a read hold that the close (already over) never releases, while
// every acquire on a closed client is refused with `Closed`.

#[test]
fn a_downgrade_through_a_closed_client_is_refused() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let options = LockOptions::new().ttl(Duration::from_millis(600));
    let mut writer = a
        .rwlock_with("closed-down", options.clone())
        .unwrap()
        .write()
        .unwrap();
    let lock_b = b.rwlock_with("closed-down", options).unwrap();
    b.close().unwrap();
    assert_eq!(
        lock_b.try_read().unwrap_err().kind(),
        ErrorKind::Closed,
        "an acquire on a closed client"
    );
    let outcome = lock_b.downgrade(&mut writer);
    let kind = outcome.as_ref().err().map(|e| e.kind());
    if let Ok(reader) = &outcome {
        // Before the fix: still renewed and held, 1.5 s (2.5 ttls) later.
        thread::sleep(Duration::from_millis(1500));
        eprintln!(
            "reader after 1.5 s: check {:?}, leases in Redis {}",
            reader.check(),
            readers(&server, "closed-down")
        );
    }
    drop(outcome);
    assert_eq!(
        kind,
        Some(ErrorKind::Closed),
        "a downgrade through a closed client went ahead"
    );
    writer.check().unwrap();
}

// ---------------------------------------------------------------------------
// Finding 5: a renewal of the write hold in flight while the downgrade ran
// came back "not ours" and the watchdog reported the handed-over write hold
// lost (its on_lost callback ran): the downgrade stopped the renewals only
// after the script had run, unlike a release, which stops them first.

/// A renewal of the write hold racing the downgrade (renewed every
/// millisecond) never makes the watchdog report the handed-over write hold
/// as lost.
#[test]
fn a_renewal_racing_the_downgrade_reports_no_loss() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let server = RedisServer::start();
    let client = client(&server);
    let losses = Arc::new(AtomicUsize::new(0));
    let counted = losses.clone();
    let options = LockOptions::new()
        .renew_every(Duration::from_millis(1))
        .on_lost(move |lost| {
            // Only write holds (a read hold's token starts with "1:").
            if !lost.token.starts_with("1:") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
    let lock = client.rwlock_with("racing-renewal", options).unwrap();
    for _ in 0..300 {
        let mut writer = lock.write().unwrap();
        let reader = lock.downgrade(&mut writer).unwrap();
        drop(writer);
        reader.release().unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        losses.load(Ordering::SeqCst),
        0,
        "a downgraded write hold was reported lost"
    );
}
