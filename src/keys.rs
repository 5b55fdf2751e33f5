//! Names and the Redis keys of one lock.
//!
//! All keys of a lock share one Redis Cluster hash tag, so every script
//! touches a single slot. Names reach scripts only through KEYS and ARGV,
//! never by building script text, so no name can change what runs.
//!
//! The layout, with `P` the prefix (no braces allowed) and `N` the name:
//!
//! ```text
//! P:{N}          the lock        P:{N}:fence   its fencing counter
//! P:{N}:ch       its channel     P:{N}:q       its waiter queue
//! P:{N}:qa       the queue's arrival order
//! ```
//!
//! (The hash tag is N up to its first '}'.)
//!
//! A semaphore `N` has the same layout under the prefix `P:sem`
//! (`P:sem:{N}`, ...), and an election under `P:elect` (its leader's hold
//! is a plain lock, `P:elect:{N}`, and its announcement the hash
//! `P:elect:{N}:value`), and a read-write lock under `P:rw` (its writer's
//! hold, a plain lock with the queue of waiting writers) and `P:rwr` (its
//! readers' leases, a lease set), so no two kinds of one name share a key. Its main key is a *lease set*: a sorted set whose members are the
//! hold tokens of its permits, each scored by the server time in ms at
//! which that permit's lease ends (see src/scripts/head.lua). A semaphore
//! has no waiter queue: its `:q` key holds the permits its lease set's
//! members hold (`permit_count` in src/scripts/head.lua), so that an
//! attempt need not read every member.
//!
//! Redis takes the hash tag from the first `{` to the next `}`; when that is
//! empty it hashes the whole key instead. That happens for exactly one kind
//! of name: one that begins with `}` (`P:{}x}` has the empty tag `{}`), and
//! then the lock, fence and channel keys would fall in different slots. Such
//! names get the keys `P:{\0}{N}`, `P:{\0}{N}:fence` and `P:{\0}{N}:ch`: the
//! hash tag is the single NUL byte (non-empty, the same for all three), and
//! the rest is the usual layout. Every other name keeps the layout above,
//! so existing locks keep their keys.
//!
//! Distinct names never share a key: a name never contains NUL, so no
//! ordinary key starts with `P:{\0}`, and after that prefix both forms are
//! `{N}` followed by a suffix; the closing brace is the last `}` before the
//! suffix, so `N` and the suffix are recovered from the key. The price of
//! the rule is that all names beginning with `}` share one slot.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest lock name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// How long a lock's fencing counter outlives its last acquire by default.
pub const DEFAULT_FENCE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The suffixes of a lock's other keys, in the order [`LockKeys`] keeps them.
const SUFFIXES: [&str; 4] = [":fence", ":ch", ":q", ":qa"];

/// Where semaphores live, below the client's prefix.
const SEMAPHORE_NAMESPACE: &str = ":sem";

/// Where elections live, below the client's prefix.
const ELECTION_NAMESPACE: &str = ":elect";

/// Where read-write locks live, below the client's prefix: the writer's
/// hold (a plain lock, with the queue of waiting writers) ...
const RW_WRITER_NAMESPACE: &str = ":rw";
/// ... and the readers' leases (a lease set).
const RW_READERS_NAMESPACE: &str = ":rwr";

/// The bit of `LockKeys::name_len` that marks a lease set (a name is at
/// most [`MAX_NAME_LEN`] bytes, far below it): kept there rather than in a
/// field of its own, which would add 8 bytes to every held lease.
const LEASE_SET_BIT: u32 = 1 << 31;

/// The bit of `LockKeys::name_len` that marks an election's keys (see
/// [`LEASE_SET_BIT`]).
const ELECTION_BIT: u32 = 1 << 30;

/// The bit of `LockKeys::name_len` that marks a read-write lock's keys:
/// with [`LEASE_SET_BIT`] its readers', without it its writer's.
const RW_BIT: u32 = 1 << 29;

/// Every bit of `LockKeys::name_len` that is not the name's length.
const SHAPE_BITS: u32 = LEASE_SET_BIT | ELECTION_BIT | RW_BIT;

