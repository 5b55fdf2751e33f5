//! URLs, credentials and the errors about them, against real redis-server
//! processes: authentication failures are their own kind with a message
//! that says so, URLs are checked when the client opens (and the database
//! at the first connection), options that do not apply are refused, IPv6
//! endpoints print with brackets, and no password ever shows, whatever
//! characters it contains.

mod support;

use std::time::Duration;

use latchkey::{Client, ErrorKind};
use support::RedisServer;

/// A password with every character that has a meaning in a URL.
const AWKWARD_PASSWORD: &str = "p/@:%#?w0rd";
/// The same, percent-encoded as a URL's userinfo needs it.
const AWKWARD_PASSWORD_ENCODED: &str = "p%2F%40%3A%25%23%3Fw0rd";

fn quick(url: &str) -> latchkey::ClientBuilder {
    Client::builder(url)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

/// The error of the first command a client sends.
fn first_command_error(url: &str) -> latchkey::Error {
    let client = quick(url).build().expect("the URL is well formed");
    client
        .is_locked("auth-probe")
        .expect_err("the first command must fail")
}

fn assert_auth_failure(err: &latchkey::Error) {
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let text = err.to_string();
    assert!(text.contains("authentication"), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("check that Redis is running"), "{text}");
}

fn assert_no_secret(text: &str) {
    for secret in [
        AWKWARD_PASSWORD,
        AWKWARD_PASSWORD_ENCODED,
        "s3cret",
        "se/cret",
        "cret@",
        "w0rd",
    ] {
        assert!(!text.contains(secret), "{secret:?} shows in {text:?}");
    }
}

#[test]
fn a_wrong_password_is_an_auth_error() {
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let err = first_command_error(&format!("redis://:wrong@127.0.0.1:{}", server.port));
    assert_auth_failure(&err);
    assert_no_secret(&err.to_string());
}

#[test]
fn a_missing_password_is_an_auth_error() {
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    let err = first_command_error(&server.url());
    assert_auth_failure(&err);
}

#[test]
fn a_wrong_user_is_an_auth_error() {
    let server = RedisServer::start();
    let err = first_command_error(&format!("redis://nobody:s3cret@127.0.0.1:{}", server.port));
    assert_auth_failure(&err);
    assert_no_secret(&err.to_string());
}

#[test]
fn a_percent_encoded_awkward_password_works_and_never_shows() {
    let server = RedisServer::start_with(&["--requirepass", AWKWARD_PASSWORD]);
    let url = format!(
        "redis://default:{AWKWARD_PASSWORD_ENCODED}@127.0.0.1:{}/0",
        server.port
    );
    let client = quick(&url).build().unwrap();
    let guard = client.lock("awkward").unwrap().acquire().unwrap();
    guard.release().unwrap();
    assert_no_secret(&format!("{client:?}"));
    assert_no_secret(&format!("{:?}", quick(&url)));

    let wrong = format!(
        "redis://default:{AWKWARD_PASSWORD_ENCODED}x@127.0.0.1:{}",
        server.port
    );
    let err = first_command_error(&wrong);
    assert_auth_failure(&err);
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{err:?}"));
}

#[test]
fn raw_awkward_passwords_never_show_in_errors_or_debug() {
    for password in [
        "se/cret",
        "s3cret@",
        "s3:cret",
        "s3%cret",
        "s3#cret",
        "s3?cret",
        AWKWARD_PASSWORD,
    ] {
        for user in ["", "bob"] {
            let url = format!("redis://{user}:{password}@127.0.0.1:6379/0");
            assert_no_secret(&format!("{:?}", Client::builder(&url)));
            assert_no_secret(&format!(
                "{:?}",
                Client::redlock_builder(&[&url, &url, &url])
            ));
            match Client::open(&url) {
                Ok(client) => assert_no_secret(&format!("{client:?}")),
                Err(err) => {
                    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
                    assert_no_secret(&err.to_string());
                }
            }
        }
    }
    // The user name is not a secret and helps to tell URLs apart.
    let debug = format!(
        "{:?}",
        Client::builder("redis://alice:s3cret@db.internal:6380/2")
    );
    assert!(debug.contains("alice"), "{debug}");
    assert!(debug.contains("db.internal:6380"), "{debug}");
}

#[test]
fn urls_are_checked_when_the_client_opens() {
    for bad in [
        "redis://127.0.0.1:6379/-1",
        "redis://127.0.0.1:6379/x",
        "redis://127.0.0.1:99999",
        "redis://127.0.0.1:0",
        "redis://:6379",
        "redis://127.0.0.1:6379/0/extra",
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "",
    ] {
        let err = Client::open(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
        assert!(err.to_string().contains("URL"), "{bad}: {err}");
    }
    for good in [
        "redis://127.0.0.1",
        "redis://127.0.0.1:6379/15",
        "redis://127.0.0.1:6379/99999",
        "redis://[::1]:6379",
        "redis://user:pw@localhost/3",
        "unix:///run/redis.sock",
    ] {
        Client::open(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn a_database_the_server_lacks_is_reported_at_the_first_connection() {
    let server = RedisServer::start_with(&["--databases", "4"]);
    let err = first_command_error(&format!("{}/4", server.url()));
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("database number in the URL does not exist"),
        "{text}"
    );
    assert!(text.contains("`databases` setting"), "{text}");
    // Database 3 exists on this server.
    let client = quick(&format!("{}/3", server.url())).build().unwrap();
    assert!(!client.is_locked("db-probe").unwrap());
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let single = || Client::builder("redis://127.0.0.1:6379");
    let redlock = || Client::redlock_builder(&["redis://a:1", "redis://b:1", "redis://c:1"]);
    let cluster = || Client::cluster_builder(&["redis://a:1"]);
    for builder in [
        single().master_db(2),
        single().master_password("pw"),
        redlock().master_db(1),
        redlock().master_password("pw"),
        redlock().wait_for_replicas(1, Duration::from_millis(10)),
        cluster().master_db(1),
        cluster().master_password("pw"),
    ] {
        let err = builder.build().expect_err("must be refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_no_secret(&err.to_string());
    }
    let sentinel = || Client::sentinel_builder(&["redis://127.0.0.1:26379"], "mymaster");
    let err = sentinel().master_db(-1).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    sentinel()
        .master_db(3)
        .master_password("pw")
        .build()
        .unwrap();
}

#[test]
fn ipv6_endpoints_print_with_brackets() {
    let client = Client::open("redis://[::1]:46391").unwrap();
    let debug = format!("{client:?}");
    assert!(debug.contains("[::1]:46391"), "{debug}");
}

/// A unix socket URL authenticates with `?pass=` (the only way the redis
/// crate reads a password for a socket); it never shows in an error, and a
/// `?password=`, which the redis crate would ignore, is refused instead of
/// connecting without a password. Before, an invalid socket URL echoed
/// `?pass=` verbatim and `redis://host/?password=X` was accepted silently.
#[test]
fn a_unix_socket_authenticates_with_pass_and_never_shows_it() {
    let dir = std::env::temp_dir().join(format!("latchkey-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket = socket.to_str().unwrap();
    let _server = RedisServer::start_with(&[
        "--requirepass",
        "s3cret",
        "--unixsocket",
        socket,
        "--unixsocketperm",
        "700",
    ]);
    let client = quick(&format!("unix://{socket}?pass=s3cret"))
        .build()
        .unwrap();
    let guard = client.lock("over-a-socket").unwrap().acquire().unwrap();
    guard.release().unwrap();
    assert_no_secret(&format!("{client:?}"));

    let wrong = first_command_error(&format!("unix://{socket}?pass=wr0ng-s3cret"));
    assert_auth_failure(&wrong);
    assert_no_secret(&wrong.to_string());

    for url in [
        format!("unix://{socket}?db=x&pass=s3cret"),
        format!("unix://{socket}?password=s3cret"),
        "redis://127.0.0.1/?password=s3cret".to_string(),
        "redis://127.0.0.1:notaport/?pass=s3cret".to_string(),
    ] {
        let err = quick(&url).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_no_secret(&err.to_string());
        assert_no_secret(&format!("{:?}", quick(&url)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
