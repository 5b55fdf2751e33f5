//! Starting the library's threads with `pthread_create`, not
//! `std::thread`.
//!
//! Why: std registers every thread it starts or ends in one process-wide
//! table behind a spin lock (the stack-overflow handler's thread info,
//! Rust 1.95). A fork while any other thread holds that lock, which every
//! `std::thread` start and exit takes for a moment, gives a child whose
//! copy of the lock is held for ever: the child's first `std::thread`
//! spawn spins without end. Measured here: 5 of 2,000 children hung in a
//! Rust host, 2 of 2,000 in a C host calling a cdylib, while two threads
//! of the parent started and ended threads; 0 of 4,000 with
//! `pthread_create`. So the library never takes that lock: its threads
//! neither hang in a child forked at a bad moment (the watchdog and the
//! release listener start in the child) nor, by starting and ending in the
//! parent, leave the lock held for a host's own children.
//!
//! A thread started here is a "foreign" thread to std, which std supports
//! (`thread::current()`, thread-locals and their destructors work); its
//! panics are reported by the panic hook and end the thread, never the
//! process.

use std::ffi::CString;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::sync::Mutex;

/// std's default for the threads it starts.
const STACK_SIZE: usize = 2 << 20;

/// The code a new thread runs.
type Run = Box<dyn FnOnce() + Send + 'static>;

/// What a new thread runs, with the name it gives itself.
struct Start {
    name: Option<CString>,
    run: Run,
}

extern "C" fn thread_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the Box<Start> that `start` leaked for this thread
    // alone; pthread_create succeeded, so nothing else reclaims it.
    let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
    if let Some(name) = &start.name {
        // SAFETY: names this thread with a NUL-terminated string of at most
        // 15 bytes (Linux's limit); a failure only leaves it unnamed.
        let _ = unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    }
    // A panic may not unwind out of an extern "C" function (the process
    // would abort); the panic hook has already reported it.
    let _ = catch_unwind(AssertUnwindSafe(start.run));
    std::ptr::null_mut()
}

/// A thread name as Linux keeps it: at most 15 bytes.
fn thread_name(name: &str) -> Option<CString> {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    CString::new(&name[..end]).ok()
}

/// Starts `run` on a new thread, joinable unless `detached`; gives `run`
/// back when no thread could be started.
fn start(name: &str, run: Run, detached: bool) -> Result<libc::pthread_t, (io::Error, Run)> {
    let start = Box::into_raw(Box::new(Start {
        name: thread_name(name),
        run,
    }));
    // SAFETY: the attribute object is initialised before use and destroyed
    // after; on success `thread_main` owns `start`, on failure no thread
    // saw it and it is reclaimed here exactly once.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut rc = libc::pthread_attr_init(&mut attr);
        if rc == 0 {
            // A refused size keeps the default one.
            let _ = libc::pthread_attr_setstacksize(&mut attr, STACK_SIZE);
            if detached {
                let _ = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            }
            let mut thread: libc::pthread_t = std::mem::zeroed();
            rc = libc::pthread_create(&mut thread, &attr, thread_main, start.cast());
            libc::pthread_attr_destroy(&mut attr);
            if rc == 0 {
                return Ok(thread);
            }
        }
        let start = Box::from_raw(start);
        Err((io::Error::from_raw_os_error(rc), start.run))
    }
}

