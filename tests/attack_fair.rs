//! Attacks on the fair locks of commit 63f3fe7 (`LockOptions::fair`): the
//! queue's arrival order (`P:{N}:qa`), the handoff to the first live
//! waiter, a fair caller that never takes a free lock ahead of an earlier
//! waiter, and a fair waiter that keeps its place when handed the lock.
//! Every test runs against real redis-server processes (tests/support);
//! the waiters that die or stop are `latchkey hold --fair` processes
//! killed with SIGKILL or stopped with SIGSTOP at a step of the queue
//! protocol that Redis shows (its entry queued, its subscription, the
//! lock reserved for it, its hold).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{CancelToken, Client, ErrorKind, Guard, LockOptions};
use support::{in_forked_child, tool, wait_until, RedisServer};

/// Generous bound for "a dead or stopped waiter holds the queue up for
/// about 20 s at most" (README, Fair locks: 15 s entry lease + one 5 s
/// re-check), with room for a loaded machine. A queue held up for ever,
/// or for a whole holder ttl more, still fails it.
const DEAD_WAITER_BOUND: Duration = Duration::from_secs(40);

/// How long any one wait for a state of the server may take here.
const SETUP: Duration = Duration::from_secs(30);

fn lock_key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

fn queue_key(name: &str) -> String {
    format!("latchkey:{{{name}}}:q")
}

fn order_key(name: &str) -> String {
    format!("latchkey:{{{name}}}:qa")
}

fn channel(name: &str) -> String {
    format!("latchkey:{{{name}}}:ch")
}

fn fair() -> LockOptions {
    LockOptions::new().fair(true).ttl(Duration::from_secs(30))
}

/// A fair hold of `name` by a client of its own (returned with it: the
/// hold ends with its client).
fn hold_fair(server: &RedisServer, name: &str) -> (Client, Guard) {
    let client = Client::open(&server.url()).unwrap();
    let guard = client.lock_with(name, fair()).unwrap().acquire().unwrap();
    (client, guard)
}

/// The waiter ids in lock `name`'s arrival order (live or not).
fn arrivals(server: &RedisServer, name: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(order_key(name))
        .arg(0)
        .arg(-1)
        .query(&mut server.admin())
        .unwrap()
}

/// The lock key's value (a hold token, `handoff:<waiter>`, or none).
fn lock_value(server: &RedisServer, name: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(lock_key(name))
        .query(&mut server.admin())
        .unwrap()
}

