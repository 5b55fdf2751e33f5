"""@client.locked: plain and async def functions run holding the lock, the
name built from the arguments, and what happens when the lock stays held
(LockTimeout after `timeout`, the function not called, no retry)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from dataclasses import dataclass

import pytest

import latchkey
from latchkey import Client

PATIENCE = 30.0


def test_a_plain_function_runs_holding_the_lock(client: Client, name: str) -> None:
    seen: list[object] = []

    @client.locked(name, ttl=5)
    def work(x: int) -> int:
        """Doubles."""
        seen.append(client.inspect(name))
        return 2 * x

    assert work(21) == 42
    assert seen[0] is not None, "the function ran without the lock"
    assert client.inspect(name) is None, "the lock was not released"
    assert work.__name__ == "work" and work.__doc__ == "Doubles."


def test_an_async_function_runs_holding_the_lock(client: Client, name: str) -> None:
    seen: list[object] = []

    @client.locked(name, ttl=5)
    async def work(x: int) -> int:
        seen.append(await asyncio.to_thread(client.inspect, name))
        return 2 * x

    assert inspect.iscoroutinefunction(work)
    assert asyncio.run(work(21)) == 42
    assert seen[0] is not None, "the coroutine ran without the lock"
    assert client.inspect(name) is None


def test_the_lock_is_released_when_the_function_raises(client: Client, name: str) -> None:
    @client.locked(name, ttl=5)
    def fails() -> None:
        raise KeyError("boom")

    @client.locked(name, ttl=5)
    async def fails_async() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    with pytest.raises(KeyError):
        asyncio.run(fails_async())
    assert client.inspect(name) is None


@dataclass
class User:
    id: int


def test_the_name_is_built_from_the_arguments(client: Client, name: str) -> None:
    names: list[str] = []

    def holder_name(candidates: list[str]) -> str:
        held = [n for n in candidates if client.inspect(n) is not None]
        assert len(held) == 1, held
        return held[0]

    candidates = [f"{name}:1:a", f"{name}:2:b", f"{name}:7:b", f"{name}:user:5"]

    @client.locked(name + ":{order}:{kind}", ttl=5)
    def by_order(order: int, kind: str = "b") -> None:
        names.append(holder_name(candidates))

    @client.locked(name + ":user:{user.id}", ttl=5)
    async def by_user(user: User) -> None:
        names.append(await asyncio.to_thread(holder_name, candidates))

    by_order(1, "a")
    by_order(2)  # a default
    by_order(kind="b", order=7)
    asyncio.run(by_user(User(5)))
    assert names == candidates


def test_a_method_may_name_its_lock_after_self(client: Client, name: str) -> None:
    class Table:
        def __init__(self, table: str) -> None:
            self.table = table

        @client.locked(name + ":{self.table}:{day}", ttl=5)
        def rebuild(self, day: int) -> bool:
            return client.inspect(f"{name}:{self.table}:{day}") is not None

    assert Table("orders").rebuild(3)


def test_names_that_refer_to_no_parameter_are_refused(client: Client, name: str) -> None:
    with pytest.raises(ValueError, match="orderid"):

        @client.locked(name + ":{orderid}")
        def work(order_id: int) -> None: ...

    with pytest.raises(ValueError, match="by name"):
        client.locked(name + ":{}")
    with pytest.raises(ValueError, match="by name"):
        client.locked(name + ":{0}")
    with pytest.raises(TypeError):
        client.locked(lambda x: x)  # type: ignore[arg-type]
    # Literal braces are doubled.
    seen: list[object] = []

    @client.locked(name + ":{{x}}")
    def literal(x: int) -> None:
        seen.append(client.inspect(name + ":{x}"))

    literal(1)
    assert seen[0] is not None


def test_a_held_lock_raises_lock_timeout_and_skips_the_function(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    calls: list[str] = []

    @client.locked(name, ttl=5, timeout=0.05)
    def work() -> None:
        calls.append("plain")

    @client.locked(name, ttl=5, timeout=0)
    async def work_async() -> None:
        calls.append("async")

    try:
        with pytest.raises(latchkey.LockTimeout):
            work()
        with pytest.raises(latchkey.LockTimeout):
            asyncio.run(work_async())
        assert calls == []
        info = client.inspect(name)
        assert info is not None and info.owner_token == holder.token
    finally:
        holder.release()
    work()
    asyncio.run(work_async())
    assert calls == ["plain", "async"]


def test_without_a_timeout_a_call_waits_for_the_release(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    from latchkey import cancel as registry

    done = threading.Event()

    @client.locked(name, ttl=5)
    def work() -> None:
        done.set()

    @client.locked(name, ttl=5)
    async def work_async() -> str:
        return "ran"

    worker = threading.Thread(target=work)
    worker.start()

    async def main() -> str:
        task = asyncio.create_task(work_async())
        while len(registry._WAITS) < 2:  # both calls wait
            await asyncio.sleep(0.001)
        assert not done.is_set() and not task.done()
        await asyncio.to_thread(holder.release)
        return await task

    assert asyncio.run(main()) == "ran"
    worker.join(PATIENCE)
    assert done.is_set()
    assert client.inspect(name) is None
