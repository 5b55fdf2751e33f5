//! Telling a forked child from its parent without a system call per check:
//! a counter that a `pthread_atfork` child handler bumps. The pool, the
//! release listener and the watchdog compare it with the value they saw when
//! they opened their sockets or started their threads (a `getpid()` per
//! borrowed connection showed up in profiles of the acquire/release cycle).

use std::sync::atomic::{AtomicU64, Ordering};
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
