//! Telling a forked child from its parent without a system call per check:
//! a counter that a `pthread_atfork` child handler bumps. The pool, the
//! release listener and the watchdog compare it with the value they saw when
//! they opened their sockets or started their threads (a `getpid()` per
//! borrowed connection showed up in profiles of the acquire/release cycle).

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Async-signal-safe: one atomic add.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The number of forks this process descends from (0 in the original).
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic; it runs
        // in the child right after fork().
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    GENERATION.load(Ordering::SeqCst)
}

/// A value each process has its own of: a forked child gets a fresh one
/// (from `make`) instead of using its parent's, which a thread the child
/// does not have may have left locked at the fork. The parent's value is
/// handed once to `leave` (which may clean up what it can without
/// waiting, e.g. with `try_lock`) and then never touched again in the
/// child, not even dropped; it is leaked, once per fork, in the child only.
/// A read costs an atomic load and a compare.
pub(crate) struct PerProcess<T> {
    current: AtomicPtr<Slot<T>>,
    make: Box<dyn Fn() -> T + Send + Sync>,
    leave: Box<dyn Fn(&T) + Send + Sync>,
}

struct Slot<T> {
    generation: u64,
    value: T,
}

impl<T> PerProcess<T> {
    pub(crate) fn new(
        make: impl Fn() -> T + Send + Sync + 'static,
        leave: impl Fn(&T) + Send + Sync + 'static,
    ) -> Self {
        let slot = Box::new(Slot {
            generation: generation(),
            value: make(),
        });
        PerProcess {
            current: AtomicPtr::new(Box::into_raw(slot)),
            make: Box::new(make),
            leave: Box::new(leave),
        }
    }

    /// This process's value.
    pub(crate) fn get(&self) -> &T {
        self.get_in(generation())
    }

    /// The value of the process of fork generation `generation`.
    fn get_in(&self, generation: u64) -> &T {
        let slot = self.current.load(Ordering::Acquire);
        // SAFETY: `current` always points to a live slot: slots are freed
        // only in `drop` (which has `&mut self`), and a replaced slot is
        // leaked, so a reference into one lives as long as `self`.
        let known = unsafe { &*slot };
        if known.generation == generation {
            return &known.value;
        }
        (self.leave)(&known.value);
        let fresh = Box::into_raw(Box::new(Slot {
            generation,
            value: (self.make)(),
        }));
        match self
            .current
            .compare_exchange(slot, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `fresh` was just made from a Box and is now the
            // live slot, freed only in `drop`.
            Ok(_) => unsafe { &(*fresh).value },
            Err(winner) => {
                // SAFETY: `fresh` never became visible to anyone else.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as above, `winner` is the live slot.
                unsafe { &(*winner).value }
            }
        }
    }
}

impl<T> Drop for PerProcess<T> {
    fn drop(&mut self) {
        // SAFETY: the live slot came from Box::into_raw and nothing else
        // can reach it once `self` is being dropped.
        drop(unsafe { Box::from_raw(*self.current.get_mut()) });
    }
}

// SAFETY: a PerProcess<T> hands out only `&T` (through `get`), like an
// `Arc<T>`, so it is Send and Sync exactly when T is.
unsafe impl<T: Send + Sync> Send for PerProcess<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PerProcess<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_gets_a_fresh_value_and_leaves_the_parents_alone() {
        let pool = PerProcess::new(
            || crate::sync::Mutex::new(vec![1]),
            |inherited| {
                // Locked by a thread the child does not have: left alone.
                assert!(inherited.try_lock().is_none());
            },
        );
        let parent = generation();
        pool.get_in(parent).lock().push(2);
        // The parent's value stays locked, as if by a thread that the
        // child does not have.
        let held = pool.get_in(parent).lock();
        let child = pool.get_in(parent + 1);
        assert_eq!(*child.lock(), vec![1], "a fresh value, not the locked one");
        child.lock().push(3);
        assert_eq!(
            *pool.get_in(parent + 1).lock(),
            vec![1, 3],
            "the same one after"
        );
        drop(held);
    }
}
