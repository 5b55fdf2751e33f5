//! `latchkey_election`: leader election. A leadership is handed out as a
//! `latchkey_guard` (its fencing token is the term; releasing it resigns),
//! so every latchkey_guard_* call works on it.

use std::ffi::{c_char, CStr};
use std::sync::Arc;

use super::args::{self, c_string, Out};
use super::boundary::call;
use super::cancel::latchkey_cancel;
use super::client::latchkey_client;
use super::error::latchkey_error;
use super::guard::latchkey_guard;
use super::handles::{self, Handle, Kind};
use super::lock_options::latchkey_lock_options;
use super::status::latchkey_status;
use crate::{Election, Leader, LockOptions};

/// A named election: candidates campaign, one at a time leads (with a
/// term that increases with every leadership), observers see who leads.
///
/// Threads: fully thread-safe; share it between threads.
pub struct latchkey_election {
    election: Election,
    name: Arc<CStr>,
}

impl Handle for latchkey_election {
    const KIND: Kind = Kind::Election;
}

/// Makes a handle for the election `name` on `client`; the leaders' leases
/// have `options` (NULL for the defaults; reentrant is refused). Nothing
/// is sent to Redis yet.
///
/// Ownership: on success `*election_out` is new; free it with
/// latchkey_election_free. It keeps what it needs of `client` and
/// `options`: both may be freed before it.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
/// or `election_out`; `name` empty, longer than 4096 bytes or not UTF-8;
/// reentrant options, an option out of range; a Redlock client, whose
/// masters cannot hold one announcement); LATCHKEY_PANIC.
///
/// # Safety
/// `client` is NULL or a live client; `name` is NULL or a NUL-terminated
/// string; `options` is NULL or a live options object; `election_out` and
/// `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_election_new(
    client: *const latchkey_client,
    name: *const c_char,
    options: *const latchkey_lock_options,
    election_out: *mut *mut latchkey_election,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_election_new", err_out, || {
        // SAFETY: `client`, `name`, `options` and `election_out` keep the `# Safety`
        // contract above, all that these helpers rely on (see `args`).
        let (client, name, options, out) = unsafe {
            (
                args::borrow(client, "client")?,
                args::string(name, "name")?,
                args::optional(options, "options")?,
                Out::new(election_out, "election_out")?,
            )
        };
        let options = options.map_or_else(LockOptions::new, latchkey_lock_options::to_options);
        let election = client.client().election_with(name, options)?;
        let name = Arc::from(c_string(election.name()));
        out.write(handles::into_raw(latchkey_election { election, name }));
        Ok(())
    })
}

/// Frees an election handle. NULL is ignored. Leaderships won through it
/// stay valid.
///
/// Threads: any thread, once, when no other call uses this handle.
/// Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live election: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `election` is NULL or from latchkey_election_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_election_free(
    election: *mut latchkey_election,
) -> latchkey_status {
    // SAFETY: `election` keeps the `# Safety` contract above, all that `handles::free`
    // relies on (the registry refuses anything else).
    unsafe { handles::free("latchkey_election_free", election, "election") }
}

/// Campaigns: blocks until this candidate leads and has announced `value`
/// (`value_len` bytes, at most 65536; NULL with length 0 for none), waiting
/// without polling for at most `timeout_ms` milliseconds (0: one attempt;
/// negative: for ever). If `cancel` is not NULL, triggering it ends the
/// wait with LATCHKEY_CANCELLED.
///
/// Ownership: on success `*guard_out` is the leadership: its fencing token
/// is the term (latchkey_guard_fencing_token); check it before each piece
/// of a leader's work (latchkey_guard_check); releasing it resigns
/// (latchkey_guard_release; latchkey_guard_free releases it first if that
/// was not done), and the next candidate leads at once.
/// Threads: any thread. Blocks: until elected, the timeout, cancellation,
/// or a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (another leader throughout, or
/// too few replicas confirmed); LATCHKEY_CANCELLED; LATCHKEY_CLOSED;
/// LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
/// LATCHKEY_INVALID_ARGUMENT (NULL `election` or `guard_out`, NULL `value`
/// with a length, a value over 65536 bytes); LATCHKEY_PANIC.
///
/// # Safety
/// `election` is NULL or a live election; `value` is NULL or points to
/// `value_len` readable bytes; `cancel` is NULL or a live cancel handle
/// not freed during the call; `guard_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_election_campaign(
    election: *const latchkey_election,
    value: *const u8,
    value_len: usize,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    guard_out: *mut *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_election_campaign", err_out, || {
        // SAFETY: `election`, `value`, `cancel` and `guard_out` keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (election, value, cancel, out) = unsafe {
            (
                args::borrow(election, "election")?,
                args::bytes(value, value_len, "value")?,
                args::optional(cancel, "cancel")?,
                Out::new(guard_out, "guard_out")?,
            )
        };
        let leadership = election.election.campaign_with(
            value,
            args::timeout(timeout_ms),
            cancel.map(|c| c.token()),
        )?;
        out.write(latchkey_guard::new_raw(
            leadership.into_guard(),
            election.name.clone(),
        ));
        Ok(())
    })
}

