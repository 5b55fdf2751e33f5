//! The call builders and reply parsers of the Lua scripts (`src/scripts`):
//! each lock operation's script invocation and the parsing of its reply,
//! shared by every backend, so one node and N Redlock masters run
//! exactly the same scripts.

use std::borrow::Cow;
use std::time::Duration;

use super::{
    AcquireArgs, Attempt, Call, ExtendItem, FencedWriteArgs, Queueing, Released, QUEUE_ENTRY_LEASE,
};
use crate::error::{Error, ErrorKind, Result};
use crate::info::{FencedWrite, LockInfo, PermitHolder, QueuedWaiter, SemaphoreInfo};
use crate::keys::LockKeys;
use crate::scripts;

/// After a release that woke waiters, fresh acquirers (that were not
/// waiting) stand back this long so a woken waiter gets the lock: without it
/// a holder that releases and re-acquires in a loop wins almost every time.
const HANDOFF_WINDOW: Duration = Duration::from_millis(100);

/// The number of arguments of a fair plain acquire before the optional
/// `SPUBLISH` (see acquire.lua): such an attempt may publish a handoff.
pub(crate) const FAIR_ACQUIRE_ARGS: usize = 8;

/// A duration as whole milliseconds for PX/PEXPIRE (at least 1).
pub(crate) fn millis(d: Duration) -> Cow<'static, [u8]> {
    Cow::Owned(d.as_millis().max(1).to_string().into_bytes())
}

fn flag(on: bool) -> Cow<'static, [u8]> {
    Cow::Borrowed(if on { b"1" } else { b"0" })
}

/// The kind of hold the extend and hold-exists scripts look for (see
/// `extend_hold` in src/scripts/head.lua): '0' plain, '1' reentrant, '2' a
/// lease in a lease set (a semaphore's permits).
fn hold_kind(keys: &LockKeys, reentrant: bool) -> Cow<'static, [u8]> {
    if keys.is_lease_set() {
        Cow::Borrowed(b"2")
    } else {
        flag(reentrant)
    }
}

/// A number as a script argument.
fn number(n: impl ToString) -> Cow<'static, [u8]> {
    Cow::Owned(n.to_string().into_bytes())
}

/// Text the call borrows (a token, an id).
fn text(s: &str) -> Cow<'_, [u8]> {
    Cow::Borrowed(s.as_bytes())
}

pub(crate) fn acquire_call<'a>(args: &AcquireArgs<'a>) -> Call<'a> {
    let keys = args.keys;
    let mut script_args = Vec::with_capacity(5);
    let script = if args.reentrant {
        script_args.push(text(args.owner));
        scripts::reentrant_acquire()
    } else {
        scripts::acquire()
    };
    script_args.extend([
        text(args.hold),
        millis(args.ttl),
        flag(args.waited),
        millis(keys.fence_retention),
    ]);
    if args.reentrant {
        script_args.push(flag(args.nest));
        script_args.push(number(args.known_token));
    }
    script_args.push(text(args.queue.waiter()));
    // An entry lease of 0: the last attempt leaves the queue.
    script_args.push(match args.queue {
        Queueing::Leave(_) => Cow::Borrowed(b"0"),
        _ => millis(QUEUE_ENTRY_LEASE),
    });
    if args.reentrant {
        script_args.extend(args.live_holds.iter().map(|h| text(h)));
    } else if args.fair {
        // A fair attempt that finds the lock free may hand it to the first
        // queued waiter (see acquire.lua): it publishes like a release.
        script_args.push(Cow::Borrowed(keys.channel()));
        script_args.push(millis(HANDOFF_WINDOW));
    }
    let mut call_keys = vec![keys.lock(), keys.fence(), keys.queue(), keys.queue_order()];
    if let Some(readers) = args.readers {
        call_keys.push(readers.lock());
    }
    Call {
        script,
        keys: call_keys,
        args: script_args,
    }
}

pub(crate) fn parse_acquire(value: redis::Value) -> Result<Attempt> {
    let (flag, number) = parse_flag_and_number(value)?;
    Ok(if flag == 1 {
        Attempt::Acquired(number)
    } else {
        Attempt::Held(Duration::from_millis(number))
    })
}

