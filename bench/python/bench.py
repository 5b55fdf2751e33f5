#!/usr/bin/env python3
"""Python rows of `make bench` (run by bench/run.sh with bench/.venv's python).

Implementations, each used as its documentation shows, with a 30 s lease
and otherwise default settings:

  latchkey-python    the latchkey binding (bindings/python, ctypes), if built
  redis-py           redis.Redis.lock(): SET NX PX, polls every 0.1 s
  python-redis-lock  redis_lock.Lock: SET NX, waiters block in BLPOP
  pottery            pottery.Redlock: 1, 3 or 5 masters, polls 0-0.2 s apart

Subcommands (each prints JSON lines, like bench/rust/main.rs):

  bench.py IMPL available URL                 exit 0 if IMPL can run here
  bench.py IMPL cycle URL CYCLES               floor (redis-py PING) interleaved
  bench.py IMPL cycle-redlock SCENARIO CYCLES URL...
  bench.py IMPL handoff URL ROUNDS             waiter in another process
  bench.py IMPL waiter URL NAME                (internal)
  bench.py IMPL contend URL NAME START_NS END_NS COUNTER_FILE   (internal)
"""

import json
import logging
import os
import random
import subprocess
import sys
import time
import warnings

# bench/rows.py holds the statistics every row uses, once.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rows import pooled_stats  # noqa: E402

TTL_S = 30
# How long a blocked waiter is left parked before the release (see
# bench/rust/main.rs: SETTLE).
SETTLE_S = 0.001

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# --- implementations ------------------------------------------------------------


class LatchkeyPython:
    """The binding: Client(url).lock(name) -> acquire(blocking=True), release()."""

    name = "latchkey-python"
    wait = "pubsub"

    def __init__(self, urls, key):
        import latchkey  # bindings/python, on PYTHONPATH when built

        self.client = latchkey.Client(urls[0])
        self.lock = self.client.lock(key)
        self.channel = f"latchkey:{{{key}}}:ch"
        self.guard = None

    def acquire(self):
        got = self.lock.acquire(blocking=True)
        if got is False:
            raise RuntimeError("latchkey acquire returned False while blocking")
        # Accept a guard object too, should the binding return one.
        self.guard = got if hasattr(got, "release") and got is not self.lock else None

    def release(self):
        (self.guard or self.lock).release()
        self.guard = None


class RedisPy:
    """redis-py's Lock with its defaults (sleep=0.1 between attempts)."""

    name = "redis-py"
    wait = "poll"
    poll_s = 0.1

    def __init__(self, urls, key):
        import redis

        self.lock = redis.Redis.from_url(urls[0]).lock(key, timeout=TTL_S)

    def acquire(self):
        if not self.lock.acquire(blocking=True):
            raise RuntimeError("redis-py acquire failed")

    def release(self):
        self.lock.release()


class PythonRedisLock:
    """python-redis-lock: SET NX, waiters block in BLPOP on a signal list."""

    name = "python-redis-lock"
    wait = "blpop"

    def __init__(self, urls, key):
        import redis
        import redis_lock

        self.lock = redis_lock.Lock(redis.Redis.from_url(urls[0]), key, expire=TTL_S)

    def acquire(self):
        if not self.lock.acquire(blocking=True):
            raise RuntimeError("python-redis-lock acquire failed")

    def release(self):
        self.lock.release()


class Pottery:
    """pottery's Redlock over 1, 3 or 5 masters, default retry delay."""

    name = "pottery"
    wait = "poll"
    poll_s = 0.2

    def __init__(self, urls, key):
        import redis
        from pottery import Redlock

        masters = {redis.Redis.from_url(u) for u in urls}
        self.lock = Redlock(key=key, masters=masters, auto_release_time=TTL_S)

    def acquire(self):
        if not self.lock.acquire(blocking=True, timeout=-1):
            raise RuntimeError("pottery acquire failed")

    def release(self):
        self.lock.release()


IMPLS = {c.name: c for c in (LatchkeyPython, RedisPy, PythonRedisLock, Pottery)}


def make(impl, urls, key):
    try:
        return IMPLS[impl](urls, key)
    except KeyError:
        sys.exit(f"bench.py: unknown implementation {impl!r}")


# --- statistics and output ---------------------------------------------------------


def stats(samples_ns):
    """Median of batch medians, p90 of all samples, batch-median spread (µs):
    the statistics every benchmark row uses (bench/rows.py)."""
    return pooled_stats([s / 1000 for s in samples_ns])


