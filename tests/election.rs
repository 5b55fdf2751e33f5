//! Leader election against a real redis-server: one leader at a time with
//! increasing terms, a dead leader replaced once its lease ends, observers
//! woken by every change (announcement, resignation, a leader's death), a
//! lost leadership reported, and what is refused.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::RedisServer;

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).unwrap()
}

/// Four candidates with their own clients campaign, lead briefly (checking
/// before and after their work) and resign, over and over: never two
/// leaders at once by their own count, and every term is higher than the
/// one before it.
#[test]
fn one_leader_at_a_time_with_increasing_terms() {
    let server = RedisServer::start();
    let leading = Arc::new(AtomicU32::new(0));
    let (terms_tx, terms_rx) = mpsc::channel();
    let candidates: Vec<_> = (0..4)
        .map(|i| {
            let url = server.url();
            let leading = leading.clone();
            let terms = terms_tx.clone();
            thread::spawn(move || {
                let client = Client::open(&url).unwrap();
                let election = client.election("one-at-a-time").unwrap();
                for _ in 0..15 {
                    let leadership = election.campaign(format!("node-{i}").as_bytes()).unwrap();
                    leadership.check().unwrap();
                    assert_eq!(leading.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
                    terms.send(leadership.term()).unwrap();
                    thread::yield_now();
                    leading.fetch_sub(1, Ordering::SeqCst);
                    leadership.check().unwrap();
                    leadership.resign().unwrap();
                }
            })
        })
        .collect();
    drop(terms_tx);
    for candidate in candidates {
        candidate.join().unwrap();
    }
    let terms: Vec<u64> = terms_rx.iter().collect();
    assert_eq!(terms.len(), 60);
    assert!(
        terms.windows(2).all(|pair| pair[0] < pair[1]),
        "terms did not increase in the order leaders were elected"
    );
}

#[test]
fn the_leader_and_its_value_are_seen_and_a_resignation_clears_them() {
    let server = RedisServer::start();
    let client = client(&server);
    let election = client.election("seen").unwrap();
    assert!(election.leader().unwrap().is_none());
    let leadership = election.campaign(b"10.0.0.1:80").unwrap();
    let leader = election.leader().unwrap().expect("a leader");
    assert_eq!(leader.value, b"10.0.0.1:80");
    assert_eq!(leader.term, leadership.term());
    assert_eq!(leader.token, leadership.token());
    let other = client.election("seen").unwrap();
    assert_eq!(
        other
            .campaign_timeout(b"x", Duration::ZERO)
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout
    );
    leadership.resign().unwrap();
    assert!(election.leader().unwrap().is_none());
    let next = other.campaign_timeout(b"x", Duration::ZERO).unwrap();
    assert!(next.term() > leader.term);
}

/// An observer is woken by an announcement, by a resignation, and by a
/// leader's death (its lease ends; nothing is sent then).
#[test]
fn observers_see_every_change() {
    let server = RedisServer::start();
    let client = client(&server);
    let election = client.election("watched").unwrap();
    let (seen_tx, seen_rx) = mpsc::channel();
    let observer = thread::spawn({
        let client = Client::open(&server.url()).unwrap();
        move || {
            let election = client.election("watched").unwrap();
            let mut known = None;
            for _ in 0..4 {
                let now = election
                    .observe(known.as_ref(), Some(Duration::from_secs(30)), None)
                    .unwrap();
                seen_tx.send(now.clone()).unwrap();
                known = now;
            }
        }
    });
    let recv = || seen_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let first = election.campaign(b"a").unwrap();
    assert_eq!(recv().expect("elected").term, first.term());
    first.resign().unwrap();
    assert_eq!(recv(), None, "the resignation was seen");
    // A leader that dies: its lease is neither renewed nor released.
    let mortal = LockOptions::new()
        .ttl(Duration::from_millis(700))
        .auto_renew(false);
    let doomed = client
        .election_with("watched", mortal)
        .unwrap()
        .campaign(b"b")
        .unwrap();
    assert_eq!(recv().expect("elected").term, doomed.term());
    std::mem::forget(doomed);
    assert_eq!(recv(), None, "the dead leader's end was seen");
    observer.join().unwrap();
}

/// A candidate waiting for a leader that dies is elected once the dead
/// leader's lease ends.
#[test]
fn a_dead_leader_is_replaced_after_its_lease() {
    let server = RedisServer::start();
    let client = client(&server);
    let mortal = LockOptions::new()
        .ttl(Duration::from_millis(800))
        .auto_renew(false);
    let dead = client
        .election_with("succession", mortal)
        .unwrap()
        .campaign(b"old")
        .unwrap();
    let dead_term = dead.term();
    std::mem::forget(dead);
    let heir = client
        .election("succession")
        .unwrap()
        .campaign_timeout(b"new", Duration::from_secs(20))
        .expect("elected after the dead leader's lease");
    assert!(heir.term() > dead_term);
    assert_eq!(
        client
            .election("succession")
            .unwrap()
            .leader()
            .unwrap()
            .unwrap()
            .value,
        b"new"
    );
}

/// A leadership whose key is deleted behind its back is reported lost, and
/// observers see nobody lead.
#[test]
fn a_lost_leadership_is_reported() {
    let server = RedisServer::start();
    let client = client(&server);
    let (lost_tx, lost_rx) = mpsc::channel();
    let options = LockOptions::new().ttl(Duration::from_millis(900)).on_lost(
        move |lost: &latchkey::LostLease| {
            let _ = lost_tx.send(lost.name.clone());
        },
    );
    let election = client.election_with("fragile", options).unwrap();
    let leadership = election.campaign(b"v").unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg("latchkey:elect:{fragile}")
        .query(&mut server.admin())
        .unwrap();
    assert_eq!(
        lost_rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        "fragile"
    );
    assert_eq!(leadership.check().unwrap_err().kind(), ErrorKind::Lost);
    assert!(leadership.lost());
    assert!(election.leader().unwrap().is_none());
    assert_eq!(leadership.resign().unwrap_err().kind(), ErrorKind::NotHeld);
}

#[test]
fn bad_values_and_options_are_refused() {
    let server = RedisServer::start();
    let client = client(&server);
    let election = client.election("refusals").unwrap();
    let huge = vec![b'x'; latchkey::MAX_LEADER_VALUE + 1];
    assert_eq!(
        election.campaign(&huge).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(election.leader().unwrap().is_none(), "nothing was taken");
    let reentrant = LockOptions::new().reentrant(true);
    assert_eq!(
        client.election_with("r", reentrant).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        client.election("").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

/// Over Redlock an election is refused when it is made.
#[test]
fn redlock_refuses_elections() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls).build().unwrap();
    let err = client.election("e").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("one master"), "{err}");
}
