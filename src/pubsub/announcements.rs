//! A subscription that is not for waiters: it hands every message on a few
//! fixed channels to a callback, and reconnects by itself until dropped.
//! The Sentinel backend listens this way for the sentinels' failover
//! announcements, so a client moves to a new master when it is promoted
//! rather than when the old one next fails a command.

use std::io::{BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::{Condvar, Mutex};

use super::{encode_command, open_stream, read_reply, PubSubEndpoint, Reply, Stream};

/// Called with (channel, payload) for every message heard.
pub(crate) type OnAnnouncement = Arc<dyn Fn(&[u8], &[u8]) + Send + Sync>;

/// The first pause before connecting again after a failure, and the
/// longest: an unreachable sentinel is tried again every few seconds,
/// which costs nothing noticeable and keeps a recovered one useful.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// How several listeners' first connections went: a caller can wait for
/// the first confirmed subscription, or until every first attempt failed.
pub(crate) struct Subscribed {
    /// (connections that confirmed, listeners whose first attempt ended)
    counts: Mutex<(u64, usize)>,
    listeners: usize,
    changed: Condvar,
}

impl Subscribed {
    pub(crate) fn new(listeners: usize) -> Self {
        Subscribed {
            counts: Mutex::new((0, 0)),
            listeners,
            changed: Condvar::new(),
        }
    }

    fn confirmed(&self) {
        self.counts.lock().0 += 1;
        self.changed.notify_all();
    }

    fn first_attempt_ended(&self) {
        self.counts.lock().1 += 1;
        self.changed.notify_all();
    }

    /// Waits until some listener confirmed, every first attempt failed, or
    /// `limit` passed; true when one confirmed.
    pub(crate) fn wait(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut counts = self.counts.lock();
        while counts.0 == 0 && counts.1 < self.listeners {
            if self.changed.wait_until(&mut counts, deadline).timed_out() {
                break;
            }
        }
        counts.0 > 0
    }
}

/// A listener thread and its connection; dropping it closes both.
pub(crate) struct Announcements {
    state: Arc<(Mutex<ListenerState>, Condvar)>,
}

#[derive(Default)]
struct ListenerState {
    closed: bool,
    /// The open connection, kept to shut it down on drop (which ends the
    /// blocked read).
    stream: Option<Stream>,
}

impl Announcements {
    /// Starts listening on `channels` of the server `endpoint` names.
    /// Returns `None` when no thread could be started (the caller then
    /// learns of changes the slower way, from failing commands).
    /// Each connection that confirms its subscriptions counts in `subscribed`.
    pub(crate) fn start(
        endpoint: PubSubEndpoint,
        channels: Vec<Vec<u8>>,
        on_message: OnAnnouncement,
        subscribed: Arc<Subscribed>,
    ) -> Option<Announcements> {
        let state = Arc::new((Mutex::new(ListenerState::default()), Condvar::new()));
        let thread_state = state.clone();
        crate::thread::spawn("latchkey-announcements", move || {
            let listener = Listener {
                state: &thread_state,
                endpoint: &endpoint,
                channels: &channels,
                on_message: &on_message,
                subscribed: &subscribed,
            };
            listener.run();
        })
        .ok()?;
        Some(Announcements { state })
    }
}

impl Drop for Announcements {
    fn drop(&mut self) {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock();
        state.closed = true;
        if let Some(stream) = state.stream.take() {
            stream.shutdown();
        }
        changed.notify_all();
    }
}

/// What one listener thread works with.
struct Listener<'a> {
    state: &'a (Mutex<ListenerState>, Condvar),
    endpoint: &'a PubSubEndpoint,
    channels: &'a [Vec<u8>],
    on_message: &'a OnAnnouncement,
    subscribed: &'a Subscribed,
}

impl Listener<'_> {
    fn run(&self) {
        crate::signals::mask_for_this_thread();
        let (lock, changed) = self.state;
        let mut pause = FIRST_RETRY;
        let mut first = true;
        loop {
            if lock.lock().closed {
                return;
            }
            if self.listen_once() {
                pause = FIRST_RETRY;
            }
            if std::mem::take(&mut first) {
                self.subscribed.first_attempt_ended();
            }
            let mut guard = lock.lock();
            guard.stream = None;
            if guard.closed {
                return;
            }
            let _ = changed.wait_for(&mut guard, pause);
            pause = (pause * 2).min(LONGEST_RETRY);
        }
    }

    /// One connection: subscribes, then hands on messages until it breaks.
    /// True when the server had confirmed the subscriptions.
    fn listen_once(&self) -> bool {
        let Ok(mut stream) = open_stream(self.endpoint) else {
            return false;
        };
        let (Ok(reader), Ok(kept)) = (stream.try_clone(), stream.try_clone()) else {
            return false;
        };
        {
            let mut guard = self.state.0.lock();
            if guard.closed {
                return false;
            }
            guard.stream = Some(kept);
        }
        let mut parts: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        parts.extend(self.channels.iter().map(Vec::as_slice));
        if stream.write_all(&encode_command(&parts)).is_err() {
            return false;
        }
        let mut reader = BufReader::new(reader);
        let mut confirmed = 0;
        while let Ok(reply) = read_reply(&mut reader) {
            let items = match reply {
                Reply::Array(items) => items,
                // Refused (no permission for the channels, an unknown
                // command): try again later rather than wait for nothing.
                Reply::Error(_) if confirmed < self.channels.len() => return false,
                _ => continue,
            };
            let mut items = items.into_iter();
            let (Some(Reply::Bulk(Some(kind))), Some(Reply::Bulk(Some(channel)))) =
                (items.next(), items.next())
            else {
                continue;
            };
            match kind.as_slice() {
                b"message" => {
                    if let Some(Reply::Bulk(Some(payload))) = items.next() {
                        (self.on_message)(&channel, &payload);
                    }
                }
                b"subscribe" => {
                    confirmed += 1;
                    if confirmed == self.channels.len() {
                        self.subscribed.confirmed();
                    }
                }
                _ => {}
            }
        }
        confirmed >= self.channels.len()
    }
}
