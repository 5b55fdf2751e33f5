"""Python realities: mutual exclusion between processes, fork, Ctrl-C in a
blocking acquire, and the GIL released while a call blocks."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from latchkey import Client

import workers

PROCESSES = 4
PER_PROCESS = 200


def test_mutual_exclusion_between_processes(url: str, name: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            workers.contend, [(url, name, PER_PROCESS, str(counter))] * PROCESSES
        )
    total = PROCESSES * PER_PROCESS
    assert int(counter.read_text()) == total, "an update was lost: two holders overlapped"
    holds = sorted(h for result in results for h in result)
    assert len(holds) == total
    for before, after in zip(holds, holds[1:]):
        assert before[1] <= after[0], f"hold intervals overlap: {before} and {after}"
        assert before[2] < after[2], "fencing tokens grow in the order of the holds"


def test_a_forked_child_opens_its_own_client(client: Client, url: str, name: str) -> None:
    lock = client.lock(name, ttl=10)
    lock.acquire()
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=workers.in_forked_child, args=(url, name, client, lock))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert lock.owned(), "the child did not release the parent's lock"
    lock.release()
    # The parent's client still works after the fork.
    assert not client.is_locked(name)


def test_a_child_exiting_normally_leaves_the_parents_lease(
    url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    # The child runs the interpreter's normal exit (atexit finalizers,
    # garbage collection): the inherited Lock must not release the
    # parent's lease, the inherited Client must not be freed.
    script = textwrap.dedent(
        """
        import gc, os, sys
        import latchkey
        client = latchkey.Client(sys.argv[1])
        lock = client.lock(sys.argv[2], ttl=10)
        assert lock.acquire()
        pid = os.fork()
        if pid == 0:
            del lock, client
            gc.collect()
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock.owned(), "the child released the parent's lease"
        lock.release()
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url, name],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_ctrl_c_interrupts_a_blocking_acquire(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    holder = client.lock(name, ttl=30)
    holder.acquire()
    script = textwrap.dedent(
        """
        import signal, sys, latchkey
        # Python's own Ctrl-C handler, even if this test runs in the
        # background, where SIGINT is inherited as ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        client = latchkey.Client(sys.argv[1])
        lock = client.lock(sys.argv[2])
        print("waiting", flush=True)
        try:
            lock.acquire()
        except KeyboardInterrupt:
            # CLOCK_MONOTONIC: the same clock in every process on Linux.
            import time
            print("interrupted holds=%d at %.6f" % (lock.holds, time.monotonic()), flush=True)
            raise
        print("acquired", flush=True)
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
        time.sleep(0.5)  # let it settle into the blocking wait
        assert child.poll() is None, "the child should be waiting for the lock"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "interrupted holds=0" in out, (out, err)
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0
    # The wait ends within milliseconds of the signal (a generous bound for
    # a loaded machine); the child's exit takes longer and is not counted.
    interrupted_at = float(out.split("interrupted holds=0 at ")[1].split()[0])
    assert interrupted_at - sent < 0.5, interrupted_at - sent
    assert elapsed < 5
    assert holder.owned(), "the lock stayed with its holder"
    holder.release()


def test_signal_handlers_run_during_a_wait_that_goes_on(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    # A handler that does not raise runs promptly while the main thread
    # waits, and the wait continues until the lock is released.
    holder = client.lock(name, ttl=30)
    holder.acquire()
    script = textwrap.dedent(
        """
        import signal, sys, latchkey
        signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))
        client = latchkey.Client(sys.argv[1])
        lock = client.lock(sys.argv[2])
        print("waiting", flush=True)
        print("acquired" if lock.acquire(timeout=30) else "timed out", flush=True)
        lock.release()
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
        time.sleep(0.3)
        child.send_signal(signal.SIGUSR1)
        assert child.stdout.readline().strip() == "handled"
        assert child.poll() is None, "still waiting for the lock"
        holder.release()
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.strip() == "acquired", err
    assert child.returncode == 0, err


def _count_while(blocked: threading.Thread) -> int:
    count = 0
    while blocked.is_alive():
        count += 1
    return count


def test_the_gil_is_released_while_a_thread_blocks(client: Client, name: str) -> None:
    holder = client.lock(name)
    holder.acquire()
    waiter = client.lock(name)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(waiter.acquire(timeout=1.0)))
    t.start()
    count = _count_while(t)
    t.join()
    assert result == [False]
    assert count > 100_000, f"the main thread ran only {count} iterations in 1 s"
    holder.release()


def test_the_gil_is_released_while_the_main_thread_blocks(client: Client, name: str) -> None:
    holder = client.lock(name)
    holder.acquire()
    waiter = client.lock(name)
    counted: list[int] = []
    stop = threading.Event()

    def count() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    try:
        assert waiter.acquire(timeout=1.0) is False
    finally:
        stop.set()
        t.join()
    assert counted[0] > 100_000, f"the other thread ran only {counted[0]} iterations in 1 s"
    holder.release()


def test_many_threads_and_one_client(client: Client, name: str) -> None:
    # A Client is shared by threads; each thread uses its own Lock handle.
    counter = [0]

    def work() -> None:
        lock = client.lock(name)
        for _ in range(30):
            with lock:
                value = counter[0]
                time.sleep(0)
                counter[0] = value + 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counter[0] == 180


def test_exiting_with_held_locks_gives_them_back(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    # Held locks (one with a callback), a daemon thread blocked in acquire,
    # and no cleanup: the interpreter exits cleanly and the locks are free.
    blocker = client.lock(name + "-w")
    blocker.acquire()
    script = textwrap.dedent(
        """
        import sys, threading, latchkey
        client = latchkey.Client(sys.argv[1])
        held = client.lock(sys.argv[2], on_lost=lambda lost: None)
        assert held.acquire()
        nested = client.lock(sys.argv[2] + "-r", reentrant=True)
        nested.acquire(); nested.acquire()
        waiter = client.lock(sys.argv[2] + "-w")
        threading.Thread(target=waiter.acquire, daemon=True).start()
        print("exiting", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url, name],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "exiting"
    assert out.stderr == ""
    assert not client.is_locked(name)
    assert not client.is_locked(name + "-r")
    assert blocker.owned()
    blocker.release()
