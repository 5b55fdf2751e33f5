//! latchkey-rust benchmarks, run by `bench/run.sh` (`make bench`). Every
//! subcommand prints JSON lines, one per result row; every latency is a
//! median over batches, shown next to the floor (a plain `PING` round trip
//! on one connection) measured interleaved in the same process.
//!
//! ```text
//! latchkey-bench cycle URL CYCLES         floor, latchkey cycle and the bare
//!                                         Lua scripts, interleaved
//! latchkey-bench handoff URL ROUNDS       release -> waiter in another
//!                                         process, latchkey and the bare
//!                                         pub/sub handoff, interleaved
//! latchkey-bench many-locks URL THREADS SECONDS FLOOR_OPS_PER_S
//!                                         N threads, one lock each
//! latchkey-bench renewal URL LEASES SECONDS [TTL_SECONDS (default 3)]
//!                                         LEASES auto-renewed leases held
//! latchkey-bench cycle-redlock SCENARIO CYCLES URL...
//!                                         Redlock cycle (hook, see below)
//! latchkey-bench residue URL NAMES RETENTION_MS
//!                                         keys and memory left in Redis by
//!                                         NAMES names taken once (a server
//!                                         of its own)
//! latchkey-bench cycle-redlock-down SCENARIO CYCLES DOWN URL...
//!                                         Redlock cycle with DOWN of the
//!                                         masters blackholed, next to the
//!                                         cycle with all of them up
//! latchkey-bench floor-raw URL PINGS       PING on a plain socket, read
//!                                         blocking and spinning
//! latchkey-bench herd URL WAITERS HANDOFFS [fair]
//!                                         WAITERS+1 threads (4 clients)
//!                                         contend for one lock: scripts
//!                                         per handoff, handoff latency,
//!                                         fairness (`herd-32`, `herd-256`;
//!                                         `herd-fair-N` for a fair lock)
//! latchkey-bench drain URL WAITERS HANDOFFS [fair]
//!                                         WAITERS parked waiters take the
//!                                         lock down the queue: scripts of
//!                                         the handoffs alone (`drain-N`)
//! latchkey-bench family URL CYCLES        the rest of the family's cycles
//!                                         (semaphore, read and write sides
//!                                         of a read-write lock, a 2-lock
//!                                         multi-lock), interleaved with the
//!                                         floor and the lock's cycle
//! latchkey-bench rwlock-read URL THREADS SECONDS
//!                                         THREADS readers (a client each)
//!                                         cycling one read-write lock,
//!                                         next to THREADS cycling a lock
//! latchkey-bench election-failover URL ROUNDS TTL_MS
//!                                         a leader stops renewing (as if
//!                                         killed) right after its election:
//!                                         the time until a waiting
//!                                         candidate leads, against the ttl
//! latchkey-bench waiter URL NAME          (internal) the waiter of `handoff`
//! latchkey-bench bare-waiter URL          (internal) the bare waiter of `handoff`
//! latchkey-bench contend URL NAME START_NS END_NS COUNTER_FILE
//!                                         (internal) one contender of
//!                                         `contended-4` (bench/contend.py)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::{Client, Guard, LockOptions};

/// Samples are cut into this many consecutive batches; a figure is the
/// median of the batch medians, its spread the smallest and largest batch
/// median.
const BATCHES: usize = 10;

/// How long a handoff waiter is left parked before the release, and the
/// holder's floor PING is taken right after that pause, so that both see the
/// same idle machine (on a VM, waking an idle process costs tens of µs).
const SETTLE: Duration = Duration::from_millis(1);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let result = match (arg(1), args.len()) {
        ("cycle", 4) => arg(3)
            .parse()
            .map_err(Into::into)
            .and_then(|n| cycle(arg(2), n)),
        ("handoff", 4) => arg(3)
            .parse()
            .map_err(Into::into)
            .and_then(|n| handoff(arg(2), n)),
        ("many-locks", 6) => many_locks(&args[2..]),
        ("renewal", 5 | 6) => renewal(&args[2..]),
        ("cycle-redlock", n) if n >= 5 => arg(3)
            .parse()
            .map_err(Into::into)
            .and_then(|cycles| cycle_redlock(arg(2), cycles, &args[4..])),
        ("residue", 5) => residue(&args[2..]),
        ("cycle-redlock-down", n) if n >= 8 => match (arg(3).parse(), arg(4).parse()) {
            (Ok(cycles), Ok(down)) => cycle_redlock_down(arg(2), cycles, down, &args[5..]),
            _ => Err("CYCLES and DOWN must be numbers".into()),
        },
        ("floor-raw", 4) => arg(3)
            .parse()
            .map_err(Into::into)
            .and_then(|n| floor_raw(arg(2), n)),
        ("herd", 5 | 6) => match (
            arg(3).parse(),
            arg(4).parse(),
            args.get(5).map(String::as_str),
        ) {
            (Ok(waiters), Ok(handoffs), None) => herd(arg(2), waiters, handoffs, false),
            (Ok(waiters), Ok(handoffs), Some("fair")) => herd(arg(2), waiters, handoffs, true),
            _ => Err("WAITERS and HANDOFFS must be numbers, then optionally `fair`".into()),
        },
        ("drain", 5 | 6) => match (
            arg(3).parse(),
            arg(4).parse(),
            args.get(5).map(String::as_str),
        ) {
            (Ok(waiters), Ok(handoffs), None) => drain(arg(2), waiters, handoffs, false),
            (Ok(waiters), Ok(handoffs), Some("fair")) => drain(arg(2), waiters, handoffs, true),
            _ => Err("WAITERS and HANDOFFS must be numbers, then optionally `fair`".into()),
        },
        ("family", 4) => arg(3)
            .parse()
            .map_err(Into::into)
            .and_then(|n| family(arg(2), n)),
        ("rwlock-read", 5) => match (arg(3).parse(), arg(4).parse()) {
            (Ok(threads), Ok(seconds)) => rwlock_read(arg(2), threads, seconds),
            _ => Err("THREADS and SECONDS must be numbers".into()),
        },
        ("election-failover", 5) => match (arg(3).parse(), arg(4).parse()) {
            (Ok(rounds), Ok(ttl_ms)) => election_failover(arg(2), rounds, ttl_ms),
            _ => Err("ROUNDS and TTL_MS must be numbers".into()),
        },
        ("waiter", 4) => waiter(arg(2), arg(3)),
        ("bare-waiter", 3) => bare_waiter(arg(2)),
        ("contend", 7) => contend(&args[2..]),
        _ => Err("usage: see the comment at the top of bench/rust/main.rs".into()),
    };
    if let Err(e) = result {
        eprintln!("latchkey-bench: {e}");
        std::process::exit(1);
    }
}

// --- clocks, statistics, output ------------------------------------------------

