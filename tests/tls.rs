//! TLS against real redis-servers started with `--tls-port` and
//! certificates made for the test (tools/tls_certs.py): a good chain, the
//! wrong CA, the wrong name, mutual TLS, the loud insecure switch, and
//! options that would be ignored.

#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use latchkey::{Client, ClientBuilder, ErrorKind, LockOptions};
use support::tls::{tls_url, Certs};
use support::RedisServer;

/// `holder` takes `name` and keeps it past two ttls (renewals over TLS),
/// `waiter` waits for it (its release listener over TLS) on `server`, and
/// gets it when the holder releases, with a larger fencing token.
fn hand_over(holder: &Client, waiter: &Client, server: &RedisServer, name: &str) {
    let options = LockOptions::new().ttl(Duration::from_secs(1));
    let guard = holder
        .lock_with(name, options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let first_token = guard.fencing_token();
    let other = waiter.lock_with(name, options).unwrap();
    let waiting = std::thread::spawn(move || {
        let guard = other.acquire_timeout(Duration::from_secs(30)).unwrap();
        let token = guard.fencing_token();
        guard.release().unwrap();
        token
    });
    support::wait_for_waiter(server, name);
    // Held past two ttls: only renewals keep it.
    std::thread::sleep(Duration::from_millis(2500));
    guard.check().unwrap();
    guard.release().unwrap();
    assert!(waiting.join().unwrap() > first_token);
    assert!(!holder.is_locked(name).unwrap());
}

fn quick(builder: ClientBuilder) -> ClientBuilder {
    builder
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(5))
}

#[test]
fn locks_are_taken_renewed_handed_over_and_released_over_tls() {
    let certs = Certs::make();
    let server = certs.server();
    let client = |name: &str| {
        quick(Client::builder(&tls_url(&server, name)))
            .tls_ca_file(certs.path("ca.crt"))
            .build()
            .unwrap()
    };
    hand_over(
        &client("localhost"),
        &client("127.0.0.1"),
        &server,
        "tls-job",
    );
}

#[test]
fn sentinel_and_its_master_are_reached_over_tls() {
    let certs = Certs::make();
    let master = certs.server();
    let sentinel = certs.sentinel(&master);
    let client = || {
        quick(Client::sentinel_builder(
            &[tls_url(&sentinel, "localhost")],
            "mymaster",
        ))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap()
    };
    hand_over(&client(), &client(), &master, "sentinel-tls");
}

#[test]
fn cluster_nodes_are_reached_over_tls() {
    let certs = Certs::make();
    let args = certs.server_args("no", &["--tls-cluster", "yes"]);
    let nodes = support::cluster::start_nodes_with(
        3,
        0,
        5000,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let client = || {
        quick(Client::cluster_builder(&[tls_url(&nodes[0], "localhost")]))
            .tls_ca_file(certs.path("ca.crt"))
            .build()
            .unwrap()
    };
    // Names in every master's slots.
    for name in ["a", "b", "c", "d", "e"] {
        let guard = client().lock(name).unwrap().acquire().unwrap();
        assert!(client().is_locked(name).unwrap());
        guard.release().unwrap();
    }
}

#[test]
fn a_server_signed_by_another_ca_is_refused_naming_the_cause() {
    let certs = Certs::make();
    let server = certs.server();
    let client = quick(Client::builder(&tls_url(&server, "localhost")))
        .tls_ca_file(certs.path("other-ca.crt"))
        .build()
        .unwrap();
    let err = client.lock("x").unwrap().try_acquire().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("not signed by a CA this client trusts") && text.contains("tls_ca_file"),
        "{text}"
    );
}

#[test]
fn the_certificate_must_name_the_server_or_the_name_given() {
    let certs = Certs::make();
    let server = certs.server();
    let with_name = |name: &str| {
        quick(Client::builder(&tls_url(&server, "127.0.0.1")))
            .tls_ca_file(certs.path("ca.crt"))
            .tls_server_name(name)
            .build()
            .unwrap()
    };
    let err = with_name("redis.elsewhere.test")
        .is_locked("x")
        .unwrap_err();
    assert!(
        err.to_string().contains("not valid for the host name"),
        "{err}"
    );
    assert!(!with_name("localhost").is_locked("x").unwrap());
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let certs = Certs::make();
    let server = certs.mtls_server();
    let url = tls_url(&server, "localhost");
    let without = quick(Client::builder(&url))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    let err = without.is_locked("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.to_string()
            .contains("the server requires a client certificate (tls_client_cert)"),
        "{err}"
    );
    let with = quick(Client::builder(&url))
        .tls_ca_file(certs.path("ca.crt"))
        .tls_client_cert(certs.path("client.crt"), certs.path("client.key"))
        .build()
        .unwrap();
    let guard = with.lock("mtls").unwrap().acquire().unwrap();
    guard.release().unwrap();
}

#[test]
fn skipping_verification_accepts_any_certificate() {
    let certs = Certs::make();
    let server = certs.server();
    let client = quick(Client::builder(&tls_url(&server, "127.0.0.1")))
        .tls_server_name("redis.elsewhere.test")
        .tls_insecure_skip_verify(true)
        .build()
        .unwrap();
    assert!(!client.is_locked("x").unwrap());
}

#[test]
fn redlock_masters_are_reached_over_tls() {
    let certs = Certs::make();
    let servers: Vec<_> = (0..3).map(|_| certs.server()).collect();
    let urls: Vec<_> = servers.iter().map(|s| tls_url(s, "localhost")).collect();
    let client = quick(Client::redlock_builder(&urls))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    let guard = client.lock("redlock-tls").unwrap().acquire().unwrap();
    assert!(client.is_locked("redlock-tls").unwrap());
    guard.release().unwrap();
}

#[test]
fn bad_tls_options_fail_the_build_and_name_what_is_wrong() {
    let certs = Certs::make();
    let invalid = |builder: ClientBuilder, needle: &str| {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    };
    let tls = "rediss://localhost:6380";
    invalid(
        Client::builder("redis://localhost").tls_ca_file(certs.path("ca.crt")),
        "no URL is rediss://",
    );
    invalid(
        Client::builder(tls).tls_ca_file("/no/such/ca.pem"),
        "/no/such/ca.pem",
    );
    invalid(
        Client::builder(tls).tls_ca_file(certs.path("client.key")),
        "no PEM certificate",
    );
    invalid(
        Client::builder(tls)
            .tls_ca_file(certs.path("ca.crt"))
            .tls_client_cert(certs.path("client.crt"), certs.path("server.key")),
        "do not go together",
    );
    invalid(
        Client::builder(tls)
            .tls_ca_file(certs.path("ca.crt"))
            .tls_server_name("not a name"),
        "not a valid TLS server name",
    );
    invalid(
        Client::sentinel_builder(
            &["rediss://localhost:26379", "redis://localhost:26380"],
            "m",
        ),
        "rediss:// or none",
    );
}

#[test]
fn the_tool_speaks_tls_with_its_tls_options() {
    let certs = Certs::make();
    let server = certs.mtls_server();
    let run = |with_cert: bool| {
        let mut tool = support::tool();
        tool.args(["--url", &tls_url(&server, "localhost"), "--tls-ca-file"])
            .arg(certs.path("ca.crt"));
        if with_cert {
            tool.arg("--tls-cert-file")
                .arg(certs.path("client.crt"))
                .arg("--tls-key-file")
                .arg(certs.path("client.key"));
        }
        tool.args(["inspect", "tool-tls"]).output().unwrap()
    };
    let out = run(true);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "free");
    let refused = run(false);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("client certificate"),
        "{refused:?}"
    );
}
