//! `latchkey`: a small command-line tool over the library, for operators
//! (who holds a lock? force it open) and for the multi-process tests, the
//! demo and the benchmarks (contend for a lock, hold one and take orders).
//! `latchkey --help` documents the commands and the exit codes.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use latchkey::{CancelToken, Client, ErrorKind, Guard, LockInfo, LockOptions};

const EXIT_CODES: &str = "\
Exit status:
  0    success
  1    Redis failed or refused (connection, authentication, server error,
       no quorum); hold: also whenever the lease was lost during the hold,
       however the hold ended (end of input, release, error or signal),
       and when the final release failed; exec: when the final release
       failed after COMMAND exited 0
  2    usage error: a bad command line, URL, option or name pattern
  3    hold, exec: the lock stayed held by another owner until --timeout-ms
  4    exec: the lease was lost while COMMAND ran; COMMAND was stopped
       (SIGTERM, then SIGKILL after --grace-ms) if it still ran
  126  exec: COMMAND could not be run (not executable); the lock was
       released
  127  exec: COMMAND was not found; the lock was released
  128+N  hold: ended by signal N (SIGHUP, SIGINT or SIGTERM) after
       releasing the lock (or giving up the wait); exec: COMMAND died of
       signal N (SIGHUP, SIGINT and SIGTERM sent to exec are passed on to
       COMMAND), or exec got it while waiting for the lock
  other  exec: COMMAND's own exit status

With --json, inspect, unlock, list and exec's final report print one JSON
object per line, and errors are {\"error\":{\"kind\":..,\"message\":..}} on
stderr, with the same exit status.";

/// Distributed locks over Redis: look at them, force them open, hold them.
#[derive(Parser)]
#[command(name = "latchkey", version, after_help = EXIT_CODES)]
struct Cli {
    /// Redis URL, redis[s]://[user:password@]host[:port][/db] or unix:///path;
    /// give it 3, 5, ... times for Redlock over independent masters
    /// [default: $LATCHKEY_URL, else redis://127.0.0.1:6379]
    #[arg(long = "url", value_name = "URL", global = true)]
    urls: Vec<String>,

