//! The acquire loop of one acquisition, in named phases: an attempt; on a
//! Redis failure, the outage policy (ride it out while waiting, or give
//! up); on "held", subscribe to the lock's release channel and try again at
//! once (so a release in between is not missed); then park until a release
//! message, the holder's lease end, the deadline or a cancel, with a little
//! jitter when every waiter noticed a lease end at once.
//!
//! One acquisition is one hold: every attempt uses the same hold token, so
//! an attempt whose reply was lost is recognised by the next one, and an
//! acquisition abandoned with an unknown outcome is given back in the
//! background.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Attempt, Queueing};
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::pubsub::{Watch, FAIR_WAITER_ID_PREFIX, WAITER_ID_PREFIX};
use crate::wait::{jitter, CancelRegistration, CancelToken, Parker, Wakers};

/// What the loop needs from the lock it acquires (the `Lock` implements it;
/// the loop knows nothing else about it, so it depends on no lock module).
pub(crate) trait Target {
    /// What a successful acquisition yields (a `Guard`).
    type Held;

    /// The lock's name, for messages.
    fn name(&self) -> &str;
    /// What it is, for messages: "lock" or "semaphore".
    fn noun(&self) -> &'static str {
        "lock"
    }
    /// One acquire attempt of the hold `hold` (reentrant owner `owner`);
    /// `queue`: how the acquisition's waiter queues (see [`Queueing`]).
    fn attempt(
        &self,
        owner: &str,
        hold: &str,
        waited: bool,
        queue: Queueing<'_>,
    ) -> Result<Attempt>;
    /// Makes the guard of a hold that was just acquired. `unheard_since`:
    /// an earlier attempt of this acquisition, sent then, was never
    /// answered and may still reach Redis (after the hold is released).
    fn held(
        &self,
        hold: String,
        fencing_token: u64,
        sent: Instant,
        unheard_since: Option<Instant>,
    ) -> Self::Held;
    /// Listens for this lock's release messages, waking `parker`; gives up
    /// subscribing when the parker is woken after `seen` (a cancel). An
    /// error ends the acquisition: a server refused to let it listen.
    fn watch_releases(
        &self,
        parker: &Arc<Parker>,
        seen: u64,
        hold: &str,
        waiter: &str,
    ) -> Result<Vec<Watch>>;
    /// Gives back, in the background, a hold whose acquire had an unknown
    /// outcome (first sent at `first_unknown`).
    fn give_back_later(&self, hold: &str, first_unknown: Instant);
    /// Gives back a hold that was acquired after the caller cancelled.
    fn give_back_now(&self, held: Self::Held);
    /// The bound of the random pause after a holder's lease ran out.
    fn retry_jitter(&self) -> Duration;
    /// A new hold token when each attempt needs its own (see
    /// `Backend::undoes_failed_attempts`), else `None`.
    fn hold_for_next_attempt(&self) -> Option<String>;

    /// The client's closing state: a close ends the acquisition.
    fn closing(&self) -> Option<&Closing> {
        None
    }

    /// Whether waiters queue in Redis (a release then wakes only the
    /// waiter it hands the lock to).
    fn queues_waiters(&self) -> bool {
        false
    }

    /// Takes a waiter that gives up out of the queue (best effort).
    fn leave_queue(&self, _waiter: &str) {}

    /// Whether the lock is fair (its waiters keep their place in the
    /// queue when handed the lock).
    fn fair(&self) -> bool {
        false
    }

    /// The parked acquisitions of the same reentrant handle, which wake
    /// when one of them takes the lock (the others may then nest).
    fn handle_waiters(&self) -> Option<&Wakers> {
        None
    }
}

/// The longest a queued waiter parks before it asks again (renewing its
/// entry, well within `backend::QUEUE_ENTRY_LEASE`). It is also the longest a
/// release handed to a waiter that died delays the others: they look at
/// the lock again within this period.
const QUEUED_RECHECK: Duration = Duration::from_secs(5);

/// Longest sleep between attempts when no release message can arrive (the
/// holder's key has no expiry, or the listener is unavailable).
const BLIND_WAIT: Duration = Duration::from_millis(100);

/// The shortest period at which a parked waiter looks at the lock again
/// although no message came (see [`recheck_after`]).
const MIN_RECHECK: Duration = Duration::from_secs(1);

