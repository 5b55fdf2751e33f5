"""Holds belong to the thread that took them (thread_local=True, the
default, as in redis-py): one Lock shared by threads never lets a thread
check, extend or release another thread's hold, and for a reentrant Lock
each thread is its own reentrant owner."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

import latchkey
from latchkey import Client


def _in_thread(fn: Callable[[], object]) -> object:
    """Runs fn on a new thread and returns (or raises) what it did."""
    result: list[object] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # noqa: B036 - handed back to the caller
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if failure:
        raise failure[0]
    return result[0]


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {limit} s")
        time.sleep(0.01)


def test_a_thread_cannot_use_a_later_hold_of_another_thread(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=0.2, auto_renew=False)
    a_acquired = threading.Event()
    b_extended = threading.Event()
    a_done = threading.Event()
    seen: dict[str, object] = {}

    def thread_a() -> None:
        assert lock.acquire()
        a_acquired.set()
        assert b_extended.wait(30)
        # A's lease ran out and B holds the lock now: nothing A does may
        # touch B's hold.
        for what, call in (
            ("check", lock.check),
            ("fencing_token", lambda: lock.fencing_token),
            ("release", lock.release),
            ("extend", lambda: lock.extend(10)),
        ):
            try:
                seen[what] = ("returned", call())
            except latchkey.LatchkeyError as e:
                seen[what] = ("raised", type(e).__name__)
        a_done.set()

    def thread_b() -> None:
        assert a_acquired.wait(30)
        _wait_until(lambda: not client.is_locked(name), "the expiry of A's lease")
        assert lock.acquire(timeout=10)
        lock.extend(5)
        seen["b_token"] = lock.fencing_token
        b_extended.set()
        assert a_done.wait(30)
        seen["b_check"] = lock.check()
        seen["third_client_got_it"] = client.lock(name).acquire(blocking=False)
        lock.release()

    ta = threading.Thread(target=thread_a)
    tb = threading.Thread(target=thread_b)
    ta.start()
    tb.start()
    ta.join(60)
    tb.join(60)
    print(seen)
    assert seen["third_client_got_it"] is False, seen
    assert seen["release"] == ("raised", "NotHeld"), seen
    assert seen["check"][0] == "raised", seen  # type: ignore[index]
    # A's own (lost) hold, never B's.
    assert seen["fencing_token"] != ("returned", seen["b_token"]), seen
    assert seen["extend"][0] == "raised", seen  # type: ignore[index]
    assert seen["b_check"] is None


def test_another_thread_cannot_release_or_inspect_a_hold(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5)
    assert lock.acquire()
    for call in (lock.release, lock.check, lambda: lock.extend(5), lambda: lock.token):
        with pytest.raises(latchkey.NotHeld, match="thread"):
            _in_thread(call)
    assert _in_thread(lock.owned) is False
    assert _in_thread(lambda: lock.holds) == 0
    assert lock.owned() and lock.holds == 1
    lock.release()
    assert not client.is_locked(name)


def test_reentrant_lock_each_thread_is_its_own_owner(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5, reentrant=True)
    assert lock.acquire()
    # Thread B must not nest inside thread A's hold.
    assert _in_thread(lambda: lock.acquire(blocking=False)) is False
    assert _in_thread(lambda: lock.acquire(timeout=0.2)) is False
    assert lock.acquire(blocking=False), "the holding thread nests"
    assert lock.holds == 2
    got = threading.Event()
    go = threading.Event()

    def waiter() -> None:
        assert lock.acquire(timeout=30)
        got.set()
        assert go.wait(30)
        lock.release()

    t = threading.Thread(target=waiter)
    t.start()
    lock.release()
    assert not got.is_set() or pytest.fail("B nested into A's remaining hold")
    lock.release()
    assert got.wait(30), "B gets the lock once A gave back both holds"
    info = client.inspect(name)
    assert info is not None and info.hold_count == 1
    go.set()
    t.join(30)
    assert not client.is_locked(name)


def test_thread_local_false_shares_holds_between_threads(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5, thread_local=False)
    assert lock.acquire()
    token = lock.fencing_token
    assert _in_thread(lambda: lock.fencing_token) == token
    _in_thread(lock.release)
    assert lock.holds == 0
    assert not client.is_locked(name)


def test_a_shared_hold_used_by_two_threads_at_once(client: Client, name: str) -> None:
    # thread_local=False: one thread acquires and releases in a loop while
    # another extends whatever hold there is; neither may lose the other's
    # record (a grant written by C while the other thread looks at it).
    lock = client.lock(name, ttl=2, thread_local=False)
    stop = threading.Event()

    def extend() -> None:
        while not stop.is_set():
            try:
                lock.extend(2)
            except latchkey.NotHeld:
                time.sleep(0.0005)

    t = threading.Thread(target=extend)
    t.start()
    try:
        for _ in range(3000):
            assert lock.acquire(timeout=5)
            lock.release()
    finally:
        stop.set()
        t.join(30)
    assert lock.holds == 0
    assert not client.is_locked(name)


def test_a_reentrant_lock_frees_the_handles_of_ended_threads(client: Client, name: str) -> None:
    import gc

    lock = client.lock(name, ttl=5, reentrant=True)

    def nest() -> None:
        with lock:
            with lock:
                pass

    for _ in range(50):
        t = threading.Thread(target=nest)
        t.start()
        t.join(30)
    gc.collect()
    assert len(lock._extra_handles) <= 1, "one C handle per live thread, not per thread ever"
    nest()
    assert not client.is_locked(name)
