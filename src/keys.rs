//! Names and the Redis keys of one lock.
//!
//! All keys of a lock share the hash tag `{<name>}`, so every script touches
//! a single Redis Cluster slot. Names reach scripts only through KEYS and
//! ARGV, never by building script text, so no name can change what runs.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest lock name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// How long a lock's fencing counter outlives its last acquire by default.
pub const DEFAULT_FENCE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The keys and channel of one lock.
#[derive(Clone, Debug)]
pub(crate) struct LockKeys {
    pub(crate) name: String,
    pub(crate) lock: Vec<u8>,
    pub(crate) fence: Vec<u8>,
    pub(crate) channel: Vec<u8>,
    /// How long the fencing counter stays after the last acquire (tokens
    /// keep increasing without it: see src/scripts/prelude.lua).
    pub(crate) fence_retention: Duration,
}

impl LockKeys {
    pub(crate) fn new(prefix: &str, name: &str) -> Result<Self> {
        validate_name(name)?;
        let lock = format!("{prefix}:{{{name}}}");
        Ok(LockKeys {
            name: name.to_string(),
            fence: format!("{lock}:fence").into_bytes(),
            channel: format!("{lock}:ch").into_bytes(),
            lock: lock.into_bytes(),
            fence_retention: DEFAULT_FENCE_RETENTION,
        })
    }
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
        assert_eq!(keys.lock, b"latchkey:{orders:42}");
        assert_eq!(keys.fence, b"latchkey:{orders:42}:fence");
        assert_eq!(keys.channel, b"latchkey:{orders:42}:ch");
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
