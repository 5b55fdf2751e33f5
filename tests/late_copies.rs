//! A late copy of any command, delivered at any later moment, changes
//! nothing that belongs to a newer hold: it never shortens an expiry, never
//! removes a hold it did not create, never lowers a fencing token.
//!
//! The copies are the library's own script calls, captured with their
//! exact KEYS and ARGV by a MONITOR connection and delivered again through
//! a raw connection (EVALSHA of the same script), the way a command
//! delayed in the network would reach Redis.
//!
//! `replaying_the_past_changes_nothing` generates random sequences from
//! five handles (plain and reentrant, three with a long ttl and no
//! renewal, two auto-renewed with a short ttl so that the watchdog renews
//! during a sequence) against a real redis-server, with SAVE, restarts
//! from an older snapshot, steps that wait for the watchdog's next renewal
//! (`extend_batch.lua` when it renews several holds at once; a renewal
//! that finds a hold gone sends `announce_free.lua`) and replayed copies
//! of any earlier call, renewals and announcements included, and checks
//! after every step (see [`Run::check`]). Its
//! seed is printed; `LATCHKEY_REPLAY_SEED` replays one, and
//! `LATCHKEY_REPLAY_CASES` (default 6; `make fuzz` runs more) sets how many
//! sequences run. A failing sequence is shrunk (steps dropped while it
//! still fails) and printed; `LATCHKEY_REPLAY_ALL=1` goes on after a
//! failure and reports every failing case.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use latchkey::{Client, Guard, Lock, LockOptions};
use support::monitor::{deliver, parse_monitor_line, Command};
use support::RedisServer;

/// Every script the library sends, by file name, as it sends it (prelude
/// first), so that a restarted server knows them before a copy is replayed.
const SCRIPTS: &[(&str, &str)] = &[
    ("acquire", include_str!("../src/scripts/acquire.lua")),
    (
        "reentrant_acquire",
        include_str!("../src/scripts/reentrant_acquire.lua"),
    ),
    ("release", include_str!("../src/scripts/release.lua")),
    (
        "reentrant_release",
        include_str!("../src/scripts/reentrant_release.lua"),
    ),
    ("extend", include_str!("../src/scripts/extend.lua")),
    (
        "extend_batch",
        include_str!("../src/scripts/extend_batch.lua"),
    ),
    ("inspect", include_str!("../src/scripts/inspect.lua")),
    (
        "hold_exists",
        include_str!("../src/scripts/hold_exists.lua"),
    ),
    (
        "force_unlock",
        include_str!("../src/scripts/force_unlock.lua"),
    ),
    (
        "fenced_write",
        include_str!("../src/scripts/fenced_write.lua"),
    ),
    (
        "fenced_read",
        include_str!("../src/scripts/fenced_read.lua"),
    ),
    (
        "raise_fence",
        include_str!("../src/scripts/raise_fence.lua"),
    ),
    (
        "announce_free",
        include_str!("../src/scripts/announce_free.lua"),
    ),
    (
        "leave_queue",
        include_str!("../src/scripts/leave_queue.lua"),
    ),
];

/// Loads every script; their SHA1s (what EVALSHA names), by file name.
fn load_scripts(admin: &mut redis::Connection) -> HashMap<Vec<u8>, &'static str> {
    SCRIPTS
        .iter()
        .map(|(name, body)| {
            let text = support::script_source::assemble(body);
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(text)
                .query(admin)
                .unwrap();
            (sha.into_bytes(), *name)
        })
        .collect()
}

/// A MONITOR connection: every command the server runs, with its exact
/// arguments.
struct Monitor {
    reader: BufReader<TcpStream>,
    next_marker: u64,
    /// The start of a line a read that timed out left unfinished.
    pending: Vec<u8>,
}

