"""The lost-lease callback: it runs on the library's renewal thread, gets
the lock's name, fencing token and reason, and an exception in it is
logged, never raised into C."""

from __future__ import annotations

import gc
import logging
import threading
import time

import pytest

import latchkey
from latchkey import Client, LostLease
from latchkey.lock import _CALLBACKS


def test_on_lost_is_called_from_the_renewal_thread(client: Client, url: str, name: str) -> None:
    lost_event = threading.Event()
    seen: list[tuple[LostLease, str]] = []

    def on_lost(lost: LostLease) -> None:
        seen.append((lost, threading.current_thread().name))
        lost_event.set()

    lock = client.lock(name, ttl=0.5, auto_renew=True, on_lost=on_lost)
    assert lock.acquire()
    token = lock.fencing_token
    owner_token = lock.token
    with Client(url) as operator:
        assert operator.force_unlock(name)
    assert lost_event.wait(5), "the callback did not arrive"
    lost, thread_name = seen[0]
    assert lost.name == name
    assert lost.fencing_token == token
    assert lost.owner_token == owner_token, "the report names exactly this hold"
    assert name in lost.reason
    assert thread_name != threading.main_thread().name
    with pytest.raises(latchkey.LostError):
        lock.check()
    assert not lock.owned()
    with pytest.raises(latchkey.NotHeld):
        lock.release()


def test_an_exception_in_on_lost_is_logged(
    client: Client, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    called = threading.Event()

    def on_lost(lost: LostLease) -> None:
        called.set()
        raise ValueError("callback bug")

    lock = client.lock(name, ttl=0.3, on_lost=on_lost)
    with caplog.at_level(logging.ERROR, logger="latchkey"):
        lock.acquire()
        client.force_unlock(name)
        assert called.wait(5)
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any(
        "on_lost" in r.getMessage() and r.exc_info and r.exc_info[0] is ValueError
        for r in caplog.records
    ), caplog.records
    # The library is still fine.
    assert lock.acquire(timeout=2)
    lock.release()


def test_the_callback_is_dropped_when_the_lock_is_freed(client: Client, name: str) -> None:
    before = set(_CALLBACKS)
    lock = client.lock(name, on_lost=lambda lost: None)
    mine = set(_CALLBACKS) - before
    assert len(mine) == 1
    lock.acquire()
    lock.release()
    del lock
    gc.collect()
    assert not (set(_CALLBACKS) & mine), "user_free ran and dropped the callable"


def test_a_refused_lock_does_not_keep_its_callback(client: Client) -> None:
    before = set(_CALLBACKS)
    with pytest.raises(latchkey.InvalidArgument):
        client.lock("", on_lost=lambda lost: None)
    assert set(_CALLBACKS) == before
