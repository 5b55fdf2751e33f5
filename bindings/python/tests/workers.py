"""Functions run in child processes by test_processes.py (importable by a
spawned child, so kept free of pytest)."""

from __future__ import annotations

import time

import latchkey


def contend(url: str, name: str, count: int, counter_file: str) -> list[tuple[int, int, int]]:
    """Acquires `count` times; under the lock does a non-atomic
    read-modify-write of the counter file. Returns (start_ns, end_ns,
    fencing_token) per hold, on CLOCK_MONOTONIC (shared by all processes)."""
    holds = []
    with latchkey.Client(url) as client:
        lock = client.lock(name, ttl=10)
        for _ in range(count):
            with lock:
                start = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                with open(counter_file) as f:
                    value = int(f.read() or "0")
                with open(counter_file, "w") as f:
                    f.write(str(value + 1))
                end = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                holds.append((start, end, lock.fencing_token))
    return holds


def in_forked_child(
    url: str, name: str, parent_client: latchkey.Client, parent_lock: latchkey.Lock
) -> None:
    """Run in a child forked while the parent holds `name` through
    `parent_lock`: the inherited objects refuse to work (and must not
    release the parent's lease), a new Client works."""
    for action in (
        lambda: parent_client.is_locked(name),
        lambda: parent_lock.acquire(blocking=False),
        lambda: parent_client.lock(name),
    ):
        try:
            action()
        except latchkey.LatchkeyError as e:
            assert "fork" in str(e), str(e)
        else:
            raise AssertionError("an inherited handle worked in the child")
    assert parent_lock.holds == 0
    with latchkey.Client(url) as client:
        assert client.is_locked(name), "the parent's lock is still held"
        mine = client.lock(name + "-child", ttl=5)
        assert mine.acquire(timeout=5)
        assert mine.owned()
        assert mine.fencing_token > 0
        mine.release()
        theirs = client.lock(name)
        assert theirs.acquire(blocking=False) is False
