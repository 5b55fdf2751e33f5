//! Lock names that are awkward for Redis keys (braces move or empty the
//! Cluster hash tag, non-ASCII bytes, the longest name allowed), and the
//! check that one deployment treats each of them like any other name.

#![allow(dead_code)]

use latchkey::{Client, MAX_NAME_LEN};

/// The names every deployment must handle alike.
pub fn awkward_names() -> Vec<String> {
    vec![
        "}x".to_string(),
        "}".to_string(),
        "}}".to_string(),
        "{}".to_string(),
        "{a}".to_string(),
        "a".to_string(),
        "a}b{c".to_string(),
        "}x:fence".to_string(),
        "schlüssel-ключ-鍵-🔒".to_string(),
        "x".repeat(MAX_NAME_LEN),
        format!("}}{}", "y".repeat(MAX_NAME_LEN - 1)),
    ]
}

fn short(name: &str) -> String {
    name.chars().take(24).collect()
}

/// Acquires every name at once (distinct names never share a key), then
/// inspects, fails to take again, releases, and takes once more with a
/// larger fencing token.
pub fn check_every_name(client: &Client) {
    let names = awkward_names();
    let locks: Vec<_> = names.iter().map(|n| client.lock(n).unwrap()).collect();
    let guards: Vec<_> = locks
        .iter()
        .zip(&names)
        .map(|(lock, name)| {
            lock.try_acquire()
                .unwrap_or_else(|e| panic!("acquiring '{}': {e}", short(name)))
                .unwrap_or_else(|| panic!("'{}' is free but was not acquired", short(name)))
        })
        .collect();
    for ((lock, name), guard) in locks.iter().zip(&names).zip(&guards) {
        let info = client
            .inspect(name)
            .unwrap_or_else(|e| panic!("inspecting '{}': {e}", short(name)))
            .unwrap_or_else(|| panic!("'{}' is held but inspect says free", short(name)));
        assert_eq!(info.name, *name);
        assert_eq!(info.owner_token, guard.token(), "'{}'", short(name));
        assert_eq!(
            info.fencing_token,
            guard.fencing_token(),
            "'{}'",
            short(name)
        );
        assert!(
            lock.try_acquire().unwrap().is_none(),
            "'{}' was taken twice",
            short(name)
        );
    }
    let tokens: Vec<u64> = guards.iter().map(|g| g.fencing_token()).collect();
    for (guard, name) in guards.into_iter().zip(&names) {
        guard
            .release()
            .unwrap_or_else(|e| panic!("releasing '{}': {e}", short(name)));
        assert!(!client.is_locked(name).unwrap(), "'{}'", short(name));
    }
    for ((lock, name), before) in locks.iter().zip(&names).zip(tokens) {
        let again = lock.try_acquire().unwrap().expect("free again");
        assert!(again.fencing_token() > before, "'{}'", short(name));
        again.release().unwrap();
    }
}
