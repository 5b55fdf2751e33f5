//! Hooks for tests of the C boundary (and of the Python and Go bindings):
//! a deliberate panic, to show that it comes back as LATCHKEY_PANIC.

use super::boundary::call;
use super::error::latchkey_error;
use super::status::latchkey_status;

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
