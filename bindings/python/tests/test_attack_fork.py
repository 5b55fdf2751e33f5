"""Attacks on fork and signals from Python: what a lost-lease callback (run
on the library's renewal thread) starts, and what an ``os.fork()`` child
does to its parent's holds."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import subprocess
import threading
import time

import pytest

from latchkey import Client, LostLease


def _blocked_mask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigBlk")


def _bit(signum: int) -> int:
    return 1 << (signum - 1)


def test_a_program_started_from_a_lost_callback_gets_its_signals(
    client: Client, url: str, name: str
) -> None:
    # The callback runs on the renewal thread, which blocks every
    # asynchronous signal except while it runs host code; subprocess starts
    # the program with vfork or posix_spawn, which run no pthread_atfork
    # handler. Before the callback ran with the host's mask, `sleep`
    # inherited the renewal thread's: SIGTERM did not end it (3 of 3 runs).
    masks: list[int] = []
    done = threading.Event()

    def on_lost(lost: LostLease) -> None:
        child = subprocess.Popen(["sleep", "30"])
        try:
            for _ in range(1000):
                with open(f"/proc/{child.pid}/status") as status:
                    if "Name:\tsleep" in status.read():
                        break
            masks.append(_blocked_mask(child.pid))
        finally:
            child.kill()
            child.wait()
            done.set()

    lock = client.lock(name, ttl=0.3, on_lost=on_lost)
    assert lock.acquire()
    with Client(url) as operator:
        assert operator.force_unlock(name)
    assert done.wait(10), "the callback did not run"
    blocked = masks[0] & (_bit(signal.SIGTERM) | _bit(signal.SIGINT) | _bit(signal.SIGHUP))
    assert blocked == 0, f"SigBlk of the program: {masks[0]:#x}"


def test_an_os_fork_child_that_exits_normally_leaves_the_parents_hold(
    client: Client, name: str
) -> None:
    # Held: the child uses the inherited Lock (refused), closes the
    # inherited Client, drops both and runs the interpreter's exit handlers
    # (what sys.exit would run; not sys.exit itself, which would run
    # pytest on in the child); the parent still holds.
    lock = client.lock(name, ttl=5)
    assert lock.acquire()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            lock.release()
            code = 3  # released the parent's hold
        except Exception:
            pass
        try:
            client.close()
        except Exception:
            pass
        del lock
        gc.collect()
        atexit._run_exitfuncs()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    lock.check()
    assert client.is_locked(name)
    lock.release()


def test_an_os_fork_child_refuses_the_parents_client_while_a_thread_waits(
    client: Client, url: str, name: str
) -> None:
    # Held: a parent thread is parked in an acquire (inside a C call, its
    # handle in use) at the fork. The child's use of the inherited Client
    # and Lock is refused at once (no hang on the parent's use count), and
    # a Client of its own works; the parent's hold and wait are untouched.
    lock = client.lock(name, ttl=5)
    assert lock.acquire()
    waiting = threading.Event()
    got: list[bool] = []

    def wait_for_it() -> None:
        waiting.set()
        other = client.lock(name, ttl=5)
        got.append(other.acquire(timeout=30))
        other.release()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert waiting.wait(5)
    # The waiter is about to park or parked (its Client call in progress
    # either way: the use count the child inherits is not zero).
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        for use in (lambda: client.lock(name), lambda: lock.release()):
            try:
                use()
                code = code or 4
            except Exception:
                pass
        client.close()  # a no-op on the parent's client, which stays open
        try:
            with Client(url) as own:
                mine = own.lock(name + "-child", ttl=5)
                if not mine.acquire(timeout=5):
                    code = 5
                mine.release()
        except Exception:
            code = 6
        os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the os.fork child hung")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0,), status
    lock.check()
    lock.release()
    waiter.join(30)
    assert got == [True]
