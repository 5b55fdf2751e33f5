//! latchkey-rust benchmarks: the floor (one plain Redis round trip on one
//! connection), the uncontended acquire+release cycle, the handoff to a
//! waiter blocked in another process, and 4 processes contending for one
//! lock. Prints one JSON object per line; `bench/run.sh` collects them.
//!
//! ```text
//! latchkey-bench all URL            run every scenario, print JSON lines
//! latchkey-bench waiter URL NAME    (internal) the blocked waiter of `handoff`
//! latchkey-bench contend URL NAME START_NS END_NS COUNTER_FILE
//!                                   (internal) one contender of `contended-4`
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::{Client, LockOptions};

const CYCLES: usize = 20_000;
const HANDOFFS: usize = 2_000;
const CONTENDERS: usize = 4;
const CONTENDED_FOR: Duration = Duration::from_secs(3);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("all") if args.len() == 3 => all(&args[2]),
        Some("waiter") if args.len() == 4 => waiter(&args[2], &args[3]),
        Some("contend") if args.len() == 7 => contend(&args[2..]),
        _ => Err("usage: latchkey-bench all URL".into()),
    };
    if let Err(e) = result {
        eprintln!("latchkey-bench: {e}");
        std::process::exit(1);
    }
}

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

struct Stats {
    median_us: f64,
    p90_us: f64,
}

fn stats(mut samples_ns: Vec<u64>) -> Stats {
    samples_ns.sort_unstable();
    let at =
        |q: f64| samples_ns[((samples_ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    Stats {
        median_us: at(0.5),
        p90_us: at(0.9),
    }
}

fn row(scenario: &str, implementation: &str, s: &Stats, floor_us: f64) {
    println!(
        "{{\"scenario\": \"{scenario}\", \"impl\": \"{implementation}\", \"median_us\": {:.2}, \"p90_us\": {:.2}, \"floor_us\": {floor_us:.2}, \"ratio\": {:.3}, \"ops_per_s\": {:.0}}}",
        s.median_us,
        s.p90_us,
        s.median_us / floor_us,
        1e6 / s.median_us
    );
}

fn all(url: &str) -> Res<()> {
    // The floor, the cycle and the bare scripts are measured interleaved,
    // one of each per iteration, so that all three see the same machine:
    // on a shared machine the round trip drifts by tens of percent.
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let client = Client::open(url)?;
    let lock = client.lock("bench:cycle")?;
    let bare = BareScripts::new();
    let (mut floor, mut cycle, mut lua) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..CYCLES + 1000 {
        let t = Instant::now();
        redis::cmd("PING").query::<String>(&mut conn)?;
        let t1 = Instant::now();
        lock.acquire()?.release()?;
        let t2 = Instant::now();
        bare.cycle(&mut conn, i)?;
        let t3 = Instant::now();
        if i >= 1000 {
            floor.push((t1 - t).as_nanos() as u64);
            cycle.push((t2 - t1).as_nanos() as u64);
            lua.push((t3 - t2).as_nanos() as u64);
        }
    }
    let floor = stats(floor);
    let f = floor.median_us;
    row("floor", "latchkey-rust", &floor, f);
    row("cycle", "latchkey-rust", &stats(cycle), f);
    row("cycle", "bare-lua-scripts", &stats(lua), f);
    row("handoff", "latchkey-rust", &handoff(url, &client)?, f);
    contended(url)?;
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
        let _: redis::Value = self
            .take
            .key("bench:{lua}")
            .key("bench:{lua}:f")
            .arg(i)
            .arg(30_000)
            .invoke(conn)?;
        let _: i64 = self
            .give
            .key("bench:{lua}")
            .arg(i)
            .arg("bench:{lua}:ch")
            .invoke(conn)?;
        Ok(())
    }
}

/// Time from the holder's release call to the return of an acquire blocked
/// in another process.
fn handoff(url: &str, client: &Client) -> Res<Stats> {
    let name = "bench:handoff";
    let mut child = Command::new(std::env::current_exe()?)
        .args(["waiter", url, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_waiter = child.stdin.take().ok_or("no stdin")?;
    let mut from_waiter = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let lock = client.lock(name)?;
    let mut admin = redis::Client::open(url)?.get_connection()?;
    let channel = format!("latchkey:{{{name}}}:ch");
    let mut samples = Vec::with_capacity(HANDOFFS);
    for round in 0..HANDOFFS + 100 {
        let guard = lock.acquire()?;
        writeln!(to_waiter, "go")?;
        to_waiter.flush()?;
        // Release only once the waiter is subscribed, i.e. blocked.
        loop {
            let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut admin)?;
            if matches!(reply.get(1), Some(redis::Value::Int(n)) if *n > 0) {
                break;
            }
        }
        let t0 = monotonic_ns();
        guard.release()?;
        let mut line = String::new();
        from_waiter.read_line(&mut line)?;
        let t1: u64 = line.trim().parse()?;
        if round >= 100 {
            samples.push(t1.saturating_sub(t0));
        }
    }
    drop(to_waiter);
    child.wait()?;
    Ok(stats(samples))
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

/// 4 processes on one lock for a few seconds: throughput, fairness
/// (smallest share / mean share) and lost updates of a non-atomic counter.
fn contended(url: &str) -> Res<()> {
    let dir = std::env::temp_dir().join(format!("latchkey-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let counter = dir.join("counter");
    std::fs::write(&counter, "0")?;
    let start = monotonic_ns() + 500_000_000;
    let end = start + CONTENDED_FOR.as_nanos() as u64;
    let children: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["contend", url, "bench:contended"])
                .args([
                    start.to_string(),
                    end.to_string(),
                    counter.display().to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut counts = Vec::new();
    for child in children {
        let output = child.wait_with_output()?;
        counts.push(String::from_utf8(output.stdout)?.trim().parse::<u64>()?);
    }
    let total: u64 = counts.iter().sum();
    let final_count: u64 = std::fs::read_to_string(&counter)?.trim().parse()?;
    let _ = std::fs::remove_dir_all(&dir);
    let mean = total as f64 / counts.len() as f64;
    let fairness = *counts.iter().min().unwrap_or(&0) as f64 / mean;
    let per_op_us = CONTENDED_FOR.as_secs_f64() * 1e6 / total as f64;
    println!(
        "{{\"scenario\": \"contended-4\", \"impl\": \"latchkey-rust\", \"ops_per_s\": {:.0}, \"median_us\": {per_op_us:.2}, \"fairness\": {fairness:.3}, \"violations\": {}, \"per_process\": {counts:?}}}",
        total as f64 / CONTENDED_FOR.as_secs_f64(),
        total.abs_diff(final_count),
    );
    Ok(())
}

fn contend(args: &[String]) -> Res<()> {
    let (url, name) = (&args[0], &args[1]);
    let start: u64 = args[2].parse()?;
    let end: u64 = args[3].parse()?;
    let counter = &args[4];
    let client = Client::open(url)?;
    let lock = client.lock_with(name, LockOptions::new())?;
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
