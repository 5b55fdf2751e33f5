//! Real faults: a holder killed with SIGKILL or paused with SIGSTOP past its
//! lease, redis-server restarted without persistence, redis-server paused.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, ErrorKind, LockOptions};
use support::{tool, RedisServer};

/// A `latchkey hold` process that we can talk to line by line.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    fencing_token: u64,
}

impl Holder {
    fn start(server: &RedisServer, name: &str, ttl_ms: u64) -> Holder {
        let mut child = tool()
            .args([
                "--url",
                &server.url(),
                "hold",
                name,
                "--ttl-ms",
                &ttl_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut holder = Holder {
            child,
            stdin,
            stdout,
            fencing_token: 0,
        };
        let line = holder.line();
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("acquired"), "{line}");
        holder.fencing_token = words.next().unwrap().parse().unwrap();
        holder
    }

    /// The next reply, skipping asynchronous lost-callback reports.
    fn line(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).unwrap();
            let line = line.trim_end().to_string();
            if !line.starts_with("lost-callback") {
                return line;
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.line()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_holder_blocks_waiters_until_its_ttl_not_longer() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server, "killed", 1500);
    let client = Client::open(&server.url()).unwrap();
    let before = client.inspect("killed").unwrap().expect("held");
    let inspected = Instant::now();
    holder.signal(libc::SIGKILL);
    let _ = holder.child.wait();

    let guard = client
        .lock("killed")
        .unwrap()
        .acquire_timeout(Duration::from_secs(20))
        .expect("the lock frees itself after the ttl");
    let waited = inspected.elapsed();
    let ttl = before.ttl.unwrap();
    assert!(
        waited + Duration::from_millis(50) >= ttl,
        "acquired after {waited:?}, before the dead holder's lease ({ttl:?}) ran out"
    );
    // ... and not much longer: the waiter sleeps until the lease's end, it
    // does not poll (slack for a loaded machine, not a multiple of the ttl).
    assert!(
        waited < ttl + Duration::from_secs(2),
        "acquired only {waited:?} after a lease of {ttl:?} ran out"
    );
    assert!(guard.fencing_token() > holder.fencing_token);
}

#[test]
fn a_paused_holder_is_fenced_off_and_learns_it_lost_the_lease() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server, "paused", 1000);
    assert_eq!(holder.ask("write paused-store first"), "written");
    holder.signal(libc::SIGSTOP);

    let client = Client::open(&server.url()).unwrap();
    let guard = client
        .lock("paused")
        .unwrap()
        .acquire_timeout(Duration::from_secs(20))
        .expect("the paused holder's lease runs out");
    assert!(guard.fencing_token() > holder.fencing_token);
    assert!(
        client
            .fenced_write("paused-store", guard.fencing_token(), b"second")
            .unwrap()
            .written
    );

    holder.signal(libc::SIGCONT);
    let check = holder.ask("check");
    assert!(
        check.starts_with("lost"),
        "the woken holder must see its loss: {check}"
    );
    let write = holder.ask("write paused-store stale");
    assert_eq!(write, format!("refused {}", guard.fencing_token()));
    let release = holder.ask("release");
    assert!(release.starts_with("error NotHeld"), "{release}");
    assert_eq!(
        client.fenced_read("paused-store").unwrap(),
        Some((guard.fencing_token(), b"second".to_vec()))
    );
    assert_eq!(
        client.inspect("paused").unwrap().unwrap().owner_token,
        guard.token()
    );
}

#[test]
fn a_redis_restart_without_persistence_is_survived() {
    let mut server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let options = LockOptions::new()
        .ttl(Duration::from_millis(900))
        .on_lost(move |lost| lost_tx.send(lost.reason.clone()).unwrap());
    let lock = client.lock_with("restart", options).unwrap();
    let before = lock.acquire().unwrap();

    // A waiter blocked on another lock when the server goes away.
    let blocker = client
        .lock_with(
            "restart-wait",
            LockOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let waiter_client = Client::open(&server.url()).unwrap();
    let waiter = thread::spawn(move || {
        let lock = waiter_client.lock("restart-wait").unwrap();
        lock.acquire_timeout(Duration::from_secs(30))
            .map(|g| g.fencing_token())
    });
    support::wait_for_waiter(&server, "restart-wait");

    server.restart();

    let reason = lost_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the lease is reported lost");
    assert!(
        reason.contains("expired or held by another owner"),
        "{reason}"
    );
    assert_eq!(before.check().unwrap_err().kind(), ErrorKind::Lost);

    // The client reconnects, and tokens keep growing though the counter is gone.
    let after = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(after.fencing_token() > before.fencing_token());
    let waiter_token = waiter
        .join()
        .unwrap()
        .expect("the waiter gets the lock the restart freed");
    assert!(waiter_token > blocker.fencing_token());
    drop(blocker);
}

#[test]
fn a_paused_redis_never_hangs_a_caller() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let client = Client::builder(&server.url())
        .connect_timeout(timeout)
        .command_timeout(timeout)
        .build()
        .unwrap();
    let (lost_tx, lost_rx) = mpsc::channel();
    let options = LockOptions::new()
        .ttl(Duration::from_millis(1000))
        .on_lost(move |lost| lost_tx.send(lost.reason.clone()).unwrap());
    let guard = client
        .lock_with("frozen", options)
        .unwrap()
        .acquire()
        .unwrap();
    let lock = client.lock("frozen-other").unwrap();

    server.signal(libc::SIGSTOP);
    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let err = lock.try_acquire().unwrap_err();
    // A command timeout is a connection error, never "held until the
    // deadline" (Timeout).
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(started.elapsed() < bound);
    let started = Instant::now();
    assert!(lock.acquire_timeout(Duration::from_millis(500)).is_err());
    assert!(started.elapsed() < bound);
    let started = Instant::now();
    assert!(client.inspect("frozen").is_err());
    assert!(started.elapsed() < bound);

    // The watchdog cannot renew before the lease runs out: reported lost.
    let reason = lost_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("lost report");
    assert!(reason.contains("could not renew"), "{reason}");
    assert!(guard.lost());
    let started = Instant::now();
    assert!(guard.release().is_err());
    assert!(started.elapsed() < bound);

    server.signal(libc::SIGCONT);
    let fresh = lock
        .acquire_timeout(Duration::from_secs(10))
        .expect("works again after SIGCONT");
    fresh.release().unwrap();
}

extern "C" fn ignore_signal(_: libc::c_int) {}

#[test]
fn signals_to_the_calling_thread_do_not_break_calls() {
    let server = RedisServer::start();
    // A handler without SA_RESTART, as hosts install them (Go's SIGURG
    // preemption, Python's handlers): an interrupted socket call with a
    // timeout fails with EINTR unless the library keeps signals out.
    // SAFETY: installs a handler that does nothing, for a signal this test owns.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut());
    }
    let client = Client::open(&server.url()).unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let done = done.clone();
        thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            let lock = client.lock("signalled").unwrap();
            let result = (0..2000).try_for_each(|_| lock.acquire()?.release());
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            result
        })
    };
    let tid = tid_rx.recv().unwrap();
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: the worker thread is alive until `done` is set.
        unsafe { libc::pthread_kill(tid, libc::SIGUSR2) };
        thread::yield_now();
    }
    worker
        .join()
        .unwrap()
        .expect("every cycle succeeds despite the signals");
}