    /// Sentinel URL, redis[s]://[user:password@]host[:port] (give it once
    /// per sentinel; needs --master-name): lock on the master the
    /// sentinels name, following failovers
    #[arg(
        long = "sentinel",
        value_name = "URL",
        global = true,
        conflicts_with_all = ["urls", "clusters"],
        requires = "master_name"
    )]
    sentinels: Vec<String>,

    /// With --sentinel: the master's name in the sentinels' configuration
    #[arg(long, value_name = "NAME", global = true, requires = "sentinels")]
    master_name: Option<String>,

    /// Redis Cluster node URL, redis[s]://[user:password@]host:port (one or
    /// more seeds; the other nodes are found from them)
    #[arg(
        long = "cluster",
        value_name = "URL",
        global = true,
        conflicts_with_all = ["urls", "sentinels"]
    )]
    clusters: Vec<String>,

    /// Print inspect, unlock, list and exec's final report as one JSON
    /// object per line, and errors as {"error":{"kind":..,"message":..}} on
    /// stderr
    #[arg(long, global = true)]
    json: bool,

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
    /// listed), or "free". With --json one object: {"name":..,"state":"held",
    /// "owner":..,"fencing_token":..,"ttl_ms":..,"reentrant":..,"holds":..,
    /// "waiters":..,"queue":[{"id":..,"expires_in_ms":..}]} or
    /// {"name":..,"state":"free"}
    Inspect {
        /// The lock's name
        name: String,
        /// NAME is a semaphore: print "semaphore in_use=N holds=M
        /// fencing=T", then "holder TOKEN permits=K ttl_ms=MS" per hold
        /// (with --json: {"name","kind":"semaphore","in_use","holds",
        /// "fencing_token","holders":[{"token","permits","ttl_ms"}]})
        #[arg(long, conflicts_with_all = ["election", "rwlock"])]
        semaphore: bool,
        /// NAME is an election: print "leader term=T ttl_ms=MS value=TEXT"
        /// or "no leader" (with --json: {"name","kind":"election",
        /// "state":"led"|"free","term","ttl_ms","value"})
        #[arg(long, conflicts_with = "rwlock")]
        election: bool,
        /// NAME is a read-write lock: print the writer's line as for a lock
        /// ("writer owner=... fencing=... ttl_ms=..." or "writer none"),
        /// then "readers N" and "reader TOKEN ttl_ms=MS" per reader (with
        /// --json: {"name","kind":"rwlock","writer":{...}|null,"readers",
        /// "reader_list":[{"token","ttl_ms"}]})
        #[arg(long)]
        rwlock: bool,
    },
    /// Delete NAME whoever holds it and wake its waiters; print "unlocked" or
    /// "free" (with --json: {"name":..,"unlocked":true|false})
    Unlock {
        /// The lock's name
        name: String,
    },
    /// Print every held lock whose name matches PATTERN, sorted by name, one
    /// line each: "NAME held owner=... fencing=... ttl_ms=... waiters=N"
    /// (with --json, one object per lock, as inspect prints without the
    /// queue). Found with SCAN, so it never blocks Redis; on Redlock, the
    /// locks a quorum of masters holds
    List {
        /// A glob over the names: * any run, ? one character, [abc] [a-z]
        /// [^abc] one of a set, \x the character x
        #[arg(default_value = "*")]
        pattern: String,
        /// Print at most N locks (which ones is up to the scan's order)
        /// [default: all]
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Acquire NAME (waiting for it), run COMMAND while the lease is renewed,
    /// release it when COMMAND exits and exit with COMMAND's status. If the
    /// lease is lost meanwhile, COMMAND gets SIGTERM, then SIGKILL after
    /// --grace-ms, and exec exits 4. SIGHUP, SIGINT and SIGTERM are passed
    /// on to COMMAND. Prints nothing of its own on stdout, except with
    /// --json a final report: {"name":..,"fencing_token":..,"status":..,
    /// "exit_code":..,"signal":..,"lost":..}
    Exec {
        /// The lock's name
        name: String,
        /// Lease length in milliseconds (renewed while COMMAND runs)
        #[arg(long, value_name = "MS", default_value_t = 30_000)]
        ttl_ms: u64,
        /// A fair lock: first come, first served (LockOptions::fair)
        #[arg(long)]
        fair: bool,
        /// Give up (exit status 3) if the lock is not acquired within this
        /// many milliseconds [default: wait without limit]
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// After a lost lease, how long COMMAND has between SIGTERM and
        /// SIGKILL
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        grace_ms: u64,
        /// The command and its arguments, after "--"
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
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
    /// exec: COMMAND's own status (not 0), without a message.
    Exit(u8),
    /// exec: the lease was lost while COMMAND ran (status 4).
    Stopped(String),
    /// exec: COMMAND could not be started: 127 (not found) or 126.
    CannotRun(u8, String),
}

/// exec's status when the lease was lost while COMMAND ran.
const LEASE_LOST: u8 = 4;

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
    let signals =
        matches!(cli.command, Command::Hold { .. } | Command::Exec { .. }).then(SignalWatch::start);
    let outcome = match run(&cli, signals) {
        Ok(()) => Outcome::Done,
        Err(outcome) => outcome,
    };
    let command = match &cli.command {
        Command::Inspect { .. } => "inspect",
        Command::Unlock { .. } => "unlock",
        Command::List { .. } => "list",
        Command::Exec { .. } => "exec",
        Command::Hold { .. } => "hold",
        Command::Worker { .. } => "worker",
    };
    // A message for stderr: its kind (for --json) and text, and the status.
    let (status, error) = match outcome {
        Outcome::Done => (0, None),
        Outcome::Signalled(signal) => (u8::try_from(128 + signal).unwrap_or(255), None),
        Outcome::Exit(status) => (status, None),
        Outcome::Other(message) => (1, Some(("Other".to_string(), message))),
        Outcome::Stopped(message) => (LEASE_LOST, Some(("Lost".to_string(), message))),
        Outcome::CannotRun(status, message) => {
            let kind = if status == 127 {
                "NotFound"
            } else {
                "NotExecutable"
            };
            (status, Some((kind.to_string(), message)))
        }
        Outcome::Failed(err) => {
            let status = match err.kind() {
                ErrorKind::InvalidArgument => 2,
                ErrorKind::Timeout => 3,
                _ => 1,
            };
            (status, Some((format!("{:?}", err.kind()), err.to_string())))
        }
    };
    if let Some((kind, message)) = error {
        if cli.json {
            let error = Json::new()
                .str("kind", &kind)
                .str("message", &message)
                .end();
            eprintln!("{}", Json::new().raw("error", &error).end());
        } else {
            eprintln!("latchkey {command}: {message}");
        }
    }
    ExitCode::from(status)
}

