//! Administrative operations on a lock by name, whoever holds it: the
//! force-unlock.

use std::ffi::c_char;

use super::args::{self, Out};
use super::boundary::call;
use super::client::latchkey_client;
use super::error::latchkey_error;
use super::status::latchkey_status;

/// Administrative unlock: deletes the lock `name` whoever holds it and
/// wakes its waiters. The holder finds out at its next renewal (its lease is
/// reported lost). `*deleted_out` tells whether a lock was deleted.
///
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
/// `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `deleted_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_force_unlock(
    client: *const latchkey_client,
    name: *const c_char,
    deleted_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_force_unlock", err_out, || {
        // SAFETY: `client`, `name` and `deleted_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (client, name, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                Out::new(deleted_out, "deleted_out")?,
            )
        };
        out.write(client.client().force_unlock(name)?);
        Ok(())
    })
}