/// How long a waiter sleeps, listening, when the holder's lease has
/// `holder_ttl` left: until the lease ends, but at most a third of it (and
/// at least [`MIN_RECHECK`]). A key can vanish without a release message
/// (a DEL, FLUSHDB, eviction, a holder that crashed after its watchdog
/// found the lease gone); a waiter then finds it within a third of the
/// holder's ttl, which is when a holder renews, without polling faster.
fn recheck_after(holder_ttl: Duration) -> Duration {
    (holder_ttl / 3).max(MIN_RECHECK).min(holder_ttl) + Duration::from_millis(1)
}

/// What an acquire knows about Redis being unreachable while it waits.
#[derive(Default)]
struct Outage {
    answered: bool,
    backoff: Duration,
}

impl Outage {
    fn answered(&mut self) {
        self.answered = true;
        self.backoff = Duration::ZERO;
    }

    /// Records a failed attempt; returns how long to wait before the next.
    fn failed(&mut self) -> Duration {
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        self.backoff
    }
}

/// What to do after an attempt.
enum Next<H> {
    Done(Result<Option<H>>),
    /// Try again now (subscribed meanwhile, or the outage pause is over).
    Retry,
    /// Held by someone else whose lease ends in about this long.
    Wait(Duration),
}

/// One acquisition in progress.
pub(crate) struct Acquisition<'a, T: Target> {
    lock: &'a T,
    deadline: Option<Instant>,
    try_once: bool,
    cancel: Option<&'a CancelToken>,
    owner: String,
    hold: String,
    parker: Arc<Parker>,
    /// Declared before the registrations, so dropped before them: once a
    /// close sees this acquisition unregistered, its UNSUBSCRIBE was sent
    /// (see `Closing::close`).
    watches: Vec<Watch>,
    _registration: Option<CancelRegistration>,
    /// Wakes the parked loop when the client closes.
    _closing_registration: Option<CancelRegistration>,
    /// Wakes the parked loop when its reentrant handle takes the lock.
    _handle_registration: Option<CancelRegistration>,
    /// Whether this acquisition has parked (been a waiter a release could
    /// wake): only then may it take a lock reserved for woken waiters. A
    /// single try never has, and neither has a caller that just subscribed.
    waited: bool,
    outage: Outage,
    /// The acquisition's id in the lock's waiter queue ("" when it does
    /// not queue: a single try, or a deployment without a queue).
    waiter: String,
    /// Whether an attempt may have queued the waiter (it found the lock
    /// held, or its outcome is unknown) and none has taken it out since:
    /// giving up then leaves the queue.
    queued: bool,
    attempts: u32,
    /// When an attempt with the current hold token was first sent whose
    /// outcome is unknown (it may still take the lock for that token).
    hold_unheard_since: Option<Instant>,
}

impl<'a, T: Target> Acquisition<'a, T> {
    pub(crate) fn new(
        lock: &'a T,
        deadline: Option<Instant>,
        try_once: bool,
        cancel: Option<&'a CancelToken>,
        owner: String,
        hold: String,
    ) -> Self {
        let parker = Parker::new();
        let registration = cancel.map(|c| c.register(&parker));
        let closing_registration = lock.closing().map(|c| c.waiters().register(&parker));
        let handle_registration = lock.handle_waiters().map(|w| w.register(&parker));
        let waiter = if !try_once && lock.queues_waiters() {
            let prefix = if lock.fair() {
                FAIR_WAITER_ID_PREFIX
            } else {
                WAITER_ID_PREFIX
            };
            format!("{prefix}{}", uuid::Uuid::new_v4().simple())
        } else {
            String::new()
        };
        Acquisition {
            lock,
            deadline,
            try_once,
            cancel,
            owner,
            hold,
            parker,
            watches: Vec::new(),
            _registration: registration,
            _closing_registration: closing_registration,
            _handle_registration: handle_registration,
            waited: false,
            outage: Outage::default(),
            waiter,
            queued: false,
            attempts: 0,
            hold_unheard_since: None,
        }
    }

