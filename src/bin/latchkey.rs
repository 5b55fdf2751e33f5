//! `latchkey`: a small command-line tool over the library, for operators
//! (who holds a lock? force it open) and for the multi-process tests, the
//! demo and the benchmarks (contend for a lock, hold one and take orders).
//! `latchkey --help` documents the commands and the exit codes.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use latchkey::{CancelToken, Client, ErrorKind, Guard, LockOptions};

const EXIT_CODES: &str = "\
Exit status:
  0    success
  1    Redis failed or refused (connection, authentication, server error,
       no quorum); hold: also whenever the lease was lost during the hold,
       however the hold ended (end of input, release, error or signal),
       and when the final release failed
  2    usage error: a bad command line, URL or option
  3    hold: the lock stayed held by another owner until --timeout-ms
  128+N  hold: ended by signal N (SIGHUP, SIGINT or SIGTERM) after
       releasing the lock (or giving up the wait)";

/// Distributed locks over Redis: look at them, force them open, hold them.
#[derive(Parser)]
#[command(name = "latchkey", version, after_help = EXIT_CODES)]
struct Cli {
    /// Redis URL, redis[s]://[user:password@]host[:port][/db] or unix:///path;
    /// give it 3, 5, ... times for Redlock over independent masters
    /// [default: $LATCHKEY_URL, else redis://127.0.0.1:6379]
    #[arg(long = "url", value_name = "URL", global = true)]
    urls: Vec<String>,

    /// Prefix of every Redis key [default: latchkey]
    #[arg(long, value_name = "PREFIX", global = true)]
    prefix: Option<String>,

    /// For rediss:// URLs: trust the CA certificates in this PEM file
    /// [default: the system's CA store]
    #[arg(long, value_name = "FILE", global = true)]
    tls_ca_file: Option<std::path::PathBuf>,

    /// For rediss:// URLs: client certificate (PEM) for mutual TLS; needs
    /// --tls-key-file
    #[arg(long, value_name = "FILE", global = true, requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,

    /// For rediss:// URLs: the client certificate's private key (PEM)
    #[arg(long, value_name = "FILE", global = true, requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,

    /// For rediss:// URLs: the name the server's certificate must carry
    /// [default: the URL's host]
    #[arg(long, value_name = "NAME", global = true)]
    tls_server_name: Option<String>,