impl Monitor {
    fn start(server: &RedisServer) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "MONITOR answered {line:?}");
        Monitor {
            reader,
            next_marker: 0,
            pending: Vec::new(),
        }
    }

    /// The next whole line, or the read's error (a timeout: the part read
    /// so far waits in `pending` for the next call).
    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        let read = self.reader.read_until(b'\n', &mut self.pending)?;
        assert!(read > 0, "the MONITOR connection closed");
        Ok(std::mem::take(&mut self.pending))
    }

    /// Reads the stream until a script call that `wanted` accepts has run,
    /// while `worth_waiting` says one may still come (asked every 50 ms)
    /// and for `limit` at most; then every other call up to now. Returns
    /// every script call read, and whether a wanted one came.
    fn wait_for_call(
        &mut self,
        admin: &mut redis::Connection,
        wanted: impl Fn(&Command) -> bool,
        mut worth_waiting: impl FnMut() -> bool,
        limit: Duration,
    ) -> (Vec<Command>, bool) {
        let deadline = Instant::now() + limit;
        let stream = self.reader.get_ref().try_clone().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut calls = Vec::new();
        let mut found = false;
        while !found {
            match self.read_line() {
                Ok(line) => {
                    let args = parse_monitor_line(&line);
                    if args.first().map(|a| a.to_ascii_uppercase()) == Some(b"EVALSHA".to_vec()) {
                        found = wanted(&args);
                        calls.push(args);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline || !worth_waiting() {
                        break;
                    }
                }
                Err(e) => panic!("reading the MONITOR connection: {e}"),
            }
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        calls.extend(self.script_calls_since(admin));
        (calls, found)
    }

    /// The script calls (EVALSHA) the server ran since the last call (a
    /// copy `admin` delivered among them); `admin` sends a marker to know
    /// where "now" is in the stream.
    fn script_calls_since(&mut self, admin: &mut redis::Connection) -> Vec<Command> {
        self.next_marker += 1;
        let marker = format!("late-copies-marker-{}", self.next_marker);
        let _: String = redis::cmd("ECHO").arg(&marker).query(admin).unwrap();
        let mut calls = Vec::new();
        loop {
            let line = self.read_line().unwrap();
            let args = parse_monitor_line(&line);
            match args.first().map(|a| a.to_ascii_uppercase()) {
                Some(name)
                    if name == b"ECHO" && args.get(1) == Some(&marker.clone().into_bytes()) =>
                {
                    return calls
                }
                Some(name) if name == b"EVALSHA" => calls.push(args),
                _ => {}
            }
        }
    }
}

/// The first captured script call whose KEYS[1] is the lock `name`.
fn call_on(calls: &[Command], name: &str) -> Command {
    let key = format!("latchkey:{{{name}}}").into_bytes();
    calls
        .iter()
        .find(|c| c.get(3) == Some(&key))
        .cloned()
        .unwrap_or_else(|| panic!("no script call on {name} among {} captured", calls.len()))
}

fn lock_key(name: &str) -> String {
    format!("latchkey:{{{name}}}")
}

fn pttl(admin: &mut redis::Connection, name: &str) -> i64 {
    redis::cmd("PTTL").arg(lock_key(name)).query(admin).unwrap()
}

/// Whether the hold of `guard` is in Redis.
fn hold_present(admin: &mut redis::Connection, name: &str, guard: &Guard, reentrant: bool) -> bool {
    let key = lock_key(name);
    let kind: String = redis::cmd("TYPE").arg(&key).query(admin).unwrap();
    if reentrant {
        kind == "hash"
            && redis::cmd("HEXISTS")
                .arg(&key)
                .arg(format!("h:{}", guard.token()))
                .query::<i64>(admin)
                .unwrap()
                == 1
    } else {
        kind == "string"
            && redis::cmd("GET").arg(&key).query::<String>(admin).unwrap() == guard.token()
    }
}

fn options(reentrant: bool) -> LockOptions {
    LockOptions::new()
        .ttl(Duration::from_secs(5))
        .auto_renew(false)
        .reentrant(reentrant)
}

fn save(admin: &mut redis::Connection) {
    let () = redis::cmd("SAVE").query(admin).unwrap();
}

// ---------------------------------------------------------------------------
// Findings 1-4, one test each.

/// Finding 1. Before the fix (acquire.lua's "already ours" branch ran
/// PEXPIRE with the attempt's ttl) the copy cut the 60 s lease back to 2 s
/// and another owner took the lock 2 s later while the guard still counted
/// 56 s: failed 3 of 3 runs ("the late copy cut the lease in Redis to 2002
/// ms below the guard's 59.39s").
#[test]
fn a_late_copy_of_an_acquire_never_shortens_an_extended_lease() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let name = "late-acquire";
    let lock = client
        .lock_with(
            name,
            LockOptions::new()
                .ttl(Duration::from_secs(2))
                .auto_renew(false),
        )
        .unwrap();
    let guard = lock.try_acquire().unwrap().unwrap();
    // The attempt that timed out and was retried with the same hold token:
    // the very call the library sent, still on its way.
    let copy = call_on(&monitor.script_calls_since(&mut admin), name);
    guard.extend(Duration::from_secs(60)).unwrap();
    deliver(&mut admin, &copy);
    let before = Instant::now();
    let remaining = guard.remaining();
    let left = pttl(&mut admin, name) + before.elapsed().as_millis() as i64 + 2;
    assert!(
        left >= remaining.as_millis() as i64,
        "the late copy cut the lease in Redis to {left} ms below the guard's {remaining:?}"
    );
    let other = client.lock(name).unwrap();
    assert!(other.try_acquire().unwrap().is_none(), "two holders");
    guard.release().unwrap();
}

