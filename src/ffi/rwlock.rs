//! `latchkey_rwlock`: a read-write lock. Every hold (a reader's or the
//! writer's) is a `latchkey_guard`, so every latchkey_guard_* call works
//! on it.

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
use crate::{Guard, LockOptions, RwLock};

/// A named read-write lock: any number of readers, or one writer; a
/// waiting writer stops new readers (writer preference); each hold has its
/// own lease. Not reentrant.
///
/// Threads: fully thread-safe; share it between threads.
pub struct latchkey_rwlock {
    rwlock: RwLock,
    name: Arc<CStr>,
}

impl Handle for latchkey_rwlock {
    const KIND: Kind = Kind::RwLock;
}

/// Makes a handle for the read-write lock `name` on `client`; every
/// hold's lease has `options` (NULL for the defaults; reentrant and fair
/// are refused). Nothing is sent to Redis yet.
///
/// Ownership: on success `*rwlock_out` is new; free it with
/// latchkey_rwlock_free. It keeps what it needs of `client` and `options`.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
/// or `rwlock_out`; `name` empty, longer than 4096 bytes or not UTF-8;
/// reentrant or fair options, an option out of range; a Redlock client);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `options` is NULL or a live options object; `rwlock_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_new(
    client: *const latchkey_client,
    name: *const c_char,
    options: *const latchkey_lock_options,
    rwlock_out: *mut *mut latchkey_rwlock,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_rwlock_new", err_out, || {
        // SAFETY: `client`, `name`, `options` and `rwlock_out` keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (client, name, options, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                args::optional(options, "options")?,
                Out::new(rwlock_out, "rwlock_out")?,
            )
        };
        let options = options.map_or_else(LockOptions::new, latchkey_lock_options::to_options);
        let rwlock = client.client().rwlock_with(name, options)?;
        let name = Arc::from(c_string(rwlock.name()));
        out.write(handles::into_raw(latchkey_rwlock { rwlock, name }));
        Ok(())
    })
}

/// Frees a read-write lock handle. NULL is ignored. Guards acquired
/// through it stay valid.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live read-write lock; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `rwlock` is NULL or from latchkey_rwlock_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_free(rwlock: *mut latchkey_rwlock) -> latchkey_status {
    // SAFETY: `rwlock` keeps the `# Safety` contract above, all that `handles::free` relies
    // on (the registry refuses anything else).
    unsafe { handles::free("latchkey_rwlock_free", rwlock, "read-write lock") }
}

/// The shared body of the acquire calls: `take` makes the hold.
///
/// # Safety
/// As the calls that use it.
unsafe fn acquire(
    function: &'static str,
    rwlock: *const latchkey_rwlock,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
    take: impl FnOnce(&RwLock, Option<&crate::CancelToken>) -> crate::Result<Option<Guard>>,
) -> latchkey_status {
    call(function, err_out, || {
        // SAFETY: `rwlock`, `cancel` and `guard_out` keep our caller's `# Safety` contract,
        // all that these helpers rely on (see `args`).
        let (rwlock, cancel, out) = unsafe {
            (
                args::borrow(rwlock, "rwlock")?,
                args::optional(cancel, "cancel")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        match take(&rwlock.rwlock, cancel.map(|c| c.token()))? {
            Some(guard) => {
                out.write(latchkey_guard::new_raw(guard, rwlock.name.clone()));
                Ok(())
            }
            None => Err(Failure::new(
                latchkey_status::LATCHKEY_TIMEOUT,
                format!(
                    "read-write lock '{}' is not available",
                    rwlock.rwlock.name()
                ),
            )),
        }
    })
}

/// Takes a read lease, waiting without polling for at most `timeout_ms`
/// milliseconds (0: one attempt; negative: for ever) while a writer holds
/// or waits for the lock. If `cancel` is not NULL, triggering it ends the
/// wait with LATCHKEY_CANCELLED.
///
/// Ownership: on success `*guard_out` is a new guard for the read lease;
/// release it with latchkey_guard_release, free it with
/// latchkey_guard_free.
/// Threads: any thread. Blocks: until held, the timeout, cancellation, or
/// a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (a writer held or waited
/// throughout, or too few replicas confirmed); LATCHKEY_CANCELLED;
/// LATCHKEY_CLOSED; LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL `rwlock` or `guard_out`);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `rwlock` is NULL or a live read-write lock; `cancel` is NULL or a live
/// cancel handle not freed during the call; `guard_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_read(
    rwlock: *const latchkey_rwlock,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    // SAFETY: our caller keeps the `# Safety` contract above, which `acquire` needs.
    unsafe {
        acquire(
            "latchkey_rwlock_read",
            rwlock,
            cancel,
            guard_out,
            err_out,
            |lock, cancel| lock.read_with(args::timeout(timeout_ms), cancel).map(Some),
        )
    }
}

/// Takes the lock for writing (no reader, no other writer), waiting as
/// latchkey_rwlock_read does; a waiting writer stops new readers.
///
/// Ownership: as latchkey_rwlock_read.
/// Threads: any thread. Blocks: as latchkey_rwlock_read.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (readers or a writer held it
/// throughout, or too few replicas confirmed); LATCHKEY_CANCELLED;
/// LATCHKEY_CLOSED; LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL `rwlock` or `guard_out`);
/// LATCHKEY_PANIC.
///
/// # Safety
/// As latchkey_rwlock_read.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_write(
    rwlock: *const latchkey_rwlock,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    // SAFETY: our caller keeps the `# Safety` contract above, which `acquire` needs.
    unsafe {
        acquire(
            "latchkey_rwlock_write",
            rwlock,
            cancel,
            guard_out,
            err_out,
            |lock, cancel| lock.write_with(args::timeout(timeout_ms), cancel).map(Some),
        )
    }
}

