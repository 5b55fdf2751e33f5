//! The library's version.

use std::ffi::c_char;

use super::boundary::infallible;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, "MAJOR.MINOR.PATCH", as in Cargo.toml. Compare it
/// with LATCHKEY_VERSION_STRING to see whether the library a program runs
/// with is the one it was compiled against.
///
/// Ownership: static; do not free. Threads: any thread. Blocks: no.
/// Never fails.
#[no_mangle]
pub extern "C" fn latchkey_version() -> *const c_char {
    infallible(c"".as_ptr(), || VERSION.as_ptr().cast())
}
