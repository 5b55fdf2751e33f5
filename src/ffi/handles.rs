//! The registry of live C handles: every pointer the library hands to C is
//! recorded here with its type from the moment it is made until it is
//! freed, and every entry point looks a handle up before touching it.
//!
//! Why a registry rather than a tag word inside each object: reading a tag
//! from the memory of a freed handle is itself a use-after-free (ASan
//! reports it, and the allocator may have unmapped or reused the memory).
//! Looking the address up here never reads the handle, so a handle of the
//! wrong type, a freed handle and a second free are refused with
//! LATCHKEY_INVALID_ARGUMENT, and the sanitizer builds stay clean. The
//! entry is removed (the tag cleared) before the memory is released.
//!
//! What cannot be detected: once a freed handle's address is reused for a
//! new handle of the same type, the stale pointer names the new handle; and
//! a handle freed by one thread while another thread is inside a call with
//! it is still a use-after-free (the header says free must be the last
//! call). Both are documented in the header.
//!
//! The table is behind one read-write lock held for a hash lookup. A fork
//! while another thread holds it would leave the child's copy locked for
//! ever, so a pthread_atfork handler takes it around fork (and keeps the
//! guard in a static, not a thread-local: see `HeldAcrossFork`).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::{LazyLock, Once, RwLockWriteGuard};

use crate::sync::RwLock;

use super::error::Failure;

/// The type of a handle, as the registry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ClientOptions,
    Client,
    LockOptions,
    Lock,
    Semaphore,
    Election,
    MultiLock,
    MultiGuard,
    RwLock,
    Guard,
    Cancel,
    Error,
    /// A byte buffer from latchkey_client_fenced_read, with its length.
    Bytes(usize),
    /// An array from latchkey_client_inspect_masters, with its count.
    MasterStates(usize),
    /// An array from latchkey_client_inspect_queue, with its count.
    QueuedWaiters(usize),
}

impl Kind {
    fn c_name(self) -> &'static str {
        match self {
            Kind::ClientOptions => "latchkey_client_options",
            Kind::Client => "latchkey_client",
            Kind::LockOptions => "latchkey_lock_options",
            Kind::Lock => "latchkey_lock",
            Kind::Semaphore => "latchkey_semaphore",
            Kind::Election => "latchkey_election",
            Kind::MultiLock => "latchkey_multi_lock",
            Kind::MultiGuard => "latchkey_multi_guard",
            Kind::RwLock => "latchkey_rwlock",
            Kind::Guard => "latchkey_guard",
            Kind::Cancel => "latchkey_cancel",
            Kind::Error => "latchkey_error",
            Kind::Bytes(_) => "buffer from latchkey_client_fenced_read",
            Kind::MasterStates(_) => "array from latchkey_client_inspect_masters",
            Kind::QueuedWaiters(_) => "array from latchkey_client_inspect_queue",
        }
    }

    /// The same type, ignoring the length of arrays.
    fn same_type(self, other: Kind) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// A type that C holds through an opaque pointer.
pub(crate) trait Handle {
    const KIND: Kind;
}

/// Addresses are already unique and well spread above their alignment
/// bits, so a multiplication hashes them; SipHash would cost more than
/// the lookup itself.
#[derive(Default, Clone, Copy)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64 >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Table = HashMap<usize, Kind, std::hash::BuildHasherDefault<AddressHasher>>;

/// Read-mostly: every call looks up, only constructors and frees write.
static LIVE: LazyLock<RwLock<Table>> = LazyLock::new(|| {
    install_fork_handlers();
    RwLock::new(Table::default())
});

