//! `latchkey_client`: where Redis is (one server, Redlock masters, Sentinel
//! or Cluster), shared by any number of locks.

use std::ffi::{c_char, CString};

use super::args::{self, c_string, Out};
use super::boundary::call;
use super::client_options::latchkey_client_options;
use super::error::{latchkey_error, Failure};
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;
use crate::{Client, ClientBuilder};

/// A connection to Redis (pools of connections, a release listener and a
/// renewal thread), shared by any number of locks.
///
/// Threads: fully thread-safe; share one client between all threads.
/// Freeing it does not invalidate locks or guards made from it: they keep
/// the connections alive until the last of them is freed.
pub struct latchkey_client {
    client: Client,
    prefix: CString,
}

impl Handle for latchkey_client {
    const KIND: Kind = Kind::Client;
}

impl latchkey_client {
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

/// Makes a client for the Redis at `url`
/// (`redis://[user:password@]host[:port][/db]` or `unix:///path`), with
/// `options` (NULL for the defaults). No connection is made yet: the first
/// command connects, so a client can be made before Redis is up. Error
/// messages never show the password.
///
/// Ownership: on success `*client_out` is new; free it with
/// latchkey_client_free. `url` and `options` are only read during the call.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `url` or
/// `client_out`, `url` not UTF-8 or not a Redis URL, an option out of
/// range); LATCHKEY_PANIC.
///
/// # Safety
/// `url` is NULL or a NUL-terminated string; `options` is NULL or a live
/// options object; `client_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_open(
    url: *const c_char,
    options: *const latchkey_client_options,
    client_out: *mut *mut latchkey_client,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_open", err_out, || {
        // SAFETY: `url`, `options` and `client_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (url, options, out) = unsafe {
            (
                args::string(url, "url")?,
                args::optional(options, "options")?,
                Out::new(client_out, "client_out")?,
            )
        };
        out.write(build(Client::builder(url), options)?);
        Ok(())
    })
}

/// Makes a Redlock client over `url_count` independent masters (an odd
/// number, at least 3), given as an array of URLs in the form
/// latchkey_client_open takes, with `options` (NULL for the defaults). A
/// lock is held when a quorum (N/2+1) of masters granted it, and only within
/// ttl - elapsed - drift; a master that is down or slow is a vote against,
/// not a failure. Everything else (locks, guards, fencing) works as with
/// one server.
///
/// Ownership: as latchkey_client_open; `urls` is only read during the call.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `urls`, a NULL,
/// non-UTF-8 or bad URL in it, an even number or fewer than 3 URLs, an
/// option out of range, NULL `client_out`); LATCHKEY_PANIC.
///
/// # Safety
/// `urls` is NULL or points to `url_count` pointers, each NULL or a
/// NUL-terminated string; `options` is NULL or a live options object;
/// `client_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_open_redlock(
    urls: *const *const c_char,
    url_count: usize,
    options: *const latchkey_client_options,
    client_out: *mut *mut latchkey_client,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_open_redlock", err_out, || {
        // SAFETY: `urls`, `options` and `client_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (urls, options, out) = unsafe {
            (
                args::strings(urls, url_count, "urls")?,
                args::optional(options, "options")?,
                Out::new(client_out, "client_out")?,
            )
        };
        out.write(build(Client::redlock_builder(&urls), options)?);
        Ok(())
    })
}

/// Makes the client handle from a builder and the options that were set.
fn build(
    builder: ClientBuilder,
    options: Option<&latchkey_client_options>,
) -> Result<*mut latchkey_client, Failure> {
    let builder = match options {
        Some(options) => options.apply(builder),
        None => builder,
    };
    let client = builder.build()?;
    let prefix = c_string(client.prefix());
    Ok(handles::into_raw(latchkey_client { client, prefix }))
}

