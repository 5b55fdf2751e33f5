//! `latchkey_lock`: a named lock, and acquiring it.

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
use crate::{Lock, LockOptions};

/// A named distributed lock.
///
/// Threads: fully thread-safe; share it between threads, or make one per
/// thread. For a reentrant lock the handle is the owner: two handles for the
/// same name exclude each other, one handle may nest (whatever the thread).
pub struct latchkey_lock {
    lock: Lock,
    name: Arc<CStr>,
}

impl Handle for latchkey_lock {
    const KIND: Kind = Kind::Lock;
}

/// Makes a handle for the lock `name` on `client`, with `options` (NULL for
/// the defaults). Nothing is sent to Redis yet.
///
/// Ownership: on success `*lock_out` is new; free it with
/// latchkey_lock_free. It keeps what it needs of `client` and `options`:
/// both may be freed before it.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name` or
/// `lock_out`; `name` empty, longer than 4096 bytes or not UTF-8; an option
/// out of range, such as a ttl of 0); LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `options` is NULL or a live options object; `lock_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_new(
    client: *const latchkey_client,
    name: *const c_char,
    options: *const latchkey_lock_options,
    lock_out: *mut *mut latchkey_lock,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_new", err_out, || {
        // SAFETY: `client`, `name`, `options` and `lock_out` keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (client, name, options, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                args::optional(options, "options")?,
                Out::new(lock_out, "lock_out")?,
            )
        };
        let options = options.map_or_else(LockOptions::new, latchkey_lock_options::to_options);
        let lock = client.client().lock_with(name, options)?;
        let name = Arc::from(c_string(lock.name()));
        out.write(handles::into_raw(latchkey_lock { lock, name }));
        Ok(())
    })
}

/// Frees a lock handle. NULL is ignored. Guards acquired through it stay
/// valid.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live lock: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `lock` is NULL or from latchkey_lock_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_free(lock: *mut latchkey_lock) -> latchkey_status {
    // SAFETY: `lock` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_lock_free", lock, "lock") }
}

/// The lock's name.
///
/// Ownership: `*name_out` belongs to the lock; valid until
/// latchkey_lock_free.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `lock` is NULL or a live lock; `name_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_name(
    lock: *const latchkey_lock,
    name_out: *mut *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_name", err_out, || {
        // SAFETY: `lock` and `name_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (lock, out) = unsafe { (args::borrow(lock, "lock")?, Out::new(name_out, "name_out")?) };
        out.write(lock.name.as_ptr());
        Ok(())
    })
}

/// Acquires the lock, waiting without polling (woken by the holder's
/// release) for at most `timeout_ms` milliseconds: 0 makes one attempt
/// (LATCHKEY_TIMEOUT if the lock is held, or was just released to a waiter
/// that is taking it over), a negative value waits for ever. If `cancel` is
/// not NULL, triggering it from another thread ends the wait with
/// LATCHKEY_CANCELLED (at once if it is already triggered).
///
/// Ownership: on success `*guard_out` is a new guard; release it with
/// latchkey_guard_release and free it with latchkey_guard_free (which
/// releases it first if that was not done).
/// Threads: any thread; any number of threads may acquire through one
/// handle at once.
/// Blocks: until acquired, the timeout, cancellation, or a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (still held by another owner at
/// the deadline, or too few replicas confirmed it); LATCHKEY_CANCELLED;
/// LATCHKEY_CLOSED (the client was closed, before or during the wait);
/// LATCHKEY_CONNECTION (Redis unreachable, or no answer within the command
/// timeout, through the deadline), LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_NO_QUORUM (Redlock: too few masters answered);
/// LATCHKEY_INVALID_ARGUMENT (NULL `lock` or `guard_out`, the URL's
/// database does not exist); LATCHKEY_PANIC.
///
/// # Safety
/// `lock` is NULL or a live lock; `cancel` is NULL or a live cancel handle
/// not freed during the call; `guard_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_acquire(
    lock: *const latchkey_lock,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_acquire", err_out, || {
        // SAFETY: `lock`, `cancel` and `guard_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (lock, cancel, out) = unsafe {
            (
                args::borrow(lock, "lock")?,
                args::optional(cancel, "cancel")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        let guard = lock
            .lock
            .acquire_with(args::timeout(timeout_ms), cancel.map(|c| c.token()))?;
        out.write(latchkey_guard::new_raw(guard, lock.name.clone()));
        Ok(())
    })
}

/// One attempt, no waiting, that may also take the lock while it is being
/// handed over to a woken waiter (unlike latchkey_lock_acquire with a
/// timeout of 0): LATCHKEY_TIMEOUT if someone else holds it.
///
/// Ownership: as latchkey_lock_acquire.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (held by another owner);
/// LATCHKEY_CLOSED (the client was closed);
/// LATCHKEY_CONNECTION (Redis unreachable or no answer within the command
/// timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM (Redlock:
/// too few masters answered); LATCHKEY_INVALID_ARGUMENT (NULL `lock` or
/// `guard_out`, the URL's database does not exist); LATCHKEY_PANIC.
///
/// # Safety
/// `lock` is NULL or a live lock; `guard_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_try_acquire(
    lock: *const latchkey_lock,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_try_acquire", err_out, || {
        // SAFETY: `lock` and `guard_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (lock, out) = unsafe {
            (
                args::borrow(lock, "lock")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        match lock.lock.try_acquire()? {
            Some(guard) => {
                out.write(latchkey_guard::new_raw(guard, lock.name.clone()));
                Ok(())
            }
            None => Err(Failure::new(
                latchkey_status::LATCHKEY_TIMEOUT,
                format!("lock '{}' is held by another owner", lock.lock.name()),
            )),
        }
    })
}