/// Finding 2. Before the fix the copy (sent with no live hold, ARGV[6] =
/// '0') took the "stale tenure" branch, deleted the key with hold Y's
/// field and installed its own abandoned hold: failed 3 of 3 runs ("hold Y
/// removed by a late copy").
#[test]
fn a_late_reentrant_acquire_never_removes_a_live_hold_of_its_handle() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let name = "late-reentrant";
    let lock = client.lock_with(name, options(true)).unwrap();
    let first = lock.try_acquire().unwrap().unwrap();
    let copy = call_on(&monitor.script_calls_since(&mut admin), name);
    first.release().unwrap();
    let y = lock.try_acquire().unwrap().unwrap();
    deliver(&mut admin, &copy);
    assert!(
        hold_present(&mut admin, name, &y, true),
        "hold Y removed by a late copy"
    );
    assert!(y.confirm().unwrap());
    let before = Instant::now();
    let remaining = y.remaining();
    assert!(
        pttl(&mut admin, name) + before.elapsed().as_millis() as i64 + 2
            >= remaining.as_millis() as i64
    );
    let token = y.fencing_token();
    let nested = lock.try_acquire().unwrap().unwrap();
    assert!(
        nested.fencing_token() >= token,
        "a nested hold's token went down"
    );
    drop(nested);
    y.release().unwrap();
}

/// Finding 3. Before the fix the nested acquire C nested into the restored
/// tenure of hold A: C got A's token, below B's, its fenced write was
/// refused, and A's long-released field kept the name locked after C's
/// release: failed 3 of 3 runs ("C's token 1796601460270491 is not above
/// B's 1796601460321264").
#[test]
fn a_nested_acquire_after_a_restart_from_an_older_snapshot_gets_a_higher_token() {
    let mut server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let name = "late-snapshot";
    let lock = client.lock_with(name, options(true)).unwrap();
    let a = lock.try_acquire().unwrap().unwrap();
    save(&mut server.admin());
    a.release().unwrap();
    let b = lock.try_acquire().unwrap().unwrap();
    assert!(
        b.fenced_write("late-snapshot-resource", b"b")
            .unwrap()
            .written
    );
    server.restart();
    support::warm_up(&client);
    // B is still live for its handle: this acquire nests.
    let c = lock.try_acquire().unwrap().unwrap();
    assert!(
        c.fencing_token() > b.fencing_token(),
        "C's token {} is not above B's {}",
        c.fencing_token(),
        b.fencing_token()
    );
    // (The resource lives on the restarted server too: it was written
    // after the snapshot, so it is gone; write it again with B's token, as
    // a resource elsewhere would still have it.)
    assert!(
        client
            .fenced_write("late-snapshot-resource", b.fencing_token(), b"b")
            .unwrap()
            .written
    );
    assert!(
        c.fenced_write("late-snapshot-resource", b"c")
            .unwrap()
            .written,
        "C's fenced write was refused"
    );
    c.release().unwrap();
    let _ = b.release();
    let other = client.lock_with(name, options(true)).unwrap();
    assert!(
        other.try_acquire().unwrap().is_some(),
        "a long-released hold kept the name locked"
    );
}

/// Finding 4. Before the fix each master kept its own tenure `fence`
/// field (the write-back raised only the counters): with the master that
/// issued the highest token down, a nested hold got a lower token than the
/// tenure's first hold and its fenced write was refused: failed 3 of 3
/// runs ("nested token 1796601461427385 below the tenure's first
/// 9000000000000001").
#[test]
fn a_redlock_tenure_never_hands_a_nested_hold_a_lower_token() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls)
        // Fresh test servers: no restart to wait out.
        .redlock_restart_delay(Duration::ZERO)
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let name = "late-redlock";
    // Master 0's counter runs far ahead (its clock, or tokens it issued
    // while the others were away): it issues the highest token.
    let ahead: u64 = 9_000_000_000_000_000;
    let () = redis::cmd("SET")
        .arg(format!("latchkey:{{{name}}}:fence"))
        .arg(ahead)
        .query(&mut servers[0].admin())
        .unwrap();
    let lock = client.lock_with(name, options(true)).unwrap();
    let first = lock.try_acquire().unwrap().unwrap();
    assert!(first.fencing_token() > ahead);
    assert!(
        first
            .fenced_write("late-redlock-resource", b"first")
            .unwrap()
            .written
    );
    servers[0].kill();
    let nested = lock.acquire_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        nested.fencing_token() >= first.fencing_token(),
        "nested token {} below the tenure's first {}",
        nested.fencing_token(),
        first.fencing_token()
    );
    assert!(
        nested
            .fenced_write("late-redlock-resource", b"nested")
            .unwrap()
            .written,
        "the nested hold's fenced write was refused"
    );
    drop(nested);
    drop(first);
}