/// A release; `queued`: hand the lock to the first queued waiter and wake
/// only it (one node), rather than wake every listener (Redlock).
pub(crate) fn release_call<'a>(
    keys: &'a LockKeys,
    token: &'a str,
    reentrant: bool,
    queued: bool,
) -> Call<'a> {
    if keys.is_lease_set() {
        return Call {
            script: scripts::permit_release(),
            keys: vec![keys.lock(), keys.permit_count()],
            args: vec![text(token), Cow::Borrowed(keys.channel())],
        };
    }
    let mut call_keys: Vec<&[u8]> = vec![&keys.lock()];
    if queued {
        call_keys.push(keys.queue());
        call_keys.push(keys.queue_order());
    }
    Call {
        script: if reentrant {
            scripts::reentrant_release()
        } else if keys.is_rw_writer() {
            scripts::rw_write_release()
        } else {
            scripts::release()
        },
        keys: call_keys,
        args: vec![
            text(token),
            Cow::Borrowed(keys.channel()),
            millis(HANDOFF_WINDOW),
        ],
    }
}

pub(crate) fn parse_release(value: redis::Value) -> Result<Released> {
    match value {
        redis::Value::Int(0) => Ok(Released::NotOwner),
        redis::Value::Int(1) => Ok(Released::Free),
        redis::Value::Int(2) => Ok(Released::StillHeld),
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn extend_call<'a>(item: &ExtendItem<'a>) -> Call<'a> {
    Call {
        script: scripts::extend(),
        keys: vec![&item.keys.lock()],
        args: vec![
            text(item.token),
            millis(item.ttl),
            hold_kind(item.keys, item.reentrant),
        ],
    }
}

/// Splits `items` into the leases of one script each: at most `per_script`
/// of them, in order, sharing one ttl (in whole ms) and one kind (plain,
/// reentrant or lease set), which [`extend_batch_call`] then sends once.
pub(crate) fn extend_batches<'i, 'a>(
    items: &'i [ExtendItem<'a>],
    per_script: usize,
) -> Vec<&'i [ExtendItem<'a>]> {
    let per_script = per_script.max(1);
    let kind = |item: &ExtendItem<'_>| {
        (
            item.ttl.as_millis().max(1),
            item.reentrant,
            item.keys.is_lease_set(),
        )
    };
    let mut batches = Vec::new();
    let mut rest = items;
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take(per_script)
            .take_while(|item| kind(item) == kind(first))
            .count();
        let (batch, after) = rest.split_at(len);
        batches.push(batch);
        rest = after;
    }
    batches
}

/// One script extending many leases of one ttl and kind (see
/// [`extend_batches`]; all keys must be on one node and, in a cluster, in
/// one slot).
pub(crate) fn extend_batch_call<'a>(items: &[ExtendItem<'a>]) -> Call<'a> {
    let mut args: Vec<Cow<'a, [u8]>> = Vec::with_capacity(items.len() + 2);
    let (ttl, kind) = items
        .first()
        .map_or((Duration::ZERO, flag(false)), |first| {
            (first.ttl, hold_kind(first.keys, first.reentrant))
        });
    args.push(millis(ttl));
    args.push(kind);
    args.extend(items.iter().map(|i| text(i.token)));
    Call {
        script: scripts::extend_batch(),
        keys: items.iter().map(|i| i.keys.lock()).collect(),
        args,
    }
}

/// Splits the reply of [`extend_batch_call`] into one outcome per lease.
pub(crate) fn parse_extend_batch(count: usize, value: redis::Value) -> Result<Vec<bool>> {
    match value {
        redis::Value::Array(items) if items.len() == count => Ok(items
            .iter()
            .map(|v| matches!(v, redis::Value::Int(1)))
            .collect()),
        other => Err(unexpected(&other)),
    }
}

/// Raises a lock's fencing counter to at least `token` (Redlock: so that
/// any later majority continues above the token just issued); for a
/// reentrant hold (`Some((owner, hold))`) also its tenure's token and the
/// hold's own, so that every master nests later holds of the tenure under
/// that one token.
pub(crate) fn raise_fence_call<'a>(
    keys: &'a LockKeys,
    token: u64,
    reentrant_hold: Option<(&'a str, &'a str)>,
) -> Call<'a> {
    let mut call = Call {
        script: scripts::raise_fence(),
        keys: vec![&keys.fence()],
        args: vec![number(token), millis(keys.fence_retention)],
    };
    if let Some((owner, hold)) = reentrant_hold {
        call.keys.push(keys.lock());
        call.args.push(text(owner));
        call.args.push(text(hold));
    }
    call
}

