//! Attacks on the family of primitives built on the lock: the read-write
//! lock (src/rwlock.rs), leader election (src/election.rs) and multi-locks
//! (src/multi.rs). Each finding's test names what broke before its fix;
//! the attacks that held are kept as passing tests.
//!
//! Late copies are the library's own script calls, captured with their
//! exact KEYS and ARGV by a MONITOR connection and delivered again through
//! a raw connection (EVALSHA of the same script), the way a command
//! delayed in the network would reach Redis (see tests/late_copies.rs).

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, LockOptions};
use support::monitor::{deliver, Monitor};
use support::{wait_until, RedisServer};

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

/// How many clients listen on `channel`.
fn numsub(server: &RedisServer, channel: &str) -> i64 {
    let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut server.admin())
        .unwrap();
    match reply.get(1) {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

fn zcard(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("ZCARD")
        .arg(key)
        .query(&mut server.admin())
        .unwrap()
}

// ---------------------------------------------------------------------------
// Finding 1: a waiting writer that gave up kept the waiting readers asleep.

/// A reader holds `name`; a writer (its own client) waits for it, queued,
/// so a second reader waits behind the writer (writer preference). The
/// writer then gives up: by its deadline (`cancel` false) or a cancel.
/// Returns how long the waiting reader still stayed out afterwards.
fn reader_left_out_after_the_writer_gave_up(
    server: &RedisServer,
    name: &str,
    cancel: bool,
) -> Duration {
    let holder = client(server);
    let first = holder.rwlock(name).unwrap().read().unwrap();
    let stop = CancelToken::new();
    let writer = thread::spawn({
        let client = client(server);
        let (name, stop) = (name.to_string(), stop.clone());
        move || {
            let lock = client.rwlock(&name).unwrap();
            let outcome = if cancel {
                lock.write_with(None, Some(&stop))
            } else {
                lock.write_timeout(Duration::from_millis(1500))
            };
            let gave_up = Instant::now();
            (outcome.map(drop).map_err(|e| e.kind()), gave_up)
        }
    });
    wait_until("the writer waits", Duration::from_secs(10), || {
        zcard(server, &format!("latchkey:rw:{{{name}}}:q")) > 0
    });
    let reader = thread::spawn({
        let client = client(server);
        let name = name.to_string();
        move || {
            let lock = client.rwlock(&name).unwrap();
            let entered = lock.read_timeout(Duration::from_secs(20)).map(drop);
            (entered, Instant::now())
        }
    });
    // Both listen on the writer's channel: the reader is parked behind the
    // waiting writer.
    wait_until("the reader waits", Duration::from_secs(10), || {
        numsub(server, &format!("latchkey:rw:{{{name}}}:ch")) >= 2
    });
    if cancel {
        stop.cancel();
    }
    let (outcome, gave_up) = writer.join().unwrap();
    let expected = if cancel {
        ErrorKind::Cancelled
    } else {
        ErrorKind::Timeout
    };
    assert_eq!(outcome, Err(expected));
    let (entered, at) = reader.join().unwrap();
    entered.expect("the reader entered");
    drop(first);
    at.saturating_duration_since(gave_up)
}

/// A reader waiting behind a waiting writer (writer preference) was told to
/// look again when the writer's queue entry would run out (15 s): it parked
/// for 5 s, and nothing woke it when the writer gave up, since the writer's
/// last attempt left the queue without a word (its timeout) and
/// leave_queue.lua published only when it handed the lock to another
/// writer. Before the fix: "a reader stayed out 3.5 s after the writer
/// that kept it out gave up".
#[test]
fn a_reader_enters_as_soon_as_the_writer_before_it_times_out() {
    let server = RedisServer::start();
    let left_out = reader_left_out_after_the_writer_gave_up(&server, "timed-out-writer", false);
    assert!(
        left_out < Duration::from_secs(1),
        "a reader stayed out {left_out:?} after the writer that kept it out gave up"
    );
}

/// As above, for a writer that is cancelled (its give-up runs
/// leave_queue.lua, which freed the queue but woke nobody). Before the fix:
/// "a reader stayed out 5.0 s after the writer that kept it out was
/// cancelled".
#[test]
fn a_reader_enters_as_soon_as_the_writer_before_it_is_cancelled() {
    let server = RedisServer::start();
    let left_out = reader_left_out_after_the_writer_gave_up(&server, "cancelled-writer", true);
    assert!(
        left_out < Duration::from_secs(1),
        "a reader stayed out {left_out:?} after the writer that kept it out was cancelled"
    );
}

/// A writer that gives up while another writer holds leaves the readers
/// behind that holder: they enter when it releases, at once.
#[test]
fn readers_enter_at_once_when_the_last_writer_releases() {
    let server = RedisServer::start();
    let name = "writer-then-readers";
    let holder = client(&server);
    let writer = holder.rwlock(name).unwrap().write().unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let client = client(&server);
            thread::spawn(move || {
                let lock = client.rwlock(name).unwrap();
                lock.read_timeout(Duration::from_secs(20))
                    .map(drop)
                    .map(|()| Instant::now())
            })
        })
        .collect();
    wait_until("the readers wait", Duration::from_secs(10), || {
        numsub(&server, &format!("latchkey:rw:{{{name}}}:ch")) >= 3
    });
    let second = client(&server);
    let giving_up = second.rwlock(name).unwrap();
    assert_eq!(
        giving_up
            .write_timeout(Duration::from_millis(200))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
    let released = Instant::now();
    writer.release().unwrap();
    for reader in readers {
        let entered = reader.join().unwrap().expect("the reader entered");
        assert!(entered.saturating_duration_since(released) < Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------
// Finding 2: an observer whose listener connection dropped slept through
// changes.

/// `observe` subscribed once, before its first look, and kept that watch
/// for good: once the listener connection dropped (a server restart, a
/// failover, a killed connection) it was woken once, looked, and then
/// heard nothing more, so a new leader's announcement reached it only at
/// its next 5 s re-check. Before the fix: "timed out waiting until the
/// observer listens again after its connection dropped".
#[test]
fn an_observer_listens_again_after_its_connection_drops() {
    let server = RedisServer::start();
    let name = "relisten";
    let channel = format!("latchkey:elect:{{{name}}}:ch");
    let (tx, rx) = mpsc::channel();
    let observer = thread::spawn({
        let client = client(&server);
        move || {
            let election = client.election(name).unwrap();
            let seen = election.observe(None, Some(Duration::from_secs(20)), None);
            tx.send(Instant::now()).unwrap();
            seen
        }
    });
    wait_until("the observer listens", Duration::from_secs(10), || {
        numsub(&server, &channel) >= 1
    });
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut server.admin())
        .unwrap();
    wait_until(
        "the observer listens again after its connection dropped",
        Duration::from_secs(3),
        || numsub(&server, &channel) >= 1,
    );
    let candidate = client(&server);
    let leadership = candidate.election(name).unwrap().campaign(b"new").unwrap();
    let elected = Instant::now();
    let seen_at = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let seen = observer.join().unwrap().unwrap().expect("a leader");
    assert_eq!(seen.term, leadership.term());
    assert!(
        seen_at.saturating_duration_since(elected) < Duration::from_secs(1),
        "the observer saw the new leader {:?} late",
        seen_at.saturating_duration_since(elected)
    );
}

// ---------------------------------------------------------------------------
// Finding 3: errors called a read-write lock or an election a "lock".

/// An acquire attempt's error (connection refused, a server error) said
/// "acquiring lock 'x'" for a read-write lock's readers and writer and an
/// election's candidates. Before the fix: "the reader's error names the
/// read-write lock: acquiring lock 'named': ...".
#[test]
fn errors_name_the_read_write_lock_and_the_election() {
    let mut server = RedisServer::start();
    let client = client(&server);
    let rwlock = client.rwlock("named").unwrap();
    let election = client.election("named").unwrap();
    drop(rwlock.try_read().unwrap());
    server.kill();
    let read = rwlock.try_read().unwrap_err().to_string();
    assert!(
        read.contains("read-write lock 'named'"),
        "the reader's error names the read-write lock: {read}"
    );
    let write = rwlock.try_write().unwrap_err().to_string();
    assert!(
        write.contains("read-write lock 'named'"),
        "the writer's error names the read-write lock: {write}"
    );
    let campaign = election
        .campaign_timeout(b"v", Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(
        campaign.contains("election 'named'"),
        "the candidate's error names the election: {campaign}"
    );
}

// ---------------------------------------------------------------------------
// Attacks that held.

/// Late copies of every script call of read-write lock holds (read
/// acquire and release, write acquire and release) delivered again after
/// newer holds: no newer hold is removed or shortened, no writer gets in
/// beside a reader, and the fencing counter does not go down.
#[test]
fn late_copies_of_rwlock_calls_change_nothing_newer() {
    let server = RedisServer::start();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let client = client(&server);
    let name = "late-rw";
    let lock = client.rwlock(name).unwrap();
    lock.read().unwrap().release().unwrap();
    lock.write().unwrap().release().unwrap();
    let old = monitor.script_calls_since(&mut admin);
    assert!(old.len() >= 4, "captured {} calls", old.len());
    let readers_key = format!("latchkey:rwr:{{{name}}}");
    let writer_key = format!("latchkey:rw:{{{name}}}");
    let fence_key = format!("latchkey:rw:{{{name}}}:fence");
    let reader = lock.read().unwrap();
    let score = |admin: &mut redis::Connection| -> Option<f64> {
        redis::cmd("ZSCORE")
            .arg(&readers_key)
            .arg(reader.token())
            .query(admin)
            .unwrap()
    };
    let before = score(&mut admin).unwrap();
    for call in &old {
        deliver(&mut admin, call);
    }
    assert!(
        score(&mut admin).unwrap() >= before,
        "a reader's lease was cut"
    );
    assert!(reader.confirm().unwrap());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&writer_key)
        .query(&mut admin)
        .unwrap();
    assert_eq!(exists, 0, "a late writer acquire got in beside a reader");
    let fence: u64 = redis::cmd("GET").arg(&fence_key).query(&mut admin).unwrap();
    assert!(
        fence >= reader.fencing_token(),
        "the fencing counter went down"
    );
    reader.release().unwrap();
    let writer = lock.try_write().unwrap().expect("no reader left");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&writer_key)
        .query(&mut admin)
        .unwrap();
    for call in &old {
        deliver(&mut admin, call);
    }
    assert!(writer.confirm().unwrap(), "a late copy removed the writer");
    let after: i64 = redis::cmd("PTTL")
        .arg(&writer_key)
        .query(&mut admin)
        .unwrap();
    assert!(after >= pttl - 1000, "a late copy cut the writer's lease");
    assert!(
        lock.try_read().unwrap().is_none(),
        "a late copy let a reader in"
    );
    let token = writer.fencing_token();
    writer.release().unwrap();
    assert!(lock.read().unwrap().fencing_token() > token);
}

/// Late copies of a former leader's calls (acquire, announce, release,
/// resign) delivered while a newer leader leads: its announcement, term
/// and lease stay.
#[test]
fn late_copies_of_election_calls_change_no_newer_leader() {
    let server = RedisServer::start();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let client = client(&server);
    let election = client.election("late-elect").unwrap();
    election.campaign(b"old").unwrap().resign().unwrap();
    let old = monitor.script_calls_since(&mut admin);
    assert!(old.len() >= 3, "captured {} calls", old.len());
    let newer = election.campaign(b"new").unwrap();
    for call in &old {
        deliver(&mut admin, call);
    }
    newer.check().unwrap();
    assert!(newer.guard().confirm().unwrap());
    let leader = election.leader().unwrap().expect("the newer leader");
    assert_eq!(leader.term, newer.term());
    assert_eq!(leader.value, b"new");
    newer.resign().unwrap();
    assert!(election.leader().unwrap().is_none());
}

/// A leader that dies leaves its announcement in Redis, but `leader()`
/// never reports it once its lease is gone, and `observe` sees it go.
#[test]
fn a_dead_leaders_announcement_is_never_reported() {
    let server = RedisServer::start();
    let client = client(&server);
    let mortal = LockOptions::new()
        .ttl(Duration::from_millis(500))
        .auto_renew(false);
    let election = client.election_with("dead-announce", mortal).unwrap();
    let doomed = election.campaign(b"ghost").unwrap();
    let leader = election.leader().unwrap().expect("a leader");
    std::mem::forget(doomed);
    let seen = election
        .observe(Some(&leader), Some(Duration::from_secs(5)), None)
        .unwrap();
    assert_eq!(seen, None);
    assert_eq!(election.leader().unwrap(), None);
}

/// A multi-lock cancelled while it waits for its second lock gives back
/// the first; one whose deadline passes holds nothing either.
#[test]
fn a_multi_lock_that_gives_up_midway_holds_nothing() {
    let server = RedisServer::start();
    let client = client(&server);
    let other = client.lock("mid-b").unwrap().acquire().unwrap();
    let both = client.multi_lock(&["mid-b", "mid-a"]).unwrap();
    let stop = CancelToken::new();
    let waiter = thread::spawn({
        let client = Client::open(&server.url()).unwrap();
        let stop = stop.clone();
        move || {
            let both = client.multi_lock(&["mid-b", "mid-a"]).unwrap();
            both.acquire_with(None, Some(&stop)).map(drop)
        }
    });
    support::wait_for_waiter(&server, "mid-b");
    assert!(
        client.is_locked("mid-a").unwrap(),
        "the first lock is taken"
    );
    stop.cancel();
    assert_eq!(
        waiter.join().unwrap().unwrap_err().kind(),
        ErrorKind::Cancelled
    );
    assert!(
        !client.is_locked("mid-a").unwrap(),
        "the cancel left a lock held"
    );
    let err = both
        .acquire_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        !client.is_locked("mid-a").unwrap(),
        "the timeout left a lock held"
    );
    other.release().unwrap();
    both.acquire().unwrap().release().unwrap();
}

