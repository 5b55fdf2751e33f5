//! A held lease: what the Guard and the watchdog share about one
//! acquisition. Validity is kept on the local monotonic clock, counted from
//! the moment the acquire (or the last renewal) was sent, minus a drift
//! allowance, so a lease never claims more time than Redis gives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use crate::keys::LockKeys;
use crate::validity::drift;

/// What a lost-lease callback is told.
///
/// ```
/// let options = latchkey::LockOptions::new().on_lost(|lost: &latchkey::LostLease| {
///     eprintln!("lost {} (fencing token {}): {}", lost.name, lost.fencing_token, lost.reason);
/// });
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct LostLease {
    /// The lock's name.
    pub name: String,
    /// The owner token of the lost lease.
    pub token: String,
    /// The fencing token the lease was issued.
    pub fencing_token: u64,
    /// Why the lease is considered lost.
    pub reason: String,
}

/// A user callback run on the watchdog thread when a lease is lost.
pub type LostCallback = Arc<dyn Fn(&LostLease) + Send + Sync>;

struct LeaseState {
    ttl: Duration,
    valid_until: Instant,
    lost: Option<String>,
    released: bool,
    /// Released by closing its client (an ending, never a loss).
    closed: bool,
    /// The watchdog's schedule entry, so a release can remove it at once.
    scheduled: Option<(Instant, u64)>,
}

pub(crate) struct Lease {
    /// The fork generation that took the hold: in a forked child the hold
    /// is its parent's, and every operation through it is inert.
    generation: u64,
    keys: LockKeys,
    token: String,
    fencing_token: u64,
    reentrant: bool,
    renew_every: Option<Duration>,
    on_lost: Option<LostCallback>,
    state: Mutex<LeaseState>,
}

/// What a confirmed renewal means for a lease.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Released meanwhile: the release settles the hold in Redis.
    Released,
    /// Valid for longer; renew it next at `next`.
    Renewed { next: Instant },
    /// Confirmed only after the validity ran out (or the lease was lost
    /// meanwhile): it stays lost.
    TooLate,
}

pub(crate) struct NewLease {
    pub(crate) keys: LockKeys,
    pub(crate) token: String,
    pub(crate) fencing_token: u64,
    pub(crate) reentrant: bool,
    pub(crate) ttl: Duration,
    pub(crate) sent: Instant,
    pub(crate) renew_every: Option<Duration>,
    pub(crate) on_lost: Option<LostCallback>,
}

impl Lease {
    pub(crate) fn new(new: NewLease) -> Arc<Self> {
        Arc::new(Lease {
            generation: crate::fork::generation(),
            keys: new.keys,
            token: new.token,
            fencing_token: new.fencing_token,
            reentrant: new.reentrant,
            renew_every: new.renew_every,
            on_lost: new.on_lost,
            state: Mutex::new(LeaseState {
                ttl: new.ttl,
                valid_until: new.sent + new.ttl.saturating_sub(drift(new.ttl)),
                lost: None,
                released: false,
                closed: false,
                scheduled: None,
            }),
        })
    }

    pub(crate) fn name(&self) -> &str {
        self.keys.name()
    }
    pub(crate) fn keys(&self) -> &LockKeys {
        &self.keys
    }
    pub(crate) fn token(&self) -> &str {
        &self.token
    }
    pub(crate) fn fencing_token(&self) -> u64 {
        self.fencing_token
    }
    pub(crate) fn reentrant(&self) -> bool {
        self.reentrant
    }
    pub(crate) fn ttl(&self) -> Duration {
        self.state.lock().ttl
    }
    pub(crate) fn valid_until(&self) -> Instant {
        self.state.lock().valid_until
    }

    /// Whether this process inherited the hold across `fork()` (it is the
    /// parent's: never released, renewed or vouched for here). Checked
    /// before any mutex is touched: a lock held by another thread at the
    /// fork stays locked for ever in the child.
    pub(crate) fn inherited(&self) -> bool {
        crate::fork::generation() != self.generation
    }