pub(crate) fn hold_exists_call<'a>(keys: &'a LockKeys, hold: &'a str, reentrant: bool) -> Call<'a> {
    Call {
        script: scripts::hold_exists(),
        keys: vec![&keys.lock()],
        args: vec![text(hold), hold_kind(keys, reentrant)],
    }
}

/// Describes the lock; with a `queue_limit` above 0 also its waiter queue
/// (how many live waiters, and the first `queue_limit` of them). Callers
/// that only want the holder (is-locked, force-unlock) and Redlock (no
/// queue) pass 0, so the script does not read the queue at all.
pub(crate) fn inspect_call(keys: &LockKeys, queue_limit: usize) -> Call<'_> {
    let mut call = Call {
        script: scripts::inspect(),
        keys: vec![&keys.lock(), &keys.fence()],
        args: vec![],
    };
    if queue_limit > 0 {
        call.keys.push(keys.queue());
        call.keys.push(keys.queue_order());
        call.args.push(number(queue_limit));
    }
    call
}

/// The holder a force-unlock names, from what inspect saw: a plain lock's
/// hold token; a reentrant lock's owner and tenure token (the owner alone
/// would also match the same handle's next tenure, which a late unlock
/// must not break).
pub(crate) fn force_unlock_holder(seen: &LockInfo) -> String {
    if seen.reentrant {
        format!("{}:{}", seen.owner_token, seen.fencing_token)
    } else {
        seen.owner_token.clone()
    }
}

pub(crate) fn force_unlock_call<'a>(keys: &'a LockKeys, holder: &'a str) -> Call<'a> {
    let mut call_keys = vec![keys.lock()];
    if keys.is_lease_set() {
        call_keys.push(keys.permit_count());
    }
    Call {
        script: scripts::force_unlock(),
        keys: call_keys,
        args: vec![Cow::Borrowed(keys.channel()), text(holder)],
    }
}

pub(crate) fn fenced_write_call<'a>(write: &FencedWriteArgs<'a>) -> Call<'a> {
    Call {
        script: scripts::fenced_write(),
        keys: vec![write.key],
        args: vec![
            number(write.token),
            Cow::Borrowed(write.value),
            text(write.holder),
        ],
    }
}

pub(crate) fn parse_fenced_write(value: redis::Value) -> Result<FencedWrite> {
    let (flag, token) = parse_flag_and_number(value)?;
    Ok(FencedWrite {
        written: flag == 1,
        highest_token: token,
    })
}

pub(crate) fn fenced_read_call(key: &[u8]) -> Call<'_> {
    Call {
        script: scripts::fenced_read(),
        keys: vec![key],
        args: vec![],
    }
}

pub(crate) fn parse_fenced_read(value: redis::Value) -> Result<Option<(u64, Vec<u8>)>> {
    match value {
        redis::Value::Array(items) if items.len() == 2 => {
            let token = value_to_u64(&items[0])?;
            let value = match &items[1] {
                redis::Value::BulkString(b) => b.clone(),
                _ => Vec::new(),
            };
            Ok(Some((token, value)))
        }
        _ => Ok(None),
    }
}

/// A reply no script of ours sends (the caller adds which operation).
fn unexpected(value: &redis::Value) -> Error {
    Error::new(
        ErrorKind::Server,
        format!("unexpected reply from Redis: {value:?}"),
    )
}

fn value_to_u64(value: &redis::Value) -> Result<u64> {
    match value {
        redis::Value::Int(n) => u64::try_from(*n).map_err(|_| unexpected(value)),
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unexpected(value)),
        other => Err(unexpected(other)),
    }
}

fn value_to_i64(value: &redis::Value) -> Result<i64> {
    match value {
        redis::Value::Int(n) => Ok(*n),
        other => Err(unexpected(other)),
    }
}

