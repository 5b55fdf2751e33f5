//! Redlock against in-memory masters and a clock moved by hand: quorum,
//! give-backs, validity to the microsecond, the cost of a dead master and
//! the fencing token, with no server and no waiting (except for the
//! recovery thread, which runs in real time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{Clock, ManualClock};
use super::memory::{connect_together, Behaviour, MemoryNode};
use super::{validity_left, Redlock};
use crate::backend::{AcquireArgs, Attempt, Backend};
use crate::error::{ErrorKind, Result};
use crate::keys::LockKeys;
use crate::validity::drift;
use crate::{Client, DEFAULT_FENCE_RETENTION};

/// The masters' command timeout.
const TIMEOUT: Duration = Duration::from_millis(500);
const TTL: Duration = Duration::from_secs(10);
const HOLD: &str = "hold-1";

struct Masters {
    clock: ManualClock,
    nodes: Vec<MemoryNode>,
    redlock: Redlock<MemoryNode, ManualClock>,
}

fn masters(n: usize) -> Masters {
    let clock = ManualClock::new();
    let nodes: Vec<MemoryNode> = (0..n)
        .map(|id| MemoryNode::new(id, &clock, TIMEOUT))
        .collect();
    let redlock = Redlock::with_clock(nodes.clone(), TIMEOUT, clock.clone())
        .expect("distinct memory masters make a valid Redlock");
    Masters {
        clock,
        nodes,
        redlock,
    }
}

fn keys(name: &str) -> LockKeys {
    LockKeys::new("test", name).expect("a valid lock name")
}

impl Masters {
    /// One acquire attempt of hold [`HOLD`], and how long it took.
    fn attempt(&self, keys: &LockKeys, ttl: Duration) -> (Result<Attempt>, Duration) {
        let started = self.clock.now();
        let outcome = self.redlock.acquire(&AcquireArgs {
            keys,
            owner: "owner",
            hold: HOLD,
            ttl,
            reentrant: false,
            waited: false,
            nest: false,
            known_token: 0,
            live_holds: &[],
            fair: false,
            readers: None,
            queue: crate::backend::Queueing::No,
        });
        (outcome, self.clock.now() - started)
    }

    /// Which masters the hold holds the lock on.
    fn held_on(&self, keys: &LockKeys) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].holder(keys.lock()).as_deref() == Some(HOLD))
            .collect()
    }

    fn behave(&self, which: &[usize], behaviour: Behaviour) {
        for &i in which {
            self.nodes[i].behave(behaviour);
        }
    }
}

/// Waits (in real time) for the recovery thread's work to show.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn three_of_five_masters_granting_is_a_quorum() {
    let m = masters(5);
    m.behave(&[3, 4], Behaviour::Refuse);
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    assert_eq!(outcome.expect("a quorum answered"), Attempt::Acquired(1));
    assert_eq!(m.held_on(&lock), vec![0, 1, 2]);
}

#[test]
fn two_of_five_masters_granting_is_held_elsewhere_and_both_are_given_back() {
    let m = masters(5);
    let lock = keys("a");
    for node in &m.nodes[2..] {
        node.hold(lock.lock(), "other", TTL);
    }
    let (outcome, _) = m.attempt(&lock, TTL);
    // Another hold has a quorum: wait for its lease (10 s left) to end.
    assert_eq!(outcome.expect("every master answered"), Attempt::Held(TTL));
    assert_eq!(m.held_on(&lock), Vec::<usize>::new());
    for node in &m.nodes[2..] {
        assert_eq!(node.holder(lock.lock()).as_deref(), Some("other"));
    }
}

#[test]
fn only_two_of_five_masters_answering_is_no_quorum_and_both_are_given_back() {
    let m = masters(5);
    m.behave(&[2, 3, 4], Behaviour::Refuse);
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    let err = outcome.expect_err("2 of 5 is no quorum");
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert_eq!(m.held_on(&lock), Vec::<usize>::new());
}

