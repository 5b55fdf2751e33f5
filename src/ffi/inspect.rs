//! Looking at a lock by name, whoever holds it: inspect (with each Redlock
//! master's view, and the waiters queued for it) and is-locked. Read only:
//! the administrative force-unlock is in `admin`.

use std::ffi::{c_char, CString};

use super::args::{self, millis, Out};
use super::boundary::{call, catch};
use super::client::latchkey_client;
use super::error::{latchkey_error, report};
use super::handles::{self, Kind};
use super::status::latchkey_status;
use crate::{LockInfo, MasterState, QueuedWaiter};

/// The size of latchkey_lock_info's `owner_token`: 32 hex digits and a NUL.
pub const LATCHKEY_OWNER_TOKEN_SIZE: usize = 33;

/// The state of one lock in Redis, filled by latchkey_client_inspect.
/// When `locked` is false every other field is zero. (For Redlock, each
/// master's own view comes from latchkey_client_inspect_masters.)
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct latchkey_lock_info {
    /// Whether anyone holds the lock.
    pub locked: bool,
    /// The holder's owner token: 32 hex digits and a NUL (a longer token
    /// written by another program is cut to 32 characters).
    pub owner_token: [c_char; LATCHKEY_OWNER_TOKEN_SIZE],
    /// The fencing token issued to the holder.
    pub fencing_token: u64,
    /// Milliseconds until the lease expires in Redis; -1 if it has no expiry.
    pub ttl_ms: i64,
    /// Whether it is a reentrant lock.
    pub reentrant: bool,
    /// How many nested holds a reentrant lock has (1 for a plain lock).
    pub hold_count: u64,
}

impl latchkey_lock_info {
    fn from_info(info: Option<&LockInfo>) -> Self {
        let mut out = latchkey_lock_info {
            locked: false,
            owner_token: [0; LATCHKEY_OWNER_TOKEN_SIZE],
            fencing_token: 0,
            ttl_ms: 0,
            reentrant: false,
            hold_count: 0,
        };
        if let Some(info) = info {
            out.locked = true;
            let token = info.owner_token.as_bytes();
            let token = &token[..token.len().min(LATCHKEY_OWNER_TOKEN_SIZE - 1)];
            for (dst, src) in out.owner_token.iter_mut().zip(token) {
                *dst = *src as c_char;
            }
            out.fencing_token = info.fencing_token;
            out.ttl_ms = info
                .ttl
                .map_or(-1, |ttl| i64::try_from(millis(ttl)).unwrap_or(i64::MAX));
            out.reentrant = info.reentrant;
            out.hold_count = info.hold_count;
        }
        out
    }
}

/// Who holds the lock `name`, if anyone, written to `*info_out`
/// (`locked` false and all else zero when nobody does).
///
/// Threads: any thread. Blocks: for one Redis round trip (Redlock: one to
/// every master).
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
/// empty, longer than 4096 bytes or not UTF-8; the URL's database does not
/// exist); LATCHKEY_CONNECTION (Redis unreachable or no answer within the
/// command timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
/// (Redlock: too few masters answered to tell who holds it);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `info_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_inspect(
    client: *const latchkey_client,
    name: *const c_char,
    info_out: *mut latchkey_lock_info,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_inspect", err_out, || {
        // SAFETY: `client`, `name` and `info_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (client, name, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                Out::new(info_out, "info_out")?,
            )
        };
        let info = client.client().inspect(name)?;
        out.write(latchkey_lock_info::from_info(info.as_ref()));
        Ok(())
    })
}

/// Whether the lock `name` is held by anyone, written to `*locked_out`.
///
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
/// `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `locked_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_is_locked(
    client: *const latchkey_client,
    name: *const c_char,
    locked_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_is_locked", err_out, || {
        // SAFETY: `client`, `name` and `locked_out` keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (client, name, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                Out::new(locked_out, "locked_out")?,
            )
        };
        out.write(client.client().is_locked(name)?);
        Ok(())
    })
}

/// One Redlock master's view of a lock, from latchkey_client_inspect_masters.
/// The strings belong to the array and stay valid until
/// latchkey_master_states_free.
#[repr(C)]
#[derive(Debug)]
pub struct latchkey_master_state {
    /// Which master ("redis at host:port").
    pub server: *const c_char,
    /// The owner token this master holds for the lock, or NULL if none.
    pub holder: *const c_char,
    /// Whether this master knows a fencing token for the holder.
    pub has_fencing_token: bool,
    /// That fencing token (0 when `has_fencing_token` is false).
    pub fencing_token: u64,
    /// Milliseconds until the key expires on this master; -1 if it has no
    /// expiry or the master did not say.
    pub ttl_ms: i64,
    /// Why this master did not answer, or NULL if it did.
    pub error: *const c_char,
}

