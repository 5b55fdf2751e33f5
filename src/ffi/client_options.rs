//! `latchkey_client_options`: how to connect, set one option at a time so
//! that new options never change the ABI.

use std::ffi::c_char;
use std::time::Duration;

use super::args::{self, Out};
use super::boundary::call;
use super::error::{latchkey_error, Failure};
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;
use crate::ClientBuilder;

/// Options for the latchkey_client_open* functions. Options not set keep
/// the library's defaults (connect timeout 2 s, command timeout 2 s, prefix
/// "latchkey", pool size 8, spin limit LATCHKEY_SPIN_US or none, no
/// replica wait). New options come as new setters, so the ABI can grow.
///
/// Values are checked when the client is opened, not by the setters (except
/// latchkey_client_options_set_spin_us, which also refuses a limit above
/// 10 ms at once).
/// Threads: not thread-safe; set it up on one thread, then it may be read
/// by the latchkey_client_open* functions from any thread.
#[derive(Default)]
pub struct latchkey_client_options {
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    prefix: Option<String>,
    pool_size: Option<usize>,
    spin: Option<Duration>,
    wait_for_replicas: Option<(usize, Duration)>,
    master_password: Option<String>,
    master_db: Option<i64>,
    redlock_restart_delay: Option<Duration>,
    tls_ca_file: Option<String>,
    tls_client_cert: Option<(String, String)>,
    tls_server_name: Option<String>,
    tls_insecure_skip_verify: bool,
}

/// Makes an options object with every option unset.
///
/// Ownership: on success `*options_out` is new; free it with
/// latchkey_client_options_free (any time after opening the client).
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options_out` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options_out` is NULL or writable; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_new(
    options_out: *mut *mut latchkey_client_options,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_new", err_out, || {
        // SAFETY: `options_out` keeps the `# Safety` contract above, all that these helpers
        // rely on (see `args`).
        let out = unsafe { Out::new(options_out, "options_out") }?;
        out.write(handles::into_raw(latchkey_client_options::default()));
        Ok(())
    })
}

/// Frees an options object. NULL is ignored.
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live options object: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or from latchkey_client_options_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_free(
    options: *mut latchkey_client_options,
) -> latchkey_status {
    // SAFETY: `options` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_client_options_free", options, "options") }
}

/// Sets the time allowed to connect and handshake, in milliseconds
/// (1 to 86400000; checked when the client is opened).
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_connect_timeout_ms(
    options: *mut latchkey_client_options,
    timeout_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_connect_timeout_ms",
        err_out,
        || {
            // SAFETY: `options` keeps the `# Safety` contract above, all that
            // `args::borrow_mut` relies on (see `args`).
            let options = unsafe { args::borrow_mut(options, "options") }?;
            options.connect_timeout = Some(Duration::from_millis(timeout_ms));
            Ok(())
        },
    )
}

/// Sets the time allowed for Redis to answer one command, in milliseconds
/// (1 to 86400000; checked when the client is opened). A stopped server makes
/// a call fail with LATCHKEY_CONNECTION after this long instead of hanging.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_command_timeout_ms(
    options: *mut latchkey_client_options,
    timeout_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_command_timeout_ms",
        err_out,
        || {
            // SAFETY: `options` keeps the `# Safety` contract above, all that
            // `args::borrow_mut` relies on (see `args`).
            let options = unsafe { args::borrow_mut(options, "options") }?;
            options.command_timeout = Some(Duration::from_millis(timeout_ms));
            Ok(())
        },
    )
}

/// Sets the prefix of every Redis key (1 to 256 bytes, no '{', '}';
/// checked when the client is opened). The string is copied.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `prefix`
/// not UTF-8); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `prefix` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_prefix(
    options: *mut latchkey_client_options,
    prefix: *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_set_prefix", err_out, || {
        // SAFETY: `options` and `prefix` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (options, prefix) = unsafe {
            (
                args::borrow_mut(options, "options")?,
                args::string(prefix, "prefix")?,
            )
        };
        options.prefix = Some(prefix.to_string());
        Ok(())
    })
}

/// Sets how many idle connections the pool keeps (1 to 1024; checked when
/// the client is opened). More threads may use the client at once; extra
/// connections are closed after use.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_pool_size(
    options: *mut latchkey_client_options,
    pool_size: usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_set_pool_size", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.pool_size = Some(pool_size);
        Ok(())
    })
}