/// CLOCK_MONOTONIC in ns: comparable between processes on one machine.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until_ns(t: u64) {
    let now = monotonic_ns();
    if t > now {
        std::thread::sleep(Duration::from_nanos(t - now));
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

struct Stats {
    median_us: f64,
    mean_us: f64,
    p90_us: f64,
    /// Smallest and largest batch median.
    spread_us: (f64, f64),
    samples: usize,
}

/// Samples in ns, in the order they were taken.
fn stats(samples_ns: &[u64]) -> Stats {
    let us: Vec<f64> = samples_ns.iter().map(|&ns| ns as f64 / 1000.0).collect();
    let batches = BATCHES.min(us.len()).max(1);
    let size = us.len() / batches;
    let medians = sorted(
        (0..batches)
            .map(|b| {
                let end = if b + 1 == batches {
                    us.len()
                } else {
                    (b + 1) * size
                };
                quantile(&sorted(us[b * size..end].to_vec()), 0.5)
            })
            .collect(),
    );
    let mean_us = us.iter().sum::<f64>() / us.len() as f64;
    let all = sorted(us);
    Stats {
        median_us: quantile(&medians, 0.5),
        mean_us,
        p90_us: quantile(&all, 0.9),
        spread_us: (medians[0], medians[medians.len() - 1]),
        samples: all.len(),
    }
}

/// One JSON object, printed as one line.
struct Row(Vec<(String, String)>);

impl Row {
    fn new(scenario: &str, implementation: &str) -> Row {
        Row(Vec::new())
            .str("scenario", scenario)
            .str("impl", implementation)
    }
    fn str(mut self, key: &str, value: &str) -> Row {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        self.0.push((key.into(), format!("\"{escaped}\"")));
        self
    }
    fn num(mut self, key: &str, value: f64) -> Row {
        let v = if value.is_finite() {
            format!("{}", (value * 1000.0).round() / 1000.0)
        } else {
            "null".into()
        };
        self.0.push((key.into(), v));
        self
    }
    fn int(mut self, key: &str, value: u64) -> Row {
        self.0.push((key.into(), value.to_string()));
        self
    }
    fn raw(mut self, key: &str, json: String) -> Row {
        self.0.push((key.into(), json));
        self
    }
    /// median, p90, spread, floor and ratio of a latency.
    fn latency(self, s: &Stats, floor_us: f64) -> Row {
        self.num("median_us", s.median_us)
            .num("p90_us", s.p90_us)
            .raw(
                "spread_us",
                format!("[{:.2}, {:.2}]", s.spread_us.0, s.spread_us.1),
            )
            .num("mean_us", s.mean_us)
            .num("floor_us", floor_us)
            .num("ratio", s.median_us / floor_us)
            .num("ops_per_s", 1e6 / s.median_us)
            .int("samples", s.samples as u64)
    }
    /// With BENCH_SAMPLES=1, every sample (µs, in the order taken), for
    /// bench/rows.py to pool the interleaved rounds of bench/run.sh.
    fn samples(self, samples_ns: &[u64]) -> Row {
        if std::env::var("BENCH_SAMPLES").as_deref() != Ok("1") {
            return self;
        }
        let us: Vec<String> = samples_ns
            .iter()
            .map(|&ns| format!("{:.2}", ns as f64 / 1000.0))
            .collect();
        self.raw("samples_us", format!("[{}]", us.join(", ")))
    }
    fn print(self) {
        let body: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        println!("{{{}}}", body.join(", "));
    }
}

// --- floor ----------------------------------------------------------------------

/// The least a round trip costs on this server: `PING` on a plain socket,
/// read by a thread that blocks in `recv` and by one that spins on the
/// non-blocking socket, interleaved. The faster of the two is a floor no
/// client can beat on this machine; the gap between them is what a thread
/// wake-up costs here.
fn floor_raw(url: &str, pings: usize) -> Res<()> {
    let info = redis::Client::open(url)?.get_connection_info().clone();
    let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Err("floor-raw needs a redis://host:port URL".into());
    };
    let connect = || -> Res<std::net::TcpStream> {
        let stream = std::net::TcpStream::connect((host.as_str(), *port))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    };
    let (mut blocking, mut spinning) = (connect()?, connect()?);
    spinning.set_nonblocking(true)?;
    let warm_up = pings / 20 + 100;
    let (mut parked, mut spun) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 64];
    for i in 0..pings + warm_up {
        let t = Instant::now();
        raw_ping(&mut blocking, &mut buf, false)?;
        let t1 = Instant::now();
        raw_ping(&mut spinning, &mut buf, true)?;
        let t2 = Instant::now();
        if i >= warm_up {
            parked.push((t1 - t).as_nanos() as u64);
            spun.push((t2 - t1).as_nanos() as u64);
        }
    }
    let (parked, spun) = (stats(&parked), stats(&spun));
    let how = "PING on a plain socket, interleaved";
    Row::new("floor", "raw-ping-blocking")
        .latency(&parked, parked.median_us)
        .str("floor_source", how)
        .print();
    Row::new("floor", "raw-ping-spinning")
        .latency(&spun, spun.median_us)
        .str("floor_source", how)
        .print();
    Ok(())
}

