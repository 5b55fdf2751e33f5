//! The panic boundary. A Rust panic must never unwind into C (it would abort
//! the host process: Python, Go), so every entry point runs its body through
//! [`call`] or [`infallible`], which catch it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::latchkey_error;
use super::error::{report, Failure};
use super::status::latchkey_status;

/// Runs the body of a fallible entry point: a panic becomes LATCHKEY_PANIC,
/// and the outcome is reported through `err_out` and the thread's last error.
pub(crate) fn call(
    function: &str,
    err_out: *mut *mut latchkey_error,
    body: impl FnOnce() -> Result<(), Failure>,
) -> latchkey_status {
    report(function, catch(body), err_out)
}

/// Runs `body`, turning a panic into a LATCHKEY_PANIC failure.
pub(crate) fn catch(body: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    // AssertUnwindSafe: after a panic nothing the body touched is used
    // again by this call, and the handles' shared state uses locks that
    // do not poison (`crate::sync`) or is immutable.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(Failure::new(
            latchkey_status::LATCHKEY_PANIC,
            format!(
                "internal error (a Rust panic: {}); this is a bug in latchkey, please report it",
                panic_message(payload)
            ),
        ))
    })
}

/// Runs the body of an entry point that cannot report a failure (getters of
/// static strings, destructors): a panic yields `fallback`.
pub(crate) fn infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        drop_payload(payload);
        fallback
    })
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    };
    drop_payload(payload);
    message
}

/// Dropping a panic payload may itself panic; that must not escape either.
fn drop_payload(payload: Box<dyn Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}
