//! A subscription that is not for waiters: it hands every message on a few
//! fixed channels to a callback, and reconnects by itself until dropped.
//! The Sentinel backend listens this way for the sentinels' failover
//! announcements, so a client moves to a new master when it is promoted
//! rather than when the old one next fails a command.

use std::io::{BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{encode_command, open_stream, read_reply, PubSubEndpoint, Reply, Stream};

/// Called with (channel, payload) for every message heard.
pub(crate) type OnAnnouncement = Arc<dyn Fn(&[u8], &[u8]) + Send + Sync>;

/// The first pause before connecting again after a failure, and the
/// longest: an unreachable sentinel is tried again every few seconds,
/// which costs nothing noticeable and keeps a recovered one useful.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

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
    /// Connections made so far that confirmed every subscription.
    subscribed: u64,
}

impl Announcements {
    /// Starts listening on `channels` of the server `endpoint` names.
    /// Returns `None` when no thread could be started (the caller then
    /// learns of changes the slower way, from failing commands).
    pub(crate) fn start(
        endpoint: PubSubEndpoint,
        channels: Vec<Vec<u8>>,
        on_message: OnAnnouncement,
    ) -> Option<Announcements> {
        let state = Arc::new((Mutex::new(ListenerState::default()), Condvar::new()));
        let thread_state = state.clone();
        std::thread::Builder::new()
            .name("latchkey-announcements".into())
            .spawn(move || listen(&thread_state, &endpoint, &channels, &on_message))
            .ok()?;
        Some(Announcements { state })
    }

    /// Waits until a connection has confirmed every subscription, or
    /// `limit` passed; true when subscribed.
    pub(crate) fn wait_subscribed(&self, limit: Duration) -> bool {
        let (lock, changed) = &*self.state;
        let deadline = std::time::Instant::now() + limit;
        let mut state = lock.lock();
        while state.subscribed == 0 && !state.closed {
            if changed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.subscribed > 0
    }

    /// Forgets the listener without closing its connection: in a forked
    /// child the thread does not exist, and the socket is the parent's.
    pub(crate) fn forget(self) {
        std::mem::forget(self);
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

fn listen(
    state: &(Mutex<ListenerState>, Condvar),
    endpoint: &PubSubEndpoint,
    channels: &[Vec<u8>],
    on_message: &OnAnnouncement,
) {
    crate::signals::mask_for_this_thread();
    let (lock, changed) = state;
    let mut pause = FIRST_RETRY;
    loop {
        if lock.lock().closed {
            return;
        }
        if listen_once(state, endpoint, channels, on_message) {
            pause = FIRST_RETRY;
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
fn listen_once(
    state: &(Mutex<ListenerState>, Condvar),
    endpoint: &PubSubEndpoint,
    channels: &[Vec<u8>],
    on_message: &OnAnnouncement,
) -> bool {
    let (lock, changed) = state;
    let Ok(mut stream) = open_stream(endpoint) else {
        return false;
    };
    let (Ok(reader), Ok(kept)) = (stream.try_clone(), stream.try_clone()) else {
        return false;
    };
    {
        let mut guard = lock.lock();
        if guard.closed {
            return false;
        }
        guard.stream = Some(kept);
    }
    let mut parts: Vec<&[u8]> = vec![b"SUBSCRIBE"];
    parts.extend(channels.iter().map(Vec::as_slice));
    if stream.write_all(&encode_command(&parts)).is_err() {
        return false;
    }
    let mut reader = BufReader::new(reader);
    let mut confirmed = 0;
    while let Ok(reply) = read_reply(&mut reader) {
        let Reply::Array(items) = reply else {
            continue;
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
                    on_message(&channel, &payload);
                }
            }
            b"subscribe" => {
                confirmed += 1;
                if confirmed == channels.len() {
                    lock.lock().subscribed += 1;
                    changed.notify_all();
                }
            }
            _ => {}
        }
    }
    confirmed >= channels.len()
}
