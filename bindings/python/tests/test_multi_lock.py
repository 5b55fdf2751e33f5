"""Multi-locks from Python: threads taking overlapping sets in opposite
orders never deadlock or overlap, all or nothing, a lost lease loses the
whole (and the release frees the others), bad input, the `with` forms,
cancellation, garbage collection, close, fork and asyncio."""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import pickle
import signal
import subprocess
import threading
import time

import pytest

import latchkey
from latchkey import Cancel, Client, LostLease, MultiGuard, MultiLock


def lock_waiters(url: str, name: str) -> int:
    """Subscribers of the lock's release channel (its waiters)."""
    out = subprocess.run(
        ["redis-cli", "-u", url, "PUBSUB", "NUMSUB", f"latchkey:{{{name}}}:ch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[1])


def wait_for_waiter(url: str, name: str) -> None:
    # Redis state has no event to wait on: poll it, bounded.
    deadline = time.monotonic() + 10
    while lock_waiters(url, name) == 0:
        assert time.monotonic() < deadline, f"nobody waits for {name}"
        time.sleep(0.01)


def test_opposite_orders_never_deadlock_or_overlap(url: str, name: str) -> None:
    x, y, z = f"{name}-x", f"{name}-y", f"{name}-z"
    sets = [[x, y], [y, x], [z, y]]
    counter = threading.Lock()
    holders = {x: 0, y: 0, z: 0}
    overlaps: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(sets))

    def contend(names: list[str]) -> None:
        try:
            with Client(url) as client:
                multi = client.multi_lock(names)
                start.wait()
                for _ in range(20):
                    with multi.acquire(timeout=30) as held:
                        with counter:
                            for n in held.names:
                                holders[n] += 1
                                if holders[n] != 1:
                                    overlaps.append(n)
                        held.check()
                        with counter:
                            for n in held.names:
                                holders[n] -= 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=contend, args=(s,)) for s in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    assert not errors, errors
    assert not overlaps, f"two holders of {overlaps}"


def test_all_or_nothing(client: Client, name: str) -> None:
    a, b, c = f"{name}-a", f"{name}-b", f"{name}-c"
    middle = client.lock(b)
    assert middle.acquire()
    multi = client.multi_lock([c, b, a])
    assert multi.names == [a, b, c]
    assert multi.try_acquire() is None
    assert not client.is_locked(a), "the first lock was given back"
    with pytest.raises(latchkey.LockTimeout, match=f"'{b}'"):
        multi.acquire(timeout=0.2)
    assert not client.is_locked(a) and not client.is_locked(c)
    middle.release()
    held = multi.try_acquire()
    assert isinstance(held, MultiGuard)
    assert held.names == [a, b, c]
    tokens = held.fencing_tokens
    assert len(tokens) == 3 and all(t > 0 for t in tokens)
    assert multi.holds == 1
    # An ordinary Lock of one of the names is excluded meanwhile.
    assert not client.lock(c).acquire(blocking=False)
    held.release()
    assert multi.holds == 0
    assert not any(client.is_locked(n) for n in (a, b, c))
    with pytest.raises(latchkey.NotHeld):
        held.release()


def test_a_lost_lease_loses_the_whole(client: Client, name: str) -> None:
    p, q = f"{name}-p", f"{name}-q"
    reported = threading.Event()
    seen: list[LostLease] = []

    def on_lost(lost: LostLease) -> None:
        seen.append(lost)
        reported.set()

    multi = client.multi_lock([q, p], ttl=0.6, on_lost=on_lost)
    held = multi.acquire()
    q_token = held.fencing_tokens[1]
    assert client.force_unlock(q)
    assert reported.wait(20), "no on_lost report"
    assert (seen[0].name, seen[0].fencing_token) == (q, q_token)
    assert held.lost
    with pytest.raises(latchkey.LostError, match=q):
        held.check()
    assert client.is_locked(p), "the other lease is kept until the release"
    with pytest.raises(latchkey.NotHeld):
        held.release()
    assert not client.is_locked(p), "the release freed the others"
    assert held.lost, "a release that found it lost leaves it lost"
    assert multi.holds == 0


def test_a_dropped_lost_guard_is_freed_at_the_next_acquire(client: Client, name: str) -> None:
    p, q = f"{name}-p", f"{name}-q"
    reported = threading.Event()
    multi = client.multi_lock([p, q], ttl=0.6, on_lost=lambda lost: reported.set())
    multi.acquire()  # the MultiGuard is dropped
    assert client.force_unlock(q)
    assert reported.wait(20), "no on_lost report"
    assert client.is_locked(p), "a lost guard keeps its other locks until released"
    # The next acquire forgets the lost record; freeing it releases p.
    again = multi.try_acquire()
    assert again is not None, "the dropped lost guard still held p"
    again.release()
    assert multi.holds == 0