#[test]
fn a_failed_attempt_gives_back_on_every_master_it_touched_even_those_that_answered_late() {
    let m = masters(5);
    m.behave(&[2], Behaviour::Late);
    m.behave(&[3, 4], Behaviour::Hang);
    let lock = keys("a");
    let (outcome, took) = m.attempt(&lock, TTL);
    let err = outcome.expect_err("2 of 5 answered");
    assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
    assert_eq!(
        took, TIMEOUT,
        "the silent masters cost one timeout, together"
    );
    // Given back at once where it was granted; master 2 ran the acquire
    // but its answer came too late to count.
    assert_eq!(m.held_on(&lock), vec![2]);
    // Master 2 catches up: the recovery thread takes the acquire back.
    m.nodes[2].behave(Behaviour::Answer);
    eventually("the late master gives the hold back", || {
        m.held_on(&lock).is_empty()
    });
    // The masters that never answered never ran it.
    for node in &m.nodes[3..] {
        assert_eq!(node.holder(lock.lock()), None);
    }
}

#[test]
fn validity_is_ttl_minus_elapsed_minus_drift_to_the_microsecond() {
    let sent = Instant::now();
    // 10 s - 1.234567 s - (1 % of 10 s + 2 ms) = 8.663433 s.
    assert_eq!(drift(TTL), Duration::from_millis(102));
    let at = |elapsed_us: u64| validity_left(TTL, sent, sent + Duration::from_micros(elapsed_us));
    assert_eq!(at(1_234_567), Some(Duration::from_micros(8_663_433)));
    assert_eq!(at(9_897_999), Some(Duration::from_micros(1)));
    assert_eq!(at(9_898_000), None);
    assert_eq!(at(20_000_000), None);

    // The same through an acquire: answers that take all but 1 us of it.
    let m = masters(5);
    let ttl = Duration::from_millis(400); // drift: 4 ms + 2 ms
    let lock = keys("a");
    for node in &m.nodes {
        node.set_latency(ttl - drift(ttl) - Duration::from_micros(1));
    }
    let (outcome, took) = m.attempt(&lock, ttl);
    assert_eq!(took, Duration::from_micros(393_999));
    assert_eq!(outcome.expect("answers in time"), Attempt::Acquired(1));
}

#[test]
fn an_attempt_whose_elapsed_time_eats_the_whole_validity_fails_and_gives_back() {
    let m = masters(5);
    let ttl = Duration::from_millis(400);
    let lock = keys("a");
    for node in &m.nodes {
        node.set_latency(ttl - drift(ttl));
    }
    let (outcome, took) = m.attempt(&lock, ttl);
    // The attempt, then the give-back.
    assert_eq!(took, Duration::from_millis(2 * 394));
    let outcome = outcome.expect("every master answered");
    assert!(
        matches!(outcome, Attempt::Held(_)),
        "a lock with no validity left was handed out: {outcome:?}"
    );
    assert_eq!(m.held_on(&lock), Vec::<usize>::new(), "not given back");
}

#[test]
fn a_dead_master_costs_one_timeout_and_is_then_skipped_while_a_quorum_answers() {
    let m = masters(5);
    for node in &m.nodes {
        node.set_latency(Duration::from_millis(1));
    }
    m.behave(&[4], Behaviour::Hang);
    let (first, took) = m.attempt(&keys("a"), TTL);
    assert_eq!(first.expect("4 of 5 answered"), Attempt::Acquired(1));
    assert_eq!(took, TIMEOUT);
    assert_eq!(m.nodes[4].requests(), 1);
    // Remembered down: the next attempts do not wait for it.
    for name in ["b", "c"] {
        let (next, took) = m.attempt(&keys(name), TTL);
        assert_eq!(next.expect("4 of 5 answered"), Attempt::Acquired(1));
        assert_eq!(took, Duration::from_millis(1));
    }
    assert_eq!(
        m.nodes[4].requests(),
        1,
        "a master remembered down was asked"
    );
}

#[test]
fn dead_masters_are_asked_again_when_skipping_them_would_leave_no_quorum() {
    let m = masters(5);
    m.behave(&[2, 3, 4], Behaviour::Hang);
    for round in 1..=2 {
        let (outcome, took) = m.attempt(&keys("a"), TTL);
        let err = outcome.expect_err("2 of 5 answered");
        assert_eq!(err.kind(), ErrorKind::NoQuorum, "{err}");
        assert_eq!(took, TIMEOUT, "round {round}: one timeout");
        for node in &m.nodes[2..] {
            assert_eq!(node.requests(), round, "round {round}: not asked");
        }
    }
}

