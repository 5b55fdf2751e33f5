//! `latchkey_multi_lock`: several locks taken all together or not at all,
//! and `latchkey_multi_guard`, the proof that all are held.

use std::ffi::c_char;

use crate::sync::RwLock;

use super::args::{self, Out};
use super::boundary::call;
use super::cancel::latchkey_cancel;
use super::client::latchkey_client;
use super::error::{latchkey_error, Failure};
use super::handles::{self, Handle, Kind};
use super::lock_options::latchkey_lock_options;
use super::status::latchkey_status;
use crate::{LockOptions, MultiGuard, MultiLock};

/// Several named locks, taken all together or not at all, in the order of
/// their names' bytes (so multi-locks of overlapping sets never deadlock).
///
/// Threads: fully thread-safe; share it between threads.
pub struct latchkey_multi_lock {
    multi: MultiLock,
}

impl Handle for latchkey_multi_lock {
    const KIND: Kind = Kind::MultiLock;
}

/// Proof that every lock of a multi-lock is held. Losing any one lease
/// loses the whole (latchkey_multi_guard_check says LATCHKEY_LOST).
///
/// Threads: thread-safe, as latchkey_guard; latchkey_multi_guard_free must
/// be the last call on it.
pub struct latchkey_multi_guard {
    /// `None` once released.
    guard: RwLock<Option<MultiGuard>>,
    fencing_tokens: Vec<u64>,
}

impl Handle for latchkey_multi_guard {
    const KIND: Kind = Kind::MultiGuard;
}

impl latchkey_multi_guard {
    fn new_raw(guard: MultiGuard) -> *mut latchkey_multi_guard {
        let fencing_tokens = guard.guards().iter().map(|g| g.fencing_token()).collect();
        handles::into_raw(latchkey_multi_guard {
            guard: RwLock::new(Some(guard)),
            fencing_tokens,
        })
    }

    fn released() -> Failure {
        Failure::new(
            latchkey_status::LATCHKEY_NOT_HELD,
            "the multi-lock's guard was already released",
        )
    }
}

/// Makes a multi-lock over the `count` names in `names` (duplicates count
/// once), each lock with `options` (NULL for the defaults; reentrant is
/// refused). Nothing is sent to Redis yet.
///
/// Ownership: on success `*multi_out` is new; free it with
/// latchkey_multi_lock_free. The names and options are only read during
/// the call.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `names`
/// or `multi_out`; 0 or more than 1024 names; a NULL, empty, non-UTF-8 or
/// too long name; reentrant options, an option out of range);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `names` is NULL or points to `count`
/// pointers, each NULL or a NUL-terminated string; `options` is NULL or a
/// live options object; `multi_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_lock_new(
    client: *const latchkey_client,
    names: *const *const c_char,
    count: usize,
    options: *const latchkey_lock_options,
    multi_out: *mut *mut latchkey_multi_lock,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_lock_new", err_out, || {
        // SAFETY: `client`, `names`, `options` and `multi_out` keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (client, names, options, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::strings(names, count, "names")?,
                args::optional(options, "options")?,
                Out::new(multi_out, "multi_out")?,
            )
        };
        if names.is_empty() {
            return Err(Failure::invalid("a multi-lock needs at least one name"));
        }
        let options = options.map_or_else(LockOptions::new, latchkey_lock_options::to_options);
        let multi = client.client().multi_lock_with(&names, options)?;
        out.write(handles::into_raw(latchkey_multi_lock { multi }));
        Ok(())
    })
}

/// Frees a multi-lock. NULL is ignored. Guards acquired through it stay
/// valid.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live multi-lock; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `multi` is NULL or from latchkey_multi_lock_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_lock_free(
    multi: *mut latchkey_multi_lock,
) -> latchkey_status {
    // SAFETY: `multi` keeps the `# Safety` contract above, all that `handles::free` relies
    // on (the registry refuses anything else).
    unsafe { handles::free("latchkey_multi_lock_free", multi, "multi-lock") }
}

/// Takes every lock, waiting without polling for at most `timeout_ms`
/// milliseconds in all (0: one attempt per lock; negative: for ever). If
/// `cancel` is not NULL, triggering it ends the wait with
/// LATCHKEY_CANCELLED. Whatever the failure, no lock stays held.
///
/// Ownership: on success `*guard_out` is new; release it with
/// latchkey_multi_guard_release and free it with latchkey_multi_guard_free
/// (which releases it first if that was not done).
/// Threads: any thread. Blocks: until all are held, the timeout,
/// cancellation, or a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (a lock stayed held by another
/// owner); LATCHKEY_CANCELLED; LATCHKEY_CLOSED; LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM (Redlock);
/// LATCHKEY_INVALID_ARGUMENT (NULL `multi` or `guard_out`); LATCHKEY_PANIC.
///
/// # Safety
/// `multi` is NULL or a live multi-lock; `cancel` is NULL or a live cancel
/// handle not freed during the call; `guard_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_lock_acquire(
    multi: *const latchkey_multi_lock,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_multi_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_lock_acquire", err_out, || {
        // SAFETY: `multi`, `cancel` and `guard_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (multi, cancel, out) = unsafe {
            (
                args::borrow(multi, "multi")?,
                args::optional(cancel, "cancel")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        let guard = multi
            .multi
            .acquire_with(args::timeout(timeout_ms), cancel.map(|c| c.token()))?;
        out.write(latchkey_multi_guard::new_raw(guard));
        Ok(())
    })
}

