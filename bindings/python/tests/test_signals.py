"""Ctrl-C at any moment never orphans a lease: seeded storms of SIGINT on
the main thread during acquire/release, `with lock:` and reentrant nesting,
and two quick Ctrl-C during a contended wait."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from storm import iterations, storm

from latchkey import Client


@pytest.mark.parametrize("mode", ["acquire-release", "with", "reentrant"])
def test_ctrl_c_storm_leaves_no_orphan(client: Client, name: str, mode: str) -> None:
    counts = storm(client, name, seed=20260601, cycles=iterations(2000), mode=mode)
    print(counts)
    assert counts["interrupted"] > 0


# A Ctrl-C that lands in a finalizer run by the collector is printed and
# ignored by Python ("Exception ignored in"), which pytest reports.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_and_collections_storm(client: Client, name: str) -> None:
    counts = storm(client, name, seed=7, cycles=iterations(1000), mode="with", collect=True)
    assert counts["interrupted"] > 0


def test_two_quick_ctrl_c_storm(client: Client, name: str) -> None:
    counts = storm(client, name, seed=11, cycles=iterations(1000), mode="with", burst=2)
    assert counts["interrupted"] > 0


@pytest.mark.parametrize("gap", [0.0, 0.0002, 0.001, 0.005])
def test_two_quick_ctrl_c_during_a_contended_wait(client: Client, name: str, gap: float) -> None:
    try:
        from latchkey import cancel as cancel_module
    except ImportError:  # a binding without a wait registry (to show the old defect)
        cancel_module = None  # type: ignore[assignment]

    holder = client.lock(name, ttl=3, thread_local=False)
    assert holder.acquire()
    waiter = client.lock(name, ttl=3)
    main = threading.main_thread().ident
    assert main is not None

    def two_ctrl_c() -> None:
        # Once the main thread waits (its wait is registered): two Ctrl-C.
        deadline = time.monotonic() + 30
        if cancel_module is None:
            time.sleep(0.3)
        while cancel_module and not len(cancel_module._WAITS) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(gap)
        signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sender = threading.Thread(target=two_ctrl_c)
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            try:
                waiter.acquire(timeout=30)
            finally:
                # The second Ctrl-C may land in this frame: let it, after
                # the sender is done.
                sender.join(30)
                time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert waiter.holds == 0
    # The helper's wait was cancelled: it ends well before the 30 s timeout.
    if cancel_module is not None:
        assert cancel_module.wait_for_waits_to_end(10.0), "the interrupted wait goes on"
    holder.release()
    if cancel_module is None:
        deadline = time.monotonic() + 2
        while client.inspect(name) is None and time.monotonic() < deadline:
            time.sleep(0.01)
    # Nobody may hold the lock now: an interrupted wait that took it
    # meanwhile must have given it back.
    info = client.inspect(name)
    assert info is None, f"an orphan lease after the interrupted wait: {info}"
    assert waiter.acquire(timeout=5)
    waiter.release()