    /// Neither released nor lost nor inherited: the watchdog should keep
    /// renewing it.
    pub(crate) fn is_active(&self) -> bool {
        if self.inherited() {
            return false;
        }
        let state = self.state.lock();
        !state.released && state.lost.is_none()
    }

    /// When the watchdog should renew next: a third of the ttl (or the
    /// configured period) after the last confirmation, but never later than
    /// a third of the ttl before the validity ends: a renewal sent at the
    /// validity end always comes back too late and loses the lease (a
    /// period close to the ttl did, and so did an extend that made the ttl
    /// shorter than the period; a_renewal_period_near_the_ttl_never_loses_the_lease,
    /// an_extend_shorter_than_the_renewal_period_never_loses_the_lease).
    pub(crate) fn next_renewal(&self) -> Instant {
        self.next_renewal_of(&self.state.lock())
    }

    fn next_renewal_of(&self, state: &LeaseState) -> Instant {
        let period = self.renew_every.unwrap_or(state.ttl / 3);
        let confirmed_at = state.valid_until - state.ttl.saturating_sub(drift(state.ttl));
        let latest = state
            .valid_until
            .checked_sub(state.ttl / 3)
            .unwrap_or(state.valid_until)
            .max(confirmed_at);
        (confirmed_at + period).min(latest)
    }

    /// The time left on the local clock, zero once lost or expired.
    pub(crate) fn remaining(&self) -> Duration {
        if self.inherited() {
            return Duration::ZERO;
        }
        let state = self.state.lock();
        if state.lost.is_some() || state.released {
            return Duration::ZERO;
        }
        state.valid_until.saturating_duration_since(Instant::now())
    }