impl latchkey_master_state {
    fn from_state(state: &MasterState) -> Self {
        let string = |s: &str| args::c_string(s).into_raw().cast_const();
        latchkey_master_state {
            server: string(&state.server),
            holder: state.holder.as_deref().map_or(std::ptr::null(), string),
            has_fencing_token: state.fencing_token.is_some(),
            fencing_token: state.fencing_token.unwrap_or(0),
            ttl_ms: state
                .ttl
                .map_or(-1, |ttl| i64::try_from(millis(ttl)).unwrap_or(i64::MAX)),
            error: state.error.as_deref().map_or(std::ptr::null(), string),
        }
    }

    /// Frees the strings made by `from_state`.
    fn free_strings(&self) {
        for text in [self.server, self.holder, self.error] {
            if !text.is_null() {
                // SAFETY: made by CString::into_raw in `from_state`, freed once.
                drop(unsafe { CString::from_raw(text.cast_mut()) });
            }
        }
    }
}

/// What each Redlock master says about the lock `name`: an array of
/// `*count_out` states written to `*masters_out`. A client for one server
/// (or Sentinel, Cluster), or a lock nobody holds, gives 0 states and NULL.
///
/// Ownership: free the array with latchkey_master_states_free(*masters_out,
/// *count_out).
/// Threads: any thread. Blocks: for one round trip to every master.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
/// `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_NO_QUORUM (too few masters answered to tell who holds it);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `masters_out`, `count_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_inspect_masters(
    client: *const latchkey_client,
    name: *const c_char,
    masters_out: *mut *mut latchkey_master_state,
    count_out: *mut usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_inspect_masters", err_out, || {
        // SAFETY: `client`, `name`, `masters_out` and `count_out` keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (client, name, masters, count) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                Out::new(masters_out, "masters_out")?,
                Out::new(count_out, "count_out")?,
            )
        };
        let states: Vec<latchkey_master_state> = client
            .client()
            .inspect(name)?
            .map(|info: LockInfo| info.masters)
            .unwrap_or_default()
            .iter()
            .map(latchkey_master_state::from_state)
            .collect();
        count.write(states.len());
        masters.write(if states.is_empty() {
            std::ptr::null_mut()
        } else {
            let count = states.len();
            let array = Box::into_raw(states.into_boxed_slice()).cast::<latchkey_master_state>();
            handles::register_raw(array.cast_const().cast(), Kind::MasterStates(count));
            array
        });
        Ok(())
    })
}

/// Frees an array from latchkey_client_inspect_masters, given with its
/// count. NULL is ignored.
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live array from latchkey_client_inspect_masters, or `count` is not its
/// length; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `masters` is NULL or an array from latchkey_client_inspect_masters, not
/// yet freed, and `count` its length.
#[no_mangle]
pub unsafe extern "C" fn latchkey_master_states_free(
    masters: *mut latchkey_master_state,
    count: usize,
) -> latchkey_status {
    let outcome = catch(|| {
        if !masters.is_null() {
            handles::unregister_raw(masters.cast_const(), Kind::MasterStates(count), "masters")?;
            // SAFETY: registered as a boxed slice of exactly `count`
            // states, and unregistered just now, so freed once.
            let states =
                unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(masters, count)) };
            for state in states.iter() {
                state.free_strings();
            }
        }
        Ok(())
    });
    match outcome {
        Ok(()) => latchkey_status::LATCHKEY_OK,
        Err(failure) => report(
            "latchkey_master_states_free",
            Err(failure),
            std::ptr::null_mut(),
        ),
    }
}

/// One waiter queued for a lock, from latchkey_client_inspect_queue. The
/// id belongs to the array and stays valid until
/// latchkey_queued_waiters_free.
#[repr(C)]
#[derive(Debug)]
pub struct latchkey_queued_waiter {
    /// The entry's id: "w:" and a random id, one per waiting acquisition
    /// (not the owner token it gets when it takes the lock).
    pub id: *const c_char,
    /// Milliseconds until the entry runs out unless its waiter asks again
    /// (above 0 and at most 15000: a live waiter renews it every 5 s at
    /// the latest).
    pub expires_in_ms: u64,
}