/// One attempt at a read lease: LATCHKEY_TIMEOUT if a writer holds or
/// waits for the lock.
///
/// Ownership: as latchkey_rwlock_read.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
///
/// # Safety
/// `rwlock` is NULL or a live read-write lock; `guard_out` and `err_out`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_try_read(
    rwlock: *const latchkey_rwlock,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    // SAFETY: our caller keeps the `# Safety` contract above; no cancel handle is passed.
    unsafe {
        acquire(
            "latchkey_rwlock_try_read",
            rwlock,
            std::ptr::null(),
            guard_out,
            err_out,
            |lock, _| lock.try_read(),
        )
    }
}

/// One attempt at the write lock: LATCHKEY_TIMEOUT if readers or a writer
/// hold it.
///
/// Ownership: as latchkey_rwlock_read.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
///
/// # Safety
/// As latchkey_rwlock_try_read.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_try_write(
    rwlock: *const latchkey_rwlock,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    // SAFETY: our caller keeps the `# Safety` contract above; no cancel handle is passed.
    unsafe {
        acquire(
            "latchkey_rwlock_try_write",
            rwlock,
            std::ptr::null(),
            guard_out,
            err_out,
            |lock, _| lock.try_write(),
        )
    }
}

/// Turns the write hold `writer` into a read hold, atomically: no other
/// writer comes in between (waiting readers come in with it, unless a
/// writer waits too: that writer goes next). On success `*reader_out` is
/// a new guard for the read hold, and `writer` reads as released (its
/// tokens stay readable; release it no more, free it).
///
/// Ownership: `*reader_out` as latchkey_rwlock_read's guard; `writer` is
/// still the caller's to free.
/// Threads: any thread. Blocks: for one Redis round trip (other calls on
/// `writer` wait for it).
/// Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the write hold was lost or
/// already released; nothing changes); LATCHKEY_TIMEOUT (wait-for-replicas:
/// too few replicas confirmed the downgrade; both holds are given back in
/// the background, and `writer` reads as released); LATCHKEY_CLOSED
/// (the client of `rwlock` was closed: nothing changes); LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH (the outcome is unknown: both holds are
/// given back in the background, and `writer` reads as released);
/// LATCHKEY_INVALID_ARGUMENT (NULL argument; `writer` is not a write hold
/// of `rwlock`: nothing changes); LATCHKEY_PANIC.
///
/// # Safety
/// `rwlock` is NULL or a live read-write lock; `writer` is NULL or a live
/// guard; `reader_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_rwlock_downgrade(
    rwlock: *const latchkey_rwlock,
    writer: *mut latchkey_guard,
    reader_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_rwlock_downgrade", err_out, || {
        // SAFETY: `rwlock`, `writer` and `reader_out` keep the `# Safety` contract above,
        // all that these helpers rely on (see `args`).
        let (rwlock, writer, out) = unsafe {
            (
                args::borrow(rwlock, "rwlock")?,
                args::borrow(writer.cast_const(), "writer")?,
                Out::new(reader_out, "reader_out")?,
            )
        };
        let reader = writer.hand_over(|guard| rwlock.rwlock.downgrade(guard))?;
        out.write(latchkey_guard::new_raw(reader, rwlock.name.clone()));
        Ok(())
    })
}