/// One `PING` and its `+PONG` reply; `spin`: the socket is non-blocking
/// and the read asks it again until the reply is there.
fn raw_ping(stream: &mut std::net::TcpStream, buf: &mut [u8], spin: bool) -> Res<()> {
    use std::io::Read;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut got = 0;
    while got < 7 {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => got += n,
            Err(e) if spin && e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    if &buf[..7] != b"+PONG\r\n" {
        return Err("PING did not get +PONG".into());
    }
    Ok(())
}

// --- cycle ----------------------------------------------------------------------

/// How long the `latchkey-rust-spin` client's reads spin (see
/// `ClientBuilder::spin`).
const BENCH_SPIN: Duration = Duration::from_micros(100);

/// The floor, the latchkey cycle (as configured, and with reads that spin
/// [`BENCH_SPIN`]) and the bare scripts, measured interleaved (one of each
/// per iteration) so that all see the same machine: on a shared machine
/// the round trip drifts by tens of percent.
fn cycle(url: &str, cycles: usize) -> Res<()> {
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let client = Client::open(url)?;
    let lock = client.lock("bench:cycle")?;
    let spinning = Client::builder(url).spin(BENCH_SPIN).build()?;
    let spin_lock = spinning.lock("bench:cycle-spin")?;
    let bare = BareScripts::new();
    let warm_up = cycles / 20 + 100;
    let (mut floor, mut cycle, mut lua, mut spun) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..cycles + warm_up {
        let t = Instant::now();
        redis::cmd("PING").query::<String>(&mut conn)?;
        let t1 = Instant::now();
        lock.acquire()?.release()?;
        let t2 = Instant::now();
        bare.cycle(&mut conn, i)?;
        let t3 = Instant::now();
        spin_lock.acquire()?.release()?;
        let t4 = Instant::now();
        if i >= warm_up {
            floor.push((t1 - t).as_nanos() as u64);
            cycle.push((t2 - t1).as_nanos() as u64);
            lua.push((t3 - t2).as_nanos() as u64);
            spun.push((t4 - t3).as_nanos() as u64);
        }
    }
    let f = stats(&floor).median_us;
    let how = "PING on one connection, interleaved with the cycles";
    Row::new("floor", "latchkey-rust")
        .latency(&stats(&floor), f)
        .str("floor_source", how)
        .samples(&floor)
        .print();
    Row::new("cycle", "latchkey-rust")
        .latency(&stats(&cycle), f)
        .str("floor_source", how)
        .samples(&cycle)
        .print();
    Row::new("cycle", "bare-lua-scripts")
        .latency(&stats(&lua), f)
        .str("floor_source", how)
        .samples(&lua)
        .print();
    Row::new("cycle", "latchkey-rust-spin")
        .latency(&stats(&spun), f)
        .str("floor_source", how)
        .int("spin_us", BENCH_SPIN.as_micros() as u64)
        .samples(&spun)
        .print();
    Ok(())
}

/// The family's uncontended cycles, interleaved with the floor and the
/// lock's cycle: what each primitive costs over a plain lock.
fn family(url: &str, cycles: usize) -> Res<()> {
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let client = Client::open(url)?;
    let lock = client.lock("bench:family-lock")?;
    let semaphore = client.semaphore("bench:family-semaphore", 4)?;
    let rwlock = client.rwlock("bench:family-rwlock")?;
    let multi = client.multi_lock(&["bench:family-a", "bench:family-b"])?;
    let warm_up = cycles / 20 + 100;
    let mut samples: [Vec<u64>; 6] = Default::default();
    for i in 0..cycles + warm_up {
        let mut times = [Instant::now(); 7];
        redis::cmd("PING").query::<String>(&mut conn)?;
        times[1] = Instant::now();
        lock.acquire()?.release()?;
        times[2] = Instant::now();
        semaphore.acquire(1)?.release()?;
        times[3] = Instant::now();
        rwlock.read()?.release()?;
        times[4] = Instant::now();
        rwlock.write()?.release()?;
        times[5] = Instant::now();
        multi.acquire()?.release()?;
        times[6] = Instant::now();
        if i >= warm_up {
            for (k, sample) in samples.iter_mut().enumerate() {
                sample.push((times[k + 1] - times[k]).as_nanos() as u64);
            }
        }
    }
    let floor = stats(&samples[0]).median_us;
    let how = "PING on one connection, interleaved with the cycles";
    // Not `floor` and `cycle`: those rows are the `cycle` run's.
    let scenarios = [
        "family-floor",
        "family-lock-cycle",
        "semaphore-cycle",
        "rwlock-read-cycle",
        "rwlock-write-cycle",
        "multi-lock-2-cycle",
    ];
    for (scenario, sample) in scenarios.iter().zip(&samples) {
        Row::new(scenario, "latchkey-rust")
            .latency(&stats(sample), floor)
            .str("floor_source", how)
            .samples(sample)
            .print();
    }
    Ok(())
}

/// `threads` threads, a client each, cycling for `seconds`: the cycles per
/// second of all of them together.
fn cycles_per_second(
    url: &str,
    threads: usize,
    seconds: f64,
    cycle: impl Fn(&Client) -> latchkey::Result<()> + Send + Sync + Copy + 'static,
) -> Res<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..threads {
        let client = Client::open(url)?;
        let (stop, done) = (stop.clone(), done.clone());
        workers.push(std::thread::spawn(move || -> latchkey::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                cycle(&client)?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| "a worker panicked")??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// `rwlock-read-N`: N readers share the lock, so their cycles add up; N
/// threads on one lock take turns.
fn rwlock_read(url: &str, threads: usize, seconds: f64) -> Res<()> {
    let readers = cycles_per_second(url, threads, seconds, |client| {
        client.rwlock("bench:rwlock-read")?.read()?.release()
    })?;
    let lock = cycles_per_second(url, threads, seconds, |client| {
        client.lock("bench:rwlock-read-mutex")?.acquire()?.release()
    })?;
    Row::new(&format!("rwlock-read-{threads}"), "latchkey-rust")
        .num("cycles_per_s", readers)
        .num("lock_cycles_per_s", lock)
        .num("ratio_to_lock", readers / lock)
        .int("threads", threads as u64)
        .print();
    Ok(())
}

/// `election-failover`: a leader that stops renewing right after its
/// election (its process killed then), and a candidate waiting with its
/// campaign: the time from the death to the new leader, next to the ttl
/// (the most a dead leader's lease can have left).
fn election_failover(url: &str, rounds: usize, ttl_ms: u64) -> Res<()> {
    let client = Client::open(url)?;
    let ttl = Duration::from_millis(ttl_ms);
    let mortal = LockOptions::new().ttl(ttl).auto_renew(false);
    let dying = client.election_with("bench:election", mortal)?;
    let heir = client.election_with("bench:election", LockOptions::new().ttl(ttl))?;
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let leader = dying.campaign(b"old")?;
        // Killed now: its lease is neither renewed nor released.
        let died = Instant::now();
        std::mem::forget(leader);
        let next = heir.campaign(b"new")?;
        samples.push(died.elapsed().as_nanos() as u64);
        next.resign()?;
    }
    let s = stats(&samples);
    Row::new("election-failover", "latchkey-rust")
        .num("median_ms", s.median_us / 1000.0)
        .num("p90_ms", s.p90_us / 1000.0)
        .num("ttl_ms", ttl_ms as f64)
        .num("ratio_to_ttl", s.median_us / 1000.0 / ttl_ms as f64)
        .int("samples", s.samples as u64)
        .print();
    Ok(())
}

/// The least two Lua scripts can cost: a bare `SET NX PX` + `INCR` to take
/// and a bare compare, `DEL`, `PUBLISH` to give back. Redis runs a script
/// slower than a PING, so this shows how much of the cycle is Redis's own.
struct BareScripts {
    take: redis::Script,
    give: redis::Script,
}

impl BareScripts {
    fn new() -> Self {
        BareScripts {
            take: redis::Script::new(
                "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, redis.call('INCR', KEYS[2])} end return {0, redis.call('PTTL', KEYS[1])}",
            ),
            give: redis::Script::new(
                "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('DEL', KEYS[1]) redis.call('PUBLISH', ARGV[2], 'released') return 1",
            ),
        }
    }

    fn cycle(&self, conn: &mut redis::Connection, i: usize) -> Res<()> {
        let token = i.to_string();
        self.take(conn, "bench:{lua}", &token)?;
        self.give(conn, "bench:{lua}", &token, true)?;
        Ok(())
    }

    /// true: taken.
    fn take(&self, conn: &mut redis::Connection, key: &str, token: &str) -> Res<bool> {
        let reply: Vec<i64> = self
            .take
            .key(key)
            .key(format!("{key}:f"))
            .arg(token)
            .arg(30_000)
            .invoke(conn)?;
        Ok(reply.first() == Some(&1))
    }

    /// `publish`: name the channel (`KEY:ch`), else a channel nobody reads.
    fn give(&self, conn: &mut redis::Connection, key: &str, token: &str, publish: bool) -> Res<()> {
        let channel = if publish {
            format!("{key}:ch")
        } else {
            format!("{key}:nobody")
        };
        let _: i64 = self.give.key(key).arg(token).arg(channel).invoke(conn)?;
        Ok(())
    }
}

// --- handoff ----------------------------------------------------------------------

/// Time from the holder's release call to the return of an acquire blocked
/// in another process, both read on CLOCK_MONOTONIC. Rounds alternate
/// between latchkey and the bare pub/sub handoff (see [`BareHandoff`]), and
/// every round takes one PING just before its release: the floor of the
/// same moment, shared by both rows.
fn handoff(url: &str, rounds: usize) -> Res<()> {
    let name = "bench:handoff";
    let client = Client::open(url)?;
    let (mut latchkey_waiter, mut to_waiter, mut from_waiter) = spawn(&["waiter", url, name])?;
    let lock = client.lock(name)?;
    let mut bare = BareHandoff::new(url)?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    let channel = format!("latchkey:{{{name}}}:ch");
    let warm_up = rounds / 10 + 10;
    let (mut samples, mut bare_samples, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + warm_up {
        let guard = lock.acquire()?;
        writeln!(to_waiter, "go")?;
        to_waiter.flush()?;
        // Release only once the waiter is subscribed, and give it a moment
        // to park: the figure is the wake-up of a blocked waiter.
        loop {
            let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut admin)?;
            if matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0) {
                break;
            }
        }
        std::thread::sleep(SETTLE);
        let ping = ping_ns(&mut admin)?;
        let t0 = monotonic_ns();
        guard.release()?;
        let t1 = read_ns(&mut from_waiter)?;
        let (bare_ping, bare_ns) = bare.round(round, &mut admin)?;
        if round >= warm_up {
            samples.push(t1.saturating_sub(t0));
            bare_samples.push(bare_ns);
            floor.extend([ping, bare_ping]);
        }
    }
    drop(to_waiter);
    latchkey_waiter.wait()?;
    bare.finish()?;
    let floor = stats(&floor);
    let how = "PING from the holder just before each release";
    Row::new("handoff", "bare-pubsub-scripts")
        .latency(&stats(&bare_samples), floor.median_us)
        .str("floor_source", how)
        .print();
    Row::new("handoff", "latchkey-rust")
        .latency(&stats(&samples), floor.median_us)
        .str("floor_source", how)
        .print();
    Ok(())
}

/// What `herd` and `drain` share: the scenario's name (`KIND-N`, or
/// `KIND-fair-N`), the lock's options and name, and 4 clients whose pools
/// hold a quarter of the waiters each (4 processes' worth of connections).
fn waiters_setup(
    kind: &str,
    url: &str,
    waiters: usize,
    fair: bool,
) -> Res<(String, LockOptions, String, Vec<Client>)> {
    let scenario = if fair {
        format!("{kind}-fair-{waiters}")
    } else {
        format!("{kind}-{waiters}")
    };
    let name = format!("bench:{scenario}");
    let clients = (0..4)
        .map(|_| {
            Client::builder(url)
                .pool_size(waiters.div_ceil(4).max(1))
                .build()
        })
        .collect::<Result<_, _>>()?;
    Ok((scenario, LockOptions::new().fair(fair), name, clients))
}

/// `herd-N`: N+1 threads (spread over 4 clients, as 4 processes' worth of
/// connections) take one lock in turn, each holding it for a moment; every
/// release has N waiters. Measured: Lua scripts Redis ran per handoff
/// (`INFO commandstats`: the release, the winner's acquire, and whatever
/// the woken losers sent), the handoff latency (release sent to the next
/// holder's acquire returned, one clock), and fairness (Jain's index of
/// the acquisitions per thread: 1 when all got the same share).
fn herd(url: &str, waiters: usize, handoffs: usize, fair: bool) -> Res<()> {
    use std::sync::Mutex;
    let (scenario, options, name, clients) = waiters_setup("herd", url, waiters, fair)?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    // When the last release was sent, and the handoffs seen so far.
    let released_at = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(handoffs)));
    let warm_up = (handoffs / 10 + waiters) as u64;
    let total = handoffs as u64 + warm_up;
    let scripts_at_start = Arc::new(AtomicU64::new(0));
    let scripts_at_end = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..=waiters)
        .map(|i| {
            let lock = clients[i % clients.len()].lock_with(&name, options.clone());
            let (released_at, done, samples) = (released_at.clone(), done.clone(), samples.clone());
            let (scripts_at_start, scripts_at_end) =
                (scripts_at_start.clone(), scripts_at_end.clone());
            let url = url.to_string();
            std::thread::spawn(move || -> Result<u64, String> {
                let lock = lock.map_err(|e| e.to_string())?;
                let mut own = 0u64;
                loop {
                    let guard = lock.acquire().map_err(|e| e.to_string())?;
                    let now = monotonic_ns();
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    let before = released_at.load(Ordering::SeqCst);
                    if n > warm_up && n <= total && before > 0 {
                        samples
                            .lock()
                            .map_err(|e| e.to_string())?
                            .push(now - before);
                        own += 1;
                    }
                    if n == warm_up || n == total {
                        // The measured part starts (or ends): scripts run
                        // between the two counts belong to its handoffs.
                        let mut admin = redis::Client::open(url.as_str())
                            .and_then(|c| c.get_connection())
                            .map_err(|e| e.to_string())?;
                        let calls = evalsha_calls(&mut admin).map_err(|e| e.to_string())?;
                        let at = if n == total {
                            &scripts_at_end
                        } else {
                            &scripts_at_start
                        };
                        at.store(calls, Ordering::SeqCst);
                    }
                    // A moment's work under the lock, so that every waiter
                    // is parked when it is released.
                    std::thread::sleep(Duration::from_micros(200));
                    if n >= total {
                        // Everyone else stops at its next acquire.
                        released_at.store(monotonic_ns(), Ordering::SeqCst);
                        guard.release().map_err(|e| e.to_string())?;
                        return Ok(own);
                    }
                    released_at.store(monotonic_ns(), Ordering::SeqCst);
                    guard.release().map_err(|e| e.to_string())?;
                    if done.load(Ordering::SeqCst) >= total {
                        return Ok(own);
                    }
                }
            })
        })
        .collect();
    let mut shares = Vec::new();
    for t in threads {
        shares.push(t.join().map_err(|_| "a herd thread panicked")??);
    }
    let scripts = scripts_at_end
        .load(Ordering::SeqCst)
        .saturating_sub(scripts_at_start.load(Ordering::SeqCst));
    let samples = samples.lock().map_err(|_| "poisoned")?.clone();
    let measured = handoffs.max(1) as f64;
    let sum: f64 = shares.iter().map(|&x| x as f64).sum();
    let squares: f64 = shares.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let jain = if squares > 0.0 {
        sum * sum / (shares.len() as f64 * squares)
    } else {
        0.0
    };
    let floor = stats(
        &(0..50)
            .map(|_| ping_ns(&mut admin))
            .collect::<Res<Vec<_>>>()?,
    );
    Row::new(&scenario, "latchkey-rust")
        .latency(&stats(&samples), floor.median_us)
        .num("scripts_per_handoff", scripts as f64 / measured)
        .num("fairness_jain", jain)
        .int("waiters", waiters as u64)
        .str("floor_source", "PING after the run")
        .print();
    Ok(())
}