/// A force-unlock names the holder it saw; for a reentrant lock that was
/// only the handle's token, so a late copy deleted the same handle's next
/// tenure. Before the fix (force_unlock.lua compared only the owner): failed
/// 2 of 2 runs ("the next tenure's hold removed by a late force-unlock").
#[test]
fn a_late_force_unlock_never_breaks_the_next_tenure_of_the_same_handle() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    let name = "late-force";
    let lock = client.lock_with(name, options(true)).unwrap();
    let first = lock.try_acquire().unwrap().unwrap();
    monitor.script_calls_since(&mut admin);
    assert!(client.force_unlock(name).unwrap());
    let calls = monitor.script_calls_since(&mut admin);
    // The inspect, then the unlock: the unlock is the last call.
    let copy = calls.last().cloned().unwrap();
    drop(first);
    let next = lock.try_acquire().unwrap().unwrap();
    deliver(&mut admin, &copy);
    assert!(
        hold_present(&mut admin, name, &next, true),
        "the next tenure's hold removed by a late force-unlock"
    );
    next.release().unwrap();
}

/// Found by the generator (seed 777, case 117 of 200, shrunk to: handle 1
/// acquires A, SAVE, force-unlock, restart, handle 1 acquires B, the
/// force-unlock's copy arrives). The restart brings back the tenure the
/// force-unlock deleted; the handle never learned of the force-unlock (A
/// is not auto-renewed), so B nests into that tenure and gets its token,
/// and the late copy, naming that tenure, deletes it with B: B's guard
/// says held while the lock is free. Nothing in Redis or in the handle
/// tells this tenure from one the force-unlock never reached (the
/// snapshot predates the force-unlock, and the handle's highest token is
/// the tenure's own), and the copy breaks what the force-unlock named, as
/// the force-unlock would have had it arrived late the first time.
/// Failed 3 of 3 runs ("hold B removed by the late force-unlock").
#[test]
#[ignore = "finding: a late force-unlock after a restart from a snapshot older than the force-unlock deletes the tenure it named again, with the hold the handle nested into it since (B's guard says held, the key is gone); no small script fix: nothing distinguishes the restored tenure from one never force-unlocked"]
fn a_late_force_unlock_after_a_restart_breaks_a_hold_nested_into_the_tenure_it_named() {
    let mut server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let name = "late-force-restart";
    let lock = client.lock_with(name, options(true)).unwrap();
    let a = lock.try_acquire().unwrap().unwrap();
    save(&mut server.admin());
    let mut admin = server.admin();
    let mut monitor = Monitor::start(&server);
    assert!(client.force_unlock(name).unwrap());
    let copy = monitor
        .script_calls_since(&mut admin)
        .last()
        .cloned()
        .unwrap();
    server.restart();
    support::warm_up(&client);
    let mut admin = server.admin();
    load_scripts(&mut admin);
    let b = lock.try_acquire().unwrap().unwrap();
    assert_eq!(
        b.fencing_token(),
        a.fencing_token(),
        "B nested into A's tenure"
    );
    deliver(&mut admin, &copy);
    assert!(
        hold_present(&mut admin, name, &b, true),
        "hold B removed by the late force-unlock"
    );
    drop(b);
    drop(a);
}

/// Found by the generator (seed 4242, case 188 of 200, shrunk to: handle 1
/// acquires A, SAVE, force-unlock, handle 2 acquires C, restart, handle 1
/// acquires B). The restart brings back A's tenure (and the fence counter
/// of the snapshot, below C's token); the handle never learned of the
/// force-unlock, so B nests into the tenure and gets A's token, below C's,
/// which another owner was issued before the restart. B's fenced writes are
/// then refused where C wrote (the fence does its job); nothing in Redis or
/// in the handle tells this tenure from one the force-unlock never reached.
/// Failed 3 of 3 runs ("B's token ... is not above C's ...").
#[test]
#[ignore = "finding: after a restart from a snapshot older than a force-unlock, the handle nests into the restored tenure and its new hold gets that tenure's token, below a token another owner was issued between the force-unlock and the restart; no small script fix: nothing distinguishes the restored tenure"]
fn a_hold_nested_into_a_force_unlocked_tenure_restored_by_a_restart_gets_a_higher_token() {
    let mut server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let name = "force-restart-token";
    let lock = client.lock_with(name, options(true)).unwrap();
    let a = lock.try_acquire().unwrap().unwrap();
    save(&mut server.admin());
    assert!(client.force_unlock(name).unwrap());
    let other = client.lock_with(name, options(true)).unwrap();
    let c = other.try_acquire().unwrap().unwrap();
    server.restart();
    support::warm_up(&client);
    let b = lock.try_acquire().unwrap().unwrap();
    assert!(
        b.fencing_token() > c.fencing_token(),
        "B's token {} is not above C's {}",
        b.fencing_token(),
        c.fencing_token()
    );
    drop((a, b, c));
}

