//! The watchdog: one thread per Client keeps every auto-renewed lease alive,
//! renewing all leases that are due in one pipelined round trip, and marks a
//! lease lost (loudly: flag, `check()` error, callback) the moment renewal
//! shows it is no longer ours or cannot be confirmed before it runs out.
//!
//! The same thread also gives back holds whose acquire or release had an
//! unknown outcome (the command timed out, Redis may run it later), as soon
//! as Redis answers.
//!
//! After `fork()` the child's watchdog starts empty: the parent's leases
//! and pending give-backs are the parent's, never renewed or released by
//! the child.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

use crate::backend::{Backend, ExtendItem, Released};
use crate::fork::PerProcess;
use crate::keys::LockKeys;
use crate::lease::{Lease, Renewal};

/// How many renewals go into one pipelined round trip.
const BATCH: usize = 1000;
/// Leases due this soon after the earliest one ride along in its round trip,
/// so many leases taken at slightly different times share renewals.
const COALESCE: Duration = Duration::from_millis(20);
/// How long a give-back keeps trying: a hold that may still appear (its
/// acquire was never answered) is watched for this long at least; one that
/// exists is given up after this long at most. A command delayed in the
/// network longer than this, or a Redis unreachable longer than this, may
/// leave a hold held by nobody until its ttl ends.
const GIVE_BACK_HORIZON: Duration = Duration::from_secs(60);

enum Task {
    /// Renew this lease (skipped if released or dropped meanwhile).
    Renew(Weak<Lease>),
    /// Release a hold whose acquire or release had an unknown outcome.
    Release(Box<StrayToken>),
    /// Wake the waiters of a lock whose hold renewal found gone: nobody
    /// released it, so nobody else sends them the message.
    Announce(Box<(LockKeys, String)>),
    /// Take the waiters that gave up out of their locks' queues (those
    /// in `Shared::departures` by then).
    LeaveQueues,
}

struct StrayToken {
    keys: LockKeys,
    token: String,
    reentrant: bool,
    /// The hold may not exist yet (its acquire may still be queued in a
    /// stalled server), so "not ours" does not settle it before `until`.
    /// Otherwise any answer settles it.
    may_appear_later: bool,
    /// After this the key has expired anyway.
    until: Instant,
    backoff: Duration,
}

impl StrayToken {
    fn new(
        keys: LockKeys,
        token: String,
        reentrant: bool,
        may_appear_later: bool,
        until: Instant,
    ) -> Self {
        let now = Instant::now();
        StrayToken {
            keys,
            token,
            reentrant,
            may_appear_later,
            // A hold that may still appear is watched for at least the
            // horizon, even past its ttl (a late command takes a free lock
            // for a whole ttl); one that exists, at most until its ttl.
            until: if may_appear_later {
                until.max(now + GIVE_BACK_HORIZON)
            } else {
                until.min(now + GIVE_BACK_HORIZON)
            },
            backoff: Duration::from_millis(100),
        }
    }
}

#[derive(Default)]
struct Schedule {
    /// Due time and a unique id -> what to do.
    due: BTreeMap<(Instant, u64), Task>,
    next_id: u64,
    stop: bool,
    started: bool,
    /// When the thread will wake by itself (`None`: only when notified).
    /// A new task due later than that needs no wake-up, which keeps a
    /// tight acquire/release loop from waking the thread every time.
    sleeping_until: Option<Instant>,
}

impl Schedule {
    /// Puts `lease` back on the schedule at `when`, unless it was released
    /// or lost while it was being renewed.
    fn push_renewal(&mut self, when: Instant, lease: &Arc<Lease>) {
        self.next_id += 1;
        let key = (when, self.next_id);
        if lease.schedule_if_active(key) {
            self.due.insert(key, Task::Renew(Arc::downgrade(lease)));
        }
    }

    /// Adds a task; returns its key and whether the sleeping thread must be
    /// woken to re-plan (the task is due before the thread would wake).
    fn push(&mut self, when: Instant, task: Task) -> ((Instant, u64), bool) {
        self.next_id += 1;
        let key = (when, self.next_id);
        if let Task::Renew(weak) = &task {
            if let Some(lease) = weak.upgrade() {
                lease.set_scheduled(Some(key));
            }
        }
        let wake = self.sleeping_until.is_none_or(|until| when < until);
        self.due.insert(key, task);
        (key, wake)
    }
}