/// How many connections listen on lock `name`'s release channel.
fn listeners(server: &RedisServer, name: &str) -> i64 {
    let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel(name))
        .query(&mut server.admin())
        .unwrap();
    match reply.get(1) {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

/// Waits until lock `name`'s queue holds `count` arrivals and returns them.
fn wait_for_arrivals(server: &RedisServer, name: &str, count: usize) -> Vec<String> {
    wait_until(
        &format!("{count} waiters queued on '{name}'"),
        SETUP,
        || arrivals(server, name).len() >= count,
    );
    arrivals(server, name)
}

/// Every key of lock `name` expires (none is left without a ttl).
fn assert_every_key_expires(server: &RedisServer, name: &str) {
    let mut admin = server.admin();
    for key in [lock_key(name), queue_key(name), order_key(name)] {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut admin).unwrap();
        assert!(ttl != -1, "{key} has no expiry");
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child process this test started and has not
    // reaped yet.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// A `latchkey hold --fair NAME` process: it waits for the lock, prints
/// `acquired FENCING TOKEN`, then holds it until its input ends.
struct CliWaiter {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl CliWaiter {
    fn start(server: &RedisServer, name: &str, extra: &[&str]) -> CliWaiter {
        let mut command: Command = tool();
        command
            .args(["--url", &server.url(), "hold", "--fair", name])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        CliWaiter {
            child,
            stdin,
            lines,
        }
    }

    /// Waits (up to `limit`) for the `acquired` line.
    fn acquired_within(&self, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("acquired ") => return Some(Instant::now()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Ends the hold (end of input: the process releases and exits).
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }

    /// Waits for the process to end (after a signal). Its input stays open
    /// until then: an end of input is a reason to release and exit 0 of
    /// its own, and a head that took the lock as it resumed saw that end
    /// of input before the SIGTERM (exit 0, not 143: 1 of 9 repeat runs).
    fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        drop(self.stdin.take());
        status
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A fair waiter in the test process, on a client of its own: it records
/// when it got the lock in `taken` (its number), and releases at once.
fn fair_waiter(
    server: &RedisServer,
    name: &'static str,
    number: usize,
    taken: &Arc<Mutex<Vec<(usize, Instant)>>>,
) -> thread::JoinHandle<()> {
    let client = Client::open(&server.url()).unwrap();
    let taken = taken.clone();
    thread::spawn(move || {
        let lock = client.lock_with(name, fair()).unwrap();
        let guard = lock
            .acquire_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("waiter {number}: {e}"));
        taken.lock().unwrap().push((number, Instant::now()));
        guard.release().unwrap();
    })
}

/// The numbers in `taken`, in the order they got the lock.
fn order_of(taken: &Arc<Mutex<Vec<(usize, Instant)>>>) -> Vec<usize> {
    taken.lock().unwrap().iter().map(|(n, _)| *n).collect()
}

/// The step of the queue protocol at which the first waiter is killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Its entry is queued; stopped at once (usually before it subscribed).
    Queued,
    /// Queued and subscribed: parked.
    Parked,
    /// A release reserved the lock for it (`handoff:<its id>`) and woke it,
    /// but it had not taken the lock yet.
    Woken,
    /// It took the lock (the hold runs out after its 2 s ttl).
    Holding,
}

/// kill -9 of a fair waiter at `step`: the two live waiters behind it (each
/// in a client of its own) get the lock in arrival order, within the bound
/// a dead waiter may hold the queue up, and every key still expires.
fn kill_at(step: Step) {
    let server = RedisServer::start();
    let name: &'static str = match step {
        Step::Queued => "kill-queued",
        Step::Parked => "kill-parked",
        Step::Woken => "kill-woken",
        Step::Holding => "kill-holding",
    };
    let (_holder_client, holder) = hold_fair(&server, name);
    let victim = CliWaiter::start(&server, name, &["--ttl-ms", "2000"]);
    let mut stopped_before_subscribing = false;
    let victim_id = match step {
        Step::Queued => {
            // Stopped as soon as Redis shows its entry: between its first
            // attempt and its SUBSCRIBE whenever the poll is quick enough.
            let mut admin = server.admin();
            let deadline = Instant::now() + SETUP;
            loop {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(order_key(name))
                    .arg(0)
                    .arg(-1)
                    .query(&mut admin)
                    .unwrap();
                if let Some(id) = ids.first() {
                    signal(&victim.child, libc::SIGSTOP);
                    stopped_before_subscribing = listeners(&server, name) == 0;
                    break id.clone();
                }
                assert!(Instant::now() < deadline, "the victim never queued");
            }
        }
        _ => {
            let id = wait_for_arrivals(&server, name, 1)[0].clone();
            wait_until("the victim is subscribed", SETUP, || {
                listeners(&server, name) == 1
            });
            id
        }
    };
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for number in 1..=2 {
        waiters.push(fair_waiter(&server, name, number, &taken));
        wait_for_arrivals(&server, name, 1 + number);
    }
    let killed_at;
    match step {
        Step::Queued | Step::Parked => {
            victim.kill();
            killed_at = Instant::now();
            holder.release().unwrap();
        }
        Step::Woken => {
            signal(&victim.child, libc::SIGSTOP);
            holder.release().unwrap();
            // The release reserved the lock for the (stopped) head: it is
            // woken, its message waits in its socket.
            let reserved = lock_value(&server, name);
            victim.kill();
            killed_at = Instant::now();
            assert_eq!(
                reserved,
                Some(format!("handoff:{victim_id}")),
                "the release did not hand the lock to the first waiter"
            );
        }
        Step::Holding => {
            holder.release().unwrap();
            assert!(
                victim.acquired_within(SETUP).is_some(),
                "the first waiter never got the lock"
            );
            victim.kill();
            killed_at = Instant::now();
        }
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }
    let order = order_of(&taken);
    let first = taken.lock().unwrap()[0].1;
    assert_eq!(
        order,
        vec![1, 2],
        "after a kill -9 at {step:?}, the live waiters got the lock out of arrival order"
    );
    let held_up = first.duration_since(killed_at);
    assert!(
        held_up < DEAD_WAITER_BOUND,
        "a waiter killed at {step:?} held the queue up for {held_up:?}"
    );
    assert_every_key_expires(&server, name);
    if step == Step::Queued {
        eprintln!("kill_at(Queued): stopped before subscribing: {stopped_before_subscribing}");
    }
}

/// kill -9 of a fair waiter whose entry was just queued (stopped as soon as
/// Redis shows it, usually before its SUBSCRIBE).
#[test]
fn a_fair_waiter_killed_right_after_queueing_holds_the_queue_up_only_until_its_entry_runs_out() {
    kill_at(Step::Queued);
}

/// kill -9 of a fair waiter parked (queued and subscribed) at the head.
#[test]
fn a_fair_waiter_killed_while_parked_holds_the_queue_up_only_until_its_entry_runs_out() {
    kill_at(Step::Parked);
}

/// kill -9 of the head of a fair queue after the release reserved the lock
/// for it and woke it, before it took the lock: it stays the head (a fair
/// waiter keeps its place when handed the lock) and every re-check of the
/// others hands it the lock again, until its entry runs out.
#[test]
fn a_fair_waiter_killed_once_woken_holds_the_queue_up_only_until_its_entry_runs_out() {
    kill_at(Step::Woken);
}

/// kill -9 of a fair waiter that just took the lock: its lease (2 s) runs
/// out, nobody releases, and the next in arrival order gets it.
#[test]
fn a_fair_waiter_killed_while_holding_passes_the_lock_on_in_arrival_order() {
    kill_at(Step::Holding);
}

/// A fair waiter stopped (SIGSTOP) at the head while the lock is handed to
/// it, for less than its entry's lease, keeps its place: README ("a fair
/// waiter handed the lock keeps its place until it takes it, so one slower
/// than the 100 ms reservation is not passed over"). The others re-check
/// meanwhile and hand the lock back to it; once it runs again it takes the
/// lock before them.
#[test]
fn a_stopped_fair_head_keeps_its_place_while_its_entry_lasts() {
    let server = RedisServer::start();
    let name: &'static str = "stopped-head";
    let (_holder_client, holder) = hold_fair(&server, name);
    let head = CliWaiter::start(&server, name, &[]);
    let head_id = wait_for_arrivals(&server, name, 1)[0].clone();
    wait_until("the head is subscribed", SETUP, || {
        listeners(&server, name) == 1
    });
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for number in 1..=2 {
        waiters.push(fair_waiter(&server, name, number, &taken));
        wait_for_arrivals(&server, name, 1 + number);
    }
    signal(&head.child, libc::SIGSTOP);
    let stopped_at = Instant::now();
    holder.release().unwrap();
    let reserved = Some(format!("handoff:{head_id}"));
    // The 100 ms reservation runs out; a re-check of one of the others
    // finds the lock free and reserves it for the head again.
    wait_until("the first reservation ran out", SETUP, || {
        lock_value(&server, name) != reserved
    });
    wait_until(
        "another waiter handed the lock to the head again",
        SETUP,
        || lock_value(&server, name) == reserved,
    );
    assert!(
        stopped_at.elapsed() < Duration::from_secs(12),
        "the setup took too long for the head's entry to be still live ({:?})",
        stopped_at.elapsed()
    );
    signal(&head.child, libc::SIGCONT);
    let head_got = head
        .acquired_within(SETUP)
        .expect("the stopped head got the lock once it ran again");
    assert!(
        taken.lock().unwrap().is_empty(),
        "a later waiter got the lock before the stopped head: {:?}",
        order_of(&taken)
    );
    assert!(head.finish().success());
    for waiter in waiters {
        waiter.join().unwrap();
    }
    assert_eq!(order_of(&taken), vec![1, 2]);
    assert!(taken.lock().unwrap()[0].1 > head_got);
}

/// The head of a fair queue whose last attempt (at its deadline) finds the
/// lock free gives it to the next waiter instead of taking it: acquire.lua
/// takes the caller out of the queue ('0' lease) before it looks for the
/// first live waiter, so the head no longer counts. It arrived first, it
/// was waiting, and the lock was free before its deadline (the holder's
/// lease ran out: here a key deleted without a release message, as an
/// expiry leaves it); an ordinary lock's waiter would take it. The later
/// waiter gets the lock instead, out of arrival order. Fixed in
/// acquire.lua: a last attempt looks for the first waiter before it
/// leaves.
///
/// Failure seen before the fix (5 of 5 runs): "the first waiter timed out
/// although the lock was free before its deadline (the next waiter got it
/// out of arrival order)".
#[test]
fn a_fair_head_whose_last_attempt_finds_the_lock_free_takes_it() {
    let server = RedisServer::start();
    let name = "head-deadline";
    let mut admin = server.admin();
    for round in 0.. {
        assert!(round < 3, "the setup never fit within the head's deadline");
        // A holder that died: its key stays until its lease runs out.
        let _: () = redis::cmd("SET")
            .arg(lock_key(name))
            .arg("a-holder-that-died")
            .arg("PX")
            .arg(60_000)
            .query(&mut admin)
            .unwrap();
        // The head waits 4 s; the holder's lease of 60 s makes both waiters
        // re-check only every 5 s, so the head's last attempt, at its
        // deadline, is the first look at the lock after it became free.
        let client = Client::open(&server.url()).unwrap();
        let head_started = Instant::now();
        let head = {
            thread::spawn(move || {
                match client
                    .lock_with(name, fair())
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(4))
                {
                    Ok(guard) => {
                        guard.release().unwrap();
                        true
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => false,
                    Err(e) => panic!("the head: {e}"),
                }
            })
        };
        wait_for_arrivals(&server, name, 1);
        let next_got = Arc::new(AtomicBool::new(false));
        let next = {
            let client = Client::open(&server.url()).unwrap();
            let next_got = next_got.clone();
            thread::spawn(move || {
                let guard = client
                    .lock_with(name, fair())
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(60))
                    .expect("the next waiter gets the lock in the end");
                next_got.store(true, Ordering::SeqCst);
                guard.release().unwrap();
            })
        };
        wait_for_arrivals(&server, name, 2);
        // The holder's lease "runs out" (no release message).
        let _: () = redis::cmd("DEL")
            .arg(lock_key(name))
            .query(&mut admin)
            .unwrap();
        let freed = Instant::now();
        let head_got_it = head.join().unwrap();
        next.join().unwrap();
        if freed > head_started + Duration::from_millis(3500) {
            // The head's last attempt (sent at its deadline, 4 s after it
            // started) may have come before the lock was freed: the round
            // tests nothing on so slow a machine; try again.
            continue;
        }
        assert!(
            head_got_it,
            "the first waiter timed out although the lock was free before its deadline \
             (the next waiter got it out of arrival order: {})",
            next_got.load(Ordering::SeqCst)
        );
        break;
    }
}

/// README ("Fair locks"): "A waiter that times out, is cancelled or closed
/// leaves at once." A program closes its client and ends (here a forked
/// child that `_exit`s right after `close` returns, as a process ends
/// after its last call). The waiting acquire returns `Closed` and hands
/// its departure to the watchdog thread (`leave_queue_later`), which runs
/// it a moment later, after the process is gone: the entry stays, and a
/// fair queue keeps handing the lock to a waiter that is gone until the
/// entry runs out (15 s, then a re-check).
///
/// Failure seen before the fix (5 of 5 runs): "the closed client's waiter
/// is still queued after close returned and its process ended:
/// [\"f:9477…\"] (the release then handed the lock to
/// Some(\"handoff:f:9477…\"))". Fixed: a close takes its waiters that gave
/// up out of their queues itself before it returns.
#[test]
fn a_fair_waiter_of_a_closed_client_has_left_the_queue_when_close_returns() {
    let server = RedisServer::start();
    let name: &'static str = "closed-waiter";
    let (_holder_client, holder) = hold_fair(&server, name);
    let url = server.url();
    let status = in_forked_child(Duration::from_secs(60), || {
        let client = Client::open(&url).unwrap();
        let waiting = {
            let client = client.clone();
            thread::spawn(move || client.lock_with(name, fair()).unwrap().acquire().map(drop))
        };
        wait_for_arrivals(&server, name, 1);
        client.close().unwrap();
        let outcome = waiting.join().unwrap();
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Closed);
        // The process ends here.
    });
    assert_eq!(status, Some(0), "the child failed");
    let left_behind = arrivals(&server, name);
    // What it costs: the next fair waiter (queued now) is handed the lock
    // at the release, not the waiter that is gone.
    let taken = Arc::new(Mutex::new(Vec::new()));
    let next = fair_waiter(&server, name, 1, &taken);
    wait_until("the next waiter queued", SETUP, || {
        arrivals(&server, name).len() > left_behind.len()
    });
    holder.release().unwrap();
    let handed_to = lock_value(&server, name);
    next.join().unwrap();
    assert!(
        left_behind.is_empty(),
        "the closed client's waiter is still queued after close returned and its process \
         ended: {left_behind:?} (the release then handed the lock to {handed_to:?})"
    );
}

