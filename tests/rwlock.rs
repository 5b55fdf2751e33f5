//! The read-write lock against a real redis-server: readers share, a
//! writer excludes everyone (counted by the holders themselves), writers
//! are preferred, a dead reader frees only its own share, a writer that
//! gives up lets readers in again, losses are reported, tokens increase
//! across sides, and what is refused.

mod support;

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::RedisServer;

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

fn count(server: &RedisServer, command: &str, key: &str) -> i64 {
    redis::cmd(command)
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

/// Three readers and two writers, each with its own client, over and over:
/// never a writer with anyone else inside, and readers do share.
#[test]
fn readers_share_and_a_writer_is_alone() {
    let server = RedisServer::start();
    // Readers inside, or -1 while a writer is.
    let inside = Arc::new(AtomicI32::new(0));
    let most_readers = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..5)
        .map(|i| {
            let url = server.url();
            let (inside, most_readers) = (inside.clone(), most_readers.clone());
            thread::spawn(move || {
                let client = Client::open(&url).unwrap();
                let lock = client.rwlock("shared").unwrap();
                for _ in 0..20 {
                    if i < 3 {
                        let guard = lock.read().unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst);
                        assert!(now >= 0, "a reader inside with a writer");
                        most_readers.fetch_max(u32::try_from(now + 1).unwrap(), Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(2));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        guard.release().unwrap();
                    } else {
                        let guard = lock.write().unwrap();
                        assert_eq!(
                            inside.swap(-1, Ordering::SeqCst),
                            0,
                            "a writer inside with others"
                        );
                        thread::yield_now();
                        inside.store(0, Ordering::SeqCst);
                        guard.release().unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(most_readers.load(Ordering::SeqCst) >= 1);
}

/// A waiting writer stops new readers; once the reader inside leaves, the
/// writer goes, and after it the readers.
#[test]
fn a_waiting_writer_goes_before_new_readers() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.rwlock("preferred").unwrap();
    let first = lock.read().unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = thread::spawn({
        let client = Client::open(&server.url()).unwrap();
        move || {
            let lock = client.rwlock("preferred").unwrap();
            let guard = lock.write_timeout(Duration::from_secs(20)).unwrap();
            tx.send(guard.fencing_token()).unwrap();
            guard.release().unwrap();
        }
    });
    support::wait_until("the writer waits", Duration::from_secs(10), || {
        count(&server, "ZCARD", "latchkey:rw:{preferred}:q") > 0
    });
    assert!(
        lock.try_read().unwrap().is_none(),
        "a new reader entered while a writer waited"
    );
    let first_token = first.fencing_token();
    first.release().unwrap();
    let writer_token = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(writer_token > first_token);
    writer.join().unwrap();
    let after = lock.read_timeout(Duration::from_secs(20)).unwrap();
    assert!(after.fencing_token() > writer_token);
}

/// A writer that gives up leaves the queue: readers enter again at once.
#[test]
fn a_writer_that_gives_up_lets_readers_in() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.rwlock("gave-up").unwrap();
    let reader = lock.read().unwrap();
    let err = lock.write_timeout(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        lock.try_read().unwrap().is_some(),
        "the writer that gave up still kept readers out"
    );
    reader.release().unwrap();
}

/// A reader that dies frees its own share when its lease ends; another
/// reader's share stays, and the writer waits for it.
#[test]
fn a_dead_reader_frees_only_its_own_share() {
    let server = RedisServer::start();
    let client = client(&server);
    let mortal = LockOptions::new()
        .ttl(Duration::from_millis(700))
        .auto_renew(false);
    let dying = client
        .rwlock_with("shares", mortal)
        .unwrap()
        .read()
        .unwrap();
    std::mem::forget(dying);
    let lock = client.rwlock("shares").unwrap();
    let living = lock.read().unwrap();
    support::wait_until(
        "the dead reader's lease ends",
        Duration::from_secs(20),
        || {
            let live: i64 = redis::cmd("ZCOUNT")
                .arg("latchkey:rwr:{shares}")
                .arg("-inf")
                .arg("+inf")
                .query(&mut server.admin())
                .unwrap();
            let now_ms = {
                let (s, us): (i64, i64) = redis::cmd("TIME").query(&mut server.admin()).unwrap();
                s * 1000 + us / 1000
            };
            let ending: i64 = redis::cmd("ZCOUNT")
                .arg("latchkey:rwr:{shares}")
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .query(&mut server.admin())
                .unwrap();
            live >= 1 && ending == 1
        },
    );
    assert!(
        lock.try_write().unwrap().is_none(),
        "the living reader still holds"
    );
    living.check().unwrap();
    living.release().unwrap();
    let writer = lock.try_write().unwrap().expect("every reader is gone");
    writer.release().unwrap();
}

/// A reader's and a writer's lease taken away are reported lost.
#[test]
fn lost_holds_are_reported() {
    let server = RedisServer::start();
    let client = client(&server);
    let options = LockOptions::new().ttl(Duration::from_millis(600));
    let lock = client.rwlock_with("fragile", options).unwrap();
    let reader = lock.read().unwrap();
    assert_eq!(count(&server, "DEL", "latchkey:rwr:{fragile}"), 1);
    support::wait_until("the reader's loss", Duration::from_secs(20), || {
        reader.lost()
    });
    assert_eq!(reader.check().unwrap_err().kind(), ErrorKind::Lost);
    drop(reader);
    let writer = lock.write().unwrap();
    assert_eq!(count(&server, "DEL", "latchkey:rw:{fragile}"), 1);
    support::wait_until("the writer's loss", Duration::from_secs(20), || {
        writer.lost()
    });
    assert_eq!(writer.release().unwrap_err().kind(), ErrorKind::NotHeld);
}

#[test]
fn bad_options_and_redlock_are_refused() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let client = client(&servers[0]);
    for options in [
        LockOptions::new().reentrant(true),
        LockOptions::new().fair(true),
    ] {
        assert_eq!(
            client.rwlock_with("r", options).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        client.rwlock("").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let redlock = Client::redlock_builder(&urls).build().unwrap();
    assert_eq!(
        redlock.rwlock("r").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

/// A writer downgrades to a reader with no other writer in between: the
/// writer queued behind it waits for the new reader, readers come in, and
/// the old write hold reads as ended (not lost).
#[test]
fn a_writer_downgrades_with_no_writer_in_between() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.rwlock("downgraded").unwrap();
    let mut writer = lock.write().unwrap();
    let (tx, rx) = mpsc::channel();
    let next_writer = thread::spawn({
        let client = Client::open(&server.url()).unwrap();
        move || {
            let lock = client.rwlock("downgraded").unwrap();
            let guard = lock.write_timeout(Duration::from_secs(20)).unwrap();
            tx.send(guard.fencing_token()).unwrap();
            guard.release().unwrap();
        }
    });
    support::wait_until("the next writer waits", Duration::from_secs(10), || {
        count(&server, "ZCARD", "latchkey:rw:{downgraded}:q") > 0
    });
    let writer_token = writer.fencing_token();
    let reader = lock.downgrade(&mut writer).unwrap();
    assert!(reader.fencing_token() > writer_token);
    reader.check().unwrap();
    assert_eq!(writer.check().unwrap_err().kind(), ErrorKind::NotHeld);
    assert!(!writer.lost(), "a downgrade is an ending, not a loss");
    let info = lock.inspect().unwrap();
    assert_eq!(info.readers.hold_count, 1);
    assert_eq!(info.readers.holders[0].token, reader.token());
    assert!(
        rx.try_recv().is_err(),
        "the waiting writer came in beside the downgraded reader"
    );
    reader.release().unwrap();
    let next_token = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(next_token > writer_token);
    next_writer.join().unwrap();
    assert_eq!(writer.release().unwrap_err().kind(), ErrorKind::NotHeld);
}

/// Bad input changes nothing: a read hold, or another lock's write hold,
/// is refused and stays held; a lost write hold cannot be downgraded.
#[test]
fn a_downgrade_of_the_wrong_hold_changes_nothing() {
    let server = RedisServer::start();
    let client = client(&server);
    let lock = client.rwlock("refused-downgrade").unwrap();
    let other = client.rwlock("another").unwrap();
    let mut reader = lock.read().unwrap();
    let err = lock.downgrade(&mut reader).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    reader.check().unwrap();
    reader.release().unwrap();
    let mut foreign = other.write().unwrap();
    assert_eq!(
        lock.downgrade(&mut foreign).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    foreign.check().unwrap();
    foreign.release().unwrap();

    let options = LockOptions::new().ttl(Duration::from_millis(600));
    let fragile = client.rwlock_with("refused-downgrade", options).unwrap();
    let mut writer = fragile.write().unwrap();
    assert_eq!(count(&server, "DEL", "latchkey:rw:{refused-downgrade}"), 1);
    let err = fragile.downgrade(&mut writer).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotHeld);
    assert_eq!(
        fragile.inspect().unwrap().readers.hold_count,
        0,
        "no read lease was made for a lost writer"
    );
}