def emit(scenario, impl, samples, floor, **extra):
    row = {"scenario": scenario, "impl": impl, **stats(samples)}
    floor_us = stats(floor)["median_us"]
    row.update(
        floor_us=floor_us,
        ratio=round(row["median_us"] / floor_us, 3),
        ops_per_s=round(1e6 / row["median_us"], 1),
    )
    row.update(extra)
    if os.environ.get("BENCH_SAMPLES") == "1":
        # Every sample (µs, in the order taken), for bench/rows.py to pool
        # the interleaved rounds of bench/run.sh.
        row["samples_us"] = [round(s / 1000, 2) for s in samples]
    print(json.dumps(row), flush=True)


def ping_ns(admin):
    t = time.perf_counter_ns()
    admin.ping()
    return time.perf_counter_ns() - t


def admin_for(url):
    import redis

    return redis.Redis.from_url(url)


# --- scenarios -----------------------------------------------------------------------


def cycle(impl, scenario, cycles, urls):
    """Uncontended acquire + release, interleaved with a redis-py PING."""
    lock = make(impl, urls, f"bench:{scenario}:{impl}")
    admin = admin_for(urls[0])
    warm_up = cycles // 20 + 20
    floor, samples = [], []
    for i in range(cycles + warm_up):
        f = ping_ns(admin)
        t = time.perf_counter_ns()
        lock.acquire()
        lock.release()
        c = time.perf_counter_ns() - t
        if i >= warm_up:
            floor.append(f)
            samples.append(c)
    emit(
        scenario,
        impl,
        samples,
        floor,
        masters=len(urls),
        floor_source="redis-py PING on one connection, interleaved",
    )


def wait_until_blocked(lock, admin, rng):
    """Returns once the waiter is parked (or, for polling waiters, at a
    random moment of its polling cycle)."""
    if lock.wait == "pubsub":
        while admin.pubsub_numsub(lock.channel)[0][1] == 0:
            pass
        time.sleep(SETTLE_S)
    elif lock.wait == "blpop":
        while int(admin.info("clients")["blocked_clients"]) == 0:
            pass
        time.sleep(SETTLE_S)
    else:
        time.sleep(0.005 + rng.uniform(0, lock.poll_s))


def handoff(impl, rounds, url):
    key = f"bench:handoff:{impl}"
    lock = make(impl, [url], key)
    admin = admin_for(url)
    waiter = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), impl, "waiter", url, key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    rng = random.Random()
    warm_up = 2 if lock.wait == "poll" else rounds // 10 + 5
    floor, samples = [], []
    for r in range(rounds + warm_up):
        lock.acquire()
        waiter.stdin.write("go\n")
        waiter.stdin.flush()
        assert waiter.stdout.readline().strip() == "waiting"
        wait_until_blocked(lock, admin, rng)
        f = ping_ns(admin)
        t0 = now_ns()
        lock.release()
        t1 = int(waiter.stdout.readline())
        if r >= warm_up:
            floor.append(f)
            samples.append(t1 - t0)
    waiter.stdin.close()
    waiter.wait()
    how = {
        "pubsub": "pub/sub wake-up",
        "blpop": "BLPOP wake-up",
        "poll": "polls 0-0.2 s apart" if impl == "pottery" else "polls every 0.1 s",
    }[lock.wait]
    emit(
        "handoff",
        impl,
        samples,
        floor,
        waiting=how,
        floor_source="redis-py PING from the holder just before the release",
    )


def waiter(impl, url, key):
    lock = make(impl, [url], key)
    for line in sys.stdin:
        print("waiting", flush=True)
        lock.acquire()
        t1 = now_ns()
        lock.release()
        print(t1, flush=True)


def contend(impl, url, key, start, end, counter):
    """One contender of contended-4 (bench/contend.py runs four)."""
    lock = make(impl, [url], key)
    while now_ns() < start:
        time.sleep(max(0.0, (start - now_ns()) / 1e9))
    count = 0
    while now_ns() < end:
        lock.acquire()
        with open(counter) as f:
            value = int(f.read().strip() or 0)
        with open(counter, "w") as f:
            f.write(str(value + 1))
        lock.release()
        count += 1
    print(count, flush=True)


def available(impl, url):
    try:
        lock = make(impl, [url], "bench:probe")
        lock.acquire()
        lock.release()
    except Exception as e:  # noqa: BLE001 - any failure means "not usable"
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    impl, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == "available" and len(args) == 1:
        available(impl, args[0])
    elif cmd == "cycle" and len(args) == 2:
        cycle(impl, "cycle", int(args[1]), [args[0]])
    elif cmd == "cycle-redlock" and len(args) >= 3:
        cycle(impl, args[0], int(args[1]), args[2:])
    elif cmd == "handoff" and len(args) == 2:
        handoff(impl, int(args[1]), args[0])
    elif cmd == "waiter" and len(args) == 2:
        waiter(impl, *args)
    elif cmd == "contend" and len(args) == 5:
        contend(impl, args[0], args[1], int(args[2]), int(args[3]), args[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
