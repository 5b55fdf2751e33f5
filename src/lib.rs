//! # latchkey
//!
//! Distributed locks over Redis that never lose a lease silently.
//!
//! - `SET NX PX` and Lua scripts for acquire, owner-checked release and extend;
//! - one watchdog thread per [`Client`] renews every auto-renewed lease and
//!   reports a lost one ([`Guard::check`], [`Guard::lost`], a callback);
//! - fencing tokens that only grow, even across a Redis restart that loses
//!   the counter;
//! - waiters woken by pub/sub, not by polling;
//! - the same core behind a C ABI for C, Python and Go.
//!
//! ```
//! # fn main() -> latchkey::Result<()> {
//! # let url = std::env::var("LATCHKEY_TEST_URL").expect("LATCHKEY_TEST_URL names a redis-server for the examples; tools/with-redis starts one");
//! use std::time::Duration;
//! use latchkey::{Client, LockOptions};
//!
//! let client = Client::open(&url)?;
//! let lock = client.lock_with("nightly-report", LockOptions::new().ttl(Duration::from_secs(10)))?;
//! let guard = lock.acquire_timeout(Duration::from_secs(30))?;
//! // Give the fencing token to the resource, so a stale holder is refused.
//! client.fenced_write("report-output", guard.fencing_token(), b"done")?;
//! guard.check()?;   // Err(Lost) if the lease was lost meanwhile
//! guard.release()?; // Err(NotHeld) if it was no longer ours
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
// Every unsafe operation sits in its own `unsafe` block (also inside an
// `unsafe fn`), with a `// SAFETY:` comment saying why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod acquire;
mod backend;
mod chaos;
mod client;
mod close;
mod election;
mod error;
// The C ABI (`include/latchkey.h`). Public only so that its symbols are
// exported; Rust callers use the API above.
#[doc(hidden)]
pub mod ffi;
mod fork;
mod glob;
mod info;
mod keys;
mod lease;
mod lock;
mod multi;
mod net;
mod pubsub;
mod rwlock;
mod scripts;
mod semaphore;
mod shared;
mod signals;
mod sync;
mod thread;
mod tls;
mod validity;
mod wait;
mod watchdog;

pub use client::{
    Client, ClientBuilder, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX,
};
pub use election::{Election, Leader, Leadership, MAX_LEADER_VALUE};
pub use error::{Error, ErrorKind, Result};
pub use info::{
    FencedWrite, LockInfo, MasterState, PermitHolder, QueuedWaiter, RwLockInfo, SemaphoreInfo,
    MAX_REPORTED_WAITERS,
};
pub use keys::{DEFAULT_FENCE_RETENTION, MAX_NAME_LEN};
pub use lease::{LostCallback, LostLease};
pub use lock::{Guard, Lock, LockOptions, MAX_TTL, MIN_TTL};
pub use multi::{MultiGuard, MultiLock, MAX_MULTI_LOCK_NAMES};
pub use rwlock::RwLock;
pub use semaphore::{Semaphore, MAX_PERMITS};
pub use wait::CancelToken;
