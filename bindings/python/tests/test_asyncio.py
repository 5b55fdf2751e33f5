"""AsyncLock against real servers: the awaitable calls, a loop that keeps
running while a wait blocks, many waiters in one loop, timeouts, and
seeded storms of task cancellations at random moments (while waiting,
while being handed the lock, during the release), after each of which
Redis, seen from a second client, must hold nothing and no two holders may
have believed they held the lock at once.

Each test runs its own loop with asyncio.run (no pytest plugin). The storm
runs LATCHKEY_STRESS_ITERATIONS rounds when set (`make python-stress`)."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from typing import Any, Awaitable, Callable, Optional

import pytest
from storm import iterations

import latchkey
from latchkey import AsyncLock, Client
from latchkey import cancel as cancel_registry
from latchkey import lock as lock_module

# How long a test waits for something that should happen before it gives
# up: a guard against hanging, never an assertion on speed.
PATIENCE = 30.0


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yields to the loop until `condition` holds (checked between ticks
    of the loop; fails after PATIENCE seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.001)


def waiting() -> int:
    """Blocking acquires in progress (registered with the wait registry)."""
    return len(cancel_registry._WAITS)


def recorded_holds(lock: AsyncLock) -> int:
    """Holds the binding has recorded for this AsyncLock, in any task."""
    with lock_module._HELD_MUTEX:
        return sum(
            len(owner.slots) for owner, held in lock_module._HELD.items() if held is lock._lock
        )


async def redis_holder(client: Client, name: str) -> Optional[latchkey.LockInfo]:
    return await asyncio.to_thread(client.inspect, name)


# --- the calls ----------------------------------------------------------------------------


def test_async_with_acquire_release_and_the_hold(client: Client, url: str, name: str) -> None:
    async def main() -> None:
        lock = client.async_lock(name, ttl=5)
        assert lock.holds == 0 and not await lock.owned()
        async with lock as entered:
            assert entered is lock
            assert lock.holds == 1
            assert await lock.owned() and await lock.locked()
            info = await redis_holder(client, name)
            assert info is not None and info.owner_token == lock.token
            assert info.fencing_token == lock.fencing_token
            lock.check()
            await lock.extend(20)
            assert lock.remaining > 10
        assert lock.holds == 0 and not await lock.locked()
        assert await lock.acquire() is True
        assert await lock.acquire(blocking=False) is False  # plain: no nesting
        await lock.release()
        with pytest.raises(latchkey.NotHeld):
            await lock.release()
        with pytest.raises(latchkey.NotHeld):
            lock.fencing_token
        with pytest.raises(ValueError):
            await lock.acquire(blocking=False, timeout=1)
        assert "AsyncLock" in repr(lock)

    run(main())


def test_task_local_holds_belong_to_the_task(client: Client, name: str) -> None:
    async def main() -> None:
        lock = client.async_lock(name, ttl=5, task_local=True)
        assert await lock.acquire()

        async def other() -> None:
            assert lock.holds == 0
            with pytest.raises(latchkey.NotHeld, match="task"):
                await lock.release()
            assert await lock.acquire(timeout=0) is False

        await asyncio.create_task(other())
        await lock.release()

    run(main())


def test_by_default_holds_belong_to_the_async_lock(client: Client, name: str) -> None:
    async def main() -> None:
        lock = client.async_lock(name, ttl=5)
        assert not lock.task_local
        await asyncio.create_task(lock.acquire())
        assert lock.holds == 1
        await asyncio.create_task(lock.release())
        assert not await lock.locked()
        # wait_for runs its coroutine in a task of its own before 3.12.
        assert await asyncio.wait_for(lock.acquire(), PATIENCE)
        await lock.release()

    run(main())


def test_reentrant_nests_per_task(client: Client, name: str) -> None:
    async def main() -> None:
        lock = client.async_lock(name, ttl=5, reentrant=True, task_local=True)
        async with lock:
            async with lock:
                assert lock.holds == 2

                async def other() -> bool:
                    return await lock.acquire(blocking=False)

                assert await asyncio.create_task(other()) is False
            assert lock.holds == 1
        assert not await lock.locked()

    run(main())


def test_timeouts(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()

    async def main() -> None:
        lock = client.async_lock(name, ttl=5, blocking_timeout=0.05)
        assert await lock.acquire(timeout=0.05) is False
        assert await lock.acquire(blocking=False) is False
        with pytest.raises(latchkey.LockTimeout):
            async with lock:
                pytest.fail("entered a held lock")
        # An asyncio timeout cancels the wait: TimeoutError, no wait left.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lock.acquire(), 0.05)
        assert lock.holds == 0 and recorded_holds(lock) == 0
        holder.release()
        assert await lock.acquire(timeout=PATIENCE)
        await lock.release()

    run(main())
    assert cancel_registry.wait_for_waits_to_end(PATIENCE)
    assert client.inspect(name) is None


def test_the_loop_keeps_running_while_a_wait_blocks(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=10, thread_local=False)
    assert holder.acquire()

    async def main() -> None:
        lock = client.async_lock(name, ttl=5)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        waiter = asyncio.create_task(lock.acquire(timeout=PATIENCE))
        await until(lambda: waiting() > 0, "the waiter to wait")
        # Had the wait blocked the loop, no tick would run until it ended
        # (at its timeout, returning False).
        seen = ticks
        while ticks < seen + 1000:
            await asyncio.sleep(0)
        assert not waiter.done(), "the wait ended while the lock was held"
        await asyncio.to_thread(holder.release)
        assert await waiter is True
        assert ticks > seen + 1000
        ticking.cancel()
        await lock.release()

    run(main())


def test_many_waiters_in_one_loop(client: Client, url: str, name: str) -> None:
    waiters = 24

    async def main() -> None:
        # Each task's own AsyncLock, one shared with an owner per task, and
        # one shared whose holds are its own.
        per_task = client.async_lock(name, ttl=5, task_local=True)
        shared = client.async_lock(name, ttl=5)
        inside: list[int] = []
        order: list[int] = []
        tokens: list[int] = []

        async def work(i: int) -> None:
            lock = [client.async_lock(name, ttl=5), per_task, shared][i % 3]
            async with lock:
                inside.append(i)
                assert len(inside) == 1, f"two holders at once: {inside}"
                tokens.append(lock.fencing_token)
                await asyncio.sleep(0)
                order.append(i)
                inside.remove(i)

        await asyncio.gather(*(work(i) for i in range(waiters)))
        assert sorted(order) == list(range(waiters))
        assert tokens == sorted(tokens) and len(set(tokens)) == waiters

    run(main())
    assert client.inspect(name) is None


def test_a_cancelled_release_finishes_first(client: Client, name: str) -> None:
    async def main() -> None:
        lock = client.async_lock(name, ttl=30)
        releasing = asyncio.Event()

        async def hold_then_release() -> None:
            await lock.acquire()
            releasing.set()
            await lock.release()

        task = asyncio.create_task(hold_then_release())
        await releasing.wait()
        await asyncio.sleep(0)  # the task is now awaiting its release
        task.cancel()
        task.cancel()  # a second cancel does not cut the release short either
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await redis_holder(client, name) is None
        assert recorded_holds(lock) == 0

    run(main())


def test_a_cancelled_wait_gives_back_a_lock_granted_meanwhile(client: Client, name: str) -> None:
    # The grant reaches the waiter's thread, but the task is cancelled
    # before it resumes: the lock must be given back.
    holder = client.lock(name, ttl=10, thread_local=False)
    assert holder.acquire()

    async def main() -> None:
        lock = client.async_lock(name, ttl=10)
        waiter = asyncio.create_task(lock.acquire())
        await until(lambda: waiting() > 0, "the waiter to wait")
        # Release from a thread while the loop is kept busy, so the grant
        # arrives before the task can resume; then cancel it.
        released = threading.Event()
        threading.Thread(target=lambda: (holder.release(), released.set())).start()
        while not released.is_set() or waiting():
            pass  # not yielding to the loop: the task must not resume
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await redis_holder(client, name) is None
        assert recorded_holds(lock) == 0

    run(main())


def test_a_closed_loop_gives_back_what_its_abandoned_wait_gets(client: Client, name: str) -> None:
    # The loop is closed while a task waits, never cancelling it: the
    # grant that reaches the waiting thread cannot be delivered to the
    # loop any more, so the thread gives it back. (Nothing tells the test
    # when: it watches Redis. The lease outlives the watch, and is renewed.)
    holder = client.lock(name, ttl=10, thread_local=False)
    assert holder.acquire()
    lock = client.async_lock(name, ttl=2 * PATIENCE)
    loop = asyncio.new_event_loop()
    task = loop.create_task(lock.acquire())
    task._log_destroy_pending = False  # type: ignore[attr-defined] # on purpose

    async def started() -> None:
        await until(lambda: waiting() > 0, "the waiter to wait")

    loop.run_until_complete(started())
    loop.close()
    holder.release()
    del task
    gc.collect()
    assert cancel_registry.wait_for_waits_to_end(PATIENCE)
    deadline = time.monotonic() + PATIENCE
    while client.inspect(name) is not None:
        assert time.monotonic() < deadline, "the undelivered grant was never given back"
        time.sleep(0.001)
    assert recorded_holds(lock) == 0


def test_a_closed_acquire_coroutine_ends_its_wait(client: Client, name: str) -> None:
    # A coroutine closed while it waits (GeneratorExit at its await, as
    # when an abandoned task is collected) cannot wait for its thread: it
    # cancels the wait and leaves nothing held.
    holder = client.lock(name, ttl=10, thread_local=False)
    assert holder.acquire()
    lock = client.async_lock(name, ttl=10)

    async def main() -> None:
        coro = lock.acquire()
        coro.send(None)  # runs to its first await: the wait has started
        await until(lambda: waiting() > 0, "the waiter to wait")
        coro.close()
        await until(lambda: waiting() == 0, "the cancelled wait to end")
        info = await redis_holder(client, name)
        assert info is not None and info.owner_token == holder.token
        assert recorded_holds(lock) == 0

    run(main())
    holder.release()
    assert client.inspect(name) is None


def test_client_close_ends_async_waits(url: str, name: str) -> None:
    other = Client(url)
    holder = other.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    client = Client(url)

    async def main() -> None:
        lock = client.async_lock(name, ttl=5)
        waiter = asyncio.create_task(lock.acquire())
        await until(lambda: waiting() > 0, "the waiter to wait")
        await asyncio.to_thread(client.close)
        with pytest.raises(latchkey.ClientClosed):
            await waiter

    try:
        run(main())
    finally:
        holder.release()
        other.close()


# --- cancellation storms --------------------------------------------------------------------


class Beliefs:
    """Who believes it holds the lock, updated on the loop's thread: a
    holder believes from the moment its acquire returns until just before
    its release starts; two at once is a broken lock."""

    def __init__(self) -> None:
        self.now: set[str] = set()
        self.violations: list[str] = []

    def begin(self, who: str) -> None:
        if self.now:
            self.violations.append(f"{who} entered while {self.now} held it")
        self.now.add(who)

    def end(self, who: str) -> None:
        self.now.discard(who)


async def storm_round(
    rng: random.Random,
    waiter_lock: AsyncLock,
    holder_lock: AsyncLock,
    observer: Client,
    beliefs: Beliefs,
    counts: dict[str, int],
) -> None:
    name = waiter_lock.name
    loop = asyncio.get_running_loop()
    plan = rng.choice(["waiting", "handoff", "release"])
    style = rng.choice(["with", "calls"])
    delay = rng.uniform(0.0, 0.003)
    stage = "start"
    hold = asyncio.Event()
    let_go = asyncio.Event()

    async def holder() -> None:
        async with holder_lock:
            beliefs.begin("holder")
            hold.set()
            await let_go.wait()
            beliefs.end("holder")

    async def waiter() -> None:
        nonlocal stage
        stage = "waiting"
        if style == "with":
            async with waiter_lock:
                stage = "holding"
                beliefs.begin("waiter")
                try:
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)
                finally:
                    beliefs.end("waiter")
                    stage = "releasing"
        else:
            if await waiter_lock.acquire(timeout=PATIENCE):
                stage = "holding"
                beliefs.begin("waiter")
                try:
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)
                finally:
                    beliefs.end("waiter")
                    stage = "releasing"
                    await waiter_lock.release()
        stage = "done"

    holding = asyncio.create_task(holder())
    await hold.wait()
    task = asyncio.create_task(waiter())
    if plan == "waiting":
        loop.call_later(delay, task.cancel)
        await asyncio.wait([task])
        let_go.set()
    elif plan == "handoff":
        let_go.set()
        loop.call_later(delay, task.cancel)
        await asyncio.wait([task])
    else:
        let_go.set()
        await until(lambda: stage != "waiting" or task.done(), "the waiter to hold")
        loop.call_later(delay, task.cancel)
        await asyncio.wait([task])
    await holding
    try:
        task.result()
        counts["finished"] += 1
    except asyncio.CancelledError:
        counts[f"cancelled while {stage}"] += 1
    assert not beliefs.violations, beliefs.violations
    info = await redis_holder(observer, name)
    assert info is None, f"plan {plan}, style {style}, cancelled at {stage}: left held {info}"
    assert recorded_holds(waiter_lock) == 0 and recorded_holds(holder_lock) == 0
    assert waiting() == 0, "a wait goes on after its task ended"


def test_cancellation_storm_leaves_no_lock_held(client: Client, url: str, name: str) -> None:
    rounds = iterations(200)
    observer = Client(url)
    counts: dict[str, int] = {
        "finished": 0,
        "cancelled while waiting": 0,
        "cancelled while holding": 0,
        "cancelled while releasing": 0,
        "granted, then given back": 0,
    }

    async def main() -> None:
        rng = random.Random(20260415)
        waiter_lock = client.async_lock(name, ttl=5)
        holder_lock = observer.async_lock(name, ttl=5)
        beliefs = Beliefs()
        abandon = waiter_lock._lock._abandon

        def counting_abandon(slot: Any, owner: Any = None) -> None:
            # A cancelled acquire giving back a lock it was granted.
            if slot.guard.value and not slot.released:
                counts["granted, then given back"] += 1
            abandon(slot, owner)

        waiter_lock._lock._abandon = counting_abandon  # type: ignore[method-assign]
        for _ in range(rounds):
            await storm_round(rng, waiter_lock, holder_lock, observer, beliefs, counts)

    try:
        run(main())
    finally:
        observer.close()
    print(counts)
    assert sum(n for kind, n in counts.items() if kind != "granted, then given back") == rounds
    # Every kind of moment was hit at least once.
    assert counts["cancelled while waiting"] > 0
    assert counts["cancelled while releasing"] + counts["cancelled while holding"] > 0
    assert counts["granted, then given back"] > 0


def test_cancelling_many_waiters_at_random(client: Client, url: str, name: str) -> None:
    # Many waiters in one loop, every one cancelled at a random moment
    # while the lock passes from one to the next.
    rounds = max(1, iterations(200) // 40)
    observer = Client(url)

    async def main() -> None:
        rng = random.Random(99)
        beliefs = Beliefs()
        loop = asyncio.get_running_loop()
        for _ in range(rounds):

            async def work(i: int) -> None:
                lock = client.async_lock(name, ttl=5)
                async with lock:
                    beliefs.begin(f"w{i}")
                    try:
                        await asyncio.sleep(0)
                    finally:
                        beliefs.end(f"w{i}")

            tasks = [asyncio.create_task(work(i)) for i in range(16)]
            for task in tasks:
                if rng.random() < 0.7:
                    loop.call_later(rng.uniform(0, 0.01), task.cancel)
            await asyncio.wait(tasks)
            assert not beliefs.violations, beliefs.violations
            assert await redis_holder(observer, name) is None
            assert waiting() == 0

    try:
        run(main())
    finally:
        observer.close()
