//! Fencing tokens never repeat and never go down, whatever Redis comes back
//! with (nothing, an older snapshot, a lost AOF tail, an evicted counter),
//! a fenced resource never accepts two holds under one token, and a free
//! lock name leaves nothing behind after the fence retention.

mod support;

use std::time::{Duration, Instant};

use latchkey::{Client, LockOptions};
use support::{wait_until, RedisServer};

fn take_and_give_back(client: &Client, name: &str) -> u64 {
    let guard = client
        .lock_with(name, LockOptions::new().ttl(Duration::from_secs(10)))
        .unwrap()
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    let token = guard.fencing_token();
    guard.release().unwrap();
    token
}

fn save(server: &RedisServer) {
    let () = redis::cmd("SAVE").query(&mut server.admin()).unwrap();
}

#[test]
fn tokens_keep_increasing_after_a_restart_from_an_older_snapshot() {
    let mut server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let first = take_and_give_back(&client, "snap");
    save(&server);
    let mut issued = vec![first];
    for _ in 0..2 {
        issued.push(take_and_give_back(&client, "snap"));
    }
    // The protected resource lives elsewhere and keeps what it saw. A
    // holder from before the restart writes with the newest token.
    let storage = RedisServer::start();
    let store = Client::open(&storage.url()).unwrap();
    assert!(
        store
            .fenced_write("snap-resource", issued[2], b"before")
            .unwrap()
            .written
    );
    // kill -9 and start again from the snapshot taken after the first token.
    server.restart();

    let client = Client::open(&server.url()).unwrap();
    for _ in 0..3 {
        let next = take_and_give_back(&client, "snap");
        let highest = *issued.iter().max().unwrap();
        assert!(
            next > highest,
            "token {next} after the restart is not above {highest} issued before: {issued:?}"
        );
        issued.push(next);
    }
    // The new holder is accepted, then the old holder's token is refused.
    let guard = client.lock("snap").unwrap().acquire().unwrap();
    assert!(
        store
            .fenced_write("snap-resource", guard.fencing_token(), b"after")
            .unwrap()
            .written
    );
    let stale = store
        .fenced_write("snap-resource", issued[2], b"stale")
        .unwrap();
    assert!(
        !stale.written,
        "the holder from before the restart was accepted"
    );
    guard.release().unwrap();
}

#[test]
fn tokens_keep_increasing_after_losing_the_tail_of_the_aof() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let client = Client::open(&server.url()).unwrap();
    let mut highest = 0;
    for _ in 0..200 {
        highest = highest.max(take_and_give_back(&client, "aof"));
    }
    // The machine dies in the middle of the stream: with `everysec` up to a
    // second of writes never reached the disk. (kill -9 alone loses
    // nothing: the kernel still has the pages.) Cut the AOF's tail.
    server.kill();
    cut_aof_tail(&server.dir);
    server.restart();
    let client = Client::open(&server.url()).unwrap();
    let next = take_and_give_back(&client, "aof");
    assert!(next > highest, "token {next} is not above {highest}");
}