/// A campaign that is cancelled, or ended by a close, said "acquiring
/// lock 'x' was cancelled" (the election's lock did not say what it was).
/// Before the fix: "the cancelled campaign names the election: acquiring
/// lock 'called' was cancelled".
#[test]
fn a_cancelled_or_closed_campaign_names_the_election() {
    let server = RedisServer::start();
    let client = client(&server);
    let election = client.election("called").unwrap();
    let leader = election.campaign(b"first").unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let cancelled = election
        .campaign_with(b"second", None, Some(&cancel))
        .unwrap_err();
    assert_eq!(cancelled.kind(), ErrorKind::Cancelled);
    assert!(
        cancelled.to_string().contains("election 'called'"),
        "the cancelled campaign names the election: {cancelled}"
    );
    let other = Client::open(&server.url()).unwrap();
    let waiting = thread::spawn({
        let other = other.clone();
        move || {
            other
                .election("called")
                .unwrap()
                .campaign(b"third")
                .unwrap_err()
        }
    });
    wait_until("the candidate waits", Duration::from_secs(10), || {
        numsub(&server, "latchkey:elect:{called}:ch") >= 1
    });
    other.close().unwrap();
    let closed = waiting.join().unwrap();
    assert_eq!(closed.kind(), ErrorKind::Closed);
    assert!(
        closed.to_string().contains("election 'called'"),
        "the closed campaign names the election: {closed}"
    );
    leader.resign().unwrap();
}

/// Readers that keep coming, each entering before the last one left (the
/// lock is never free of readers), do not starve a waiting writer: once
/// it waits, no new reader enters, the readers inside finish and it goes.
#[test]
fn a_stream_of_readers_does_not_starve_a_waiting_writer() {
    let server = RedisServer::start();
    let name = "stream";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let client = client(&server);
            let stop = stop.clone();
            thread::spawn(move || {
                let lock = client.rwlock(name).unwrap();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(guard) = lock.read_timeout(Duration::from_millis(200)) {
                        thread::sleep(Duration::from_millis(30));
                        guard.release().unwrap();
                    }
                }
            })
        })
        .collect();
    wait_until("the readers overlap", Duration::from_secs(10), || {
        zcard(&server, &format!("latchkey:rwr:{{{name}}}")) >= 2
    });
    let writer = client(&server);
    let guard = writer
        .rwlock(name)
        .unwrap()
        .write_timeout(Duration::from_secs(3))
        .expect("the writer got in between the readers");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    guard.release().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
}
