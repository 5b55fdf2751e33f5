//! The `latchkey` command-line tool, run as a program against real
//! redis-server processes: help and exit codes, the `--` terminator, input
//! that is not UTF-8, `hold` releasing its lock on SIGTERM, SIGINT and
//! SIGHUP, `hold --timeout-ms`, and no password in its messages.

mod support;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::{tool, RedisServer};

/// The documented exit codes (see `latchkey --help`).
const USAGE: i32 = 2;
const NOT_ACQUIRED: i32 = 3;

fn run(args: &[&OsStr]) -> Output {
    tool()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run latchkey")
}

fn run_str(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_panic(output: &Output) {
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

fn inspect(server: &RedisServer, name: &str) -> String {
    let output = run_str(&["--url", &server.url(), "inspect", name]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

/// Starts `latchkey hold NAME` with stdin kept open and waits for its
/// "acquired" line.
fn start_holder(server: &RedisServer, name: &str, extra: &[&str]) -> Child {
    let mut child = tool()
        .args(["--url", &server.url(), "hold", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey hold");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the acquired line");
    assert!(line.starts_with("acquired "), "{line:?}");
    child
}

/// Waits for `child` to exit (bounded, generously).
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "latchkey did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn help_goes_to_stdout_with_status_zero_and_lists_the_exit_codes() {
    for flag in ["--help", "-h"] {
        let output = run_str(&[flag]);
        assert_eq!(output.status.code(), Some(0), "{flag}");
        let stdout = text(&output.stdout);
        for word in ["inspect", "unlock", "hold", "worker", "Exit status"] {
            assert!(stdout.contains(word), "{flag}: no {word:?} in {stdout}");
        }
        assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    }
    let output = run_str(&["hold", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("--timeout-ms"));
}

#[test]
fn usage_errors_share_one_exit_code() {
    for args in [
        &["frobnicate", "x"][..],
        &["--frobnicate", "inspect", "x"],
        &["inspect"],
        &["inspect", "x", "--ttl-ms", "soon"],
        &[],
    ] {
        let output = run_str(args);
        assert_eq!(output.status.code(), Some(USAGE), "{args:?}");
        assert_no_panic(&output);
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn arguments_that_are_not_utf8_are_usage_errors_not_panics() {
    let bad = OsStr::from_bytes(b"na\xffme");
    for args in [
        vec![OsStr::new("inspect"), bad],
        vec![
            OsStr::new("--url"),
            bad,
            OsStr::new("inspect"),
            OsStr::new("x"),
        ],
        vec![bad],
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(USAGE), "{args:?}");
        assert_no_panic(&output);
    }
}

#[test]
fn a_double_dash_ends_the_options() {
    let server = RedisServer::start();
    let output = run_str(&[
        "--url",
        &server.url(),
        "inspect",
        "--",
        "--looks-like-an-option",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "free");
}

#[test]
fn hold_releases_the_lock_on_sigterm_sigint_and_sighup() {
    let server = RedisServer::start();
    for (signal, name) in [
        (libc::SIGTERM, "cli-sigterm"),
        (libc::SIGINT, "cli-sigint"),
        (libc::SIGHUP, "cli-sighup"),
    ] {
        let mut holder = start_holder(&server, name, &["--ttl-ms", "60000"]);
        assert!(inspect(&server, name).starts_with("held "));
        // SAFETY: kill with the pid of our own child.
        unsafe { libc::kill(holder.id() as i32, signal) };
        let status = wait_exit(&mut holder);
        assert_eq!(status.code(), Some(128 + signal), "signal {signal}");
        // Released, not left to expire (the ttl is a minute).
        assert_eq!(inspect(&server, name), "free", "signal {signal}");
    }
}

#[test]
fn a_signal_ends_a_waiting_hold() {
    let server = RedisServer::start();
    let mut first = start_holder(&server, "cli-wait-signal", &[]);
    let mut waiter = tool()
        .args(["--url", &server.url(), "hold", "cli-wait-signal"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_for_waiter(&server, "cli-wait-signal");
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(waiter.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut waiter).code(), Some(128 + libc::SIGTERM));
    // SAFETY: as above.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    wait_exit(&mut first);
}

#[test]
fn hold_gives_up_after_its_timeout() {
    let server = RedisServer::start();
    let mut first = start_holder(&server, "cli-timeout", &[]);
    let output = run_str(&[
        "--url",
        &server.url(),
        "hold",
        "cli-timeout",
        "--timeout-ms",
        "100",
    ]);
    assert_eq!(output.status.code(), Some(NOT_ACQUIRED));
    assert!(text(&output.stderr).contains("held by another owner"));
    drop(first.stdin.take()); // end of input: release and exit 0
    assert_eq!(wait_exit(&mut first).code(), Some(0));
    assert_eq!(inspect(&server, "cli-timeout"), "free");
}

#[test]
fn passwords_never_show_in_the_tools_messages() {
    let server = RedisServer::start_with(&["--requirepass", "right"]);
    for (url, secret) in [
        (
            format!("redis://bob:se/cret@127.0.0.1:{}", server.port),
            "cret",
        ),
        (
            format!("redis://:wr%2Fong@127.0.0.1:{}", server.port),
            "wr%2Fong",
        ),
        // A unix socket's password is its ?pass= (echoed verbatim before).
        (
            "unix:///tmp/latchkey-no-such.sock?db=x&pass=S3CRETpw".to_string(),
            "S3CRETpw",
        ),
    ] {
        let output = run_str(&["--url", &url, "inspect", "x"]);
        assert!(!output.status.success());
        assert_no_panic(&output);
        let stderr = text(&output.stderr);
        assert!(!stderr.contains(secret), "{stderr}");
        assert!(!stderr.is_empty());
    }
}

/// Starts `latchkey hold NAME` like [`start_holder`], keeping its stdout
/// to read the replies and reports that follow the "acquired" line.
fn start_talking_holder(
    server: &RedisServer,
    name: &str,
    extra: &[&str],
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = tool()
        .args(["--url", &server.url(), "hold", name])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey hold");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let line = read_reply(&mut stdout);
    assert!(line.starts_with("acquired "), "{line:?}");
    (child, stdout)
}

fn read_reply(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read a reply");
    line
}

fn send(child: &mut Child, bytes: &[u8]) {
    use std::io::Write;
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(bytes).expect("write to hold");
    stdin.flush().expect("flush");
}

/// One way to end a `hold`.
type Ending = dyn Fn(&mut Child);

/// Deletes lock `name` behind its holder's back and waits until the
/// holder's renewal reports the loss.
fn lose(server: &RedisServer, name: &str, stdout: &mut BufReader<std::process::ChildStdout>) {
    let _: i64 = redis::cmd("DEL")
        .arg(format!("latchkey:{{{name}}}"))
        .query(&mut server.admin())
        .expect("DEL");
    let report = read_reply(stdout);
    assert!(report.starts_with("lost-callback "), "{report:?}");
}

/// `--help` says exit status 1 means a lost lease; a wrapping script can
/// tell only if `hold` keeps to it however the hold ends. Before, `hold`
/// exited 0 after its lease was lost (failed on the first ending, end of
/// input: status 0 instead of 1; a signal gave 128+N).
#[test]
fn hold_exits_1_when_its_lease_was_lost_however_the_hold_ends() {
    let server = RedisServer::start();
    let renewed = ["--ttl-ms", "600"];
    let endings: [(&str, &Ending); 4] = [
        ("end of input", &|child| drop(child.stdin.take())),
        ("release, then end of input", &|child| {
            send(child, b"release\n");
            drop(child.stdin.take());
        }),
        // SAFETY: kill only sends a signal to our own child.
        ("SIGTERM", &|child| unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }),
        ("a line that is not UTF-8, then end of input", &|child| {
            send(child, b"\xff\n");
            drop(child.stdin.take());
        }),
    ];
    for (i, (ending, end)) in endings.iter().enumerate() {
        let name = format!("cli-lost-{i}");
        let (mut holder, mut stdout) = start_talking_holder(&server, &name, &renewed);
        lose(&server, &name, &mut stdout);
        end(&mut holder);
        let status = wait_exit(&mut holder);
        assert_eq!(status.code(), Some(1), "{ending}: {status:?}");
    }
    // A lease that ran out unrenewed is lost too, though nothing reported it.
    let (mut holder, _stdout) =
        start_talking_holder(&server, "cli-lapsed", &["--ttl-ms", "100", "--no-renew"]);
    support::wait_until("the lease lapses", Duration::from_secs(10), || {
        inspect(&server, "cli-lapsed") == "free"
    });
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(1), "a lapsed lease");
    // And a lease that was never lost still ends with 0.
    let (mut holder, _stdout) = start_talking_holder(&server, "cli-kept", &renewed);
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
}

/// A hold whose final release cannot reach Redis may leave the lock held
/// until its lease runs out: a wrapping script must hear it. Before, the
/// error went to stderr and `hold` exited 0.
#[test]
fn hold_exits_1_when_its_final_release_fails() {
    let server = RedisServer::start();
    let (mut holder, _stdout) =
        start_talking_holder(&server, "cli-release-fails", &["--ttl-ms", "60000"]);
    server.signal(libc::SIGSTOP);
    drop(holder.stdin.take());
    let status = wait_exit(&mut holder);
    server.signal(libc::SIGCONT);
    let mut stderr = String::new();
    use std::io::Read;
    holder
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("release"), "{stderr}");
}

/// stdin is read as bytes: a line that is not UTF-8 gets an error reply
/// and the hold goes on. Before, one such byte ended the hold (the commands
/// after it were dropped, the lock released).
#[test]
fn a_line_that_is_not_utf8_gets_an_error_and_the_hold_goes_on() {
    let server = RedisServer::start();
    let (mut holder, mut stdout) = start_talking_holder(&server, "cli-bytes", &[]);
    send(&mut holder, b"check \xff\xfe\ncheck\nremaining\n");
    let first = read_reply(&mut stdout);
    assert!(first.starts_with("error "), "{first:?}");
    assert_eq!(read_reply(&mut stdout), "ok\n");
    assert!(read_reply(&mut stdout).starts_with("remaining "));
    assert!(inspect(&server, "cli-bytes").starts_with("held "));
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
    assert_eq!(inspect(&server, "cli-bytes"), "free");
}

/// `inspect` prints the queue after the holder's line, which stays as it
/// was (scripts parse it): "queue waiters=N listed=M", then one line per
/// listed waiter with its id and how long its entry has left, the next to
/// get the lock first. A free lock is still just "free".
#[test]
fn inspect_prints_the_waiters_queued_for_the_lock() {
    let server = RedisServer::start();
    let name = "cli-queue";
    assert_eq!(inspect(&server, name), "free");
    let mut holder = start_holder(&server, name, &[]);
    let shown = inspect(&server, name);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(lines[0].starts_with("held owner="), "{shown}");
    assert_eq!(lines[1], "queue waiters=0 listed=0", "{shown}");

    let mut waiters: Vec<Child> = Vec::new();
    for count in 1..=2 {
        waiters.push(
            tool()
                .args(["--url", &server.url(), "hold", name])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a waiting latchkey hold"),
        );
        support::wait_until("the waiter queued", Duration::from_secs(30), || {
            inspect(&server, name).contains(&format!("queue waiters={count} "))
        });
    }
    let shown = inspect(&server, name);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4, "{shown}");
    assert!(lines[0].starts_with("held owner="), "{shown}");
    assert_eq!(lines[1], "queue waiters=2 listed=2", "{shown}");
    let mut ids = Vec::new();
    for line in &lines[2..] {
        let (id, left) = line
            .strip_prefix("waiter ")
            .and_then(|rest| rest.split_once(" expires_in_ms="))
            .unwrap_or_else(|| panic!("not a waiter line: {line:?} in {shown}"));
        assert!(id.starts_with("w:"), "{line:?}");
        let left: u64 = left.parse().expect("milliseconds");
        assert!(left > 0 && left <= 15_000, "{line:?}");
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1], "{shown}");

    // The holder releases: the first waiter takes the lock and leaves the
    // queue; the second is still listed.
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
    support::wait_until(
        "the first waiter took the lock",
        Duration::from_secs(30),
        || inspect(&server, name).contains("queue waiters=1 "),
    );
    let shown = inspect(&server, name);
    assert!(!shown.contains(&ids[0]), "{shown}");
    assert!(
        shown.contains(&format!("waiter {} expires_in_ms=", ids[1])),
        "{shown}"
    );
    for mut waiter in waiters {
        drop(waiter.stdin.take());
        assert_eq!(wait_exit(&mut waiter).code(), Some(0));
    }
    assert_eq!(inspect(&server, name), "free");
}