/// Waits until Redis has run `count` more scripts than `since` (each
/// waiter makes two attempts before it parks: the first, and one right
/// after it subscribed), at most a minute.
fn wait_for_scripts(admin: &mut redis::Connection, since: u64, count: u64) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while evalsha_calls(admin)? < since + count {
        if Instant::now() >= deadline {
            return Err(format!("the waiters did not park: fewer than {count} scripts ran").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The handoff itself, without the re-queueing of `herd`: in each round, N
/// waiters queue and park behind a holder; then the lock passes down the
/// whole queue, each waiter holding it 0.2 ms and leaving. Scripts are
/// counted from just before the holder's release until the last waiter's
/// acquire returned, so they are exactly the handoffs' releases and
/// acquires (and whatever else a release caused).
fn drain(url: &str, waiters: usize, handoffs: usize, fair: bool) -> Res<()> {
    use std::sync::Mutex;
    let (scenario, options, name, clients) = waiters_setup("drain", url, waiters, fair)?;
    let holder = clients[0].lock_with(&name, options.clone())?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    let rounds = handoffs.div_ceil(waiters.max(1)).max(1);
    let samples = Arc::new(Mutex::new(Vec::with_capacity(rounds * waiters)));
    let (mut scripts, mut measured) = (0u64, 0u64);
    for _ in 0..rounds {
        let guard = holder.acquire()?;
        let released_at = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let scripts_at_end = Arc::new(AtomicU64::new(0));
        let before = evalsha_calls(&mut admin)?;
        let threads: Vec<_> = (0..waiters)
            .map(|i| {
                let lock = clients[i % clients.len()].lock_with(&name, options.clone());
                let (released_at, done, samples, scripts_at_end) = (
                    released_at.clone(),
                    done.clone(),
                    samples.clone(),
                    scripts_at_end.clone(),
                );
                let url = url.to_string();
                std::thread::spawn(move || -> Result<(), String> {
                    let lock = lock.map_err(|e| e.to_string())?;
                    let guard = lock.acquire().map_err(|e| e.to_string())?;
                    let now = monotonic_ns();
                    let before = released_at.load(Ordering::SeqCst);
                    samples
                        .lock()
                        .map_err(|e| e.to_string())?
                        .push(now.saturating_sub(before));
                    if done.fetch_add(1, Ordering::SeqCst) + 1 == waiters as u64 {
                        // The last handoff is over: its release would hand
                        // the lock to nobody.
                        let mut admin = redis::Client::open(url.as_str())
                            .and_then(|c| c.get_connection())
                            .map_err(|e| e.to_string())?;
                        let calls = evalsha_calls(&mut admin).map_err(|e| e.to_string())?;
                        scripts_at_end.store(calls, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                    released_at.store(monotonic_ns(), Ordering::SeqCst);
                    guard.release().map_err(|e| e.to_string())
                })
            })
            .collect();
        wait_for_scripts(&mut admin, before, 2 * waiters as u64)?;
        let start = evalsha_calls(&mut admin)?;
        released_at.store(monotonic_ns(), Ordering::SeqCst);
        guard.release()?;
        for t in threads {
            t.join().map_err(|_| "a drain thread panicked")??;
        }
        scripts += scripts_at_end.load(Ordering::SeqCst).saturating_sub(start);
        measured += waiters as u64;
    }
    let samples = samples.lock().map_err(|_| "poisoned")?.clone();
    let floor = stats(
        &(0..50)
            .map(|_| ping_ns(&mut admin))
            .collect::<Res<Vec<_>>>()?,
    );
    Row::new(&scenario, "latchkey-rust")
        .latency(&stats(&samples), floor.median_us)
        .num(
            "scripts_per_handoff",
            scripts as f64 / measured.max(1) as f64,
        )
        .int("waiters", waiters as u64)
        .str("floor_source", "PING after the run")
        .print();
    Ok(())
}

type Child = (
    std::process::Child,
    std::process::ChildStdin,
    BufReader<std::process::ChildStdout>,
);

/// This program again, with `args`, talking over its stdin and stdout.
fn spawn(args: &[&str]) -> Res<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    Ok((child, stdin, stdout))
}

fn read_ns(from: &mut impl BufRead) -> Res<u64> {
    let mut line = String::new();
    from.read_line(&mut line)?;
    Ok(line.trim().parse()?)
}

fn ping_ns(conn: &mut redis::Connection) -> Res<u64> {
    let t = Instant::now();
    redis::cmd("PING").query::<String>(conn)?;
    Ok(t.elapsed().as_nanos() as u64)
}

fn waiter(url: &str, name: &str) -> Res<()> {
    let client = Client::open(url)?;
    let lock = client.lock(name)?;
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        line?;
        let guard = lock.acquire()?;
        let t1 = monotonic_ns();
        guard.release()?;
        writeln!(out, "{t1}")?;
        out.flush()?;
    }
    Ok(())
}

/// The least a pub/sub handoff can cost here: the holder gives back with
/// the bare release script (which publishes), the waiter sits in a plain
/// blocking read of its SUBSCRIBE connection and, on the message, runs the
/// bare acquire script. No pool, no listener thread, no condition variable:
/// what latchkey's handoff adds shows against this row.
struct BareHandoff {
    child: Child,
    scripts: BareScripts,
    conn: redis::Connection,
}

impl BareHandoff {
    fn new(url: &str) -> Res<Self> {
        let mut child = spawn(&["bare-waiter", url])?;
        let mut line = String::new();
        child.2.read_line(&mut line)?; // "subscribed"
        Ok(BareHandoff {
            child,
            scripts: BareScripts::new(),
            conn: redis::Client::open(url)?.get_connection()?,
        })
    }

    /// One handoff: the floor PING just before the release, and the handoff.
    fn round(&mut self, round: usize, admin: &mut redis::Connection) -> Res<(u64, u64)> {
        let token = format!("holder-{round}");
        if !self.scripts.take(&mut self.conn, BARE_KEY, &token)? {
            return Err("bare lock unexpectedly held".into());
        }
        let (_, to_waiter, from_waiter) = &mut self.child;
        writeln!(to_waiter, "go")?;
        to_waiter.flush()?;
        let mut line = String::new();
        from_waiter.read_line(&mut line)?; // "waiting": tried, failed, reading
        std::thread::sleep(SETTLE);
        let ping = ping_ns(admin)?;
        let t0 = monotonic_ns();
        self.scripts.give(&mut self.conn, BARE_KEY, &token, true)?;
        let t1 = read_ns(from_waiter)?;
        Ok((ping, t1.saturating_sub(t0)))
    }

    fn finish(self) -> Res<()> {
        let (mut child, to_waiter, _) = self.child;
        drop(to_waiter);
        child.wait()?;
        Ok(())
    }
}

const BARE_KEY: &str = "bench:{bare-handoff}";

fn bare_waiter(url: &str) -> Res<()> {
    let bare = BareScripts::new();
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection()?;
    let mut sub_conn = client.get_connection()?;
    let mut sub = sub_conn.as_pubsub();
    sub.subscribe(format!("{BARE_KEY}:ch"))?;
    let mut out = std::io::stdout();
    writeln!(out, "subscribed")?;
    out.flush()?;
    for (round, line) in std::io::stdin().lock().lines().enumerate() {
        line?;
        let token = format!("waiter-{round}");
        let mut tried = false;
        loop {
            if bare.take(&mut conn, BARE_KEY, &token)? {
                break;
            }
            if !tried {
                tried = true;
                writeln!(out, "waiting")?;
                out.flush()?;
            }
            sub.get_message()?;
        }
        let t1 = monotonic_ns();
        // Give back without publishing: nobody waits, and our own
        // subscription must not see a stale message next round.
        bare.give(&mut conn, BARE_KEY, &token, false)?;
        writeln!(out, "{t1}")?;
        out.flush()?;
    }
    Ok(())
}

// --- contended-4 (driven by bench/contend.py) -----------------------------------

/// One contender: acquire, read-modify-write the counter file (not atomic:
/// only the lock keeps it right), release, until END_NS. Prints its count.
fn contend(args: &[String]) -> Res<()> {
    let (url, name) = (&args[0], &args[1]);
    let start: u64 = args[2].parse()?;
    let end: u64 = args[3].parse()?;
    let counter = &args[4];
    let client = Client::open(url)?;
    let lock = client.lock_with(name, LockOptions::new())?;
    // Connect and load the scripts before the start.
    drop(lock.try_acquire()?);
    sleep_until_ns(start);
    let mut count = 0u64;
    while monotonic_ns() < end {
        let guard = lock.acquire()?;
        let value: u64 = std::fs::read_to_string(counter)?
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(counter, (value + 1).to_string())?;
        guard.release()?;
        count += 1;
    }
    println!("{count}");
    Ok(())
}

// --- many-locks ---------------------------------------------------------------------

/// THREADS threads of one client, each taking and giving back its own lock
/// as fast as it can: aggregate cycles per second, sampled once a second.
/// The floor is `redis-benchmark -c THREADS -P 1 -t ping` of the same run
/// (FLOOR_OPS_PER_S, measured by bench/run.sh just before).
fn many_locks(args: &[String]) -> Res<()> {
    let url = args[0].as_str();
    let threads: usize = args[1].parse()?;
    let seconds: usize = args[2].parse()?;
    let floor_ops: f64 = args[3].parse()?;
    let client = Client::builder(url).pool_size(threads.max(8)).build()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let lock = client.lock(&format!("bench:many:{i}"));
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let lock = lock.map_err(|e| e.to_string())?;
                while !stop.load(Ordering::Relaxed) {
                    let guard = lock.acquire().map_err(|e| e.to_string())?;
                    guard.release().map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut per_second = Vec::new();
    let (mut last, mut at) = (done.load(Ordering::Relaxed), Instant::now());
    for _ in 0..seconds {
        std::thread::sleep(Duration::from_secs(1));
        let (now_done, now) = (done.load(Ordering::Relaxed), Instant::now());
        per_second.push((now_done - last) as f64 / (now - at).as_secs_f64());
        (last, at) = (now_done, now);
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| "worker panicked")??;
    }
    let per_second = sorted(per_second);
    let ops = quantile(&per_second, 0.5);
    let floor_us = 1e6 / floor_ops;
    Row::new("many-locks", "latchkey-rust")
        .int("threads", threads as u64)
        .num("ops_per_s", ops)
        .raw(
            "spread_ops_per_s",
            format!(
                "[{:.0}, {:.0}]",
                per_second[0],
                per_second[per_second.len() - 1]
            ),
        )
        .num("median_us", 1e6 / ops)
        .num("floor_us", floor_us)
        .num("floor_ops_per_s", floor_ops)
        .num("ratio", floor_ops / ops)
        .str(
            "floor_source",
            &format!("redis-benchmark -c {threads} -P 1 -t ping, same run"),
        )
        .print();
    Ok(())
}

// --- renewal --------------------------------------------------------------------------

/// LEASES auto-renewed leases (ttl 3 s, renewed every 1 s) held by one
/// process: what the watchdog costs in CPU, round trips and memory.
fn renewal(args: &[String]) -> Res<()> {
    let url = args[0].as_str();
    let leases: usize = args[1].parse()?;
    let seconds: u64 = args[2].parse()?;
    let ttl = Duration::from_secs(args.get(3).map_or(Ok(3), |s| s.parse())?);
    let period = ttl / 3;
    let client = Client::builder(url).pool_size(8).build()?;
    let options = move || LockOptions::new().ttl(ttl);
    // Start the pool and the watchdog before the first RSS reading.
    client
        .lock_with("bench:renew:warm", options())?
        .acquire()?
        .release()?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    let rss_before = rss_bytes()?;

    let started = Instant::now();
    let acquirers = 4;
    let handles: Vec<_> = (0..acquirers)
        .map(|a| {
            let client = client.clone();
            std::thread::spawn(move || -> Result<Vec<Guard>, String> {
                (a..leases)
                    .step_by(acquirers)
                    .map(|i| {
                        client
                            .lock_with(&format!("bench:renew:{i}"), options())
                            .and_then(|lock| lock.acquire())
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            })
        })
        .collect();
    let mut guards = Vec::with_capacity(leases);
    for handle in handles {
        guards.extend(handle.join().map_err(|_| "acquirer panicked")??);
    }
    let acquire_s = started.elapsed().as_secs_f64();
    // Let renewals settle into their rhythm (leases taken over several
    // seconds are coalesced into shared round trips).
    std::thread::sleep(2 * period);
    let rss_after = rss_bytes()?;

    let watchdog = find_thread("latchkey-watchd");
    let windows = seconds.div_ceil(3).max(2) as usize;
    let window = 3 * period;
    let (mut cpu, mut wd_cpu, mut redis_cpu, mut renewals, mut trips) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..windows {
        let (c0, w0, e0, r0) = (
            process_cpu_s(),
            watchdog.map(thread_cpu_s),
            redis_cpu_s(&mut admin)?,
            evalsha_calls(&mut admin)?,
        );
        let wall = Instant::now();
        // The window itself: perf counts the watchdog's sendto calls (one
        // per pipelined round trip) when it can, else a plain sleep.
        let sends = watchdog.and_then(|tid| count_sends(tid, window));
        if sends.is_none() {
            std::thread::sleep(window.saturating_sub(wall.elapsed()));
        }
        let (c1, w1, e1, r1) = (
            process_cpu_s(),
            watchdog.map(thread_cpu_s),
            redis_cpu_s(&mut admin)?,
            evalsha_calls(&mut admin)?,
        );
        let wall = wall.elapsed().as_secs_f64();
        let periods = wall / period.as_secs_f64();
        cpu.push((c1 - c0) / wall);
        if let (Some(w0), Some(w1)) = (w0, w1) {
            wd_cpu.push((w1 - w0) / wall);
        }
        redis_cpu.push((e1 - e0) / wall);
        // The two INFO calls of the window are EVALSHA-free.
        renewals.push((r1 - r0) as f64 / periods);
        if let Some(sends) = sends {
            trips.push(sends as f64 / periods);
        }
    }
    let lost = guards.iter().filter(|g| g.lost()).count();
    let median = |v: Vec<f64>| {
        if v.is_empty() {
            f64::NAN
        } else {
            quantile(&sorted(v), 0.5)
        }
    };
    let spread = |v: &[f64]| {
        let v = sorted(v.to_vec());
        format!("[{:.4}, {:.4}]", v[0], v[v.len() - 1])
    };
    Row::new("renewal", "latchkey-rust")
        .int("leases", leases as u64)
        .int("ttl_ms", ttl.as_millis() as u64)
        .int("period_ms", period.as_millis() as u64)
        .int("windows", windows as u64)
        .raw("cpu_fraction_spread", spread(&cpu))
        .num("cpu_fraction", median(cpu))
        .num("watchdog_cpu_fraction", median(wd_cpu))
        .num("redis_cpu_fraction", median(redis_cpu))
        .num("renewals_per_period", median(renewals))
        .num("round_trips_per_period", median(trips))
        .num(
            "rss_bytes_per_lease",
            rss_after.saturating_sub(rss_before) as f64 / leases as f64,
        )
        .int("rss_before_bytes", rss_before)
        .int("rss_after_bytes", rss_after)
        .num("acquire_s", acquire_s)
        .int("lost", lost as u64)
        .print();
    // Leave without releasing: 100,000 releases would take longer than the
    // measurement, and the keys expire by themselves within the ttl.
    std::process::exit(0);
}

fn rss_bytes() -> Res<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).ok_or("statm")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Ok(pages * page)
}

/// User + system CPU time of the whole process, in seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The id of this process's thread named `comm` (as the kernel truncates it).
fn find_thread(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (name.trim() == comm).then(|| e.file_name().to_str()?.parse().ok())?
    })
}

/// User + system CPU time of one thread, in seconds (clock-tick resolution).
fn thread_cpu_s(tid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    // Fields after the command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Runs `perf stat` on one thread for `window`; the number of `sendto`
/// system calls it made (the redis crate sends each pipeline with one).
/// `None` when perf is missing or not allowed to trace.
fn count_sends(tid: u32, window: Duration) -> Option<u64> {
    let output = Command::new("perf")
        .args(["stat", "-x,", "-e", "syscalls:sys_enter_sendto", "-t"])
        .arg(tid.to_string())
        .args(["--", "sleep"])
        .arg(format!("{:.3}", window.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text.lines().find(|l| l.contains("sys_enter_sendto"))?;
    line.split(',').next()?.trim().parse().ok()
}

fn info(admin: &mut redis::Connection, section: &str) -> Res<String> {
    Ok(redis::cmd("INFO").arg(section).query(admin)?)
}

fn evalsha_calls(admin: &mut redis::Connection) -> Res<u64> {
    let text = info(admin, "commandstats")?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0))
}

fn redis_cpu_s(admin: &mut redis::Connection) -> Res<f64> {
    let text = info(admin, "cpu")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "used_cpu_sys" | "used_cpu_user").then(|| v.trim().parse::<f64>().ok())?
        })
        .sum())
}

