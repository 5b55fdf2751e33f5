"""Seeded storms of Ctrl-C (SIGINT sent to the main thread at random
moments) and garbage collections against one lock, checking after every
interruption that Redis and the binding agree: a signal leaves either a
recorded hold (which a release gives back) or a released lock, never a
lease that nobody holds. Used by test_signals.py and `make python-stress`
(LATCHKEY_STRESS_ITERATIONS sets how many cycles)."""

from __future__ import annotations

import gc
import os
import random
import signal
import threading
import time
from typing import Any, Callable, Optional

import latchkey

ITERATIONS_VARIABLE = "LATCHKEY_STRESS_ITERATIONS"


def iterations(default: int) -> int:
    """The number of cycles: LATCHKEY_STRESS_ITERATIONS, or `default`."""
    raw = os.environ.get(ITERATIONS_VARIABLE, "")
    return int(raw) if raw.strip() else default


class Interrupter:
    """Sends SIGINT to the main thread at random moments (seeded) from a
    helper thread; the handler raises KeyboardInterrupt only while armed,
    at most `burst` times per arming (two quick Ctrl-C when burst is 2)."""

    def __init__(self, seed: int, max_delay: float = 0.0003, burst: int = 1) -> None:
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.burst = burst
        self.left = 0
        self.fired = 0
        self.stop = threading.Event()
        self.main = threading.main_thread().ident
        self.previous: Any = None
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _handler(self, signum: int, frame: object) -> None:
        if self.left > 0:
            self.left -= 1
            self.fired += 1
            raise KeyboardInterrupt

    def arm(self) -> None:
        self.left = self.burst

    def disarm(self) -> None:
        self.left = 0

    def _send(self) -> None:
        assert self.main is not None
        while not self.stop.is_set():
            time.sleep(self.rng.uniform(0, self.max_delay))
            signal.pthread_kill(self.main, signal.SIGINT)
            for _ in range(self.burst - 1):
                # A second Ctrl-C once the first one may have been handled.
                time.sleep(self.rng.uniform(0, self.max_delay))
                signal.pthread_kill(self.main, signal.SIGINT)

    def __enter__(self) -> "Interrupter":
        assert threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGINT, self._handler)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Disarmed first: a failure that ends the storm while armed must not
        # be replaced by a KeyboardInterrupt from a signal still on its way.
        self.disarm()
        self.stop.set()
        self.thread.join(10)
        signal.signal(signal.SIGINT, self.previous)


def settle(lock: latchkey.Lock, others: frozenset[str] = frozenset()) -> Optional[str]:
    """After an interruption: what is wrong, or None. Recorded holds are
    released; then Redis must not hold the lock, except for a holder whose
    owner token is in `others` (another owner the test set up)."""
    client = lock._client
    holds = lock.holds
    info = client.inspect(lock.name)
    if holds:
        token = lock.token
        if info is None or info.owner_token != token:
            # The recorded hold may have been released (or been lost) just
            # before the interruption: a release says so.
            pass
        while lock.holds:
            try:
                lock.release()
            except latchkey.NotHeld:
                pass
        info = client.inspect(lock.name)
    if info is not None and info.owner_token not in others:
        return f"an orphan lease: holds={holds}, Redis has {info}"
    return None


def storm(
    client: latchkey.Client,
    name: str,
    seed: int,
    cycles: int,
    mode: str,
    collect: bool = False,
    burst: int = 1,
) -> dict[str, int]:
    """Runs `cycles` interrupted cycles of `mode` ("acquire-release",
    "with", "reentrant") on the main thread, with garbage collections at
    random points when `collect`; raises AssertionError on the first
    inconsistency. Returns counts of what happened."""
    rng = random.Random(seed ^ 0x5EED)
    reentrant = mode == "reentrant"
    try:
        lock = client.lock(name, ttl=2, reentrant=reentrant, thread_local=False)  # type: ignore[call-arg]
    except TypeError:  # a binding without thread_local
        lock = client.lock(name, ttl=2, reentrant=reentrant)
    extender_stop = threading.Event()

    def extender() -> None:
        # Another thread working on the hold at the same time.
        while not extender_stop.is_set():
            try:
                lock.extend(2)
            except latchkey.LatchkeyError:
                time.sleep(0.0005)

    helper = threading.Thread(target=extender, daemon=True)
    helper.start()
    counts = {"cycles": 0, "interrupted": 0, "entered": 0}
    body: Callable[[], None]

    def acquire_release() -> None:
        if lock.acquire(timeout=5):
            lock.release()

    def with_block() -> None:
        with lock:
            counts["entered"] += 1

    def nested() -> None:
        with lock:
            with lock:
                counts["entered"] += 1

    body = {"acquire-release": acquire_release, "with": with_block, "reentrant": nested}[mode]
    try:
        with Interrupter(seed, burst=burst) as interrupter:
            for _ in range(cycles):
                counts["cycles"] += 1
                garbage = [] if collect else None
                if garbage is not None and rng.random() < 0.05:
                    # A lock in a reference cycle, left to the collector.
                    other = client.lock(name + "-cycle", ttl=2)
                    other.cycle = garbage  # type: ignore[attr-defined]
                    garbage.append(other)
                entered_before = counts["entered"]
                try:
                    interrupter.arm()
                    body()
                    if garbage is not None and rng.random() < 0.1:
                        gc.collect()
                    interrupter.disarm()
                except KeyboardInterrupt:
                    interrupter.disarm()
                    counts["interrupted"] += 1
                    if mode == "with" and counts["entered"] == entered_before:
                        # Interrupted before the block ran: __exit__ never
                        # runs, so __enter__ must have given the lock back.
                        if lock.holds:
                            raise AssertionError(
                                "`with lock:` was interrupted before its block and "
                                f"left a hold ({lock.holds}) that nothing releases"
                            ) from None
                    problem = settle(lock)
                    if problem:
                        raise AssertionError(problem) from None
                del garbage
    finally:
        extender_stop.set()
        helper.join(10)
    problem = settle(lock)
    assert problem is None, problem
    assert not client.is_locked(name)
    return counts