pub(crate) struct Watchdog {
    /// The schedule shared with the thread, per process: a forked child
    /// gets a fresh one, since the parent's may have been locked at the
    /// fork by a thread the child does not have (the watchdog's own, or
    /// one running a Sentinel switch).
    shared: PerProcess<Arc<Shared>>,
    backend: Arc<dyn Backend>,
}

struct Shared {
    schedule: Mutex<Schedule>,
    changed: Condvar,
    /// Waiters that gave up and have not left their lock's queue yet (an
    /// entry stays until its leave script answered): the lock's keys and
    /// the waiter's id.
    departures: Mutex<Vec<(LockKeys, String)>>,
}

impl Shared {
    /// Runs the leave script of each departure (best effort: an entry left
    /// behind runs out after its lease), then forgets it. Twice for one
    /// waiter (the background and a release at once) is harmless.
    fn leave(&self, backend: &dyn Backend, leaving: &[(LockKeys, String)]) {
        for (keys, waiter) in leaving {
            let _ = backend.leave_queue(keys, waiter);
        }
        self.departures
            .lock()
            .retain(|(_, w)| !leaving.iter().any(|(_, left)| left == w));
    }

    fn new() -> Arc<Self> {
        Arc::new(Shared {
            schedule: Mutex::new(Schedule::default()),
            changed: Condvar::new(),
            departures: Mutex::new(Vec::new()),
        })
    }
}

