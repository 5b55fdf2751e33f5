//! `latchkey_cancel`: lets one thread interrupt another's waiting acquire.

use super::args::{self, Out};
use super::boundary::call;
use super::error::latchkey_error;
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;
use crate::CancelToken;

/// Interrupts waiting acquires. Once triggered, every latchkey_lock_acquire
/// given this handle returns LATCHKEY_CANCELLED promptly, now and later,
/// until latchkey_cancel_reset.
///
/// Threads: fully thread-safe: trigger it from any thread (a signal-handling
/// thread, a Go context's goroutine) while others wait on it. It must not be
/// freed while an acquire uses it.
pub struct latchkey_cancel {
    token: CancelToken,
}

impl Handle for latchkey_cancel {
    const KIND: Kind = Kind::Cancel;
}

impl latchkey_cancel {
    pub(crate) fn token(&self) -> &CancelToken {
        &self.token
    }
}

/// Makes a cancel handle that is not triggered.
///
/// Ownership: on success `*cancel_out` is new; free it with
/// latchkey_cancel_free.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel_out` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `cancel_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_cancel_new(
    cancel_out: *mut *mut latchkey_cancel,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_cancel_new", err_out, || {
        let handle = latchkey_cancel {
            token: CancelToken::new(),
        };
        // SAFETY: `cancel_out` keeps the `# Safety` contract above, all that these helpers rely
        // on (see `args`).
        let out = unsafe { Out::new(cancel_out, "cancel_out") }?;
        out.write(handles::into_raw(handle));
        Ok(())
    })
}

/// Frees a cancel handle. NULL is ignored.
///
/// Threads: any thread, once, when no acquire uses it any more.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live cancel handle: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `cancel` is NULL or from latchkey_cancel_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_cancel_free(cancel: *mut latchkey_cancel) -> latchkey_status {
    // SAFETY: `cancel` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_cancel_free", cancel, "cancel") }
}

/// Triggers the handle: wakes every acquire waiting with it.
///
/// Threads: any thread. Blocks: no (takes a short internal lock; not
/// async-signal-safe, so call it from a thread rather than a signal handler).
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_cancel_trigger(
    cancel: *mut latchkey_cancel,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_cancel_trigger", err_out, || {
        // SAFETY: `cancel` keeps the `# Safety` contract above, all that `args::borrow` relies
        // on (see `args`).
        let cancel = unsafe { args::borrow(cancel.cast_const(), "cancel") }?;
        cancel.token.cancel();
        Ok(())
    })
}

/// Makes a triggered handle usable again.
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_cancel_reset(
    cancel: *mut latchkey_cancel,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_cancel_reset", err_out, || {
        // SAFETY: `cancel` keeps the `# Safety` contract above, all that `args::borrow` relies
        // on (see `args`).
        let cancel = unsafe { args::borrow(cancel.cast_const(), "cancel") }?;
        cancel.token.reset();
        Ok(())
    })
}

/// Writes whether the handle is triggered (since its last reset).
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `cancel` is NULL or a live cancel handle; `triggered_out` and `err_out`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_cancel_is_triggered(
    cancel: *const latchkey_cancel,
    triggered_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_cancel_is_triggered", err_out, || {
        // SAFETY: `cancel` and `triggered_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (cancel, out) = unsafe {
            (
                args::borrow(cancel, "cancel")?,
                Out::new(triggered_out, "triggered_out")?,
            )
        };
        out.write(cancel.token.is_cancelled());
        Ok(())
    })
}