// --- Redlock ------------------------------------------------------------------------------

/// latchkey-rust's Redlock over N masters (`cycle-redlock3`, `cycle-redlock5`):
/// a PING on the first master (the floor), a single-master cycle on that
/// master and a Redlock cycle over all of them, interleaved, so that the
/// Redlock cost is compared with the single-master cost of the same moment.
fn cycle_redlock(scenario: &str, cycles: usize, urls: &[String]) -> Res<()> {
    let mut conn = redis::Client::open(urls[0].as_str())?.get_connection()?;
    let single = Client::open(&urls[0])?;
    let single_lock = single.lock("bench:redlock-single")?;
    // Fresh bench masters: no restart to wait out (the peers do not wait either).
    let redlock = Client::redlock_builder(urls)
        .redlock_restart_delay(Duration::ZERO)
        .build()?;
    let lock = redlock.lock("bench:redlock")?;
    let warmup = cycles / 10 + 10;
    let (mut floor, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..cycles + warmup {
        let t0 = Instant::now();
        redis::cmd("PING").query::<String>(&mut conn)?;
        let t1 = Instant::now();
        single_lock.acquire()?.release()?;
        let t2 = Instant::now();
        lock.acquire()?.release()?;
        let t3 = Instant::now();
        if i >= warmup {
            floor.push((t1 - t0).as_nanos() as u64);
            one.push((t2 - t1).as_nanos() as u64);
            many.push((t3 - t2).as_nanos() as u64);
        }
    }
    let floor = stats(&floor);
    let one = stats(&one);
    let many = stats(&many);
    Row::new(scenario, "latchkey-rust")
        .latency(&many, floor.median_us)
        .int("masters", urls.len() as u64)
        .num("single_master_cycle_us", one.median_us)
        .num("vs_single_master", many.median_us / one.median_us)
        .print();
    Ok(())
}

// --- residue ------------------------------------------------------------------------------

/// What NAMES distinct lock names, each acquired and released once, leave
/// behind in Redis: keys and `used_memory` growth per name right after (the
/// fencing counters), and once the fence retention has passed (the target
/// is nothing: 0 keys, memory back to the baseline). The retention is
/// scaled down from its default of one day to RETENTION_MS so that the row
/// finishes; choose it longer than taking the names lasts, or some
/// counters expire before "right after". Needs a server of its own:
/// `used_memory` is the whole server's. It keeps a fixed remainder of some
/// tens of KB whatever the number of names, so memory "back to the
/// baseline" means less than a byte per name left.
fn residue(args: &[String]) -> Res<()> {
    let url = args[0].as_str();
    let names: usize = args[1].parse()?;
    let retention = Duration::from_millis(args[2].parse()?);
    // Generous: Redis expires keys by sampling, a little behind their time.
    let expiry_limit = 2 * retention + Duration::from_secs(120);
    let client = Client::builder(url)
        .pool_size(8)
        .fence_retention(retention)
        .build()?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    if dbsize(&mut admin)? != 0 {
        return Err("residue needs a server of its own (this one has keys)".into());
    }
    // The scripts loaded and every connection open (the same 4 threads)
    // before the baseline; the warm-up names' counters are deleted (the
    // server is ours), which also leaves Redis's key tables at their
    // smallest.
    take_names(&client, "bench:residue:warm", 1000)?;
    let () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut admin)?;
    // Redis shrinks the query buffer of a client idle for 2 s; the pool's
    // connections are idle that long again when the counters expire.
    std::thread::sleep(Duration::from_secs(3));
    let baseline = used_memory(&mut admin)?;

    let started = Instant::now();
    take_names(&client, "bench:residue", names)?;
    let cycles_s = started.elapsed().as_secs_f64();
    let keys_right_after = dbsize(&mut admin)?;
    let bytes_right_after = used_memory(&mut admin)? as f64 - baseline as f64;

    let gone_s = wait_for_no_keys(&mut admin, expiry_limit)?.as_secs_f64();
    // Redis shrinks its emptied key tables in its cron (10 times a second):
    // give it a few ticks before reading the memory.
    std::thread::sleep(Duration::from_millis(500));
    let keys_after_retention = dbsize(&mut admin)?;
    let bytes_after_retention = used_memory(&mut admin)? as f64 - baseline as f64;

    Row::new("residue", "latchkey-rust")
        .int("names", names as u64)
        .int("retention_ms", retention.as_millis() as u64)
        .str(
            "retention_note",
            "fence retention scaled down from its default of one day so that the row finishes",
        )
        .int("baseline_used_memory_bytes", baseline)
        .int("keys_right_after", keys_right_after)
        .num("bytes_right_after", bytes_right_after)
        .num(
            "bytes_per_name_right_after",
            bytes_right_after / names as f64,
        )
        // Per key still there: the cost of one counter, whatever expired
        // already during the run (a retention shorter than the run).
        .num(
            "bytes_per_key_right_after",
            bytes_right_after / keys_right_after.max(1) as f64,
        )
        .int("keys_after_retention", keys_after_retention)
        .num("bytes_after_retention", bytes_after_retention)
        .num(
            "bytes_per_name_after_retention",
            bytes_after_retention / names as f64,
        )
        .num("cycles_s", cycles_s)
        .num("all_gone_after_s", gone_s)
        .print();
    Ok(())
}

