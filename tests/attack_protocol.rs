//! Attacks on the lock protocol: late copies, retries and restarts that
//! try to make a token go down, two holders, or a hold vanish unreported.
//! Every call is a real script on a real redis-server, sent with the exact
//! KEYS and ARGV the library sends (see `src/lock.rs` `Target::attempt`).

mod support;

use support::RedisServer;

fn load(admin: &mut redis::Connection, body: &str) -> String {
    let text = format!("{}{}", include_str!("../src/scripts/prelude.lua"), body);
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(text)
        .query(admin)
        .unwrap()
}

/// A reentrant acquire as `Lock::attempt` sends it: owner, hold, ttl,
/// waited, retention, nest, the handle's highest token, its live holds.
fn reentrant_acquire(
    admin: &mut redis::Connection,
    sha: &str,
    hold: &str,
    nest: bool,
    known: u64,
    live: &[&str],
) -> (i64, u64) {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha)
        .arg(2)
        .arg("latchkey:{retry}")
        .arg("latchkey:{retry}:fence")
        .arg("owner-o")
        .arg(hold)
        .arg(30_000)
        .arg("1")
        .arg(600_000)
        .arg(if nest { "1" } else { "0" })
        .arg(known.to_string());
    for l in live {
        cmd.arg(*l);
    }
    let (ok, token): (i64, String) = cmd.query(admin).unwrap();
    (ok, token.parse().unwrap())
}

/// Failed before the fix (reentrant_acquire.lua's "this very acquisition
/// ran before" branch returned the hold's stored token whatever ARGV[7]),
/// 2 of 2 runs ("the retried hold X got token 1796604573150211, below
/// 1796604573154773 that the handle had already given to hold Y").
///
/// The library's own retry, not a copy: a waiting acquire (thread A) whose
/// attempt for hold X ran in Redis but whose reply was lost (Timeout) rides
/// the outage out and retries with the same hold token X
/// (`acquire.rs` `outage_policy`). Meanwhile thread B, on the same Lock
/// handle, which has no live hold (X's reply never came), acquired hold Y:
/// reentrant_acquire renewed the tenure with a new token T2 > T1 and kept
/// X's field (T1 is not below the handle's highest token then). A's retry
/// is sent with nest = 1, the handle's highest token T2 and live = [Y]; the
/// script's "this very acquisition ran before" branch returned X's stored
/// T1: the handle hands out T1 after T2, contrary to the README ("never a
/// token below one the handle was given") and to the script header ("the
/// token returned is never below ARGV[7]"). A's fenced writes are then
/// refused after Y's, although both holds are live holds of one tenure.
#[test]
fn a_retried_reentrant_acquire_never_returns_a_token_below_the_handles() {
    let server = RedisServer::start();
    let mut admin = server.admin();
    let sha = load(
        &mut admin,
        include_str!("../src/scripts/reentrant_acquire.lua"),
    );
    // A's attempt runs; its reply is lost.
    let (ok, t1) = reentrant_acquire(&mut admin, &sha, "x", false, 0, &[]);
    assert_eq!(ok, 1);
    // B acquires through the same handle, which knows of no live hold.
    let (ok, t2) = reentrant_acquire(&mut admin, &sha, "y", false, 0, &[]);
    assert_eq!(ok, 1);
    assert!(t2 > t1, "a new tenure's token {t2} is above {t1}");
    // A retries the same hold.
    let (ok, retried) = reentrant_acquire(&mut admin, &sha, "x", true, t2, &["y"]);
    assert_eq!(ok, 1);
    assert!(
        retried >= t2,
        "the retried hold X got token {retried}, below {t2} that the handle had already given to hold Y"
    );
    let y: Option<String> = redis::cmd("HGET")
        .arg("latchkey:{retry}")
        .arg("h:y")
        .query(&mut admin)
        .unwrap();
    assert!(y.is_some(), "hold Y removed by the retry");
}
