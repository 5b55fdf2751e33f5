//! Any text as the password of a Redis URL, in the user info or as a unix
//! socket's `?pass=` (or `?password=`): opening a client never panics, and
//! neither the error nor any Debug output shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Alphanumeric, so it reads the same raw and percent-encoded; it ends the
/// password, right before the '@' that ends the user info.
const MARKER: &str = "Zq9Xk";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for url in [
        format!("redis://bob:{text}{MARKER}@127.0.0.1:6379/0"),
        format!("unix:///tmp/redis.sock?pass={text}{MARKER}"),
        format!("unix:///tmp/redis.sock?{text}&password={MARKER}{text}"),
        format!("redis://127.0.0.1/{text}?pass={MARKER}"),
    ] {
        let builder = latchkey::Client::builder(&url);
        let debug = format!("{builder:?}");
        assert!(!debug.contains(MARKER), "{url:?} -> {debug}");
        match builder.build() {
            Ok(client) => {
                let debug = format!("{client:?}");
                assert!(!debug.contains(MARKER), "{url:?} -> {debug}");
            }
            Err(err) => assert!(!err.to_string().contains(MARKER), "{url:?} -> {err}"),
        }
    }
    // The text alone, as a URL: no panic.
    let _ = latchkey::Client::open(&text);
});
