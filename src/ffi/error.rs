//! Failures as C sees them: a status and a message. The message reaches the
//! caller two ways: through the optional `err_out` argument of the same
//! call (a `latchkey_error` the caller frees; needed where consecutive calls
//! may run on different threads, as with Go's goroutines), and through
//! `latchkey_last_error`, kept per thread for C callers who pass NULL.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use super::args::c_string;
use super::boundary;
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;

/// A failed call as the FFI layer builds it, before it is handed to C.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: latchkey_status,
    pub(crate) message: String,
    /// See latchkey_error_is_busy.
    pub(crate) busy: bool,
}

impl Failure {
    pub(crate) fn new(status: latchkey_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            busy: false,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(latchkey_status::LATCHKEY_INVALID_ARGUMENT, message)
    }
}

impl From<crate::Error> for Failure {
    fn from(err: crate::Error) -> Self {
        // The kind travels as the status; the message is the Rust message.
        Failure {
            busy: err.is_answered_busy(),
            ..Failure::new(err.kind().into(), err.message())
        }
    }
}

/// The error of one failed call: its status and message. Returned through
/// the `err_out` argument that every fallible function takes last.
///
/// Ownership: the caller owns it and frees it with latchkey_error_free.
/// Threads: immutable; read it from any thread.
pub struct latchkey_error {
    status: latchkey_status,
    message: CString,
    busy: bool,
}

impl Handle for latchkey_error {
    const KIND: Kind = Kind::Error;
}

thread_local! {
    /// The message of this thread's latest fallible call, if it failed.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Hands the outcome of a call to C: the thread's last error, `*err_out`,
/// and the status. Invalid-argument and panic messages name the function,
/// since they point at the calling code rather than at Redis.
pub(crate) fn report(
    function: &str,
    outcome: Result<(), Failure>,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    let failure = match outcome {
        Ok(()) => {
            let _ = LAST_ERROR.try_with(|last| last.borrow_mut().take());
            set_err_out(err_out, std::ptr::null_mut());
            return latchkey_status::LATCHKEY_OK;
        }
        Err(failure) => failure,
    };
    let message = match failure.status {
        latchkey_status::LATCHKEY_INVALID_ARGUMENT | latchkey_status::LATCHKEY_PANIC => {
            c_string(&format!("{function}: {}", failure.message))
        }
        _ => c_string(&failure.message),
    };
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = Some(message.clone()));
    // The error object is made only where it can be handed over: one that
    // cannot be written to `err_out` would leak.
    if err_out_usable(err_out) {
        let error = handles::into_raw(latchkey_error {
            status: failure.status,
            message,
            busy: failure.busy,
        });
        set_err_out(err_out, error);
    }
    failure.status
}

/// A misaligned err_out cannot be written (and NULL means "not wanted"); the
/// message is still left for latchkey_last_error.
fn err_out_usable(err_out: *mut *mut latchkey_error) -> bool {
    !err_out.is_null() && err_out.is_aligned()
}

fn set_err_out(err_out: *mut *mut latchkey_error, value: *mut latchkey_error) {
    if err_out_usable(err_out) {
        // SAFETY: the header asks for err_out to be NULL or writable.
        unsafe { err_out.write(value) }
    }
}

/// The message of the calling thread's most recent failed call, or "" if
/// that thread's most recent call returning a latchkey_status succeeded.
///
/// Ownership: owned by the library; valid until the calling thread's next
/// call that returns a latchkey_status. Copy it to keep it.
/// Threads: per thread. Callers whose consecutive calls may run on
/// different threads (Go) must use `err_out` instead.
/// Blocks: no. Never fails.
#[no_mangle]
pub extern "C" fn latchkey_last_error() -> *const c_char {
    boundary::infallible(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|last| last.borrow().as_ref().map(|m| m.as_ptr()))
            .ok()
            .flatten()
            .unwrap_or(c"".as_ptr())
    })
}

/// The status of `err`; LATCHKEY_OK when `err` is NULL, and
/// LATCHKEY_INVALID_ARGUMENT when it is not a live error (freed already, or
/// not an error: see "Handles" at the top).
///
/// Threads: any thread. Blocks: no. Never fails.
///
/// # Safety
/// `err` is NULL or an error not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_error_status(err: *const latchkey_error) -> latchkey_status {
    boundary::infallible(latchkey_status::LATCHKEY_PANIC, || {
        if err.is_null() {
            return latchkey_status::LATCHKEY_OK;
        }
        // SAFETY: `err` keeps the `# Safety` contract above, all that `args::borrow` relies on
        // (see `args`).
        unsafe { super::args::borrow(err, "err") }
            .map_or(latchkey_status::LATCHKEY_INVALID_ARGUMENT, |e| e.status)
    })
}

/// Whether the deployment answered but could not grant the lock yet, for
/// a reason that passes: Redlock masters younger than the restart delay
/// (LATCHKEY_NO_QUORUM), a Cluster slot in migration (LATCHKEY_CONNECTION).
/// A waiting acquire waits such a failure out until its deadline, even on
/// its first attempt; a binding that tries once before it waits (and
/// waits only after LATCHKEY_TIMEOUT) waits after these too. false when
/// `err` is NULL or not a live error.
///
/// Threads: any thread. Blocks: no. Never fails.
///
/// # Safety
/// `err` is NULL or an error not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_error_is_busy(err: *const latchkey_error) -> bool {
    boundary::infallible(false, || {
        if err.is_null() {
            return false;
        }
        // SAFETY: `err` keeps the `# Safety` contract above, all that `args::borrow` relies on
        // (see `args`).
        unsafe { super::args::borrow(err, "err") }.is_ok_and(|e| e.busy)
    })
}

/// The message of `err`: what happened and, where it helps, what to do.
/// "" when `err` is NULL or not a live error.
///
/// Ownership: owned by `err`; valid until latchkey_error_free(err).
/// Threads: any thread. Blocks: no. Never fails.
///
/// # Safety
/// `err` is NULL or an error not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_error_message(err: *const latchkey_error) -> *const c_char {
    boundary::infallible(c"".as_ptr(), || {
        // SAFETY: `err` keeps the `# Safety` contract above, all that `args::borrow` relies on
        // (see `args`).
        unsafe { super::args::borrow(err, "err") }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
    })
}

/// Frees an error returned through `err_out`. NULL is ignored.
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live error: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `err` is NULL or an error from `err_out` not yet freed; it is invalid
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn latchkey_error_free(err: *mut latchkey_error) -> latchkey_status {
    // SAFETY: `err` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_error_free", err, "err") }
}

/// The message of the last failure on this thread, for tests.
#[cfg(test)]
pub(crate) fn last_message() -> String {
    // SAFETY: latchkey_last_error returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(latchkey_last_error()) }
        .to_string_lossy()
        .into_owned()
}
