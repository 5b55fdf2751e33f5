#!/usr/bin/env python3
"""The Python fair waiter of tests/fair_interop.rs (run by that test with
PYTHONPATH=bindings/python and LATCHKEY_LIBRARY set to the library cargo
built for it).

One process holds several waiters of one fair lock, all through one
client. Each line on stdin is a waiter's sequence number SEQ: a thread
starts at once and acquires NAME (fair, waiting up to 120 s); holding it,
it appends "SEQ LABEL FENCING_TOKEN\\n" to RECORD with one write(2) to a
file opened with O_APPEND (so lines from every process stay whole and in
the order the holds happened), then releases. At the end of input the
process waits for its waiters and exits 0 if every one got the lock, wrote
its line and released; failures go to stderr. The test starts a waiter
only once the previous one is queued in Redis.

usage: waiter.py URL NAME RECORD LABEL
"""

from __future__ import annotations

import os
import sys
import threading

import latchkey

ACQUIRE_TIMEOUT_S = 120.0


def wait_for_lock(
    client: latchkey.Client, name: str, record_fd: int, label: str, seq: int, failed: list[int]
) -> None:
    try:
        lock = client.lock(name, fair=True)
        if not lock.acquire(timeout=ACQUIRE_TIMEOUT_S):
            raise TimeoutError(f"not acquired within {ACQUIRE_TIMEOUT_S} s")
        try:
            line = f"{seq} {label} {lock.fencing_token}\n".encode()
            if os.write(record_fd, line) != len(line):
                raise OSError("a short write to the record")
        finally:
            lock.release()
    except Exception as e:  # every failure is reported, then the exit status says so
        print(f"python-waiter {label}: waiter {seq}: {type(e).__name__}: {e}", file=sys.stderr)
        failed.append(seq)


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(f"usage: {argv[0]} URL NAME RECORD LABEL", file=sys.stderr)
        return 2
    url, name, record, label = argv[1:]
    record_fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    failed: list[int] = []
    threads: list[threading.Thread] = []
    with latchkey.Client(url) as client:
        for command in sys.stdin:
            seq = int(command)
            thread = threading.Thread(
                target=wait_for_lock, args=(client, name, record_fd, label, seq, failed)
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    os.close(record_fd)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
