//! A restricted Redis ACL user, against real redis-server processes: the
//! rule of the README's "Redis ACL" section is enough for every operation
//! on one server (acquire, release, waiting with hand-off, renewal, fencing,
//! inspect), it names exactly the commands the client and the scripts send,
//! and a user that lacks one of those permissions gets a server error that
//! names the cause, not a hang.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use latchkey::{Client, ErrorKind, LockOptions};
use support::{wait_for_waiter, wait_until, RedisServer};

/// What the README's rule says: the user name and the rules after it.
fn documented_rule() -> (String, Vec<String>) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("ACL SETUSER "))
        .expect("the README's Redis ACL section has an `ACL SETUSER` line");
    let mut words = line.split_whitespace().skip(2).map(str::to_string);
    let user = words.next().expect("a user name after ACL SETUSER");
    (user, words.collect())
}

/// The password the rule gives the user (`>password`).
fn password_of(rules: &[String]) -> String {
    rules
        .iter()
        .find_map(|r| r.strip_prefix('>'))
        .expect("the rule sets a password")
        .to_string()
}

/// Creates (or redefines) `user` on `server` with exactly `rules`.
fn set_user(server: &RedisServer, user: &str, rules: &[String]) {
    let mut admin = server.admin();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg(rules)
        .query(&mut admin)
        .expect("ACL SETUSER");
}

fn client_as(server: &RedisServer, user: &str, password: &str) -> Client {
    Client::builder(&format!(
        "redis://{user}:{password}@127.0.0.1:{}",
        server.port
    ))
    .connect_timeout(Duration::from_secs(5))
    .command_timeout(Duration::from_secs(5))
    .build()
    .expect("the URL is well formed")
}

/// A server with the documented user, and a client logged in as it.
fn documented_user() -> (RedisServer, Client) {
    let server = RedisServer::start();
    let (user, rules) = documented_rule();
    set_user(&server, &user, &rules);
    let client = client_as(&server, &user, &password_of(&rules));
    (server, client)
}

/// The lock's remaining time as the server sees it (the default user).
fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.admin())
        .expect("PTTL")
}

#[test]
fn the_documented_rule_is_enough_for_acquire_release_fencing_and_inspect() {
    let (_server, client) = documented_user();
    let lock = client.lock("acl:basic").unwrap();
    let guard = lock.acquire().unwrap();
    assert!(client.is_locked("acl:basic").unwrap());
    let info = client.inspect("acl:basic").unwrap().expect("held");
    assert_eq!(info.owner_token, guard.token());
    assert_eq!(info.fencing_token, guard.fencing_token());
    assert!(info.queue.is_empty());
    assert!(lock.try_acquire().unwrap().is_none(), "held by the guard");
    assert!(guard.confirm().unwrap());

    // Fencing: the hold's writes go through, an older token is refused.
    assert!(guard.fenced_write("acl:resource", b"v1").unwrap().written);
    assert_eq!(
        client.fenced_read("acl:resource").unwrap(),
        Some((guard.fencing_token(), b"v1".to_vec()))
    );
    let stale = client
        .fenced_write("acl:resource", guard.fencing_token() - 1, b"stale")
        .unwrap();
    assert!(!stale.written);
    assert_eq!(stale.highest_token, guard.fencing_token());

    guard.release().unwrap();
    assert!(!client.is_locked("acl:basic").unwrap());
    assert!(client.inspect("acl:basic").unwrap().is_none());

    // Reentrant holds and force-unlock use scripts of their own.
    let reentrant = client
        .lock_with("acl:reentrant", LockOptions::new().reentrant(true))
        .unwrap();
    let outer = reentrant.acquire().unwrap();
    let inner = reentrant.acquire().unwrap();
    assert_eq!(
        client.inspect("acl:reentrant").unwrap().unwrap().hold_count,
        2
    );
    inner.release().unwrap();
    outer.release().unwrap();
    let forced = client.lock("acl:forced").unwrap().acquire().unwrap();
    assert!(client.force_unlock("acl:forced").unwrap());
    assert!(!forced.confirm().unwrap());
    drop(forced);
}