fn run(cli: &Cli, signals: Option<SignalWatch>) -> Result<(), Outcome> {
    let mut builder = if !cli.sentinels.is_empty() {
        // clap requires --master-name with --sentinel.
        let Some(master_name) = &cli.master_name else {
            return Err(Outcome::Failed(latchkey::Error::new(
                ErrorKind::InvalidArgument,
                "--sentinel needs --master-name",
            )));
        };
        Client::sentinel_builder(&cli.sentinels, master_name)
    } else if !cli.clusters.is_empty() {
        Client::cluster_builder(&cli.clusters)
    } else {
        let urls = if cli.urls.is_empty() {
            vec![std::env::var("LATCHKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())]
        } else {
            cli.urls.clone()
        };
        match urls.as_slice() {
            [one] => Client::builder(one),
            many => Client::redlock_builder(many),
        }
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
        Command::Inspect {
            name,
            semaphore: true,
            ..
        } => {
            let info = client.semaphore(name, 1)?.inspect()?;
            if cli.json {
                println!("{}", semaphore_json(&info));
                return Ok(());
            }
            println!(
                "semaphore in_use={} holds={} fencing={}",
                info.in_use, info.hold_count, info.fencing_token
            );
            for holder in &info.holders {
                println!(
                    "holder {} permits={} ttl_ms={}",
                    holder.token,
                    holder.permits,
                    holder.ttl.as_millis()
                );
            }
            Ok(())
        }
        Command::Inspect {
            name,
            election: true,
            ..
        } => {
            let leader = client.election(name)?.leader()?;
            if cli.json {
                println!("{}", leader_json(name, leader.as_ref()));
                return Ok(());
            }
            match leader {
                Some(leader) => println!(
                    "leader term={} ttl_ms={} value={}",
                    leader.term,
                    leader.ttl.as_millis(),
                    String::from_utf8_lossy(&leader.value)
                ),
                None => println!("no leader"),
            }
            Ok(())
        }
        Command::Inspect {
            name, rwlock: true, ..
        } => {
            let info = client.rwlock(name)?.inspect()?;
            if cli.json {
                println!("{}", rwlock_json(&info));
                return Ok(());
            }
            match &info.writer {
                Some(writer) => println!(
                    "writer owner={} fencing={} ttl_ms={}",
                    writer.owner_token,
                    writer.fencing_token,
                    ttl_ms(writer)
                ),
                None => println!("writer none"),
            }
            println!("readers {}", info.readers.hold_count);
            for reader in &info.readers.holders {
                println!("reader {} ttl_ms={}", reader.token, reader.ttl.as_millis());
            }
            Ok(())
        }
        Command::Inspect { name, .. } => {
            let info = client.inspect(name)?;
            if cli.json {
                println!("{}", inspect_json(name, info.as_ref(), true));
                return Ok(());
            }
            match info {
                Some(info) => {
                    // The first line stays as it was: scripts parse it.
                    println!(
                        "held owner={} fencing={} ttl_ms={} reentrant={} holds={}",
                        info.owner_token,
                        info.fencing_token,
                        ttl_ms(&info),
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
            if cli.json {
                let line = Json::new()
                    .str("name", name)
                    .bool("unlocked", deleted)
                    .end();
                println!("{line}");
            } else {
                println!("{}", if deleted { "unlocked" } else { "free" });
            }
            Ok(())
        }
        Command::List { pattern, limit } => {
            let locks = client.list_locks(pattern, limit.unwrap_or(usize::MAX))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for info in &locks {
                if cli.json {
                    writeln!(out, "{}", inspect_json(&info.name, Some(info), false))?;
                } else {
                    writeln!(
                        out,
                        "{} held owner={} fencing={} ttl_ms={} waiters={}",
                        info.name,
                        info.owner_token,
                        info.fencing_token,
                        ttl_ms(info),
                        info.queue_len
                    )?;
                }
            }
            out.flush()?;
            Ok(())
        }
        Command::Exec {
            name,
            ttl_ms,
            fair,
            timeout_ms,
            grace_ms,
            command,
        } => {
            let Some(signals) = signals else {
                return Err(Outcome::Other("signals are not being watched".into()));
            };
            let options = LockOptions::new()
                .ttl(Duration::from_millis(*ttl_ms))
                .fair(*fair);
            exec(
                client,
                name,
                options,
                Exec {
                    timeout: timeout_ms.map(Duration::from_millis),
                    grace: Duration::from_millis(*grace_ms),
                    command,
                    json: cli.json,
                },
                signals,
            )
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

/// The signals that end `hold` (and that `exec` passes on to its command).
/// They are blocked in every thread and taken by one thread with sigwait
/// (so nothing runs in a signal handler); that thread cancels a waiting
/// acquire and tells the main loop, which releases the lock (`exec`: sends
/// the signal on to its command and waits for it to exit). The command
/// starts with no signal blocked (std's spawn clears the mask).
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
    /// exec: the lease was lost (the lost-lease callback, with its reason).
    Lost(String),
    /// exec: COMMAND exited (not yet reaped: its pid stays its own until
    /// the main loop waits for it).
    ChildExited,
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
            Event::OutputDone | Event::Lost(_) | Event::ChildExited => continue,
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

/// What `exec` runs, and how.
struct Exec<'a> {
    /// How long to wait for the lock (none: without limit).
    timeout: Option<Duration>,
    /// After a lost lease, from SIGTERM to SIGKILL.
    grace: Duration,
    /// The program and its arguments.
    command: &'a [OsString],
    /// Print the final report as JSON on stdout.
    json: bool,
}

/// Acquires `name`, runs the command while the watchdog renews the lease,
/// releases when the command exits, and ends with its status. A lost lease
/// (the lost-lease callback) stops the command: SIGTERM, then SIGKILL
/// after the grace period; exec then exits 4. The signals of
/// [`SignalWatch`] reach the command. Everything the main loop reacts to
/// comes on one channel: signals, the loss, the command's exit (a thread
/// waits for it with `waitid(WNOWAIT)`, leaving it for the main loop to
/// reap, so its pid cannot be reused while signals may still be sent).
fn exec(
    client: &Client,
    name: &str,
    options: LockOptions,
    run: Exec<'_>,
    signals: SignalWatch,
) -> Result<(), Outcome> {
    let to_main = signals.sender.clone();
    let options = options.on_lost(move |lost| {
        let _ = to_main.send(Event::Lost(lost.reason.clone()));
    });
    let lock = client.lock_with(name, options)?;
    let guard = match lock.acquire_with(run.timeout, Some(&signals.cancel)) {
        Ok(guard) => guard,
        Err(err) if err.kind() == ErrorKind::Cancelled => {
            return Err(signals
                .received()
                .map_or(Outcome::Failed(err), Outcome::Signalled));
        }
        Err(err) => return Err(err.into()),
    };
    let mut lost: Option<String> = None;
    // A signal or a loss that came before the command starts: do not start it.
    while let Ok(event) = signals.events.try_recv() {
        match event {
            Event::Signal(signal) => {
                release_after_exec(guard, &mut lost);
                return Err(Outcome::Signalled(signal));
            }
            Event::Lost(reason) => {
                lost = Some(reason);
            }
            _ => {}
        }
    }
    if let Some(reason) = lost {
        let _ = guard.release();
        return Err(Outcome::Stopped(format!(
            "the lease on lock '{name}' was lost before the command started ({reason}); it was not run"
        )));
    }
    let Some((program, args)) = run.command.split_first() else {
        let _ = guard.release();
        return Err(Outcome::Failed(latchkey::Error::new(
            ErrorKind::InvalidArgument,
            "exec needs a command after --",
        )));
    };
    let mut child = match std::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            // Like a shell: 127 when there is no such command, 126 when it
            // cannot be run.
            let status = if err.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            release_after_exec(guard, &mut lost);
            return Err(Outcome::CannotRun(
                status,
                format!(
                    "cannot run '{}': {err}; the lock was released",
                    program.to_string_lossy()
                ),
            ));
        }
    };
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
    let to_main = signals.sender.clone();
    std::thread::spawn(move || {
        wait_for_exit(pid);
        let _ = to_main.send(Event::ChildExited);
    });

    let mut stopping: Option<Instant> = None;
    let gone = || Outcome::Other("the signal and waiter threads ended".into());
    loop {
        let event = match stopping {
            Some(kill_at) => {
                match signals
                    .events
                    .recv_timeout(kill_at.saturating_duration_since(Instant::now()))
                {
                    Ok(event) => event,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // The grace period is over.
                        let _ = child.kill();
                        stopping = None;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gone()),
                }
            }
            None => signals.events.recv().map_err(|_| gone())?,
        };
        match event {
            // SAFETY: kill(2) on our child, not yet reaped (so its pid is
            // still its own).
            Event::Signal(signal) => unsafe {
                libc::kill(pid, signal);
            },
            // Stopped once: a second report changes nothing.
            Event::Lost(reason) if lost.is_none() => {
                lost = Some(reason);
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                stopping = Some(Instant::now() + run.grace);
            }
            Event::ChildExited => break,
            _ => {}
        }
    }
    let status = child.wait()?;
    let stopped = lost.is_some();
    let released = release_after_exec(guard, &mut lost);
    let code = {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(255),
            (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
            (None, None) => 255,
        }
    };
    let outcome = if let Some(reason) = &lost {
        let what = if stopped {
            "the command was stopped"
        } else {
            "the command had ended"
        };
        Err(Outcome::Stopped(format!(
            "the lease on lock '{name}' was lost while the command ran ({reason}); {what} (its status: {code})"
        )))
    } else {
        match (code, released.error) {
            (0, Some(err)) => Err(Outcome::Other(format!("release: {err}"))),
            (0, None) => Ok(()),
            (code, error) => {
                if let Some(err) = error {
                    eprintln!("latchkey exec: release: {err}");
                }
                Err(Outcome::Exit(code))
            }
        }
    };
    if run.json {
        // The status exec exits with; COMMAND's own in exit_code/signal.
        let final_status = match &outcome {
            Ok(()) => 0,
            Err(Outcome::Exit(code)) => *code,
            Err(Outcome::Stopped(_)) => LEASE_LOST,
            Err(_) => 1,
        };
        let mut report = Json::new()
            .str("name", name)
            .num("fencing_token", released.fencing_token)
            .num("status", final_status);
        report = match status.code() {
            Some(exit) => report.num("exit_code", exit),
            None => report.raw("exit_code", "null"),
        };
        report = {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(signal) => report.num("signal", signal),
                None => report.raw("signal", "null"),
            }
        };
        println!("{}", report.bool("lost", lost.is_some()).end());
    }
    outcome
}

/// What releasing exec's guard found.
struct ExecRelease {
    fencing_token: u64,
    /// A failed release (not a loss, which goes to `lost`).
    error: Option<latchkey::Error>,
}

/// Releases `guard`, remembering in `lost` a loss that the guard or the
/// release reports (a lease that ran out while Redis was unreachable, or
/// one whose callback has not run yet).
fn release_after_exec(guard: Guard, lost: &mut Option<String>) -> ExecRelease {
    let fencing_token = guard.fencing_token();
    let mut saw = |err: &latchkey::Error| {
        let is_loss = matches!(err.kind(), ErrorKind::Lost | ErrorKind::NotHeld);
        if is_loss {
            lost.get_or_insert_with(|| err.message().to_string());
        }
        is_loss
    };
    if let Err(err) = guard.check() {
        saw(&err);
    }
    let error = match guard.release() {
        Ok(_) => None,
        Err(err) if saw(&err) => None,
        Err(err) => Some(err),
    };
    ExecRelease {
        fencing_token,
        error,
    }
}

/// Blocks until the process `pid` (our child) has exited, without reaping
/// it.
fn wait_for_exit(pid: libc::pid_t) {
    loop {
        // SAFETY: siginfo_t is plain data, zeroes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, writing into `info` we own;
        // WNOWAIT leaves it to be reaped by `Child::wait`.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                libc::id_t::try_from(pid).unwrap_or(0),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

/// A lock's ttl in milliseconds as the text output shows it (-1: no expiry).
fn ttl_ms(info: &LockInfo) -> i64 {
    info.ttl
        .map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

/// What `inspect --json` prints of lock `name` (`info`: its holder, or
/// free), and `list --json` of each lock (without the queue).
fn inspect_json(name: &str, info: Option<&LockInfo>, with_queue: bool) -> String {
    let json = Json::new().str("name", name);
    let Some(info) = info else {
        return json.str("state", "free").end();
    };
    let json = json
        .str("state", "held")
        .str("owner", &info.owner_token)
        .num("fencing_token", info.fencing_token);
    let json = match info.ttl {
        Some(ttl) => json.num("ttl_ms", ttl.as_millis()),
        None => json.raw("ttl_ms", "null"),
    };
    let json = json
        .bool("reentrant", info.reentrant)
        .num("holds", info.hold_count)
        .num("waiters", info.queue_len);
    if !with_queue {
        return json.end();
    }
    let queue: Vec<String> = info
        .queue
        .iter()
        .map(|waiter| {
            Json::new()
                .str("id", &waiter.id)
                .num("expires_in_ms", waiter.expires_in.as_millis())
                .end()
        })
        .collect();
    json.raw("queue", &format!("[{}]", queue.join(","))).end()
}

fn semaphore_json(info: &latchkey::SemaphoreInfo) -> String {
    let holders: Vec<String> = info
        .holders
        .iter()
        .map(|holder| {
            Json::new()
                .str("token", &holder.token)
                .num("permits", holder.permits)
                .num("ttl_ms", holder.ttl.as_millis())
                .end()
        })
        .collect();
    Json::new()
        .str("name", &info.name)
        .str("kind", "semaphore")
        .num("in_use", info.in_use)
        .num("holds", info.hold_count)
        .num("fencing_token", info.fencing_token)
        .raw("holders", &format!("[{}]", holders.join(",")))
        .end()
}

fn rwlock_json(info: &latchkey::RwLockInfo) -> String {
    let readers: Vec<String> = info
        .readers
        .holders
        .iter()
        .map(|reader| {
            Json::new()
                .str("token", &reader.token)
                .num("ttl_ms", reader.ttl.as_millis())
                .end()
        })
        .collect();
    let writer = info.writer.as_ref().map_or_else(
        || "null".to_string(),
        |writer| inspect_json(&info.name, Some(writer), false),
    );
    Json::new()
        .str("name", &info.name)
        .str("kind", "rwlock")
        .raw("writer", &writer)
        .num("readers", info.readers.hold_count)
        .raw("reader_list", &format!("[{}]", readers.join(",")))
        .end()
}

fn leader_json(name: &str, leader: Option<&latchkey::Leader>) -> String {
    let json = Json::new().str("name", name).str("kind", "election");
    let Some(leader) = leader else {
        return json.str("state", "free").end();
    };
    json.str("state", "led")
        .num("term", leader.term)
        .num("ttl_ms", leader.ttl.as_millis())
        .str("value", &String::from_utf8_lossy(&leader.value))
        .end()
}

/// One JSON object, written by hand (the tool needs no more than flat
/// objects of strings, numbers and booleans, and this one nested one).
struct Json(String);

impl Json {
    fn new() -> Json {
        Json("{".to_string())
    }

    fn key(mut self, key: &str) -> Json {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_string(&mut self.0, key);
        self.0.push(':');
        self
    }

    fn str(self, key: &str, value: &str) -> Json {
        let mut json = self.key(key);
        push_json_string(&mut json.0, value);
        json
    }

    fn num(self, key: &str, value: impl std::fmt::Display) -> Json {
        let mut json = self.key(key);
        json.0.push_str(&value.to_string());
        json
    }

    fn bool(self, key: &str, value: bool) -> Json {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// `value` as it is: already JSON.
    fn raw(self, key: &str, value: &str) -> Json {
        let mut json = self.key(key);
        json.0.push_str(value);
        json
    }

    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Appends `text` to `out` as a JSON string: quoted, with `"`, `\` and
/// the control characters escaped (everything else is UTF-8 as it is).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(text: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, text);
        out
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(quoted("plain"), r#""plain""#);
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(quoted("\u{1}\u{1f}\u{7f}"), r#""\u0001\u001f\u007f""#);
        assert_eq!(quoted("ключ {}:"), "\"ключ {}:\"");
    }

    #[test]
    fn json_objects_join_their_fields() {
        assert_eq!(Json::new().end(), "{}");
        let line = Json::new()
            .str("name", "a\"b")
            .num("n", 7)
            .bool("ok", true)
            .raw("none", "null")
            .raw("list", "[]")
            .end();
        assert_eq!(
            line,
            r#"{"name":"a\"b","n":7,"ok":true,"none":null,"list":[]}"#
        );
    }
}
