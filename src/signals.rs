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
//!
//! A forked child's one thread is a copy of the thread that called fork,
//! signal mask included. When that thread was a library thread (a callback
//! that forks) or inside a masked round trip, a pthread_atfork handler
//! gives the child the mask the host had instead (for a library thread:
//! none of the signals the library blocks), so the child, and any program
//! it execs, gets its signals. The host's own code that runs on a library
//! thread (lost-lease callbacks) runs with the mask the host had on the
//! thread that started it ([`as_host`]): vfork and posix_spawn run no fork
//! handler, and a thread or program started there inherits that mask.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Once;

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

thread_local! {
    /// How many [`Masked`] guards this thread holds, and the mask the
    /// outermost one found. Only the outermost guard changes the mask, so a
    /// round trip masked by its caller (Redlock, Cluster) costs no system
    /// call in the node code below it, and guards may end in any order.
    static MASKS: Cell<(usize, libc::sigset_t)> = const {
        // SAFETY: an all-zero sigset_t is a valid value (plain integers);
        // it is overwritten before it is ever read.
        Cell::new((0, unsafe { std::mem::zeroed() }))
    };
}

/// Blocks asynchronous signals on this thread until dropped (until the
/// last guard of this thread is dropped, when guards nest).
pub(crate) struct Masked {
    /// Not `Send`: the guard belongs to the thread whose mask it holds.
    _thread: PhantomData<*const ()>,
}

/// Blocks asynchronous signals on the calling thread for the guard's life.
/// Nested guards are free: only the outermost one changes the mask.
pub(crate) fn mask() -> Masked {
    MASKS.with(|masks| {
        let (depth, previous) = masks.get();
        if depth > 0 {
            masks.set((depth + 1, previous));
            return;
        }
        register_fork_handler();
        let set = asynchronous_signals();
        // SAFETY: pthread_sigmask with valid set pointers; `previous` is written.
        let previous = unsafe {
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            previous
        };
        masks.set((1, previous));
    });
    Masked {
        _thread: PhantomData,
    }
}

impl Drop for Masked {
    fn drop(&mut self) {
        // `try_with`: a guard dropped while the thread's locals are torn
        // down leaves the mask as it is (the thread is ending).
        let _ = MASKS.try_with(|masks| {
            let (depth, previous) = masks.get();
            masks.set((depth.saturating_sub(1), previous));
            if depth == 1 {
                // SAFETY: restores the mask the outermost guard saved on
                // this thread (the guard is not Send).
                unsafe {
                    libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut())
                };
            }
        });
    }
}

/// For the library's own threads: block asynchronous signals for good.
/// Such a thread has no host mask to go back to: a child forked on it
/// starts with none of the library's signals blocked.
pub(crate) fn mask_for_this_thread() {
    std::mem::forget(mask());
    MASKS.with(|masks| {
        let (depth, mut previous) = masks.get();
        let library = asynchronous_signals();
        for signal in 1..libc::SIGRTMAX() {
            // SAFETY: sigismember/sigdelset read `library` and write
            // `previous`, both sets we own; an invalid number is refused.
            unsafe {
                if libc::sigismember(&library, signal) == 1 {
                    libc::sigdelset(&mut previous, signal);
                }
            }
        }
        masks.set((depth, previous));
    });
}

/// Like [`mask_for_this_thread`], for a library thread that runs the
/// host's code (lost-lease callbacks): `host` is the mask the host had on
/// the thread that started it ([`host_mask`]), restored while that code
/// runs ([`as_host`]) and given to a child forked on this thread.
pub(crate) fn mask_for_this_thread_of(host: libc::sigset_t) {
    std::mem::forget(mask());
    MASKS.with(|masks| {
        let (depth, _) = masks.get();
        masks.set((depth, host));
    });
}

/// The mask the host has on this thread: what the library's outermost
/// guard found, or the thread's mask when the library blocked nothing.
pub(crate) fn host_mask() -> libc::sigset_t {
    let (depth, previous) = MASKS.with(Cell::get);
    if depth > 0 {
        return previous;
    }
    // SAFETY: reads this thread's mask into a set we own.
    unsafe {
        let mut current: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
        current
    }
}

