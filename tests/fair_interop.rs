//! A fair lock is first come, first served across processes and languages:
//! 200 fair waiters, spread over 16 long-lived processes (4 each in Rust,
//! C, Python and Go, every one with its own client), queue one after
//! another on a lock this test holds: a waiter is started only once the
//! previous one is in the queue (`ZCARD latchkey:{name}:qa` grew), so the
//! arrival order is known. Consecutive waiters are in different languages,
//! so every handoff crosses a language. Then the test releases, and each
//! waiter, holding the lock, appends its sequence number to a shared record
//! (one O_APPEND write) before releasing. The record must be exactly 0..199
//! in order (and the fencing tokens must grow along it).
//!
//! The waiter programs are in tests/fair_interop/ (each documented at its
//! top). This test builds the C and Go ones into its temporary directory
//! against the library cargo built for it; the Rust waiter is this test
//! binary run again, the Python one runs on bindings/python. A language
//! whose toolchain is missing (no `cc`, no `go`) is left out with a message
//! on stderr, as `make demo` leaves out a language it could not build.
//!
//! Processes take their waiters as lines on stdin rather than one process
//! per waiter: queueing is sequential, so 200 process starts (Python's
//! alone is ~100 ms) would dominate the run time.

mod support;
#[path = "fair_interop/waiter.rs"]
mod waiter;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::{Client, LockOptions};
use support::{RedisServer, TempDir};

/// This test's name, for running the test binary again as a Rust waiter.
const TEST: &str = "two_hundred_fair_waiters_in_four_languages_get_the_lock_in_arrival_order";
const WAITERS: u64 = 200;
const PROCESSES_PER_LANGUAGE: usize = 4;
const NAME: &str = "fair-interop";

/// How long queueing the 200 waiters one by one may take, the processes
/// starting included (about 1 s here; generous for a loaded machine, and
/// a waiter that never queues ends the test).
const QUEUEING_LIMIT: Duration = Duration::from_secs(60);
/// How long all 200 handoffs may take once the test released.
const HANDOFFS_LIMIT: Duration = Duration::from_secs(60);
/// How long the processes may take to exit once their input ended.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Language {
    Rust,
    C,
    Python,
    Go,
}

const LANGUAGES: [Language; 4] = [Language::Rust, Language::C, Language::Python, Language::Go];

impl Language {
    fn label(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Python => "python",
            Language::Go => "go",
        }
    }
}

/// A language's waiter program, ready to start.
enum Program {
    /// This test binary, made a waiter by `waiter::ENV`.
    TestBinary,
    /// A program built into the test's directory (C, Go).
    Built(PathBuf),
    /// tests/fair_interop/waiter.py on bindings/python.
    Python,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The library cargo built for this test binary, in the form `file`
/// (liblatchkey.a or liblatchkey.so): the test binary is
/// target/PROFILE/deps/NAME-HASH, and cargo builds every crate type of the
/// library into that deps directory. Not target/PROFILE/liblatchkey.*:
/// `cargo test` does not copy its build there (only `cargo build` does),
/// so after a change to the library those are an older build.
fn library(file: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe.parent().expect("target/PROFILE/deps").join(file);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs a build command; a toolchain that cannot be started is a reason
/// to leave the language out, a build that fails is a test failure.
fn build(what: &str, command: &mut Command) -> Result<(), String> {
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return Err(format!("cannot run {:?} ({e})", command.get_program())),
    };
    assert!(
        output.status.success(),
        "building the {what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The C waiter, with the C tests' warnings, linked statically with the
/// system libraries the Go binding links too (as `make chaos-build` builds
/// its C worker), so it needs no LD_LIBRARY_PATH.
fn build_c(dir: &Path) -> Result<Program, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = dir.join("c-waiter");
    build(
        "C waiter",
        Command::new(&cc)
            .args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
            .args(["-O2", "-D_DEFAULT_SOURCE"])
            .arg(format!("-I{}", repo().join("include").display()))
            .arg("-o")
            .arg(&out)
            .arg(repo().join("tests/fair_interop/waiter.c"))
            .arg(library("liblatchkey.a"))
            .args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ])
            .arg("-pthread"),
    )
    .map_err(|e| {
        format!("no C compiler: {e}; install one (Debian: apt-get install gcc) or set CC")
    })?;
    Ok(Program::Built(out))
}

