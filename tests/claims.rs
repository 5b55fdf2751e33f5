//! Documented behaviour that no other suite exercises: each test backs a
//! claim of the README (see tests/claims.tsv for the map).

mod support;

use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, LockOptions};
use support::{scripts_run, wait_for_waiter, wait_until, RedisServer};

#[test]
fn the_database_in_the_url_is_the_one_used() {
    let server = RedisServer::start();
    let client = Client::open(&format!("{}/3", server.url())).unwrap();
    let guard = client.lock("in-db-3").unwrap().acquire().unwrap();
    let mut admin = server.admin();
    let in_db0: i64 = redis::cmd("EXISTS")
        .arg("latchkey:{in-db-3}")
        .query(&mut admin)
        .unwrap();
    let () = redis::cmd("SELECT").arg(3).query(&mut admin).unwrap();
    let in_db3: i64 = redis::cmd("EXISTS")
        .arg("latchkey:{in-db-3}")
        .query(&mut admin)
        .unwrap();
    assert_eq!((in_db0, in_db3), (0, 1));
    guard.release().unwrap();
}

#[test]
fn renew_every_sets_the_renewal_period() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let options = LockOptions::new()
        .ttl(Duration::from_secs(30))
        .renew_every(Duration::from_millis(100));
    let guard = client
        .lock_with("renew-often", options)
        .unwrap()
        .acquire()
        .unwrap();
    let before = scripts_run(&server);
    // With the default period (ttl/3 = 10 s) five renewals take 50 s.
    wait_until("five renewals", Duration::from_secs(10), || {
        scripts_run(&server) >= before + 5
    });
    guard.check().unwrap();
    guard.release().unwrap();
}

#[test]
fn the_validity_is_the_ttl_minus_elapsed_minus_drift() {
    let server = RedisServer::start();
    let masters: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = masters.iter().map(RedisServer::url).collect();
    let single = Client::open(&server.url()).unwrap();
    let redlock = Client::redlock_builder(&urls)
        .redlock_restart_delay(Duration::ZERO) // fresh test servers
        .build()
        .unwrap();
    let ttl = Duration::from_secs(10);
    // drift = 1 % of the ttl + 2 ms = 102 ms
    let most = ttl - Duration::from_millis(102);
    for client in [&single, &redlock] {
        let options = LockOptions::new().ttl(ttl).auto_renew(false);
        let before = Instant::now();
        let guard = client
            .lock_with("validity", options)
            .unwrap()
            .acquire()
            .unwrap();
        let remaining = guard.remaining();
        assert!(remaining <= most, "{remaining:?} > {most:?}");
        // ... and no less than that minus the time the acquire took.
        assert!(remaining + before.elapsed() >= most, "{remaining:?}");
        guard.release().unwrap();
    }
}

#[test]
fn a_lost_release_message_costs_a_waiter_at_most_the_holders_ttl() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let holder = client
        .lock_with(
            "lost-message",
            LockOptions::new()
                .ttl(Duration::from_millis(1500))
                .auto_renew(false),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let waiter = {
        let client = Client::open(&server.url()).unwrap();
        thread::spawn(move || {
            let lock = client.lock("lost-message").unwrap();
            let started = Instant::now();
            let guard = lock.acquire_timeout(Duration::from_secs(30)).unwrap();
            let waited = started.elapsed();
            guard.release().unwrap();
            waited
        })
    };
    wait_for_waiter(&server, "lost-message");
    // The lock disappears without a release message (as if the message
    // were lost): the waiter must notice by the end of the holder's ttl.
    std::mem::forget(holder);
    let _: i64 = redis::cmd("PEXPIRE")
        .arg("latchkey:{lost-message}")
        .arg(1)
        .query(&mut server.admin())
        .unwrap();
    let waited = waiter.join().unwrap();
    // The waiter slept at most the holder's remaining ttl (1.5 s), plus a
    // generous allowance for a loaded machine; far below its 30 s timeout.
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
}

