"""Client.inspect's queue: the waiters parked for a held lock, in the order
a release hands the lock on, each with a ``w:`` id and its entry's time
left; the waiter a release hands the lock to leaves it. Waiters are
threads blocked in ``acquire``; the test asks until they are listed, it
never sleeps a fixed time for them."""

from __future__ import annotations

import threading
import time
from typing import Callable

import latchkey
from latchkey import Client, QueuedWaiter

from conftest import RedisServer


def _wait_until(what: str, condition: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _queue(client: Client, name: str) -> list[QueuedWaiter]:
    info = client.inspect(name)
    assert info is not None, "the lock is held"
    return info.queue


def test_inspect_lists_the_waiters_in_the_order_a_release_hands_the_lock_on(
    client: Client, name: str
) -> None:
    holder = client.lock(name, ttl=30)
    assert holder.acquire()
    info = client.inspect(name)
    assert info is not None and info.owner_token == holder.token
    assert info.queue == [] and info.queue_len == 0

    took: list[int] = []
    release = threading.Event()

    def wait(index: int) -> None:
        lock = client.lock(name, ttl=30)
        assert lock.acquire(timeout=60)
        took.append(index)
        release.wait(60)
        lock.release()

    threads = []
    first_queued = ""
    for index in range(2):
        thread = threading.Thread(target=wait, args=(index,))
        thread.start()
        threads.append(thread)
        _wait_until(
            f"waiter {index} is queued",
            lambda count=index + 1: len(_queue(client, name)) == count,
        )
        if index == 0:
            first_queued = _queue(client, name)[0].id

    info = client.inspect(name)
    assert info is not None and info.queue_len == 2 and len(info.queue) == 2
    assert all(isinstance(w, QueuedWaiter) for w in info.queue)
    assert all(w.id.startswith("w:") and len(w.id) > 2 for w in info.queue)
    assert info.queue[0].id != info.queue[1].id
    assert all(0 < w.expires_in <= 15 for w in info.queue)
    # Listed in arrival order, the next to get the lock first (not by when
    # the entries run out: a waiter's next attempt renews its entry).
    assert info.queue[0].id == first_queued
    assert latchkey.MAX_REPORTED_WAITERS == 1000

    # The release hands the lock to the first listed waiter, which leaves
    # the queue; the other one is still listed.
    first, second = info.queue
    holder.release()
    _wait_until("a waiter took the lock", lambda: len(took) == 1)
    after = client.inspect(name)
    assert after is not None and after.queue_len == 1
    assert [w.id for w in after.queue] == [second.id]
    assert first.id != second.id

    release.set()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert sorted(took) == [0, 1]
    assert client.inspect(name) is None


def test_a_free_lock_is_none_and_redlock_lists_no_queue(
    client: Client, name: str, masters: list[RedisServer]
) -> None:
    assert client.inspect(name) is None
    with Client.redlock([m.url for m in masters], restart_delay=0) as redlock:
        lock = redlock.lock(name, ttl=30)
        with lock:
            waiter = redlock.lock(name, ttl=30)
            assert waiter.acquire(timeout=0.2) is False
            info = redlock.inspect(name)
            assert info is not None and info.owner_token == lock.token
            assert info.queue == [] and info.queue_len == 0
