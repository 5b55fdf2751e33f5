//! `latchkey_status`: the fixed numbers every fallible C call returns, and
//! their mapping from [`ErrorKind`].

use std::ffi::{c_char, CStr};

use super::boundary;
use crate::ErrorKind;

/// The outcome of a call. The numbers are part of the ABI: they never
/// change and are never reused; new statuses are only added at the end.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum latchkey_status {
    /// Success.
    LATCHKEY_OK = 0,
    /// An argument was unusable: a NULL or misaligned pointer, a string that
    /// is not UTF-8, an empty name, a number out of range, a bad URL.
    LATCHKEY_INVALID_ARGUMENT = 1,
    /// The lock was still held by another owner at the deadline (or, with
    /// wait-for-replicas, too few replicas confirmed it in time).
    LATCHKEY_TIMEOUT = 2,
    /// A release or extend found that this owner does not hold the lock (it
    /// expired, was force-unlocked, or the guard was already released).
    LATCHKEY_NOT_HELD = 3,
    /// The lease was lost while it was supposed to be held.
    LATCHKEY_LOST = 4,
    /// The wait was cancelled through a latchkey_cancel handle.
    LATCHKEY_CANCELLED = 5,
    /// Redis could not be reached, the connection broke, or Redis did not
    /// answer within the command timeout (a command timeout is never
    /// LATCHKEY_TIMEOUT).
    LATCHKEY_CONNECTION = 6,
    /// Redis answered with an error.
    LATCHKEY_SERVER = 7,
    /// A bug inside latchkey was caught at the C boundary (a Rust panic); the
    /// message says where. The library stays usable.
    LATCHKEY_PANIC = 8,
    /// Redlock: too few masters answered (fewer than N/2+1) for the outcome
    /// to be known; the others are down, paused or unreachable. Also: too
    /// few of those that answered count yet, being younger than the restart
    /// delay (latchkey_error_is_busy says so; the message names it).
    LATCHKEY_NO_QUORUM = 9,
    /// Redis refused the credentials: a wrong user name or password, or
    /// none given to a server that requires one. Retrying will not help;
    /// fix the URL (or the Sentinel master password).
    LATCHKEY_AUTH = 10,
    /// The client was closed (latchkey_client_close): an acquire that was
    /// waiting, or that started afterwards, ends with this.
    LATCHKEY_CLOSED = 11,
}

/// How C passes a status back in (to latchkey_status_name): a plain
/// integer, so that a number this version does not know is not undefined
/// behaviour in Rust. cbindgen.toml renames it to `latchkey_status`.
pub type StatusCode = i32;

impl From<ErrorKind> for latchkey_status {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => latchkey_status::LATCHKEY_INVALID_ARGUMENT,
            ErrorKind::Timeout => latchkey_status::LATCHKEY_TIMEOUT,
            ErrorKind::NotHeld => latchkey_status::LATCHKEY_NOT_HELD,
            ErrorKind::Lost => latchkey_status::LATCHKEY_LOST,
            ErrorKind::Cancelled => latchkey_status::LATCHKEY_CANCELLED,
            ErrorKind::Connection => latchkey_status::LATCHKEY_CONNECTION,
            ErrorKind::Server => latchkey_status::LATCHKEY_SERVER,
            ErrorKind::NoQuorum => latchkey_status::LATCHKEY_NO_QUORUM,
            ErrorKind::Auth => latchkey_status::LATCHKEY_AUTH,
            ErrorKind::Closed => latchkey_status::LATCHKEY_CLOSED,
        }
    }
}

/// The static, NUL-terminated name of a status. The kinds shared with the
/// Rust API use `ErrorKind::name`'s words (a test keeps them equal).
pub(crate) fn name(status: StatusCode) -> &'static CStr {
    match status {
        0 => c"ok",
        1 => c"invalid argument",
        2 => c"timeout",
        3 => c"not held",
        4 => c"lease lost",
        5 => c"cancelled",
        6 => c"connection error",
        7 => c"redis error",
        8 => c"internal panic",
        9 => c"no quorum",
        10 => c"authentication failed",
        11 => c"closed",
        _ => c"unknown status",
    }
}

/// A short English name for `status` ("ok", "timeout", "not held", ...),
/// or "unknown status" for a number this version does not know.
///
/// Ownership: the string is static; do not free it.
/// Threads: any thread. Blocks: no. Never fails.
#[no_mangle]
pub extern "C" fn latchkey_status_name(status: StatusCode) -> *const c_char {
    boundary::infallible(c"unknown status".as_ptr(), || name(status).as_ptr())
}
