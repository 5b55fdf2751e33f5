"""Ctrl-C at every point where Python can handle a signal inside the
binding: a KeyboardInterrupt is raised at the first, second, third, ...
such point that runs inside the latchkey package during one
acquire/release cycle, until a cycle runs to the end. After each
interrupted cycle, Redis and the binding must agree: a recorded hold (which
a release gives back) or a released lock, never a lease nobody holds; and
an interrupted acquire or ``with lock:`` holds nothing.

CPython runs signal handlers only where it checks for them: right after a
call returns, at a function's start and at a backward jump. The tracer
below injects the KeyboardInterrupt at exactly those points (before the
next instruction of the frame), one per cycle, so the sweep is exhaustive
and deterministic; the seeded storms of real signals are in
test_signals.py."""

from __future__ import annotations

import dis
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional

import pytest
from storm import settle

import latchkey
from latchkey import Client

PACKAGE = str(Path(latchkey.__file__).resolve().parent)

# After these instructions the interpreter checks for pending signals.
_CHECKS = {dis.opmap[name] for name in ("CALL", "RESUME", "JUMP_BACKWARD") if name in dis.opmap}


class _InjectAt:
    """A trace function raising KeyboardInterrupt at the n-th point in the
    package where a signal handler could run (once)."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.fired = False
        self.where = ""
        self.previous: dict[int, int] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Optional[Callable[..., Any]]:
        if self.fired:
            return None
        if not frame.f_code.co_filename.startswith(PACKAGE):
            return self if event == "call" else None
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            self.previous[id(frame)] = -1
            return self
        if event == "opcode":
            key = id(frame)
            before = self.previous.get(key, -1)
            self.previous[key] = frame.f_code.co_code[frame.f_lasti]
            if before in _CHECKS:
                self.left -= 1
                if self.left == 0:
                    self.fired = True
                    self.where = f"{frame.f_code.co_name}:{frame.f_lineno}"
                    raise KeyboardInterrupt
        return self


def _sweep(
    lock: latchkey.Lock,
    cycle: Callable[[list[bool]], None],
    others: frozenset[str] = frozenset(),
) -> int:
    """Runs `cycle` with an interruption at line 1, 2, ... until one runs
    through; returns how many points were tried."""
    n = 0
    while True:
        n += 1
        assert n < 5000, "the sweep does not end"
        inject = _InjectAt(n)
        entered = [False]
        sys.settrace(inject)
        try:
            cycle(entered)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        if not inject.fired:
            problem = settle(lock, others)
            assert problem is None, problem
            return n
        if not entered[0] and lock.holds:
            pytest.fail(
                f"interrupted at point {n} ({inject.where}) before the block ran, "
                f"the lock is still held ({lock.holds} holds) and nothing will release it"
            )
        problem = settle(lock, others)
        assert problem is None, f"interrupted at point {n} ({inject.where}): {problem}"


@pytest.mark.parametrize("reentrant", [False, True])
def test_ctrl_c_at_every_line_of_acquire_and_release(
    client: Client, name: str, reentrant: bool
) -> None:
    lock = client.lock(name, ttl=5, reentrant=reentrant)

    def cycle(entered: list[bool]) -> None:
        if lock.acquire(timeout=5):
            entered[0] = True
            lock.release()

    assert _sweep(lock, cycle) > 5


@pytest.mark.parametrize("reentrant", [False, True])
def test_ctrl_c_at_every_line_of_a_with_block(client: Client, name: str, reentrant: bool) -> None:
    lock = client.lock(name, ttl=5, reentrant=reentrant)

    def cycle(entered: list[bool]) -> None:
        with lock:
            entered[0] = True

    assert _sweep(lock, cycle) > 5


def test_ctrl_c_at_every_line_of_release(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5)
    n = 0
    while True:
        n += 1
        assert lock.acquire(timeout=5)
        inject = _InjectAt(n)
        sys.settrace(inject)
        try:
            lock.release()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        problem = settle(lock)
        assert problem is None, f"release interrupted at point {n}: {problem}"
        if not inject.fired:
            break
    assert n > 3


def test_ctrl_c_at_every_point_of_a_contended_wait(client: Client, name: str) -> None:
    # The main thread's wait runs on a helper thread; an interruption at any
    # point must cancel it (the wait registry drains) and take nothing.
    from latchkey import cancel as cancel_module

    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    lock = client.lock(name, ttl=5)

    def cycle(entered: list[bool]) -> None:
        if lock.acquire(timeout=0.05):
            entered[0] = True
            lock.release()

    n = _sweep(lock, cycle, frozenset([holder.token]))
    assert n > 5
    assert cancel_module.wait_for_waits_to_end(10.0), "a helper thread is still waiting"
    info = client.inspect(name)
    assert info is not None and info.owner_token == holder.token
    holder.release()


class _InjectAfterFirst(_InjectAt):
    """Raises a second KeyboardInterrupt at the n-th signal-handling point
    after a first one (a real SIGINT) has been raised in the package: two
    quick Ctrl-C, the second swept over every point of the cleanup."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.armed = False

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Optional[Callable[..., Any]]:
        if (
            event == "exception"
            and not self.armed
            and frame.f_code.co_filename.startswith(PACKAGE)
            and isinstance(arg[1], KeyboardInterrupt)
        ):
            self.armed = True
            self.previous.clear()
        if not self.armed and event == "opcode":
            return self
        return super().__call__(frame, event, arg)


