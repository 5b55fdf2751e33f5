//! Deliberately broken variants of the library, for the chaos checker's
//! self-test (`tools/chaos`): the checker must catch each of them. Only
//! with the `chaos-variants` feature, which is off by default and never in
//! a release artifact; without it every variant is off and the hooks
//! compile to nothing.
//!
//! The variant is chosen once per process by `LATCHKEY_CHAOS_VARIANT`:
//! - `release-no-owner-check`: release deletes the lock whoever holds it;
//! - `renew-ignores-failure`: a renewal that failed counts as a success;
//! - `fence-no-clock`: fencing tokens come from the counter alone, so they
//!   start again after a restart that lost it;
//! - `stale-release`: a release that finds the lock not ours deletes it;
//! - `release-wakes-nobody`: a release hands the lock to a queued waiter
//!   but never wakes it (the waiter finds the lock only at its re-check,
//!   after the reservation ran out and someone else may have taken it);
//! - `c-lost-callback-never-runs`: the C ABI never calls the lost-lease
//!   callback (so the C, Go and Python bindings hear of a loss only when they
//!   ask, by check or release).

/// Whether the broken variant `name` is on in this process.
#[cfg(feature = "chaos-variants")]
pub(crate) fn variant(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| std::env::var("LATCHKEY_CHAOS_VARIANT").unwrap_or_default()) == name
}

/// Whether the broken variant `name` is on: never without the
/// `chaos-variants` feature.
#[cfg(not(feature = "chaos-variants"))]
#[inline(always)]
pub(crate) fn variant(_name: &str) -> bool {
    false
}

/// The script text of a variant: the text replacements that break it.
pub(crate) fn script_text(text: String) -> String {
    let replacements: &[(&str, &str, &str)] = &[
        (
            "release-no-owner-check",
            "if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then",
            "if false then",
        ),
        ("fence-no-clock", "if clock > token then", "if false then"),
        (
            "release-wakes-nobody",
            "redis.call(publish, channel, next_waiter)",
            "local _ = publish",
        ),
    ];
    replacements
        .iter()
        .filter(|(name, _, _)| variant(name))
        .fold(text, |text, (_, from, to)| text.replace(from, to))
}
