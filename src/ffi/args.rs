//! Argument checks shared by every entry point. A NULL or misaligned
//! pointer, a string that is not UTF-8 or a length that cannot be a buffer
//! becomes LATCHKEY_INVALID_ARGUMENT with a message naming the argument,
//! never a crash. Handles are checked against the registry of live handles
//! (`handles`), so a wrong, freed or never-made handle is refused too.
//!
//! # The argument contract
//!
//! What cannot be checked, the caller of an entry point promises in its
//! `# Safety` section (the header's "Arguments" and "Handle checks"
//! conventions). The helpers here rely on exactly that, and on nothing
//! more, so an entry point calls them in one `unsafe` block whose SAFETY
//! comment points back to its own `# Safety` section:
//!
//! - a handle ([`borrow`], [`optional`]) is NULL or is not freed by another
//!   thread before the call returns (free is the last call on a handle);
//!   [`borrow_mut`] (the options setters) also needs no other thread to use
//!   it during the call;
//! - a string ([`string`]) is NULL or NUL-terminated, readable until the
//!   call returns;
//! - a buffer or array ([`bytes`], [`array`]) of `len` elements is NULL
//!   (only if `len` is 0) or points to `len` readable elements;
//! - an output ([`Out::new`]) is NULL or writable until the call returns.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use super::error::Failure;
use super::handles::Handle;

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

// A handle passed by pointer, for reading (`borrow`) or for changing (the
// option setters: `borrow_mut`): refused unless it is a live handle of
// type `T`.
pub(crate) use super::handles::{borrow, borrow_mut};

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
    // SAFETY: not NULL, so live for the call as our caller promised.
    unsafe { borrow(ptr, what) }.map(Some)
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn string<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    check_pointer(ptr, what)?;
    // SAFETY: not NULL (checked), so NUL-terminated and alive for `'a` as
    // our caller promised.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|e| {
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
    // SAFETY: our caller's promise is the one `array` needs.
    unsafe { array(ptr, len, what) }
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
    // SAFETY: `len` > 0, so `ptr` is not NULL (checked) and points to `len`
    // readable elements alive for `'a`, as our caller promised; aligned
    // (checked) and at most isize::MAX bytes long (checked).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An array of `count` NUL-terminated UTF-8 strings.
///
/// # Safety
/// As [`array`] for `strings`, and [`string`] for each of them.
pub(crate) unsafe fn strings<'a>(
    strings: *const *const c_char,
    count: usize,
    what: &str,
) -> Result<Vec<&'a str>, Failure> {
    // SAFETY: our caller promised what `array` needs for `strings`.
    let strings = unsafe { array(strings, count, what) }?;
    strings
        .iter()
        .enumerate()
        // SAFETY: our caller promised what `string` needs for each one.
        .map(|(i, s)| unsafe { string(*s, &format!("{what}[{i}]")) })
        .collect()
}

/// Where a result goes. It is checked before any work is done (so a bad
/// output pointer never costs an acquired lock) and written after.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// A non-NULL `ptr` must be valid for writing a `T` until [`Out::write`].
    pub(crate) unsafe fn new(ptr: *mut T, what: &str) -> Result<Self, Failure> {
        check_pointer(ptr, what)?;
        NonNull::new(ptr)
            .map(Out)
            .ok_or_else(|| Failure::invalid(format!("`{what}` is NULL")))
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