    /// Runs the loop: `Ok(None)` when the lock stayed held until the
    /// deadline (or on the single try).
    pub(crate) fn run(mut self) -> Result<Option<T::Held>> {
        loop {
            // Read the wake-up counter before looking at the cancel flag: a
            // cancel after this read bumps the counter, so every park below
            // returns at once; a cancel before it is seen by the check.
            let seen = self.parker.wakeups();
            if self.cancel.is_some_and(CancelToken::is_cancelled) {
                return self.give_up(Err(self.cancelled()));
            }
            if self.lock.closing().is_some_and(Closing::is_closed) {
                return self.give_up(Err(Closing::error_named(
                    self.lock.noun(),
                    self.lock.name(),
                )));
            }
            match self.attempt(seen) {
                Next::Done(outcome) => return self.finish(outcome),
                Next::Retry => continue,
                Next::Wait(holder_ttl) => self.park(seen, holder_ttl),
            }
        }
    }

    /// A cancel that arrived before the call returns wins, whatever the
    /// attempt on the wire meanwhile did: a lock it took is given back.
    fn finish(&mut self, outcome: Result<Option<T::Held>>) -> Result<Option<T::Held>> {
        if !self.cancel.is_some_and(CancelToken::is_cancelled) {
            return outcome;
        }
        if let Ok(Some(held)) = outcome {
            // Stop listening first: the give-back waits for the UNSUBSCRIBE,
            // so it does not count this acquisition as a waiter and reserve
            // the lock for it (a_cancelled_waiter_gives_the_lock_back_free).
            self.watches.clear();
            self.lock.give_back_now(held);
        }
        Err(self.cancelled())
    }

    fn cancelled(&self) -> Error {
        Error::new(
            ErrorKind::Cancelled,
            format!(
                "acquiring {} '{}' was cancelled",
                self.lock.noun(),
                self.lock.name()
            ),
        )
    }

    fn out_of_time(&self, now: Instant) -> bool {
        self.try_once || self.deadline.is_some_and(|d| now >= d)
    }

    /// One attempt and what follows from its outcome.
    fn attempt(&mut self, seen: u64) -> Next<T::Held> {
        if self.attempts > 0 {
            if let Some(fresh) = self.lock.hold_for_next_attempt() {
                // A failed attempt's token may still be given back late, so
                // the next attempt has its own; an earlier token whose
                // attempt was never answered is given back in the background.
                let old = std::mem::replace(&mut self.hold, fresh);
                if let Some(since) = self.hold_unheard_since.take() {
                    self.lock.give_back_later(&old, since);
                }
            }
        }
        self.attempts += 1;
        let sent = Instant::now();
        // Every attempt of a waiting acquisition queues (from the first:
        // a release between it and the subscription then reserves the lock
        // for this waiter, and the attempt right after subscribing takes
        // it; queueing only from the second attempt let a releaser that
        // re-acquires at once win that window, 4 of 12 rounds in
        // chaos_findings on a loaded machine).
        let queue = if self.waiter.is_empty() {
            Queueing::No
        } else if self.out_of_time(sent) {
            Queueing::Leave(&self.waiter)
        } else {
            Queueing::Join(&self.waiter)
        };
        let result = self
            .lock
            .attempt(&self.owner, &self.hold, self.waited, queue);
        let now = Instant::now();
        // An attempt that found the lock held queued the waiter; one whose
        // outcome is unknown may have; one that took the lock, or was the
        // last, left.
        self.queued = matches!(queue, Queueing::Join(_))
            && !matches!(result, Ok(Attempt::Acquired(_)))
            || (matches!(queue, Queueing::Leave(_)) && result.is_err());
        match result {
            Ok(Attempt::Acquired(fencing_token)) => {
                let hold = std::mem::take(&mut self.hold);
                let unheard_since = self.hold_unheard_since;
                Next::Done(Ok(Some(self.lock.held(
                    hold,
                    fencing_token,
                    sent,
                    unheard_since,
                ))))
            }
            Ok(Attempt::Held(holder_ttl)) => {
                self.outage.answered();
                if self.out_of_time(now) {
                    return Next::Done(self.give_up(Ok(None)));
                }
                match self.subscribe(seen) {
                    Ok(true) => Next::Retry,
                    Ok(false) => Next::Wait(holder_ttl),
                    Err(refused) => Next::Done(self.give_up(Err(refused))),
                }
            }
            Ok(Attempt::Withheld(retry_in, why)) => {
                // Answered, but not grantable yet (Redlock: masters younger
                // than the restart delay): ask again in `retry_in`, not
                // sooner (nothing can change before; no release message
                // is awaited), woken early only by cancel or close; a
                // caller that stops waiting is told why, not "held".
                self.outage.answered();
                if self.out_of_time(now) {
                    return Next::Done(self.give_up(Err(why)));
                }
                let until = now + retry_in.max(Duration::from_millis(1));
                self.parker
                    .park(seen, self.deadline.map_or(until, |d| d.min(until)));
                Next::Retry
            }
            Err(e) => self.outage_policy(e, sent, now, seen),
        }
    }