/// The write guard `prepare` takes before a fork, until `after` drops it on
/// the same thread (in the parent, and in the child, whose only thread is
/// the copy of the forking one). Not a thread-local: a fork from a thread
/// whose thread-locals are already destroyed (a pthread_key or C++
/// thread_local destructor) could not keep the guard there, and a child
/// forked while another thread held the table would find it locked for
/// ever (ffi-tests/attack_fork_tls.c: 42 of 200 such children hung).
struct HeldAcrossFork(UnsafeCell<Option<RwLockWriteGuard<'static, Table>>>);

// SAFETY: only the thread that holds LIVE's write lock touches the slot
// (`prepare` after taking it, `after` before dropping it), so every access
// is serialised by that lock.
unsafe impl Sync for HeldAcrossFork {}

static HELD_ACROSS_FORK: HeldAcrossFork = HeldAcrossFork(UnsafeCell::new(None));

fn install_fork_handlers() {
    static ONCE: Once = Once::new();
    extern "C" fn prepare() {
        // Held across fork; released again on both sides.
        let guard = LIVE.write();
        // SAFETY: this thread holds the write lock (see HeldAcrossFork).
        unsafe { *HELD_ACROSS_FORK.0.get() = Some(guard) };
    }
    extern "C" fn after() {
        // In the child this unlocks the copy of the table, which no other
        // thread can hold: the child has no other thread.
        // SAFETY: this thread took the write lock in `prepare` and still
        // holds it, inside the slot (see HeldAcrossFork).
        let guard = unsafe { (*HELD_ACROSS_FORK.0.get()).take() };
        drop(guard);
    }
    ONCE.call_once(|| {
        // SAFETY: registers three plain functions; they touch only LIVE,
        // which exists by the time any of them can run, and
        // HELD_ACROSS_FORK.
        unsafe { libc::pthread_atfork(Some(prepare), Some(after), Some(after)) };
    });
}

/// Records `pointer` as a live handle of `kind`.
pub(crate) fn register_raw(pointer: *const (), kind: Kind) {
    LIVE.write().insert(pointer as usize, kind);
}

/// Moves a handle to the heap, records it and gives C the pointer.
pub(crate) fn into_raw<T: Handle>(value: T) -> *mut T {
    let pointer = Box::into_raw(Box::new(value));
    register_raw(pointer.cast_const().cast(), T::KIND);
    pointer
}

fn not_null_and_aligned<T>(pointer: *const T, what: &str) -> Result<(), Failure> {
    if pointer.is_null() {
        return Err(Failure::invalid(format!("`{what}` is NULL")));
    }
    if !pointer.is_aligned() {
        return Err(Failure::invalid(format!(
            "`{what}` is not a properly aligned pointer"
        )));
    }
    Ok(())
}

fn mismatch(what: &str, expected: Kind, found: Option<Kind>) -> Failure {
    Failure::invalid(match found {
        None => format!(
            "`{what}` is not a live {} (it was freed already, or never made by latchkey)",
            expected.c_name()
        ),
        Some(found) if found.same_type(expected) => format!(
            "`{what}` is a {} of a different length than the one given",
            expected.c_name()
        ),
        Some(found) => format!(
            "`{what}` is a {}, not a {}",
            found.c_name(),
            expected.c_name()
        ),
    })
}

/// Checks that `pointer` is a live handle of `kind` (without reading it).
pub(crate) fn check_raw<T>(pointer: *const T, kind: Kind, what: &str) -> Result<(), Failure> {
    not_null_and_aligned(pointer, what)?;
    let found = LIVE.read().get(&(pointer as usize)).copied();
    if found == Some(kind) {
        Ok(())
    } else {
        Err(mismatch(what, kind, found))
    }
}

/// Checks a handle and lends it for the call.
///
/// # Safety
/// No other thread frees the handle during the returned lifetime (the
/// header's rule: free is the last call on a handle).
pub(crate) unsafe fn borrow<'a, T: Handle>(
    pointer: *const T,
    what: &str,
) -> Result<&'a T, Failure> {
    check_raw(pointer, T::KIND, what)?;
    // SAFETY: registered as a live `T`, so it came from `into_raw` (a Box:
    // aligned, initialised) and is not freed yet; our caller promised no
    // thread frees it during `'a`.
    Ok(unsafe { &*pointer })
}

