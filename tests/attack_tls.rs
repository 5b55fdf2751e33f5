//! Attacks on the TLS transport (src/tls.rs and its callers): each test
//! names what it found.

#![cfg(feature = "tls")]

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use latchkey::{Client, ClientBuilder, ErrorKind};
use support::tls::{tls_url, Certs};
use support::RedisServer;

fn quick(builder: ClientBuilder) -> ClientBuilder {
    builder
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

/// A request of more than 64 KiB over TLS is written whole.
/// TlsStream::write_all hands rustls all of it before writing any to the
/// socket, and rustls takes at most its buffer limit (64 KiB) of
/// plaintext: `write_all` on its writer fails with "failed to write whole
/// buffer". Any large fenced value fails; so does the watchdog's batch of
/// renewals (see the next test).
#[test]
fn a_large_fenced_value_is_written_over_tls() {
    let certs = Certs::make();
    let server = certs.server();
    let client = quick(Client::builder(&tls_url(&server, "localhost")))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    let guard = client.lock("big").unwrap().acquire().unwrap();
    let value = vec![7u8; 100_000];
    let written = client
        .fenced_write("big", guard.fencing_token(), &value)
        .expect("a 100 kB value is written over TLS");
    assert!(written.written);
    guard.release().unwrap();
}

/// A process holding a thousand leases over TLS keeps them: once they are
/// due together (after a pause of the server), the watchdog renews them in
/// one pipelined write, well over the 64 KiB rustls accepts at once, so
/// every renewal of the batch fails, again each time, and every lease runs
/// out while its holder still runs.
#[test]
fn a_thousand_leases_are_renewed_over_tls() {
    a_thousand_leases_are_renewed(true);
}

/// The same over plain TCP: passes (the control for the test above).
#[test]
fn control_a_thousand_leases_are_renewed_over_plain_tcp() {
    a_thousand_leases_are_renewed(false);
}

fn a_thousand_leases_are_renewed(tls: bool) {
    let certs = Certs::make();
    let server = certs.server();
    let builder = if tls {
        Client::builder(&tls_url(&server, "localhost")).tls_ca_file(certs.path("ca.crt"))
    } else {
        Client::builder(&server.url())
    };
    let client = builder
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let options = latchkey::LockOptions::new().ttl(Duration::from_secs(3));
    let guards: Vec<_> = (0..1000)
        .map(|i| {
            client
                .lock_with(&format!("many-{i:04}-{}", "x".repeat(120)), options.clone())
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    // A pause of the server (a slow disk, a long command) lets every
    // lease come due at once: the next round renews all of them in one
    // request.
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(libc::SIGCONT);
    // Two ttls: only renewals keep them.
    std::thread::sleep(Duration::from_secs(7));
    let lost: Vec<String> = guards
        .iter()
        .filter_map(|g| g.check().err().map(|e| format!("{}: {e}", g.name())))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} leases were lost over TLS, e.g. {:?}",
        lost.len(),
        guards.len(),
        lost.first()
    );
}

/// A large reply over TLS is read whole (the value written over the plain
/// port of the same server). Redis writes a reply of more than 64 KiB one
/// buffer block at a time, so the records go 16384 bytes, a few bytes,
/// 16384, ...; TlsStream::take_in feeds rustls all it read, which rustls
/// refuses once more than 16 KiB of plaintext waits undelivered.
#[test]
fn a_large_fenced_value_is_read_back_whole_over_tls() {
    let certs = Certs::make();
    let server = certs.server();
    let plain = quick(Client::builder(&server.url())).build().unwrap();
    let client = quick(Client::builder(&tls_url(&server, "localhost")))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    let guard = plain.lock("big").unwrap().acquire().unwrap();
    let mut failures = Vec::new();
    for (i, size) in [200_000usize, 1_000_000, 3_000_000].iter().enumerate() {
        let value: Vec<u8> = (0..*size).map(|n| (n * 7 + i) as u8).collect();
        let resource = format!("big-{i}");
        let written = plain
            .fenced_write(&resource, guard.fencing_token(), &value)
            .unwrap();
        assert!(written.written);
        for _ in 0..5 {
            match client.fenced_read(&resource) {
                Ok(Some((_, read))) => assert!(read == value, "a different value came back"),
                Ok(None) => panic!("the value is gone"),
                Err(e) => failures.push(format!("{size} bytes: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "large replies failed over TLS: {failures:#?}"
    );
    guard.release().unwrap();
}

/// WHATWG URL parsing (the url crate) drops leading and trailing spaces and
/// control characters and every tab or newline inside; `is_tls_url` looks
/// at the raw text. A URL that parse_url reads as rediss:// is then reached
/// in plain text: the password and every lock go over the network
/// unencrypted, though the caller asked for TLS.
#[test]
fn a_rediss_url_with_stray_whitespace_is_never_reached_in_plain_text() {
    let server = RedisServer::start();
    for url in [
        format!(" rediss://127.0.0.1:{}", server.port),
        format!("rediss://127.0.0.1:{}\n", server.port),
        format!("redi\tss://127.0.0.1:{}", server.port),
    ] {
        let built = quick(Client::builder(&url)).build();
        let Ok(client) = built else { continue }; // refused: fine
                                                  // A plain-text server must not answer a client that asked for TLS.
        match client.is_locked("x") {
            Ok(_) => panic!("{url:?} (a rediss:// URL) was reached in plain text"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Connection, "{url:?}: {e}"),
        }
    }
}

/// A port that accepts TCP but never answers the TLS handshake (a stopped
/// server, a port that is not Redis): the call fails within about the
/// connect timeout, and says the handshake timed out.
#[test]
fn a_silent_tls_port_fails_within_the_connect_timeout_naming_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        for s in listener.incoming().take(4) {
            sockets.push(s);
        }
        std::thread::sleep(Duration::from_secs(10));
        drop(sockets);
    });
    let text = connection_error_within(
        Client::builder(&format!("rediss://127.0.0.1:{port}")).tls_insecure_skip_verify(true),
        Duration::from_secs(30),
        Duration::from_secs(3),
    );
    assert!(
        text.contains("TLS handshake") || text.contains("handshake"),
        "the error does not say the TLS handshake timed out: {text}"
    );
    drop(held);
}

/// A plain-text Redis port given as rediss://: the error says the server
/// does not seem to speak TLS, within the connect timeout.
#[test]
fn a_plain_port_given_as_rediss_names_the_cause() {
    let server = RedisServer::start();
    let text = connection_error_within(
        Client::builder(&format!("rediss://127.0.0.1:{}", server.port))
            .tls_insecure_skip_verify(true),
        Duration::from_secs(30),
        Duration::from_secs(3),
    );
    assert!(
        text.contains("TLS"),
        "the error does not mention TLS: {text}"
    );
}

/// A TLS port given as redis://: the error is a connection error within
/// the timeouts, and hints that the port may want TLS.
#[test]
fn a_tls_port_given_as_redis_names_the_cause() {
    let certs = Certs::make();
    let server = certs.server();
    let text = connection_error_within(
        Client::builder(&format!("redis://127.0.0.1:{}", server.tls_port.unwrap())),
        Duration::from_millis(1500),
        Duration::from_secs(4),
    );
    assert!(
        text.contains("TLS") || text.contains("rediss"),
        "the error does not hint at TLS: {text}"
    );
}

/// The text of the connection error a first call through `builder` (an
/// 800 ms connect timeout, `command_timeout`) fails with, within `limit`.
fn connection_error_within(
    builder: ClientBuilder,
    command_timeout: Duration,
    limit: Duration,
) -> String {
    let client = builder
        .connect_timeout(Duration::from_millis(800))
        .command_timeout(command_timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.is_locked("x").unwrap_err();
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    err.to_string()
}

fn tls_client(certs: &Certs, server: &RedisServer) -> Client {
    quick(Client::builder(&tls_url(server, "localhost")))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap()
}

fn connections_received(server: &RedisServer) -> u64 {
    support::info_field(server, "stats", "total_connections_received")
        .unwrap()
        .parse()
        .unwrap()
}

/// Pooled TLS connections are reused: the session tickets a TLS 1.3 server
/// sends after the handshake are not taken for a stray reply (which would
/// throw the connection away before each release).
#[test]
fn pooled_tls_connections_are_reused_across_releases() {
    let certs = Certs::make();
    let server = certs.server();
    let client = tls_client(&certs, &server);
    let lock = client.lock("reuse").unwrap();
    lock.acquire().unwrap().release().unwrap();
    let before = connections_received(&server);
    for _ in 0..100 {
        let guard = lock.acquire().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        guard.release().unwrap();
    }
    let opened = connections_received(&server) - before;
    assert!(opened <= 3, "{opened} new connections for 100 cycles");
}

/// A stopped TLS server: calls fail within the command timeout.
#[test]
fn a_stopped_tls_server_fails_calls_within_the_command_timeout() {
    let certs = Certs::make();
    let server = certs.server();
    let client = Client::builder(&tls_url(&server, "localhost"))
        .tls_ca_file(certs.path("ca.crt"))
        .connect_timeout(Duration::from_millis(700))
        .command_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let holder = client.lock("stopped").unwrap().acquire().unwrap();
    server.signal(libc::SIGSTOP);
    let mut slow = Vec::new();
    for what in ["is_locked", "try_acquire", "fresh client", "release"] {
        let started = Instant::now();
        let failed = match what {
            "is_locked" => client.is_locked("stopped").is_err(),
            "try_acquire" => client.lock("other").unwrap().try_acquire().is_err(),
            "fresh client" => tls_client(&certs, &server).is_locked("x").is_err(),
            _ => client.force_unlock("nothing").is_err(),
        };
        let took = started.elapsed();
        if !failed || took > Duration::from_millis(2500) {
            slow.push(format!("{what}: failed={failed} after {took:?}"));
        }
    }
    server.signal(libc::SIGCONT);
    drop(holder);
    assert!(slow.is_empty(), "{slow:?}");
}

/// A TLS server restarted (every key gone): the holder finds its lease
/// lost, the client reconnects, and a waiter on the release listener (over
/// TLS) gets the lock.
#[test]
fn a_restarted_tls_server_is_reconnected_and_waiters_get_the_lock() {
    let certs = Certs::make();
    let mut server = certs.server();
    let holder_client = tls_client(&certs, &server);
    let waiter_client = tls_client(&certs, &server);
    let options = latchkey::LockOptions::new().ttl(Duration::from_secs(30));
    let guard = holder_client
        .lock_with("restart", options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let lock = waiter_client.lock_with("restart", options.clone()).unwrap();
    let waiting = std::thread::spawn(move || lock.acquire_timeout(Duration::from_secs(20)));
    support::wait_for_waiter(&server, "restart");
    server.restart();
    // The keys are gone: the waiter's next attempt (on its reconnected
    // listener, or its own polling) takes the lock.
    let got = waiting.join().unwrap();
    assert!(
        got.is_ok(),
        "the waiter did not get the lock: {:?}",
        got.err()
    );
    let got = got.unwrap();
    assert!(
        !guard.confirm().unwrap_or(false),
        "the old holder's lease is confirmed by the restarted server"
    );
    assert!(holder_client.is_locked("restart").unwrap());
    got.release().unwrap();
    assert!(!holder_client.is_locked("restart").unwrap());
}

/// Many waiters on one TLS release listener, subscribing and unsubscribing
/// at once, each woken by its release (ttl long, so only a message wakes
/// them in time).
#[test]
fn many_waiters_on_one_tls_listener_are_each_woken() {
    let certs = Certs::make();
    let server = certs.server();
    let holder = tls_client(&certs, &server);
    let waiter = std::sync::Arc::new(tls_client(&certs, &server));
    let options = latchkey::LockOptions::new().ttl(Duration::from_secs(60));
    let n = 40;
    for round in 0..3 {
        let guards: Vec<_> = (0..n)
            .map(|i| {
                holder
                    .lock_with(&format!("w-{round}-{i}"), options.clone())
                    .unwrap()
                    .acquire()
                    .unwrap()
            })
            .collect();
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let waiter = waiter.clone();
                let options = options.clone();
                std::thread::spawn(move || {
                    let lock = waiter
                        .lock_with(&format!("w-{round}-{i}"), options)
                        .unwrap();
                    let started = Instant::now();
                    let got = lock.acquire_timeout(Duration::from_secs(15));
                    (got.map(|g| g.release()).is_ok(), started.elapsed())
                })
            })
            .collect();
        for i in 0..n {
            support::wait_for_waiter(&server, &format!("w-{round}-{i}"));
        }
        for guard in guards {
            guard.release().unwrap();
        }
        let mut late = Vec::new();
        for (i, t) in threads.into_iter().enumerate() {
            let (ok, took) = t.join().unwrap();
            if !ok || took > Duration::from_secs(10) {
                late.push(format!("{i}: ok={ok} after {took:?}"));
            }
        }
        assert!(
            late.is_empty(),
            "round {round}: waiters not woken: {late:?}"
        );
    }
}

/// A child forked while its parent holds TLS connections (pooled and the
/// release listener) uses connections of its own: both go on working.
#[test]
fn a_forked_child_uses_tls_connections_of_its_own() {
    let certs = Certs::make();
    let server = certs.server();
    let client = tls_client(&certs, &server);
    let options = latchkey::LockOptions::new().ttl(Duration::from_secs(2));
    let guard = client
        .lock_with("fork-held", options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    // A waiter keeps the listener's TLS stream open at the fork.
    let lock = client.lock_with("fork-held", options.clone()).unwrap();
    let waiting = std::thread::spawn(move || lock.acquire_timeout(Duration::from_secs(20)));
    support::wait_for_waiter(&server, "fork-held");
    for _ in 0..5 {
        let status = support::in_forked_child(Duration::from_secs(20), || {
            let g = client
                .lock_with("fork-child", options.clone())
                .unwrap()
                .acquire_timeout(Duration::from_secs(10))
                .unwrap();
            assert!(client.is_locked("fork-held").unwrap());
            g.release().unwrap();
        });
        assert_eq!(status, Some(0), "the child failed or hung");
        assert!(client.is_locked("fork-held").unwrap());
    }
    std::thread::sleep(Duration::from_millis(2500));
    guard.check().expect("the parent's renewals over TLS go on");
    guard.release().unwrap();
    waiting.join().unwrap().unwrap().release().unwrap();
}

/// No password from a rediss:// URL in errors or Debug output.
#[test]
fn tls_errors_never_show_the_password() {
    let certs = Certs::make();
    let server = certs.server_with(&["--requirepass", "s3cretpw"]);
    let url = format!(
        "rediss://user:s3cretpw@localhost:{}",
        server.tls_port.unwrap()
    );
    for ca in ["other-ca.crt", "ca.crt"] {
        let builder = quick(Client::builder(&url)).tls_ca_file(certs.path(ca));
        assert!(!format!("{builder:?}").contains("s3cretpw"));
        let client = builder.build().unwrap();
        match client.is_locked("x") {
            Ok(_) => {}
            Err(e) => {
                assert!(!format!("{e} {e:?}").contains("s3cretpw"), "{e:?}");
            }
        }
    }
}

/// A Redis Cluster over TLS (`--tls-cluster yes`: the nodes announce their
/// TLS ports to TLS clients): seeds given as rediss:// lead to the masters
/// over TLS, and locks work end to end.
#[test]
fn a_cluster_over_tls_works_end_to_end() {
    let certs = Certs::make();
    let mut args = certs.server_args("no", &[]);
    args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
    // The nodes show a certificate made for clients to each other.
    args.extend([
        "--tls-client-cert-file".to_string(),
        certs.path("client.crt").to_str().unwrap().to_string(),
        "--tls-client-key-file".to_string(),
        certs.path("client.key").to_str().unwrap().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let nodes = support::cluster::start_nodes_with(3, 0, 2000, &args);
    let seeds: Vec<String> = nodes.iter().map(|n| tls_url(n, "127.0.0.1")).collect();
    let client = quick(Client::cluster_builder(&seeds))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    let holder = quick(Client::cluster_builder(&seeds))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    for i in 0..20 {
        let name = format!("cl-{i}");
        let guard = client.lock(&name).unwrap().acquire().unwrap();
        assert!(holder.is_locked(&name).unwrap());
        guard.release().unwrap();
    }
    // A waiter woken over the sharded release listener (over TLS).
    let options = latchkey::LockOptions::new().ttl(Duration::from_secs(60));
    let guard = holder
        .lock_with("cl-wait", options.clone())
        .unwrap()
        .acquire()
        .unwrap();
    let lock = client.lock_with("cl-wait", options).unwrap();
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        lock.acquire_timeout(Duration::from_secs(20))
            .map(|g| (g, started.elapsed()))
    });
    std::thread::sleep(Duration::from_millis(500));
    guard.release().unwrap();
    let (g, took) = waiting.join().unwrap().unwrap();
    assert!(took < Duration::from_secs(5), "woken after {took:?}");
    g.release().unwrap();
}

/// A reply whose TLS records go 16384 bytes, a few bytes, then more (what
/// a server writing its reply one buffer block at a time sends) is read
/// whole. A fake TLS server (rustls) answers the first request with a
/// bulk string cut into such records and sent in one write.
/// TlsStream::take_in gives rustls all the bytes one raw read brought,
/// though rustls refuses more once over 16 KiB of plaintext waits
/// undelivered ("received plaintext buffer full").
#[test]
fn records_of_sixteen_kib_then_a_few_bytes_are_read_whole() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Write;
    use std::sync::Arc;
    let certs = Certs::make();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.path("server.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs.path("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            #[allow(deprecated)] // see src/tls.rs `provider`
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body_len = 16384 - 8 + 10 + 30_000;
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let mut tls = rustls::ServerConnection::new(config).unwrap();
                while tls.is_handshaking() {
                    if tls.complete_io(&mut socket).is_err() {
                        return;
                    }
                }
                // Answer every request (each read) with the cut reply.
                loop {
                    let mut got = [0u8; 65536];
                    let n = match tls.reader().read(&mut got) {
                        Ok(n) => n,
                        Err(_) => match tls.complete_io(&mut socket) {
                            Ok(_) => continue,
                            Err(_) => return,
                        },
                    };
                    if n == 0 {
                        return;
                    }
                    let mut reply = format!("${body_len}\r\n").into_bytes();
                    reply.extend(std::iter::repeat_n(b'x', body_len));
                    reply.extend_from_slice(b"\r\n");
                    let (a, rest) = reply.split_at(16384);
                    let (b, c) = rest.split_at(10);
                    for piece in [a, b, c] {
                        tls.writer().write_all(piece).unwrap();
                    }
                    let mut wire = Vec::new();
                    while tls.wants_write() {
                        tls.write_tls(&mut wire).unwrap();
                    }
                    if socket.write_all(&wire).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = quick(Client::builder(&format!("rediss://localhost:{port}")))
        .tls_ca_file(certs.path("ca.crt"))
        .build()
        .unwrap();
    for _ in 0..5 {
        // The reply is not what a lock command wants: an error, but one
        // about the reply, not the TLS.
        let err = client.is_locked("x").unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("buffer full") && !text.contains("TLS"),
            "a well-formed reply failed in the TLS layer: {text}"
        );
    }
}
