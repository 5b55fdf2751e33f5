//! The chaos checker's Rust worker: one process of the workload. It loops
//! until a deadline: acquire one of the shared lock names (blocking, with a
//! timeout, one try, or cancelled from another thread), write its fencing
//! token to the storage server with a fenced write, hold the lock for a
//! random time (some holds outlive the ttl, with or without renewal),
//! `check()`, release. Every call goes to a history file, one JSON object
//! per line, with CLOCK_MONOTONIC times that all processes share.
//!
//! usage: chaos-worker --deployment SPEC --storage URL --names A,B --ttl-ms N
//!        --seed N --id ID --history FILE --until-ns N [--command-timeout-ms N]
//!        [--long-percent N] [--renew-percent N] [--fair 0|1] [--semaphore N]
//! With `--fair 1` every lock is fair (`LockOptions::fair`) and every
//! acquire line says `"fair":true`. With `--semaphore N` (N > 0) every name
//! is a semaphore of N permits (`Client::semaphore_with`) and each hold
//! takes 1 of them, sometimes 2; its acquire line says `"size":N,"permits":P`.
//! SPEC: single:URL | redlock:URL,URL,.. | sentinel:MASTER:URL,URL,.. | cluster:URL,URL,..

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey::{CancelToken, Client, ClientBuilder, Guard, Lock, LockOptions, Semaphore};

/// What a worker acquires: a lock, or permits of a semaphore.
enum Target {
    Lock(Lock),
    Semaphore(Semaphore),
}

/// Nanoseconds on CLOCK_MONOTONIC, the clock every worker and the
/// orchestrator share on Linux.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// splitmix64: a seeded sequence, so a seed replays the same operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The history file: one JSON object per line, written with one write(2)
/// each so that a SIGKILL loses at most the call in flight.
struct History {
    file: Mutex<File>,
    worker: String,
}

