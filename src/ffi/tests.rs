//! Unit tests of the C boundary that need no Redis: the header, the fixed
//! numbers, argument checks, the panic boundary and error reporting. The C
//! tests in `ffi-tests/` exercise the same ABI from C against a real server.

use std::ffi::{c_char, CStr};
use std::ptr;

use super::client::*;
use super::error::*;
use super::guard::*;
use super::lock::*;
use super::lock_options::*;
use super::status::latchkey_status::{self, *};
use super::status::*;
use super::test_hooks::*;
use super::version::*;
use crate::ErrorKind;

fn text(ptr: *const c_char) -> String {
    assert!(!ptr.is_null());
    // SAFETY: the library returns NUL-terminated strings.
    // Lossy: a test compares the text, an invalid byte would show as U+FFFD.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn committed_header_is_fresh() {
    let fresh = include_str!(concat!(env!("OUT_DIR"), "/latchkey.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/latchkey.h");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/latchkey.h differs from what cbindgen generates from src/ffi; \
         regenerate it with `make header` and commit it"
    );
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = include_str!(concat!(env!("OUT_DIR"), "/latchkey.h"));
    for (name, value) in [
        ("LATCHKEY_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("LATCHKEY_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("LATCHKEY_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
        (
            "LATCHKEY_VERSION_STRING",
            concat!("\"", env!("CARGO_PKG_VERSION"), "\""),
        ),
    ] {
        let line = format!("#define {name} {value}\n");
        assert!(header.contains(&line), "the header lacks `{line}`");
    }
    assert_eq!(text(latchkey_version()), env!("CARGO_PKG_VERSION"));
}

#[test]
fn status_numbers_never_change() {
    let fixed = [
        (LATCHKEY_OK, 0),
        (LATCHKEY_INVALID_ARGUMENT, 1),
        (LATCHKEY_TIMEOUT, 2),
        (LATCHKEY_NOT_HELD, 3),
        (LATCHKEY_LOST, 4),
        (LATCHKEY_CANCELLED, 5),
        (LATCHKEY_CONNECTION, 6),
        (LATCHKEY_SERVER, 7),
        (LATCHKEY_PANIC, 8),
        (LATCHKEY_NO_QUORUM, 9),
        (LATCHKEY_AUTH, 10),
    ];
    for (status, number) in fixed {
        assert_eq!(status as i32, number, "{status:?}");
    }
    assert_eq!(text(latchkey_status_name(99)), "unknown status");
    assert_eq!(text(latchkey_status_name(-1)), "unknown status");
    assert_eq!(text(latchkey_status_name(0)), "ok");
}

#[test]
fn kinds_map_to_statuses_with_the_same_names() {
    let kinds = [
        ErrorKind::InvalidArgument,
        ErrorKind::Timeout,
        ErrorKind::NotHeld,
        ErrorKind::Lost,
        ErrorKind::Cancelled,
        ErrorKind::Connection,
        ErrorKind::Server,
        ErrorKind::NoQuorum,
        ErrorKind::Auth,
        ErrorKind::Closed,
    ];
    for kind in kinds {
        let status = latchkey_status::from(kind);
        assert_eq!(text(latchkey_status_name(status as i32)), kind.name());
    }
}

#[test]
fn a_panic_becomes_a_status_with_a_message() {
    let mut err: *mut latchkey_error = ptr::null_mut();
    // SAFETY: err is a valid out pointer.
    let status = unsafe { latchkey_debug_panic(&mut err) };
    assert_eq!(status, LATCHKEY_PANIC);
    // SAFETY: err came from the call above and is freed once.
    unsafe {
        assert_eq!(latchkey_error_status(err), LATCHKEY_PANIC);
        let message = text(latchkey_error_message(err));
        assert!(message.starts_with("latchkey_debug_panic: "), "{message}");
        assert!(message.contains("deliberate panic"), "{message}");
        latchkey_error_free(err);
    }
    assert!(last_message().contains("deliberate panic"));
}

#[test]
fn null_arguments_are_invalid_and_named() {
    let mut err: *mut latchkey_error = ptr::null_mut();
    let mut client: *mut latchkey_client = ptr::null_mut();
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        let status = latchkey_client_open(ptr::null(), ptr::null(), &mut client, &mut err);
        assert_eq!(status, LATCHKEY_INVALID_ARGUMENT);
        assert!(
            client.is_null(),
            "out parameters are written only on success"
        );
        assert_eq!(
            text(latchkey_error_message(err)),
            "latchkey_client_open: `url` is NULL"
        );
        assert_eq!(last_message(), "latchkey_client_open: `url` is NULL");
        latchkey_error_free(err);

        let status = latchkey_guard_release(ptr::null_mut(), ptr::null_mut());
        assert_eq!(status, LATCHKEY_INVALID_ARGUMENT);
        assert_eq!(last_message(), "latchkey_guard_release: `guard` is NULL");

        // Destructors accept NULL; accessors of NULL errors are harmless.
        latchkey_client_free(ptr::null_mut());
        latchkey_lock_free(ptr::null_mut());
        latchkey_guard_free(ptr::null_mut());
        latchkey_error_free(ptr::null_mut());
        assert_eq!(latchkey_error_status(ptr::null()), LATCHKEY_OK);
        assert_eq!(text(latchkey_error_message(ptr::null())), "");
        assert!(!latchkey_error_is_busy(ptr::null()));
    }
}

/// A core error the deployment answered "not now" to keeps that mark in
/// C; any other does not.
#[test]
fn a_busy_answer_is_marked_on_the_error() {
    use crate::{Error, ErrorKind};
    for (error, busy) in [
        (
            Error::new(ErrorKind::NoQuorum, "young masters").answered_busy(),
            true,
        ),
        (Error::new(ErrorKind::NoQuorum, "masters down"), false),
    ] {
        let mut err: *mut latchkey_error = ptr::null_mut();
        let status = super::error::report("f", Err(error.into()), &mut err);
        assert_eq!(status, LATCHKEY_NO_QUORUM);
        // SAFETY: err came from report and is freed once.
        unsafe {
            assert_eq!(latchkey_error_is_busy(err), busy);
            latchkey_error_free(err);
        }
    }
}

#[test]
fn success_clears_the_errors() {
    let url = c"redis://127.0.0.1:1";
    let mut err: *mut latchkey_error = ptr::NonNull::dangling().as_ptr(); // garbage in
    let mut client: *mut latchkey_client = ptr::null_mut();
    // SAFETY: valid pointers; the client is freed once.
    unsafe {
        let _ = latchkey_debug_panic(ptr::null_mut());
        assert_ne!(last_message(), "");
        let status = latchkey_client_open(url.as_ptr(), ptr::null(), &mut client, &mut err);
        assert_eq!(status, LATCHKEY_OK);
        assert!(err.is_null(), "err_out is set to NULL on success");
        assert!(!client.is_null());
        assert_eq!(last_message(), "");
        latchkey_client_free(client);
    }
}

#[test]
fn strings_must_be_utf8_and_options_in_range() {
    let mut client: *mut latchkey_client = ptr::null_mut();
    let mut lock: *mut latchkey_lock = ptr::null_mut();
    let mut options: *mut latchkey_lock_options = ptr::null_mut();
    let bad = [b'a', 0xff, b'b', 0];
    // SAFETY: valid pointers; each handle is freed once.
    unsafe {
        let url = c"redis://127.0.0.1:1";
        assert_eq!(
            latchkey_client_open(url.as_ptr(), ptr::null(), &mut client, ptr::null_mut()),
            LATCHKEY_OK
        );
        let status = latchkey_lock_new(
            client,
            bad.as_ptr().cast(),
            ptr::null(),
            &mut lock,
            ptr::null_mut(),
        );
        assert_eq!(status, LATCHKEY_INVALID_ARGUMENT);
        assert!(last_message().contains("not valid UTF-8"));

        assert_eq!(
            latchkey_lock_options_new(&mut options, ptr::null_mut()),
            LATCHKEY_OK
        );
        assert_eq!(
            latchkey_lock_options_set_ttl_ms(options, 0, ptr::null_mut()),
            LATCHKEY_OK
        );
        let status = latchkey_lock_new(client, c"a".as_ptr(), options, &mut lock, ptr::null_mut());
        assert_eq!(status, LATCHKEY_INVALID_ARGUMENT);
        assert!(last_message().contains("ttl"), "{}", last_message());
        assert!(lock.is_null());
        latchkey_lock_options_free(options);
        latchkey_client_free(client);
    }
}

#[test]
fn misaligned_pointers_are_refused() {
    let mut storage = [0u64; 2];
    let misaligned = storage
        .as_mut_ptr()
        .cast::<u8>()
        .wrapping_add(1)
        .cast::<*mut latchkey_client>();
    // SAFETY: the misaligned pointer is refused before any write.
    let status = unsafe {
        latchkey_client_open(
            c"redis://127.0.0.1:1".as_ptr(),
            ptr::null(),
            misaligned,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, LATCHKEY_INVALID_ARGUMENT);
    assert!(last_message().contains("aligned"));
    assert_eq!(storage, [0, 0]);
}

#[test]
fn text_with_nul_is_shown_not_cut() {
    assert_eq!(super::args::c_string("a\0b").as_bytes(), b"a\\0b");
    assert_eq!(super::args::c_string("plain").as_bytes(), b"plain");
}
