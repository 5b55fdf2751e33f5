//! The watchdog: one thread per Client keeps every auto-renewed lease alive,
//! renewing all leases that are due in one pipelined round trip, and marks a
//! lease lost (loudly: flag, `check()` error, callback) the moment renewal
//! shows it is no longer ours or cannot be confirmed before it runs out.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::backend::{Backend, Call};
use crate::lease::Lease;

/// How many renewals go into one pipelined round trip.
const BATCH: usize = 1000;
/// Leases due this soon after the earliest one ride along in its round trip,
/// so many leases taken at slightly different times share renewals.
const COALESCE: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Schedule {
    /// Next renewal time and lease id -> the lease. A released or dropped
    /// lease is skipped when its turn comes.
    due: BTreeMap<(Instant, u64), Weak<Lease>>,
    stop: bool,
    started: bool,
}

pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
}

struct Shared {
    schedule: Mutex<Schedule>,
    changed: Condvar,
}

impl Watchdog {
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        Watchdog {
            shared: Arc::new(Shared {
                schedule: Mutex::new(Schedule::default()),
                changed: Condvar::new(),
            }),
            backend,
        }
    }

    /// Starts renewing `lease` (the thread starts with the first lease).
    pub(crate) fn watch(&self, lease: &Arc<Lease>) {
        let mut schedule = self.shared.schedule.lock();
        let next = lease.next_renewal();
        schedule.due.insert((next, lease.id), Arc::downgrade(lease));
        if !schedule.started {
            schedule.started = true;
            let shared = self.shared.clone();
            let backend = self.backend.clone();
            let spawned = std::thread::Builder::new()
                .name("latchkey-watchdog".into())
                .spawn(move || run(shared, backend));
            if spawned.is_err() {
                // Without a thread the lease cannot be renewed; it will run
                // out and `check()` reports it, as documented.
                schedule.started = false;
            }
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.schedule.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

fn run(shared: Arc<Shared>, backend: Arc<dyn Backend>) {
    loop {
        let batch = {
            let mut schedule = shared.schedule.lock();
            loop {
                if schedule.stop {
                    return;
                }
                let Some((&(first, _), _)) = schedule.due.first_key_value() else {
                    shared.changed.wait(&mut schedule);
                    continue;
                };
                if first > Instant::now() {
                    shared.changed.wait_until(&mut schedule, first);
                    continue;
                }
                break take_due(&mut schedule, first + COALESCE);
            }
        };
        for chunk in batch.chunks(BATCH) {
            let next = renew(backend.as_ref(), chunk);
            let mut schedule = shared.schedule.lock();
            for (lease, when) in next {
                schedule
                    .due
                    .insert((when, lease.id), Arc::downgrade(&lease));
            }
        }
    }
}

fn take_due(schedule: &mut Schedule, until: Instant) -> Vec<Arc<Lease>> {
    let mut batch = Vec::new();
    while let Some(entry) = schedule.due.first_entry() {
        if entry.key().0 > until {
            break;
        }
        if let Some(lease) = entry.remove().upgrade() {
            if lease.is_active() {
                batch.push(lease);
            }
        }
    }
    batch
}

/// Renews one chunk of leases in one round trip; returns the leases that
/// stay scheduled, with their next renewal time.
fn renew(backend: &dyn Backend, leases: &[Arc<Lease>]) -> Vec<(Arc<Lease>, Instant)> {
    let ttls: Vec<Duration> = leases.iter().map(|l| l.ttl()).collect();
    let calls: Vec<Call<'_>> = leases
        .iter()
        .zip(&ttls)
        .map(|(lease, ttl)| lease.extend_call(*ttl))
        .collect();
    let sent = Instant::now();
    let results = backend.eval_many("renewing leases", &calls);
    let mut keep = Vec::with_capacity(leases.len());
    for (i, lease) in leases.iter().enumerate() {
        let outcome = match &results {
            Ok(results) => match &results[i] {
                Ok(redis::Value::Int(1)) => Ok(true),
                Ok(_) => Ok(false),
                Err(e) => Err(e.clone()),
            },
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(true) => {
                lease.renewed(sent, ttls[i]);
                keep.push((lease.clone(), lease.next_renewal()));
            }
            Ok(false) => lease.mark_lost(
                format!(
                    "renewal found lock '{}' expired or held by another owner",
                    lease.name()
                ),
                true,
            ),
            Err(e) => {
                let now = Instant::now();
                if lease.valid_until() <= now {
                    lease.mark_lost(
                        format!(
                            "could not renew lock '{}' before its lease ran out: {e}",
                            lease.name()
                        ),
                        true,
                    );
                } else {
                    // Try again soon, but never after the lease runs out.
                    let retry = (now + lease.ttl() / 10).min(lease.valid_until());
                    keep.push((lease.clone(), retry));
                }
            }
        }
    }
    keep
}