#[test]
fn masters_without_a_connection_are_connected_at_once_for_one_timeout() {
    let m = masters(5);
    connect_together(&m.nodes);
    m.behave(&[3, 4], Behaviour::Hang);
    let lock = keys("a");
    let (outcome, took) = m.attempt(&lock, TTL);
    assert_eq!(outcome.expect("3 of 5 answered"), Attempt::Acquired(1));
    assert_eq!(took, TIMEOUT, "the silent masters were waited for in turn");
    assert_eq!(m.held_on(&lock), vec![0, 1, 2]);
}

#[test]
fn the_highest_fencing_token_is_issued_and_written_back_to_the_masters_behind() {
    let m = masters(5);
    let lock = keys("a");
    for (node, counter) in m.nodes.iter().zip([10, 50, 30, 20, 40]) {
        node.set_counter(lock.fence(), counter);
    }
    let (outcome, _) = m.attempt(&lock, TTL);
    assert_eq!(
        outcome.expect("every master answered"),
        Attempt::Acquired(51)
    );
    for (i, node) in m.nodes.iter().enumerate() {
        assert_eq!(node.counter(lock.fence()), Some(51), "master {i}");
    }
}

#[test]
fn a_guard_reports_the_highest_fencing_token_of_the_quorum() {
    let m = masters(5);
    let lock_keys = keys("job");
    for (node, counter) in m.nodes.iter().zip([7, 3, 90, 12, 5]) {
        node.set_counter(lock_keys.fence(), counter);
    }
    m.behave(&[0], Behaviour::Refuse);
    let client = Client::with_backend(Arc::new(m.redlock), "test".into(), DEFAULT_FENCE_RETENTION);
    let lock = client.lock("job").expect("a valid name");
    let guard = lock
        .try_acquire()
        .expect("4 of 5 answered")
        .expect("the lock was free");
    assert_eq!(guard.fencing_token(), 91);
    for (i, node) in m.nodes.iter().enumerate().skip(1) {
        assert_eq!(node.counter(lock_keys.fence()), Some(91), "master {i}");
    }
    guard.release().expect("released on a quorum");
    for node in &m.nodes {
        assert_eq!(node.holder(lock_keys.lock()), None);
    }
}

#[test]
fn two_masters_that_are_one_server_are_refused() {
    let clock = ManualClock::new();
    let nodes = vec![
        MemoryNode::new(1, &clock, TIMEOUT),
        MemoryNode::new(2, &clock, TIMEOUT),
        MemoryNode::new(1, &clock, TIMEOUT),
    ];
    let err = Redlock::with_clock(nodes, TIMEOUT, clock)
        .err()
        .expect("one server would vote twice");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// One acquire attempt of hold `hold` through `redlock`.
fn attempt_as(
    redlock: &Redlock<MemoryNode, ManualClock>,
    lock: &LockKeys,
    hold: &str,
) -> Result<Attempt> {
    redlock.acquire(&AcquireArgs {
        keys: lock,
        owner: "owner",
        hold,
        ttl: TTL,
        reentrant: false,
        waited: false,
        nest: false,
        known_token: 0,
        live_holds: &[],
        queue: crate::backend::Queueing::No,
        fair: false,
        readers: None,
    })
}

/// Another client of the same masters, which has never talked to them.
fn fresh_client(m: &Masters) -> Redlock<MemoryNode, ManualClock> {
    Redlock::with_clock(m.nodes.clone(), TIMEOUT, m.clock.clone())
        .expect("distinct memory masters make a valid Redlock")
}

/// The Redlock paper's delayed restart, done by the client: two masters of
/// three restart empty, one after the other, while a hold has the lock.
/// Their grants to another hold would make a second quorum (before this
/// rule, the second client got the lock: two holders); a master younger
/// than the ttl counts again once the ttl has passed since its restart.
#[test]
fn masters_restarted_within_the_ttl_do_not_make_a_second_quorum() {
    let m = masters(3);
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))));
    m.nodes[0].restart();
    m.clock.advance_to(m.clock.now() + Duration::from_secs(1));
    m.nodes[1].restart();
    // The client that saw the old runs, and one that never saw them.
    let other = fresh_client(&m);
    for (who, redlock) in [("the same client", &m.redlock), ("a new client", &other)] {
        // Held (by a lock the restarted masters may have lost) until the
        // first of them counts again, a ttl after its restart.
        let outcome = attempt_as(redlock, &lock, "hold-2");
        assert_eq!(
            outcome.expect(who),
            Attempt::Held(TTL - Duration::from_secs(1)),
            "{who}"
        );
        // What the attempt took on the restarted masters was given back.
        for node in &m.nodes[..2] {
            assert_eq!(node.holder(lock.lock()), None, "{who}");
        }
    }
    // A ttl after the second restart, every lock granted before it has
    // expired: the restarted masters count again.
    m.clock.advance_to(m.clock.now() + TTL);
    let outcome = attempt_as(&other, &lock, "hold-2");
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))), "{outcome:?}");
}