/// One attempt per lock, no waiting: LATCHKEY_TIMEOUT (holding none) if any
/// is held by someone else.
///
/// Ownership: as latchkey_multi_lock_acquire.
/// Threads: any thread. Blocks: for one Redis round trip per lock.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
/// (Redlock); LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
///
/// # Safety
/// `multi` is NULL or a live multi-lock; `guard_out` and `err_out` are NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_lock_try_acquire(
    multi: *const latchkey_multi_lock,
    guard_out: *mut *mut latchkey_multi_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_lock_try_acquire", err_out, || {
        // SAFETY: `multi` and `guard_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (multi, out) = unsafe {
            (
                args::borrow(multi, "multi")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        match multi.multi.try_acquire()? {
            Some(guard) => {
                out.write(latchkey_multi_guard::new_raw(guard));
                Ok(())
            }
            None => Err(Failure::new(
                latchkey_status::LATCHKEY_TIMEOUT,
                format!(
                    "a lock of {:?} is held by another owner",
                    multi.multi.names()
                ),
            )),
        }
    })
}

/// How many locks the guard holds (the distinct names).
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `count_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_count(
    guard: *const latchkey_multi_guard,
    count_out: *mut usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_count", err_out, || {
        // SAFETY: `guard` and `count_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (guard, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(count_out, "count_out")?,
            )
        };
        out.write(guard.fencing_tokens.len());
        Ok(())
    })
}

/// The fencing token of lock number `index` (0 to count - 1), in the
/// order of the names' bytes; readable after release, until free.
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `index`
/// out of range); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `token_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_fencing_token(
    guard: *const latchkey_multi_guard,
    index: usize,
    token_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_fencing_token", err_out, || {
        // SAFETY: `guard` and `token_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (guard, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(token_out, "token_out")?,
            )
        };
        let token = guard.fencing_tokens.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is out of range: the multi-lock holds {} locks",
                guard.fencing_tokens.len()
            ))
        })?;
        out.write(*token);
        Ok(())
    })
}

/// Whether any lease is lost (true also once released).
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `lost_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_lost(
    guard: *const latchkey_multi_guard,
    lost_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_lost", err_out, || {
        // SAFETY: `guard` and `lost_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(lost_out, "lost_out")?,
            )
        };
        out.write(handle.guard.read().as_ref().is_none_or(MultiGuard::lost));
        Ok(())
    })
}

/// How many milliseconds every lease is certainly still held (the least
/// of them, on this machine's monotonic clock); 0 once any is lost or the
/// guard released.
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `remaining_ms_out` and `err_out`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_remaining_ms(
    guard: *const latchkey_multi_guard,
    remaining_ms_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_remaining_ms", err_out, || {
        // SAFETY: `guard` and `remaining_ms_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(remaining_ms_out, "remaining_ms_out")?,
            )
        };
        let remaining = handle.guard.read().as_ref().map(MultiGuard::remaining);
        out.write(remaining.map_or(0, args::millis));
        Ok(())
    })
}

/// LATCHKEY_OK while every lease is held; LATCHKEY_LOST once any is lost
/// (the message names the lock); LATCHKEY_NOT_HELD once released or
/// ended by a close.
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_LOST; LATCHKEY_NOT_HELD;
/// LATCHKEY_INVALID_ARGUMENT (`guard` NULL or not live); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_check(
    guard: *const latchkey_multi_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_check", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that this helper relies
        // on (see `args`).
        let handle = unsafe { args::borrow(guard, "guard") }?;
        match handle.guard.read().as_ref() {
            Some(guard) => Ok(guard.check()?),
            None => Err(latchkey_multi_guard::released()),
        }
    })
}

/// Releases every lock, the last taken first. LATCHKEY_NOT_HELD if a lease
/// had been lost (every other lock is released all the same) or the guard
/// was already released. After any outcome the guard counts as released.
///
/// Threads: any thread. Blocks: for one Redis round trip per lock.
/// Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD; LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed: those
/// locks expire at the end of their ttl); LATCHKEY_INVALID_ARGUMENT
/// (`guard` NULL or not live); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live multi-guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_release(
    guard: *mut latchkey_multi_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_multi_guard_release", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that this helper relies
        // on (see `args`).
        let handle = unsafe { args::borrow(guard.cast_const(), "guard") }?;
        let taken = handle.guard.write().take();
        match taken {
            Some(guard) => Ok(guard.release()?),
            None => Err(latchkey_multi_guard::released()),
        }
    })
}

/// Frees a multi-guard. NULL is ignored. If it was not released, every
/// lock is released first, best effort.
///
/// Threads: any thread, once, as the last call on this guard.
/// Blocks: for one Redis round trip per lock if it was not released.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live multi-guard; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or from a multi-lock acquire, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_multi_guard_free(
    guard: *mut latchkey_multi_guard,
) -> latchkey_status {
    // SAFETY: `guard` keeps the `# Safety` contract above, all that `handles::free` relies
    // on (the registry refuses anything else).
    unsafe { handles::free("latchkey_multi_guard_free", guard, "multi-guard") }
}