/// The same through the command line: `latchkey hold --fair` ended by
/// SIGTERM while it waits exits with 143 at once; its waiter must have
/// left the queue by then, or the release hands the lock to it.
///
/// Failure seen before the fix (4 of 5 runs): "the waiter ended by SIGTERM
/// is still queued after its process exited (the release then handed the
/// lock to Some(\"handoff:f:084c…\"))". Fixed: the command line closes its
/// client before it exits (and a close leaves the queues itself).
#[test]
fn a_fair_cli_waiter_ended_by_sigterm_has_left_the_queue_when_it_exits() {
    let server = RedisServer::start();
    let name: &'static str = "sigterm-waiter";
    let (_holder_client, holder) = hold_fair(&server, name);
    let first = CliWaiter::start(&server, name, &[]);
    let first_id = wait_for_arrivals(&server, name, 1)[0].clone();
    wait_until("the first waiter is subscribed", SETUP, || {
        listeners(&server, name) == 1
    });
    let taken = Arc::new(Mutex::new(Vec::new()));
    let next = fair_waiter(&server, name, 1, &taken);
    wait_for_arrivals(&server, name, 2);
    signal(&first.child, libc::SIGTERM);
    let status = first.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    let queued = arrivals(&server, name);
    holder.release().unwrap();
    let handed_to = lock_value(&server, name);
    next.join().unwrap();
    assert!(
        !queued.contains(&first_id),
        "the waiter ended by SIGTERM is still queued after its process exited \
         (the release then handed the lock to {handed_to:?})"
    );
}