/// Drops the last half of the newest AOF file (Redis loads a truncated AOF
/// up to its last complete command). Redis 7 keeps its AOF in parts
/// (`appendonlydir/*.incr.aof` is the newest); Redis 6.2 in one file.
fn cut_aof_tail(dir: &std::path::Path) {
    let aof_dir = dir.join("appendonlydir");
    let newest = if aof_dir.is_dir() {
        std::fs::read_dir(&aof_dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .max()
            .expect("an incremental AOF file")
    } else {
        dir.join("appendonly.aof")
    };
    let len = std::fs::metadata(&newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    file.set_len(len / 2).unwrap();
}

#[test]
fn a_lost_counter_never_yields_token_zero_or_a_lower_token() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let before = take_and_give_back(&client, "evicted");
    let mut admin = server.admin();
    // What an allkeys-* eviction (or a lagging replica) does to the counter.
    let _: i64 = redis::cmd("DEL")
        .arg("latchkey:{evicted}:fence")
        .query(&mut admin)
        .unwrap();
    let after = take_and_give_back(&client, "evicted");
    assert!(after > before, "{after} <= {before}");

    // A retried acquire (same hold token) after the counter vanished: the
    // script recognises its own hold and must still issue a real token.
    let script = redis::Script::new(&support::script_source::assemble(include_str!(
        "../src/scripts/acquire.lua"
    )));
    let acquire = |admin: &mut redis::Connection| -> (i64, String) {
        script
            .key("latchkey:{retried}")
            .key("latchkey:{retried}:fence")
            .arg("hold-1")
            .arg(10_000)
            .arg("0")
            .arg(60_000)
            .invoke(admin)
            .unwrap()
    };
    let (won, first) = acquire(&mut admin);
    assert_eq!(won, 1);
    let _: i64 = redis::cmd("DEL")
        .arg("latchkey:{retried}:fence")
        .query(&mut admin)
        .unwrap();
    let (won, retried) = acquire(&mut admin);
    assert_eq!(won, 1, "a retry of our own attempt is ours");
    let (first, retried): (u64, u64) = (first.parse().unwrap(), retried.parse().unwrap());
    assert!(
        retried > first,
        "the retry returned {retried} after {first}"
    );
}

#[test]
fn real_eviction_of_latchkey_keys_never_lowers_a_token() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let client = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let mut highest = 0;
    for _ in 0..20 {
        highest = highest.max(take_and_give_back(&client, "lru"));
    }
    // Squeeze memory until Redis evicts keys, ours among them.
    let used: String = redis::cmd("INFO").arg("memory").query(&mut admin).unwrap();
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 200_000)
        .query(&mut admin)
        .unwrap();
    let filler = "x".repeat(1000);
    for i in 0..2000 {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("filler:{i}"))
            .arg(&filler)
            .query(&mut admin);
    }
    let evicted: String = redis::cmd("INFO").arg("stats").query(&mut admin).unwrap();
    assert!(
        !evicted.contains("evicted_keys:0\r"),
        "nothing was evicted; the test did not exercise eviction"
    );
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut admin)
        .unwrap();
    let next = take_and_give_back(&client, "lru");
    assert!(next > highest, "{next} <= {highest}");
}

#[test]
fn fenced_writes_compare_exactly_and_never_accept_two_holds_with_one_token() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    // Exact comparison over the whole u64 range (doubles would call these equal).
    assert!(
        client
            .fenced_write("exact", u64::MAX, b"max")
            .unwrap()
            .written
    );
    let lower = client
        .fenced_write("exact", u64::MAX - 1, b"lower")
        .unwrap();
    assert!(!lower.written, "u64::MAX - 1 was accepted after u64::MAX");
    assert_eq!(lower.highest_token, u64::MAX);
    assert_eq!(
        client.fenced_read("exact").unwrap().unwrap(),
        (u64::MAX, b"max".to_vec())
    );

    let guard = client.lock("fenced").unwrap().acquire().unwrap();
    assert!(guard.fenced_write("doc", b"v1").unwrap().written);
    assert!(
        guard.fenced_write("doc", b"v2").unwrap().written,
        "the same hold may write again"
    );
    // Anyone else with the same token (here: one who knows only the
    // number) is another hold, and is refused.
    let other = client
        .fenced_write("doc", guard.fencing_token(), b"intruder")
        .unwrap();
    assert!(!other.written, "another hold wrote with an equal token");
    assert_eq!(
        client.fenced_read("doc").unwrap().unwrap().1,
        b"v2".to_vec()
    );
    guard.release().unwrap();
}

#[test]
fn a_free_name_leaves_nothing_behind_after_the_retention() {
    let server = RedisServer::start();
    let client = Client::builder(&server.url())
        .fence_retention(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut admin = server.admin();
    let mut tokens = Vec::new();
    for i in 0..300 {
        tokens.push(take_and_give_back(&client, &format!("entity:{i}")));
    }
    let left: i64 = redis::cmd("DBSIZE").query(&mut admin).unwrap();
    assert!(left <= 300, "{left} keys for 300 names");
    let started = Instant::now();
    wait_until("every key expired", Duration::from_secs(10), || {
        redis::cmd("DBSIZE").query::<i64>(&mut admin).unwrap() == 0
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    // Without the counters, tokens still go up.
    for (i, before) in tokens.iter().enumerate().take(20) {
        let next = take_and_give_back(&client, &format!("entity:{i}"));
        assert!(next > *before, "{next} <= {before}");
    }
    assert!(Client::builder(&server.url())
        .fence_retention(Duration::from_millis(10))
        .build()
        .is_err());
}
