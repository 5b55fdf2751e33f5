//! The state a client shares with its locks and guards. The lock code talks
//! to this narrow handle, never to the client's builder or API.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, FencedWriteArgs};
use crate::close::Closing;
use crate::error::{Error, ErrorKind, Result};
use crate::info::FencedWrite;
use crate::keys::{validate_name, LockKeys};
use crate::pubsub::{Subscriber, Watch};
use crate::wait::Parker;
use crate::watchdog::Watchdog;

/// What a [`Client`](crate::Client) shares with every lock it makes: the
/// backend, the release listeners, the watchdog and the key settings.
pub(crate) struct ClientShared {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) prefix: String,
    /// One release listener per server that publishes releases.
    pub(crate) subscribers: Vec<Subscriber>,
    pub(crate) watchdog: Watchdog,
    /// See [`ClientBuilder::fence_retention`](crate::ClientBuilder::fence_retention).
    pub(crate) fence_retention: Duration,
    /// Whether the client was closed, and what a close ends.
    pub(crate) closing: Closing,
}

impl ClientShared {
    pub(crate) fn fenced_key(&self, resource: &str) -> Result<Vec<u8>> {
        validate_name(resource)?;
        Ok(format!("{}:fenced:{{{resource}}}", self.prefix).into_bytes())
    }

    /// A fenced write by the hold `holder` ("" when only a token is known).
    pub(crate) fn fenced_write(
        &self,
        resource: &str,
        token: u64,
        holder: &str,
        value: &[u8],
    ) -> Result<FencedWrite> {
        let key = self.fenced_key(resource)?;
        if token == 0 {
            return Err(Error::invalid(
                "a fencing token is never 0; pass the guard's fencing_token()",
            ));
        }
        self.backend.fenced_write(&FencedWriteArgs {
            key: &key,
            resource,
            token,
            holder,
            value,
        })
    }

    /// The deployment moved to another master: listen for releases there
    /// (every waiter wakes and tries again) and re-check every lease now,
    /// so one the new master does not have is reported lost at once.
    pub(crate) fn master_switched(&self) {
        for subscriber in &self.subscribers {
            subscriber.reconnect();
        }
        self.watchdog.renew_all_now();
    }

    /// See [`Client::close`](crate::Client::close).
    pub(crate) fn close(&self) -> Result<()> {
        self.closing.close(&self.releaser())
    }

    /// What releases this client's holds when it closes.
    pub(crate) fn releaser(&self) -> crate::close::Releaser<'_> {
        crate::close::Releaser {
            backend: self.backend.as_ref(),
            watchdog: &self.watchdog,
            subscribers: &self.subscribers,
        }
    }

    /// Listens for release messages on `channels` on every server that
    /// publishes them, waking `parker` (see `Subscriber::watch` for `seen`,
    /// `hold` and `waiter`). A server that cannot be reached is left out
    /// (the waiter looks again by itself); one that refuses the
    /// subscription (the Redis user lacks the permission: a server error)
    /// fails with `what` ("acquiring lock 'x'") as context.
    pub(crate) fn watch_releases(
        &self,
        channels: &[&[u8]],
        parker: &Arc<Parker>,
        seen: u64,
        hold: &str,
        waiter: &str,
        what: &dyn std::fmt::Display,
    ) -> Result<Vec<Watch>> {
        let mut watches = Vec::new();
        for subscriber in &self.subscribers {
            for channel in channels {
                match subscriber.watch(channel, parker, seen, hold, waiter) {
                    Ok(watch) => watches.push(watch),
                    Err(e) if e.kind() == ErrorKind::Server => return Err(e.context(what)),
                    Err(_) => {}
                }
            }
        }
        Ok(watches)
    }

    /// The keys of lock `name` on this client.
    pub(crate) fn keys(&self, name: &str) -> Result<LockKeys> {
        let mut keys = LockKeys::new(&self.prefix, name)?;
        keys.fence_retention = self.fence_retention;
        Ok(keys)
    }

    /// The keys of election `name` on this client.
    pub(crate) fn election_keys(&self, name: &str) -> Result<LockKeys> {
        let mut keys = LockKeys::election(&self.prefix, name)?;
        keys.fence_retention = self.fence_retention;
        Ok(keys)
    }

    /// The writer's and the readers' keys of read-write lock `name`.
    pub(crate) fn rw_keys(&self, name: &str) -> Result<(LockKeys, LockKeys)> {
        let mut writer = LockKeys::rw_writer(&self.prefix, name)?;
        let mut readers = LockKeys::rw_readers(&self.prefix, name)?;
        writer.fence_retention = self.fence_retention;
        readers.fence_retention = self.fence_retention;
        Ok((writer, readers))
    }

    /// The keys of semaphore `name` on this client.
    pub(crate) fn semaphore_keys(&self, name: &str) -> Result<LockKeys> {
        let mut keys = LockKeys::semaphore(&self.prefix, name)?;
        keys.fence_retention = self.fence_retention;
        Ok(keys)
    }
}