def test_a_second_ctrl_c_at_every_point_after_the_first(client: Client, name: str) -> None:
    import signal
    import threading
    import time

    try:
        from latchkey import cancel as registry
    except ImportError:  # a binding without a wait registry (to show the old defect)
        registry = None  # type: ignore[assignment]
    holder = client.lock(name, ttl=3)
    lock = client.lock(name, ttl=3)
    main = threading.main_thread().ident
    assert main is not None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    n = 0
    try:
        while True:
            n += 1
            assert n < 500, "the sweep does not end"
            assert holder.acquire(timeout=10)

            def first_ctrl_c() -> None:
                if registry is None:
                    time.sleep(0.3)
                deadline = time.monotonic() + 30
                while registry and not len(registry._WAITS) and time.monotonic() < deadline:
                    time.sleep(0.001)
                signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]

            sender = threading.Thread(target=first_ctrl_c)
            inject = _InjectAfterFirst(n)
            sender.start()
            started = time.monotonic()
            sys.settrace(inject)
            try:
                lock.acquire(timeout=30)
                pytest.fail("the acquire was not interrupted")
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
                sender.join(30)
            took = time.monotonic() - started
            # Generous, but well below the acquire's own 30 s timeout: the
            # wait was cancelled, not run out.
            assert took < 15, (
                f"second Ctrl-C at point {n} ({inject.where}): returned after {took:.0f} s"
            )
            assert lock.holds == 0
            if registry is not None:
                assert registry.wait_for_waits_to_end(10.0), f"point {n}: the wait goes on"
            holder.release()
            if registry is None:
                time.sleep(0.3)  # the old binding: give a stray waiter time to take it
            info = client.inspect(name)
            assert info is None, f"second Ctrl-C at point {n} ({inject.where}): orphan {info}"
            if not inject.fired:
                break
    finally:
        signal.signal(signal.SIGINT, previous)
    assert n > 2


def test_ctrl_c_as_the_helper_thread_starts(
    client: Client, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C that arrives while the main thread starts its helper thread
    # is handled as that call returns, when the helper is already waiting:
    # the wait is cancelled, not left to run out the acquire's timeout.
    from latchkey import cancel as registry

    lock_module = sys.modules["latchkey.lock"]
    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    lock = client.lock(name, ttl=5)
    real_start: Callable[[Callable[[], None], tuple[()]], int] = lock_module._start_new_thread

    def start_then_ctrl_c(function: Callable[[], None], args: tuple[()]) -> int:
        real_start(function, args)
        raise KeyboardInterrupt  # the handler of a signal that came during the call

    monkeypatch.setattr(lock_module, "_start_new_thread", start_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        lock.acquire(timeout=60)
    assert lock.holds == 0
    assert registry.wait_for_waits_to_end(10.0), "the helper thread still waits for the lock"
    info = client.inspect(name)
    assert info is not None and info.owner_token == holder.token
    holder.release()


def test_no_helper_thread(client: Client, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A helper thread that cannot start: the error is raised, and the wait
    # and the lock handle are given back.
    from latchkey import cancel as registry

    lock_module = sys.modules["latchkey.lock"]
    holder = client.lock(name, ttl=5, thread_local=False)
    assert holder.acquire()
    lock = client.lock(name, ttl=5)

    def cannot_start(function: Callable[[], None], args: tuple[()]) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(lock_module, "_start_new_thread", cannot_start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        lock.acquire(timeout=60)
    assert lock.holds == 0
    assert registry.wait_for_waits_to_end(10.0), "the wait is still registered"
    assert lock._handle._users == 0
    holder.release()