impl Watchdog {
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        Watchdog {
            shared: PerProcess::new(Shared::new, |_| {}),
            backend,
        }
    }

    /// This process's schedule (a fresh, empty one in a forked child:
    /// everything scheduled before the fork is the parent's).
    fn shared(&self) -> Arc<Shared> {
        self.shared.get().clone()
    }

    /// Starts renewing `lease`.
    /// `sent`: when its acquire was sent. If the deployment moved to
    /// another master since, the reply may have come from the old one: the
    /// lease is renewed at once, on the new one.
    pub(crate) fn watch(&self, lease: &Arc<Lease>, sent: Instant) {
        let when = if self.backend.last_master_switch() >= Some(sent) {
            Instant::now()
        } else {
            lease.next_renewal()
        };
        self.schedule(when, Task::Renew(Arc::downgrade(lease)));
    }

    /// Stops renewing `lease` (it was released): drops its schedule entry
    /// now rather than when it comes due, so a client that takes and gives
    /// back many locks keeps a small schedule.
    pub(crate) fn unwatch(&self, lease: &Lease) {
        if let Some(key) = lease.take_scheduled() {
            self.shared().schedule.lock().due.remove(&key);
        }
    }

    /// Moves `lease`'s next renewal to what its current state says (an
    /// extend changed its ttl or validity), so the schedule, the lease and
    /// Redis agree. A lease the thread is renewing right now is put back at
    /// its new time when that round trip ends.
    pub(crate) fn reschedule(&self, lease: &Arc<Lease>) {
        let shared = self.shared();
        let mut schedule = shared.schedule.lock();
        let Some(key) = lease.take_scheduled() else {
            return;
        };
        if let Some(task) = schedule.due.remove(&key) {
            if schedule.push(lease.next_renewal(), task).1 {
                shared.changed.notify_all();
            }
        }
    }

    /// Renews every watched lease now rather than when it comes due: the
    /// deployment moved to another master, which may not have them.
    pub(crate) fn renew_all_now(&self) {
        let shared = self.shared();
        let mut schedule = shared.schedule.lock();
        let due: Vec<(Instant, u64)> = schedule
            .due
            .iter()
            .filter(|(_, task)| matches!(task, Task::Renew(_)))
            .map(|(key, _)| *key)
            .collect();
        let now = Instant::now();
        for key in due {
            if let Some(task) = schedule.due.remove(&key) {
                schedule.push(now, task);
            }
        }
        shared.changed.notify_all();
    }

    /// Releases the hold `token` on `keys` as soon as Redis answers,
    /// retrying until `until` (when the key would have expired anyway).
    /// `may_appear_later`: the hold's acquire had an unknown outcome and may
    /// still run, so keep trying until `until` even if Redis says it is not
    /// there.
    pub(crate) fn release_later(
        &self,
        keys: LockKeys,
        token: String,
        reentrant: bool,
        may_appear_later: bool,
        until: Instant,
    ) {
        let stray = StrayToken::new(keys, token, reentrant, may_appear_later, until);
        self.schedule(Instant::now(), Task::Release(Box::new(stray)));
    }

    /// Takes the waiter `waiter` out of the queue of the lock `keys`, in
    /// the background and once (best effort: an entry left behind runs out
    /// after its lease), or before this client's next release of that
    /// lock ([`Watchdog::leave_before_release`]), whichever comes first.
    pub(crate) fn leave_queue_later(&self, keys: LockKeys, waiter: String) {
        self.shared().departures.lock().push((keys, waiter));
        self.schedule(Instant::now(), Task::LeaveQueues);
    }

    /// The waiters of this client that gave up and have not left their
    /// lock's queue yet: the lock's keys and the waiter's id.
    pub(crate) fn pending_departures(&self) -> Vec<(LockKeys, String)> {
        self.shared().departures.lock().clone()
    }

    /// Takes `leaving` out of their queues now, in this thread (see
    /// [`Watchdog::leave_queue_later`]).
    pub(crate) fn leave_queues_now(&self, leaving: &[(LockKeys, String)]) {
        self.shared().leave(self.backend.as_ref(), leaving);
    }

    /// Before this client releases the lock `keys`: its own waiters of that
    /// lock that gave up leave the queue first, so that the release does
    /// not hand the lock to one of them (a close releases its holds right
    /// after its waiters gave up).
    pub(crate) fn leave_before_release(&self, keys: &LockKeys) {
        let shared = self.shared();
        let leaving: Vec<(LockKeys, String)> = shared
            .departures
            .lock()
            .iter()
            .filter(|(k, _)| k.lock() == keys.lock())
            .cloned()
            .collect();
        if !leaving.is_empty() {
            shared.leave(self.backend.as_ref(), &leaving);
        }
    }

    fn schedule(&self, when: Instant, task: Task) {
        let shared = self.shared();
        let mut schedule = shared.schedule.lock();
        let (_, earliest) = schedule.push(when, task);
        if !schedule.started {
            schedule.started = true;
            schedule.sleeping_until = None;
            let shared = shared.clone();
            let backend = self.backend.clone();
            // Lost-lease callbacks run on this thread with the host's mask.
            let host = crate::signals::host_mask();
            let spawned = crate::thread::spawn("latchkey-watchdog", move || {
                // Renewals are not waited for by anyone: no reason to
                // spend a core spinning for their replies.
                crate::backend::never_spin_on_this_thread();
                run(shared, backend, host)
            });
            if spawned.is_err() {
                // Without a thread nothing is renewed: leases run out and
                // `check()` reports it, as documented. Try again next time.
                schedule.started = false;
            }
        }
        if earliest {
            shared.changed.notify_all();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let shared = self.shared();
        shared.schedule.lock().stop = true;
        shared.changed.notify_all();
    }
}