// ---------------------------------------------------------------------------
// The generator.

/// A tiny xorshift64* generator: seeded, reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The handles: 0 is a plain lock, 1 and 2 reentrant ones, all with a 5 s
/// ttl and no renewal; 3 is a plain lock and 4 a reentrant one, both
/// auto-renewed with a short ttl, so the watchdog renews them during a
/// sequence (five owners).
const HANDLES: usize = 5;

fn reentrant(handle: usize) -> bool {
    matches!(handle, 1 | 2 | 4)
}

fn renewed(handle: usize) -> bool {
    handle >= 3
}

/// The ttl of the auto-renewed handles: the watchdog renews a third of it
/// after each confirmation.
const RENEWED_TTL: Duration = Duration::from_secs(1);

fn handle_options(handle: usize) -> LockOptions {
    if renewed(handle) {
        LockOptions::new()
            .ttl(RENEWED_TTL)
            .auto_renew(true)
            .reentrant(reentrant(handle))
    } else {
        options(reentrant(handle))
    }
}

/// How far an Extend step extends a guard: 30 s, or twice the short ttl
/// for an auto-renewed handle (the watchdog renews with the extended ttl
/// from then on; 30 s would leave nothing to renew during a sequence).
fn extension(handle: usize) -> Duration {
    if renewed(handle) {
        RENEWED_TTL * 2
    } else {
        Duration::from_secs(30)
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// An acquire (a nested one when the handle holds).
    Acquire(usize),
    /// Two acquires back to back: a reentrant handle's two holds then come
    /// due for renewal together, and the watchdog renews them in one
    /// `extend_batch.lua`.
    AcquireTwice(usize),
    /// Releases one of the handle's guards.
    Release(usize, u32),
    /// Extends one of the handle's guards (see [`extension`]).
    Extend(usize, u32),
    /// A fenced write through one of the handle's guards.
    FencedWrite(usize, u32),
    ForceUnlock,
    Save,
    /// kill -9, start again from the last snapshot (if any).
    Restart,
    /// Waits until the watchdog's next renewal has run (while an
    /// auto-renewed guard still holds).
    Renew,
    /// Delivers again one call captured during step `step`.
    Replay {
        step: usize,
        which: u32,
    },
    /// Delivers again one of the renewals (`extend_batch.lua`,
    /// `extend.lua`) or announcements (`announce_free.lua`) captured so far.
    ReplayRenewal(u32),
}

/// One step with the id it was generated with (a replay names its
/// source by that id, so dropping steps keeps the others' meaning).
#[derive(Clone, Debug)]
struct Numbered {
    id: usize,
    step: Step,
}

fn generate(rng: &mut Rng, len: usize) -> Vec<Numbered> {
    // Steps mostly stay with the handle of the step before: the findings
    // are stories of one handle (acquire, save, release, acquire, restart,
    // acquire), which a uniform choice would rarely tell.
    let mut handle = rng.below(HANDLES as u64) as usize;
    (0..len)
        .map(|id| {
            if rng.below(10) < 3 {
                handle = rng.below(HANDLES as u64) as usize;
            }
            let index = rng.below(4) as u32;
            let step = match rng.below(100) {
                0..=15 => Step::Acquire(handle),
                16..=21 if reentrant(handle) => Step::AcquireTwice(handle),
                16..=21 => Step::Acquire(handle),
                22..=31 => Step::Release(handle, index),
                32..=39 => Step::Extend(handle, index),
                40..=44 => Step::FencedWrite(handle, index),
                45..=47 => Step::ForceUnlock,
                48..=55 => Step::Save,
                56..=61 => Step::Restart,
                62..=69 => Step::Renew,
                70..=77 => Step::ReplayRenewal(rng.below(64) as u32),
                _ if id > 0 => Step::Replay {
                    step: rng.below(id as u64) as usize,
                    which: rng.below(8) as u32,
                },
                _ => Step::Acquire(handle),
            };
            Numbered { id, step }
        })
        .collect()
}

/// One guard the run holds, and what the checker knows about it.
struct Held {
    guard: Guard,
    /// Created before a restart: Redis may have forgotten it (a restart
    /// loses data by design), so it no longer counts for the invariants.
    before_restart: bool,
    /// Removed by a force-unlock (by design).
    broken: bool,
    /// Nested into a tenure a force-unlock broke and a restart brought
    /// back (the README's force-unlock row: a known gap): it has that
    /// tenure's token, and a late copy of the force-unlock may break it.
    in_restored_broken_tenure: bool,
}

impl Held {
    /// Whether this guard says it holds the lock, and Redis is expected to
    /// agree: not lost, not before a restart, not force-unlocked, and with
    /// some validity left (so an expiry in flight is no finding).
    fn counts(&self) -> bool {
        !self.before_restart
            && !self.broken
            && !self.in_restored_broken_tenure
            && self.guard.check().is_ok()
            && self.guard.remaining() > Duration::from_millis(200)
    }
}

const NAME: &str = "replayed";

struct Run {
    server: RedisServer,
    client: Client,
    admin: redis::Connection,
    monitor: Monitor,
    /// The scripts by SHA1, to tell the captured calls apart.
    scripts: HashMap<Vec<u8>, &'static str>,
    locks: Vec<Lock>,
    held: Vec<Vec<Held>>,
    /// The script calls each step made, by step id.
    captured: HashMap<usize, Vec<Command>>,
    /// Every renewal and announcement captured, in order (whatever step
    /// ran meanwhile: the watchdog sends them on its own).
    renewals: Vec<Command>,
    /// Every fencing token issued to a guard, with its handle.
    tokens: Vec<(usize, u64)>,
    /// How many calls of each script were captured and replayed, to see
    /// what the sequences cover.
    counts: BTreeMap<String, usize>,
}

/// The script a captured EVALSHA names.
fn script_of<'a>(scripts: &HashMap<Vec<u8>, &'a str>, call: &Command) -> &'a str {
    call.get(1)
        .and_then(|sha| scripts.get(sha))
        .map_or("", |s| s)
}