/// The Go waiter. The binding links target/release/liblatchkey.a by path
/// (bindings/go/link_static.go), which may be an older build (see
/// `library`): `go build -overlay` replaces that file, for this build
/// only, by a copy that links this test's library instead. Linked afresh
/// each run into the test's directory (the compiled packages come from
/// go's cache), so no binary of an earlier run is ever reused.
fn build_go(dir: &Path) -> Result<Program, String> {
    let link_static = repo().join("bindings/go/link_static.go");
    let release = "${SRCDIR}/../../target/release/liblatchkey.a";
    let text = std::fs::read_to_string(&link_static).unwrap();
    assert!(
        text.contains(release),
        "{} no longer links {release}: update this test's build_go",
        link_static.display()
    );
    let overlaid = dir.join("link_static.go");
    let ours = library("liblatchkey.a");
    std::fs::write(&overlaid, text.replace(release, ours.to_str().unwrap())).unwrap();
    let overlay = dir.join("overlay.json");
    let paths = [&link_static, &overlaid].map(|p| p.to_str().unwrap().to_string());
    assert!(
        paths.iter().all(|p| !p.contains(['"', '\\'])),
        "a path that would need escaping in JSON: {paths:?}"
    );
    std::fs::write(
        &overlay,
        format!("{{\"Replace\": {{\"{}\": \"{}\"}}}}", paths[0], paths[1]),
    )
    .unwrap();
    let out = dir.join("go-waiter");
    build(
        "Go waiter",
        Command::new("go")
            .arg("build")
            .arg(format!("-overlay={}", overlay.display()))
            .arg("-o")
            .arg(&out)
            .arg(".")
            .current_dir(repo().join("tests/fair_interop/go")),
    )
    .map_err(|e| format!("{e}; install Go 1.24 or newer (Debian: apt-get install golang)"))?;
    Ok(Program::Built(out))
}

fn prepare(language: Language, dir: &Path) -> Result<Program, String> {
    match language {
        Language::Rust => Ok(Program::TestBinary),
        Language::C => build_c(dir),
        Language::Python => Ok(Program::Python),
        Language::Go => build_go(dir),
    }
}

/// One waiter process: its waiters come as lines on its stdin.
struct WaiterProcess {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: PathBuf,
}

