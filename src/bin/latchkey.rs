//! `latchkey`: a small command-line tool over the library, for operators
//! (who holds a lock? force it open) and for the multi-process tests, the
//! demo and the benchmarks (contend for a lock, hold one and take orders).
//!
//! ```text
//! latchkey [--url URL]... [--prefix P] inspect NAME
//! latchkey [--url URL] [--prefix P] unlock NAME
//! latchkey [--url URL] [--prefix P] hold NAME [--ttl-ms N] [--no-renew]
//! latchkey [--url URL] [--prefix P] worker NAME --count N --counter FILE [--log FILE] [--ttl-ms N] [--verbose]
//!
//! Give `--url` several times (an odd number, at least 3) for Redlock over
//! independent masters.
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use latchkey::{Client, LockOptions};

struct Args {
    urls: Vec<String>,
    prefix: Option<String>,
    command: String,
    name: String,
    ttl_ms: u64,
    renew: bool,
    count: u64,
    counter: Option<String>,
    log: Option<String>,
    verbose: bool,
}

const USAGE: &str =
    "usage: latchkey [--url URL]... [--prefix P] (inspect|unlock|hold|worker) NAME \
[--ttl-ms N] [--no-renew] [--count N] [--counter FILE] [--log FILE] [--verbose]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        urls: Vec::new(),
        prefix: None,
        command: String::new(),
        name: String::new(),
        ttl_ms: 30_000,
        renew: true,
        count: 1,
        counter: None,
        log: None,
        verbose: false,
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |flag: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} needs a number, got '{v}'"))
        };
        match arg.as_str() {
            "--url" => args.urls.push(value("--url")?),
            "--prefix" => args.prefix = Some(value("--prefix")?),
            "--ttl-ms" => args.ttl_ms = number("--ttl-ms", value("--ttl-ms")?)?,
            "--count" => args.count = number("--count", value("--count")?)?,
            "--counter" => args.counter = Some(value("--counter")?),
            "--log" => args.log = Some(value("--log")?),
            "--no-renew" => args.renew = false,
            "--verbose" => args.verbose = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            _ => positional.push(arg),
        }
    }
    if args.urls.is_empty() {
        args.urls.push(
            std::env::var("LATCHKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        );
    }
    match positional.as_slice() {
        [command, name] => {
            args.command = command.clone();
            args.name = name.clone();
            Ok(args)
        }
        _ => Err(USAGE.to_string()),
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the
/// machine, so hold intervals recorded by different workers compare.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey {}: {e}", args.command);
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = if args.urls.len() > 1 {
        Client::redlock_builder(&args.urls)
    } else {
        Client::builder(&args.urls[0])
    };
    if let Some(prefix) = &args.prefix {
        builder = builder.prefix(prefix.clone());
    }
    let client = builder.build()?;
    let options = LockOptions::new()
        .ttl(Duration::from_millis(args.ttl_ms))
        .auto_renew(args.renew);
    match args.command.as_str() {
        "inspect" => match client.inspect(&args.name)? {
            Some(info) => println!(
                "held owner={} fencing={} ttl_ms={} reentrant={} holds={}",
                info.owner_token,
                info.fencing_token,
                info.ttl.map_or(-1, |t| t.as_millis() as i64),
                info.reentrant,
                info.hold_count
            ),
            None => println!("free"),
        },
        "unlock" => println!(
            "{}",
            if client.force_unlock(&args.name)? {
                "unlocked"
            } else {
                "free"
            }
        ),
        "hold" => hold(&client, &args.name, options)?,
        "worker" => worker(&client, args, options)?,
        other => return Err(format!("unknown command '{other}'\n{USAGE}").into()),
    }
    Ok(())
}

/// Acquires, prints `acquired FENCING TOKEN`, then obeys one command per
/// stdin line: `check`, `write RESOURCE VALUE`, `remaining`, `release`.
fn hold(
    client: &Client,
    name: &str,
    options: LockOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let options = options.on_lost(|lost| {
        println!("lost-callback {}", lost.reason);
        let _ = std::io::stdout().flush();
    });
    let guard = client.lock_with(name, options)?.acquire()?;
    let mut out = std::io::stdout();
    writeln!(out, "acquired {} {}", guard.fencing_token(), guard.token())?;
    out.flush()?;
    let mut guard = Some(guard);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match (words.as_slice(), guard.as_ref()) {
            (["check"], Some(g)) => match g.check() {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("lost {e}"),
            },
            (["remaining"], Some(g)) => format!("remaining {}", g.remaining().as_millis()),
            (["write", resource, value], Some(g)) => {
                let outcome = client.fenced_write(resource, g.fencing_token(), value.as_bytes())?;
                if outcome.written {
                    "written".to_string()
                } else {
                    format!("refused {}", outcome.highest_token)
                }
            }
            (["release"], Some(_)) => match guard.take().map(|g| g.release()) {
                Some(Err(e)) => format!("error {:?} {e}", e.kind()),
                _ => "released".to_string(),
            },
            _ => format!("unknown command '{line}'"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// Acquires `count` times; under the lock reads a counter file, sleeps not
/// at all, writes it back plus one (a deliberately non-atomic update) and
/// logs `start_ns end_ns fencing_token` per hold.
fn worker(
    client: &Client,
    args: &Args,
    options: LockOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let counter = args
        .counter
        .as_deref()
        .ok_or("worker needs --counter FILE")?;
    let lock = client.lock_with(&args.name, options)?;
    let mut log = String::new();
    for _ in 0..args.count {
        let guard = lock.acquire()?;
        let start = monotonic_ns();
        let value: u64 = std::fs::read_to_string(counter)
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(counter, (value + 1).to_string())?;
        let end = monotonic_ns();
        let fencing = guard.fencing_token();
        guard.release()?;
        if args.verbose {
            println!(
                "[rust   pid {:>6}] holds '{}' fencing token {fencing}, counter {} -> {}",
                std::process::id(),
                args.name,
                value,
                value + 1
            );
        }
        log.push_str(&format!("{start} {end} {fencing}\n"));
    }
    if let Some(path) = &args.log {
        std::fs::write(path, log)?;
    }
    Ok(())
}