/// Writes `leader` (or nobody) to the out parameters: see
/// latchkey_election_leader.
fn write_leader(
    leader: Option<Leader>,
    found: Out<bool>,
    term: Out<u64>,
    value_ptr: Out<*mut u8>,
    value_len: Out<usize>,
) {
    found.write(leader.is_some());
    let (leader_term, value) = leader.map_or((0, Vec::new()), |l| (l.term, l.value));
    term.write(leader_term);
    value_len.write(value.len());
    value_ptr.write(super::fenced::into_buffer(value));
}

/// Who leads now. If someone does, `*found_out` is true, `*term_out` its
/// term and `*value_out`/`*value_len_out` a copy of its value; otherwise
/// `*found_out` is false, the term 0 and the value NULL with length 0.
///
/// Ownership: free `*value_out` with latchkey_bytes_free(*value_out,
/// *value_len_out). An empty value is returned as NULL.
/// Threads: any thread. Blocks: for one Redis round trip.
/// Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
/// LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `election` is NULL or a live election; the out pointers are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_election_leader(
    election: *const latchkey_election,
    found_out: *mut bool,
    term_out: *mut u64,
    value_out: *mut *mut u8,
    value_len_out: *mut usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_election_leader", err_out, || {
        // SAFETY: `election` and the out pointers keep the `# Safety` contract above, all
        // that these helpers rely on (see `args`).
        let (election, found, term, value, value_len) = unsafe {
            (
                args::borrow(election, "election")?,
                Out::new(found_out, "found_out")?,
                Out::new(term_out, "term_out")?,
                Out::new(value_out, "value_out")?,
                Out::new(value_len_out, "value_len_out")?,
            )
        };
        let leader = election.election.leader()?;
        write_leader(leader, found, term, value, value_len);
        Ok(())
    })
}

/// Waits until the leader differs from the one whose term is `known_term`
/// (0: nobody leads), then reports the new one as latchkey_election_leader
/// does (`*found_out` false: nobody leads now). Woken by pub/sub when a
/// leader is announced or resigns, and by a leader's lease end when it
/// dies. Waits at most `timeout_ms` milliseconds (negative: for ever).
///
/// Ownership: as latchkey_election_leader.
/// Threads: any thread. Blocks: until a change, the timeout,
/// cancellation, or a Redis failure.
/// Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (no change within the timeout);
/// LATCHKEY_CANCELLED; LATCHKEY_CLOSED; LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL
/// argument); LATCHKEY_PANIC.
///
/// # Safety
/// `election` is NULL or a live election; `cancel` is NULL or a live
/// cancel handle not freed during the call; the out pointers are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_election_observe(
    election: *const latchkey_election,
    known_term: u64,
    timeout_ms: i64,
    cancel: *const latchkey_cancel,
    found_out: *mut bool,
    term_out: *mut u64,
    value_out: *mut *mut u8,
    value_len_out: *mut usize,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_election_observe", err_out, || {
        // SAFETY: `election`, `cancel` and the out pointers keep the `# Safety` contract
        // above, all that these helpers rely on (see `args`).
        let (election, cancel, found, term, value, value_len) = unsafe {
            (
                args::borrow(election, "election")?,
                args::optional(cancel, "cancel")?,
                Out::new(found_out, "found_out")?,
                Out::new(term_out, "term_out")?,
                Out::new(value_out, "value_out")?,
                Out::new(value_len_out, "value_len_out")?,
            )
        };
        let leader = election.election.observe_after(
            (known_term != 0).then_some(known_term),
            args::timeout(timeout_ms),
            cancel.map(|c| c.token()),
        )?;
        write_leader(leader, found, term, value, value_len);
        Ok(())
    })
}
