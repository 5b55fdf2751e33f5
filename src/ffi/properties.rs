//! Property tests of what parses bytes from outside, on stable Rust with a
//! small seeded generator (no fuzzing crate needed): the C ABI's argument
//! decoding (random pointers as handles, random bytes as strings, random
//! numbers), Redis URLs and their redaction, and the pub/sub reply reader
//! fed by a fake server.
//!
//! `LATCHKEY_PROPERTY_SEED` and `LATCHKEY_PROPERTY_CASES` change the seed
//! and the number of cases; a failure prints the seed that reproduces it.

use std::ffi::{c_char, CString};
use std::ptr;

use super::cancel::*;
use super::client::*;
use super::client_options::*;
use super::error::*;
use super::guard::*;
use super::lock::*;
use super::lock_options::*;
use super::status::latchkey_status::{self, *};
use crate::client::{parse_url, redact_url};
use crate::Client;

/// xorshift64*: small, fast, and the same sequence for the same seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env() -> (Rng, u64) {
        let seed = std::env::var("LATCHKEY_PROPERTY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_1a7c_4e11);
        (Rng(seed.max(1)), seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn cases() -> usize {
    std::env::var("LATCHKEY_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// Bytes as a C string: cut at the first NUL.
fn c_bytes(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

fn assert_no_panic(status: latchkey_status, what: &str, seed: u64) {
    assert_ne!(
        status,
        LATCHKEY_PANIC,
        "{what} panicked (seed {seed}): {}",
        super::error::last_message()
    );
}

/// Random aligned addresses given as handles are refused without being
/// read (the registry knows every live handle), so none of these calls
/// can crash; so are real handles given as the wrong type.
#[test]
fn random_pointers_as_handles_are_invalid_arguments() {
    let (mut rng, seed) = Rng::from_env();
    let url = c"redis://127.0.0.1:1";
    let mut client: *mut latchkey_client = ptr::null_mut();
    let mut lock: *mut latchkey_lock = ptr::null_mut();
    // SAFETY: valid strings and out pointers; the handles are freed below.
    unsafe {
        assert_eq!(
            latchkey_client_open(url.as_ptr(), ptr::null(), &mut client, ptr::null_mut()),
            LATCHKEY_OK
        );
        assert_eq!(
            latchkey_lock_new(
                client,
                c"p".as_ptr(),
                ptr::null(),
                &mut lock,
                ptr::null_mut()
            ),
            LATCHKEY_OK
        );
    }
    let real = [client as usize, lock as usize];
    for _ in 0..cases() {
        // Mostly random addresses, sometimes a real handle of another type.
        let address = if rng.below(4) == 0 {
            *rng.pick(&real)
        } else {
            (rng.next() as usize & !7).max(8)
        };
        let mut guard: *mut latchkey_guard = ptr::null_mut();
        let mut name: *const c_char = ptr::null();
        let mut flag = false;
        // SAFETY: the point of the test: the library must refuse these
        // pointers before reading them. Out pointers are valid.
        let statuses = unsafe {
            [
                latchkey_lock_acquire(
                    address as *const latchkey_lock,
                    0,
                    ptr::null(),
                    &mut guard,
                    ptr::null_mut(),
                ),
                latchkey_guard_release(address as *mut latchkey_guard, ptr::null_mut()),
                latchkey_cancel_is_triggered(
                    address as *const latchkey_cancel,
                    &mut flag,
                    ptr::null_mut(),
                ),
                latchkey_client_prefix(
                    address as *const latchkey_client,
                    &mut name,
                    ptr::null_mut(),
                ),
                latchkey_client_options_set_pool_size(
                    address as *mut latchkey_client_options,
                    1,
                    ptr::null_mut(),
                ),
                latchkey_client_options_set_spin_us(
                    address as *mut latchkey_client_options,
                    1,
                    ptr::null_mut(),
                ),
                latchkey_lock_options_set_ttl_ms(
                    address as *mut latchkey_lock_options,
                    1000,
                    ptr::null_mut(),
                ),
                latchkey_guard_free(address as *mut latchkey_guard),
                latchkey_cancel_free(address as *mut latchkey_cancel),
                latchkey_error_free(address as *mut latchkey_error),
            ]
        };
        for (i, status) in statuses.into_iter().enumerate() {
            let is_client = address == client as usize;
            let is_lock = address == lock as usize;
            let allowed = (i == 0 && is_lock) || (i == 3 && is_client);
            if !allowed {
                assert_eq!(
                    status, LATCHKEY_INVALID_ARGUMENT,
                    "call {i} with {address:#x} (seed {seed})"
                );
            }
        }
        if !guard.is_null() {
            // SAFETY: a real guard from the real lock (not reached: port 1).
            unsafe { latchkey_guard_free(guard) };
        }
    }
    // SAFETY: made above, freed once.
    unsafe {
        assert_eq!(latchkey_lock_free(lock), LATCHKEY_OK);
        assert_eq!(latchkey_client_free(client), LATCHKEY_OK);
    }
}

/// Random bytes as URLs, names and prefixes, and random numbers as
/// options, are accepted or refused with INVALID_ARGUMENT: never a panic.
#[test]
fn random_strings_and_numbers_never_panic() {
    let (mut rng, seed) = Rng::from_env();
    let pieces: [&[u8]; 12] = [
        b"redis://",
        b"unix://",
        b"127.0.0.1",
        b"[::1]",
        b":6379",
        b"/0",
        b"/-1",
        b"@",
        b"%",
        b"\xff",
        b"{",
        b"}",
    ];
    for _ in 0..cases() / 4 {
        let mut text = Vec::new();
        for _ in 0..rng.below(6) {
            if rng.below(2) == 0 {
                let piece: &&[u8] = rng.pick(&pieces);
                text.extend_from_slice(piece);
            } else {
                text.extend(rng.bytes(6));
            }
        }
        let text = c_bytes(&text);
        let mut options: *mut latchkey_client_options = ptr::null_mut();
        let mut lock_options: *mut latchkey_lock_options = ptr::null_mut();
        let mut client: *mut latchkey_client = ptr::null_mut();
        // SAFETY: valid strings, handles and out pointers throughout.
        unsafe {
            assert_eq!(
                latchkey_client_options_new(&mut options, ptr::null_mut()),
                LATCHKEY_OK
            );
            assert_eq!(
                latchkey_lock_options_new(&mut lock_options, ptr::null_mut()),
                LATCHKEY_OK
            );
            let setters = [
                latchkey_client_options_set_prefix(options, text.as_ptr(), ptr::null_mut()),
                latchkey_client_options_set_pool_size(options, rng.below(2048), ptr::null_mut()),
                latchkey_client_options_set_command_timeout_ms(
                    options,
                    rng.next() >> rng.below(64),
                    ptr::null_mut(),
                ),
                latchkey_lock_options_set_ttl_ms(
                    lock_options,
                    rng.next() >> rng.below(64),
                    ptr::null_mut(),
                ),
            ];
            for status in setters {
                assert_no_panic(status, "an option setter", seed);
            }
            // The spin limit is checked by its setter: at most 10000 us.
            let spin_us = rng.next() >> rng.below(64);
            let status = latchkey_client_options_set_spin_us(options, spin_us, ptr::null_mut());
            let expected = if spin_us <= 10_000 {
                LATCHKEY_OK
            } else {
                LATCHKEY_INVALID_ARGUMENT
            };
            assert_eq!(status, expected, "spin_us {spin_us} (seed {seed})");
            let url = if rng.below(2) == 0 {
                text.as_ptr()
            } else {
                c"redis://127.0.0.1:1".as_ptr()
            };
            let status = latchkey_client_open(url, options, &mut client, ptr::null_mut());
            assert_no_panic(status, "latchkey_client_open", seed);
            if status == LATCHKEY_OK {
                let mut lock: *mut latchkey_lock = ptr::null_mut();
                let status = latchkey_lock_new(
                    client,
                    text.as_ptr(),
                    lock_options,
                    &mut lock,
                    ptr::null_mut(),
                );
                assert_no_panic(status, "latchkey_lock_new", seed);
                assert!(matches!(status, LATCHKEY_OK | LATCHKEY_INVALID_ARGUMENT));
                assert_eq!(latchkey_lock_free(lock), LATCHKEY_OK);
                assert_eq!(latchkey_client_free(client), LATCHKEY_OK);
            } else {
                assert_eq!(status, LATCHKEY_INVALID_ARGUMENT, "seed {seed}");
            }
            assert_eq!(latchkey_client_options_free(options), LATCHKEY_OK);
            assert_eq!(latchkey_lock_options_free(lock_options), LATCHKEY_OK);
        }
    }
}

/// Characters that have a meaning somewhere in a URL, and plain ones.
const URL_CHARS: &[u8] = b"/@:%#?[]. abcXYZ019-_~+=!$&'()*,;";

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whatever the password holds, raw or percent-encoded, and whatever the
/// rest of the URL looks like, it never shows in a redacted URL, a parse
/// error or a builder's Debug output; nothing panics.
#[test]
fn passwords_never_show_whatever_they_hold() {
    let (mut rng, seed) = Rng::from_env();
    // The marker is alphanumeric, so it looks the same raw and encoded.
    const MARKER: &str = "Zq9Xk";
    for _ in 0..cases() {
        let mut password = String::new();
        for _ in 0..rng.below(6) {
            password.push(*rng.pick(URL_CHARS) as char);
        }
        let at = rng.below(password.len() + 1);
        password.insert_str(at, MARKER);
        let password = if rng.below(2) == 0 {
            password
        } else {
            percent_encode(&password)
        };
        let user = *rng.pick(&["", "bob", "default", "a.b"]);
        let host = *rng.pick(&["127.0.0.1", "[::1]", "redis.internal", ""]);
        let port = *rng.pick(&["", ":6379", ":0", ":99999", ":x"]);
        let path = *rng.pick(&["", "/", "/0", "/15", "/-1", "/a", "/0/1"]);
        let scheme = *rng.pick(&["redis://", "rediss://", "unix://", "http://", ""]);
        let url = format!("{scheme}{user}:{password}@{host}{port}{path}");

        let redacted = redact_url(&url);
        assert!(
            !redacted.contains(MARKER),
            "{url} -> {redacted} (seed {seed})"
        );
        if let Err(err) = parse_url(&url) {
            assert!(
                !err.to_string().contains(MARKER),
                "{url}: {err} (seed {seed})"
            );
        }
        let debug = format!("{:?}", Client::builder(&url));
        assert!(!debug.contains(MARKER), "{url}: {debug} (seed {seed})");
        match Client::open(&url) {
            Ok(client) => assert!(!format!("{client:?}").contains(MARKER), "{url}"),
            Err(err) => assert!(!err.to_string().contains(MARKER), "{url}: {err}"),
        }
    }
}

/// A secret anywhere a URL may carry one (the password or a lone user
/// name in the user info, `?pass=`, `?password=`, `?user=`, any other
/// query value or key, the fragment), raw or percent-encoded, in a URL that
/// parses or not, never shows in a redacted URL, an error (one URL or a
/// Redlock list) or Debug output. `?pass=` for unix sockets was echoed
/// verbatim in invalid-URL errors before.
#[test]
fn secrets_never_show_in_any_position() {
    let (mut rng, seed) = Rng::from_env();
    const MARKER: &str = "Wv7Jd";
    for _ in 0..cases() {
        let mut secret = String::new();
        for _ in 0..rng.below(5) {
            secret.push(*rng.pick(URL_CHARS) as char);
        }
        let at = rng.below(secret.len() + 1);
        secret.insert_str(at, MARKER);
        let secret = if rng.below(2) == 0 {
            secret
        } else {
            percent_encode(&secret)
        };
        let scheme = *rng.pick(&[
            "redis://",
            "unix://",
            "redis+unix://",
            "rediss://",
            "http://",
            "",
        ]);
        let host = *rng.pick(&[
            "127.0.0.1",
            "[::1]",
            "localhost:6379",
            "localhost:x",
            "",
            "/tmp/r.sock",
        ]);
        let path = *rng.pick(&["", "/", "/0", "/-1", "/a"]);
        let other = *rng.pick(&[
            "",
            "db=1&",
            "db=x&",
            "protocol=3&",
            "protocol=9&",
            "user=u&",
            "a=b&",
        ]);
        let url = match rng.below(8) {
            0 => format!("{scheme}:{secret}@{host}{path}"),
            // A lone user info (a raw ':' would make its start a user
            // name, which is shown: it tells URLs apart).
            1 => format!("{scheme}{}@{host}{path}", secret.replace(':', "")),
            2 => format!("{scheme}{host}{path}?{other}pass={secret}"),
            3 => format!("{scheme}{host}{path}?{other}password={secret}"),
            4 => format!("{scheme}{host}{path}?user={secret}&{other}"),
            5 => format!("{scheme}{host}{path}?{other}{secret}"),
            6 => format!("{scheme}{host}{path}#{secret}"),
            _ => format!("{scheme}u:{secret}@{host}{path}?{other}pass={secret}#{secret}"),
        };
        let shown = |text: &str| text.contains(MARKER);
        let redacted = redact_url(&url);
        assert!(!shown(&redacted), "{url} -> {redacted} (seed {seed})");
        if let Err(err) = parse_url(&url) {
            assert!(!shown(&err.to_string()), "{url}: {err} (seed {seed})");
        }
        let debug = format!("{:?}", Client::builder(&url));
        assert!(!shown(&debug), "{url}: {debug} (seed {seed})");
        match Client::open(&url) {
            Ok(client) => assert!(!shown(&format!("{client:?}")), "{url} (seed {seed})"),
            Err(err) => assert!(!shown(&err.to_string()), "{url}: {err} (seed {seed})"),
        }
        let list = [url.as_str(), "redis://a", "redis://b"];
        if let Err(err) = Client::redlock_builder(&list).build() {
            assert!(!shown(&err.to_string()), "{url}: {err} (seed {seed})");
        }
        let debug = format!("{:?}", Client::redlock_builder(&list));
        assert!(!shown(&debug), "{url}: {debug} (seed {seed})");
    }
}

/// Random text (any characters) given to the URL functions never panics.
#[test]
fn random_text_as_a_url_never_panics() {
    let (mut rng, _) = Rng::from_env();
    for _ in 0..cases() {
        let bytes = rng.bytes(24);
        let text = String::from_utf8_lossy(&bytes);
        let with_scheme = format!("redis://{text}");
        for url in [text.as_ref(), with_scheme.as_str()] {
            let _ = redact_url(url);
            let _ = parse_url(url);
        }
    }
}

/// A random RESP2 value, mostly well formed, sometimes with a declared
/// length that does not match, bytes that are no RESP at all, or cut
/// short. Lengths stay small (see the report on huge lengths).
fn random_reply(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    let wrong_length = rng.below(8) == 0;
    match rng.below(if depth == 0 { 5 } else { 6 }) {
        0 => out.extend_from_slice(b"+OK\r\n"),
        1 => out.extend_from_slice(b"-ERR something\r\n"),
        2 => out.extend_from_slice(format!(":{}\r\n", rng.next() as i64).as_bytes()),
        3 => {
            let data = rng.bytes(12);
            let declared = if wrong_length {
                rng.below(30) as i64 - 3
            } else {
                data.len() as i64
            };
            out.extend_from_slice(format!("${declared}\r\n").as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        4 => out.extend(rng.bytes(10)),
        _ => {
            let items = rng.below(4);
            let declared = if wrong_length {
                rng.below(8) as i64 - 2
            } else {
                items as i64
            };
            out.extend_from_slice(format!("*{declared}\r\n").as_bytes());
            for _ in 0..items {
                random_reply(rng, depth - 1, out);
            }
        }
    }
}

/// What the fake server sends after the SUBSCRIBE: a confirmation, pub/sub
/// messages and random replies in random order, perhaps cut short.
fn random_pubsub_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(6) {
        match rng.below(4) {
            0 => out.extend_from_slice(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"),
            1 => {
                let payload = rng.bytes(8);
                out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n");
                out.extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
                out.extend_from_slice(&payload);
                out.extend_from_slice(b"\r\n");
            }
            _ => random_reply(rng, 3, &mut out),
        }
    }
    if rng.below(3) == 0 {
        let cut = rng.below(out.len() + 1);
        out.truncate(cut);
    }
    out
}

/// Serves `stream` after the SUBSCRIBE of one Subscriber::watch and
/// returns how long the watch took (it must end within the command
/// timeout, with a confirmation or an error).
fn watch_against(stream: Vec<u8>, command_timeout: std::time::Duration) -> std::time::Duration {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::backend::{EndpointSource, PubSubEndpoint};
    use crate::pubsub::Subscriber;
    use crate::wait::Parker;
    use redis::IntoConnectionInfo;

    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        panic!("cannot listen on 127.0.0.1");
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = std::thread::spawn(move || {
        if let Ok((mut socket, _)) = listener.accept() {
            let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
            let mut command = [0u8; 256];
            let _ = socket.read(&mut command);
            let _ = socket.write_all(&stream);
            // Leave it open a little, as a slow server would.
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let Ok(info) = format!("redis://127.0.0.1:{port}").into_connection_info() else {
        panic!("a fixed URL parses");
    };
    let source: EndpointSource = Arc::new(move || {
        Ok(PubSubEndpoint {
            tls: None,
            info: info.clone(),
            connect_timeout: Duration::from_secs(2),
            command_timeout,
            shard_router: None,
        })
    });
    let subscriber = Subscriber::new(source);
    let parker = Parker::new();
    let started = Instant::now();
    let outcome = subscriber.watch(b"ch", &parker, 0, "own-token", "");
    let took = started.elapsed();
    drop(outcome);
    drop(subscriber);
    let _ = server.join();
    took
}

/// The pub/sub reader, fed random replies by a fake server, never panics
/// or hangs: subscribing ends with a confirmation or an error within the
/// command timeout, and the process lives on.
#[test]
fn the_pubsub_reader_survives_whatever_the_server_sends() {
    use std::time::Duration;

    let (mut rng, seed) = Rng::from_env();
    let command_timeout = Duration::from_millis(100);
    for case in 0..(cases() / 40).max(1) {
        let stream = random_pubsub_stream(&mut rng);
        let took = watch_against(stream.clone(), command_timeout);
        assert!(
            took < command_timeout + Duration::from_secs(2),
            "case {case} (seed {seed}): watch took {took:?} on {:?}",
            String::from_utf8_lossy(&stream)
        );
    }
}

/// A bulk length of 4 TB and a million nested arrays are refused as
/// errors on that connection: before the reader bounded what it reads,
/// the first aborted the process (allocation failure) and the second
/// overflowed the reader thread's stack.
#[test]
fn the_pubsub_reader_survives_huge_lengths_and_deep_nesting() {
    use std::time::Duration;

    let mut nested = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".to_vec();
    nested.extend(b"*1\r\n".repeat(1 << 20));
    for stream in [nested, b"$4000000000000\r\n".to_vec()] {
        let took = watch_against(stream, Duration::from_millis(200));
        assert!(took < Duration::from_secs(5));
    }
}