impl latchkey_queued_waiter {
    fn from_waiter(waiter: &QueuedWaiter) -> Self {
        latchkey_queued_waiter {
            id: args::c_string(&waiter.id).into_raw().cast_const(),
            expires_in_ms: millis(waiter.expires_in),
        }
    }
}

/// Who holds the lock `name` and who waits for it, in one snapshot (one
/// script): `*info_out` as latchkey_client_inspect fills it, and the live
/// queued waiters in the order a release hands the lock on (the one that
/// queued earliest first; entries that ran out, their waiter dead,
/// left out): an array of `*count_out` waiters written to `*waiters_out`,
/// and the number of live waiters to `*total_out`. At most 1000 waiters
/// are listed; `*total_out` counts them all, so it is above `*count_out`
/// when the list was cut. A new function rather than new fields of
/// latchkey_lock_info, whose size programs compiled against older headers
/// rely on.
///
/// No waiters (0, NULL and 0) when nobody waits, for a lock that is free
/// (`locked` false: even in the rare moment a release has handed it to a
/// queued waiter that has not taken it yet), and always for Redlock, whose
/// waiters do not queue (its masters share no queue).
///
/// Ownership: free the array with latchkey_queued_waiters_free(*waiters_out,
/// *count_out).
/// Threads: any thread. Blocks: for one Redis round trip (Redlock: one to
/// every master).
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
/// empty, longer than 4096 bytes or not UTF-8; the URL's database does not
/// exist); LATCHKEY_CONNECTION (Redis unreachable or no answer within the
/// command timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
/// (Redlock: too few masters answered to tell who holds it);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `info_out`, `waiters_out`, `count_out`, `total_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_client_inspect_queue(
    client: *const latchkey_client,
    name: *const c_char,
    info_out: *mut latchkey_lock_info,
    waiters_out: *mut *mut latchkey_queued_waiter,
    count_out: *mut usize,
    total_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_client_inspect_queue", err_out, || {
        // SAFETY: `client`, `name`, `info_out`, `waiters_out`, `count_out` and `total_out` keep
        // the `# Safety` contract above, all that these helpers rely on (see `args`).
        let (client, name, info_out, waiters_out, count_out, total_out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                Out::new(info_out, "info_out")?,
                Out::new(waiters_out, "waiters_out")?,
                Out::new(count_out, "count_out")?,
                Out::new(total_out, "total_out")?,
            )
        };
        let info = client.client().inspect(name)?;
        info_out.write(latchkey_lock_info::from_info(info.as_ref()));
        let (waiters, total) = info.map_or((Vec::new(), 0), |info| (info.queue, info.queue_len));
        let waiters: Vec<latchkey_queued_waiter> = waiters
            .iter()
            .map(latchkey_queued_waiter::from_waiter)
            .collect();
        total_out.write(total);
        count_out.write(waiters.len());
        waiters_out.write(if waiters.is_empty() {
            std::ptr::null_mut()
        } else {
            let count = waiters.len();
            let array = Box::into_raw(waiters.into_boxed_slice()).cast::<latchkey_queued_waiter>();
            handles::register_raw(array.cast_const().cast(), Kind::QueuedWaiters(count));
            array
        });
        Ok(())
    })
}

/// Frees an array from latchkey_client_inspect_queue, given with its count.
/// NULL is ignored.
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live array from latchkey_client_inspect_queue, or `count` is not its
/// length; nothing is freed); LATCHKEY_PANIC.
///
/// # Safety
/// `waiters` is NULL or an array from latchkey_client_inspect_queue, not
/// yet freed, and `count` its length.
#[no_mangle]
pub unsafe extern "C" fn latchkey_queued_waiters_free(
    waiters: *mut latchkey_queued_waiter,
    count: usize,
) -> latchkey_status {
    let outcome = catch(|| {
        if !waiters.is_null() {
            handles::unregister_raw(waiters.cast_const(), Kind::QueuedWaiters(count), "waiters")?;
            // SAFETY: registered as a boxed slice of exactly `count`
            // waiters, and unregistered just now, so freed once.
            let waiters =
                unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(waiters, count)) };
            for waiter in waiters.iter() {
                // SAFETY: made by CString::into_raw in `from_waiter`, freed
                // once (the array is gone from the registry).
                drop(unsafe { CString::from_raw(waiter.id.cast_mut()) });
            }
        }
        Ok(())
    });
    match outcome {
        Ok(()) => latchkey_status::LATCHKEY_OK,
        Err(failure) => report(
            "latchkey_queued_waiters_free",
            Err(failure),
            std::ptr::null_mut(),
        ),
    }
}