/// The head of a fair queue is stopped while the release hands it the lock
/// (`handoff:<its id>`, its wake-up message unread), then ended by SIGTERM
/// and let run: whether it takes the lock and releases it or gives up
/// first, by the time it exited it is out of the queue, and the next
/// waiter gets the lock.
///
/// Failure seen before the fix (4 of 5 runs): "the head ended by SIGTERM
/// is still queued after its process exited (the next waiter got the lock
/// 15.07s after that)": the gone head kept its place until its entry ran
/// out.
#[test]
fn a_fair_head_ended_by_sigterm_as_it_is_handed_the_lock_passes_it_on() {
    let server = RedisServer::start();
    let name: &'static str = "sigterm-handed";
    let (_holder_client, holder) = hold_fair(&server, name);
    let head = CliWaiter::start(&server, name, &[]);
    let head_id = wait_for_arrivals(&server, name, 1)[0].clone();
    wait_until("the head is subscribed", SETUP, || {
        listeners(&server, name) == 1
    });
    let taken = Arc::new(Mutex::new(Vec::new()));
    let next = fair_waiter(&server, name, 1, &taken);
    wait_for_arrivals(&server, name, 2);
    signal(&head.child, libc::SIGSTOP);
    holder.release().unwrap();
    assert_eq!(
        lock_value(&server, name),
        Some(format!("handoff:{head_id}"))
    );
    signal(&head.child, libc::SIGTERM);
    signal(&head.child, libc::SIGCONT);
    let status = head.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    let queued = arrivals(&server, name);
    let exited = Instant::now();
    next.join().unwrap();
    let waited = taken.lock().unwrap()[0].1.duration_since(exited);
    assert!(
        !queued.contains(&head_id),
        "the head ended by SIGTERM is still queued after its process exited (the next \
         waiter got the lock {waited:?} after that)"
    );
    assert!(waited < DEAD_WAITER_BOUND, "{waited:?}");
}

