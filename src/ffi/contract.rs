//! The error contract of the C ABI in one place: which statuses each C
//! function can return. The doc comments in `src/ffi` (and so the
//! "Returns:" lists of `include/latchkey.h`), the Python exception classes
//! and the Go status constants are checked against this table by the tests
//! below, so none of them can drift from it unnoticed.
//!
//! LATCHKEY_TIMEOUT means only "the lock stayed held until the deadline"
//! (or, with wait-for-replicas, too few replicas confirmed in time); a
//! command that Redis did not answer within the command timeout is
//! LATCHKEY_CONNECTION.

use super::status::latchkey_status::{self, *};

/// Every status with its C name, in number order.
pub(crate) const STATUSES: [(latchkey_status, &str); 12] = [
    (LATCHKEY_OK, "LATCHKEY_OK"),
    (LATCHKEY_INVALID_ARGUMENT, "LATCHKEY_INVALID_ARGUMENT"),
    (LATCHKEY_TIMEOUT, "LATCHKEY_TIMEOUT"),
    (LATCHKEY_NOT_HELD, "LATCHKEY_NOT_HELD"),
    (LATCHKEY_LOST, "LATCHKEY_LOST"),
    (LATCHKEY_CANCELLED, "LATCHKEY_CANCELLED"),
    (LATCHKEY_CONNECTION, "LATCHKEY_CONNECTION"),
    (LATCHKEY_SERVER, "LATCHKEY_SERVER"),
    (LATCHKEY_PANIC, "LATCHKEY_PANIC"),
    (LATCHKEY_NO_QUORUM, "LATCHKEY_NO_QUORUM"),
    (LATCHKEY_AUTH, "LATCHKEY_AUTH"),
    (LATCHKEY_CLOSED, "LATCHKEY_CLOSED"),
];

/// Calls that only check their arguments: setters, getters, constructors
/// that send nothing to Redis, and the `*_free` functions.
const LOCAL: &[latchkey_status] = &[LATCHKEY_OK, LATCHKEY_INVALID_ARGUMENT, LATCHKEY_PANIC];

/// Calls that send one request to Redis (to every master, for Redlock,
/// where a master's failure is only a vote against). INVALID_ARGUMENT also
/// covers a URL naming a database the server does not have, found at the
/// first connection.
const ASKS_REDIS: &[latchkey_status] = &[
    LATCHKEY_OK,
    LATCHKEY_INVALID_ARGUMENT,
    LATCHKEY_CONNECTION,
    LATCHKEY_SERVER,
    LATCHKEY_AUTH,
    LATCHKEY_PANIC,
];

/// As [`ASKS_REDIS`], for calls whose outcome Redlock decides by quorum.
const NEEDS_QUORUM: &[latchkey_status] = &[
    LATCHKEY_OK,
    LATCHKEY_INVALID_ARGUMENT,
    LATCHKEY_CONNECTION,
    LATCHKEY_SERVER,
    LATCHKEY_AUTH,
    LATCHKEY_NO_QUORUM,
    LATCHKEY_PANIC,
];