/// Sets how long, in microseconds, a thread waiting for a reply from Redis
/// keeps asking the socket before it sleeps until the reply (default
/// LATCHKEY_SPIN_US from the environment, else 0; 0 turns spinning off; at
/// most 10000, that is 10 ms). A thread woken by the reply costs a
/// scheduler wake-up, which on a loaded virtual machine can cost more than
/// the round trip; spinning saves it at the price of the CPU spent asking
/// (BENCHMARKS.md shows both on one machine). Each server's
/// connections spin only while its replies come within the limit (a slower
/// server is probed now and then), and at most one fewer threads of the
/// process than it has cores spin at once. A value above 10000 is refused
/// here, and the options keep the limit they had.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL,
/// `spin_us` above 10000); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_spin_us(
    options: *mut latchkey_client_options,
    spin_us: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_set_spin_us", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        let max = crate::backend::MAX_SPIN;
        if u128::from(spin_us) > max.as_micros() {
            return Err(Failure::invalid(format!(
                "`spin_us` must be at most {} ({max:?}); got {spin_us}",
                max.as_micros()
            )));
        }
        options.spin = Some(Duration::from_micros(spin_us));
        Ok(())
    })
}

/// After each successful acquire, waits until `replicas` replicas have the
/// lock (Redis WAIT), at most `timeout_ms` milliseconds; if fewer confirm,
/// the lock is released again and the acquire fails with LATCHKEY_TIMEOUT.
/// Narrows what a failover can lose. For a single server, Sentinel or
/// Cluster, not Redlock (1 to 64 replicas; checked when the client is
/// opened). On a Cluster the WAIT goes to the master serving the lock's
/// slot and counts that master's replicas: `replicas` is per master.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_wait_for_replicas(
    options: *mut latchkey_client_options,
    replicas: usize,
    timeout_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_wait_for_replicas",
        err_out,
        || {
            // SAFETY: `options` keeps the `# Safety` contract above, all that
            // `args::borrow_mut` relies on (see `args`).
            let options = unsafe { args::borrow_mut(options, "options") }?;
            options.wait_for_replicas = Some((replicas, Duration::from_millis(timeout_ms)));
            Ok(())
        },
    )
}

/// Sets the password of the master found through Sentinel (the sentinel
/// URLs carry the sentinels' own credentials, if any). The string is copied
/// and never shown in messages. Only for latchkey_client_open_sentinel: the
/// other latchkey_client_open* functions refuse options with it
/// (LATCHKEY_INVALID_ARGUMENT); give the password in their URLs.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument,
/// `password` not UTF-8); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `password` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_master_password(
    options: *mut latchkey_client_options,
    password: *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_master_password",
        err_out,
        || {
            // SAFETY: `options` and `password` keep the `# Safety` contract above, all that
            // these helpers rely on (see `args`).
            let (options, password) = unsafe {
                (
                    args::borrow_mut(options, "options")?,
                    args::string(password, "password")?,
                )
            };
            options.master_password = Some(password.to_string());
            Ok(())
        },
    )
}

/// Sets the database number on the master found through Sentinel
/// (default 0; 0 or more). Only for latchkey_client_open_sentinel: the
/// other latchkey_client_open* functions refuse options with it
/// (LATCHKEY_INVALID_ARGUMENT); give the database in their URLs.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_master_db(
    options: *mut latchkey_client_options,
    db: i64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_set_master_db", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.master_db = Some(db);
        Ok(())
    })
}

/// Redlock only: how long, in milliseconds, a master stays out of every
/// quorum after it (re)started. A master that restarts without its keys
/// would grant again locks it had granted before; the Redlock paper's
/// delayed restart keeps it out until those have expired. Unset (the
/// default): the largest ttl the client has used; a master that refuses
/// INFO counts as just restarted. So for one ttl after most masters of a
/// deployment start, no lock is granted: acquires wait, and fail with
/// LATCHKEY_NO_QUORUM (saying why) when they stop waiting. When clients use
/// different ttls, set it on every client to the largest ttl any uses.
/// 0: every master counts as soon as it answers (only for masters that
/// keep their keys across restarts, or whose restarts operators delay).
/// At most 365 days; checked when the client is opened (any other
/// deployment refuses it).
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_redlock_restart_delay_ms(
    options: *mut latchkey_client_options,
    delay_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_redlock_restart_delay_ms",
        err_out,
        || {
            // SAFETY: `options` keeps the `# Safety` contract above, all that
            // `args::borrow_mut` relies on (see `args`).
            let options = unsafe { args::borrow_mut(options, "options") }?;
            options.redlock_restart_delay = Some(Duration::from_millis(delay_ms));
            Ok(())
        },
    )
}

