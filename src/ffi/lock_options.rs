//! `latchkey_lock_options`: lease length, renewal, reentrancy, jitter and
//! the lost-lease callback, set one at a time so the ABI can grow.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::args::{self, c_string, Out};
use super::boundary::call;
use super::error::latchkey_error;
use super::handles::{self, Handle, Kind};
use super::status::latchkey_status;
use crate::{LockOptions, LostLease};

/// Called when an auto-renewed lease is lost: with the `user` pointer given
/// to latchkey_lock_options_set_on_lost, the lock's name, the lost hold's
/// owner token (the same string latchkey_guard_owner_token gives for that
/// guard: unique per acquisition, nested reentrant ones included, so it
/// names exactly one guard), its fencing token and why it was lost. `name`,
/// `owner_token` and `reason` are valid only during the call. Each hold is
/// reported at most once.
///
/// It runs on the client's renewal (watchdog) thread, not on a thread of
/// yours, possibly while your threads use the guard. Keep it short: it
/// delays other leases' renewals (so does any blocking latchkey call made
/// from it).
pub type latchkey_lost_callback = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        name: *const c_char,
        owner_token: *const c_char,
        fencing_token: u64,
        reason: *const c_char,
    ),
>;

/// Frees a `user` pointer once the library no longer needs it.
pub type latchkey_user_free = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// A C callback and its user data, shared by the options, the locks made
/// from them and their leases. Dropping the last reference calls
/// `user_free`: only then can no callback run any more.
struct LostHook {
    callback: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, u64, *const c_char),
    user: *mut c_void,
    user_free: latchkey_user_free,
}

// SAFETY: the header makes the caller promise that `user` may be used from
// any thread (the callback runs on the watchdog thread).
unsafe impl Send for LostHook {}
// SAFETY: as above; the library itself never reads through `user`.
unsafe impl Sync for LostHook {}

impl LostHook {
    fn call(&self, lost: &LostLease) {
        let name = c_string(&lost.name);
        let owner_token = c_string(&lost.token);
        let reason = c_string(&lost.reason);
        // SAFETY: the caller gave a valid function; the strings live
        // through the call.
        unsafe {
            (self.callback)(
                self.user,
                name.as_ptr(),
                owner_token.as_ptr(),
                lost.fencing_token,
                reason.as_ptr(),
            )
        }
    }
}

impl Drop for LostHook {
    fn drop(&mut self) {
        if let Some(free) = self.user_free {
            // SAFETY: the caller's function, called once with its pointer.
            unsafe { free(self.user) }
        }
    }
}

/// Options for latchkey_lock_new. Options not set keep the library's
/// defaults: ttl 30 s, auto-renewed, not reentrant, retry jitter 5 ms,
/// renewal every ttl/3, no lost-lease callback. New options come as new
/// setters, so the ABI can grow.
///
/// Values are checked by latchkey_lock_new, not by the setters.
/// Threads: not thread-safe; set it up on one thread, then it may be read
/// by latchkey_lock_new from any thread.
#[derive(Default)]
pub struct latchkey_lock_options {
    options: LockOptions,
    on_lost: Option<Arc<LostHook>>,
}

impl Handle for latchkey_lock_options {
    const KIND: Kind = Kind::LockOptions;
}

impl latchkey_lock_options {
    fn update(&mut self, change: impl FnOnce(LockOptions) -> LockOptions) {
        self.options = change(std::mem::take(&mut self.options));
    }

    /// The Rust options, with the C callback (if any) wrapped.
    pub(crate) fn to_options(&self) -> LockOptions {
        let options = self.options.clone();
        match &self.on_lost {
            Some(hook) => {
                let hook = hook.clone();
                options.on_lost(move |lost| {
                    // The chaos self-test's broken variant (src/chaos.rs).
                    if !crate::chaos::variant("c-lost-callback-never-runs") {
                        hook.call(lost)
                    }
                })
            }
            None => options,
        }
    }
}

/// Makes an options object with every option unset.
///
/// Ownership: on success `*options_out` is new; free it with
/// latchkey_lock_options_free (any time after latchkey_lock_new).
/// Threads: any thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options_out` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options_out` and `err_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_new(
    options_out: *mut *mut latchkey_lock_options,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_new", err_out, || {
        // SAFETY: `options_out` keeps the `# Safety` contract above, all that `Out::new` relies
        // on (see `args`).
        let out = unsafe { Out::new(options_out, "options_out") }?;
        out.write(handles::into_raw(latchkey_lock_options::default()));
        Ok(())
    })
}

