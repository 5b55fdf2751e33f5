//! Mutual exclusion the hard way: 8 OS processes × 2,000 acquisitions, each
//! doing a non-atomic read-modify-write of a counter file under the lock.
//! The final count must equal the number of acquisitions, the recorded hold
//! intervals (on the machine-wide monotonic clock) must never overlap, and
//! fencing tokens must grow in the order the holds happened.

mod support;

use support::{tool, RedisServer, TempDir};

const PROCESSES: usize = 8;
const ACQUISITIONS: u64 = 2_000;

#[test]
fn eight_processes_never_overlap() {
    let server = RedisServer::start();
    let dir = TempDir::new("exclusion");
    let counter = dir.0.join("counter");
    std::fs::write(&counter, "0").unwrap();

    let workers: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let log = dir.0.join(format!("holds-{i}.log"));
            let child = tool()
                .args(["--url", &server.url(), "worker", "exclusion"])
                .args(["--count", &ACQUISITIONS.to_string()])
                .args(["--counter", counter.to_str().unwrap()])
                .args(["--log", log.to_str().unwrap()])
                .spawn()
                .expect("start a worker");
            (child, log)
        })
        .collect();

    let mut holds: Vec<(u128, u128, u64)> = Vec::new();
    for (mut child, log) in workers {
        assert!(child.wait().unwrap().success(), "a worker failed");
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let fields: Vec<u128> = line.split(' ').map(|f| f.parse().unwrap()).collect();
            holds.push((fields[0], fields[1], fields[2] as u64));
        }
    }

    let total = PROCESSES as u64 * ACQUISITIONS;
    let count: u64 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, total, "lost updates: the lock let two holders in");
    assert_eq!(holds.len() as u64, total);

    holds.sort();
    for pair in holds.windows(2) {
        let ((_, end, token), (next_start, _, next_token)) = (pair[0], pair[1]);
        assert!(
            next_start >= end,
            "hold intervals overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
        assert!(
            next_token > token,
            "fencing tokens went backwards: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}