/// Fair waiters in three clients (ordinary ones mixed in), queued one after
/// another; two of them cancel; a fourth client hammers the lock with fair
/// `try_acquire` all along. The fair waiters get the lock in arrival order,
/// never two at once, and the hammer never gets it while one of them waits.
#[test]
fn fair_waiters_of_several_clients_go_in_arrival_order_despite_cancels_and_try_acquires() {
    const WAITERS: usize = 10;
    const CANCELLED: [usize; 2] = [2, 6];
    let server = RedisServer::start();
    let name: &'static str = "crowd";
    let clients: Vec<Client> = (0..3)
        .map(|_| Client::open(&server.url()).unwrap())
        .collect();
    let holder = clients[0]
        .lock_with(name, fair())
        .unwrap()
        .acquire()
        .unwrap();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(AtomicUsize::new(WAITERS - CANCELLED.len()));
    let mut cancels = Vec::new();
    let mut threads = Vec::new();
    // Waiters 3 and 7 are ordinary (they share the queue; only the fair
    // ones are promised never to be passed over); the last is fair.
    let is_fair = |i: usize| i % 4 != 3;
    for i in 0..WAITERS {
        let options = if is_fair(i) {
            fair()
        } else {
            LockOptions::new().ttl(Duration::from_secs(30))
        };
        let lock = clients[i % 3].lock_with(name, options).unwrap();
        let cancel = CancelToken::new();
        cancels.push(cancel.clone());
        let (taken, inside, waiting) = (taken.clone(), inside.clone(), waiting.clone());
        threads.push(thread::spawn(move || {
            match lock.acquire_with(Some(Duration::from_secs(120)), Some(&cancel)) {
                Ok(guard) => {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    taken.lock().unwrap().push(i);
                    waiting.fetch_sub(1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    guard.release().unwrap();
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::Cancelled, "waiter {i}: {e}"),
            }
        }));
        wait_for_arrivals(&server, name, i + 1);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let lock = Client::open(&server.url())
            .unwrap()
            .lock_with(name, fair())
            .unwrap();
        let (stop, waiting, inside) = (stop.clone(), waiting.clone(), inside.clone());
        thread::spawn(move || {
            let mut jumped = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(guard) = lock.try_acquire().unwrap() {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    if waiting.load(Ordering::SeqCst) > 0 {
                        jumped += 1;
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    guard.release().unwrap();
                }
                // Pacing, not synchronisation: keeps the CPU modest.
                thread::sleep(Duration::from_millis(2));
            }
            jumped
        })
    };
    for i in CANCELLED {
        cancels[i].cancel();
    }
    wait_until("the cancelled waiters left", SETUP, || {
        arrivals(&server, name).len() == WAITERS - CANCELLED.len()
    });
    holder.release().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let jumped = hammer.join().unwrap();
    let order = taken.lock().unwrap().clone();
    let fair_order: Vec<usize> = order.iter().copied().filter(|&i| is_fair(i)).collect();
    let expected: Vec<usize> = (0..WAITERS)
        .filter(|&i| is_fair(i) && !CANCELLED.contains(&i))
        .collect();
    assert_eq!(fair_order, expected, "all: {order:?}");
    assert_eq!(order.len(), WAITERS - CANCELLED.len(), "{order:?}");
    assert_eq!(
        jumped, 0,
        "a fair try_acquire took the lock while waiters waited"
    );
    assert_every_key_expires(&server, name);
}

/// Nobody releases: each fair waiter takes the lock with a 600 ms lease it
/// does not renew and leaves it to run out. No release message ever comes;
/// whoever looks first after a lease ran out must hand the lock to the
/// first in line. Six waiters in two clients, queued in order.
#[test]
fn fair_waiters_go_in_arrival_order_when_every_lease_runs_out() {
    const WAITERS: usize = 6;
    let server = RedisServer::start();
    let name: &'static str = "lapses";
    let _: () = redis::cmd("SET")
        .arg(lock_key(name))
        .arg("a-holder-that-died")
        .arg("PX")
        .arg(60_000)
        .query(&mut server.admin())
        .unwrap();
    let clients: Vec<Client> = (0..2)
        .map(|_| Client::open(&server.url()).unwrap())
        .collect();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..WAITERS {
        let options = LockOptions::new()
            .fair(true)
            .ttl(Duration::from_millis(600))
            .auto_renew(false);
        let lock = clients[i % 2].lock_with(name, options).unwrap();
        let taken = taken.clone();
        threads.push(thread::spawn(move || {
            let guard = lock
                .acquire_timeout(Duration::from_secs(120))
                .expect("every waiter gets the lock");
            taken.lock().unwrap().push(i);
            // Kept (not released) until its lease has run out.
            guard
        }));
        wait_for_arrivals(&server, name, i + 1);
    }
    let _: () = redis::cmd("DEL")
        .arg(lock_key(name))
        .query(&mut server.admin())
        .unwrap();
    let guards: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let order = taken.lock().unwrap().clone();
    assert_eq!(order, (0..WAITERS).collect::<Vec<_>>());
    drop(guards);
}

/// Entries of waiters that are gone never stay for ever: three fair
/// waiters are killed (-9) while a live holder keeps renewing its lease
/// (nobody hands the lock to them, nobody looks at the queue's head); the
/// queue's keys still run out, and once the holder releases, only the
/// fencing counter (with its retention) is left.
#[test]
fn the_entries_of_killed_fair_waiters_run_out_under_a_renewed_hold() {
    let server = RedisServer::start();
    let name: &'static str = "ghosts";
    let holder_client = Client::open(&server.url()).unwrap();
    let holder = holder_client
        .lock_with(
            name,
            LockOptions::new().fair(true).ttl(Duration::from_secs(3)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let mut ghosts = Vec::new();
    for i in 0..3 {
        ghosts.push(CliWaiter::start(&server, name, &[]));
        wait_for_arrivals(&server, name, i + 1);
    }
    for ghost in ghosts {
        ghost.kill();
    }
    let killed = Instant::now();
    assert_every_key_expires(&server, name);
    let mut admin = server.admin();
    wait_until("the dead waiters' queue ran out", DEAD_WAITER_BOUND, || {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(queue_key(name))
            .arg(order_key(name))
            .query(&mut admin)
            .unwrap();
        exists == 0
    });
    assert!(killed.elapsed() < DEAD_WAITER_BOUND);
    holder
        .check()
        .expect("the holder's lease was renewed all along");
    holder.release().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut admin).unwrap();
        assert!(ttl > 0, "{key} is left without an expiry");
    }
    assert_eq!(keys, vec![format!("{}:fence", lock_key(name))]);
}

/// A program that cancels a fair wait and then drops its client (without
/// `close`; README: dropping the last `Client` does not close) while the
/// process goes on. The cancelled wait hands its departure to the watchdog
/// thread, and dropping the last handle stops that thread: if it had not
/// taken the departure yet, the waiter never leaves, and its entry (the
/// head here) is handed the lock until it runs out.
///
/// Failure seen before the fix (1 of 1 runs): "14 of 20 cancelled waiters
/// never left the queue once their client was dropped". Fixed: the
/// watchdog thread, told to stop, still runs the pending departures.
#[test]
fn a_cancelled_fair_waiter_leaves_even_when_its_client_is_dropped_at_once() {
    let server = RedisServer::start();
    let name: &'static str = "dropped-client";
    let holder_client = Client::open(&server.url()).unwrap();
    let _holder = holder_client
        .lock_with(name, fair())
        .unwrap()
        .acquire()
        .unwrap();
    let mut lingered = 0;
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        let client = Client::open(&server.url()).unwrap();
        let lock = client.lock_with(name, fair()).unwrap();
        let cancel = CancelToken::new();
        let waiting = {
            let cancel = cancel.clone();
            thread::spawn(move || {
                let outcome = lock.acquire_with(None, Some(&cancel)).map(drop);
                // The lock handle goes with the thread: the client's last
                // handle is dropped as soon as the wait returns.
                drop(lock);
                outcome
            })
        };
        let id = wait_for_arrivals(&server, name, 1)[0].clone();
        cancel.cancel();
        drop(client);
        assert_eq!(
            waiting.join().unwrap().unwrap_err().kind(),
            ErrorKind::Cancelled
        );
        // It leaves at once, or (left behind) its entry runs out after
        // 15 s: 10 s tells the two apart.
        let deadline = Instant::now() + Duration::from_secs(10);
        while arrivals(&server, name).contains(&id) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if arrivals(&server, name).contains(&id) {
            lingered += 1;
            // Clear the entry for the next round.
            let mut admin = server.admin();
            for key in [queue_key(name), order_key(name)] {
                let _: () = redis::cmd("ZREM")
                    .arg(key)
                    .arg(&id)
                    .query(&mut admin)
                    .unwrap();
            }
        }
    }
    assert_eq!(
        lingered, 0,
        "{lingered} of {ROUNDS} cancelled waiters never left the queue once their client was dropped"
    );
}