/// For rediss:// URLs: trust the CA certificates in this PEM file instead
/// of the system's CA store. The path is copied; the file is read when the
/// client is opened (a missing or unreadable file, or one without a
/// certificate, fails the open with LATCHKEY_INVALID_ARGUMENT naming it).
/// Any TLS option with no rediss:// URL fails the open the same way.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `path`
/// not UTF-8); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_tls_ca_file(
    options: *mut latchkey_client_options,
    path: *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_options_set_tls_ca_file", err_out, || {
        // SAFETY: `options` and `path` keep the `# Safety` contract above,
        // all that these helpers rely on (see `args`).
        let (options, path) = unsafe {
            (
                args::borrow_mut(options, "options")?,
                args::string(path, "path")?,
            )
        };
        options.tls_ca_file = Some(path.to_string());
        Ok(())
    })
}

/// For rediss:// URLs: the client certificate (PEM chain) and private key
/// (PEM) to show to a server that asks for one (mutual TLS,
/// `tls-auth-clients yes`). The paths are copied; the files are read when
/// the client is opened (LATCHKEY_INVALID_ARGUMENT, naming the file, when
/// one is missing or the key does not match the certificate).
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, a path
/// not UTF-8); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `cert_file` and `key_file` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_tls_client_cert(
    options: *mut latchkey_client_options,
    cert_file: *const c_char,
    key_file: *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_tls_client_cert",
        err_out,
        || {
            // SAFETY: the arguments keep the `# Safety` contract above, all
            // that these helpers rely on (see `args`).
            let (options, cert, key) = unsafe {
                (
                    args::borrow_mut(options, "options")?,
                    args::string(cert_file, "cert_file")?,
                    args::string(key_file, "key_file")?,
                )
            };
            options.tls_client_cert = Some((cert.to_string(), key.to_string()));
            Ok(())
        },
    )
}

/// For rediss:// URLs: the name the server's certificate must carry, when
/// it differs from the URL's host (e.g. the URL names an IP address). The
/// string is copied; checked when the client is opened.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
/// not UTF-8); LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_tls_server_name(
    options: *mut latchkey_client_options,
    name: *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_tls_server_name",
        err_out,
        || {
            // SAFETY: `options` and `name` keep the `# Safety` contract above,
            // all that these helpers rely on (see `args`).
            let (options, name) = unsafe {
                (
                    args::borrow_mut(options, "options")?,
                    args::string(name, "name")?,
                )
            };
            options.tls_server_name = Some(name.to_string());
            Ok(())
        },
    )
}

/// For rediss:// URLs: when `skip` is true, ACCEPT ANY SERVER CERTIFICATE.
/// The connection is encrypted, but to whoever answers: anyone on the path
/// can pose as the server. For tests against a throwaway server only.
///
/// Threads: see latchkey_client_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_options_set_tls_insecure_skip_verify(
    options: *mut latchkey_client_options,
    skip: bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call(
        "latchkey_client_options_set_tls_insecure_skip_verify",
        err_out,
        || {
            // SAFETY: `options` keeps the `# Safety` contract above, all that
            // `args::borrow_mut` relies on (see `args`).
            let options = unsafe { args::borrow_mut(options, "options") }?;
            options.tls_insecure_skip_verify = skip;
            Ok(())
        },
    )
}

impl Handle for latchkey_client_options {
    const KIND: Kind = Kind::ClientOptions;
}

impl latchkey_client_options {
    /// Applies the options that were set to `builder`.
    pub(crate) fn apply(&self, mut builder: ClientBuilder) -> ClientBuilder {
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.command_timeout {
            builder = builder.command_timeout(timeout);
        }
        if let Some(prefix) = &self.prefix {
            builder = builder.prefix(prefix.clone());
        }
        if let Some(size) = self.pool_size {
            builder = builder.pool_size(size);
        }
        if let Some(spin) = self.spin {
            builder = builder.spin(spin);
        }
        if let Some((replicas, timeout)) = self.wait_for_replicas {
            builder = builder.wait_for_replicas(replicas, timeout);
        }
        if let Some(password) = &self.master_password {
            builder = builder.master_password(password.clone());
        }
        if let Some(db) = self.master_db {
            builder = builder.master_db(db);
        }
        if let Some(delay) = self.redlock_restart_delay {
            builder = builder.redlock_restart_delay(delay);
        }
        if let Some(path) = &self.tls_ca_file {
            builder = builder.tls_ca_file(path);
        }
        if let Some((cert, key)) = &self.tls_client_cert {
            builder = builder.tls_client_cert(cert, key);
        }
        if let Some(name) = &self.tls_server_name {
            builder = builder.tls_server_name(name.clone());
        }
        if self.tls_insecure_skip_verify {
            builder = builder.tls_insecure_skip_verify(true);
        }
        builder
    }
}
