//! Argument checks shared by every entry point. A NULL or misaligned
//! pointer, a string that is not UTF-8 or a length that cannot be a buffer
//! becomes LATCHKEY_INVALID_ARGUMENT with a message naming the argument,
//! never a crash. Handles are checked against the registry of live handles
//! (`handles`), so a wrong, freed or never-made handle is refused too.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use super::error::Failure;
use super::handles::{self, Handle};

fn check_pointer<T>(ptr: *const T, what: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{what}` is NULL")));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!(
            "`{what}` is not a properly aligned pointer"
        )));
    }
    Ok(())
}

/// A handle passed by pointer, for reading: refused unless it is a live
/// handle of type `T` (see `handles`).
///
/// # Safety
/// The handle is not freed by another thread during the returned lifetime.
pub(crate) unsafe fn borrow<'a, T: Handle>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    handles::borrow(ptr, what)
}

/// A handle passed by pointer, for changing (option setters).
///
/// # Safety
/// As [`borrow`], and nothing else uses the handle meanwhile.
pub(crate) unsafe fn borrow_mut<'a, T: Handle>(
    ptr: *mut T,
    what: &str,
) -> Result<&'a mut T, Failure> {
    handles::borrow_mut(ptr, what)
}

/// A handle that may be NULL (an optional cancel handle, optional options).
///
/// # Safety
/// As [`borrow`], when not NULL.
pub(crate) unsafe fn optional<'a, T: Handle>(
    ptr: *const T,
    what: &str,
) -> Result<Option<&'a T>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    borrow(ptr, what).map(Some)
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn string<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    check_pointer(ptr, what)?;
    CStr::from_ptr(ptr).to_str().map_err(|e| {
        Failure::invalid(format!(
            "`{what}` is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// A byte buffer given as pointer and length; NULL is fine when empty.
///
/// # Safety
/// As [`array`].
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    array(ptr, len, what)
}

/// An array given as pointer and count; NULL is fine when empty.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable elements that outlive `'a`.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    check_pointer(ptr, what)?;
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Failure::invalid(format!(
            "`{what}` is longer than any array can be ({len} elements)"
        )));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Where a result goes. It is checked before any work is done (so a bad
/// output pointer never costs an acquired lock) and written after.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// A non-NULL `ptr` must be valid for writing a `T` until [`Out::write`].
    pub(crate) unsafe fn new(ptr: *mut T, what: &str) -> Result<Self, Failure> {
        check_pointer(ptr, what)?;
        Ok(Out(NonNull::new_unchecked(ptr)))
    }

    /// Writes without reading or dropping what was there (C memory may be
    /// uninitialised).
    pub(crate) fn write(self, value: T) {
        // SAFETY: checked non-NULL and aligned in `new`, whose caller
        // promised that it is writable.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A Rust string as a C string. Names and tokens never contain NUL (the
/// Rust API refuses such names); any other text has NULs shown as `\0`.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text)
        .unwrap_or_else(|_| CString::new(text.replace('\0', "\\0")).unwrap_or_default())
}

/// A C timeout in milliseconds: negative means none (wait for ever).
pub(crate) fn timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A duration as C milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