/// As [`borrow`], for the option setters that change a handle.
///
/// # Safety
/// As [`borrow`], and no other thread uses the handle meanwhile.
pub(crate) unsafe fn borrow_mut<'a, T: Handle>(
    pointer: *mut T,
    what: &str,
) -> Result<&'a mut T, Failure> {
    check_raw(pointer.cast_const(), T::KIND, what)?;
    // SAFETY: as in `borrow`, and our caller promised that nothing else
    // uses it during `'a`, so the reference is unique.
    Ok(unsafe { &mut *pointer })
}

/// Forgets `pointer` as a live handle of `kind`, so that the caller may
/// release its memory. Refuses (and leaves alone) anything else: a handle of
/// another type, a freed one, a pointer latchkey never made.
pub(crate) fn unregister_raw<T>(pointer: *const T, kind: Kind, what: &str) -> Result<(), Failure> {
    not_null_and_aligned(pointer, what)?;
    let mut live = LIVE.write();
    let key = pointer as usize;
    match live.get(&key).copied() {
        Some(found) if found == kind => {
            live.remove(&key);
            Ok(())
        }
        found => Err(mismatch(what, kind, found)),
    }
}

/// Takes a handle back from C for freeing: its registry entry is removed
/// first, so any later use of the pointer is refused.
///
/// # Safety
/// As [`borrow`].
pub(crate) unsafe fn take<T: Handle>(pointer: *mut T, what: &str) -> Result<Box<T>, Failure> {
    unregister_raw(pointer.cast_const(), T::KIND, what)?;
    // SAFETY: it was registered as a live `T`, so it came from
    // `Box::into_raw` in `into_raw`; unregistering it succeeded only here,
    // so no other `take` owns it, and our caller promised that no other
    // thread still uses it.
    Ok(unsafe { Box::from_raw(pointer) })
}

#[cfg(test)]
pub(crate) fn is_live(pointer: *const ()) -> bool {
    LIVE.read().contains_key(&(pointer as usize))
}

/// The body of every `*_free` function: NULL is ignored; a live handle of
/// type `T` is unregistered and dropped; anything else is refused with
/// LATCHKEY_INVALID_ARGUMENT (and the thread's last error says why). A
/// successful free leaves the thread's last error alone, so a caller may
/// free its handles before reading the message of a failed call.
///
/// # Safety
/// As [`take`].
pub(crate) unsafe fn free<T: Handle>(
    function: &str,
    pointer: *mut T,
    what: &str,
) -> super::status::latchkey_status {
    use super::status::latchkey_status;
    let outcome = super::boundary::catch(|| {
        if !pointer.is_null() {
            // SAFETY: our caller's promise is the one `take` needs.
            drop(unsafe { take(pointer, what) }?);
        }
        Ok(())
    });
    match outcome {
        Ok(()) => latchkey_status::LATCHKEY_OK,
        Err(failure) => super::error::report(function, Err(failure), std::ptr::null_mut()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct First(#[allow(dead_code)] u64);
    impl Handle for First {
        const KIND: Kind = Kind::Cancel;
    }
    struct Second(#[allow(dead_code)] u64);
    impl Handle for Second {
        const KIND: Kind = Kind::Lock;
    }

    #[test]
    fn a_handle_is_live_from_creation_to_free_and_only_as_its_type() {
        let first = into_raw(First(1));
        assert!(is_live(first.cast_const().cast()));
        // SAFETY: the registry refuses the wrong type before any read.
        let wrong = unsafe { borrow(first.cast_const().cast::<Second>(), "lock") };
        assert!(wrong.is_err());
        // SAFETY: live, and freed once below.
        assert!(unsafe { borrow(first.cast_const(), "cancel") }.is_ok());
        // SAFETY: live until here; the second take is refused unread.
        unsafe {
            drop(take(first, "cancel").map_err(|f| f.message));
            assert!(!is_live(first.cast_const().cast()));
            assert!(take(first, "cancel").is_err());
        }
    }
}