/// Parses the `{flag, number}` replies of the acquire and fenced-write scripts.
fn parse_flag_and_number(value: redis::Value) -> Result<(i64, u64)> {
    match &value {
        redis::Value::Array(items) if items.len() == 2 => {
            let flag = value_to_i64(&items[0])?;
            let number = match &items[1] {
                // A negative PTTL (-1: no expiry) means "unknown"; report 0.
                redis::Value::Int(n) if *n < 0 => 0,
                other => value_to_u64(other)?,
            };
            Ok((flag, number))
        }
        _ => Err(unexpected(&value)),
    }
}

/// Parses the reply of [`inspect_call`]: `{}` when free, else the five
/// fields of the holder, then (when the queue was asked for) the number of
/// live queued waiters and a waiter id and its ms left per listed waiter.
/// Anything else is an error, never a panic: the reply comes from the
/// server.
pub(crate) fn parse_inspect(name: &str, value: redis::Value) -> Result<Option<LockInfo>> {
    let redis::Value::Array(items) = &value else {
        return Err(unexpected(&value));
    };
    if items.is_empty() {
        return Ok(None);
    }
    // Five holder fields, or five, the count and an even number of
    // (id, ms left) items: the lengths 5, 6, 8, 10, ...
    if items.len() < 5 || (items.len() > 5 && items.len() % 2 != 0) {
        return Err(unexpected(&value));
    }
    let kind = match &items[0] {
        redis::Value::BulkString(b) => b.as_slice(),
        _ => return Err(unexpected(&value)),
    };
    let owner_token = match &items[1] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let pttl = value_to_i64(&items[2])?;
    let (queue_len, queue) = match items.get(5) {
        None => (0, Vec::new()),
        Some(count) => {
            let queue = items[6..]
                .chunks_exact(2)
                .map(|pair| parse_queued_waiter(&pair[0], &pair[1]))
                .collect::<Result<Vec<_>>>()?;
            let queue_len = value_to_u64(count)?;
            // One script counted and listed the same entries.
            if usize::try_from(queue_len).is_ok_and(|n| n < queue.len()) {
                return Err(unexpected(&value));
            }
            (queue_len, queue)
        }
    };
    Ok(Some(LockInfo {
        name: name.to_string(),
        owner_token,
        fencing_token: value_to_u64(&items[3])?,
        ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
        reentrant: kind == b"reentrant",
        hold_count: value_to_u64(&items[4])?,
        masters: Vec::new(),
        queue,
        queue_len,
    }))
}

/// Parses the reply of [`permit_inspect_call`].
pub(crate) fn parse_permit_inspect(name: &str, value: redis::Value) -> Result<SemaphoreInfo> {
    let redis::Value::Array(items) = &value else {
        return Err(unexpected(&value));
    };
    if items.len() < 3 || (items.len() - 3) % 3 != 0 {
        return Err(unexpected(&value));
    }
    let holders = items[3..]
        .chunks_exact(3)
        .map(|hold| {
            let redis::Value::BulkString(token) = &hold[0] else {
                return Err(unexpected(&value));
            };
            Ok(PermitHolder {
                token: String::from_utf8_lossy(token).into_owned(),
                ttl: Duration::from_millis(value_to_u64(&hold[1])?),
                permits: value_to_u64(&hold[2])?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SemaphoreInfo {
        name: name.to_string(),
        in_use: value_to_u64(&items[0])?,
        hold_count: value_to_u64(&items[1])?,
        fencing_token: value_to_u64(&items[2])?,
        holders,
    })
}

/// One listed waiter of an inspect reply: its id and the ms until its
/// entry runs out.
fn parse_queued_waiter(id: &redis::Value, left: &redis::Value) -> Result<QueuedWaiter> {
    let redis::Value::BulkString(id) = id else {
        return Err(unexpected(id));
    };
    Ok(QueuedWaiter {
        // Ids are ours ('w:' and a UUID), so always UTF-8; lossy only so
        // that a key written by something else cannot fail the inspect.
        id: String::from_utf8_lossy(id).into_owned(),
        expires_in: Duration::from_millis(value_to_u64(left)?),
    })
}

/// Wakes the waiters of a lock whose hold `token` was found gone (the
/// key vanished without a release message).
pub(crate) fn announce_free_call<'a>(keys: &'a LockKeys, token: &'a str) -> Call<'a> {
    Call {
        script: scripts::announce_free(),
        keys: vec![&keys.lock()],
        args: vec![text(token), Cow::Borrowed(keys.channel())],
    }
}

/// One attempt to take `permits` of the semaphore `keys` of `size`
/// permits for the hold `hold` (whose token starts with `permits` and ':',
/// see `permit_acquire.lua`); answered as an acquire.
pub(crate) fn permit_acquire_call<'a>(
    keys: &'a LockKeys,
    hold: &'a str,
    ttl: Duration,
    size: u32,
    permits: u32,
) -> Call<'a> {
    Call {
        script: scripts::permit_acquire(),
        keys: vec![keys.lock(), keys.fence(), keys.permit_count()],
        args: vec![
            text(hold),
            millis(ttl),
            number(size),
            number(permits),
            millis(keys.fence_retention),
        ],
    }
}

/// After a leader of an election released its hold: withdraws its
/// announcement (see `election_resign.lua`).
pub(crate) fn election_resign_call<'a>(
    keys: &'a LockKeys,
    value_key: &'a [u8],
    token: &'a str,
) -> Call<'a> {
    Call {
        script: scripts::election_resign(),
        keys: vec![value_key],
        args: vec![text(token), Cow::Borrowed(keys.channel())],
    }
}

