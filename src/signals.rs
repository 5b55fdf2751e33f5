//! Keeping the host's signals out of the library's socket I/O.
//!
//! The sockets have read and write timeouts, and Linux never restarts a
//! socket call with a timeout after a signal handler ran: it fails with
//! EINTR even under `SA_RESTART`. A command whose reply read is interrupted
//! that way has an unknown outcome, so the call would fail (or a release
//! would look "not held"). Hosts send such signals all the time: the Go
//! runtime preempts goroutines with SIGURG, Python and C programs handle
//! SIGCHLD, SIGINT, profiler ticks.
//!
//! So asynchronous signals are blocked while a thread talks to Redis (one
//! round trip, bounded by the command timeout; they are delivered right
//! after), and for the whole life of the library's own threads (the
//! process's handlers then run on the host's threads, as they expect).
//! Waiting for a lock is not socket I/O and is never masked.

/// The signals left deliverable: those the kernel raises for a fault of the
/// thread itself, which cannot wait.
const SYNCHRONOUS: [libc::c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
];

fn asynchronous_signals() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value (plain integers), and
    // sigfillset/sigdelset only write to that set, which we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for signal in SYNCHRONOUS {
            libc::sigdelset(&mut set, signal);
        }
        set
    }
}

/// Blocks asynchronous signals on this thread until dropped.
pub(crate) struct Masked {
    previous: libc::sigset_t,
}

/// Blocks asynchronous signals on the calling thread for the guard's life.
pub(crate) fn mask() -> Masked {
    let set = asynchronous_signals();
    // SAFETY: pthread_sigmask with valid set pointers; `previous` is written.
    unsafe {
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
        Masked { previous }
    }
}

impl Drop for Masked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `mask()` on the same thread
        // (the guard is not Send).
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

/// For the library's own threads: block asynchronous signals for good.
pub(crate) fn mask_for_this_thread() {
    std::mem::forget(mask());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(signal: libc::c_int) -> bool {
        // SAFETY: reads this thread's mask into a set we own.
        unsafe {
            let mut current: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
            libc::sigismember(&current, signal) == 1
        }
    }

    #[test]
    fn the_mask_covers_async_signals_only_and_is_restored() {
        std::thread::spawn(|| {
            assert!(!blocked(libc::SIGURG));
            {
                let _masked = mask();
                assert!(blocked(libc::SIGURG));
                assert!(blocked(libc::SIGINT));
                assert!(!blocked(libc::SIGSEGV));
            }
            assert!(!blocked(libc::SIGURG));
        })
        .join()
        .unwrap();
    }
}
