//! The check that a failover (Sentinel or Cluster) loses nobody: a holder
//! whose lease is being renewed and waiters parked on the lock live through
//! it. Afterwards every waiter gets the lock, and the holder is either still
//! renewed (the new master has its token) or reported lost; if a waiter got
//! the lock before the holder gave it back, the holder must have been told.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};

/// Lease of the holder: short, so that several renewals happen during the
/// failover, long enough for a failover to be ridden out.
const TTL: Duration = Duration::from_secs(3);

/// Runs the scenario on lock `name`: `holder` takes it, a waiter per
/// client of `waiters` parks, `until_listening` returns once they listen,
/// then `failover` runs (and returns once the new master serves).
pub fn nobody_is_lost(
    name: &str,
    holder: &Client,
    waiters: Vec<Client>,
    until_listening: impl FnOnce(),
    failover: impl FnOnce(),
) {
    let (lost_tx, lost_rx) = mpsc::channel();
    let options = LockOptions::new().ttl(TTL).on_lost(move |lost| {
        let _ = lost_tx.send(lost.reason.clone());
    });
    let guard = holder
        .lock_with(name, options)
        .unwrap()
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let waiter_count = waiters.len();
    let waiting: Vec<_> = waiters
        .into_iter()
        .map(|client| {
            let name = name.to_string();
            let released = released.clone();
            thread::spawn(move || {
                let lock = client.lock(&name).unwrap();
                let got = lock.acquire_timeout(Duration::from_secs(90));
                let early = !released.load(Ordering::SeqCst);
                let got = got.map(|g| {
                    let token = g.fencing_token();
                    g.release().unwrap();
                    token
                });
                (got, early)
            })
        })
        .collect();
    until_listening();
    failover();

    // Several renewal periods after the failover: the lease has either
    // been renewed on the new master or was reported lost by now.
    let lost = lost_rx.recv_timeout(TTL * 3).ok();
    eprintln!(
        "after the failover the holder was {}",
        lost.as_deref()
            .map_or("still renewed".to_string(), |r| format!(
                "reported lost: {r}"
            ))
    );
    match &lost {
        Some(reason) => {
            assert_eq!(
                guard.check().unwrap_err().kind(),
                ErrorKind::Lost,
                "{reason}"
            );
        }
        None => {
            assert!(guard.check().is_ok(), "neither renewed nor reported lost");
            let info = holder
                .inspect(name)
                .unwrap()
                .expect("a lease that is still renewed is held on the new master");
            assert_eq!(info.owner_token, guard.token());
        }
    }
    let holder_token = guard.fencing_token();
    released.store(true, Ordering::SeqCst);
    let _ = guard.release();
    let mut tokens = Vec::new();
    for waiter in waiting {
        let (got, early) = waiter.join().unwrap();
        let token = got.expect("every waiter gets the lock after the failover");
        assert!(token > holder_token);
        if early {
            assert!(
                lost.is_some(),
                "a waiter got the lock while the holder still believed it held it"
            );
        }
        tokens.push(token);
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        waiter_count,
        "two holders had the same fencing token"
    );
}