    /// For rediss:// URLs: ACCEPT ANY SERVER CERTIFICATE (encrypted, but to
    /// whoever answers; for throwaway test servers only)
    #[arg(long, global = true)]
    tls_insecure_skip_verify: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print who holds NAME ("held owner=... fencing=... ttl_ms=..."), then its
    /// queue ("queue waiters=N listed=M", then "waiter ID expires_in_ms=MS"
    /// per listed waiter, the next to get the lock first; at most 1000 are
    /// listed), or "free"
    Inspect {
        /// The lock's name
        name: String,
    },
    /// Delete NAME whoever holds it and wake its waiters; print "unlocked" or "free"
    Unlock {
        /// The lock's name
        name: String,
    },
    /// Acquire NAME, print "acquired FENCING OWNER", then obey one command per
    /// stdin line (check, remaining, write RESOURCE VALUE, release); release
    /// at the end of input or on SIGHUP, SIGINT or SIGTERM
    Hold {
        /// The lock's name
        name: String,
        #[command(flatten)]
        lease: Lease,
        /// Give up (exit status 3) if the lock is not acquired within this
        /// many milliseconds [default: wait without limit]
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// Acquire NAME COUNT times, each time adding one to the number in
    /// COUNTER (a deliberately non-atomic read and write)
    Worker {
        /// The lock's name
        name: String,
        #[command(flatten)]
        lease: Lease,
        /// How many times to acquire
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// The counter file
        #[arg(long, value_name = "FILE")]
        counter: PathBuf,
        /// Write "start_ns end_ns fencing_token" per hold to FILE
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Print a line per hold
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Args)]
struct Lease {
    /// Lease length in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    ttl_ms: u64,
    /// Do not renew the lease (it ends after --ttl-ms)
    #[arg(long)]
    no_renew: bool,
    /// A fair lock: first come, first served; never take the lock while a
    /// waiter that queued earlier is waiting for it (LockOptions::fair)
    #[arg(long)]
    fair: bool,
}

impl Lease {
    fn options(&self) -> LockOptions {
        LockOptions::new()
            .ttl(Duration::from_millis(self.ttl_ms))
            .auto_renew(!self.no_renew)
            .fair(self.fair)
    }
}

/// How a command ended, as an exit status.
enum Outcome {
    Done,
    Failed(latchkey::Error),
    Other(String),
    Signalled(i32),
}

impl From<latchkey::Error> for Outcome {
    fn from(err: latchkey::Error) -> Self {
        Outcome::Failed(err)
    }
}

impl From<std::io::Error> for Outcome {
    fn from(err: std::io::Error) -> Self {
        Outcome::Other(err.to_string())
    }
}

fn main() -> ExitCode {
    // Help and version go to stdout with status 0, usage errors to stderr
    // with status 2; clap prints both.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    // Before any thread starts, so that every thread inherits the mask.
    let signals = matches!(cli.command, Command::Hold { .. }).then(SignalWatch::start);
    let outcome = match run(&cli, signals) {
        Ok(()) => Outcome::Done,
        Err(outcome) => outcome,
    };
    let command = match &cli.command {
        Command::Inspect { .. } => "inspect",
        Command::Unlock { .. } => "unlock",
        Command::Hold { .. } => "hold",
        Command::Worker { .. } => "worker",
    };
    match outcome {
        Outcome::Done => ExitCode::SUCCESS,
        Outcome::Signalled(signal) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        Outcome::Other(message) => {
            eprintln!("latchkey {command}: {message}");
            ExitCode::FAILURE
        }
        Outcome::Failed(err) => {
            eprintln!("latchkey {command}: {err}");
            ExitCode::from(match err.kind() {
                ErrorKind::InvalidArgument => 2,
                ErrorKind::Timeout => 3,
                _ => 1,
            })
        }
    }
}

fn run(cli: &Cli, signals: Option<SignalWatch>) -> Result<(), Outcome> {
    let urls = if cli.urls.is_empty() {
        vec![std::env::var("LATCHKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())]
    } else {
        cli.urls.clone()
    };
    let mut builder = match urls.as_slice() {
        [one] => Client::builder(one),
        many => Client::redlock_builder(many),
    };
    if let Some(prefix) = &cli.prefix {
        builder = builder.prefix(prefix.clone());
    }
    if let Some(path) = &cli.tls_ca_file {
        builder = builder.tls_ca_file(path);
    }
    if let (Some(cert), Some(key)) = (&cli.tls_cert_file, &cli.tls_key_file) {
        builder = builder.tls_client_cert(cert, key);
    }
    if let Some(name) = &cli.tls_server_name {
        builder = builder.tls_server_name(name.clone());
    }
    if cli.tls_insecure_skip_verify {
        builder = builder.tls_insecure_skip_verify(true);
    }
    let client = builder.build()?;
    let outcome = command(cli, &client, signals);
    // The process ends next: closing the client takes a waiter that gave
    // up (a signal while `hold` waits) out of the lock's queue now; left
    // to the library's background thread, which the exit ends, it stayed
    // queued, and a fair lock was handed to it until its entry ran out.
    // Holds were released above; what close reports is only about them.
    let _ = client.close();
    outcome
}

/// Runs the command of `cli` on `client`.
fn command(cli: &Cli, client: &Client, signals: Option<SignalWatch>) -> Result<(), Outcome> {
    match &cli.command {
        Command::Inspect { name } => {
            match client.inspect(name)? {
                Some(info) => {
                    // The first line stays as it was: scripts parse it.
                    println!(
                        "held owner={} fencing={} ttl_ms={} reentrant={} holds={}",
                        info.owner_token,
                        info.fencing_token,
                        info.ttl
                            .map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
                        info.reentrant,
                        info.hold_count
                    );
                    println!(
                        "queue waiters={} listed={}",
                        info.queue_len,
                        info.queue.len()
                    );
                    for waiter in &info.queue {
                        println!(
                            "waiter {} expires_in_ms={}",
                            waiter.id,
                            waiter.expires_in.as_millis()
                        );
                    }
                }
                None => println!("free"),
            }
            Ok(())
        }
        Command::Unlock { name } => {
            let deleted = client.force_unlock(name)?;
            println!("{}", if deleted { "unlocked" } else { "free" });
            Ok(())
        }
        Command::Hold {
            name,
            lease,
            timeout_ms,
        } => {
            let Some(signals) = signals else {
                return Err(Outcome::Other("signals are not being watched".into()));
            };
            hold(client, name, lease.options(), *timeout_ms, signals)
        }
        Command::Worker {
            name,
            lease,
            count,
            counter,
            log,
            verbose,
        } => worker(
            client,
            name,
            lease.options(),
            *count,
            counter,
            log.as_deref(),
            *verbose,
        ),
    }
}

/// The signals that end `hold`. They are blocked in every thread and taken
/// by one thread with sigwait (so nothing runs in a signal handler); that
/// thread cancels a waiting acquire and tells the main loop, which releases
/// the lock.
struct SignalWatch {
    cancel: CancelToken,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
}

/// What the main loop of `hold` reacts to.
enum Event {
    Signal(i32),
    Line(String),
    /// A line that is not UTF-8: answered with an error, the hold goes on.
    NotText,
    EndOfInput,
    InputError(String),
    /// Writing stdout failed (the reader closed it).
    OutputError(String),
    /// Every line handed to the writer is written.
    OutputDone,
}

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

impl SignalWatch {
    fn start() -> SignalWatch {
        // SAFETY: sigemptyset/sigaddset fill a set we own; pthread_sigmask
        // changes this thread's mask, inherited by the threads it starts.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in STOP_SIGNALS {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let (sender, events) = mpsc::channel();
        let cancel = CancelToken::new();
        let (to_main, token) = (sender.clone(), cancel.clone());
        std::thread::spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: waits for a signal of `set`, blocked in every thread.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                continue;
            }
            token.cancel();
            if to_main.send(Event::Signal(signal)).is_err() {
                return;
            }
        });
        SignalWatch {
            cancel,
            events,
            sender,
        }
    }