/// The keys and channel of one lock.
///
/// Kept in one allocation: the name, then the fence key, the channel, the
/// queue key and its arrival order, one after the other (the lock key is
/// the start of the fence key). Every held lease keeps its lock's keys, and
/// six separate strings cost more memory than the lease itself (the
/// renewal bench: 928 B of RSS per lease).
#[derive(Clone, Debug)]
pub(crate) struct LockKeys {
    text: Box<str>,
    name_len: u32,
    lock_len: u32,
    /// How long the fencing counter stays after the last acquire (tokens
    /// keep increasing without it: see src/scripts/prelude.lua).
    pub(crate) fence_retention: Duration,
}

impl LockKeys {
    pub(crate) fn new(prefix: &str, name: &str) -> Result<Self> {
        Self::with_shape(prefix, name, 0)
    }

    /// The keys of the semaphore `name`: its main key is a lease set (see
    /// the module notes), in a namespace of its own.
    pub(crate) fn semaphore(prefix: &str, name: &str) -> Result<Self> {
        Self::with_shape(
            &format!("{prefix}{SEMAPHORE_NAMESPACE}"),
            name,
            LEASE_SET_BIT,
        )
    }

    /// The keys of the writer of read-write lock `name`: a plain lock, whose
    /// waiter queue holds the waiting writers.
    pub(crate) fn rw_writer(prefix: &str, name: &str) -> Result<Self> {
        Self::with_shape(&format!("{prefix}{RW_WRITER_NAMESPACE}"), name, RW_BIT)
    }

    /// The keys of the readers of read-write lock `name`: a lease set (one
    /// lease per reader), in the same slot as the writer's keys.
    pub(crate) fn rw_readers(prefix: &str, name: &str) -> Result<Self> {
        Self::with_shape(
            &format!("{prefix}{RW_READERS_NAMESPACE}"),
            name,
            RW_BIT | LEASE_SET_BIT,
        )
    }

    /// The keys of the election `name`: a plain lock (its leader's hold),
    /// in a namespace of its own.
    pub(crate) fn election(prefix: &str, name: &str) -> Result<Self> {
        Self::with_shape(&format!("{prefix}{ELECTION_NAMESPACE}"), name, ELECTION_BIT)
    }

    /// `shape`: the bits of [`SHAPE_BITS`] that say what the keys are for
    /// (none: a lock).
    fn with_shape(prefix: &str, name: &str, shape: u32) -> Result<Self> {
        validate_name(name)?;
        // See the module notes: a name starting with '}' would leave the
        // hash tag empty, so it gets a non-empty tag of its own.
        let escape = if name.starts_with('}') { "{\0}" } else { "" };
        let lock = format!("{prefix}:{escape}{{{name}}}");
        let mut text = String::with_capacity(name.len() + 4 * lock.len() + 16);
        text.push_str(name);
        for suffix in SUFFIXES {
            text.push_str(&lock);
            text.push_str(suffix);
        }
        Ok(LockKeys {
            text: text.into_boxed_str(),
            // Both fit: a name is at most MAX_NAME_LEN bytes, a prefix 256
            // (validate_prefix).
            name_len: u32::try_from(name.len()).map_err(|_| Error::invalid("name too long"))?
                | shape,
            lock_len: u32::try_from(lock.len()).map_err(|_| Error::invalid("name too long"))?,
            fence_retention: DEFAULT_FENCE_RETENTION,
        })
    }

    /// The lock's name, as the caller gave it.
    pub(crate) fn name(&self) -> &str {
        &self.text[..self.name_len()]
    }

    fn name_len(&self) -> usize {
        (self.name_len & !SHAPE_BITS) as usize
    }

    /// Whether the main key is a lease set (a semaphore's permits) rather
    /// than a lock (a string or a reentrant lock's hash).
    pub(crate) fn is_lease_set(&self) -> bool {
        self.name_len & LEASE_SET_BIT != 0
    }

    /// Whether these are an election's keys: the lock is its leader's
    /// hold, and [`election_value`](Self::election_value) its announcement.
    pub(crate) fn is_election(&self) -> bool {
        self.name_len & ELECTION_BIT != 0
    }