    /// A failed attempt: give up, or (when Redis went away while we were
    /// already waiting) ride the outage out until the deadline, retrying
    /// with the same hold token.
    fn outage_policy(&mut self, e: Error, sent: Instant, now: Instant, seen: u64) -> Next<T::Held> {
        let transient = matches!(
            e.kind(),
            ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::NoQuorum
        );
        if transient {
            self.hold_unheard_since.get_or_insert(sent);
            let pause = self.outage.failed();
            // A server that never answered fails the first attempt at once
            // (a wrong address); one that answered "not now" (a Cluster
            // slot in migration: TRYAGAIN) is waited out like an outage met
            // while waiting.
            if !self.out_of_time(now) && (self.outage.answered || e.is_answered_busy()) {
                let wake_at = self.deadline.map_or(now + pause, |d| d.min(now + pause));
                self.parker.park(seen, wake_at);
                return Next::Retry;
            }
        }
        Next::Done(self.give_up(Err(e)))
    }

    /// Subscribes to the lock's release channel unless already listening;
    /// true when it just subscribed (then try again at once: a release
    /// between the attempt and the subscription is not missed). An error
    /// when a server refused the subscription.
    fn subscribe(&mut self, seen: u64) -> Result<bool> {
        if self.watches.iter().any(Watch::is_live) {
            return Ok(false);
        }
        // One listener per server that publishes releases (Redlock: every
        // master); hearing any one of them is enough.
        self.watches = self
            .lock
            .watch_releases(&self.parker, seen, &self.hold, &self.waiter)?;
        Ok(!self.watches.is_empty())
    }

    /// Sleeps until a release message, the holder's lease end (or the
    /// periodic re-check, see [`recheck_after`]), the deadline or a cancel.
    /// Afterwards the acquisition counts as a woken waiter.
    fn park(&mut self, seen: u64, holder_ttl: Duration) {
        self.waited = true;
        let mut sleep = if self.watches.is_empty() || holder_ttl.is_zero() {
            holder_ttl.clamp(Duration::from_millis(1), BLIND_WAIT)
        } else {
            recheck_after(holder_ttl)
        };
        if self.queued {
            // Asking again renews the queue entry before it runs out.
            sleep = sleep.min(QUEUED_RECHECK);
        }
        let now = Instant::now();
        let mut wake_at = now + sleep;
        if let Some(d) = self.deadline {
            wake_at = wake_at.min(d);
        }
        let woken = self.parker.park(seen, wake_at);
        if !woken && self.deadline.is_none_or(|d| Instant::now() < d) {
            // The holder's lease ran out (or the periodic re-check is due):
            // every waiter noticed at once.
            // (Parked on the same counter: a cancel or release since the
            // last attempt ends the pause.)
            let mut pause = jitter(self.lock.retry_jitter());
            if self.queued {
                // Re-check and pause together stay well within the entry's
                // lease, so a live waiter's entry never runs out.
                pause = pause.min(QUEUED_RECHECK);
            }
            self.parker.park(seen, Instant::now() + pause);
        }
    }

