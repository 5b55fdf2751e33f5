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
//! - `queue-skipping`: a release (and a fair caller that finds the lock
//!   free) hands the lock to the queued waiter that arrived LAST, not first
//!   (breaks a fair lock's arrival order);
//! - `c-lost-callback-never-runs`: the C ABI never calls the lost-lease
//!   callback (so the C, Go and Python bindings hear of a loss only when they
//!   ask, by check or release);
//! - `semaphore-overcommit`: a semaphore lets one permit too many in (a
//!   semaphore of size N grants up to N + 1 permits).

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

/// The text replacements that plant the script variants: (variant, text
/// of the scripts it replaces, replacement). Each text must be in the
/// scripts (a test checks it: a variant whose text moved is no variant).
const REPLACEMENTS: &[(&str, &str, &str)] = &[
    (
        "release-no-owner-check",
        "if key_type(KEYS[1]) ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then",
        "if false then",
    ),
    ("fence-no-clock", "if clock > token then", "if false then"),
    (
        "release-wakes-nobody",
        "redis.call(publish, channel, waiter)",
        "local _ = publish",
    ),
    (
        "queue-skipping",
        "local first = redis.call('ZRANGE', order, 0, 0)[1]",
        "local first = redis.call('ZRANGE', order, -1, -1)[1]",
    ),
    (
        "semaphore-overcommit",
        "if used + permits > tonumber(ARGV[3]) then",
        "if used + permits > tonumber(ARGV[3]) + 1 then",
    ),
];

/// The script text of a variant: the text replacements that break it.
pub(crate) fn script_text(text: String) -> String {
    REPLACEMENTS
        .iter()
        .filter(|(name, _, _)| variant(name))
        .fold(text, |text, (_, from, to)| text.replace(from, to))
}

#[cfg(test)]
mod tests {
    /// Every script, with the prelude they share.
    const SCRIPTS: &[&str] = &[
        include_str!("scripts/head.lua"),
        include_str!("scripts/prelude.lua"),
        include_str!("scripts/acquire.lua"),
        include_str!("scripts/release.lua"),
        include_str!("scripts/leave_queue.lua"),
        include_str!("scripts/reentrant_acquire.lua"),
        include_str!("scripts/reentrant_release.lua"),
        include_str!("scripts/extend.lua"),
        include_str!("scripts/fenced_write.lua"),
        include_str!("scripts/permit_acquire.lua"),
    ];

    /// A variant planted by a replacement whose text is no longer in the
    /// scripts plants nothing, and the self-test then looks for a defect
    /// that is not there (`release-wakes-nobody` replaced a line that the
    /// fair-lock change had moved into `reserve_for`).
    #[test]
    fn every_variant_replacement_finds_its_text() {
        for (name, from, _) in super::REPLACEMENTS {
            assert!(
                SCRIPTS.iter().any(|script| script.contains(from)),
                "variant {name}: no script contains {from:?}"
            );
        }
    }
}