#[test]
fn the_documented_rule_is_enough_for_renewal_and_extension() {
    let (server, client) = documented_user();
    let guard = client
        .lock_with(
            "acl:renewed",
            LockOptions::new().ttl(Duration::from_millis(600)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    // The watchdog renews every 200 ms: the lease in Redis goes back up,
    // twice, which only a renewal does.
    let mut last = pttl(&server, "latchkey:{acl:renewed}");
    let mut renewals = 0;
    wait_until(
        "the watchdog renewed the lease twice",
        Duration::from_secs(30),
        || {
            let now = pttl(&server, "latchkey:{acl:renewed}");
            assert!(now > 0, "the lease ran out: {now}");
            if now > last {
                renewals += 1;
            }
            last = now;
            renewals >= 2
        },
    );
    guard.check().unwrap();
    guard.extend(Duration::from_secs(20)).unwrap();
    assert!(pttl(&server, "latchkey:{acl:renewed}") > 10_000);
    guard.extend_by(Duration::from_secs(1)).unwrap();
    guard.release().unwrap();
}

#[test]
fn the_documented_rule_is_enough_for_waiting_with_hand_off() {
    for fair in [false, true] {
        let (server, holder_client) = documented_user();
        let (user, rules) = documented_rule();
        // The waiter has its own client: its own connections and pub/sub.
        let waiter_client = client_as(&server, &user, &password_of(&rules));
        let options = LockOptions::new().fair(fair);
        let name = "acl:handoff";
        let holder = holder_client
            .lock_with(name, options.clone())
            .unwrap()
            .acquire()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let lock = waiter_client.lock_with(name, options).unwrap();
            tx.send(lock.acquire_timeout(Duration::from_secs(60)))
                .unwrap();
            waiter_client
        });
        // Parked and listening on the release channel, and queued.
        wait_for_waiter(&server, name);
        wait_until("the waiter is queued", Duration::from_secs(30), || {
            holder_client
                .inspect(name)
                .unwrap()
                .is_some_and(|info| info.queue.len() == 1)
        });
        let first_token = holder.fencing_token();
        holder.release().unwrap();
        let handed = rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("fair={fair}: the waiter did not get the lock: {e}"));
        assert!(handed.fencing_token() > first_token, "fair={fair}");
        handed.release().unwrap();
        waiter.join().unwrap();
    }
}

/// Every command of the rule is one the client or a script sends, and
/// every command they send is in the rule.
#[test]
fn the_documented_rule_names_exactly_the_commands_latchkey_sends() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sent = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("src/scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "lua") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in ["redis.call('", "redis.pcall('"] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let command = rest.split('\'').next().unwrap_or_default();
                sent.insert(command.to_ascii_lowercase());
            }
        }
        // Release messages: `redis.call(publish, ...)` with 'PUBLISH' on one
        // server ('SPUBLISH' only on a Redis 7 Cluster).
        if text.contains("'PUBLISH'") {
            sent.insert("publish".to_string());
        }
    }
    // What the client sends itself, each checked against its source: PING
    // in every connection's handshake, EVALSHA for every script, SCRIPT
    // LOAD when the server lacks one, SUBSCRIBE and UNSUBSCRIBE for a
    // waiter's release channel. (AUTH and HELLO need no permission.)
    let single = std::fs::read_to_string(root.join("src/backend/single.rs")).unwrap();
    let pubsub = std::fs::read_to_string(root.join("src/pubsub.rs")).unwrap();
    for (command, source, text) in [
        ("ping", &single, "setup.cmd(\"PING\")"),
        ("evalsha", &single, "redis::cmd(\"EVALSHA\")"),
        ("script|load", &single, "script.load(conn)"),
        ("subscribe", &pubsub, "Kind::Plain => b\"SUBSCRIBE\""),
        ("unsubscribe", &pubsub, "Kind::Plain => b\"UNSUBSCRIBE\""),
    ] {
        assert!(
            source.contains(text),
            "{text} is gone: is {command} still sent?"
        );
        sent.insert(command.to_string());
    }
    let (_, rules) = documented_rule();
    let allowed: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r.strip_prefix('+'))
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(
        allowed, sent,
        "the README's rule (left) and what latchkey sends (right)"
    );
    // Nothing else: no category, no key or channel outside the prefix.
    for rule in &rules {
        assert!(
            rule.starts_with('+')
                || rule.starts_with('>')
                || [
                    "on",
                    "resetkeys",
                    "~latchkey:*",
                    "resetchannels",
                    "&latchkey:*",
                    "-@all"
                ]
                .contains(&rule.as_str()),
            "unexpected rule {rule}"
        );
    }
}

