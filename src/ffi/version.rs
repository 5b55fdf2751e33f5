//! The library's version, and the deliberate panic that tests of the C
//! boundary (and of the Python and Go bindings) use.

use std::ffi::c_char;

use super::boundary::{call, infallible};
use super::error::latchkey_error;
use super::status::latchkey_status;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, "MAJOR.MINOR.PATCH", as in Cargo.toml. Compare it
/// with LATCHKEY_VERSION_STRING to see whether the library a program runs
/// with is the one it was compiled against.
///
/// Ownership: static; do not free. Threads: any thread. Blocks: no.
/// Never fails.
#[no_mangle]
pub extern "C" fn latchkey_version() -> *const c_char {
    infallible(c"".as_ptr(), || VERSION.as_ptr().cast())
}

/// For tests only: panics inside the library, to show that a panic comes
/// back as LATCHKEY_PANIC with a message instead of crashing the caller.
/// (The panic message is also printed on stderr by Rust's panic hook.)
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_PANIC, always.
///
/// # Safety
/// `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_debug_panic(
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_debug_panic", err_out, || {
        panic!("latchkey_debug_panic was called (a deliberate panic, for tests)")
    })
}
