//! The Rust fair waiter of tests/fair_interop.rs: the test binary itself,
//! run again by that test with `LATCHKEY_FAIR_WAITER` set to
//! `URL\tNAME\tRECORD\tLABEL` (so nothing needs building besides the test).
//!
//! One process holds several waiters of one fair lock, all through one
//! client. Each line on stdin is a waiter's sequence number SEQ: a thread
//! starts at once and acquires NAME (fair, waiting up to 120 s); holding
//! it, it appends "SEQ LABEL FENCING_TOKEN\n" to RECORD with one write(2)
//! to a file opened with O_APPEND (so lines from every process stay whole
//! and in the order the holds happened), then releases. At the end of
//! input the process waits for its waiters and fails (panics, so the test
//! harness exits non-zero) unless every one got the lock, wrote its line
//! and released; failures go to stderr. The test starts a waiter only once
//! the previous one is queued in Redis.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use latchkey::{Client, LockOptions};

/// The environment variable that makes the test binary a waiter process.
pub const ENV: &str = "LATCHKEY_FAIR_WAITER";

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(120);

/// The arguments of a waiter process, from [`ENV`], if it is one.
pub fn from_env() -> Option<[String; 4]> {
    let value = std::env::var(ENV).ok()?;
    let fields: Vec<String> = value.split('\t').map(str::to_string).collect();
    Some(
        fields
            .try_into()
            .unwrap_or_else(|_| panic!("{ENV} is not URL\\tNAME\\tRECORD\\tLABEL: {value:?}")),
    )
}

/// The value of [`ENV`] for a waiter process.
pub fn env_value(url: &str, name: &str, record: &str, label: &str) -> String {
    [url, name, record, label].join("\t")
}

fn wait_for_lock(
    client: &Client,
    name: &str,
    record: &File,
    label: &str,
    seq: u64,
) -> Result<(), String> {
    let lock = client
        .lock_with(name, LockOptions::new().fair(true))
        .map_err(|e| format!("lock: {e}"))?;
    let guard = lock
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .map_err(|e| format!("acquire: {e}"))?;
    let line = format!("{seq} {label} {}\n", guard.fencing_token());
    // One write_all of a short line to a regular file is one write(2).
    let written = (&*record).write_all(line.as_bytes());
    guard.release().map_err(|e| format!("release: {e}"))?;
    written.map_err(|e| format!("cannot append to the record: {e}"))
}

/// Runs the waiter process until the end of its input and its waiters.
pub fn run([url, name, record, label]: [String; 4]) {
    let record = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record)
        .unwrap_or_else(|e| panic!("rust-waiter {label}: cannot open {record}: {e}"));
    let client = Client::open(&url).unwrap_or_else(|e| panic!("rust-waiter {label}: open: {e}"));
    let shared = Arc::new((client, name, record, label.clone()));
    let mut waiters = Vec::new();
    for command in std::io::stdin().lock().lines() {
        let command = command.expect("stdin");
        let seq: u64 = command
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("rust-waiter {label}: bad command {command:?}"));
        let shared = shared.clone();
        waiters.push(thread::spawn(move || {
            let (client, name, record, label) = &*shared;
            let outcome = wait_for_lock(client, name, record, label, seq);
            if let Err(e) = &outcome {
                eprintln!("rust-waiter {label}: waiter {seq}: {e}");
            }
            outcome.is_ok()
        }));
    }
    let failed = waiters
        .into_iter()
        .map(|w| w.join().unwrap_or(false))
        .filter(|ok| !ok)
        .count();
    assert_eq!(failed, 0, "rust-waiter {label}: {failed} waiters failed");
}