    /// The signal that cancelled the wait. Only the signal thread cancels,
    /// and it sends the signal right after: wait for it (looking only at
    /// what had arrived already made a SIGTERM during the wait exit 1, not
    /// 143, when the acquire returned first: 6 of 10 runs of
    /// tests/cli.rs a_signal_ends_a_waiting_hold).
    fn received(&self) -> Option<i32> {
        self.events.iter().find_map(|event| match event {
            Event::Signal(signal) => Some(signal),
            _ => None,
        })
    }
}

/// Acquires, prints `acquired FENCING TOKEN`, then obeys one command per
/// stdin line: `check`, `write RESOURCE VALUE`, `remaining`, `release`.
fn hold(
    client: &Client,
    name: &str,
    options: LockOptions,
    timeout_ms: Option<u64>,
    signals: SignalWatch,
) -> Result<(), Outcome> {
    let out = Writer::start(signals.sender.clone());
    let reports = out.clone();
    let options = options.on_lost(move |lost| {
        reports.line(format!("lost-callback {}", lost.reason));
    });
    let lock = client.lock_with(name, options)?;
    let acquired = lock.acquire_with(timeout_ms.map(Duration::from_millis), Some(&signals.cancel));
    let guard = match acquired {
        Ok(guard) => guard,
        Err(err) if err.kind() == ErrorKind::Cancelled => {
            return Err(signals
                .received()
                .map_or(Outcome::Failed(err), Outcome::Signalled));
        }
        Err(err) => return Err(err.into()),
    };
    out.line(format!(
        "acquired {} {}",
        guard.fencing_token(),
        guard.token()
    ));

    let to_main = signals.sender.clone();
    std::thread::spawn(move || read_input(&to_main));

    let mut state = HoldState {
        name: name.to_string(),
        guard: Some(guard),
        lost: None,
    };
    loop {
        let event = signals
            .events
            .recv()
            .map_err(|_| Outcome::Other("the signal and input threads ended".into()))?;
        let ending = match event {
            Event::Line(line) => match obey(client, &line, &mut state) {
                Ok(reply) => {
                    out.line(reply);
                    continue;
                }
                Err(outcome) => Err(outcome),
            },
            Event::NotText => {
                out.line("error the line is not UTF-8; the hold goes on".into());
                continue;
            }
            Event::EndOfInput => Ok(()),
            Event::InputError(message) => Err(Outcome::Other(format!("reading stdin: {message}"))),
            Event::OutputError(message) => {
                Err(Outcome::Other(format!("writing stdout: {message}")))
            }
            Event::OutputDone => continue,
            Event::Signal(signal) => Err(Outcome::Signalled(signal)),
        };
        let signalled = matches!(ending, Err(Outcome::Signalled(_)));
        let outcome = state.end(ending);
        if !signalled {
            // The replies still queued are written before the exit, unless
            // the reader stopped reading: a signal then ends the wait.
            out.done();
            for event in signals.events.iter() {
                if matches!(
                    event,
                    Event::OutputDone | Event::OutputError(_) | Event::Signal(_)
                ) {
                    break;
                }
            }
        }
        return outcome;
    }
}

/// Lines for stdout, written by a thread of their own: a reader that stops
/// reading (a full pipe) blocks that thread only, never the main loop of
/// `hold`, which must still end on a signal and release the lock, nor the
/// renewal thread, which runs the lost callback. The writer reports the
/// first failed write (and drops the lines after it), and when it has
/// written every line queued before [`done`](Writer::done).
#[derive(Clone)]
struct Writer(mpsc::Sender<Option<String>>);

