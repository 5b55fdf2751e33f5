//! `latchkey_semaphore`: a named semaphore whose permits are leases, and
//! taking permits of it (each hold is a `latchkey_guard`).

use std::ffi::{c_char, CStr};
use std::sync::Arc;

use super::args::{self, c_string, Out};
use super::boundary::call;
use super::cancel::latchkey_cancel;
use super::client::latchkey_client;
use super::error::{latchkey_error, Failure};
use super::guard::latchkey_guard;
use super::handles::{self, Handle, Kind};
use super::lock_options::latchkey_lock_options;
use super::status::latchkey_status;
use crate::{LockOptions, Semaphore};

/// A named semaphore: `size` permits, each hold taking one or more of them
/// as a lease of its own, renewed while held and reported when lost, and
/// given back when its holder dies and its lease ends.
///
/// Threads: fully thread-safe; share it between threads.
pub struct latchkey_semaphore {
    semaphore: Semaphore,
    name: Arc<CStr>,
}

impl Handle for latchkey_semaphore {
    const KIND: Kind = Kind::Semaphore;
}

/// Makes a handle for the semaphore `name` of `size` permits on `client`,
/// whose holds' leases have `options` (NULL for the defaults; reentrant
/// and fair are refused). Nothing is sent to Redis yet. The size is the
/// handle's: every attempt counts the permits in use against it, so
/// handles of one name should agree on it (holders above a smaller size
/// keep their permits until they release them).
///
/// Ownership: on success `*semaphore_out` is new; free it with
/// latchkey_semaphore_free. It keeps what it needs of `client` and
/// `options`: both may be freed before it.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
/// or `semaphore_out`; `name` empty, longer than 4096 bytes or not UTF-8;
/// `size` 0 or above 1000000; reentrant or fair options; an option out of
/// range; a Redlock client, on which semaphores are not sound);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `options` is NULL or a live options object; `semaphore_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_new(
    client: *const latchkey_client,
    name: *const c_char,
    size: u32,
    options: *const latchkey_lock_options,
    semaphore_out: *mut *mut latchkey_semaphore,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_semaphore_new", err_out, || {
        // SAFETY: `client`, `name`, `options` and `semaphore_out` keep the `# Safety`
        // contract above, all that these helpers rely on (see `args`).
        let (client, name, options, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                args::optional(options, "options")?,
                Out::new(semaphore_out, "semaphore_out")?,
            )
        };
        let options = options.map_or_else(LockOptions::new, latchkey_lock_options::to_options);
        let semaphore = client.client().semaphore_with(name, size, options)?;
        let name = Arc::from(c_string(semaphore.name()));
        out.write(handles::into_raw(latchkey_semaphore { semaphore, name }));
        Ok(())
    })
}

/// Frees a semaphore handle. NULL is ignored. Guards acquired through it
/// stay valid.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live semaphore: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `semaphore` is NULL or from latchkey_semaphore_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_free(
    semaphore: *mut latchkey_semaphore,
) -> latchkey_status {
    // SAFETY: `semaphore` keeps the `# Safety` contract above, all that `handles::free`
    // relies on (the registry refuses anything else).
    unsafe { handles::free("latchkey_semaphore_free", semaphore, "semaphore") }
}

/// Takes `permits` permits, waiting without polling (woken by releases)
/// for at most `timeout_ms` milliseconds: 0 makes one attempt
/// (LATCHKEY_TIMEOUT if too few are free), a negative value waits for
/// ever. If `cancel` is not NULL, triggering it from another thread ends
/// the wait with LATCHKEY_CANCELLED.
///
/// Ownership: on success `*guard_out` is a new guard for the permits;
/// release it with latchkey_guard_release and free it with
/// latchkey_guard_free (which releases it first if that was not done).
/// Every latchkey_guard_* call works on it as on a lock's guard.
/// Threads: any thread; any number at once.
/// Blocks: until taken, the timeout, cancellation, or a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (too few permits free at the
/// deadline, or too few replicas confirmed them); LATCHKEY_CANCELLED;
/// LATCHKEY_CLOSED (the client was closed, before or during the wait);
/// LATCHKEY_CONNECTION (Redis unreachable, or no answer within the command
/// timeout, through the deadline), LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL `semaphore` or `guard_out`; `permits` 0
/// or above the size); LATCHKEY_PANIC.
///
/// # Safety
/// `semaphore` is NULL or a live semaphore; `cancel` is NULL or a live
/// cancel handle not freed during the call; `guard_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_acquire(
    semaphore: *const latchkey_semaphore,
    permits: u32,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_semaphore_acquire", err_out, || {
        // SAFETY: `semaphore`, `cancel` and `guard_out` keep the `# Safety` contract above,
        // all that these helpers rely on (see `args`).
        let (semaphore, cancel, out) = unsafe {
            (
                args::borrow(semaphore, "semaphore")?,
                args::optional(cancel, "cancel")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        let guard = semaphore.semaphore.acquire_with(
            permits,
            args::timeout(timeout_ms),
            cancel.map(|c| c.token()),
        )?;
        out.write(latchkey_guard::new_raw(guard, semaphore.name.clone()));
        Ok(())
    })
}

/// One attempt to take `permits` permits, no waiting: LATCHKEY_TIMEOUT if
/// too few are free.
///
/// Ownership: as latchkey_semaphore_acquire.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (too few permits free);
/// LATCHKEY_CLOSED (the client was closed); LATCHKEY_CONNECTION (Redis
/// unreachable or no answer within the command timeout), LATCHKEY_SERVER,
/// LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (as latchkey_semaphore_acquire);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `semaphore` is NULL or a live semaphore; `guard_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_try_acquire(
    semaphore: *const latchkey_semaphore,
    permits: u32,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_semaphore_try_acquire", err_out, || {
        // SAFETY: `semaphore` and `guard_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (semaphore, out) = unsafe {
            (
                args::borrow(semaphore, "semaphore")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        match semaphore.semaphore.try_acquire(permits)? {
            Some(guard) => {
                out.write(latchkey_guard::new_raw(guard, semaphore.name.clone()));
                Ok(())
            }
            None => Err(Failure::new(
                latchkey_status::LATCHKEY_TIMEOUT,
                format!(
                    "semaphore '{}' has fewer than {permits} free permits",
                    semaphore.semaphore.name()
                ),
            )),
        }
    })
}

/// The permits free now, as this handle counts them (its size less the
/// permits in use; 0 when more are in use).
///
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
/// LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `semaphore` is NULL or a live semaphore; `available_out` and `err_out`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_available(
    semaphore: *const latchkey_semaphore,
    available_out: *mut u32,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_semaphore_available", err_out, || {
        // SAFETY: `semaphore` and `available_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (semaphore, out) = unsafe {
            (
                args::borrow(semaphore, "semaphore")?,
                Out::new(available_out, "available_out")?,
            )
        };
        out.write(semaphore.semaphore.available()?);
        Ok(())
    })
}

/// Takes every permit away from whoever holds it and wakes the waiters;
/// `*released_out` says whether any was held. The holders find their
/// leases lost at their next renewal. For operators.
///
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
/// LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `semaphore` is NULL or a live semaphore; `released_out` and `err_out`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_semaphore_force_release_all(
    semaphore: *const latchkey_semaphore,
    released_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_semaphore_force_release_all", err_out, || {
        // SAFETY: `semaphore` and `released_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (semaphore, out) = unsafe {
            (
                args::borrow(semaphore, "semaphore")?,
                Out::new(released_out, "released_out")?,
            )
        };
        out.write(semaphore.semaphore.force_release_all()?);
        Ok(())
    })
}
