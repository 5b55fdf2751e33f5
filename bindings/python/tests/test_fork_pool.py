"""fork, the default multiprocessing start method on Linux: workers forked
from a parent whose latchkey threads run must each be able to open, use and
free a Client of their own, and must not start with signals blocked.

Before src/sync.rs (parking_lot's process-wide table of parked threads,
inherited by every child) the pool hung: a first version of this test,
whose pool ran inside pytest, hung pytest itself (a hung worker blocks
SIGTERM, so Pool.terminate() cannot end it); this one timed out after
240 s with two workers spinning in parking_lot's unpark_requeue, called
from the watchdog's notify_all. Hence the pool in a process group of its
own, killed with SIGKILL when the global timeout runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from latchkey import Client, LostLease

WORKERS = 8
TASKS = 100
# Far above what the whole pool takes (seconds); only a hang gets here.
POOL_TIMEOUT_S = 240

# Signals the library blocks on its own threads and during socket I/O: every
# asynchronous one. A forked child must start with none of them blocked.
LIBRARY_BLOCKED = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGURG, signal.SIGCHLD}

# The parent holds an auto-renewed lock (renewed every second) while a fork
# Pool runs the tasks; each task opens its own Client, takes a contended
# lock a few times and frees everything, and reports the signals blocked in
# its worker. The pool runs in a process of its own so that a hung worker
# (which blocks SIGTERM, so Pool.terminate() cannot end it) is killed with
# its whole process group instead of hanging pytest.
POOL_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, signal, sys
    from latchkey import Client

    url, name, workers, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    def task(_: int) -> list[int]:
        with Client(url) as client:
            lock = client.lock(name, ttl=10)
            for _ in range(3):
                assert lock.acquire(timeout=60)
                lock.release()
        return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))

    if __name__ == "__main__":
        with Client(url) as parent:
            held = parent.lock(name + "-parent", ttl=3)
            assert held.acquire()
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                masks = pool.map(task, range(workers * tasks))
            held.check()
            held.release()
        blocked = sorted({s for mask in masks for s in mask})
        print(len(masks), " ".join(str(s) for s in blocked))
    """
)


def test_a_fork_pool_of_workers_each_with_its_own_client(
    url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    pool = subprocess.Popen(
        [sys.executable, "-c", POOL_SCRIPT, url, name, str(WORKERS), str(TASKS)],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = pool.communicate(timeout=POOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(pool.pid, signal.SIGKILL)
        out, err = pool.communicate()
        raise AssertionError(
            f"the pool did not finish {WORKERS * TASKS} tasks in {POOL_TIMEOUT_S} s: "
            f"a forked worker hung\n{err[-2000:]}"
        ) from None
    assert pool.returncode == 0, err[-2000:]
    done, *blocked = out.split()
    assert int(done) == WORKERS * TASKS
    assert not LIBRARY_BLOCKED & {int(s) for s in blocked}, (
        f"workers started with {blocked} blocked"
    )


def blocked_signals() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


def test_a_child_forked_from_a_library_thread_has_no_signal_blocked(
    client: Client, url: str, name: str
) -> None:
    # on_lost runs on the library's renewal thread, which blocks every
    # asynchronous signal for its whole life; a child forked there (a
    # callback that starts a helper process) must not inherit that mask.
    # Before the fix the child started with all of them blocked.
    reader, writer = os.pipe()
    forked = threading.Event()
    children: list[int] = []

    def on_lost(lost: LostLease) -> None:
        pid = os.fork()
        if pid == 0:
            os.write(writer, " ".join(str(s) for s in blocked_signals()).encode())
            os._exit(0)
        children.append(pid)
        forked.set()

    lock = client.lock(name, ttl=0.5, on_lost=on_lost)
    assert lock.acquire()
    with Client(url) as operator:
        assert operator.force_unlock(name)
    assert forked.wait(30), "the lost-lease callback did not run"
    os.close(writer)
    with os.fdopen(reader) as report:
        mask = report.read()
    _, status = os.waitpid(children[0], 0)
    assert os.waitstatus_to_exitcode(status) == 0
    blocked = {int(s) for s in mask.split()}
    assert not LIBRARY_BLOCKED & blocked, f"the child started with {blocked} blocked"
    assert not lock.owned()
