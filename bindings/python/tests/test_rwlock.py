"""The read-write lock from Python: readers share while a writer is alone
(counted by the holders across threads), a waiting writer stops new
readers, a writer that gives up lets them in, losses are reported, bad
input and refusals, cancellation, garbage collection, fork and close,
asyncio, and the Redis keys the library (Rust, C, Go) uses."""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import pickle
import subprocess
import threading
import time
from typing import Callable

import pytest

import latchkey
from latchkey import Cancel, Client, LostLease, RwHold, RwLock

from conftest import RedisServer


def redis_cli(url: str, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-u", url, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def writers_waiting(url: str, name: str) -> int:
    """The queue of waiting writers (which new readers respect)."""
    return int(redis_cli(url, "ZCARD", f"latchkey:rw:{{{name}}}:q"))


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls Redis state (there is no event for it) until `condition()`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_readers_share_and_a_writer_is_alone(url: str, name: str) -> None:
    counter = threading.Lock()
    inside = [0]  # readers inside, or -1 while a writer is
    errors: list[BaseException] = []
    # Three readers hold at once: each waits, holding, for the other two.
    # Only then the writers: a writer waiting meanwhile would stop the
    # readers still to come, and those inside would wait for them in vain.
    shared = threading.Event()
    together = threading.Barrier(3, action=shared.set, timeout=20)

    def reader() -> None:
        try:
            with Client(url) as client:
                lock = client.rwlock(name)
                with lock.read(timeout=20) as hold:
                    assert hold.mode == "read"
                    together.wait()
                for _ in range(10):
                    with lock.read(timeout=20):
                        with counter:
                            assert inside[0] >= 0, "a reader inside with a writer"
                            inside[0] += 1
                        time.sleep(0)  # a yield, not a wait
                        with counter:
                            inside[0] -= 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def writer() -> None:
        try:
            with Client(url) as client:
                lock = client.rwlock(name)
                assert shared.wait(30), "the readers never held at once"
                for _ in range(10):
                    with lock.write(timeout=20) as hold:
                        assert hold.mode == "write"
                        with counter:
                            assert inside[0] == 0, f"a writer inside with {inside[0]}"
                            inside[0] = -1
                        time.sleep(0)
                        with counter:
                            inside[0] = 0
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads += [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_holds_and_what_they_exclude(client: Client, name: str) -> None:
    lock = client.rwlock(name)
    assert isinstance(lock, RwLock) and lock.name == name
    first = lock.read()
    second = lock.try_read()
    assert isinstance(first, RwHold) and second is not None, "readers share"
    assert (first.mode, first.name, first.rwlock) == ("read", name, lock)
    assert first.token != second.token and first.token.startswith("1:")
    assert second.fencing_token > first.fencing_token
    assert first.owned() and not first.lost and first.remaining > 0
    first.extend(60)
    assert lock.holds == 2
    assert lock.try_write() is None, "a writer with readers inside"
    with pytest.raises(latchkey.LockTimeout):
        lock.write(timeout=0)
    first.release()
    second.release()
    with lock.write() as writer:
        assert writer.mode == "write" and writer.fencing_token > second.fencing_token
        assert lock.try_read() is None and lock.try_write() is None
        with pytest.raises(latchkey.LockTimeout):
            lock.read(timeout=0.05)
    assert lock.holds == 0
    with pytest.raises(latchkey.NotHeld):
        writer.release()
    with pytest.raises(latchkey.NotHeld):
        writer.check()


def test_a_waiting_writer_stops_new_readers(client: Client, url: str, name: str) -> None:
    lock = client.rwlock(name)
    first = lock.read()
    got: list[int] = []

    def writer() -> None:
        with Client(url) as other:
            with other.rwlock(name).write(timeout=20) as hold:
                got.append(hold.fencing_token)

    t = threading.Thread(target=writer)
    t.start()
    wait_until("the writer waits", lambda: writers_waiting(url, name) > 0)
    assert lock.try_read() is None, "a new reader entered while a writer waited"
    first.release()  # 30 s left on its lease: only the release lets the writer in
    t.join(20)
    assert got and got[0] > first.fencing_token
    with lock.read(timeout=20) as after:
        assert after.fencing_token > got[0]


def test_a_writer_that_gives_up_lets_readers_in(client: Client, url: str, name: str) -> None:
    lock = client.rwlock(name)
    reader = lock.read()
    with pytest.raises(latchkey.LockTimeout):
        lock.write(timeout=0.3)
    again = lock.try_read()
    assert again is not None, "the writer that timed out still kept readers out"
    again.release()
    # One that is cancelled while it waits, too.
    stop = Cancel()
    outcome: list[BaseException] = []

    def writer() -> None:
        try:
            lock.write(cancel=stop)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=writer)
    t.start()
    wait_until("the writer waits", lambda: writers_waiting(url, name) > 0)
    assert lock.try_read() is None
    stop.cancel()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.Cancelled), outcome
    wait_until("the writer left the queue", lambda: writers_waiting(url, name) == 0)
    with lock.read(timeout=0) as third:
        third.check()
    reader.release()
    assert lock.holds == 0