#[test]
fn the_connect_timeout_bounds_a_server_that_never_answers() {
    // A socket that accepts connections into its backlog and never reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let client = Client::builder(&url)
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.is_locked("silent").unwrap_err();
    assert_eq!(err.kind(), latchkey::ErrorKind::Connection, "{err}");
    // Bounded by the connect timeout, far below the 20 s command timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_pool_keeps_at_most_pool_size_idle_connections() {
    let server = RedisServer::start();
    let client = Client::builder(&server.url()).pool_size(2).build().unwrap();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            thread::spawn(move || {
                for _ in 0..20 {
                    client.is_locked(&format!("pool-{i}")).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    wait_until(
        "extra connections are closed",
        Duration::from_secs(10),
        || {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut server.admin())
                .unwrap();
            // Two idle pool connections plus this admin connection.
            list.lines().count() <= 3
        },
    );
}

/// Every spin limit from 0 (no spinning) to 10 ms makes a working client;
/// a longer one is refused.
#[test]
fn the_spin_limit_is_at_most_10_ms_and_any_limit_works() {
    let server = RedisServer::start();
    let limits = [
        Duration::ZERO,
        Duration::from_micros(100),
        Duration::from_millis(10),
    ];
    for spin in limits {
        let client = Client::builder(&server.url()).spin(spin).build().unwrap();
        let lock = client.lock("spin").unwrap();
        let guard = lock.acquire().unwrap();
        assert!(client.is_locked("spin").unwrap(), "spin {spin:?}");
        let other = client.lock("spin").unwrap();
        assert!(other.try_acquire().unwrap().is_none(), "spin {spin:?}");
        guard.release().unwrap();
        assert!(!client.is_locked("spin").unwrap(), "spin {spin:?}");
    }
    let err = Client::builder(&server.url())
        .spin(Duration::from_millis(10) + Duration::from_nanos(1))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), latchkey::ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("at most 10ms"), "{err}");
}

/// The default spin limit is none (0), or `LATCHKEY_SPIN_US` microseconds
/// (at most 10 ms). The variable is read once per process, so each case
/// runs this test again in a child process with its own environment.
#[test]
fn the_default_spin_limit_is_off_or_latchkey_spin_us() {
    const TEST: &str = "the_default_spin_limit_is_off_or_latchkey_spin_us";
    const EXPECTED: &str = "CLAIMS_EXPECTED_SPIN";
    if let Ok(expected) = std::env::var(EXPECTED) {
        let debug = format!("{:?}", Client::builder("redis://127.0.0.1"));
        assert!(debug.contains(&format!("spin: {expected},")), "{debug}");
        return;
    }
    let cases = [
        (None, "0ns"),
        (Some("0"), "0ns"),
        (Some("250"), "250µs"),
        (Some("50000"), "10ms"),
        (Some("not a number"), "0ns"),
    ];
    for (value, expected) in cases {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST, "--test-threads", "1"])
            .env(EXPECTED, expected);
        match value {
            Some(value) => child.env("LATCHKEY_SPIN_US", value),
            None => child.env_remove("LATCHKEY_SPIN_US"),
        };
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "LATCHKEY_SPIN_US={value:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_sentinel_master_password_and_db_are_used() {
    let master = RedisServer::start_with(&["--requirepass", "s3cret/pw"]);
    let sentinel = RedisServer::start_sentinel(master.port, 1);
    let open = |password: Option<&str>| {
        let mut builder = Client::sentinel_builder(&[sentinel.url()], "mymaster")
            .master_db(2)
            .command_timeout(Duration::from_secs(2));
        if let Some(password) = password {
            builder = builder.master_password(password);
        }
        builder.build().unwrap()
    };
    let client = open(Some("s3cret/pw"));
    let guard = client.lock("with-auth").unwrap().acquire().unwrap();
    let admin =
        redis::Client::open(format!("redis://:s3cret%2Fpw@127.0.0.1:{}/2", master.port)).unwrap();
    let mut admin = admin.get_connection().unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("latchkey:{with-auth}")
        .query(&mut admin)
        .unwrap();
    assert_eq!(exists, 1, "the lock is not in database 2");
    guard.release().unwrap();
    let err = open(None)
        .lock("with-auth")
        .unwrap()
        .try_acquire()
        .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn retry_jitter_delays_the_retry_after_a_lease_ran_out() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let ttl = Duration::from_millis(300);
    let mut extra_delays = Vec::new();
    for trial in 0..3 {
        let name = format!("jitter-{trial}");
        let holder = client
            .lock_with(&name, LockOptions::new().ttl(ttl).auto_renew(false))
            .unwrap()
            .acquire()
            .unwrap();
        let expires = Instant::now() + ttl;
        let waiter = client
            .lock_with(
                &name,
                LockOptions::new().retry_jitter(Duration::from_secs(1)),
            )
            .unwrap();
        // The lease runs out without a release message.
        std::mem::forget(holder);
        let guard = waiter.acquire_timeout(Duration::from_secs(30)).unwrap();
        extra_delays.push(Instant::now().saturating_duration_since(expires));
        guard.release().unwrap();
    }
    // Each retry waits a random pause below the jitter: the chance that
    // three pauses all fall under 50 ms is (5 %)^3.
    assert!(
        extra_delays.iter().any(|d| *d > Duration::from_millis(50)),
        "{extra_delays:?}"
    );
    assert!(
        extra_delays.iter().all(|d| *d < Duration::from_secs(8)),
        "{extra_delays:?}"
    );
}