    /// Why the lease is no longer held, if it is not.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        if self.inherited() {
            return Some(format!(
                "the hold on {} '{}' belongs to the parent process: it was inherited across fork(), and a child never holds, renews or releases its parent's locks",
                self.keys.noun(),
                self.keys.name()
            ));
        }
        let state = self.state.lock();
        if let Some(reason) = &state.lost {
            return Some(reason.clone());
        }
        if state.closed {
            return Some(format!(
                "{} '{}' was released when its client was closed",
                self.keys.noun(),
                self.keys.name()
            ));
        }
        if state.released {
            return Some(format!(
                "{} '{}' was released",
                self.keys.noun(),
                self.keys.name()
            ));
        }
        if Instant::now() >= state.valid_until {
            return Some(format!(
                "the lease on {} '{}' ran out (ttl {:?}) without a confirmed renewal",
                self.keys.noun(),
                self.keys.name(),
                state.ttl
            ));
        }
        None
    }

    /// Records a renewal (or extend) that Redis confirmed; `sent` is when the
    /// command left this process.
    ///
    /// Redis set the key's expiry to at least `ttl` (it never shortens
    /// one), so the lease moves on only if that reaches further than it
    /// already does: a shorter extend, or a renewal confirmed after an
    /// extend that went further, leaves the validity and the ttl the
    /// watchdog renews with as they are. The guard, the watchdog and Redis
    /// keep one view of the lease.
    ///
    /// Returns false, changing nothing, when the lease is lost or released
    /// or its validity ran out before the confirmation arrived: `check()`
    /// may already have said it was lost, and a lost lease never comes back
    /// (the caller reports it and gives the hold back).
    pub(crate) fn renewed(&self, sent: Instant, ttl: Duration) -> bool {
        Self::apply_renewal(&mut self.state.lock(), sent, ttl)
    }

    fn apply_renewal(state: &mut LeaseState, sent: Instant, ttl: Duration) -> bool {
        if state.lost.is_some() || state.released || Instant::now() >= state.valid_until {
            return false;
        }
        let until = sent + ttl.saturating_sub(drift(ttl));
        if until > state.valid_until {
            state.ttl = ttl;
            state.valid_until = until;
        }
        true
    }

    /// The watchdog takes the lease out of its schedule for a renewal:
    /// the ttl to renew it with, or `None` when it is released, lost or
    /// the parent process's. One lock for what took three: the watchdog
    /// does this for every lease every period.
    pub(crate) fn take_for_renewal(&self) -> Option<Duration> {
        if self.inherited() {
            return None;
        }
        let mut state = self.state.lock();
        if state.released || state.lost.is_some() {
            return None;
        }
        state.scheduled = None;
        Some(state.ttl)
    }

    /// Redis confirmed a renewal sent at `sent` for `ttl` (see
    /// [`Lease::renewed`]): what follows, decided under one lock.
    pub(crate) fn confirm_renewal(&self, sent: Instant, ttl: Duration) -> Renewal {
        let mut state = self.state.lock();
        if state.released {
            Renewal::Released
        } else if Self::apply_renewal(&mut state, sent, ttl) {
            Renewal::Renewed {
                next: self.next_renewal_of(&state),
            }
        } else {
            Renewal::TooLate
        }
    }

    /// Records the watchdog's schedule entry `key` if the lease is still
    /// active; false (nothing recorded) if it is not, and then it stays off
    /// the schedule.
    pub(crate) fn schedule_if_active(&self, key: (Instant, u64)) -> bool {
        if self.inherited() {
            return false;
        }
        let mut state = self.state.lock();
        if state.released || state.lost.is_some() {
            return false;
        }
        state.scheduled = Some(key);
        true
    }

    /// The chaos self-test's broken renewal: validity moves on whatever
    /// Redis said (see src/chaos.rs).
    #[cfg(feature = "chaos-variants")]
    pub(crate) fn force_renewed(&self, sent: Instant, ttl: Duration) {
        let mut state = self.state.lock();
        state.ttl = ttl;
        state.valid_until = sent + ttl.saturating_sub(drift(ttl));
    }

    /// Marks the lease lost and, when `notify`, runs the callback (once). A
    /// released lease is never reported (its renewal may race with the
    /// release). The watchdog notifies; a failed `extend` reports to its
    /// caller instead.
    pub(crate) fn mark_lost(&self, reason: String, notify: bool) {
        {
            let mut state = self.state.lock();
            if state.released || state.lost.is_some() {
                return;
            }
            state.lost = Some(reason.clone());
        }
        if let Some(callback) = self.on_lost.as_ref().filter(|_| notify) {
            let info = LostLease {
                name: self.keys.name().to_string(),
                token: self.token.clone(),
                fencing_token: self.fencing_token,
                reason,
            };
            // A panicking callback must not take the watchdog down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::signals::as_host(|| callback(&info))
            }));
        }
    }

    /// Remembers where the watchdog scheduled this lease (`None`: not now).
    pub(crate) fn set_scheduled(&self, slot: Option<(Instant, u64)>) {
        self.state.lock().scheduled = slot;
    }

    /// The watchdog's schedule entry, taken (the caller removes it).
    pub(crate) fn take_scheduled(&self) -> Option<(Instant, u64)> {
        self.state.lock().scheduled.take()
    }

    /// Stops renewal and reporting because the client is closing: true if
    /// the lease was live (the caller then releases it in Redis), false if
    /// it had ended already or belongs to the parent process.
    pub(crate) fn mark_closed(&self) -> bool {
        if self.inherited() {
            return false;
        }
        let mut state = self.state.lock();
        if state.released || state.lost.is_some() {
            return false;
        }
        state.released = true;
        state.closed = true;
        true
    }

    /// Whether the lease ended because its client was closed.
    pub(crate) fn closed(&self) -> bool {
        !self.inherited() && self.state.lock().closed
    }

    /// Stops renewal and reporting: the holder is giving the lock back.
    /// Returns the loss reason if the lease was already lost.
    /// Whether its holder released it (or its client closed it): from then
    /// on the release deals with Redis, and the watchdog leaves it alone.
    pub(crate) fn released(&self) -> bool {
        self.state.lock().released
    }

    /// Records that Redis said this released lease's hold was already
    /// gone (a downgrade, which stops reporting before its script runs,
    /// found it so): its guard reports the loss.
    pub(crate) fn mark_lost_after_release(&self, reason: String) {
        let mut state = self.state.lock();
        if state.lost.is_none() {
            state.lost = Some(reason);
        }
    }

    pub(crate) fn mark_released(&self) -> Option<String> {
        let mut state = self.state.lock();
        state.released = true;
        state.lost.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_lease(ttl: Duration, sent: Instant) -> NewLease {
        NewLease {
            keys: LockKeys::new("t", "n").unwrap(),
            token: "hold".into(),
            fencing_token: 1,
            reentrant: false,
            ttl,
            sent,
            renew_every: None,
            on_lost: None,
        }
    }

    fn lease(ttl: Duration, sent: Instant) -> Arc<Lease> {
        Lease::new(new_lease(ttl, sent))
    }

    #[test]
    fn validity_counts_from_the_send_minus_the_drift() {
        let ttl = Duration::from_secs(10);
        let sent = Instant::now();
        let held = lease(ttl, sent);
        // 10 s - (1 % + 2 ms) = 9.898 s at most.
        assert!(held.remaining() <= Duration::from_millis(9898));
        assert_eq!(held.valid_until(), sent + Duration::from_millis(9898));
        // A third of the ttl after the acquire was sent.
        assert_eq!(held.next_renewal(), sent + ttl / 3);
    }

    #[test]
    fn a_lease_past_its_validity_says_why_and_never_comes_back() {
        let held = lease(
            Duration::from_secs(1),
            Instant::now() - Duration::from_secs(2),
        );
        assert_eq!(held.remaining(), Duration::ZERO);
        assert!(held.lost_reason().is_some_and(|r| r.contains("ran out")));
        // A confirmation that arrives after the validity ran out revives nothing.
        assert!(!held.renewed(Instant::now(), Duration::from_secs(10)));
        assert_eq!(held.remaining(), Duration::ZERO);
    }

    #[test]
    fn a_shorter_confirmation_leaves_the_lease_as_it_was() {
        let sent = Instant::now();
        let held = lease(Duration::from_secs(30), sent);
        let (ttl, until, next) = (held.ttl(), held.valid_until(), held.next_renewal());
        // Before: the lease was cut to 1 s while Redis kept 30 s.
        assert!(held.renewed(Instant::now(), Duration::from_secs(1)));
        assert_eq!(
            (held.ttl(), held.valid_until(), held.next_renewal()),
            (ttl, until, next)
        );
        // A longer one moves the lease, its ttl and its next renewal.
        let later = sent + Duration::from_secs(1);
        assert!(held.renewed(later, Duration::from_secs(60)));
        assert_eq!(held.ttl(), Duration::from_secs(60));
        assert_eq!(held.next_renewal(), later + Duration::from_secs(20));
    }

    #[test]
    fn a_renewal_leaves_a_third_of_the_ttl_to_come_back() {
        let sent = Instant::now();
        let ttl = Duration::from_millis(300);
        let late = Lease::new(NewLease {
            renew_every: Some(Duration::from_millis(298)),
            ..new_lease(ttl, sent)
        });
        // Validity 295 ms: the renewal goes at 195 ms, not at 295 ms.
        assert_eq!(late.next_renewal(), sent + Duration::from_millis(195));
        // The default period is untouched.
        assert_eq!(lease(ttl, sent).next_renewal(), sent + ttl / 3);
    }

    #[test]
    fn a_lost_or_released_lease_is_never_renewed_or_reported_again() {
        let held = lease(Duration::from_secs(10), Instant::now());
        held.mark_lost("first".into(), false);
        held.mark_lost("second".into(), false);
        assert_eq!(held.lost_reason().as_deref(), Some("first"));
        assert!(!held.is_active());
        let before = held.valid_until();
        assert!(!held.renewed(Instant::now(), Duration::from_secs(60)));
        assert_eq!(
            held.valid_until(),
            before,
            "a renewal after a loss changed nothing"
        );
        let released = lease(Duration::from_secs(10), Instant::now());
        assert_eq!(released.mark_released(), None);
        released.mark_lost("late".into(), false);
        assert!(released
            .lost_reason()
            .is_some_and(|r| r.contains("released")));
    }
}