/// Runs `run` on a thread of its own that nobody joins.
pub(crate) fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> io::Result<()> {
    start(name, Box::new(run), true)
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// Joins every thread it holds when dropped, panics included: the jobs of
/// [`in_parallel`] borrow from its caller's frame.
struct JoinAll(Vec<libc::pthread_t>);

impl Drop for JoinAll {
    fn drop(&mut self) {
        for thread in self.0.drain(..) {
            // SAFETY: each thread was started joinable and is joined once.
            unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
        }
    }
}

/// Runs `here` on this thread while each job runs on a thread of its own,
/// and returns once all have ended: `here`'s result and each job's, in
/// order (`None` for a job that panicked). Jobs may borrow from the
/// caller, as with `std::thread::scope`. A job that gets no thread runs on
/// this thread after `here`, so it runs either way.
pub(crate) fn in_parallel<'a, T, R, J>(
    name: &str,
    jobs: impl IntoIterator<Item = J>,
    here: impl FnOnce() -> R,
) -> (R, Vec<Option<T>>)
where
    T: Send + 'a,
    J: FnOnce() -> T + Send + 'a,
{
    let mut results: Vec<Arc<Mutex<Option<T>>>> = Vec::new();
    let mut started = JoinAll(Vec::new());
    let mut left_over: Vec<Run> = Vec::new();
    for job in jobs {
        let result = Arc::new(Mutex::new(None));
        results.push(Arc::clone(&result));
        let run: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
            let value = job();
            *result.lock() = Some(value);
        });
        // SAFETY: only the lifetime changes. Every thread started with
        // `run` is joined before this function returns or unwinds
        // (`started` is dropped on every path out of it), and a job left
        // over runs or is dropped in this frame, so nothing it borrows ends
        // while it may still run.
        let run = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Run>(run) };
        match start(name, run, false) {
            Ok(thread) => started.0.push(thread),
            Err((_, run)) => left_over.push(run),
        }
    }
    let mine = here();
    for run in left_over {
        // A panic here is the job's own: its result stays `None`.
        let _ = catch_unwind(AssertUnwindSafe(run));
    }
    drop(started);
    let results = results
        .into_iter()
        .map(|result| result.lock().take())
        .collect();
    (mine, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_spawned_thread_runs_with_its_name() {
        let (tx, rx) = mpsc::channel();
        spawn("latchkey-test-thread-name", move || {
            let mut name = [0 as libc::c_char; 16];
            // SAFETY: reads this thread's name into a buffer of Linux's
            // maximum size.
            unsafe { libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr(), 16) };
            // SAFETY: the buffer is NUL-terminated by pthread_getname_np.
            let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
            tx.send(name.to_string_lossy().into_owned()).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), "latchkey-test-t");
    }

    #[test]
    fn in_parallel_returns_every_result_in_order_and_borrows() {
        let borrowed = [10, 20, 30];
        let (mine, theirs) = in_parallel(
            "latchkey-test",
            borrowed.iter().map(|n| move || n + 1),
            || borrowed.len(),
        );
        assert_eq!(mine, 3);
        assert_eq!(theirs, vec![Some(11), Some(21), Some(31)]);
    }

    #[test]
    fn a_panicking_job_gives_none_and_the_others_their_results() {
        let (_, results) = in_parallel(
            "latchkey-test",
            [0, 1, 2].map(|i| {
                move || {
                    assert!(i != 1, "job 1 panics on purpose");
                    i
                }
            }),
            || (),
        );
        assert_eq!(results, vec![Some(0), None, Some(2)]);
    }

    #[test]
    fn names_are_cut_to_fifteen_bytes_on_a_character_boundary() {
        assert_eq!(
            thread_name("latchkey-watchdog").unwrap().as_bytes(),
            b"latchkey-watchd"
        );
        assert_eq!(thread_name("ééééééééé").unwrap().as_bytes().len(), 14);
        assert!(thread_name("a\0b").is_none());
    }

    /// The defect this module exists for. With `std::thread::spawn` in the
    /// child instead of `spawn`/`in_parallel`, some of these children spin
    /// for ever (seen: 3 of 600 on this 2-core VM); the parent's churning
    /// threads stand for a host's threads, or the test harness's, starting
    /// and ending at the moment of a fork.
    #[test]
    fn children_forked_while_other_threads_start_and_end_start_threads_of_their_own() {
        let stop = Arc::new(AtomicBool::new(false));
        let churners: Vec<_> = (0..2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::spawn(|| {}).join().unwrap();
                    }
                })
            })
            .collect();
        let mut hung = 0;
        for _ in 0..600 {
            // SAFETY: the child starts threads with this module only, uses
            // values of its own and leaves with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let (tx, rx) = mpsc::channel();
                let detached = spawn("child", move || tx.send(1).unwrap_or(())).is_ok();
                let (here, joined) = in_parallel("child", [|| 2], || 3);
                let ok = detached && rx.recv() == Ok(1) && joined == vec![Some(2)] && here == 3;
                // SAFETY: ends the child without the parent's exit handlers.
                unsafe { libc::_exit(i32::from(!ok)) };
            }
            let started = Instant::now();
            let mut status = 0;
            loop {
                // SAFETY: waits for our own child.
                if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "a forked child failed: {status}"
                    );
                    break;
                }
                // Generous: a healthy child ends in about a millisecond,
                // a hung one never does.
                if started.elapsed() > Duration::from_secs(30) {
                    hung += 1;
                    // SAFETY: kills and reaps our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for churner in churners {
            churner.join().unwrap();
        }
        assert_eq!(hung, 0, "children forked at a bad moment hung");
    }
}
