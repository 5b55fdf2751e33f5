#!/usr/bin/env python3
"""Runs the Rust test suite with several test binaries at once.

`cargo test` runs its test binaries one after another, and most of their
time is spent waiting: for a sentinel to fail over, a ttl to run out, a
stopped server to be noticed. Every binary starts its own redis-server
processes on free ports (tests/support), so binaries can run side by side;
this runner builds them once with cargo, then runs up to --jobs of them at
a time, the longest first (by their times in the last run, kept in
target/rust-test-times.json, or by the list below on a fresh clone), and
the doc tests beside them.

Each binary's output is kept in target/rust-test-logs/NAME.log. A binary
that passes prints one line; one that fails prints its whole log (so
`test NAME ... FAILED` lines reach tools/repeat-tests.sh). Every binary
runs even after one failed, and the exit status is 1 if any failed.

usage: run-rust-tests.py [--jobs N] [--no-fail-fast] [--only NAMES] [FILTER...]
FILTER arguments go to every test binary (and the doc tests), as they
would after `cargo test --release --`. --only runs just the named test
files (comma-separated stems of tests/*.rs, e.g. `waiting,cluster`; `all`
for every one), without the doc tests: how `make test-redis6` runs the
suite against another server version ($REDIS_SERVER), with --logs DIR
keeping its logs apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "target" / "rust-test-logs"
TIMES = ROOT / "target" / "rust-test-times.json"

# The slowest binaries on a fresh clone (seconds, from a fresh-clone CI run
# on the 2-core CI machine), so that the long ones start first even before
# this machine has its own times.
FRESH_CLONE_TIMES = {
    "tests/sentinel_attack.rs": 108,
    "tests/attack_holds.rs": 61,
    "tests/sentinel_attack2.rs": 40,
    "tests/sentinel.rs": 36,
    "tests/redlock.rs": 36,
    "tests/renewals_confirmed.rs": 34,
    "tests/redlock_faults.rs": 32,
    "tests/chaos_findings.rs": 30,
}


@dataclass
class Binary:
    """One test executable cargo built, or the doc tests."""

    name: str
    command: list[str]

    def log_path(self, logs: Path) -> Path:
        return logs / (self.name.replace("/", "_") + ".log")


def build(cargo: str) -> list[Binary]:
    """Builds every test binary and returns them (cargo prints its errors)."""
    process = subprocess.run(
        [cargo, "test", "--release", "--no-run", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if process.returncode != 0:
        sys.exit(f"run-rust-tests: `cargo test --release --no-run` failed (exit {process.returncode})")
    binaries = []
    for line in process.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or not message["profile"]["test"]:
            continue
        executable = message.get("executable")
        if not executable:
            continue
        target = message["target"]
        source = os.path.relpath(target["src_path"], ROOT)
        binaries.append(Binary(source, [executable]))
    return binaries


def expected_times() -> dict[str, float]:
    """The last run's time per binary, or the fresh-clone figures."""
    try:
        return {**FRESH_CLONE_TIMES, **json.loads(TIMES.read_text())}
    except (OSError, ValueError):
        return dict(FRESH_CLONE_TIMES)


@dataclass
class Running:
    binary: Binary
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


def summary_line(log_path: Path) -> str:
    """The `test result:` line(s) of a log, joined."""
    results = [
        line.strip()
        for line in log_path.read_text(errors="replace").splitlines()
        if line.startswith("test result:")
    ]
    return "; ".join(results) if results else "no test result line"


def run(binaries: list[Binary], jobs: int, filters: list[str], keep_times: bool, logs: Path) -> int:
    logs.mkdir(parents=True, exist_ok=True)
    times = expected_times()
    queue = sorted(binaries, key=lambda b: times.get(b.name, 0.0), reverse=True)
    running: list[Running] = []
    failed: list[str] = []
    measured: dict[str, float] = {}
    started_all = time.monotonic()
    while queue or running:
        while queue and len(running) < jobs:
            binary = queue.pop(0)
            log = open(binary.log_path(logs), "wb")
            process = subprocess.Popen(
                binary.command + filters, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
            running.append(Running(binary, process, log, time.monotonic()))
        finished = wait_for_one(running)
        running.remove(finished)
        finished.log.close()
        seconds = time.monotonic() - finished.started
        measured[finished.binary.name] = round(seconds, 1)
        status = finished.process.returncode
        if status == 0:
            print(f"ok     {finished.binary.name} ({seconds:.1f} s): {summary_line(finished.binary.log_path(logs))}", flush=True)
        else:
            failed.append(finished.binary.name)
            print(f"FAILED {finished.binary.name} ({seconds:.1f} s, exit {status}); its output:", flush=True)
            sys.stdout.write(finished.binary.log_path(logs).read_text(errors="replace"))
            print(f"end of {finished.binary.name}'s output", flush=True)
    if keep_times:
        TIMES.write_text(json.dumps({**expected_times(), **measured}, indent=1, sort_keys=True))
    total = time.monotonic() - started_all
    print(f"{len(binaries) - len(failed)} of {len(binaries)} test binaries passed in {total:.0f} s "
          f"({jobs} at a time; logs in {os.path.relpath(logs, ROOT)})")
    for name in failed:
        print(f"  failed: {name}")
    return 1 if failed else 0


def wait_for_one(running: list[Running]) -> Running:
    """Blocks until one of the running binaries exits and returns it."""
    pids = {entry.process.pid: entry for entry in running}
    while True:
        pid, status = os.wait()
        entry = pids.get(pid)
        if entry is None:
            continue  # not ours (cannot happen: this process starts no other children)
        entry.process.returncode = os.waitstatus_to_exitcode(status)
        return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("LATCHKEY_TEST_JOBS", "3")),
                        help="test binaries at a time (LATCHKEY_TEST_JOBS, default 3)")
    parser.add_argument("--no-fail-fast", action="store_true",
                        help="accepted for cargo's sake: every binary always runs")
    parser.add_argument("--only", default="",
                        help="comma-separated test files to run (stems of tests/*.rs); no doc tests")
    parser.add_argument("--logs", type=Path, default=LOGS, help=f"where the logs go (default {LOGS})")
    parser.add_argument("filters", nargs="*", help="arguments for every test binary")
    options = parser.parse_args()
    if options.jobs < 1:
        parser.error("--jobs must be at least 1")
    cargo = os.environ.get("CARGO", "cargo")
    binaries = build(cargo)
    if options.only == "all":
        pass
    elif options.only:
        wanted = {f"tests/{stem.strip()}.rs" for stem in options.only.split(",") if stem.strip()}
        unknown = wanted - {b.name for b in binaries}
        if unknown:
            parser.error(f"--only names no test binary: {', '.join(sorted(unknown))}")
        binaries = [b for b in binaries if b.name in wanted]
    else:
        binaries.append(Binary("doc tests", [cargo, "test", "--release", "--doc", "--"]))
    # Times of a partial or filtered run (or against another server) would
    # mislead the next full run's order.
    keep_times = not options.filters and not options.only
    logs = options.logs if options.logs.is_absolute() else ROOT / options.logs
    return run(binaries, options.jobs, options.filters, keep_times, logs)


if __name__ == "__main__":
    sys.exit(main())
