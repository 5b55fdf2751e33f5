//! The Rust peer of latchkey in `make bench`: redlock-rs (the `redlock`
//! crate), used the way its README shows (`RedLock::new(urls)`,
//! `acquire(resource, ttl)`, the guard releases on drop), with its default
//! retry settings (3 tries, up to 200 ms apart, inside `acquire`'s loop).
//! Same scenarios and output as bench/rust/main.rs; the floor is a PING on
//! one connection of the same redis crate version, interleaved.
//!
//! ```text
//! peers-rust cycle URL CYCLES
//! peers-rust cycle-redlock SCENARIO CYCLES URL...
//! peers-rust handoff URL ROUNDS
//! peers-rust waiter URL NAME                         (internal)
//! peers-rust contend URL NAME START_NS END_NS FILE   (internal)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redlock::RedLock;

const IMPL: &str = "redlock-rs";
const BATCHES: usize = 10;
const TTL_MS: usize = 30_000;
/// redlock-rs sleeps a random 0..200 ms between two attempts.
const RETRY_DELAY_MS: u64 = 200;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let result = match (arg(1), args.len()) {
        ("cycle", 4) => cycle("cycle", &args[2..3], arg(3)),
        ("cycle-redlock", n) if n >= 5 => cycle(arg(2), &args[4..], arg(3)),
        ("handoff", 4) => handoff(arg(2), arg(3)),
        ("waiter", 4) => waiter(arg(2), arg(3)),
        ("contend", 7) => contend(&args[2..]),
        _ => Err("usage: see the comment at the top of bench/peers-rust/src/main.rs".into()),
    };
    if let Err(e) = result {
        eprintln!("peers-rust: {e}");
        std::process::exit(1);
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small xorshift, seeded from the clock: the random release moments of
/// the polling handoff.
fn random_below(n: u64, state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % n.max(1)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// median (of batch medians), p90, smallest and largest batch median, mean,
/// count.
fn stats(samples_ns: &[u64]) -> (f64, f64, f64, f64, f64, usize) {
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
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let all = sorted(us);
    (
        quantile(&medians, 0.5),
        quantile(&all, 0.9),
        medians[0],
        medians[medians.len() - 1],
        mean,
        all.len(),
    )
}

fn print_row(scenario: &str, samples: &[u64], floor: &[u64], extra: &str) {
    let (median, p90, lo, hi, mean, n) = stats(samples);
    let floor_us = stats(floor).0;
    // BENCH_SAMPLES=1: every sample (µs, in the order taken), for
    // bench/rows.py to pool the interleaved rounds of bench/run.sh.
    let raw = if std::env::var("BENCH_SAMPLES").as_deref() == Ok("1") {
        let us: Vec<String> = samples
            .iter()
            .map(|&ns| format!("{:.2}", ns as f64 / 1000.0))
            .collect();
        format!(", \"samples_us\": [{}]", us.join(", "))
    } else {
        String::new()
    };
    println!(
        "{{\"scenario\": \"{scenario}\", \"impl\": \"{IMPL}\", \"median_us\": {median:.2}, \"p90_us\": {p90:.2}, \"spread_us\": [{lo:.2}, {hi:.2}], \"mean_us\": {mean:.2}, \"floor_us\": {floor_us:.2}, \"ratio\": {:.3}, \"ops_per_s\": {:.1}, \"samples\": {n}{extra}{raw}}}",
        median / floor_us,
        1e6 / median
    );
}

fn ping(conn: &mut redis::Connection) -> Res<u64> {
    let t = Instant::now();
    redis::cmd("PING").query::<String>(conn)?;
    Ok(t.elapsed().as_nanos() as u64)
}

/// Uncontended acquire + release on `urls` (one master, or a Redlock of
/// several), interleaved with a PING on the first master.
fn cycle(scenario: &str, urls: &[String], cycles: &str) -> Res<()> {
    let cycles: usize = cycles.parse()?;
    let rl = RedLock::new(urls.to_vec());
    let mut conn = redis::Client::open(urls[0].as_str())?.get_connection()?;
    let warm_up = cycles / 20 + 20;
    let (mut floor, mut samples) = (Vec::new(), Vec::new());
    let resource = format!("bench:{scenario}:redlock-rs");
    for i in 0..cycles + warm_up {
        let f = ping(&mut conn)?;
        let t = Instant::now();
        drop(rl.acquire(resource.as_bytes(), TTL_MS)?);
        let c = t.elapsed().as_nanos() as u64;
        if i >= warm_up {
            floor.push(f);
            samples.push(c);
        }
    }
    let extra = format!(
        ", \"masters\": {}, \"floor_source\": \"PING on one connection (redis {}), interleaved\"",
        urls.len(),
        "0.23"
    );
    print_row(scenario, &samples, &floor, &extra);
    Ok(())
}

/// Release -> return of an acquire blocked in another process. redlock-rs
/// polls, so the release comes at a random moment of the waiter's retry
/// cycle (5 ms after it started waiting, plus up to one retry delay).
fn handoff(url: &str, rounds: &str) -> Res<()> {
    let rounds: usize = rounds.parse()?;
    let name = "bench:handoff:redlock-rs";
    let rl = RedLock::new(vec![url.to_string()]);
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["waiter", url, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_waiter = child.stdin.take().ok_or("no stdin")?;
    let mut from_waiter = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut rng = monotonic_ns() | 1;
    let warm_up = 2;
    let (mut floor, mut samples) = (Vec::new(), Vec::new());
    for round in 0..rounds + warm_up {
        let guard = rl.acquire(name.as_bytes(), TTL_MS)?;
        writeln!(to_waiter, "go")?;
        to_waiter.flush()?;
        let mut line = String::new();
        from_waiter.read_line(&mut line)?; // "waiting"
        let pause = 5_000 + random_below(RETRY_DELAY_MS * 1000, &mut rng);
        std::thread::sleep(Duration::from_micros(pause));
        let f = ping(&mut conn)?;
        let t0 = monotonic_ns();
        drop(guard);
        line.clear();
        from_waiter.read_line(&mut line)?;
        let t1: u64 = line.trim().parse()?;
        if round >= warm_up {
            floor.push(f);
            samples.push(t1.saturating_sub(t0));
        }
    }
    drop(to_waiter);
    child.wait()?;
    print_row(
        "handoff",
        &samples,
        &floor,
        ", \"floor_source\": \"PING from the holder just before the release\", \"waiting\": \"polls: 3 tries per lock() call, 0-200 ms apart\"",
    );
    Ok(())
}

fn waiter(url: &str, name: &str) -> Res<()> {
    let rl = RedLock::new(vec![url.to_string()]);
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        line?;
        writeln!(out, "waiting")?;
        out.flush()?;
        let guard = rl.acquire(name.as_bytes(), TTL_MS)?;
        let t1 = monotonic_ns();
        drop(guard);
        writeln!(out, "{t1}")?;
        out.flush()?;
    }
    Ok(())
}

/// One contender of `contended-4` (bench/contend.py drives four).
fn contend(args: &[String]) -> Res<()> {
    let (url, name) = (&args[0], &args[1]);
    let start: u64 = args[2].parse()?;
    let end: u64 = args[3].parse()?;
    let counter = &args[4];
    let rl = RedLock::new(vec![url.to_string()]);
    let now = monotonic_ns();
    if start > now {
        std::thread::sleep(Duration::from_nanos(start - now));
    }
    let mut count = 0u64;
    while monotonic_ns() < end {
        let guard = rl.acquire(name.as_bytes(), TTL_MS)?;
        let value: u64 = std::fs::read_to_string(counter)?
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(counter, (value + 1).to_string())?;
        drop(guard);
        count += 1;
    }
    println!("{count}");
    Ok(())
}