/// The documented rule without `drop`, plus `add`.
fn rule_without(drop: &str, add: &[&str]) -> Vec<String> {
    let (_, rules) = documented_rule();
    let mut changed: Vec<String> = rules.into_iter().filter(|r| r != drop).collect();
    changed.extend(add.iter().map(|r| r.to_string()));
    changed
}

/// A server, and a client logged in as a user with `rules`.
fn user_with(rules: &[String]) -> (RedisServer, Client) {
    let server = RedisServer::start();
    set_user(&server, "partial", rules);
    let client = client_as(&server, "partial", &password_of(rules));
    (server, client)
}

fn assert_names_the_permission(err: &latchkey::Error, cause: &str) {
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    let text = err.to_string();
    assert!(text.contains(cause), "{cause:?} not in {text}");
    assert!(text.contains("Redis ACL"), "no pointer to the rule: {text}");
    assert!(text.contains("lock 'acl:"), "which lock: {text}");
}

#[test]
fn a_user_without_a_command_or_key_gets_an_error_naming_it() {
    for (drop, add, cause) in [
        ("+evalsha", &[][..], "'evalsha'"),
        // Redis 7 names 'script|load', Redis 6.2 "the 'script' command or
        // its subcommand".
        ("+script|load", &[][..], "'script"),
        ("~latchkey:*", &["~other:*"][..], "keys"),
        // A command only a script sends: Redis checks it inside the script.
        ("+time", &[][..], "can't run this command"),
    ] {
        let (_server, client) = user_with(&rule_without(drop, add));
        let err = client
            .lock("acl:refused")
            .unwrap()
            .acquire_timeout(Duration::from_secs(60))
            .expect_err(drop);
        assert_names_the_permission(&err, cause);
        let err = client.inspect("acl:refused").expect_err(drop);
        assert_eq!(err.kind(), ErrorKind::Server, "{drop}: {err}");
    }
}

/// A waiter whose SUBSCRIBE Redis refuses fails at once with the reason,
/// rather than waiting (for ever, without a timeout) for releases it cannot
/// hear.
#[test]
fn a_waiter_without_its_channel_or_subscribe_gets_an_error_naming_it() {
    for (drop, cause) in [("&latchkey:*", "channel"), ("+subscribe", "'subscribe'")] {
        let (server, client) = user_with(&rule_without(drop, &[]));
        let admin = Client::open(&server.url()).unwrap();
        let holder = admin.lock("acl:busy").unwrap().acquire().unwrap();
        let err = client
            .lock("acl:busy")
            .unwrap()
            .acquire_timeout(Duration::from_secs(60))
            .expect_err("a refused subscription ends the wait");
        assert_names_the_permission(&err, cause);
        assert!(err.to_string().contains("SUBSCRIBE"), "{err}");
        // The refused waiter left the queue: the release frees the lock.
        wait_until("the waiter left the queue", Duration::from_secs(30), || {
            admin
                .inspect("acl:busy")
                .unwrap()
                .is_some_and(|info| info.queue.is_empty())
        });
        holder.release().unwrap();
        assert!(!admin.is_locked("acl:busy").unwrap(), "{drop}");
    }
}