    /// An election's announcement: a hash of the leader's token, term and
    /// value (made when needed: a lease does not keep it).
    pub(crate) fn election_value(&self) -> Vec<u8> {
        let mut key = self.lock().to_vec();
        key.extend_from_slice(b":value");
        key
    }

    /// Whether these are the writer's keys of a read-write lock (its
    /// release also wakes the readers).
    pub(crate) fn is_rw_writer(&self) -> bool {
        self.name_len & RW_BIT != 0 && !self.is_lease_set()
    }

    /// What the keys belong to, for messages.
    pub(crate) fn noun(&self) -> &'static str {
        if self.name_len & RW_BIT != 0 {
            "read-write lock"
        } else if self.is_lease_set() {
            "semaphore"
        } else if self.is_election() {
            "election"
        } else {
            "lock"
        }
    }

    /// The lock key itself.
    pub(crate) fn lock(&self) -> &[u8] {
        let start = self.name_len();
        &self.text.as_bytes()[start..start + self.lock_len as usize]
    }

    /// The fencing counter.
    pub(crate) fn fence(&self) -> &[u8] {
        self.derived(0)
    }

    /// The release channel.
    pub(crate) fn channel(&self) -> &[u8] {
        self.derived(1)
    }

    /// The waiters queued for the lock, scored by when their entries run
    /// out (see src/scripts/prelude.lua).
    pub(crate) fn queue(&self) -> &[u8] {
        self.derived(2)
    }

    /// The same waiters scored by arrival: the order of the queue.
    pub(crate) fn queue_order(&self) -> &[u8] {
        self.derived(3)
    }

    /// A lease set's permit count (see the module notes): the key that
    /// would be its waiter queue, which a semaphore does not have.
    pub(crate) fn permit_count(&self) -> &[u8] {
        debug_assert!(self.is_lease_set());
        self.queue()
    }

    /// The lock key followed by `SUFFIXES[index]`.
    fn derived(&self, index: usize) -> &[u8] {
        let lock_len = self.lock_len as usize;
        let start = self.name_len()
            + SUFFIXES[..index]
                .iter()
                .map(|suffix| lock_len + suffix.len())
                .sum::<usize>();
        &self.text.as_bytes()[start..start + lock_len + SUFFIXES[index].len()]
    }
}

/// The name of the lock whose lock key is `key` under `prefix`, if `key`
/// is one (and not a derived key, another prefix's key or a key of
/// something else): the rule of the module notes, checked by building the
/// name's keys again, so that only a key this layout gives back is taken.
pub(crate) fn name_of_lock_key(prefix: &str, key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(prefix.as_bytes())?.strip_prefix(b":")?;
    let rest = rest.strip_prefix(b"{\0}".as_slice()).unwrap_or(rest);
    let name = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let name = std::str::from_utf8(name).ok()?;
    let keys = LockKeys::new(prefix, name).ok()?;
    (keys.lock() == key).then(|| name.to_string())
}

/// Checks a lock (or resource) name: non-empty, at most [`MAX_NAME_LEN`]
/// bytes, no NUL (C callers could not name such a lock).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("a lock name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "a lock name must be at most {MAX_NAME_LEN} bytes; this one has {}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(Error::invalid(
            "a lock name must not contain a NUL character (C callers could not name it)",
        ));
    }
    Ok(())
}

