//! `latchkey_guard`: proof of holding a lock, from acquire to release.

use std::ffi::{c_char, CStr, CString};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::RwLock;

use super::args::{self, c_string, millis, Out};
use super::boundary::call;
use super::error::{latchkey_error, Failure};
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;
use crate::Guard;

/// Proof of holding a lock, from a successful acquire. Its owner token,
/// fencing token and name stay readable after release, until it is freed.
///
/// Threads: thread-safe. Any thread may use it, several at once (say, one
/// thread checks or extends while another releases), except that
/// latchkey_guard_free must be the last call on it. (Calls that change it
/// take a non-const pointer; none needs exclusive access.) It is tied to no
/// thread: acquire on one thread and release on another is fine.
pub struct latchkey_guard {
    /// `None` once released. Release takes the write lock only to take the
    /// guard out; the network call happens after, outside the lock.
    guard: RwLock<Option<Guard>>,
    name: Arc<CStr>,
    token: CString,
    fencing_token: u64,
}

impl Handle for latchkey_guard {
    const KIND: Kind = Kind::Guard;
}

impl latchkey_guard {
    pub(crate) fn new_raw(guard: Guard, name: Arc<CStr>) -> *mut latchkey_guard {
        let handle = latchkey_guard {
            token: c_string(guard.token()),
            fencing_token: guard.fencing_token(),
            guard: RwLock::new(Some(guard)),
            name,
        };
        handles::into_raw(handle)
    }

    fn released(&self) -> Failure {
        Failure::new(
            latchkey_status::LATCHKEY_NOT_HELD,
            format!(
                "the guard of lock '{}' was already released",
                self.name.to_string_lossy()
            ),
        )
    }

    /// Runs `f` on the held guard, which it may end (a downgrade): an ended
    /// guard is taken out, so the handle reads as released. NOT_HELD once
    /// released. Holds the handle's lock during `f`: other calls on this
    /// guard wait for it.
    pub(crate) fn hand_over<T>(
        &self,
        f: impl FnOnce(&mut Guard) -> crate::Result<T>,
    ) -> Result<T, Failure> {
        let mut slot = self.guard.write();
        let Some(guard) = slot.as_mut() else {
            return Err(self.released());
        };
        let outcome = f(guard);
        if guard.ended() {
            *slot = None;
        }
        Ok(outcome?)
    }

    /// Runs `f` on the held guard; NOT_HELD once released.
    fn with<T>(&self, f: impl FnOnce(&Guard) -> Result<T, Failure>) -> Result<T, Failure> {
        match self.guard.read().as_ref() {
            Some(guard) => f(guard),
            None => Err(self.released()),
        }
    }
}

/// Releases the lock. The guard stays allocated (its tokens stay readable)
/// until latchkey_guard_free; releasing it again returns LATCHKEY_NOT_HELD.
///
/// LATCHKEY_NOT_HELD also means the lease had been lost (expired or
/// force-unlocked), so someone else may have held the lock meanwhile; the
/// lock is never deleted from under another owner. After any outcome the
/// guard counts as released.
///
/// Threads: any thread (see latchkey_guard). Blocks: for one Redis round
/// trip.
/// Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD; LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed: the
/// lock expires at the end of its ttl); LATCHKEY_INVALID_ARGUMENT (`guard`
/// NULL or not a live guard); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_release(
    guard: *mut latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_release", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let handle = unsafe { args::borrow(guard.cast_const(), "guard") }?;
        let taken = handle.guard.write().take();
        match taken {
            Some(guard) => Ok(guard.release()?),
            None => Err(handle.released()),
        }
    })
}

/// Frees a guard. NULL is ignored. If it was not released, it is released
/// first, best effort (errors are ignored; call latchkey_guard_release to
/// see them).
///
/// Threads: any thread, once, as the last call on this guard.
/// Blocks: for one Redis round trip if the guard was not released.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live guard: see "Handles" at the top; nothing is freed or released);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or from an acquire, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_free(guard: *mut latchkey_guard) -> latchkey_status {
    // SAFETY: `guard` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_guard_free", guard, "guard") }
}

