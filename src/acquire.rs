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

use crate::backend::Attempt;
use crate::error::{Error, ErrorKind, Result};
use crate::pubsub::Watch;
use crate::wait::{jitter, CancelRegistration, CancelToken, Parker};

/// What the loop needs from the lock it acquires (the `Lock` implements it;
/// the loop knows nothing else about it, so it depends on no lock module).
pub(crate) trait Target {
    /// What a successful acquisition yields (a `Guard`).
    type Held;

    /// The lock's name, for messages.
    fn name(&self) -> &str;
    /// One acquire attempt of the hold `hold` (reentrant owner `owner`).
    fn attempt(&self, owner: &str, hold: &str, waited: bool) -> Result<Attempt>;
    /// Makes the guard of a hold that was just acquired.
    fn held(&self, hold: String, fencing_token: u64, sent: Instant) -> Self::Held;
    /// Listens for this lock's release messages, waking `parker`.
    fn watch_releases(&self, parker: &Arc<Parker>, hold: &str) -> Vec<Watch>;
    /// Gives back, in the background, a hold whose acquire had an unknown
    /// outcome (first sent at `first_unknown`).
    fn give_back_later(&self, hold: &str, first_unknown: Instant);
    /// The bound of the random pause after a holder's lease ran out.
    fn retry_jitter(&self) -> Duration;
}

/// Longest sleep between attempts when no release message can arrive (the
/// holder's key has no expiry, or the listener is unavailable).
const BLIND_WAIT: Duration = Duration::from_millis(100);

/// What an acquire knows about Redis being unreachable while it waits.
#[derive(Default)]
struct Outage {
    answered: bool,
    /// When the first attempt with an unknown outcome was sent.
    first_unknown: Option<Instant>,
    backoff: Duration,
}

impl Outage {
    fn answered(&mut self) {
        self.answered = true;
        self.backoff = Duration::ZERO;
    }

    /// Records a failed attempt; returns how long to wait before the next.
    fn failed(&mut self, sent: Instant) -> Duration {
        self.first_unknown.get_or_insert(sent);
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
    _registration: Option<CancelRegistration>,
    watches: Vec<Watch>,
    /// A single try may take the lock even while a handoff to woken waiters
    /// is pending; so may anyone who has already waited.
    waited: bool,
    outage: Outage,
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
        Acquisition {
            lock,
            deadline,
            try_once,
            cancel,
            owner,
            hold,
            parker,
            _registration: registration,
            watches: Vec::new(),
            waited: try_once,
            outage: Outage::default(),
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
                return self.give_up(Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("acquiring lock '{}' was cancelled", self.lock.name()),
                )));
            }
            match self.attempt(seen) {
                Next::Done(outcome) => return outcome,
                Next::Retry => continue,
                Next::Wait(holder_ttl) => self.park(seen, holder_ttl),
            }
        }
    }

    fn out_of_time(&self, now: Instant) -> bool {
        self.try_once || self.deadline.is_some_and(|d| now >= d)
    }

    /// One attempt and what follows from its outcome.
    fn attempt(&mut self, seen: u64) -> Next<T::Held> {
        let sent = Instant::now();
        let result = self.lock.attempt(&self.owner, &self.hold, self.waited);
        let now = Instant::now();
        match result {
            Ok(Attempt::Acquired(fencing_token)) => {
                let hold = std::mem::take(&mut self.hold);
                Next::Done(Ok(Some(self.lock.held(hold, fencing_token, sent))))
            }
            Ok(Attempt::Held(holder_ttl)) => {
                self.outage.answered();
                if self.out_of_time(now) {
                    return Next::Done(self.give_up(Ok(None)));
                }
                if self.subscribe() {
                    return Next::Retry;
                }
                self.waited = true;
                Next::Wait(holder_ttl)
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
            let pause = self.outage.failed(sent);
            if !self.out_of_time(now) && self.outage.answered {
                let wake_at = self.deadline.map_or(now + pause, |d| d.min(now + pause));
                self.parker.park(seen, wake_at);
                return Next::Retry;
            }
        }
        Next::Done(self.give_up(Err(e)))
    }

    /// Subscribes to the lock's release channel unless already listening;
    /// true when it just subscribed (then try again at once: a release
    /// between the attempt and the subscription is not missed).
    fn subscribe(&mut self) -> bool {
        if self.watches.iter().any(Watch::is_live) {
            return false;
        }
        // One listener per server that publishes releases (Redlock: every
        // master); hearing any one of them is enough.
        self.watches = self.lock.watch_releases(&self.parker, &self.hold);
        if self.watches.is_empty() {
            return false;
        }
        self.waited = true;
        true
    }

    /// Sleeps until a release message, the holder's lease end, the deadline
    /// or a cancel.
    fn park(&self, seen: u64, holder_ttl: Duration) {
        let sleep = if self.watches.is_empty() || holder_ttl.is_zero() {
            holder_ttl.clamp(Duration::from_millis(1), BLIND_WAIT)
        } else {
            holder_ttl + Duration::from_millis(1)
        };
        let now = Instant::now();
        let mut wake_at = now + sleep;
        if let Some(d) = self.deadline {
            wake_at = wake_at.min(d);
        }
        let woken = self.parker.park(seen, wake_at);
        if !woken && self.deadline.is_none_or(|d| Instant::now() < d) {
            // The holder's lease ran out: every waiter noticed at once.
            // (Parked on the same counter: a cancel or release since the
            // last attempt ends the pause.)
            let pause = jitter(self.lock.retry_jitter());
            self.parker.park(seen, Instant::now() + pause);
        }
    }

    /// Ends the acquisition with `outcome`. After an attempt whose outcome
    /// is unknown (it timed out or lost its connection, so Redis may yet
    /// run it), the watchdog gives that hold back once Redis answers, so it
    /// cannot sit there for a whole ttl; the hold's token is its own, so
    /// this never touches another hold.
    fn give_up(&self, outcome: Result<Option<T::Held>>) -> Result<Option<T::Held>> {
        if let Some(first_unknown) = self.outage.first_unknown {
            self.lock.give_back_later(&self.hold, first_unknown);
        }
        outcome
    }
}