def test_bad_input_is_refused(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.multi_lock([])
    with pytest.raises(latchkey.InvalidArgument):
        client.multi_lock([name, ""])
    with pytest.raises(latchkey.InvalidArgument):
        client.multi_lock([str(i) for i in range(latchkey.MAX_MULTI_LOCK_NAMES + 1)])
    with pytest.raises(TypeError):
        client.multi_lock(name)  # a str is not a list of names
    with pytest.raises(TypeError):
        client.multi_lock([name, 7])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        client.multi_lock(["a\0b"])
    with pytest.raises(ValueError):
        client.multi_lock([name], ttl=0)
    multi = client.multi_lock([name])
    with pytest.raises(ValueError):
        multi.acquire(timeout=-2)
    with pytest.raises(TypeError):
        multi.acquire(cancel=object())  # type: ignore[arg-type]
    # Sorted by UTF-8 bytes ("Z" < "z" < "é"), each once.
    assert client.multi_lock(["é", "z", "Z", "z"]).names == ["Z", "z", "é"]
    assert multi.holds == 0


def test_with_forms_and_threads(client: Client, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    multi = client.multi_lock(iter([b, a]))
    with multi as held:
        assert held.names == [a, b] and client.is_locked(a) and client.is_locked(b)
        outcome: list[object] = []
        t = threading.Thread(target=lambda: outcome.append(multi.try_acquire()))
        t.start()
        t.join(10)
        assert outcome == [None]
    assert not client.is_locked(a) and not client.is_locked(b)
    with client.multi_lock([a, b]).acquire() as held:
        held.check()
    assert not client.is_locked(a)


def test_cancel_ends_a_wait_and_takes_nothing(client: Client, url: str, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    blocker = client.lock(b)
    assert blocker.acquire()
    multi = client.multi_lock([a, b])
    stop = Cancel()
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            multi.acquire(cancel=stop)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    wait_for_waiter(url, b)
    assert client.is_locked(a), "it waits for b holding a"
    stop.cancel()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.Cancelled), outcome
    assert not client.is_locked(a), "a cancelled acquire gives back what it took"
    blocker.release()
    assert multi.holds == 0


def test_ctrl_c_ends_a_main_thread_wait_and_takes_nothing(
    client: Client, url: str, name: str
) -> None:
    from latchkey import cancel as cancel_module

    a, b = f"{name}-a", f"{name}-b"
    blocker = client.lock(b, thread_local=False)
    assert blocker.acquire()
    multi = client.multi_lock([a, b])
    main = threading.main_thread().ident
    assert main is not None

    def ctrl_c() -> None:
        wait_for_waiter(url, b)  # it waits for b, holding a
        signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=ctrl_c)
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            multi.acquire(timeout=30)
    finally:
        sender.join(30)
        signal.signal(signal.SIGINT, previous)
    assert cancel_module.wait_for_waits_to_end(10.0), "the interrupted wait goes on"
    assert not client.is_locked(a), "an interrupted acquire gives back what it took"
    assert multi.holds == 0
    blocker.release()


def test_a_held_guard_survives_garbage_collection_until_close(url: str, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    client = Client(url)
    client.multi_lock([a, b]).acquire()  # neither the guard nor the MultiLock is kept
    gc.collect()
    with Client(url) as observer:
        assert observer.is_locked(a) and observer.is_locked(b), "collected while held"
        client.close()  # the library's close releases them
        assert not observer.is_locked(a) and not observer.is_locked(b)


def test_close_releases_and_ends_waits(url: str, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    client = Client(url)
    multi = client.multi_lock([a, b])
    held = multi.acquire()
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            multi.acquire(timeout=20)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    wait_for_waiter(url, a)
    client.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.ClientClosed), outcome
    with pytest.raises(latchkey.NotHeld):
        held.check()  # a close is an ending, not a loss
    assert not held.lost
    with pytest.raises(latchkey.NotHeld):
        held.release()
    with pytest.raises(latchkey.ClientClosed):
        multi.try_acquire()
    with Client(url) as other:
        assert not other.is_locked(a) and not other.is_locked(b)


def test_a_fork_child_never_touches_the_parents_guard(client: Client, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    held = client.multi_lock([a, b], ttl=5).acquire()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            held.release()
            code = 3  # released the parent's guard
        except latchkey.LatchkeyError:
            pass
        del held
        gc.collect()
        atexit._run_exitfuncs()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    held.check()
    assert client.is_locked(a) and client.is_locked(b)
    held.release()


def test_refuses_pickling(client: Client, name: str) -> None:
    multi = client.multi_lock([name])
    with pytest.raises(TypeError):
        pickle.dumps(multi)
    with multi as held:
        with pytest.raises(TypeError):
            pickle.dumps(held)
        assert "acquired" in repr(held) and "holds=1" in repr(multi)
    assert isinstance(multi, MultiLock)


def test_async_multi_lock(client: Client, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"

    async def main() -> None:
        multi = client.async_multi_lock([b, a])
        async with multi as held:
            assert held.names == [a, b] and not held.lost
            assert await multi.try_acquire() is None
            # A cancelled waiter gives back what it may have been granted.
            waiter = asyncio.ensure_future(multi.acquire())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert multi.holds == 0
        assert not client.is_locked(a) and not client.is_locked(b)
        both = await multi.acquire(timeout=5)
        both.check()
        assert len(both.fencing_tokens) == 2
        await both.release()
        with pytest.raises(latchkey.NotHeld):
            await both.release()

    asyncio.run(main())
    assert isinstance(latchkey.AsyncMultiLock, type)
