//! The C ABI: opaque handles, fixed status codes, a panic boundary and
//! error messages around the Rust API, and nothing else. Every entry point
//! checks its arguments, makes one call into the Rust API and translates the
//! outcome; no lock logic lives here.
//!
//! `include/latchkey.h` is generated from these files by cbindgen (see
//! `build.rs` and `cbindgen.toml`), so the doc comments below are the C
//! header's documentation and are written for C programmers.

// The names are the C names (latchkey_client, LATCHKEY_OK).
#![allow(non_camel_case_types)]

// The header follows this order (cbindgen parses the modules in turn), so
// it goes from the basics to the handles; blank lines keep rustfmt from
// sorting it.
pub mod status;

pub mod error;

pub mod version;

pub mod test_hooks;

pub mod client_options;

pub mod client;

pub mod inspect;

pub mod admin;

pub mod fenced;

pub mod lock_options;

pub mod lock;

pub mod semaphore;

pub mod election;

pub mod multi;

pub mod rwlock;

pub mod guard;

pub mod cancel;

mod args;
mod boundary;
#[cfg(test)]
mod contract;
mod handles;
#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests;