def test_lost_holds_are_reported(client: Client, url: str, name: str) -> None:
    seen: list[LostLease] = []
    reported = threading.Event()

    def on_lost(lost: LostLease) -> None:
        seen.append(lost)
        reported.set()

    lock = client.rwlock(name, ttl=0.6, on_lost=on_lost)
    reader = lock.read()
    assert redis_cli(url, "DEL", f"latchkey:rwr:{{{name}}}") == "1"
    assert reported.wait(10), "no on_lost report for the reader"
    assert (seen[0].name, seen[0].owner_token) == (name, reader.token)
    assert seen[0].fencing_token == reader.fencing_token
    assert reader.lost
    with pytest.raises(latchkey.LostError):
        reader.check()
    assert not reader.owned()
    with pytest.raises(latchkey.NotHeld):
        reader.release()
    reported.clear()
    writer = lock.write(timeout=10)
    assert redis_cli(url, "DEL", f"latchkey:rw:{{{name}}}") == "1"
    assert reported.wait(10), "no on_lost report for the writer"
    assert seen[1].owner_token == writer.token
    with pytest.raises(latchkey.LostError):
        writer.check()
    with pytest.raises(latchkey.NotHeld):
        writer.release()
    assert lock.holds == 0


def test_bad_input_and_refusals(client: Client, name: str, masters: list[RedisServer]) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.rwlock("")
    with pytest.raises(latchkey.InvalidArgument):
        client.rwlock(name, ttl=0.001)  # the library's 10 ms minimum
    with pytest.raises(ValueError):
        client.rwlock(name, ttl=-1)
    with pytest.raises(TypeError):
        client.rwlock(name, reentrant=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.rwlock(name, fair=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.rwlock(name, on_lost="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RwLock(object(), name)  # type: ignore[arg-type]
    lock = client.rwlock(name)
    with pytest.raises(ValueError):
        lock.read(timeout=-2)
    with pytest.raises(TypeError):
        lock.write(cancel="now")  # type: ignore[arg-type]
    assert lock.holds == 0
    with pytest.raises(TypeError):
        pickle.dumps(lock)
    with lock.read() as hold:
        with pytest.raises(TypeError):
            pickle.dumps(hold)
        assert "read held" in repr(hold) and name in repr(lock)
    assert "released" in repr(hold)
    with Client.redlock([server.url for server in masters]) as redlock:
        with pytest.raises(latchkey.InvalidArgument):
            redlock.rwlock(name)


def test_cancel_ends_a_wait_and_takes_nothing(client: Client, name: str) -> None:
    lock = client.rwlock(name)
    writer = lock.write()
    stop = Cancel()
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            lock.read(cancel=stop)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=reader)
    t.start()
    stop.cancel()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.Cancelled)
    writer.release()
    assert lock.holds == 0
    with lock.write(timeout=0):
        pass


def test_a_held_lease_survives_garbage_collection_until_close(url: str, name: str) -> None:
    client = Client(url)
    client.rwlock(name).read()  # neither the RwHold nor the RwLock is kept
    gc.collect()
    with Client(url) as observer:
        other = observer.rwlock(name)
        assert other.try_write() is None, "the collector released a held read lease"
        client.close()  # the library's close releases it
        with other.write(timeout=0):
            pass


def test_close_releases_and_ends_waits(url: str, name: str) -> None:
    client = Client(url)
    lock = client.rwlock(name)
    reader = lock.read()
    outcome: list[BaseException] = []

    def writer() -> None:
        try:
            lock.write(timeout=20)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=writer)
    t.start()
    wait_until("the writer waits", lambda: writers_waiting(url, name) > 0)
    client.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.ClientClosed), outcome
    with pytest.raises(latchkey.NotHeld):
        reader.check()  # a close is an ending, not a loss
    with pytest.raises(latchkey.ClientClosed):
        lock.try_read()
    with Client(url) as other:
        with other.rwlock(name).write(timeout=10):
            pass