/// One attempt to take a read lease of a read-write lock (see
/// `rw_read_acquire.lua`); answered as an acquire.
pub(crate) fn rw_read_acquire_call<'a>(
    writer: &'a LockKeys,
    readers: &'a LockKeys,
    hold: &'a str,
    ttl: Duration,
) -> Call<'a> {
    Call {
        script: scripts::rw_read_acquire(),
        keys: vec![
            writer.lock(),
            writer.queue(),
            readers.lock(),
            readers.permit_count(),
            writer.fence(),
        ],
        args: vec![text(hold), millis(ttl), millis(writer.fence_retention)],
    }
}

/// The downgrade of a read-write lock's writer hold `writer_hold` to the
/// read hold `reader_hold` (see `rw_downgrade.lua`); answered as an
/// acquire (held: the writer hold was not ours any more).
pub(crate) fn rw_downgrade_call<'a>(
    writer: &'a LockKeys,
    readers: &'a LockKeys,
    writer_hold: &'a str,
    reader_hold: &'a str,
    ttl: Duration,
) -> Call<'a> {
    Call {
        script: scripts::rw_downgrade(),
        keys: vec![
            writer.lock(),
            writer.queue(),
            writer.queue_order(),
            readers.lock(),
            readers.permit_count(),
            writer.fence(),
        ],
        args: vec![
            text(writer_hold),
            text(reader_hold),
            millis(ttl),
            millis(writer.fence_retention),
            Cow::Borrowed(writer.channel()),
            millis(HANDOFF_WINDOW),
        ],
    }
}

/// Who holds permits of a semaphore (see `permit_inspect.lua`).
pub(crate) fn permit_inspect_call(keys: &LockKeys, limit: usize) -> Call<'_> {
    Call {
        script: scripts::permit_inspect(),
        keys: vec![keys.lock(), keys.fence(), keys.permit_count()],
        args: vec![number(limit)],
    }
}