impl WaiterProcess {
    fn start(program: &Program, url: &str, record: &Path, label: &str, dir: &Path) -> Self {
        let record = record.to_str().expect("a UTF-8 path");
        let args = [url, NAME, record, label];
        let mut command = match program {
            Program::TestBinary => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command
                    .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
                    .env(waiter::ENV, waiter::env_value(url, NAME, record, label));
                command
            }
            Program::Built(path) => {
                let mut command = Command::new(path);
                command.args(args);
                command
            }
            Program::Python => {
                let mut command = Command::new("python3");
                command
                    .arg(repo().join("tests/fair_interop/waiter.py"))
                    .args(args)
                    .env("PYTHONPATH", repo().join("bindings/python"))
                    .env("LATCHKEY_LIBRARY", library("liblatchkey.so"));
                command
            }
        };
        let stderr = dir.join(format!("{label}.stderr"));
        let mut child = command
            .stdin(Stdio::piped())
            // The Rust waiter's test harness prints its progress there.
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start waiter process {label}: {e}"));
        WaiterProcess {
            label: label.to_string(),
            stdin: child.stdin.take(),
            child,
            stderr,
        }
    }

    /// Starts waiter `seq` in this process.
    fn send(&mut self, seq: u64) {
        let stdin = self.stdin.as_mut().expect("input still open");
        if let Err(e) = stdin.write_all(format!("{seq}\n").as_bytes()) {
            panic!("cannot start waiter {seq}: {e}; {}", self.describe());
        }
    }

    /// The process's state and what it wrote to stderr, for a failure.
    fn describe(&mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited with {status}"),
            Ok(None) => "running".to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("process {} {state}; its stderr:\n{stderr}", self.label)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// The waiter processes; any still running when the test ends (it failed)
/// are killed, so none outlives it.
struct Processes(Vec<WaiterProcess>);

impl Drop for Processes {
    fn drop(&mut self) {
        for p in &mut self.0 {
            if !p.exited() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

fn arrivals(admin: &mut redis::Connection) -> u64 {
    redis::cmd("ZCARD")
        .arg(format!("latchkey:{{{NAME}}}:qa"))
        .query(admin)
        .unwrap()
}

/// One line of the record: a hold, in the order the holds happened.
#[derive(Debug)]
struct Hold {
    seq: u64,
    label: String,
    token: u64,
}

/// The complete lines in the record so far (a reader may see the start
/// of a line whose write is still being copied in).
fn record_lines(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn read_record(path: &Path) -> Vec<Hold> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "a torn record line {line:?}");
            Hold {
                seq: fields[0].parse().unwrap(),
                label: fields[1].to_string(),
                token: fields[2].parse().unwrap(),
            }
        })
        .collect()
}

/// Copies an out-of-order record to target/fair-interop-evidence (the
/// test's directory is removed when it ends) and returns the copy's path.
fn keep_evidence(record: &Path) -> PathBuf {
    let dir = repo().join("target/fair-interop-evidence");
    std::fs::create_dir_all(&dir).unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let kept = dir.join(format!("record-{stamp}-{}.txt", std::process::id()));
    std::fs::copy(record, &kept).unwrap();
    kept
}

#[test]
fn two_hundred_fair_waiters_in_four_languages_get_the_lock_in_arrival_order() {
    if let Some(args) = waiter::from_env() {
        waiter::run(args);
        return;
    }
    let started = Instant::now();
    let server = RedisServer::start();
    let dir = TempDir::new("fair-interop");
    let record = dir.0.join("record");
    File::create(&record).unwrap();

    let mut programs = Vec::new();
    for language in LANGUAGES {
        match prepare(language, &dir.0) {
            Ok(program) => programs.push((language, program)),
            // Straight to stderr, past the test harness's capture: a
            // passing run must still say what it left out.
            Err(why) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "fair_interop: {} waiters left out: {why}",
                    language.label()
                );
            }
        }
    }
    let built = started.elapsed();

    let client = Client::open(&server.url()).unwrap();
    let holder = client
        .lock_with(NAME, LockOptions::new().fair(true))
        .unwrap()
        .acquire()
        .unwrap();
    let mut admin = server.admin();
    assert_eq!(arrivals(&mut admin), 0, "the holder is not queued");

    // Processes by language, then number: waiter `seq` goes to language
    // seq % languages, so neighbours in the queue are in different
    // languages (and different processes).
    let mut processes = Processes(Vec::new());
    for (language, program) in &programs {
        for k in 0..PROCESSES_PER_LANGUAGE {
            let label = format!("{}-{k}", language.label());
            let process = WaiterProcess::start(program, &server.url(), &record, &label, &dir.0);
            processes.0.push(process);
        }
    }
    let languages = programs.len() as u64;
    let process_of = |seq: u64| {
        let language = (seq % languages) as usize;
        let k = (seq / languages) as usize % PROCESSES_PER_LANGUAGE;
        language * PROCESSES_PER_LANGUAGE + k
    };

    let queueing = Instant::now();
    let deadline = queueing + QUEUEING_LIMIT;
    for seq in 0..WAITERS {
        let process = &mut processes.0[process_of(seq)];
        process.send(seq);
        loop {
            let queued = arrivals(&mut admin);
            if queued == seq + 1 {
                break;
            }
            assert!(
                queued <= seq,
                "{queued} waiters queued after waiter {seq} was started"
            );
            if process.exited() || Instant::now() > deadline {
                panic!(
                    "waiter {seq} was not queued {QUEUEING_LIMIT:?} after the first was started \
                     ({queued} queued); {}",
                    process.describe()
                );
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    let queued = queueing.elapsed();

    let handing = Instant::now();
    holder.release().unwrap();
    let deadline = Instant::now() + HANDOFFS_LIMIT;
    while record_lines(&record) < WAITERS {
        if Instant::now() > deadline || processes.0.iter_mut().any(WaiterProcess::exited) {
            let states: Vec<String> = processes.0.iter_mut().map(|p| p.describe()).collect();
            panic!(
                "only {} of {WAITERS} waiters got the lock within {HANDOFFS_LIMIT:?}; \
                 the record:\n{}\n{}",
                record_lines(&record),
                std::fs::read_to_string(&record).unwrap_or_default(),
                states.join("; ")
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    let handed = handing.elapsed();

    // The end of input: each process waits for its waiters (all done) and
    // exits, 0 if every waiter acquired, wrote and released.
    for p in &mut processes.0 {
        p.stdin = None;
    }
    let deadline = Instant::now() + EXIT_LIMIT;
    for p in &mut processes.0 {
        let status = loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{}", p.describe());
            thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{}", p.describe());
    }

    let holds = read_record(&record);
    let order: Vec<u64> = holds.iter().map(|h| h.seq).collect();
    if order != (0..WAITERS).collect::<Vec<_>>() {
        let kept = keep_evidence(&record);
        let first = order
            .iter()
            .zip(0..)
            .position(|(&got, want)| got != want)
            .unwrap_or(order.len());
        let around: Vec<String> = holds[first.saturating_sub(3)..(first + 5).min(holds.len())]
            .iter()
            .map(|h| format!("{} ({})", h.seq, h.label))
            .collect();
        let went_to = holds.get(first).map_or("nobody".to_string(), |h| {
            format!("waiter {} ({})", h.seq, h.label)
        });
        panic!(
            "the fair lock went out of arrival order: hold {first} went to {went_to} \
             (holds {}..: {}); the whole record ({} lines, \"SEQ PROCESS TOKEN\") is kept in {}",
            first.saturating_sub(3),
            around.join(", "),
            holds.len(),
            kept.display()
        );
    }
    for pair in holds.windows(2) {
        assert!(
            pair[1].token > pair[0].token,
            "fencing tokens did not grow along the record: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(arrivals(&mut admin), 0, "the queue is empty at the end");
    let key: Option<String> = redis::cmd("GET")
        .arg(format!("latchkey:{{{NAME}}}"))
        .query(&mut admin)
        .unwrap();
    assert_eq!(key, None, "the lock is free at the end");

    let labels: Vec<&str> = programs.iter().map(|(l, _)| l.label()).collect();
    eprintln!(
        "{WAITERS} waiters in {} processes ({}): server started and waiters built in \
         {built:.1?}, queued one by one in {queued:.1?}, {WAITERS} handoffs in {handed:.1?}, \
         {:.1?} in all",
        processes.0.len(),
        labels.join(", "),
        started.elapsed()
    );
}