def test_an_os_fork_child_leaves_the_parents_hold(client: Client, name: str) -> None:
    # The child is refused the inherited RwLock and RwHold, closes the
    # inherited Client and runs the exit handlers; the parent still holds.
    lock = client.rwlock(name, ttl=5)
    hold = lock.read()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        for use in (hold.release, hold.check, lock.try_read, lambda: lock.write(0)):
            try:
                use()
                code = 3  # used the parent's handle or hold
            except Exception:
                pass
        try:
            client.close()
        except Exception:
            pass
        del hold, lock
        gc.collect()
        atexit._run_exitfuncs()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    hold.check()
    assert lock.try_write() is None
    hold.release()


def test_same_keys_as_the_library(client: Client, url: str, name: str) -> None:
    # Rust, C and Go keep the writer's hold under <prefix>:rw:{name} (a
    # lock's key) and the readers' leases in the sorted set <prefix>:rwr:{name}.
    lock = client.rwlock(name)
    with lock.read() as a, lock.read() as b:
        members = redis_cli(url, "ZRANGE", f"latchkey:rwr:{{{name}}}", "0", "-1").split()
        assert sorted(members) == sorted([a.token, b.token])
    with lock.write() as writer:
        assert redis_cli(url, "GET", f"latchkey:rw:{{{name}}}") == writer.token
    assert redis_cli(url, "EXISTS", f"latchkey:{{{name}}}") == "0", "not a lock's key"


def test_async_rwlock(client: Client, url: str, name: str) -> None:
    async def main() -> None:
        lock = client.async_rwlock(name)
        assert lock.name == name and isinstance(lock.rwlock, RwLock)
        async with await lock.read() as one:
            assert one.mode == "read" and one.name == name
            two = await lock.try_read()
            assert two is not None and await two.owned()
            assert await lock.try_write() is None
            # A cancelled writer gives back what it may have been granted,
            # and leaves the queue: readers enter again.
            waiter = asyncio.ensure_future(lock.write())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            with pytest.raises(latchkey.LockTimeout):
                await lock.write(timeout=0.05)
            await two.release()
            three = await lock.read(timeout=5)
            await three.extend(60)
            three.check()
            await three.release()
        assert lock.holds == 0
        writer = await lock.write(timeout=5)
        assert writer.mode == "write" and writer.fencing_token > one.fencing_token
        assert "AsyncRwHold" in repr(writer)
        assert await lock.try_read() is None
        await writer.release()
        with pytest.raises(latchkey.NotHeld):
            await writer.release()
        assert lock.holds == 0

    asyncio.run(main())
    assert isinstance(latchkey.AsyncRwLock, type) and latchkey.AsyncRwHold.__name__ == "AsyncRwHold"
