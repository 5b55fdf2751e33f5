"""One close in four languages (tests/close.rs, ffi-tests and the Go tests
run the same scenario): ``Client.close()`` is the library's close. A lock
held through the client is free in Redis as soon as close returns, its
holder holds nothing (NotHeld, not LostError), and a waiter of the client
raises ClientClosed promptly.

Before: ``close()`` only freed the handle; a held lock stayed held and
renewed, and one held by a thread that had ended stayed so until the
interpreter exited."""

from __future__ import annotations

import threading
import time

import pytest
from test_interop import waiters_on

import latchkey
from latchkey import Client


def test_close_releases_holds_and_ends_waits(url: str, name: str) -> None:
    client = Client(url)
    lost: list[object] = []
    with Client(url) as other:
        held = client.lock(name + ":held", on_lost=lost.append)
        held.acquire()
        blocker = other.lock(name + ":waited")
        blocker.acquire()
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                client.lock(name + ":waited").acquire()
            except BaseException as e:  # noqa: BLE001 - recorded for the test
                outcome.append(e)

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 10
        while waiters_on(url, name + ":waited") == 0:
            assert time.monotonic() < deadline, "the waiter never subscribed"
            time.sleep(0.02)

        client.close()
        assert client.closed
        fresh = other.lock(name + ":held")
        assert fresh.acquire(blocking=False), "the held lock is still held after close"
        fresh.release()
        waiter.join(10)
        assert not waiter.is_alive(), "close did not end the waiter"
        assert len(outcome) == 1 and isinstance(outcome[0], latchkey.ClientClosed), outcome
        with pytest.raises(latchkey.NotHeld):
            held.check()
        assert held.holds == 0
        assert lost == [], "a close is not a loss"
        client.close()  # closing again does nothing
        blocker.release()


def test_a_lock_held_by_an_ended_thread_stays_held_until_close(url: str, name: str) -> None:
    """The documented rule: a hold stays held (and renewed) until it is
    released, its client is closed or its lease is lost; the binding never
    releases it behind its user's back, not even when its thread ends."""
    client = Client(url)
    with Client(url) as other:
        lock = client.lock(name, ttl=1)

        def take() -> None:
            lock.acquire()

        taker = threading.Thread(target=take)
        taker.start()
        taker.join()
        # Renewed after its thread ended: its remaining ttl grows again.
        lowest = float("inf")
        deadline = time.monotonic() + 10
        while True:
            info = other.inspect(name)
            assert info is not None and info.ttl is not None, "the ended thread's hold was dropped"
            if info.ttl > lowest + 0.1:
                break
            lowest = min(lowest, info.ttl)
            assert time.monotonic() < deadline, "the ended thread's hold is not renewed"
            time.sleep(0.02)
        assert other.lock(name).acquire(blocking=False) is False
        client.close()
        fresh = other.lock(name)
        assert fresh.acquire(blocking=False), "close did not release the ended thread's hold"
        fresh.release()