/// Redis itself stalls (SIGSTOP) for longer than a queue entry's lease
/// (15 s) while four fair waiters, in four clients, wait in order. Every
/// entry is then out of date when Redis runs again (its clock moved on),
/// so each waiter arrives anew at its next attempt, in whatever order
/// those attempts reach Redis; no waiter died or stopped. Held in 4 of 4
/// runs: the waiters' next attempts follow their re-check schedule, which
/// follows their arrival, so they re-arrive in the same order. Nothing in
/// the design guarantees that (the README bounds only what a dead or
/// stopped waiter costs), so this probe is not part of the default run; a
/// guarantee would need an entry lease that does not run while the server
/// itself stalls, a change of the queue's design.
#[test]
#[ignore = "a probe, not a guarantee: order across a Redis stall longer than the 15 s entry lease depends on the order the waiters' next attempts reach Redis (held 4 of 4 runs)"]
fn fair_waiters_keep_their_order_across_a_redis_stall_longer_than_an_entry_lease() {
    const WAITERS: usize = 4;
    let server = RedisServer::start();
    let name: &'static str = "stalled-redis";
    let holder_client = Client::open(&server.url()).unwrap();
    let holder = holder_client
        .lock_with(
            name,
            LockOptions::new().fair(true).ttl(Duration::from_secs(60)),
        )
        .unwrap()
        .acquire()
        .unwrap();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for number in 0..WAITERS {
        waiters.push(fair_waiter(&server, name, number, &taken));
        wait_for_arrivals(&server, name, number + 1);
    }
    server.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    // The condition is the stall's length itself: longer than an entry's
    // lease, with a margin.
    while stopped.elapsed() < Duration::from_secs(17) {
        thread::sleep(Duration::from_millis(100));
    }
    server.signal(libc::SIGCONT);
    // Every waiter asks again (and arrives anew) within its re-check.
    let mut admin = server.admin();
    wait_until("every waiter queued again", SETUP, || {
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query(&mut admin).unwrap();
        let now_ms = seconds * 1000 + micros / 1000;
        let live: usize = redis::cmd("ZCOUNT")
            .arg(queue_key(name))
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query(&mut admin)
            .unwrap();
        live == WAITERS
    });
    holder.release().unwrap();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    assert_eq!(
        order_of(&taken),
        (0..WAITERS).collect::<Vec<_>>(),
        "the fair waiters were served out of arrival order after a Redis stall"
    );
}