/// A waiter that gives up leaves the lock's queue (see `leave_queue.lua`);
/// a read-write lock's writer also wakes the readers when it was the last
/// writer in their way.
pub(crate) fn leave_queue_call<'a>(keys: &'a LockKeys, waiter: &'a str) -> Call<'a> {
    let mut args = vec![
        text(waiter),
        Cow::Borrowed(keys.channel()),
        millis(HANDOFF_WINDOW),
    ];
    if keys.is_rw_writer() {
        args.push(Cow::Borrowed(b"readers"));
    }
    Call {
        script: scripts::leave_queue(),
        keys: vec![&keys.lock(), &keys.queue(), &keys.queue_order()],
        args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn replies_parse_or_fail_cleanly() {
        let ok = Value::Array(vec![Value::Int(1), Value::BulkString(b"42".to_vec())]);
        assert_eq!(parse_acquire(ok).unwrap(), Attempt::Acquired(42));
        let held = Value::Array(vec![Value::Int(0), Value::Int(-1)]);
        assert_eq!(parse_acquire(held).unwrap(), Attempt::Held(Duration::ZERO));
        assert!(parse_acquire(Value::Nil).is_err());
        assert!(parse_acquire(Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"x".to_vec())
        ]))
        .is_err());
        assert!(parse_release(Value::Int(7)).is_err());
        assert!(parse_inspect("n", Value::Array(vec![Value::Int(1)])).is_err());
        assert_eq!(parse_inspect("n", Value::Array(vec![])).unwrap(), None);
    }

    fn held(queue: &[Value]) -> Value {
        let mut items = vec![
            Value::BulkString(b"plain".to_vec()),
            Value::BulkString(b"owner".to_vec()),
            Value::Int(5000),
            Value::BulkString(b"7".to_vec()),
            Value::Int(1),
        ];
        items.extend_from_slice(queue);
        Value::Array(items)
    }

    #[test]
    fn an_inspect_reply_gives_the_queue_in_order() {
        let id = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let info = parse_inspect("n", held(&[])).unwrap().unwrap();
        assert!(info.queue.is_empty());
        assert_eq!(info.queue_len, 0);
        let info = parse_inspect("n", held(&[Value::Int(0)])).unwrap().unwrap();
        assert!(info.queue.is_empty());
        let reply = held(&[
            Value::Int(3),
            id("w:a"),
            Value::Int(14_000),
            id("w:b"),
            Value::Int(15_000),
        ]);
        let info = parse_inspect("n", reply).unwrap().unwrap();
        assert_eq!(info.queue_len, 3, "cut: 3 live, 2 listed");
        let ids: Vec<&str> = info.queue.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["w:a", "w:b"]);
        assert_eq!(info.queue[0].expires_in, Duration::from_millis(14_000));
    }

    #[test]
    fn a_malformed_queue_in_an_inspect_reply_is_an_error() {
        let id = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        for queue in [
            // An id without its time.
            vec![Value::Int(1), id("w:a")],
            // A time that is not a number, a negative one, an id that is not a string.
            vec![Value::Int(1), id("w:a"), id("soon")],
            vec![Value::Int(1), id("w:a"), Value::Int(-1)],
            vec![Value::Int(1), Value::Int(3), Value::Int(1)],
            // A count below the entries listed, a count that is not a number.
            vec![Value::Int(0), id("w:a"), Value::Int(1)],
            vec![Value::Nil, id("w:a"), Value::Int(1)],
        ] {
            let reply = held(&queue);
            assert!(parse_inspect("n", reply.clone()).is_err(), "{reply:?}");
        }
    }

    /// Leases of one ttl and kind share a script, in order, at most
    /// `per_script` each; a change of ttl (in whole ms) or kind starts the
    /// next, and every lease lands in exactly one, where it was.
    #[test]
    fn renewal_batches_share_one_ttl_and_kind() {
        let keys = LockKeys::new("p", "n").unwrap();
        let item = |ttl_ms: u64, reentrant: bool| ExtendItem {
            keys: &keys,
            token: "t",
            reentrant,
            ttl: Duration::from_millis(ttl_ms),
        };
        let items = [
            item(3000, false),
            item(3000, false),
            item(3000, false),
            item(3000, true),
            item(5000, true),
            item(5000, false),
            item(5000, false),
        ];
        let shape = |per_script: usize| -> Vec<usize> {
            extend_batches(&items, per_script)
                .iter()
                .map(|b| b.len())
                .collect()
        };
        assert_eq!(shape(200), vec![3, 1, 1, 2]);
        assert_eq!(shape(2), vec![2, 1, 1, 1, 2]);
        assert_eq!(shape(1), vec![1; 7]);
        assert!(extend_batches(&items[..0], 200).is_empty());
        let call = extend_batch_call(&items[..3]);
        let args: Vec<&[u8]> = call.args.iter().map(|a| a.as_ref()).collect();
        assert_eq!(args, vec![&b"3000"[..], b"0", b"t", b"t", b"t"]);
        assert_eq!(call.keys.len(), 3);
    }
}
