"""Ctrl-C at any moment never orphans a lease: seeded storms of SIGINT on
the main thread during acquire/release, `with lock:` and reentrant nesting,
and two quick Ctrl-C during a contended wait."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from storm import iterations, storm

import latchkey
from latchkey import Client


@pytest.mark.parametrize("mode", ["acquire-release", "with", "reentrant"])
def test_ctrl_c_storm_leaves_no_orphan(client: Client, name: str, mode: str) -> None:
    counts = storm(client, name, seed=20260601, cycles=iterations(2000), mode=mode)
    print(counts)
    assert counts["interrupted"] > 0


def test_ctrl_c_and_collections_storm(client: Client, name: str) -> None:
    counts = storm(client, name, seed=7, cycles=iterations(1000), mode="with", collect=True)
    assert counts["interrupted"] > 0


def test_two_quick_ctrl_c_during_a_contended_wait(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=3)
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:
        assert holder.acquire()
        held.set()
        done.wait(60)
        holder.release()

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(30)
    waiter = client.lock(name, ttl=3)
    main = threading.main_thread().ident
    assert main is not None

    def two_ctrl_c() -> None:
        # Once the main thread is waiting: two signals in quick succession.
        deadline = time.monotonic() + 30
        while client.inspect(name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
            signal.pthread_kill(main, signal.SIGINT)
            signal.pthread_kill(main, signal.SIGINT)
            return

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sender = threading.Thread(target=two_ctrl_c)
        sender.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            try:
                waiter.acquire(timeout=30)
            except KeyboardInterrupt:
                # The second Ctrl-C may land here, in this frame.
                raise
        elapsed = time.monotonic() - started
        sender.join(30)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert elapsed < 20, f"the interrupted acquire took {elapsed:.1f} s to return"
    assert waiter.holds == 0
    done.set()
    t.join(30)
    # The holder released: nobody may hold the lock now (an interrupted
    # wait that took it meanwhile must have given it back).
    deadline = time.monotonic() + 10
    while client.is_locked(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = client.inspect(name)
    assert info is None, f"an orphan lease after the interrupted wait: {info}"
    assert waiter.acquire(timeout=5)
    waiter.release()
    assert not latchkey.Lock(client, name).locked()
