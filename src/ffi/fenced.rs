//! The fenced-write helper: a resource that refuses writers with an older
//! fencing token than one it has accepted, and its reader.

use std::ffi::c_char;

use super::args::{self, Out};
use super::boundary::{call, catch};
use super::client::latchkey_client;
use super::error::latchkey_error;
use super::error::report;
use super::handles::{self, Kind};
use super::status::latchkey_status;

/// Writes `value` (`value_len` bytes; NULL is fine when 0) to the Redis
/// resource `resource` only if `fencing_token` is above the highest token
/// the resource has accepted, so a holder that was paused past its lease
/// (and has an older token) is refused. An equal token is accepted only
/// if the previous write also came through this function with it (a
/// writer with only a token cannot prove it is the same hold); a holder
/// that writes several times uses latchkey_guard_fenced_write. Tokens
/// compare exactly over the whole uint64_t range. `*written_out` tells whether
/// it was written, `*highest_token_out` the highest token accepted so far.
///
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK (also when refused: see `*written_out`);
/// LATCHKEY_INVALID_ARGUMENT (NULL argument, bad `resource`, token 0);
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
/// (Redlock: too few masters answered); LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `resource` is NULL or a
/// NUL-terminated string; `value` points to `value_len` readable bytes;
/// the out pointers are NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // C has no tuples: one argument per output.
pub unsafe extern "C" fn latchkey_client_fenced_write(
    client: *const latchkey_client,
    resource: *const c_char,
    fencing_token: u64,
    value: *const u8,
    value_len: usize,
    written_out: *mut bool,
    highest_token_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_fenced_write", err_out, || {
        // SAFETY: `client`, `resource`, `value`, `written_out` and `highest_token_out` keep the
        // `# Safety` contract above, all that these helpers rely on (see `args`).
        let (client, resource, value, written, highest) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(resource, "resource")?,
                args::bytes(value, value_len, "value")?,
                Out::new(written_out, "written_out")?,
                Out::new(highest_token_out, "highest_token_out")?,
            )
        };
        let outcome = client
            .client()
            .fenced_write(resource, fencing_token, value)?;
        written.write(outcome.written);
        highest.write(outcome.highest_token);
        Ok(())
    })
}

/// Reads a resource written by latchkey_client_fenced_write. If it exists,
/// `*found_out` is true, `*fencing_token_out` is the token that wrote it and
/// `*value_out`/`*value_len_out` a copy of the value; otherwise `*found_out`
/// is false, the token 0 and the value NULL with length 0.
///
/// Ownership: free `*value_out` with latchkey_bytes_free(*value_out,
/// *value_len_out). An empty value is returned as NULL.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
/// `resource`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_NO_QUORUM (Redlock: too few masters answered); LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `resource` is NULL or a
/// NUL-terminated string; the out pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_fenced_read(
    client: *const latchkey_client,
    resource: *const c_char,
    found_out: *mut bool,
    fencing_token_out: *mut u64,
    value_out: *mut *mut u8,
    value_len_out: *mut usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_fenced_read", err_out, || {
        // SAFETY: `client`, `resource`, `found_out`, `fencing_token_out`, `value_out` and
        // `value_len_out` keep the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let (client, resource, found, token, value_ptr, value_len) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(resource, "resource")?,
                Out::new(found_out, "found_out")?,
                Out::new(fencing_token_out, "fencing_token_out")?,
                Out::new(value_out, "value_out")?,
                Out::new(value_len_out, "value_len_out")?,
            )
        };
        let read = client.client().fenced_read(resource)?;
        found.write(read.is_some());
        let (fencing_token, value) = read.unwrap_or_default();
        token.write(fencing_token);
        value_len.write(value.len());
        value_ptr.write(into_buffer(value));
        Ok(())
    })
}

/// `value` as a buffer C frees with latchkey_bytes_free (NULL when empty).
pub(crate) fn into_buffer(value: Vec<u8>) -> *mut u8 {
    if value.is_empty() {
        return std::ptr::null_mut();
    }
    let len = value.len();
    let buffer = Box::into_raw(value.into_boxed_slice()).cast::<u8>();
    handles::register_raw(buffer.cast_const().cast(), Kind::Bytes(len));
    buffer
}

/// Frees a buffer returned by latchkey_client_fenced_read (or the election
/// calls), given with the
/// length returned with it. NULL is ignored.
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live buffer from latchkey_client_fenced_read, or `len` is not its
/// length; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `bytes` is NULL or a buffer from latchkey_client_fenced_read, not yet
/// freed, and `len` its length.
#[no_mangle]
pub unsafe extern "C" fn latchkey_bytes_free(bytes: *mut u8, len: usize) -> latchkey_status {
    let outcome = catch(|| {
        if !bytes.is_null() {
            handles::unregister_raw(bytes.cast_const(), Kind::Bytes(len), "bytes")?;
            // SAFETY: registered as a boxed slice of exactly `len` bytes,
            // and unregistered just now, so freed once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(bytes, len)) });
        }
        Ok(())
    });
    match outcome {
        Ok(()) => latchkey_status::LATCHKEY_OK,
        Err(failure) => report("latchkey_bytes_free", Err(failure), std::ptr::null_mut()),
    }
}
