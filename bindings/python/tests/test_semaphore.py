"""The semaphore from Python: threads never hold more permits than it has
(counted by the holders), several permits per hold and what is available,
a waiter woken by a release, permits taken away reported lost, bad input
refused taking nothing, a dead holder's permit back after its ttl, the
`with` forms, cancellation, garbage collection, asyncio, and the Redis keys
the library (Rust, C, Go) uses."""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Callable

import pytest

import latchkey
from latchkey import Cancel, Client, LostLease, Permit, Semaphore


def redis_cli(url: str, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-u", url, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def waiters_on(url: str, name: str) -> int:
    """Subscribers of the semaphore's release channel (its waiters)."""
    out = redis_cli(url, "PUBSUB", "NUMSUB", f"latchkey:sem:{{{name}}}:ch").split()
    return int(out[1])


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls Redis state (there is no event for it) until `condition()`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_threads_never_hold_more_permits_than_the_semaphore_has(url: str, name: str) -> None:
    counter = threading.Lock()
    in_use = [0]
    most = [0]
    tokens: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def contend(i: int) -> None:
        try:
            with Client(url) as client:
                pool = client.semaphore(name, 3)
                permits = 1 + i % 2
                start.wait()
                for _ in range(15):
                    with pool.acquire(permits, timeout=20) as permit:
                        with counter:
                            in_use[0] += permits
                            most[0] = max(most[0], in_use[0])
                            tokens.append(permit.fencing_token)
                        time.sleep(0)  # a yield, not a wait: let another thread in
                        with counter:
                            in_use[0] -= permits
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert most[0] <= 3, f"{most[0]} permits held at once, of 3"
    assert most[0] >= 2, "the permits were never shared"
    assert len(set(tokens)) == len(tokens) == 6 * 15, "a fencing token repeated"


def test_several_permits_per_hold_and_what_is_available(client: Client, name: str) -> None:
    pool = client.semaphore(name, 5)
    assert (pool.name, pool.size) == (name, 5)
    three = pool.acquire(3)
    assert isinstance(three, Permit) and three.permits == 3
    assert three.token.startswith("3:")
    assert pool.available() == 2
    assert pool.try_acquire(3) is None, "only 2 are free"
    two = pool.try_acquire(2)
    assert two is not None
    assert pool.available() == 0
    assert pool.holds == 2
    assert two.fencing_token > three.fencing_token
    assert three.owned() and not three.lost and three.remaining > 0
    with pytest.raises(latchkey.LockTimeout):
        pool.acquire(1, timeout=0)
    with pytest.raises(latchkey.LockTimeout):
        pool.acquire(1, timeout=0.05)
    three.release()
    assert pool.available() == 3
    with two:
        pass  # a Permit is a context manager that releases on exit
    assert pool.available() == 5
    assert pool.holds == 0
    with pytest.raises(latchkey.NotHeld):
        two.release()
    with pytest.raises(latchkey.NotHeld):
        two.check()


def test_with_semaphore_takes_one_permit_per_thread(client: Client, name: str) -> None:
    pool = client.semaphore(name, 2)
    with pool as first:
        assert first.permits == 1 and pool.available() == 1
        entered = threading.Event()
        leave = threading.Event()
        theirs: list[Permit] = []

        def other() -> None:
            with pool as permit:
                theirs.append(permit)
                entered.set()
                leave.wait(10)

        t = threading.Thread(target=other)
        t.start()
        assert entered.wait(10)
        assert pool.available() == 0
        with pytest.raises(latchkey.LockTimeout):
            pool.acquire(timeout=0)
        leave.set()
        t.join(10)
        # The other thread's exit released its own permit, not ours.
        first.check()
        with pytest.raises(latchkey.NotHeld):
            theirs[0].check()
        assert pool.available() == 1
    assert pool.available() == 2
    # The documented form: a handle made for one `with`.
    with client.semaphore(name, 2) as permit:
        assert permit.name == name
        assert client.semaphore(name, 2).available() == 1


def test_a_waiter_is_woken_by_a_release(client: Client, url: str, name: str) -> None:
    pool = client.semaphore(name, 1)
    held = pool.acquire()
    got: list[int] = []

    def waiter() -> None:
        with Client(url) as other:
            with other.semaphore(name, 1).acquire(timeout=20) as permit:
                got.append(permit.fencing_token)

    t = threading.Thread(target=waiter)
    t.start()
    wait_until("the waiter listens", lambda: waiters_on(url, name) > 0)
    held.release()  # the lease has 30 s left: only the release can wake it
    t.join(20)
    assert got and got[0] > held.fencing_token


def test_permits_taken_away_are_reported_lost(client: Client, url: str, name: str) -> None:
    reported = threading.Event()
    seen: list[LostLease] = []

    def on_lost(lost: LostLease) -> None:
        seen.append(lost)
        reported.set()

    pool = client.semaphore(name, 2, ttl=0.6, on_lost=on_lost)
    permit = pool.acquire(2)
    token, fencing = permit.token, permit.fencing_token
    with Client(url) as operator:
        assert operator.semaphore(name, 2).force_release_all()
    assert reported.wait(10), "no on_lost report"
    assert (seen[0].name, seen[0].owner_token, seen[0].fencing_token) == (name, token, fencing)
    assert permit.lost
    with pytest.raises(latchkey.LostError):
        permit.check()
    assert not permit.owned()
    with pytest.raises(latchkey.NotHeld):
        permit.release()
    assert pool.available() == 2
    assert pool.holds == 0
    assert pool.force_release_all() is False, "nothing was held any more"


def test_bad_input_is_refused_and_takes_nothing(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.semaphore(name, 0)
    with pytest.raises(latchkey.InvalidArgument):
        client.semaphore(name, latchkey.MAX_PERMITS + 1)
    with pytest.raises(latchkey.InvalidArgument):
        client.semaphore("", 1)
    with pytest.raises(latchkey.InvalidArgument):
        client.semaphore(name, 1, ttl=0.001)  # the library's 10 ms minimum
    with pytest.raises(ValueError):
        client.semaphore(name, -1)
    with pytest.raises(TypeError):
        client.semaphore(name, 2, reentrant=True)  # type: ignore[call-arg]
    pool = client.semaphore(name, 2)
    for permits in (0, 3):
        with pytest.raises(latchkey.InvalidArgument):
            pool.acquire(permits)
        with pytest.raises(latchkey.InvalidArgument):
            pool.try_acquire(permits)
    with pytest.raises(ValueError):
        pool.acquire(-1)
    with pytest.raises(TypeError):
        pool.acquire(1.5)  # type: ignore[arg-type]
    assert pool.available() == 2, "nothing was taken"
    assert pool.holds == 0


def test_an_abandoned_permit_without_renewal_comes_back_after_its_ttl(
    client: Client, name: str
) -> None:
    once = client.semaphore(name, 1, ttl=0.4, auto_renew=False)
    once.acquire()  # the Permit is dropped at once: nothing releases it
    gc.collect()
    pool = client.semaphore(name, 1)
    assert pool.try_acquire() is None, "still within its lease"
    started = time.monotonic()
    with pool.acquire(timeout=10) as permit:
        permit.check()
    assert time.monotonic() - started < 5


def test_a_killed_holders_permit_comes_back_after_its_ttl(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time, latchkey
        client = latchkey.Client({url!r})
        permit = client.semaphore({name!r}, 2, ttl=0.5).acquire()
        print(permit.token, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env
    )
    try:
        assert child.stdout is not None
        token = child.stdout.readline().strip()
        assert token.startswith("1:"), token
        pool = client.semaphore(name, 2)
        mine = pool.acquire()
        assert pool.available() == 0
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # The child's lease (0.5 s, no longer renewed) ends; the waiter is
        # let in then, long before this permit's own 30 s.
        with pool.acquire(timeout=10) as second:
            assert second.fencing_token > mine.fencing_token
        mine.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_cancel_ends_a_wait_and_takes_nothing(client: Client, name: str) -> None:
    pool = client.semaphore(name, 1)
    held = pool.acquire()
    stop = Cancel()
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            pool.acquire(cancel=stop)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    stop.cancel()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.Cancelled)
    held.release()
    assert pool.available() == 1 and pool.holds == 0


def test_a_held_permit_survives_garbage_collection_until_close(url: str, name: str) -> None:
    client = Client(url)
    client.semaphore(name, 3).acquire(2)  # neither the Permit nor the Semaphore is kept
    gc.collect()
    with Client(url) as observer:
        other = observer.semaphore(name, 3)
        assert other.available() == 1, "the collector released a held permit"
        client.close()  # the library's close releases it
        assert other.available() == 3


def test_same_keys_as_the_library(client: Client, url: str, name: str) -> None:
    # Rust, C and Go keep a semaphore under <prefix>:sem:{name}, a sorted
    # set of the holds' tokens; Python goes through the same C ABI.
    pool = client.semaphore(name, 2)
    with pool.acquire(2) as permit:
        members = redis_cli(url, "ZRANGE", f"latchkey:sem:{{{name}}}", "0", "-1").split()
        assert members == [permit.token]
    assert redis_cli(url, "EXISTS", f"latchkey:{{{name}}}") == "0", "not a lock's key"


def test_semaphore_refuses_pickling(client: Client, name: str) -> None:
    import pickle

    pool = client.semaphore(name, 1)
    with pytest.raises(TypeError):
        pickle.dumps(pool)
    with pool as permit:
        with pytest.raises(TypeError):
            pickle.dumps(permit)
        assert "permits=1" in repr(permit) and "size=1" in repr(pool)
    assert isinstance(pool, Semaphore)


def test_async_semaphore(client: Client, name: str) -> None:
    async def main() -> None:
        pool = client.async_semaphore(name, 2)
        async with pool as one:
            assert one.permits == 1 and await pool.available() == 1
            two = await pool.acquire(1)
            assert await pool.try_acquire(1) is None
            # A cancelled waiter gives back what it may have been granted.
            waiter = asyncio.ensure_future(pool.acquire(1))
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await two.release()
            assert await two.owned() is False
        assert await pool.available() == 2
        assert pool.holds == 0
        both = await pool.acquire(2)
        both.check()
        assert await pool.force_release_all()
        with pytest.raises(latchkey.NotHeld):
            await both.release()
        assert await pool.available() == 2

    asyncio.run(main())


def test_close_releases_permits_and_ends_waits(url: str, name: str) -> None:
    client = Client(url)
    pool = client.semaphore(name, 1)
    permit = pool.acquire()
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            pool.acquire(timeout=20)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    wait_until("the waiter listens", lambda: waiters_on(url, name) > 0)
    client.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.ClientClosed), outcome
    with pytest.raises(latchkey.NotHeld):
        permit.check()  # a close is an ending, not a loss
    with pytest.raises(latchkey.ClientClosed):
        pool.try_acquire()
    with Client(url) as other:
        assert other.semaphore(name, 1).available() == 1
