//! How a script's text is put together: the helpers of `head.lua`, then
//! the script's fast path (the part of its file before a line
//! `-- @prelude`, if it has one), then the shared `prelude.lua`, then the
//! rest of its file. The prelude defines dozens of helper closures, which
//! costs Redis more than a script's common case (an ordinary lock found
//! free, released with nobody queued): that case runs, and returns, before
//! them.
//!
//! This file depends on nothing else of the crate: the integration tests
//! include it, to send a script exactly as the library does.

/// Helpers a fast path may use.
pub const HEAD: &str = include_str!("head.lua");
/// Helpers for the rest of every script.
pub const PRELUDE: &str = include_str!("prelude.lua");
/// The line that ends a script's fast path.
pub const PRELUDE_MARK: &str = "-- @prelude\n";

/// The text Redis runs for the script whose file holds `body`.
pub fn assemble(body: &str) -> String {
    match body.split_once(PRELUDE_MARK) {
        Some((fast, rest)) => format!("{HEAD}{fast}{PRELUDE}{rest}"),
        None => format!("{HEAD}{PRELUDE}{body}"),
    }
}
