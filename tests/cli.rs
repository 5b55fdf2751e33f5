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

// ---------------------------------------------------------------------
// exec, list, --json, --sentinel and --cluster.

/// exec's status when the lease was lost while its command ran.
const LEASE_LOST: i32 = 4;

/// Starts `latchkey exec NAME EXTRA... -- sh -c SCRIPT` with its stdout
/// piped, and waits for the script's first line (which must be
/// "started").
fn start_exec(
    server: &RedisServer,
    name: &str,
    extra: &[&str],
    script: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = tool()
        .args(["--url", &server.url(), "exec", name])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey exec");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    assert_eq!(read_reply(&mut stdout), "started\n");
    (child, stdout)
}

/// The rest of a child's stderr.
fn rest_of_stderr(child: &mut Child) -> String {
    use std::io::Read;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    stderr
}

/// Whether the lock key of `name` (default prefix, an ordinary name) is in
/// Redis.
fn lock_key_exists(server: &RedisServer, name: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("latchkey:{{{name}}}"))
        .query::<i64>(&mut server.admin())
        .expect("EXISTS")
        == 1
}

#[test]
fn help_lists_the_new_commands_and_exit_codes() {
    let output = run_str(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for word in [
        "exec",
        "list",
        "--json",
        "--sentinel",
        "--master-name",
        "--cluster",
        "  4 ",
        "126",
        "127",
    ] {
        assert!(stdout.contains(word), "no {word:?} in {stdout}");
    }
    for (command, words) in [
        (
            "exec",
            &["--grace-ms", "--timeout-ms", "--ttl-ms", "status"][..],
        ),
        ("list", &["--limit", "PATTERN", "waiters="]),
        ("inspect", &["\"state\""]),
        ("unlock", &["unlocked"]),
    ] {
        let output = run_str(&[command, "--help"]);
        assert_eq!(output.status.code(), Some(0), "{command}");
        let stdout = text(&output.stdout);
        for word in words {
            assert!(stdout.contains(word), "{command}: no {word:?} in {stdout}");
        }
    }
}

#[test]
fn deployment_options_exclude_each_other() {
    for args in [
        &["--sentinel", "redis://a", "inspect", "x"][..],
        &["--master-name", "m", "inspect", "x"],
        &[
            "--sentinel",
            "redis://a",
            "--master-name",
            "m",
            "--url",
            "redis://b",
            "inspect",
            "x",
        ],
        &[
            "--cluster",
            "redis://a",
            "--url",
            "redis://b",
            "inspect",
            "x",
        ],
        &[
            "--cluster",
            "redis://a",
            "--sentinel",
            "redis://b",
            "--master-name",
            "m",
            "inspect",
            "x",
        ],
        &["exec", "x"],
        &["list", "--limit", "many"],
    ] {
        let output = run_str(args);
        assert_eq!(output.status.code(), Some(USAGE), "{args:?}");
        assert_no_panic(&output);
    }
}

#[test]
fn exec_runs_the_command_under_the_lock_and_returns_its_status() {
    let server = RedisServer::start();
    let url = server.url();
    let output = run_str(&[
        "--url", &url, "exec", "cli-exec", "--", "sh", "-c", "exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let output = run_str(&[
        "--url",
        &url,
        "exec",
        "cli-exec",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(output.status.code(), Some(128 + libc::SIGKILL));

    // Held while the command runs (it waits for a line), free after.
    let (mut exec, mut stdout) = start_exec(&server, "cli-exec", &[], "echo started; read line");
    assert!(inspect(&server, "cli-exec").starts_with("held "));
    send(&mut exec, b"go\n");
    assert_eq!(wait_exit(&mut exec).code(), Some(0));
    assert_eq!(
        read_reply(&mut stdout),
        "",
        "exec printed something of its own"
    );
    assert_eq!(inspect(&server, "cli-exec"), "free");
}

#[test]
fn exec_stops_the_command_when_the_lease_is_lost() {
    let server = RedisServer::start();
    let name = "cli-exec-lost";
    let (mut exec, mut stdout) = start_exec(
        &server,
        name,
        &["--ttl-ms", "1000"],
        "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done",
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(exec.id() as i32, libc::SIGSTOP) };
    support::wait_until(
        "the stopped exec's lease runs out",
        Duration::from_secs(10),
        || !lock_key_exists(&server, name),
    );
    // SAFETY: as above.
    unsafe { libc::kill(exec.id() as i32, libc::SIGCONT) };
    assert_eq!(read_reply(&mut stdout), "got-term\n");
    let status = wait_exit(&mut exec);
    let stderr = rest_of_stderr(&mut exec);
    assert_eq!(status.code(), Some(LEASE_LOST), "{stderr}");
    assert!(stderr.contains("lost"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    // A command that ignores SIGTERM gets SIGKILL after --grace-ms.
    let name = "cli-exec-kill";
    let mut exec = tool()
        .args(["--url", &server.url(), "--json", "exec", name])
        .args(["--ttl-ms", "1000", "--grace-ms", "200", "--"])
        .args([
            "sh",
            "-c",
            "trap '' TERM; echo started; while :; do sleep 0.05; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey exec");
    let mut stdout = BufReader::new(exec.stdout.take().expect("stdout"));
    assert_eq!(read_reply(&mut stdout), "started\n");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(exec.id() as i32, libc::SIGSTOP) };
    support::wait_until(
        "the stopped exec's lease runs out",
        Duration::from_secs(10),
        || !lock_key_exists(&server, name),
    );
    // SAFETY: as above.
    unsafe { libc::kill(exec.id() as i32, libc::SIGCONT) };
    let status = wait_exit(&mut exec);
    let stderr = rest_of_stderr(&mut exec);
    assert_eq!(status.code(), Some(LEASE_LOST), "{stderr}");
    let report = json::parse(read_reply(&mut stdout).trim());
    assert_eq!(
        report.get("signal"),
        &json::Value::Number(libc::SIGKILL.into())
    );
    assert_eq!(report.get("lost"), &json::Value::Bool(true));
    assert_eq!(
        report.get("status"),
        &json::Value::Number(LEASE_LOST.into())
    );
    let error = json::parse(stderr.trim());
    assert_eq!(error.get("error").get("kind").as_str(), "Lost", "{stderr}");
}

#[test]
fn exec_waits_for_the_lock_and_gives_up_after_its_timeout() {
    let server = RedisServer::start();
    let mut first = start_holder(&server, "cli-exec-wait", &[]);
    let output = run_str(&[
        "--url",
        &server.url(),
        "exec",
        "cli-exec-wait",
        "--timeout-ms",
        "100",
        "--",
        "sh",
        "-c",
        "echo ran",
    ]);
    assert_eq!(output.status.code(), Some(NOT_ACQUIRED));
    assert!(
        output.stdout.is_empty(),
        "the command ran: {}",
        text(&output.stdout)
    );
    assert!(text(&output.stderr).contains("held by another owner"));

    // A waiting exec runs its command once the holder releases.
    let mut waiting = tool()
        .args(["--url", &server.url(), "exec", "cli-exec-wait", "--"])
        .args(["sh", "-c", "echo ran"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey exec");
    support::wait_for_waiter(&server, "cli-exec-wait");
    drop(first.stdin.take());
    assert_eq!(wait_exit(&mut first).code(), Some(0));
    let mut stdout = BufReader::new(waiting.stdout.take().expect("stdout"));
    assert_eq!(read_reply(&mut stdout), "ran\n");
    assert_eq!(wait_exit(&mut waiting).code(), Some(0));
    assert_eq!(inspect(&server, "cli-exec-wait"), "free");
}

#[test]
fn exec_of_a_command_that_cannot_run_releases_the_lock() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = support::TempDir::new("cli-exec");
    let not_executable = dir.0.join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let not_executable = not_executable.to_str().unwrap();
    for (command, status) in [("latchkey-no-such-command", 127), (not_executable, 126)] {
        let output = run_str(&["--url", &url, "exec", "cli-exec-missing", "--", command]);
        assert_eq!(output.status.code(), Some(status), "{command}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("cannot run") && stderr.contains(command),
            "{stderr}"
        );
        assert_eq!(inspect(&server, "cli-exec-missing"), "free");
    }
}

#[test]
fn signals_to_exec_reach_the_command() {
    let server = RedisServer::start();
    for (signal, name) in [
        (libc::SIGTERM, "cli-exec-term"),
        (libc::SIGHUP, "cli-exec-hup"),
    ] {
        let (mut exec, mut stdout) = start_exec(
            &server,
            name,
            &[],
            "trap 'echo got-it; exit 5' TERM HUP; echo started; while :; do sleep 0.05; done",
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(exec.id() as i32, signal) };
        assert_eq!(read_reply(&mut stdout), "got-it\n", "signal {signal}");
        assert_eq!(wait_exit(&mut exec).code(), Some(5), "signal {signal}");
        assert_eq!(inspect(&server, name), "free", "signal {signal}");
    }
    // A command that does not catch it dies of it: 128+N.
    let (mut exec, _stdout) = start_exec(
        &server,
        "cli-exec-uncaught",
        &[],
        "echo started; while :; do sleep 0.05; done",
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(exec.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut exec).code(), Some(128 + libc::SIGTERM));
    assert_eq!(inspect(&server, "cli-exec-uncaught"), "free");
}

#[test]
fn json_output_of_inspect_unlock_list_and_errors() {
    let server = RedisServer::start();
    let url = server.url();
    let json_of = |args: &[&str]| {
        let mut all = vec!["--url", &url, "--json"];
        all.extend_from_slice(args);
        let output = run_str(&all);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    };
    let name = "cli \"json\"\\ {x}:1";
    let free = json::parse(json_of(&["inspect", name]).trim());
    assert_eq!(free.get("name").as_str(), name);
    assert_eq!(free.get("state").as_str(), "free");

    let mut holder = start_holder(&server, name, &["--ttl-ms", "60000"]);
    let held = json::parse(json_of(&["inspect", name]).trim());
    assert_eq!(held.get("state").as_str(), "held");
    assert_eq!(held.get("name").as_str(), name);
    assert!(!held.get("owner").as_str().is_empty());
    assert!(matches!(held.get("fencing_token"), json::Value::Number(n) if *n > 0));
    assert!(matches!(held.get("ttl_ms"), json::Value::Number(n) if *n > 0 && *n <= 60_000));
    assert_eq!(held.get("reentrant"), &json::Value::Bool(false));
    assert_eq!(held.get("holds"), &json::Value::Number(1));
    assert_eq!(held.get("waiters"), &json::Value::Number(0));
    assert_eq!(held.get("queue"), &json::Value::Array(vec![]));

    let listed = json_of(&["list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 1, "{listed}");
    let entry = json::parse(lines[0]);
    assert_eq!(entry.get("name").as_str(), name);
    assert_eq!(entry.get("owner"), held.get("owner"));

    let unlocked = json::parse(json_of(&["unlock", name]).trim());
    assert_eq!(unlocked.get("unlocked"), &json::Value::Bool(true));
    let unlocked = json::parse(json_of(&["unlock", name]).trim());
    assert_eq!(unlocked.get("unlocked"), &json::Value::Bool(false));
    drop(holder.stdin.take());
    wait_exit(&mut holder);

    let report = json::parse(json_of(&["exec", "cli-json-exec", "--", "true"]).trim());
    assert_eq!(report.get("status"), &json::Value::Number(0));
    assert_eq!(report.get("exit_code"), &json::Value::Number(0));
    assert_eq!(report.get("signal"), &json::Value::Null);
    assert_eq!(report.get("lost"), &json::Value::Bool(false));

    // Errors: one object on stderr, the same status as without --json.
    let output = run_str(&["--url", &url, "--json", "list", "job:[1"]);
    assert_eq!(output.status.code(), Some(USAGE));
    let error = json::parse(text(&output.stderr).trim());
    assert_eq!(error.get("error").get("kind").as_str(), "InvalidArgument");
    assert!(error
        .get("error")
        .get("message")
        .as_str()
        .contains("job:[1"));
    let mut first = start_holder(&server, "cli-json-timeout", &[]);
    let output = run_str(&[
        "--url",
        &url,
        "--json",
        "exec",
        "cli-json-timeout",
        "--timeout-ms",
        "50",
        "--",
        "true",
    ]);
    assert_eq!(output.status.code(), Some(NOT_ACQUIRED));
    let error = json::parse(text(&output.stderr).trim());
    assert_eq!(error.get("error").get("kind").as_str(), "Timeout");
    assert!(output.stdout.is_empty());
    drop(first.stdin.take());
    wait_exit(&mut first);
}

/// Writes `count` plain locks `job:0`.. as the acquire script leaves them
/// (the lock key holding its owner with a ttl, the fencing counter), in
/// one pipeline.
fn write_locks(server: &RedisServer, count: usize) {
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("SET")
            .arg(format!("latchkey:{{job:{i}}}"))
            .arg(format!("owner-{i}"))
            .arg("PX")
            .arg(600_000)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("latchkey:{{job:{i}}}:fence"))
            .arg(i + 1)
            .ignore();
    }
    pipe.query::<()>(&mut server.admin())
        .expect("pipelined SETs");
}

/// What `list` prints: (name, the rest of the line) per line.
fn list(server: &RedisServer, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["--url".to_string(), server.url(), "list".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = run_str(&all);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            let (name, rest) = line.rsplit_once(" held ").expect("a list line");
            (name.to_string(), rest.to_string())
        })
        .collect()
}

#[test]
fn list_prints_every_held_lock_matching_the_pattern() {
    let server = RedisServer::start();
    write_locks(&server, 10_000);
    // Keys that are not locks of this prefix: never listed.
    let mut admin = server.admin();
    for key in [
        "latchkey:fenced:{job:5}",
        "other:{job:7}",
        "latchkey:{}",
        "latchkey-x",
    ] {
        redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query::<()>(&mut admin)
            .unwrap();
    }
    // Names with ':' and braces, and one with a leading '}' (another key
    // layout), taken by the library itself.
    let client = latchkey::Client::open(&server.url()).unwrap();
    let odd = ["a:b:c", "{br}ace", "x}y{", "}lead", "}", "{}"];
    let options = latchkey::LockOptions::new()
        .auto_renew(false)
        .ttl(Duration::from_secs(600));
    let guards: Vec<latchkey::Guard> = odd
        .iter()
        .map(|name| {
            client
                .lock_with(name, options.clone())
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();

    let started = Instant::now();
    let all = list(&server, &[]);
    let took = started.elapsed();
    assert_eq!(all.len(), 10_000 + odd.len(), "took {took:?}");
    let names: std::collections::HashSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), all.len(), "a lock listed twice");
    for name in odd {
        assert!(names.contains(name), "{name:?} not listed");
    }
    assert!(names.contains("job:0") && names.contains("job:9999"));
    let (_, job_7) = all.iter().find(|(n, _)| n == "job:7").unwrap();
    assert!(
        job_7.starts_with("owner=owner-7 fencing=8 ttl_ms="),
        "{job_7}"
    );
    assert!(job_7.ends_with(" waiters=0"), "{job_7}");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "not sorted by name");

    let ones = list(&server, &["job:1*"]);
    // job:1, job:10..19, job:100..199, job:1000..1999.
    assert_eq!(ones.len(), 1 + 10 + 100 + 1000);
    assert!(ones.iter().all(|(name, _)| name.starts_with("job:1")));
    assert_eq!(list(&server, &["}*"]).len(), 2); // "}lead" and "}"
    assert_eq!(list(&server, &["{br}*"]).len(), 1);
    assert_eq!(list(&server, &["*:b:*"]).len(), 1);
    assert_eq!(list(&server, &["job:99[0-4]?"]).len(), 50);
    assert_eq!(list(&server, &["--limit", "3"]).len(), 3);

    // Released and unlocked locks are gone from the list.
    for guard in guards {
        guard.release().unwrap();
    }
    let output = run_str(&["--url", &server.url(), "unlock", "job:42"]);
    assert!(output.status.success());
    assert_eq!(list(&server, &[]).len(), 9_999);
}

#[test]
fn hold_inspect_and_list_through_sentinel() {
    // No replica: what is tested is finding the master through the
    // sentinels (and it starts in a fraction of the time).
    let deployment = support::sentinel::SentinelDeployment::start(0);
    let mut args: Vec<String> = Vec::new();
    for sentinel in &deployment.sentinels {
        args.extend(["--sentinel".to_string(), sentinel.url()]);
    }
    args.extend(["--master-name".to_string(), "mymaster".to_string()]);
    let with = |more: &[&str]| -> Vec<String> {
        let mut all = args.clone();
        all.extend(more.iter().map(|a| a.to_string()));
        all
    };
    let mut holder = tool()
        .args(with(&["hold", "cli-sentinel"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey hold");
    let mut stdout = BufReader::new(holder.stdout.take().expect("stdout"));
    let acquired = read_reply(&mut stdout);
    assert!(acquired.starts_with("acquired "), "{acquired:?}");
    // The lock is on the master, seen through the sentinels.
    assert!(inspect(&deployment.master, "cli-sentinel").starts_with("held "));
    let output = tool()
        .args(with(&["inspect", "cli-sentinel"]))
        .output()
        .unwrap();
    assert!(
        text(&output.stdout).starts_with("held owner="),
        "{}",
        text(&output.stderr)
    );
    let output = tool().args(with(&["list"])).output().unwrap();
    let listed = text(&output.stdout);
    assert!(
        listed.starts_with("cli-sentinel held owner="),
        "{listed}{}",
        text(&output.stderr)
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
    assert_eq!(inspect(&deployment.master, "cli-sentinel"), "free");
}

#[test]
fn hold_inspect_and_list_through_a_cluster() {
    let nodes = support::cluster::start_nodes_with(3, 0, 2000, &[]);
    let mut args: Vec<String> = Vec::new();
    for node in &nodes {
        args.extend(["--cluster".to_string(), node.url()]);
    }
    let with = |more: &[&str]| -> Vec<String> {
        let mut all = args.clone();
        all.extend(more.iter().map(|a| a.to_string()));
        all
    };
    // Locks in every master's slots.
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let client = latchkey::Client::cluster_builder(&urls).build().unwrap();
    let options = latchkey::LockOptions::new()
        .auto_renew(false)
        .ttl(Duration::from_secs(600));
    let names: Vec<String> = (0..60).map(|i| format!("cluster-job:{i}")).collect();
    let _guards: Vec<latchkey::Guard> = names
        .iter()
        .map(|name| {
            client
                .lock_with(name, options.clone())
                .unwrap()
                .acquire()
                .unwrap()
        })
        .collect();
    for node in &nodes {
        let keys: i64 = redis::cmd("DBSIZE").query(&mut node.admin()).unwrap();
        assert!(keys > 0, "no lock on the master at port {}", node.port);
    }

    let mut holder = tool()
        .args(with(&["hold", "cli-cluster"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkey hold");
    let mut stdout = BufReader::new(holder.stdout.take().expect("stdout"));
    let acquired = read_reply(&mut stdout);
    assert!(acquired.starts_with("acquired "), "{acquired:?}");
    let output = tool()
        .args(with(&["inspect", "cli-cluster"]))
        .output()
        .unwrap();
    assert!(
        text(&output.stdout).starts_with("held owner="),
        "{}",
        text(&output.stderr)
    );
    let output = tool()
        .args(with(&["list", "cluster-job:*"]))
        .output()
        .unwrap();
    let listed = text(&output.stdout);
    let mut seen: Vec<&str> = listed
        .lines()
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    seen.sort();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(seen, expected, "{}", text(&output.stderr));
    let output = tool().args(with(&["list", "cli-*"])).output().unwrap();
    assert!(text(&output.stdout).starts_with("cli-cluster held "));
    drop(holder.stdin.take());
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
}

/// Just enough JSON to check what `--json` prints: objects, arrays,
/// strings (with every escape), integers, booleans and null.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(i64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        /// The field `key` of an object (panics if there is none).
        pub fn get(&self, key: &str) -> &Value {
            match self {
                Value::Object(fields) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no {key:?} in {self:?}")),
                _ => panic!("not an object: {self:?}"),
            }
        }

        pub fn as_str(&self) -> &str {
            match self {
                Value::String(s) => s,
                _ => panic!("not a string: {self:?}"),
            }
        }
    }

    /// Parses one whole JSON text (panics on anything else).
    pub fn parse(text: &str) -> Value {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let value = value(&chars, &mut at);
        skip_space(&chars, &mut at);
        assert_eq!(at, chars.len(), "trailing text in {text:?}");
        value
    }

    fn skip_space(c: &[char], at: &mut usize) {
        while *at < c.len() && c[*at].is_whitespace() {
            *at += 1;
        }
    }

    fn expect(c: &[char], at: &mut usize, want: char) {
        skip_space(c, at);
        assert_eq!(
            c.get(*at),
            Some(&want),
            "at {at} of {:?}",
            c.iter().collect::<String>()
        );
        *at += 1;
    }

    fn value(c: &[char], at: &mut usize) -> Value {
        skip_space(c, at);
        match c.get(*at) {
            Some('{') => {
                *at += 1;
                let mut fields = Vec::new();
                skip_space(c, at);
                if c.get(*at) == Some(&'}') {
                    *at += 1;
                    return Value::Object(fields);
                }
                loop {
                    skip_space(c, at);
                    let Value::String(key) = value(c, at) else {
                        panic!("a key that is not a string");
                    };
                    expect(c, at, ':');
                    fields.push((key, value(c, at)));
                    skip_space(c, at);
                    match c.get(*at) {
                        Some(',') => *at += 1,
                        Some('}') => {
                            *at += 1;
                            return Value::Object(fields);
                        }
                        other => panic!("{other:?} in an object"),
                    }
                }
            }
            Some('[') => {
                *at += 1;
                let mut items = Vec::new();
                skip_space(c, at);
                if c.get(*at) == Some(&']') {
                    *at += 1;
                    return Value::Array(items);
                }
                loop {
                    items.push(value(c, at));
                    skip_space(c, at);
                    match c.get(*at) {
                        Some(',') => *at += 1,
                        Some(']') => {
                            *at += 1;
                            return Value::Array(items);
                        }
                        other => panic!("{other:?} in an array"),
                    }
                }
            }
            Some('"') => {
                *at += 1;
                let mut s = String::new();
                loop {
                    let ch = c[*at];
                    *at += 1;
                    match ch {
                        '"' => return Value::String(s),
                        '\\' => {
                            let e = c[*at];
                            *at += 1;
                            s.push(match e {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                'u' => {
                                    let hex: String = c[*at..*at + 4].iter().collect();
                                    *at += 4;
                                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                                }
                                other => other,
                            });
                        }
                        ch => {
                            assert!(ch >= ' ', "a raw control character in a string");
                            s.push(ch);
                        }
                    }
                }
            }
            Some('t') | Some('f') | Some('n') => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    let end = (*at + word.len()).min(c.len());
                    if c[*at..end].iter().collect::<String>() == word {
                        *at = end;
                        return v;
                    }
                }
                panic!("a bad literal");
            }
            _ => {
                let start = *at;
                while *at < c.len() && (c[*at] == '-' || c[*at].is_ascii_digit()) {
                    *at += 1;
                }
                let number: String = c[start..*at].iter().collect();
                Value::Number(number.parse().expect("an integer"))
            }
        }
    }

    #[test]
    fn parses_what_the_tool_prints() {
        let v = parse(r#"{"a":"x\"\\\n\u0001","b":[1,-2],"c":{"d":null,"e":true}}"#);
        assert_eq!(v.get("a").as_str(), "x\"\\\n\u{1}");
        assert_eq!(
            v.get("b"),
            &Value::Array(vec![Value::Number(1), Value::Number(-2)])
        );
        assert_eq!(v.get("c").get("d"), &Value::Null);
    }
}

/// On Redlock, `list` scans every master and lists the locks a quorum of
/// them holds; a minority of masters down is skipped, more is `NoQuorum`.
#[test]
fn list_through_redlock_lists_what_a_quorum_holds() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let set = |server: &RedisServer, name: &str, owner: &str| {
        redis::pipe()
            .cmd("SET")
            .arg(format!("latchkey:{{{name}}}"))
            .arg(owner)
            .arg("PX")
            .arg(600_000)
            .ignore()
            .cmd("SET")
            .arg(format!("latchkey:{{{name}}}:fence"))
            .arg(7)
            .ignore()
            .query::<()>(&mut server.admin())
            .expect("SET");
    };
    // On masters 1 and 2, and for even i on master 0 too; "minority" on
    // master 0 only.
    for i in 0..5 {
        for server in &servers[if i % 2 == 0 { 0 } else { 1 }..] {
            set(server, &format!("quorum:{i}"), &format!("owner-{i}"));
        }
    }
    set(&servers[0], "minority", "owner-m");
    let list = |servers: &[RedisServer]| {
        let mut args: Vec<String> = Vec::new();
        for server in servers {
            args.extend(["--url".to_string(), server.url()]);
        }
        args.push("list".to_string());
        tool().args(args).stdin(Stdio::null()).output().unwrap()
    };
    let expected: Vec<String> = (0..5).map(|i| format!("quorum:{i}")).collect();
    let names = |output: &Output| -> Vec<String> {
        text(&output.stdout)
            .lines()
            .map(|line| line.split(' ').next().unwrap().to_string())
            .collect()
    };
    let output = list(&servers);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(names(&output), expected);
    assert!(text(&output.stdout).contains("quorum:3 held owner=owner-3 fencing=7 "));

    // Master 0 down: its scan fails, the others still make a quorum, and
    // every lock is on both of them.
    servers[0].kill();
    let output = list(&servers);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(names(&output), expected);
    servers[1].kill();
    let output = list(&servers);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("quorum"),
        "{}",
        text(&output.stderr)
    );
}

/// `inspect --semaphore`, `--election` and `--rwlock` show the holds of a
/// semaphore, the leader of an election and a read-write lock's writer and
/// readers, as text and as JSON.
#[test]
fn inspect_shows_semaphores_and_elections() {
    let server = RedisServer::start();
    let url = server.url();
    let client = latchkey::Client::open(&url).unwrap();
    let pool = client.semaphore("cli-pool", 3).unwrap();
    let two = pool.acquire(2).unwrap();
    let out = |args: &[&str]| {
        let mut all = vec!["--url", &url];
        all.extend_from_slice(args);
        let output = run_str(&all);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    };
    let shown = out(&["inspect", "--semaphore", "cli-pool"]);
    assert!(
        shown.starts_with("semaphore in_use=2 holds=1 fencing="),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("holder {} permits=2 ttl_ms=", two.token())),
        "{shown}"
    );
    let parsed = json::parse(out(&["--json", "inspect", "--semaphore", "cli-pool"]).trim());
    assert_eq!(parsed.get("kind").as_str(), "semaphore");
    assert_eq!(parsed.get("in_use"), &json::Value::Number(2));

    let election = client.election("cli-election").unwrap();
    assert_eq!(
        out(&["inspect", "--election", "cli-election"]).trim(),
        "no leader"
    );
    let leadership = election.campaign(b"host-a").unwrap();
    let shown = out(&["inspect", "--election", "cli-election"]);
    assert!(
        shown.starts_with(&format!("leader term={} ttl_ms=", leadership.term())),
        "{shown}"
    );
    assert!(shown.trim_end().ends_with("value=host-a"), "{shown}");
    let parsed = json::parse(out(&["--json", "inspect", "--election", "cli-election"]).trim());
    assert_eq!(parsed.get("state").as_str(), "led");
    assert_eq!(parsed.get("value").as_str(), "host-a");
    let config = client.rwlock("cli-rw").unwrap();
    let reader = config.read().unwrap();
    let shown = out(&["inspect", "--rwlock", "cli-rw"]);
    assert!(shown.starts_with("writer none\nreaders 1\n"), "{shown}");
    assert!(
        shown.contains(&format!("reader {} ttl_ms=", reader.token())),
        "{shown}"
    );
    reader.release().unwrap();
    let writer = config.write().unwrap();
    let parsed = json::parse(out(&["--json", "inspect", "--rwlock", "cli-rw"]).trim());
    assert_eq!(parsed.get("kind").as_str(), "rwlock");
    assert_eq!(parsed.get("writer").get("owner").as_str(), writer.token());
    assert_eq!(parsed.get("readers"), &json::Value::Number(0));
    let both = run_str(&["--url", &url, "inspect", "--semaphore", "--election", "x"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "the two kinds exclude each other"
    );
}