fn run(shared: Arc<Shared>, backend: Arc<dyn Backend>, host: libc::sigset_t) {
    crate::signals::mask_for_this_thread_of(host);
    loop {
        let tasks = {
            let mut schedule = shared.schedule.lock();
            loop {
                if schedule.stop {
                    // The client's last handle is gone, the process goes
                    // on: waiters that gave up still leave their queues.
                    // Dropping the client right after a cancel stopped the
                    // thread before it took the departure, and the entry
                    // (a fair queue's head) stayed until it ran out
                    // (attack_fair::
                    // a_cancelled_fair_waiter_leaves_even_when_its_client_is_dropped_at_once,
                    // 14 of 20 rounds).
                    drop(schedule);
                    let leaving = shared.departures.lock().clone();
                    shared.leave(backend.as_ref(), &leaving);
                    return;
                }
                let Some(&(first, _)) = schedule.due.keys().next() else {
                    schedule.sleeping_until = None;
                    shared.changed.wait(&mut schedule);
                    continue;
                };
                if first > Instant::now() {
                    schedule.sleeping_until = Some(first);
                    shared.changed.wait_until(&mut schedule, first);
                    continue;
                }
                // Awake and working: whatever is pushed meanwhile is seen
                // when the loop comes back here.
                schedule.sleeping_until = Some(first);
                break take_due(&mut schedule, first + COALESCE);
            }
        };
        let mut leases = Vec::new();
        let mut strays = Vec::new();
        let mut announcements = Vec::new();
        let mut departures = Vec::new();
        let mut next = Vec::new();
        for task in tasks {
            match task {
                Task::Renew(weak) => {
                    if let Some(lease) = weak.upgrade() {
                        if let Some(ttl) = lease.take_for_renewal() {
                            leases.push((lease, ttl));
                        }
                    }
                }
                Task::Release(stray) => strays.push(*stray),
                Task::Announce(lost) => announcements.push(*lost),
                Task::LeaveQueues => departures.extend(shared.departures.lock().iter().cloned()),
            }
        }
        if !strays.is_empty() || !announcements.is_empty() || !departures.is_empty() {
            let notices = Notices {
                announcements,
                departures,
            };
            give_back_in_background(&shared, &backend, strays, notices);
        }
        // Leases of one ttl and kind share a renewal script (see
        // script_calls::extend_batches): grouped, a client mixing plain and
        // reentrant locks still renews hundreds per script.
        leases.sort_by_key(|(lease, ttl)| (ttl.as_millis(), lease.reentrant()));
        for chunk in leases.chunks(BATCH) {
            let sent = Instant::now();
            let renewed = renew(backend.as_ref(), chunk);
            if backend.last_master_switch() >= Some(sent) {
                // The master changed while this round trip ran: what the
                // old one confirmed counts for nothing; ask the new one now.
                let now = Instant::now();
                next.extend(renewed.into_iter().map(|(when, task)| match task {
                    Task::Renew(_) => (now, task),
                    other => (when, other),
                }));
            } else {
                next.extend(renewed);
            }
        }
        let mut schedule = shared.schedule.lock();
        for (when, task) in next {
            match task {
                // A lease released while we renewed it stays off the
                // schedule.
                Task::Renew(weak) => {
                    if let Some(lease) = weak.upgrade() {
                        schedule.push_renewal(when, &lease);
                    }
                }
                other => {
                    schedule.push(when, other);
                }
            }
        }
    }
}

/// Best-effort notes to Redis, sent once each: wake the waiters of a lock
/// whose hold was found gone (its keys and the lost hold's token), take a
/// waiter that gave up out of a queue (the keys and the waiter's id).
struct Notices {
    announcements: Vec<(LockKeys, String)>,
    departures: Vec<(LockKeys, String)>,
}

/// Gives holds back (and wakes the waiters of leases found gone) on a
/// thread of their own: a command whose server does not answer waits up to
/// the command timeout, and the renewals of every other lease must not
/// wait with it. What is not settled yet goes back on the schedule.
fn give_back_in_background(
    shared: &Arc<Shared>,
    backend: &Arc<dyn Backend>,
    strays: Vec<StrayToken>,
    notices: Notices,
) {
    let (shared, backend) = (shared.clone(), backend.clone());
    let give_back = move || {
        crate::signals::mask_for_this_thread();
        for (keys, token) in &notices.announcements {
            // Best effort: a waiter that misses it re-checks on its own
            // within a third of the holder's ttl.
            let _ = backend.announce_free(keys, token);
        }
        shared.leave(backend.as_ref(), &notices.departures);
        let again: Vec<(Instant, Task)> = strays
            .into_iter()
            .filter_map(|stray| release_stray(backend.as_ref(), stray))
            .collect();
        let mut schedule = shared.schedule.lock();
        if schedule.stop {
            return;
        }
        let mut wake = false;
        for (when, task) in again {
            wake |= schedule.push(when, task).1;
        }
        if wake {
            shared.changed.notify_all();
        }
    };
    // Without a thread the give-backs are dropped: the holds then expire
    // at the end of their ttl, as they would have without the give-back.
    let _ = crate::thread::spawn("latchkey-giveback", give_back);
}

fn take_due(schedule: &mut Schedule, until: Instant) -> Vec<Task> {
    let mut tasks = Vec::new();
    while let Some(entry) = schedule.due.first_entry() {
        if entry.key().0 > until {
            break;
        }
        tasks.push(entry.remove());
    }
    tasks
}