/// A run id that changed bounds the uptime by the time since the old run
/// last answered, whatever the new run says (another server behind the
/// same address, up for a day but without our keys).
#[test]
fn a_new_run_id_is_younger_than_the_old_run_seen_last_whatever_its_uptime() {
    let m = masters(3);
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))));
    for node in &m.nodes[..2] {
        node.restart();
        node.set_uptime(Duration::from_secs(24 * 3600));
    }
    let outcome = attempt_as(&m.redlock, &lock, "hold-2").expect("every master answered");
    assert!(matches!(outcome, Attempt::Held(_)), "{outcome:?}");
}

/// Masters that all started within one ttl (a deployment just started,
/// or one restarted whole, every lock lost): the client cannot tell the
/// two apart, so none counts until a ttl has passed since its start; then
/// the lock is granted. With a zero restart delay (masters that keep their
/// keys) every master counts at once.
#[test]
fn masters_that_all_started_within_one_ttl_grant_nothing_for_a_ttl() {
    let m = masters(3);
    for (node, up) in m.nodes.iter().zip([1, 5, 9]) {
        node.set_uptime(Duration::from_secs(up));
    }
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    // Withheld, saying why; look again when the oldest master has run a ttl.
    assert_withheld(outcome, TTL - Duration::from_secs(9));
    assert_eq!(m.held_on(&lock), Vec::<usize>::new(), "given back");
    m.clock
        .advance_to(m.clock.now() + TTL - Duration::from_secs(5));
    let (outcome, _) = m.attempt(&lock, TTL);
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))), "{outcome:?}");

    let trusting = fresh_client(&m).restart_delay(Some(Duration::ZERO));
    for node in &m.nodes {
        node.restart();
    }
    let outcome = attempt_as(&trusting, &keys("b"), "hold-2");
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))), "{outcome:?}");
}

/// One master of three restarted: the other two still make a quorum, and
/// the restarted one is asked (and given the hold) like the others.
#[test]
fn one_restarted_master_of_three_leaves_a_quorum() {
    let m = masters(3);
    m.nodes[2].restart();
    let lock = keys("a");
    let (outcome, _) = m.attempt(&lock, TTL);
    assert!(matches!(outcome, Ok(Attempt::Acquired(_))), "{outcome:?}");
    assert_eq!(m.held_on(&lock), vec![0, 1, 2]);
}

/// A restart is held against a master whatever the other masters say: the
/// master that kept the lock may be the one that does not answer, and the
/// two restarted ones would grant it again. No quorum counts, and the
/// attempt says held until they do (an explicit delay overrides the ttl).
#[test]
fn restarted_masters_do_not_count_even_when_no_master_says_held() {
    let m = masters(3);
    m.nodes[0].restart();
    m.nodes[1].restart();
    let lock = keys("free");
    let (outcome, _) = m.attempt(&lock, TTL);
    assert_withheld(outcome, TTL);
    assert_eq!(m.held_on(&lock), Vec::<usize>::new());
    let patient = fresh_client(&m).restart_delay(Some(TTL * 2));
    m.clock.advance_to(m.clock.now() + TTL);
    let outcome = attempt_as(&patient, &lock, "hold-2");
    assert_withheld(outcome, TTL);
}

/// An attempt withheld because too few masters count yet: no master says
/// the lock is held, so the caller is told why rather than "held".
fn assert_withheld(outcome: Result<Attempt>, retry_in: Duration) {
    match outcome.expect("every master answered") {
        Attempt::Withheld(left, why) => {
            assert_eq!(left, retry_in);
            assert_eq!(why.kind(), ErrorKind::NoQuorum);
            let message = why.to_string();
            for expected in [
                "no master says the lock is held",
                "restart delay",
                "(re)started",
            ] {
                assert!(
                    message.contains(expected),
                    "{expected:?} not in {message:?}"
                );
            }
        }
        other => panic!("{other:?}: want withheld"),
    }
}