    /// Ends the acquisition with `outcome`. After an attempt whose outcome
    /// is unknown (it timed out or lost its connection, so Redis may yet
    /// run it), the watchdog gives that hold back once Redis answers, so it
    /// cannot sit there for a whole ttl; the hold's token is its own, so
    /// this never touches another hold.
    fn give_up(&self, outcome: Result<Option<T::Held>>) -> Result<Option<T::Held>> {
        if let Some(since) = self.hold_unheard_since {
            self.lock.give_back_later(&self.hold, since);
        }
        if self.queued {
            // Leave the queue, so that no release hands the lock to a
            // waiter that is gone.
            self.lock.leave_queue(&self.waiter);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a scripted lock: no server, tiny holder ttls.
    use super::*;
    use crate::sync::Mutex;
    use std::collections::VecDeque;

    /// A lock whose attempts answer from a script, recording what the loop
    /// asked of it.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<Attempt>>>,
        holds_tried: Mutex<Vec<(String, bool)>>,
        given_back: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<Attempt>>) -> Self {
            Scripted {
                answers: Mutex::new(answers.into()),
                ..Default::default()
            }
        }
    }

    impl Target for Scripted {
        type Held = (String, u64);
        fn name(&self) -> &str {
            "scripted"
        }
        fn attempt(
            &self,
            _owner: &str,
            hold: &str,
            waited: bool,
            _q: Queueing<'_>,
        ) -> Result<Attempt> {
            self.holds_tried.lock().push((hold.to_string(), waited));
            self.answers
                .lock()
                .pop_front()
                .unwrap_or(Ok(Attempt::Held(Duration::from_millis(1))))
        }
        fn held(
            &self,
            hold: String,
            fencing_token: u64,
            _sent: Instant,
            _unheard_since: Option<Instant>,
        ) -> (String, u64) {
            (hold, fencing_token)
        }
        fn watch_releases(
            &self,
            _parker: &Arc<Parker>,
            _seen: u64,
            _hold: &str,
            _waiter: &str,
        ) -> Result<Vec<Watch>> {
            Ok(Vec::new())
        }
        fn give_back_later(&self, hold: &str, _first_unknown: Instant) {
            self.given_back.lock().push(hold.to_string());
        }
        fn give_back_now(&self, held: (String, u64)) {
            self.given_back.lock().push(held.0);
        }
        fn retry_jitter(&self) -> Duration {
            Duration::ZERO
        }
        fn hold_for_next_attempt(&self) -> Option<String> {
            None
        }
    }

    fn held(ms: u64) -> Result<Attempt> {
        Ok(Attempt::Held(Duration::from_millis(ms)))
    }

    fn lost_reply() -> Result<Attempt> {
        Err(Error::new(ErrorKind::Connection, "reply lost"))
    }

    fn run(
        lock: &Scripted,
        deadline: Option<Duration>,
        try_once: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<(String, u64)>> {
        let deadline = deadline.map(|d| Instant::now() + d);
        Acquisition::new(
            lock,
            deadline,
            try_once,
            cancel,
            "owner".into(),
            "hold-1".into(),
        )
        .run()
    }

    #[test]
    fn every_attempt_of_one_acquisition_uses_one_hold_token() {
        let lock = Scripted::new(vec![held(1), held(1), Ok(Attempt::Acquired(7))]);
        let got = run(&lock, None, false, None).unwrap();
        assert_eq!(got, Some(("hold-1".to_string(), 7)));
        let tried = lock.holds_tried.lock();
        assert!(tried.iter().all(|(hold, _)| hold == "hold-1"));
        // Only the first attempt was made without having waited.
        assert!(!tried[0].1 && tried[1..].iter().all(|(_, waited)| *waited));
    }

    // Before: a single try could take the lock reserved for the waiters a
    // release woke (a holder looping release + try_acquire kept a waiter
    // out for 125 cycles).
    #[test]
    fn a_single_try_never_takes_a_handoff() {
        let lock = Scripted::new(vec![held(1000)]);
        assert_eq!(run(&lock, None, true, None).unwrap(), None);
        assert_eq!(
            *lock.holds_tried.lock(),
            vec![("hold-1".to_string(), false)]
        );
    }

    #[test]
    fn a_waiter_looks_again_within_a_third_of_the_holders_lease() {
        let second = Duration::from_secs(1);
        let ms = Duration::from_millis(1);
        assert_eq!(recheck_after(Duration::from_secs(30)), 10 * second + ms);
        assert_eq!(recheck_after(Duration::from_secs(2)), second + ms);
        assert_eq!(recheck_after(Duration::from_millis(300)), 300 * ms + ms);
    }

    // Before: an attempt that succeeded after the cancel returned the lock.
    #[test]
    fn a_cancel_before_the_call_returns_gives_back_what_it_took() {
        struct CancelledMidAttempt {
            inner: Scripted,
            cancel: CancelToken,
        }
        let cancel = CancelToken::new();
        let lock = CancelledMidAttempt {
            inner: Scripted::new(vec![Ok(Attempt::Acquired(5))]),
            cancel: cancel.clone(),
        };
        impl Target for CancelledMidAttempt {
            type Held = (String, u64);
            fn name(&self) -> &str {
                "cancelled"
            }
            fn attempt(
                &self,
                owner: &str,
                hold: &str,
                waited: bool,
                q: Queueing<'_>,
            ) -> Result<Attempt> {
                // The cancel arrives while the attempt is on the wire.
                self.cancel.cancel();
                self.inner.attempt(owner, hold, waited, q)
            }
            fn held(&self, h: String, f: u64, s: Instant, u: Option<Instant>) -> (String, u64) {
                self.inner.held(h, f, s, u)
            }
            fn watch_releases(
                &self,
                p: &Arc<Parker>,
                seen: u64,
                h: &str,
                w: &str,
            ) -> Result<Vec<Watch>> {
                self.inner.watch_releases(p, seen, h, w)
            }
            fn give_back_later(&self, hold: &str, first_unknown: Instant) {
                self.inner.give_back_later(hold, first_unknown)
            }
            fn give_back_now(&self, held: (String, u64)) {
                self.inner.give_back_now(held)
            }
            fn retry_jitter(&self) -> Duration {
                Duration::ZERO
            }
            fn hold_for_next_attempt(&self) -> Option<String> {
                None
            }
        }
        let outcome =
            Acquisition::new(&lock, None, false, Some(&cancel), "o".into(), "h".into()).run();
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Cancelled);
        assert_eq!(*lock.inner.given_back.lock(), vec!["h".to_string()]);
    }