/// Checks a key prefix: non-empty, no NUL, no braces (they would move the
/// Cluster hash tag away from the lock name).
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.len() > 256 {
        return Err(Error::invalid("the key prefix must be 1 to 256 bytes long"));
    }
    if prefix.contains(['\0', '{', '}']) {
        return Err(Error::invalid(
            "the key prefix must not contain NUL, '{' or '}' (braces would break cluster hash tags)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = LockKeys::new("latchkey", "orders:42").unwrap();
        assert_eq!(keys.lock(), b"latchkey:{orders:42}");
        assert_eq!(keys.fence(), b"latchkey:{orders:42}:fence");
        assert_eq!(keys.channel(), b"latchkey:{orders:42}:ch");
    }

    /// The slot rule of Redis Cluster: the text between the first `{` and
    /// the next `}` when not empty, else the whole key.
    fn hash_tag(key: &[u8]) -> &[u8] {
        let Some(open) = key.iter().position(|&b| b == b'{') else {
            return key;
        };
        let rest = &key[open + 1..];
        match rest.iter().position(|&b| b == b'}') {
            Some(close) if close > 0 => &rest[..close],
            _ => key,
        }
    }

    #[test]
    fn every_name_keeps_its_keys_in_one_slot() {
        for name in ["}x", "}", "}}", "{}", "{a}", "a}b{c", "}x:fence", "ключ"] {
            let keys = LockKeys::new("latchkey", name).unwrap();
            let tag = hash_tag(keys.lock());
            assert!(!tag.is_empty(), "{name}");
            assert_ne!(tag, keys.lock(), "{name}: no hash tag");
            assert_eq!(hash_tag(keys.fence()), tag, "{name}");
            assert_eq!(hash_tag(keys.channel()), tag, "{name}");
        }
    }

    #[test]
    fn names_without_a_leading_brace_keep_their_keys() {
        let keys = LockKeys::new("p", "a}b{c").unwrap();
        assert_eq!(keys.lock(), b"p:{a}b{c}");
        let keys = LockKeys::new("p", "}x").unwrap();
        assert_eq!(keys.lock(), b"p:{\0}{}x}");
        assert_eq!(keys.fence(), b"p:{\0}{}x}:fence");
    }

    #[test]
    fn distinct_names_never_share_a_key() {
        let names = [
            "}x", "}x}", "}x:fence", "x", "{\u{1}}x", "}", "}}", "{}", "a}:fence",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let keys = LockKeys::new("p", name).unwrap();
            for key in [keys.lock(), keys.fence(), keys.channel()] {
                assert!(seen.insert(key.to_vec()), "{name}: {key:?} taken twice");
            }
        }
    }

    #[test]
    fn a_semaphore_and_a_lock_of_one_name_share_no_key() {
        let lock = LockKeys::new("p", "x").unwrap();
        let semaphore = LockKeys::semaphore("p", "x").unwrap();
        assert_eq!(semaphore.lock(), b"p:sem:{x}");
        assert_eq!(semaphore.channel(), b"p:sem:{x}:ch");
        assert_eq!(semaphore.name(), "x");
        assert!(semaphore.is_lease_set() && !lock.is_lease_set());
        for key in [lock.lock(), lock.fence(), lock.channel(), lock.queue()] {
            assert!(![semaphore.lock(), semaphore.fence(), semaphore.channel()].contains(&key));
        }
        let long = "n".repeat(MAX_NAME_LEN);
        assert_eq!(LockKeys::semaphore("p", &long).unwrap().name(), long);
    }

    #[test]
    fn names_come_back_from_their_lock_keys_only() {
        for name in [
            "}x", "}", "}}", "{}", "{a}", "a}b{c", "}x:fence", "a:b:c", "ключ",
        ] {
            let keys = LockKeys::new("p", name).unwrap();
            assert_eq!(name_of_lock_key("p", keys.lock()).as_deref(), Some(name));
            for derived in [
                keys.fence(),
                keys.channel(),
                keys.queue(),
                keys.queue_order(),
            ] {
                assert_eq!(name_of_lock_key("p", derived), None, "{name}");
            }
            assert_eq!(name_of_lock_key("q", keys.lock()), None, "{name}");
        }
        for other in [
            &b"p:fenced:{x}"[..],
            b"p:{}x}",
            b"p:{}",
            b"p{x}",
            b"p:{\xff}",
        ] {
            assert_eq!(name_of_lock_key("p", other), None, "{other:?}");
        }
        for semaphore in ["x", "}x"] {
            let keys = LockKeys::semaphore("p", semaphore).unwrap();
            assert_eq!(name_of_lock_key("p", keys.lock()), None, "{semaphore}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(LockKeys::new("p", "").is_err());
        assert!(LockKeys::new("p", "a\0b").is_err());
        assert!(LockKeys::new("p", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(validate_prefix("a{b").is_err());
        assert!(validate_prefix("").is_err());
    }
}