/// Makes the lease last at least `ttl_ms` milliseconds from now (10 ms to
/// 30 days), if it is still ours. A lease with more left keeps it (Redis
/// never shortens a lease, and neither does the guard); a longer ttl
/// becomes the lease's ttl, which auto-renewal continues with. To add time
/// to what is left, see latchkey_guard_extend_by.
///
/// Threads: any thread (see latchkey_guard). Blocks: for one Redis round
/// trip.
/// Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the lease was lost or the guard
/// released; the lease is then reported lost); LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed);
/// LATCHKEY_INVALID_ARGUMENT (`guard` NULL, ttl out of range);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_extend(
    guard: *mut latchkey_guard,
    ttl_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_extend", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let handle = unsafe { args::borrow(guard.cast_const(), "guard") }?;
        handle.with(|g| Ok(g.extend(Duration::from_millis(ttl_ms))?))
    })
}

/// Adds `additional_ms` milliseconds to the time the lease has left (the
/// form of redis-py's `extend`), if it is still ours: afterwards
/// latchkey_guard_remaining_ms says what it said before plus
/// `additional_ms`, less the drift allowance. The new length becomes the
/// lease's ttl, which auto-renewal continues with.
///
/// Threads: any thread (see latchkey_guard). Blocks: for one Redis round
/// trip.
/// Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the lease was lost or the guard
/// released; the lease is then reported lost); LATCHKEY_CONNECTION,
/// LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed);
/// LATCHKEY_INVALID_ARGUMENT (`guard` NULL, the lease would exceed 30
/// days); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_extend_by(
    guard: *mut latchkey_guard,
    additional_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_extend_by", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let handle = unsafe { args::borrow(guard.cast_const(), "guard") }?;
        handle.with(|g| Ok(g.extend_by(Duration::from_millis(additional_ms))?))
    })
}

/// Whether the lease is still held: LATCHKEY_OK, or LATCHKEY_LOST with the
/// reason (renewal found the lock gone or taken, or could not confirm it
/// before it ran out). Asks the local state only, not Redis.
///
/// Threads: any thread (see latchkey_guard). Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_LOST; LATCHKEY_NOT_HELD (the guard was
/// released); LATCHKEY_INVALID_ARGUMENT (`guard` NULL); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `err_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_check(
    guard: *const latchkey_guard,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_check", err_out, || {
        // SAFETY: `guard` keeps the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let handle = unsafe { args::borrow(guard, "guard") }?;
        handle.with(|g| Ok(g.check()?))
    })
}

/// Writes whether the lease is lost (true also once the guard is released).
///
/// Threads: any thread (see latchkey_guard). Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `lost_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_lost(
    guard: *const latchkey_guard,
    lost_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_lost", err_out, || {
        // SAFETY: `guard` and `lost_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(lost_out, "lost_out")?,
            )
        };
        out.write(handle.guard.read().as_ref().is_none_or(Guard::lost));
        Ok(())
    })
}

/// Writes how many milliseconds the lease is certainly still ours, on this
/// machine's monotonic clock (ttl minus the time since the acquire or last
/// renewal was sent, minus a drift allowance); 0 once lost, expired or
/// released.
///
/// Threads: any thread (see latchkey_guard). Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `remaining_ms_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_remaining_ms(
    guard: *const latchkey_guard,
    remaining_ms_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_remaining_ms", err_out, || {
        // SAFETY: `guard` and `remaining_ms_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(remaining_ms_out, "remaining_ms_out")?,
            )
        };
        out.write(
            handle
                .guard
                .read()
                .as_ref()
                .map_or(0, |g| millis(g.remaining())),
        );
        Ok(())
    })
}

/// Writes the fencing token: strictly greater than every token issued
/// before for this lock name, never 0. Pass it to the resource you protect
/// (see latchkey_client_fenced_write).
///
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `fencing_token_out` and `err_out` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_fencing_token(
    guard: *const latchkey_guard,
    fencing_token_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_fencing_token", err_out, || {
        // SAFETY: `guard` and `fencing_token_out` keep the `# Safety` contract above, all that
        // these helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(fencing_token_out, "fencing_token_out")?,
            )
        };
        out.write(handle.fencing_token);
        Ok(())
    })
}