    #[test]
    fn the_deadline_ends_the_wait_without_a_give_back() {
        let lock = Scripted::new(vec![]);
        let outcome = run(&lock, Some(Duration::from_millis(30)), false, None).unwrap();
        assert_eq!(outcome, None);
        assert!(lock.given_back.lock().is_empty(), "every answer was known");
    }

    #[test]
    fn an_outage_while_waiting_is_ridden_out_with_the_same_hold() {
        let lock = Scripted::new(vec![
            held(1),
            lost_reply(),
            lost_reply(),
            Ok(Attempt::Acquired(9)),
        ]);
        let got = run(&lock, Some(Duration::from_secs(10)), false, None).unwrap();
        assert_eq!(got, Some(("hold-1".to_string(), 9)));
        assert!(lock.given_back.lock().is_empty());
    }

    #[test]
    fn a_first_attempt_with_an_unknown_outcome_fails_and_is_given_back() {
        let lock = Scripted::new(vec![lost_reply()]);
        let err = run(&lock, Some(Duration::from_secs(10)), false, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert_eq!(*lock.given_back.lock(), vec!["hold-1".to_string()]);
    }

    #[test]
    fn giving_up_after_an_unknown_outcome_gives_the_hold_back() {
        let lock = Scripted::new(vec![held(1), lost_reply()]);
        let cancel = CancelToken::new();
        let stopper = cancel.clone();
        let waiter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            stopper.cancel();
        });
        let err = run(&lock, None, false, Some(&cancel)).unwrap_err();
        waiter.join().unwrap();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert_eq!(*lock.given_back.lock(), vec!["hold-1".to_string()]);
    }

    #[test]
    fn a_cancel_at_any_moment_ends_the_wait() {
        // The holder's lease is an hour long: only the cancel can end it.
        for delay_us in [0u64, 1, 10, 50, 100, 500, 1000, 5000] {
            let lock = Scripted {
                answers: Mutex::new(
                    std::iter::repeat_with(|| held(3_600_000))
                        .take(100)
                        .collect(),
                ),
                ..Default::default()
            };
            let cancel = CancelToken::new();
            let stopper = cancel.clone();
            let started = Instant::now();
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(delay_us));
                stopper.cancel();
            });
            let err = run(&lock, None, false, Some(&cancel)).unwrap_err();
            canceller.join().unwrap();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cancel after {delay_us} us was missed"
            );
        }
    }
}