/// The statuses each C function returning latchkey_status can return.
/// (latchkey_error_status is not listed: it returns the status stored in
/// an error object.)
pub(crate) const RETURNS: &[(&str, &[latchkey_status])] = &[
    ("latchkey_error_free", LOCAL),
    ("latchkey_debug_panic", &[LATCHKEY_PANIC]),
    ("latchkey_client_options_new", LOCAL),
    ("latchkey_client_options_free", LOCAL),
    ("latchkey_client_options_set_connect_timeout_ms", LOCAL),
    ("latchkey_client_options_set_command_timeout_ms", LOCAL),
    ("latchkey_client_options_set_prefix", LOCAL),
    ("latchkey_client_options_set_pool_size", LOCAL),
    ("latchkey_client_options_set_spin_us", LOCAL),
    ("latchkey_client_options_set_wait_for_replicas", LOCAL),
    ("latchkey_client_options_set_master_password", LOCAL),
    ("latchkey_client_options_set_master_db", LOCAL),
    (
        "latchkey_client_options_set_redlock_restart_delay_ms",
        LOCAL,
    ),
    ("latchkey_client_options_set_tls_ca_file", LOCAL),
    ("latchkey_client_options_set_tls_client_cert", LOCAL),
    ("latchkey_client_options_set_tls_server_name", LOCAL),
    (
        "latchkey_client_options_set_tls_insecure_skip_verify",
        LOCAL,
    ),
    ("latchkey_client_open", LOCAL),
    ("latchkey_client_open_redlock", LOCAL),
    ("latchkey_client_open_sentinel", LOCAL),
    ("latchkey_client_open_cluster", LOCAL),
    ("latchkey_client_free", LOCAL),
    ("latchkey_client_close", NEEDS_QUORUM),
    ("latchkey_client_prefix", LOCAL),
    ("latchkey_client_inspect", NEEDS_QUORUM),
    ("latchkey_client_is_locked", ASKS_REDIS),
    ("latchkey_client_force_unlock", ASKS_REDIS),
    ("latchkey_client_inspect_masters", NEEDS_QUORUM),
    ("latchkey_master_states_free", LOCAL),
    // Redlock: the holder part is decided by quorum, as in
    // latchkey_client_inspect (its queue is always empty).
    ("latchkey_client_inspect_queue", NEEDS_QUORUM),
    ("latchkey_queued_waiters_free", LOCAL),
    ("latchkey_client_fenced_write", NEEDS_QUORUM),
    ("latchkey_client_fenced_read", NEEDS_QUORUM),
    ("latchkey_bytes_free", LOCAL),
    ("latchkey_lock_options_new", LOCAL),
    ("latchkey_lock_options_free", LOCAL),
    ("latchkey_lock_options_set_ttl_ms", LOCAL),
    ("latchkey_lock_options_set_auto_renew", LOCAL),
    ("latchkey_lock_options_set_reentrant", LOCAL),
    ("latchkey_lock_options_set_fair", LOCAL),
    ("latchkey_lock_options_set_retry_jitter_ms", LOCAL),
    ("latchkey_lock_options_set_renew_every_ms", LOCAL),
    ("latchkey_lock_options_set_on_lost", LOCAL),
    ("latchkey_lock_new", LOCAL),
    ("latchkey_lock_free", LOCAL),
    ("latchkey_lock_name", LOCAL),
    (
        "latchkey_lock_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_lock_try_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_semaphore_new", LOCAL),
    ("latchkey_semaphore_free", LOCAL),
    (
        "latchkey_semaphore_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_semaphore_try_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_semaphore_available", ASKS_REDIS),
    ("latchkey_semaphore_force_release_all", ASKS_REDIS),
    ("latchkey_election_new", LOCAL),
    ("latchkey_election_free", LOCAL),
    (
        "latchkey_election_campaign",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_election_leader", ASKS_REDIS),
    (
        "latchkey_election_observe",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_multi_lock_new", LOCAL),
    ("latchkey_multi_lock_free", LOCAL),
    (
        "latchkey_multi_lock_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_multi_lock_try_acquire",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_multi_guard_count", LOCAL),
    ("latchkey_multi_guard_fencing_token", LOCAL),
    ("latchkey_multi_guard_lost", LOCAL),
    ("latchkey_multi_guard_remaining_ms", LOCAL),
    (
        "latchkey_multi_guard_check",
        &[
            LATCHKEY_OK,
            LATCHKEY_LOST,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_multi_guard_release",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_multi_guard_free", LOCAL),
    ("latchkey_rwlock_new", LOCAL),
    ("latchkey_rwlock_free", LOCAL),
    (
        "latchkey_rwlock_read",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_rwlock_write",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_CANCELLED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_rwlock_downgrade",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_rwlock_try_read",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_rwlock_try_write",
        &[
            LATCHKEY_OK,
            LATCHKEY_TIMEOUT,
            LATCHKEY_CLOSED,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_guard_release",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_guard_free", LOCAL),
    (
        "latchkey_guard_extend",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_guard_extend_by",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    (
        "latchkey_guard_check",
        &[
            LATCHKEY_OK,
            LATCHKEY_LOST,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_guard_lost", LOCAL),
    ("latchkey_guard_confirm", NEEDS_QUORUM),
    (
        "latchkey_guard_fenced_write",
        &[
            LATCHKEY_OK,
            LATCHKEY_NOT_HELD,
            LATCHKEY_INVALID_ARGUMENT,
            LATCHKEY_CONNECTION,
            LATCHKEY_SERVER,
            LATCHKEY_AUTH,
            LATCHKEY_NO_QUORUM,
            LATCHKEY_PANIC,
        ],
    ),
    ("latchkey_guard_remaining_ms", LOCAL),
    ("latchkey_guard_fencing_token", LOCAL),
    ("latchkey_guard_owner_token", LOCAL),
    ("latchkey_guard_name", LOCAL),
    ("latchkey_cancel_new", LOCAL),
    ("latchkey_cancel_free", LOCAL),
    ("latchkey_cancel_trigger", LOCAL),
    ("latchkey_cancel_reset", LOCAL),
    ("latchkey_cancel_is_triggered", LOCAL),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    fn read(relative: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The LATCHKEY_* status names in `text`.
    fn status_names(text: &str) -> BTreeSet<String> {
        let known: BTreeSet<&str> = STATUSES.iter().map(|(_, n)| *n).collect();
        let mut found = BTreeSet::new();
        let mut rest = text;
        while let Some(start) = rest.find("LATCHKEY_") {
            let word: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            let word = word.trim_end_matches('_').to_string();
            if known.contains(word.as_str()) {
                found.insert(word.clone());
            }
            rest = &rest[start + word.len().max(1)..];
        }
        found
    }

    /// Each function returning latchkey_status in the header, with the
    /// statuses its doc comment's "Returns:" paragraph names.
    fn header_returns(header: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        let mut comment = String::new();
        for line in header.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("/**") {
                comment.clear();
            }
            if trimmed.starts_with('*') || trimmed.starts_with("/**") {
                comment.push_str(trimmed.trim_start_matches(['/', '*']).trim());
                comment.push('\n');
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("latchkey_status latchkey_") {
                let name = format!("latchkey_{}", rest.split('(').next().unwrap_or(""));
                let returns = comment
                    .split_once("Returns:")
                    .map(|(_, after)| {
                        after
                            .split("\n\n")
                            .next()
                            .unwrap_or("")
                            .split("# Safety")
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default();
                out.insert(name, status_names(&returns));
            }
        }
        out
    }

    #[test]
    fn the_headers_returns_lists_match_the_table() {
        let documented = header_returns(&read("include/latchkey.h"));
        let mut problems = Vec::new();
        for (function, statuses) in RETURNS {
            let expected: BTreeSet<String> = statuses
                .iter()
                .map(|s| STATUSES[*s as usize].1.to_string())
                .collect();
            match documented.get(*function) {
                None => problems.push(format!("{function}: in the table, not in the header")),
                Some(found) if *found != expected => problems.push(format!(
                    "{function}: the header's Returns: names {found:?}, the table {expected:?}"
                )),
                Some(_) => {}
            }
        }
        for function in documented.keys() {
            let listed = RETURNS.iter().any(|(f, _)| f == function);
            if !listed && function != "latchkey_error_status" {
                problems.push(format!("{function}: in the header, not in the table"));
            }
        }
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn statuses_are_numbered_in_order_and_named_consistently() {
        for (number, (status, name)) in STATUSES.iter().enumerate() {
            assert_eq!(*status as usize, number, "{name}");
            assert_eq!(format!("{status:?}"), *name);
        }
    }

    /// The Python binding has one exception class per failure status,
    /// whose docstring names the C status and whose `status` is its number.
    #[test]
    fn python_exceptions_cover_every_status() {
        let errors = read("bindings/python/latchkey/errors.py");
        for (status, name) in &STATUSES[1..] {
            let class = errors
                .split("\nclass ")
                .find(|class| class.contains(&format!("``{name}``")))
                .unwrap_or_else(|| panic!("no Python exception names {name}"));
            assert!(
                class.contains(&format!("status = {}\n", *status as i32)),
                "the Python class for {name} has another status number:\nclass {class}"
            );
        }
    }

    /// The Go binding has a Status constant and a sentinel for each status.
    #[test]
    fn go_statuses_cover_every_status() {
        let errors = read("bindings/go/errors.go");
        for (status, name) in &STATUSES {
            let number = *status as i32;
            let declared = errors.lines().any(|l| {
                l.trim().starts_with("Status") && l.trim().ends_with(&format!("Status = {number}"))
            });
            assert!(
                declared,
                "bindings/go/errors.go has no Status = {number} ({name})"
            );
        }
        let sentinels = errors.split("var sentinels").nth(1).unwrap_or("");
        let mapped = sentinels
            .split('}')
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| l.contains(':') && l.contains("Err"))
            .count();
        assert_eq!(mapped, STATUSES.len() - 1, "Go sentinels:\n{sentinels}");
    }

    /// The drift this contract was made for: a command timeout is a
    /// connection error. Any clause of the C, Python or Go documentation
    /// that mentions the command timeout next to the timeout status (and
    /// not to say it is not one) has drifted.
    #[test]
    fn no_documentation_calls_a_command_timeout_a_lock_timeout() {
        let mut files = vec!["include/latchkey.h".to_string()];
        for dir in ["bindings/python/latchkey", "bindings/go"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let source = name.ends_with(".py") || name.ends_with(".go");
                if source && !name.ends_with("_test.go") {
                    files.push(format!("{dir}/{name}"));
                }
            }
        }
        let timeout_words = [
            "LATCHKEY_TIMEOUT",
            "LockTimeout",
            "ErrTimeout",
            "StatusTimeout",
        ];
        let connection_words = [
            "LATCHKEY_CONNECTION",
            "ConnectionFailed",
            "ErrConnection",
            "StatusConnection",
        ];
        let mut problems = Vec::new();
        for file in &files {
            let text: String = read(file)
                .lines()
                .map(|l| l.trim().trim_start_matches(['/', '*', '#']).trim())
                .collect::<Vec<_>>()
                .join(" ");
            for clause in text.split(['.', ';']) {
                let about_command_timeout = ["command timeout", "not answer", "stopped server"]
                    .iter()
                    .any(|w| clause.contains(w));
                let names_timeout = timeout_words.iter().any(|w| clause.contains(w));
                let names_connection = connection_words.iter().any(|w| clause.contains(w));
                let denies = clause.contains("never")
                    || timeout_words
                        .iter()
                        .any(|w| clause.contains(&format!("not {w}")));
                if about_command_timeout && names_timeout && !names_connection && !denies {
                    problems.push(format!("{file}: {}", clause.trim()));
                }
            }
        }
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }
}