impl Run {
    fn new() -> Run {
        let server = RedisServer::start();
        let client = Client::builder(&server.url())
            .command_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut admin = server.admin();
        let scripts = load_scripts(&mut admin);
        let monitor = Monitor::start(&server);
        let locks = (0..HANDLES)
            .map(|h| client.lock_with(NAME, handle_options(h)).unwrap())
            .collect();
        Run {
            server,
            client,
            admin,
            monitor,
            scripts,
            locks,
            held: (0..HANDLES).map(|_| Vec::new()).collect(),
            captured: HashMap::new(),
            renewals: Vec::new(),
            tokens: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: &str, call: &Command) {
        let script = script_of(&self.scripts, call);
        *self.counts.entry(format!("{what} {script}")).or_default() += 1;
    }

    fn pick(&self, handle: usize, index: u32) -> Option<usize> {
        let n = self.held[handle].len();
        (n > 0).then(|| index as usize % n)
    }

    /// One acquire by handle `h`, checked: its token, and that no other
    /// owner still holds.
    fn acquire(&mut self, h: usize) -> Result<(), String> {
        let nested = self.held[h].iter().any(|x| x.guard.check().is_ok());
        if let Ok(Some(guard)) = self.locks[h].try_acquire() {
            let token = guard.fencing_token();
            let own = self
                .tokens
                .iter()
                .filter(|(o, _)| *o == h)
                .map(|(_, t)| *t)
                .max();
            let others = self
                .tokens
                .iter()
                .filter(|(o, _)| *o != h)
                .map(|(_, t)| *t)
                .max();
            let all = own.max(others);
            // Nesting into a tenure a force-unlock broke and a restart
            // brought back gets that tenure's token, whatever other owners
            // got in between (see
            // `a_hold_nested_into_a_force_unlocked_tenure_restored_by_a_restart_gets_a_higher_token`).
            // Every nested hold of that tenure, the first one's release
            // notwithstanding (seed 1796617259524701891, case 4: the hold
            // from before the restart was released, then the handle
            // nested again into the tenure its later holds kept alive).
            let into_broken = self.held[h].iter().any(|x| {
                x.guard.fencing_token() == token
                    && (x.broken && x.before_restart || x.in_restored_broken_tenure)
            });
            if nested && reentrant(h) {
                if own.is_some_and(|own| token < own) {
                    return Err(format!(
                        "nested hold of handle {h} got token {token}, below the handle's {own:?}"
                    ));
                }
                if !into_broken && others.is_some_and(|o| token <= o) {
                    return Err(format!(
                        "nested hold of handle {h} got token {token}, not above another owner's {others:?}"
                    ));
                }
            } else if all.is_some_and(|a| token <= a) {
                return Err(format!(
                    "handle {h} got token {token}, not above {all:?} issued before"
                ));
            }
            let owners: Vec<usize> = (0..HANDLES)
                .filter(|&o| o != h && self.held[o].iter().any(Held::counts))
                .collect();
            if !owners.is_empty() {
                return Err(format!(
                    "handle {h} acquired while handle(s) {owners:?} hold the lock"
                ));
            }
            self.tokens.push((h, token));
            self.held[h].push(Held {
                guard,
                before_restart: false,
                broken: false,
                in_restored_broken_tenure: nested && reentrant(h) && into_broken,
            });
        }
        Ok(())
    }

    /// Runs one step; `Err` names the invariant it broke.
    fn step(&mut self, numbered: &Numbered) -> Result<(), String> {
        let mut may_remove = false;
        let mut calls = Vec::new();
        // The copy a replay delivers: MONITOR shows it too, and it is no
        // call of the library's.
        let mut delivered = None;
        match &numbered.step {
            Step::Acquire(h) => self.acquire(*h)?,
            Step::AcquireTwice(h) => {
                self.acquire(*h)?;
                self.acquire(*h)?;
            }
            Step::Release(h, i) => {
                if let Some(i) = self.pick(*h, *i) {
                    let _ = self.held[*h].remove(i).guard.release();
                }
            }
            Step::Extend(h, i) => {
                if let Some(i) = self.pick(*h, *i) {
                    let _ = self.held[*h][i].guard.extend(extension(*h));
                }
            }
            Step::FencedWrite(h, i) => {
                if let Some(i) = self.pick(*h, *i) {
                    let _ = self.held[*h][i]
                        .guard
                        .fenced_write("replayed-resource", b"v");
                }
            }
            Step::ForceUnlock => {
                may_remove = true;
                let _ = self.client.force_unlock(NAME);
            }
            Step::Save => save(&mut self.admin),
            Step::Restart => {
                self.server.restart();
                self.admin = self.server.admin();
                load_scripts(&mut self.admin);
                self.monitor = Monitor::start(&self.server);
                for held in self.held.iter_mut().flatten() {
                    held.before_restart = true;
                }
            }
            Step::Renew => {
                // Waits on the renewal itself, not on a clock: it comes a
                // third of the ttl after the last one, later under load,
                // and never once every auto-renewed guard has ended (then
                // waiting is pointless).
                let scripts = &self.scripts;
                let held = &self.held;
                let (during, _) = self.monitor.wait_for_call(
                    &mut self.admin,
                    |call| matches!(script_of(scripts, call), "extend" | "extend_batch"),
                    || {
                        (0..HANDLES)
                            .filter(|&h| renewed(h))
                            .any(|h| held[h].iter().any(|x| x.guard.check().is_ok()))
                    },
                    Duration::from_secs(10),
                );
                calls = during;
            }
            Step::Replay { step, which } => {
                if let Some(calls) = self.captured.get(step).filter(|c| !c.is_empty()) {
                    let call = calls[*which as usize % calls.len()].clone();
                    self.count("replayed", &call);
                    deliver(&mut self.admin, &call);
                    delivered = Some(call);
                }
            }
            Step::ReplayRenewal(which) => {
                if !self.renewals.is_empty() {
                    let call = self.renewals[*which as usize % self.renewals.len()].clone();
                    self.count("replayed", &call);
                    deliver(&mut self.admin, &call);
                    delivered = Some(call);
                }
            }
        }
        calls.extend(self.monitor.script_calls_since(&mut self.admin));
        let delivered_holder = delivered
            .as_ref()
            .filter(|copy| script_of(&self.scripts, copy) == "force_unlock")
            .and_then(|copy| copy.get(5))
            .map(|holder| String::from_utf8_lossy(holder).into_owned());
        if let Some(copy) = delivered {
            if let Some(i) = calls.iter().position(|c| *c == copy) {
                calls.remove(i);
            }
        }
        for call in &calls {
            self.count("captured", call);
        }
        self.renewals.extend(
            calls
                .iter()
                .filter(|call| {
                    matches!(
                        script_of(&self.scripts, call),
                        "extend" | "extend_batch" | "announce_free"
                    )
                })
                .cloned(),
        );
        if !matches!(numbered.step, Step::Replay { .. } | Step::ReplayRenewal(_)) {
            self.captured.insert(numbered.id, calls);
        }
        // A late force-unlock removes the holder it names, as the
        // force-unlock itself did: after a restart from a snapshot older
        // than that force-unlock brought the named tenure back, the
        // handle's next acquire nests into it and the copy breaks that
        // nested hold too (see
        // `a_late_force_unlock_after_a_restart_breaks_a_hold_nested_into_the_tenure_it_named`).
        self.check(may_remove, delivered_holder.as_deref())
    }

    /// After every step: every hold a guard counts on is in Redis (unless
    /// the step was a force-unlock), the key lives at least as long as any
    /// such guard believes, and at most one owner's guards say held.
    /// `named`: the holder a replayed force-unlock named (a plain hold's
    /// token, or `owner:fencing token` of a reentrant tenure); its holds
    /// may go.
    fn check(&mut self, may_remove: bool, named: Option<&str>) -> Result<(), String> {
        let mut longest = Duration::ZERO;
        let started = Instant::now();
        for h in 0..HANDLES {
            for i in 0..self.held[h].len() {
                if !self.held[h][i].counts() {
                    // A force-unlock breaks uncounted holds too (one from
                    // before a restart that Redis kept): remember it, for
                    // the tenure a later restart may bring back.
                    if may_remove
                        && !hold_present(
                            &mut self.admin,
                            NAME,
                            &self.held[h][i].guard,
                            reentrant(h),
                        )
                    {
                        self.held[h][i].broken = true;
                    }
                    continue;
                }
                let asked = Instant::now();
                let remaining = self.held[h][i].guard.remaining();
                let present =
                    hold_present(&mut self.admin, NAME, &self.held[h][i].guard, reentrant(h));
                let guard = &self.held[h][i].guard;
                let is_named = named.is_some_and(|named| {
                    if reentrant(h) {
                        named.ends_with(&format!(":{}", guard.fencing_token()))
                    } else {
                        named == guard.token()
                    }
                });
                if !present {
                    if may_remove || is_named {
                        self.held[h][i].broken = true;
                        continue;
                    }
                    // Redis keeps a hold at least as long as its guard's
                    // validity: gone only once that has passed (a check
                    // that stalled under load) is an expiry, no finding.
                    if asked.elapsed() >= remaining {
                        continue;
                    }
                    return Err(format!(
                        "hold {} of handle {h} (token {}) vanished, though its guard says held",
                        self.held[h][i].guard.token(),
                        self.held[h][i].guard.fencing_token()
                    ));
                }
                longest = longest.max(self.held[h][i].guard.remaining());
            }
        }
        if longest > Duration::ZERO {
            let left = pttl(&mut self.admin, NAME) + started.elapsed().as_millis() as i64 + 2;
            if left < longest.as_millis() as i64 {
                return Err(format!(
                    "the key lives {left} ms, less than the {longest:?} a guard counts on"
                ));
            }
        }
        let owners: Vec<usize> = (0..HANDLES)
            .filter(|&h| self.held[h].iter().any(Held::counts))
            .collect();
        if owners.len() > 1 {
            return Err(format!("owners {owners:?} all say held"));
        }
        Ok(())
    }
}

/// Runs `steps` on a fresh server; the first broken invariant, with the
/// step that broke it.
fn run(steps: &[Numbered]) -> Result<(), String> {
    run_counting(steps, &mut BTreeMap::new())
}

/// As [`run`], adding to `counts` how many calls of each script were
/// captured and replayed.
fn run_counting(steps: &[Numbered], counts: &mut BTreeMap<String, usize>) -> Result<(), String> {
    let mut run = Run::new();
    let outcome = steps.iter().try_for_each(|numbered| {
        run.step(numbered)
            .map_err(|e| format!("after step {} {:?}: {e}", numbered.id, numbered.step))
    });
    for (what, n) in &run.counts {
        *counts.entry(what.clone()).or_default() += n;
    }
    outcome
}

/// Drops steps one at a time while the sequence still fails, pass after
/// pass until no single step can go.
fn shrink(mut steps: Vec<Numbered>, mut failure: String) -> (Vec<Numbered>, String) {
    let mut budget = 200;
    loop {
        let mut dropped = false;
        let mut i = steps.len();
        while i > 0 && budget > 0 {
            i -= 1;
            let mut fewer = steps.clone();
            fewer.remove(i);
            budget -= 1;
            if let Err(e) = run(&fewer) {
                steps = fewer;
                failure = e;
                dropped = true;
            }
        }
        if !dropped || budget == 0 {
            return (steps, failure);
        }
    }
}

#[test]
fn replaying_the_past_changes_nothing() {
    let cases: usize = std::env::var("LATCHKEY_REPLAY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("LATCHKEY_REPLAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("LATCHKEY_REPLAY_SEED={seed} LATCHKEY_REPLAY_CASES={cases}");
    // LATCHKEY_REPLAY_ALL=1 runs every case and reports each failure
    // (to see every kind of finding at once), instead of the first.
    let all = std::env::var("LATCHKEY_REPLAY_ALL").is_ok_and(|v| v == "1");
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for case in 0..cases {
        let steps = generate(&mut rng, 30);
        if let Err(failure) = run_counting(&steps, &mut counts) {
            let (steps, failure) = shrink(steps, failure);
            let listing: Vec<String> = steps
                .iter()
                .map(|s| format!("  {} {:?}", s.id, s.step))
                .collect();
            let report = format!(
                "case {case} of seed {seed} failed; shrunk to {} steps:\n{}\n{failure}",
                steps.len(),
                listing.join("\n")
            );
            println!("{report}");
            failures.push(report);
            if !all {
                break;
            }
        }
    }
    // What the sequences covered (the watchdog's calls depend on timing).
    let covered: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!("script calls: {}", covered.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