/// Frees an options object. NULL is ignored. Locks made from it keep their
/// options (and their callback).
///
/// Threads: any thread, once. Blocks: no.
/// Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
/// live options object: see "Handles" at the top; nothing is freed);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or from latchkey_lock_options_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_free(
    options: *mut latchkey_lock_options,
) -> latchkey_status {
    // SAFETY: `options` keeps the `# Safety` contract above, all that `handles::free` relies on
    // (the registry refuses anything else).
    unsafe { handles::free("latchkey_lock_options_free", options, "options") }
}

/// Sets the lease length in milliseconds (10 ms to 30 days; checked by
/// latchkey_lock_new). With auto-renew the lease is renewed every ttl/3;
/// without it the lock is gone after ttl.
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_ttl_ms(
    options: *mut latchkey_lock_options,
    ttl_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_ttl_ms", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.ttl(Duration::from_millis(ttl_ms)));
        Ok(())
    })
}

/// Sets whether the client's renewal thread keeps the lease alive while it
/// is held (default true).
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_auto_renew(
    options: *mut latchkey_lock_options,
    auto_renew: bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_auto_renew", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.auto_renew(auto_renew));
        Ok(())
    })
}

/// Sets whether one lock handle may acquire again while it holds the lock
/// (default false). Each acquire needs its own release.
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_reentrant(
    options: *mut latchkey_lock_options,
    reentrant: bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_reentrant", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.reentrant(reentrant));
        Ok(())
    })
}

/// Sets whether the lock is fair (default false): first come, first served
/// across processes and languages; no fair caller, not even a try, takes a
/// free lock while a waiter that queued before it waits. A waiter that died
/// holds the ones behind it up for at most about 20 s. Not with
/// reentrant, not on Redlock: latchkey_lock_new refuses both with
/// LATCHKEY_INVALID_ARGUMENT. See the README's "Fair locks".
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_fair(
    options: *mut latchkey_lock_options,
    fair: bool,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_fair", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.fair(fair));
        Ok(())
    })
}

/// Sets the upper bound, in milliseconds, of the random pause before
/// retrying when a holder's lease ran out (0 to 10000, default 5; checked by
/// latchkey_lock_new). It keeps many waiters from retrying at once.
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_retry_jitter_ms(
    options: *mut latchkey_lock_options,
    jitter_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_retry_jitter_ms", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.retry_jitter(Duration::from_millis(jitter_ms)));
        Ok(())
    })
}

/// Sets how often, in milliseconds, the renewal thread renews the lease
/// (default a third of the ttl; must be above 0 and below the ttl, checked
/// by latchkey_lock_new).
///
/// Threads: see latchkey_lock_options. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_renew_every_ms(
    options: *mut latchkey_lock_options,
    period_ms: u64,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_renew_every_ms", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that `args::borrow_mut`
        // relies on (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.update(|o| o.renew_every(Duration::from_millis(period_ms)));
        Ok(())
    })
}

/// Sets the callback run when an auto-renewed lease of a lock made with
/// these options is lost (see latchkey_lost_callback), replacing any
/// earlier one; a NULL `callback` removes it (`user` and `user_free` are
/// then ignored). Locks already made keep the callback they were made with.
///
/// Ownership: on success the library keeps `user` and calls
/// `user_free(user)` (if not NULL) exactly once when no callback can run
/// any more: after these options, every lock made from them and every guard
/// of those locks are freed. That call may come from any thread, including
/// the renewal thread. A replaced or removed callback's `user_free` follows
/// the same rule, so it may run during this call. On failure `user` is not
/// taken.
/// Threads: see latchkey_lock_options; `user` must be usable from any
/// thread. Blocks: no.
/// Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
/// LATCHKEY_PANIC.
///
/// # Safety
/// `options` is NULL or a live options object not used by another thread;
/// `callback` and `user_free` are NULL or functions callable from any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn latchkey_lock_options_set_on_lost(
    options: *mut latchkey_lock_options,
    callback: latchkey_lost_callback,
    user: *mut c_void,
    user_free: latchkey_user_free,
    err_out: *mut *mut latchkey_error,
) -> latchkey_status {
    call("latchkey_lock_options_set_on_lost", err_out, || {
        // SAFETY: `options` keeps the `# Safety` contract above, all that these helpers rely on
        // (see `args`).
        let options = unsafe { args::borrow_mut(options, "options") }?;
        options.on_lost = callback.map(|callback| {
            Arc::new(LostHook {
                callback,
                user,
                user_free,
            })
        });
        Ok(())
    })
}