impl Writer {
    fn start(to_main: mpsc::Sender<Event>) -> Writer {
        let (lines, queued) = mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut out = std::io::stdout();
            let mut broken = false;
            for line in queued {
                let Some(line) = line else {
                    let _ = to_main.send(Event::OutputDone);
                    continue;
                };
                if broken {
                    continue;
                }
                if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                    // Reported once; later lines are dropped.
                    broken = true;
                    let _ = to_main.send(Event::OutputError(err.to_string()));
                }
            }
        });
        Writer(lines)
    }

    fn line(&self, line: String) {
        // The writer thread lives as long as the process.
        let _ = self.0.send(Some(line));
    }

    /// Asks for an `OutputDone` once the lines queued so far are written.
    fn done(&self) {
        let _ = self.0.send(None);
    }
}

/// Reads stdin as bytes, one event per line (without its line end), for
/// the main loop of `hold`; then `EndOfInput`, or `InputError` if reading
/// failed.
fn read_input(to_main: &mpsc::Sender<Event>) {
    let mut input = std::io::stdin().lock();
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        let event = match input.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                match String::from_utf8(std::mem::take(&mut bytes)) {
                    Ok(line) => Event::Line(line),
                    Err(_) => Event::NotText,
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = to_main.send(Event::InputError(err.to_string()));
                return;
            }
        };
        if to_main.send(event).is_err() {
            return;
        }
    }
    let _ = to_main.send(Event::EndOfInput);
}

/// The hold in progress: its guard until released, and whether its lease
/// was lost at any moment (seen by `check`, `release` or the end).
struct HoldState {
    name: String,
    guard: Option<Guard>,
    lost: Option<String>,
}

impl HoldState {
    /// Ends the hold for `ending` (end of input, an error, a signal):
    /// releases the lock if still held, and exits 1 instead if the lease
    /// was lost at any moment of the hold, or if the release failed
    /// (Redis unreachable: the lock may stay held until its lease runs
    /// out), as `--help` says.
    fn end(mut self, mut ending: Result<(), Outcome>) -> Result<(), Outcome> {
        if let Some(guard) = self.guard.take() {
            if let Err(err) = self.release(guard) {
                if ending.is_ok() && self.lost.is_none() {
                    // Status 1 (Other), never 3: a timed-out release is not
                    // a lock held by another owner.
                    ending = Err(Outcome::Other(format!("release: {err}")));
                } else {
                    eprintln!("latchkey hold: release: {err}");
                }
            }
        }
        match self.lost {
            Some(reason) => Err(Outcome::Failed(latchkey::Error::new(
                ErrorKind::Lost,
                format!(
                    "the lease on lock '{}' was lost during the hold: {reason}",
                    self.name
                ),
            ))),
            None => ending,
        }
    }

    /// Releases `guard`, remembering a loss it reports. The guard is asked
    /// first: a lease lost while Redis is unreachable (the renewals failed
    /// until it ran out) is then remembered too, although the release can
    /// only fail with a connection error.
    fn release(&mut self, guard: Guard) -> Result<(), latchkey::Error> {
        if let Err(err) = guard.check() {
            self.saw(&err);
        }
        guard.release().inspect_err(|err| self.saw(err))
    }

    /// Remembers a loss that `err` reports.
    fn saw(&mut self, err: &latchkey::Error) {
        if matches!(err.kind(), ErrorKind::Lost | ErrorKind::NotHeld) {
            self.lost.get_or_insert_with(|| err.message().to_string());
        }
    }
}

/// One stdin command of `hold`, and its reply.
fn obey(client: &Client, line: &str, state: &mut HoldState) -> Result<String, Outcome> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let guard = &mut state.guard;
    Ok(match (words.as_slice(), guard.as_ref()) {
        (["check"], Some(g)) => match g.check() {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                let reply = format!("lost {e}");
                state.saw(&e);
                reply
            }
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
        (["release"], Some(_)) => match state.guard.take().map(|g| state.release(g)) {
            Some(Err(e)) => format!("error {:?} {e}", e.kind()),
            _ => "released".to_string(),
        },
        _ => format!("unknown command '{line}'"),
    })
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
    u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Acquires `count` times; under the lock reads a counter file, sleeps not
/// at all, writes it back plus one (a deliberately non-atomic update) and
/// logs `start_ns end_ns fencing_token` per hold.
fn worker(
    client: &Client,
    name: &str,
    options: LockOptions,
    count: u64,
    counter: &std::path::Path,
    log_path: Option<&std::path::Path>,
    verbose: bool,
) -> Result<(), Outcome> {
    let lock = client.lock_with(name, options)?;
    let mut log = String::new();
    for _ in 0..count {
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
        if verbose {
            println!(
                "[rust   pid {:>6}] holds '{name}' fencing token {fencing}, counter {} -> {}",
                std::process::id(),
                value,
                value + 1
            );
        }
        log.push_str(&format!("{start} {end} {fencing}\n"));
    }
    if let Some(path) = log_path {
        std::fs::write(path, log)?;
    }
    Ok(())
}