/// Makes a client that finds the master through Redis Sentinel: `url_count`
/// sentinel URLs and the monitored master's name. The client follows
/// failovers: a command that finds the old master gone or demoted asks the
/// sentinels again. The master's own password and database are options
/// (latchkey_client_options_set_master_password, _set_master_db).
///
/// Ownership: as latchkey_client_open; the strings are only read during the
/// call.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `sentinel_urls`,
/// `master_name` or `client_out`; no URLs; a NULL, non-UTF-8 or bad URL; an
/// empty master name; an option out of range); LATCHKEY_PANIC.
///
/// # Safety
/// `sentinel_urls` is NULL or points to `url_count` pointers, each NULL or
/// a NUL-terminated string; `master_name` is NULL or a NUL-terminated
/// string; `options` is NULL or a live options object; `client_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_open_sentinel(
    sentinel_urls: *const *const c_char,
    url_count: usize,
    master_name: *const c_char,
    options: *const latchkey_client_options,
    client_out: *mut *mut latchkey_client,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_open_sentinel", err_out, || {
        // SAFETY: `sentinel_urls`, `master_name`, `options` and `client_out` keep the
        // `# Safety` contract above, all that these helpers rely on (see `args`).
        let (urls, master_name, options, out) = unsafe {
            (
                args::strings(sentinel_urls, url_count, "sentinel_urls")?,
                args::string(master_name, "master_name")?,
                args::optional(options, "options")?,
                Out::new(client_out, "client_out")?,
            )
        };
        out.write(build(
            Client::sentinel_builder(&urls, master_name),
            options,
        )?);
        Ok(())
    })
}

/// Makes a client for a Redis Cluster, given `url_count` of its nodes.
/// Every key of a lock shares a hash tag, so each script runs on the master
/// that owns the lock's slot; MOVED and ASK are followed and the slot map
/// is reloaded after a failover.
///
/// Ownership: as latchkey_client_open; `seed_urls` is only read during the
/// call.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `seed_urls` or
/// `client_out`; no URLs; a NULL, non-UTF-8 or bad URL; an option out of
/// range); LATCHKEY_PANIC.
///
/// # Safety
/// `seed_urls` is NULL or points to `url_count` pointers, each NULL or a
/// NUL-terminated string; `options` is NULL or a live options object;
/// `client_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_open_cluster(
    seed_urls: *const *const c_char,
    url_count: usize,
    options: *const latchkey_client_options,
    client_out: *mut *mut latchkey_client,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_open_cluster", err_out, || {
        // SAFETY: `seed_urls`, `options` and `client_out` keep the `# Safety` contract above,
        // all that these helpers rely on (see `args`).
        let (urls, options, out) = unsafe {
            (
                args::strings(seed_urls, url_count, "seed_urls")?,
                args::optional(options, "options")?,
                Out::new(client_out, "client_out")?,
            )
        };
        out.write(build(Client::cluster_builder(&urls), options)?);
        Ok(())
    })
}

/// Frees a client handle. NULL is ignored. Locks and guards made from it
/// stay usable; the connections close when the last of them is freed.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live client: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or from latchkey_client_open, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_free(client: *mut latchkey_client) -> latchkey_status {
    // SAFETY: `client` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_client_free", client, "client") }
}

/// Closes the client (every handle and lock made from it): every lock
/// still held through it is released in Redis (in parallel, each release
/// bounded by the command timeout) and its guards then say it is not held
/// (latchkey_guard_check returns LATCHKEY_NOT_HELD, latchkey_guard_lost
/// false: a close is an ending, not a loss, and no lost callback runs);
/// every acquire of the client that is waiting returns promptly with
/// LATCHKEY_CLOSED, and so does every later acquire. Inspection and fenced
/// writes keep working. Closing again does nothing. The handle stays
/// allocated: free it with latchkey_client_free as usual.
///
/// Threads: any thread, also while other threads wait in an acquire.
/// Blocks: while the releases run (at most about the command timeout).
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (not a live client);
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM
/// (a release Redis did not confirm: the client is closed all the same, and
/// the hold is given back in the background once Redis answers);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_close(
    client: *const latchkey_client,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_close", err_out, || {
        // SAFETY: `client` keeps the `# Safety` contract above, all that `borrow` relies on.
        let client = unsafe { args::borrow(client, "client")? };
        client.client.close()?;
        Ok(())
    })
}

/// The client's key prefix.
///
/// Ownership: `*prefix_out` belongs to the client; valid until
/// latchkey_client_free.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `prefix_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_prefix(
    client: *const latchkey_client,
    prefix_out: *mut *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_prefix", err_out, || {
        // SAFETY: `client` and `prefix_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (client, out) = unsafe {
            (
                args::borrow(client, "client")?,
                Out::new(prefix_out, "prefix_out")?,
            )
        };
        out.write(client.prefix.as_ptr());
        Ok(())
    })
}
