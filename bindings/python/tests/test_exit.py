"""Interpreter exit and cancellation: exit never hands a lock to a thread
that dies with the interpreter, Ctrl-C cannot leave the process waiting for
ever on a worker's acquire, and any thread's wait can be cancelled."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import latchkey
from latchkey import Client


def test_exit_does_not_hand_the_lock_to_a_dying_daemon_thread(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    # The main thread holds the lock, a daemon thread of the same process
    # waits for it, the interpreter exits: the at-exit release must not go
    # to the daemon thread (it dies with the interpreter, so the lock
    # would stay held until its ttl).
    script = textwrap.dedent(
        """
        import sys, threading, time, latchkey
        client = latchkey.Client(sys.argv[1])
        holder = client.lock(sys.argv[2], ttl=30)
        assert holder.acquire()
        waiter = client.lock(sys.argv[2], ttl=30)
        threading.Thread(target=waiter.acquire, daemon=True).start()
        time.sleep(0.3)  # let the daemon thread settle into its wait
        print("exiting", flush=True)
        """
    )
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", script, url, name],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "exiting"
        info = client.inspect(name)
        assert info is None, f"the lock stayed held after exit: {info}"


def test_ctrl_c_with_a_worker_waiting_lets_the_process_exit(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    holder = client.lock(name, ttl=30)
    assert holder.acquire()
    script = textwrap.dedent(
        """
        import signal, sys, threading, latchkey
        signal.signal(signal.SIGINT, signal.default_int_handler)
        client = latchkey.Client(sys.argv[1])
        lock = client.lock(sys.argv[2])
        def work():
            try:
                lock.acquire()
                print("worker acquired", flush=True)
            except latchkey.Cancelled:
                print("worker cancelled", flush=True)
        worker = threading.Thread(target=work)  # not a daemon
        worker.start()
        print("waiting", flush=True)
        while True:  # the main thread's own work, until Ctrl-C
            threading.Event().wait(0.05)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, url, name],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.3)  # let the worker settle into its wait
        child.send_signal(signal.SIGINT)
        try:
            out, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the process did not exit after Ctrl-C (a worker waits in acquire)")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "KeyboardInterrupt" in err
    assert "worker cancelled" in out, (out, err)
    info = client.inspect(name)
    assert info is not None and info.owner_token == holder.token, "still the holder's"
    holder.release()
    assert not client.is_locked(name)


def test_a_wait_on_another_thread_is_cancelled(client: Client, name: str) -> None:
    holder = client.lock(name, ttl=30)
    assert holder.acquire()
    stop = latchkey.Cancel()
    outcome: list[object] = []
    waiting = client.lock(name)

    def wait() -> None:
        try:
            outcome.append(waiting.acquire(timeout=60, cancel=stop))
        except latchkey.Cancelled as e:
            outcome.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    stop.cancel()
    t.join(20)
    assert not t.is_alive(), "the cancelled wait did not return"
    assert len(outcome) == 1 and isinstance(outcome[0], latchkey.Cancelled), outcome
    assert stop.cancelled
    # Later waits with it are cancelled at once, until reset.
    with pytest.raises(latchkey.Cancelled):
        waiting.acquire(timeout=60, cancel=stop)
    stop.reset()
    assert waiting.acquire(timeout=0.1, cancel=stop) is False
    holder.release()
    assert waiting.acquire(timeout=10, cancel=stop)
    waiting.release()
    assert not client.is_locked(name)


def test_exit_gives_back_the_holds_of_other_threads(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    # A thread that ended holding (its hold stays recorded and renewed) and
    # a daemon thread still inside its critical section at exit: both
    # locks are given back at exit, not left to their ttl.
    script = textwrap.dedent(
        """
        import sys, threading, latchkey
        client = latchkey.Client(sys.argv[1])
        ended = client.lock(sys.argv[2] + "-ended", ttl=30, reentrant=True)
        t = threading.Thread(target=lambda: (ended.acquire(), ended.acquire()))
        t.start(); t.join()
        assert ended.holds == 0  # this thread holds none of them
        busy = client.lock(sys.argv[2] + "-busy", ttl=30)
        inside = threading.Event()
        def work():
            with busy:
                inside.set()
                threading.Event().wait()  # never leaves its critical section
        threading.Thread(target=work, daemon=True).start()
        assert inside.wait(30)
        print("exiting", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url, name],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "exiting"
    assert out.stderr == ""
    assert client.inspect(name + "-ended") is None
    assert client.inspect(name + "-busy") is None