/// Writes the owner token stored in Redis: 32 hex digits from the OS random
/// source (what latchkey_client_inspect reports as the holder); for a
/// semaphore's permits, their number, ':' and the 32 digits.
///
/// Ownership: `*token_out` belongs to the guard; valid until
/// latchkey_guard_free.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `token_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_owner_token(
    guard: *const latchkey_guard,
    token_out: *mut *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_owner_token", err_out, || {
        // SAFETY: `guard` and `token_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(token_out, "token_out")?,
            )
        };
        out.write(handle.token.as_ptr());
        Ok(())
    })
}

/// Writes the lock's name.
///
/// Ownership: `*name_out` belongs to the guard; valid until
/// latchkey_guard_free.
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `name_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_name(
    guard: *const latchkey_guard,
    name_out: *mut *const c_char,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_name", err_out, || {
        // SAFETY: `guard` and `name_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(name_out, "name_out")?,
            )
        };
        out.write(handle.name.as_ptr());
        Ok(())
    })
}

/// Asks Redis whether this hold still owns the lock: `*held_out` is true
/// when it does. Unlike latchkey_guard_check (local state only), this sees
/// a force-unlock or an expiry at once. A guard that is released, lost or
/// inherited across fork() writes false without asking.
///
/// Threads: any thread (see latchkey_guard). Blocks: for one Redis round
/// trip (Redlock: one to every master, a quorum must agree).
/// Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
/// LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis could not tell);
/// LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `held_out` and `err_out` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_confirm(
    guard: *const latchkey_guard,
    held_out: *mut bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_confirm", err_out, || {
        // SAFETY: `guard` and `held_out` keep the `# Safety` contract above, all that these
        // helpers rely on (see `args`).
        let (handle, out) = unsafe {
            (
                args::borrow(guard, "guard")?,
                Out::new(held_out, "held_out")?,
            )
        };
        let held = match handle.guard.read().as_ref() {
            Some(g) => g.confirm()?,
            None => false,
        };
        out.write(held);
        Ok(())
    })
}

/// Writes `value` (`value_len` bytes; NULL is fine when 0) to the Redis
/// resource `resource`, fenced by this hold: refused when the resource has
/// accepted a higher fencing token, or an equal token from another hold;
/// accepted again for this same hold. `*written_out` tells whether it was
/// written, `*highest_token_out` the highest token accepted so far.
///
/// Threads: any thread (see latchkey_guard). Blocks: for one Redis round
/// trip.
/// Returns: LATCHKEY_OK (also when refused: see `*written_out`);
/// LATCHKEY_NOT_HELD (the guard was released); LATCHKEY_INVALID_ARGUMENT
/// (NULL argument, bad `resource`); LATCHKEY_CONNECTION, LATCHKEY_SERVER,
/// LATCHKEY_AUTH, LATCHKEY_NO_QUORUM; LATCHKEY_PANIC.
///
/// # Safety
/// `guard` is NULL or a live guard; `resource` is NULL or a NUL-terminated
/// string; `value` points to `value_len` readable bytes; the out pointers
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_guard_fenced_write(
    guard: *const latchkey_guard,
    resource: *const c_char,
    value: *const u8,
    value_len: usize,
    written_out: *mut bool,
    highest_token_out: *mut u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_guard_fenced_write", err_out, || {
        // SAFETY: `guard`, `resource`, `value`, `written_out` and `highest_token_out` keep the
        // `# Safety` contract above, all that these helpers rely on (see `args`).
        let (handle, resource, value, written, highest) = unsafe {
            (
                args::borrow(guard, "guard")?,
                args::string(resource, "resource")?,
                args::bytes(value, value_len, "value")?,
                Out::new(written_out, "written_out")?,
                Out::new(highest_token_out, "highest_token_out")?,
            )
        };
        let outcome = handle.with(|g| Ok(g.fenced_write(resource, value)?))?;
        written.write(outcome.written);
        highest.write(outcome.highest_token);
        Ok(())
    })
}