/// Acquires and releases `count` names `{prefix}:{i}` once each, from 4
/// threads.
fn take_names(client: &Client, prefix: &str, count: usize) -> Res<()> {
    let workers = 4;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let client = client.clone();
            let prefix = prefix.to_string();
            std::thread::spawn(move || -> Result<(), String> {
                for i in (w..count).step_by(workers) {
                    client
                        .lock(&format!("{prefix}:{i}"))
                        .and_then(|lock| lock.acquire())
                        .and_then(|guard| guard.release())
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "worker panicked")??;
    }
    Ok(())
}

fn dbsize(admin: &mut redis::Connection) -> Res<u64> {
    Ok(redis::cmd("DBSIZE").query(admin)?)
}

fn used_memory(admin: &mut redis::Connection) -> Res<u64> {
    let text = info(admin, "memory")?;
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "INFO memory has no used_memory".into())
}

/// Waits (checking every 100 ms) until the server has no key; how long
/// that took. An error past `limit`.
fn wait_for_no_keys(admin: &mut redis::Connection, limit: Duration) -> Res<Duration> {
    let started = Instant::now();
    while dbsize(admin)? != 0 {
        if started.elapsed() > limit {
            return Err(format!("keys still there after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}

/// Redlock over N masters with DOWN of them dead (`cycle-redlock5-2down`),
/// interleaved with the same cycle over N healthy masters, so the ratio of
/// the two comes from one moment of one run. A dead master is a listening
/// socket that accepts nothing (a blackholed server: connects hang until
/// their timeout), standing in for the last DOWN masters.
fn cycle_redlock_down(scenario: &str, cycles: usize, down: usize, urls: &[String]) -> Res<()> {
    if down == 0 || down >= urls.len() {
        return Err("DOWN must be between 1 and the number of masters - 1".into());
    }
    let holes: Vec<std::net::TcpListener> = (0..down)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let mut degraded_urls: Vec<String> = urls[..urls.len() - down].to_vec();
    for hole in &holes {
        degraded_urls.push(format!("redis://127.0.0.1:{}", hole.local_addr()?.port()));
    }
    let mut conn = redis::Client::open(urls[0].as_str())?.get_connection()?;
    let healthy = Client::redlock_builder(urls)
        .redlock_restart_delay(Duration::ZERO)
        .build()?;
    let healthy_lock = healthy.lock("bench:redlock-up")?;
    let degraded = Client::redlock_builder(&degraded_urls)
        .redlock_restart_delay(Duration::ZERO)
        .build()?;
    let degraded_lock = degraded.lock("bench:redlock-down")?;
    // The first cycle finds the dead masters (one connect timeout); the
    // warm-up keeps it out of the figures.
    let warmup = cycles / 10 + 10;
    let (mut floor, mut up, mut with_down) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..cycles + warmup {
        let t0 = Instant::now();
        redis::cmd("PING").query::<String>(&mut conn)?;
        let t1 = Instant::now();
        healthy_lock.acquire()?.release()?;
        let t2 = Instant::now();
        degraded_lock.acquire()?.release()?;
        let t3 = Instant::now();
        if i >= warmup {
            floor.push((t1 - t0).as_nanos() as u64);
            up.push((t2 - t1).as_nanos() as u64);
            with_down.push((t3 - t2).as_nanos() as u64);
        }
    }
    let floor = stats(&floor);
    let up = stats(&up);
    let with_down = stats(&with_down);
    Row::new(scenario, "latchkey-rust")
        .latency(&with_down, floor.median_us)
        .int("masters", urls.len() as u64)
        .int("down", down as u64)
        .num("all_up_cycle_us", up.median_us)
        .num("vs_all_up", with_down.median_us / up.median_us)
        .print();
    drop(holes);
    Ok(())
}