impl History {
    fn log(&self, fields: &[(&str, Json)]) {
        let mut line = format!(
            "{{\"w\":{},\"lang\":\"rust\",\"wall\":{}",
            quote(&self.worker),
            wall_ns()
        );
        for (key, value) in fields {
            line.push_str(&format!(",{}:{}", quote(key), value.text()));
        }
        line.push_str("}\n");
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

enum Json {
    Str(String),
    Num(u64),
    Bool(bool),
}

impl Json {
    fn text(&self) -> String {
        match self {
            Json::Str(s) => quote(s),
            Json::Num(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn s(v: impl Into<String>) -> Json {
    Json::Str(v.into())
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(key) = it.next() {
            let key = key
                .strip_prefix("--")
                .ok_or(format!("unexpected argument {key}"))?
                .to_string();
            let value = it.next().ok_or(format!("--{key} needs a value"))?;
            map.insert(key, value);
        }
        Ok(Args(map))
    }
    fn get(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or(format!("--{key} is required"))
    }
    fn num(&self, key: &str, default: Option<u64>) -> Result<u64, String> {
        match (self.0.get(key), default) {
            (Some(v), _) => v.parse().map_err(|_| format!("--{key}: not a number: {v}")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("--{key} is required")),
        }
    }
}

fn builder(spec: &str) -> Result<ClientBuilder, String> {
    let (kind, rest) = spec.split_once(':').ok_or("bad --deployment")?;
    let urls = |text: &str| text.split(',').map(str::to_string).collect::<Vec<_>>();
    Ok(match kind {
        "single" => Client::builder(rest),
        "redlock" => Client::redlock_builder(&urls(rest)),
        "cluster" => Client::cluster_builder(&urls(rest)),
        "sentinel" => {
            let (master, list) = rest.split_once(':').ok_or("bad sentinel spec")?;
            Client::sentinel_builder(&urls(list), master)
        }
        other => return Err(format!("unknown deployment kind {other}")),
    })
}

fn main() {
    if let Err(e) = run() {
        eprintln!("chaos-worker: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let timeout = Duration::from_millis(args.num("command-timeout-ms", Some(1000))?);
    let ttl = Duration::from_millis(args.num("ttl-ms", None)?);
    let until = args.num("until-ns", None)?;
    // How many holds in a hundred outlive the ttl (renewed, or lost).
    let long_percent = args.num("long-percent", Some(15))?.min(85);
    // How many holds in a hundred the watchdog renews.
    let renew_percent = args.num("renew-percent", Some(70))?;
    // Whether every lock is fair (first come, first served).
    let fair = args.num("fair", Some(0))? != 0;
    // Semaphores of this size instead of locks (0: locks).
    let sem_size = args.num("semaphore", Some(0))? as u32;
    let mut rng = Rng(args.num("seed", None)?);
    let history = Arc::new(History {
        file: Mutex::new(File::create(args.get("history")?).map_err(|e| e.to_string())?),
        worker: args.get("id")?.to_string(),
    });
    let client = builder(args.get("deployment")?)?
        .connect_timeout(timeout)
        .command_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let storage = Client::builder(args.get("storage")?)
        .connect_timeout(timeout)
        .command_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = args.get("names")?.split(',').map(str::to_string).collect();
    // Per name: a lock renewed by the watchdog and one that is not.
    let mut locks: Vec<(String, Target, Target)> = Vec::new();
    for name in &names {
        let on_lost = |history: Arc<History>| {
            move |lost: &latchkey::LostLease| {
                history.log(&[
                    ("op", s("lost")),
                    ("name", s(lost.name.clone())),
                    ("hold", s(lost.token.clone())),
                    ("fence", Json::Num(lost.fencing_token)),
                    ("t", Json::Num(mono_ns())),
                    ("reason", s(lost.reason.clone())),
                ])
            }
        };
        let renewed = LockOptions::new()
            .ttl(ttl)
            .fair(fair)
            .on_lost(on_lost(history.clone()));
        let plain = LockOptions::new()
            .ttl(ttl)
            .fair(fair)
            .auto_renew(false)
            .on_lost(on_lost(history.clone()));
        let target = |options: LockOptions| -> Result<Target, String> {
            if sem_size > 0 {
                client
                    .semaphore_with(name, sem_size, options.fair(false))
                    .map(Target::Semaphore)
            } else {
                client.lock_with(name, options).map(Target::Lock)
            }
            .map_err(|e| e.to_string())
        };
        locks.push((name.clone(), target(renewed)?, target(plain)?));
    }
    history.log(&[("op", s("start")), ("t", Json::Num(mono_ns()))]);
    let ttl_ms = ttl.as_millis() as u64;
    let mut seq = 0u64;
    while mono_ns() < until {
        seq += 1;
        let (name, renewed, plain) = &locks[rng.below(locks.len() as u64) as usize];
        let renew = rng.chance(renew_percent);
        let lock = if renew { renewed } else { plain };
        let mode = match rng.below(100) {
            0..=9 => "blocking",
            10..=59 => "timeout",
            60..=84 => "try",
            _ => "cancel",
        };
        let permits = if sem_size > 1 && rng.chance(25) { 2 } else { 1 };
        let wait_ms = 100 + rng.below(3 * ttl_ms);
        let cancel_after = rng.below(2 * ttl_ms);
        let t0 = mono_ns();
        let result = acquire(lock, permits, mode, wait_ms, cancel_after);
        let t1 = mono_ns();
        let mut fields = vec![
            ("op", s("acquire")),
            ("seq", Json::Num(seq)),
            ("name", s(name.clone())),
            ("mode", s(mode)),
            ("renew", Json::Bool(renew)),
            ("ttl_ms", Json::Num(ttl_ms)),
            ("t0", Json::Num(t0)),
            ("t1", Json::Num(t1)),
        ];
        if fair {
            fields.push(("fair", Json::Bool(true)));
        }
        if sem_size > 0 {
            fields.push(("size", Json::Num(sem_size.into())));
            fields.push(("permits", Json::Num(permits.into())));
        }
        if mode != "blocking" {
            let deadline = match mode {
                "try" => 0,
                "cancel" => wait_ms.min(cancel_after),
                _ => wait_ms,
            };
            fields.push(("deadline_ms", Json::Num(deadline)));
        }
        let guard = match result {
            Ok(Some(guard)) => {
                fields.push(("ok", Json::Bool(true)));
                fields.push(("hold", s(guard.token())));
                fields.push(("fence", Json::Num(guard.fencing_token())));
                history.log(&fields);
                guard
            }
            Ok(None) => {
                fields.push(("ok", Json::Bool(false)));
                fields.push(("err", s("Timeout")));
                history.log(&fields);
                std::thread::sleep(Duration::from_millis(rng.below(50)));
                continue;
            }
            Err(e) => {
                fields.push(("ok", Json::Bool(false)));
                fields.push(("err", s(format!("{:?}", e.kind()))));
                fields.push(("msg", s(e.message())));
                history.log(&fields);
                std::thread::sleep(Duration::from_millis(rng.below(50)));
                continue;
            }
        };
        hold(
            &history,
            &storage,
            guard,
            name,
            seq,
            &mut rng,
            ttl_ms,
            long_percent,
        );
    }
    history.log(&[("op", s("stop")), ("t", Json::Num(mono_ns()))]);
    Ok(())
}

fn acquire(
    target: &Target,
    permits: u32,
    mode: &str,
    wait_ms: u64,
    cancel_after: u64,
) -> latchkey::Result<Option<Guard>> {
    let acquire_with = |timeout: Option<Duration>, cancel: Option<&CancelToken>| match target {
        Target::Lock(lock) => lock.acquire_with(timeout, cancel),
        Target::Semaphore(sem) => sem.acquire_with(permits, timeout, cancel),
    };
    match mode {
        "blocking" => acquire_with(None, None).map(Some),
        "try" => match target {
            Target::Lock(lock) => lock.try_acquire(),
            Target::Semaphore(sem) => sem.try_acquire(permits),
        },
        "cancel" => {
            let cancel = CancelToken::new();
            let (done, finished) = std::sync::mpsc::channel::<()>();
            std::thread::scope(|scope| {
                // Cancels after `cancel_after`, or leaves as soon as the
                // acquire returned (the sender is dropped).
                let cancel = &cancel;
                scope.spawn(move || {
                    let waited = finished.recv_timeout(Duration::from_millis(cancel_after));
                    if matches!(waited, Err(std::sync::mpsc::RecvTimeoutError::Timeout)) {
                        cancel.cancel();
                    }
                });
                let result = acquire_with(Some(Duration::from_millis(wait_ms)), Some(cancel));
                drop(done);
                timeout_as_none(result)
            })
        }
        _ => timeout_as_none(acquire_with(Some(Duration::from_millis(wait_ms)), None)),
    }
}

fn timeout_as_none(result: latchkey::Result<Guard>) -> latchkey::Result<Option<Guard>> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(e) if e.kind() == latchkey::ErrorKind::Timeout => Ok(None),
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn hold(
    history: &History,
    storage: &Client,
    guard: Guard,
    name: &str,
    seq: u64,
    rng: &mut Rng,
    ttl_ms: u64,
    long_percent: u64,
) {
    let hold_token = guard.token().to_string();
    let fence = guard.fencing_token();
    let common = |op: &str| {
        vec![
            ("op", s(op)),
            ("seq", Json::Num(seq)),
            ("name", s(name)),
            ("hold", s(hold_token.clone())),
            ("fence", Json::Num(fence)),
        ]
    };
    // The fenced write of this hold's token to the storage server, then
    // the guard's own fenced write (through the lock's client, so to the
    // lock deployment), which carries the hold's token too.
    let value = format!("{}:{seq}", history.worker);
    let log_write = |op: &str, t0: u64, written: latchkey::Result<latchkey::FencedWrite>| {
        let t1 = mono_ns();
        let mut fields = common(op);
        fields.extend([("t0", Json::Num(t0)), ("t1", Json::Num(t1))]);
        match written {
            Ok(w) => {
                fields.push(("ok", Json::Bool(w.written)));
                fields.push(("highest", Json::Num(w.highest_token)));
            }
            Err(e) => {
                fields.push(("ok", Json::Bool(false)));
                fields.push(("err", s(format!("{:?}", e.kind()))));
            }
        }
        history.log(&fields);
    };
    let t0 = mono_ns();
    let written = storage.fenced_write(&format!("res-{name}"), fence, value.as_bytes());
    log_write("write", t0, written);
    let t0 = mono_ns();
    let written = guard.fenced_write(&format!("gres-{name}"), value.as_bytes());
    log_write("gwrite", t0, written);
    // Mostly short holds; some outlive the ttl (renewed, or lost).
    let roll = rng.below(100);
    let hold_ms = if roll < long_percent {
        ttl_ms + rng.below(ttl_ms)
    } else if roll < long_percent + 15 {
        ttl_ms / 3 + rng.below(ttl_ms)
    } else {
        rng.below(ttl_ms / 4)
    };
    std::thread::sleep(Duration::from_millis(hold_ms));
    let t0 = mono_ns();
    let checked = guard.check();
    let t1 = mono_ns();
    let mut fields = common("check");
    fields.extend([
        ("t0", Json::Num(t0)),
        ("t1", Json::Num(t1)),
        ("ok", Json::Bool(checked.is_ok())),
    ]);
    if let Err(e) = &checked {
        fields.push(("err", s(format!("{:?}", e.kind()))));
    }
    history.log(&fields);
    let t0 = mono_ns();
    let released = guard.release();
    let t1 = mono_ns();
    let mut fields = common("release");
    fields.extend([
        ("t0", Json::Num(t0)),
        ("t1", Json::Num(t1)),
        ("ok", Json::Bool(released.is_ok())),
    ]);
    if let Err(e) = &released {
        fields.push(("err", s(format!("{:?}", e.kind()))));
        fields.push(("msg", s(e.message())));
    }
    history.log(&fields);
}