/// Runs the host's code (a user callback) with the host's signal mask
/// instead of the library's: a thread it starts, or a program it spawns
/// (posix_spawn, vfork, popen and Python's subprocess run no fork
/// handler), inherits the host's mask, not every signal blocked.
pub(crate) fn as_host<R>(code: impl FnOnce() -> R) -> R {
    let (depth, host) = MASKS.with(Cell::get);
    if depth == 0 {
        return code();
    }
    /// Puts the library's mask and bookkeeping back, panic or not.
    struct Back {
        depth: usize,
        host: libc::sigset_t,
        library: libc::sigset_t,
    }
    impl Drop for Back {
        fn drop(&mut self) {
            // SAFETY: restores this thread's mask from a set we own.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.library, std::ptr::null_mut())
            };
            let _ = MASKS.try_with(|masks| masks.set((self.depth, self.host)));
        }
    }
    // SAFETY: sets this thread's mask to the host's and saves the current
    // (library) one into a set we own.
    let library = unsafe {
        let mut library: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &host, &mut library);
        library
    };
    // Library calls made by the code mask and unmask from the host's mask.
    MASKS.with(|masks| masks.set((0, host)));
    let _back = Back {
        depth,
        host,
        library,
    };
    code()
}

fn register_fork_handler() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only reads and writes this
        // thread's MASKS (no allocation: a const-initialised Cell) and
        // calls pthread_sigmask, both async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(unmask_in_forked_child)) };
    });
}

/// Runs in a forked child: if the library had blocked signals on the
/// forking thread, the child (which is that thread) gets back the mask the
/// host had. Guards inherited from the parent then change nothing.
extern "C" fn unmask_in_forked_child() {
    let _ = MASKS.try_with(|masks| {
        let (depth, previous) = masks.get();
        if depth > 0 {
            masks.set((0, previous));
            // SAFETY: sets this thread's mask from a set we own.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
        }
    });
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

    /// Forks on this thread and returns whether the child's first (only)
    /// thread had SIGURG, SIGINT or SIGTERM blocked.
    fn child_starts_blocked() -> bool {
        // SAFETY: the child only calls pthread_sigmask, sigismember and
        // _exit (async-signal-safe) before it exits.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let any = blocked(libc::SIGURG) || blocked(libc::SIGINT) || blocked(libc::SIGTERM);
                libc::_exit(i32::from(any));
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
            libc::WEXITSTATUS(status) == 1
        }
    }

    // Before the atfork handler, both children below started with every
    // asynchronous signal blocked (a callback on the renewal thread that
    // forks a helper gave it, and whatever it execs, a deaf process).
    #[test]
    fn a_child_forked_inside_a_masked_call_gets_the_hosts_mask() {
        std::thread::spawn(|| {
            let _masked = mask();
            assert!(blocked(libc::SIGURG));
            assert!(
                !child_starts_blocked(),
                "the child inherited the library's mask"
            );
            assert!(blocked(libc::SIGURG), "the parent's thread stays masked");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_child_forked_on_a_library_thread_starts_with_nothing_blocked() {
        std::thread::spawn(|| {
            mask_for_this_thread();
            let _nested = mask();
            assert!(
                !child_starts_blocked(),
                "the child inherited the library's mask"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn host_code_on_a_library_thread_runs_with_the_hosts_mask() {
        // SAFETY: a set we own, filled with SIGUSR1 only.
        let host = unsafe {
            let mut host: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut host);
            libc::sigaddset(&mut host, libc::SIGUSR1);
            host
        };
        std::thread::spawn(move || {
            mask_for_this_thread_of(host);
            assert!(blocked(libc::SIGTERM));
            as_host(|| {
                assert!(
                    !blocked(libc::SIGTERM),
                    "host code runs with the library's mask"
                );
                assert!(blocked(libc::SIGUSR1), "the host's own blocking is kept");
                drop(mask());
                assert!(!blocked(libc::SIGTERM));
                let spawned = std::thread::spawn(|| blocked(libc::SIGTERM))
                    .join()
                    .unwrap();
                assert!(
                    !spawned,
                    "a thread host code starts inherits the library's mask"
                );
            });
            assert!(blocked(libc::SIGTERM), "the library thread is masked again");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn nested_masks_end_with_the_last_guard_in_any_order() {
        std::thread::spawn(|| {
            let outer = mask();
            let inner = mask();
            drop(outer);
            assert!(blocked(libc::SIGURG), "an inner guard still holds the mask");
            drop(inner);
            assert!(!blocked(libc::SIGURG));
            mask_for_this_thread();
            drop(mask());
            assert!(blocked(libc::SIGURG), "a library thread stays masked");
        })
        .join()
        .unwrap();
    }
}