/// Tries to release a stray token; reschedules it while it may still exist.
fn release_stray(backend: &dyn Backend, mut stray: StrayToken) -> Option<(Instant, Task)> {
    let settled = match backend.release(&stray.keys, &stray.token, stray.reentrant) {
        Ok(Released::Free | Released::StillHeld) => true,
        Ok(Released::NotOwner) => !stray.may_appear_later,
        Err(_) => false,
    };
    let now = Instant::now();
    if settled || now >= stray.until {
        return None;
    }
    // Not there (yet): the command may still be queued in a paused server.
    let when = (now + stray.backoff).min(stray.until);
    stray.backoff = (stray.backoff * 2).min(Duration::from_secs(2));
    Some((when, Task::Release(Box::new(stray))))
}

/// The give-back of a lease that was lost while Redis may still keep it.
fn give_back(lease: &Lease) -> StrayToken {
    StrayToken::new(
        lease.keys().clone(),
        lease.token().to_string(),
        lease.reentrant(),
        false,
        Instant::now() + lease.ttl(),
    )
}

/// Renews one chunk of leases in one round trip; returns the leases that
/// stay scheduled, with their next renewal time.
fn renew(backend: &dyn Backend, leases: &[(Arc<Lease>, Duration)]) -> Vec<(Instant, Task)> {
    let items: Vec<ExtendItem<'_>> = leases
        .iter()
        .map(|(lease, ttl)| ExtendItem::of(lease, *ttl))
        .collect();
    let sent = Instant::now();
    let results = backend.extend(&items);
    let mut keep = Vec::with_capacity(leases.len());
    for (i, (lease, ttl)) in leases.iter().enumerate() {
        let ttl = *ttl;
        let outcome = match &results {
            Ok(results) => results[i].clone(),
            Err(e) => Err(e.clone()),
        };
        #[cfg(feature = "chaos-variants")]
        if crate::chaos::variant("renew-ignores-failure") {
            // Broken on purpose: every renewal counts as confirmed.
            if !lease.released() {
                lease.force_renewed(sent, ttl);
                keep.push((lease.next_renewal(), Task::Renew(Arc::downgrade(lease))));
            }
            continue;
        }
        // Released (or closed) while this renewal was in flight: the
        // release settles the hold in Redis. Taken for a renewal confirmed
        // too late, it was given back here as well, and when that
        // give-back reached Redis first the holder's own release found the
        // key gone and said NotHeld
        // (lock_basics::a_release_racing_a_renewal_is_never_told_the_lock_was_lost).
        // A confirmation asks it under the lease's lock, with the rest.
        let confirmed = matches!(outcome, Ok(true));
        if !confirmed && lease.released() {
            continue;
        }
        match outcome {
            Ok(true) => match lease.confirm_renewal(sent, ttl) {
                Renewal::Released => {}
                Renewal::Renewed { next } => {
                    keep.push((next, Task::Renew(Arc::downgrade(lease))));
                }
                Renewal::TooLate => {
                    // Confirmed only after the lease's validity ran out
                    // (check() may have said so already): a lost lease stays
                    // lost, and the hold Redis still keeps is given back.
                    lease.mark_lost(
                        format!(
                            "the renewal of {} '{}' was confirmed only after the lease ran out",
                            lease.keys().noun(),
                            lease.name()
                        ),
                        true,
                    );
                    keep.push((Instant::now(), Task::Release(Box::new(give_back(lease)))));
                }
            },
            Ok(false) => {
                lease.mark_lost(
                    format!(
                        "renewal found {} '{}' expired or held by another owner",
                        lease.keys().noun(),
                        lease.name()
                    ),
                    true,
                );
                // The key may have vanished without a release (deleted,
                // evicted, expired): its waiters would otherwise sleep on
                // until the ttl they were told.
                let lost = (lease.keys().clone(), lease.token().to_string());
                keep.push((Instant::now(), Task::Announce(Box::new(lost))));
            }
            Err(e) => {
                let now = Instant::now();
                if lease.valid_until() <= now {
                    lease.mark_lost(
                        format!(
                            "could not renew {} '{}' before its lease ran out: {e}",
                            lease.keys().noun(),
                            lease.name()
                        ),
                        true,
                    );
                    // Redis may still keep this hold (another hold of a
                    // reentrant lock can keep the key alive): take it out as
                    // soon as Redis answers, so it does not hold the lock
                    // for nobody.
                    keep.push((now, Task::Release(Box::new(give_back(lease)))));
                } else {
                    // Try again soon, but never after the lease runs out.
                    let retry = (now + lease.ttl() / 10).min(lease.valid_until());
                    keep.push((retry, Task::Renew(Arc::downgrade(lease))));
                }
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    //! The watchdog's decisions against an in-memory backend: no server.
    use super::*;
    use crate::backend::{AcquireArgs, Attempt, EndpointSource, FencedWriteArgs};
    use crate::error::{Error, ErrorKind, Result};
    use crate::info::{FencedWrite, LockInfo};
    use crate::lease::NewLease;
    use crate::sync::Mutex;
    use std::collections::HashMap;

    /// Answers renewals per hold token: Some(true) extended, Some(false)
    /// gone, None an error for that lease alone; `down` fails the round trip.
    #[derive(Default)]
    struct Memory {
        renewals: Mutex<HashMap<String, Option<bool>>>,
        down: Mutex<bool>,
        released: Mutex<Vec<String>>,
        release_answer: Mutex<Option<Released>>,
        switched: Mutex<Option<Instant>>,
    }

    fn unused<T>() -> Result<T> {
        Err(Error::new(ErrorKind::Server, "not used by these tests"))
    }

    impl Backend for Memory {
        fn acquire(&self, _: &AcquireArgs<'_>) -> Result<Attempt> {
            unused()
        }
        fn release(&self, _: &LockKeys, hold: &str, _: bool) -> Result<Released> {
            self.released.lock().push(hold.to_string());
            self.release_answer
                .lock()
                .ok_or_else(|| Error::new(ErrorKind::Connection, "down"))
        }
        fn extend(&self, items: &[ExtendItem<'_>]) -> Result<Vec<Result<bool>>> {
            if *self.down.lock() {
                return Err(Error::new(ErrorKind::Connection, "down"));
            }
            let renewals = self.renewals.lock();
            Ok(items
                .iter()
                .map(|i| match renewals.get(i.token).copied().flatten() {
                    Some(extended) => Ok(extended),
                    None => Err(Error::new(ErrorKind::Server, "WRONGTYPE")),
                })
                .collect())
        }
        fn announce_free(&self, _: &LockKeys, _: &str) -> Result<()> {
            Ok(())
        }
        fn inspect(&self, _: &LockKeys, _: usize) -> Result<Option<LockInfo>> {
            unused()
        }
        fn hold_exists(&self, _: &LockKeys, _: &str, _: bool) -> Result<bool> {
            unused()
        }
        fn force_unlock(&self, _: &LockKeys, _: &str) -> Result<bool> {
            unused()
        }
        fn fenced_write(&self, _: &FencedWriteArgs<'_>) -> Result<FencedWrite> {
            unused()
        }
        fn fenced_read(&self, _: &[u8], _: &str) -> Result<Option<(u64, Vec<u8>)>> {
            unused()
        }
        fn pubsub_sources(&self) -> Vec<EndpointSource> {
            Vec::new()
        }
        fn last_master_switch(&self) -> Option<Instant> {
            *self.switched.lock()
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    /// Renews `leases` with their own ttls, as the watchdog's round does.
    fn renew_these(backend: &dyn Backend, leases: &[Arc<Lease>]) -> Vec<(Instant, Task)> {
        let taken: Vec<_> = leases.iter().map(|l| (l.clone(), l.ttl())).collect();
        renew(backend, &taken)
    }

    fn lease(token: &str, ttl_ms: u64, sent_ago_ms: u64) -> Arc<Lease> {
        Lease::new(NewLease {
            keys: LockKeys::new("t", token).unwrap(),
            token: token.to_string(),
            fencing_token: 1,
            reentrant: false,
            ttl: Duration::from_millis(ttl_ms),
            sent: Instant::now() - Duration::from_millis(sent_ago_ms),
            renew_every: None,
            on_lost: None,
        })
    }

    #[test]
    fn a_lease_acquired_across_a_master_switch_is_checked_at_once() {
        let memory = Arc::new(Memory::default());
        let watchdog = Watchdog::new(memory.clone());
        // Neither is on the new master; a renewal would say so.
        memory.renewals.lock().insert("across".into(), Some(false));
        memory.renewals.lock().insert("after".into(), Some(false));
        let across = lease("across", 60_000, 0);
        let sent_before_the_switch = Instant::now();
        *memory.switched.lock() = Some(Instant::now());
        watchdog.watch(&across, sent_before_the_switch);
        let after = lease("after", 60_000, 0);
        watchdog.watch(&after, Instant::now());
        let deadline = Instant::now() + Duration::from_secs(10);
        while across.lost_reason().is_none() {
            assert!(
                Instant::now() < deadline,
                "a lease whose acquire may have been answered by the old master \
                 waited for its next renewal (20 s away)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            after.lost_reason().is_none(),
            "a lease acquired after the switch waits for its renewal"
        );
    }

    #[test]
    fn one_leases_error_neither_loses_nor_delays_another() {
        let memory = Memory::default();
        memory.renewals.lock().insert("healthy".into(), Some(true));
        memory.renewals.lock().insert("broken".into(), None);
        memory.renewals.lock().insert("gone".into(), Some(false));
        let leases = [
            lease("healthy", 3000, 0),
            lease("broken", 3000, 0),
            lease("gone", 3000, 0),
        ];
        let next = renew_these(&memory, &leases);
        assert!(leases[0].lost_reason().is_none());
        // An error on one lease is retried, its lease not yet lost.
        assert!(leases[1].lost_reason().is_none());
        assert!(
            leases[2].lost_reason().is_some(),
            "a lease found gone is lost at once"
        );
        let renewed: Vec<_> = next
            .iter()
            .filter_map(|(_, t)| match t {
                Task::Renew(w) => w.upgrade().map(|l| l.token().to_string()),
                Task::Release(_) | Task::Announce(_) | Task::LeaveQueues => None,
            })
            .collect();
        assert_eq!(renewed, vec!["healthy".to_string(), "broken".to_string()]);
    }

    // Before: a lease found gone was reported to its holder only; the
    // waiters slept until the ttl they had been told.
    #[test]
    fn a_lease_found_gone_is_announced_to_its_waiters() {
        let memory = Memory::default();
        memory.renewals.lock().insert("gone".into(), Some(false));
        let gone = lease("gone", 3000, 0);
        let next = renew_these(&memory, std::slice::from_ref(&gone));
        assert!(gone.lost_reason().is_some());
        assert!(matches!(
            next.as_slice(),
            [(_, Task::Announce(lost))] if lost.1 == "gone" && lost.0.name() == "gone"
        ));
    }

    #[test]
    fn a_lease_that_cannot_be_renewed_in_time_is_lost_and_given_back() {
        let memory = Memory::default();
        *memory.down.lock() = true;
        // Sent 3 s ago with a 3 s ttl: its validity has run out.
        let expired = lease("late", 3000, 3000);
        let next = renew_these(&memory, std::slice::from_ref(&expired));
        assert!(expired.lost_reason().is_some());
        assert!(matches!(next.as_slice(), [(_, Task::Release(stray))] if stray.token == "late"));
    }

    #[test]
    fn a_renewal_never_extends_a_lease_past_what_redis_confirmed() {
        let memory = Memory::default();
        memory.renewals.lock().insert("held".into(), Some(true));
        let held = lease("held", 3000, 2000);
        let before = held.remaining();
        renew_these(&memory, std::slice::from_ref(&held));
        let after = held.remaining();
        assert!(after > before, "{after:?} <= {before:?}");
        // ttl minus the drift allowance (1 % + 2 ms), at most.
        assert!(after <= Duration::from_millis(3000 - 32), "{after:?}");
    }

    #[test]
    fn a_give_back_is_settled_by_an_answer_unless_the_hold_may_still_appear() {
        let memory = Memory::default();
        *memory.release_answer.lock() = Some(Released::NotOwner);
        let stray = |may_appear_later| StrayToken {
            keys: LockKeys::new("t", "x").unwrap(),
            token: "x".into(),
            reentrant: false,
            may_appear_later,
            until: Instant::now() + Duration::from_secs(30),
            backoff: Duration::from_millis(100),
        };
        assert!(release_stray(&memory, stray(false)).is_none());
        assert!(release_stray(&memory, stray(true)).is_some());
        *memory.release_answer.lock() = None; // Redis down: keep trying
        assert!(release_stray(&memory, stray(false)).is_some());
    }
}
