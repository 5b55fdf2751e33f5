#!/usr/bin/env python3
"""What the ctypes boundary costs the Python binding's uncontended cycle,
measured in one process, interleaved (bench/ffi/run.sh runs it):

  binding  Lock.acquire() + Lock.release() (bindings/python)
  ctypes   the same C calls (acquire, release, free) made directly
  c-loop   the cycle run n times by C inside one ctypes call (cycles.c):
           the process's own floor, with no Python between the round trips
  noop     one ctypes call that does nothing (latchkey_version)

usage: python_cost.py URL CYCLES_LIBRARY [CYCLES_PER_BATCH [ROUNDS]]; prints
one JSON line per variant (median over ROUNDS of the batch means, µs).
"""

import ctypes
import json
import statistics
import sys
import time
from ctypes import c_int, c_void_p

import latchkey
from latchkey._lib import lib


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    url, cycles_library = argv[1], argv[2]
    n = int(argv[3]) if len(argv) > 3 else 100
    rounds = int(argv[4]) if len(argv) > 4 else 15
    client = latchkey.Client(url)
    lock = client.lock("bench:ffi-py")
    raw = latchkey.Client(url).lock("bench:ffi-py-c")
    handle = raw._handle.enter("Lock")  # kept entered: the Lock lives to the end
    c_cycles = ctypes.CDLL(cycles_library).latchkey_ffi_cycles
    c_cycles.argtypes = [c_void_p, c_int]
    c_cycles.restype = c_int
    acquire, release = lib.latchkey_lock_acquire, lib.latchkey_guard_release
    free = lib.latchkey_guard_free
    version = lib.latchkey_version

    def binding() -> int:
        for _ in range(n):
            lock.acquire()
            lock.release()
        return n

    def direct() -> int:
        for _ in range(n):
            guard, err = c_void_p(), c_void_p()
            if acquire(handle, -1, None, guard, err) or release(guard, err):
                sys.exit("python_cost.py: a cycle through ctypes failed")
            free(guard)
        return n

    def c_loop() -> int:
        if c_cycles(handle, n):
            sys.exit("python_cost.py: a cycle in C failed")
        return n

    def noop() -> int:
        for _ in range(100 * n):
            version()
        return 100 * n

    variants = {"binding": binding, "ctypes": direct, "c-loop": c_loop, "noop": noop}
    names = list(variants)
    for f in variants.values():
        f()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotating order
            start = time.perf_counter_ns()
            calls = variants[name]()
            samples[name].append((time.perf_counter_ns() - start) / calls / 1000)
    floor = statistics.median(samples["c-loop"])
    for name in names:
        median = statistics.median(samples[name])
        row = {
            "scenario": "ffi-cost",
            "impl": "latchkey-python",
            "variant": name,
            "median_us": round(median, 2),
            "rounds": rounds,
            "cycles_per_batch": n,
        }
        if name != "noop":
            row["x_c_loop"] = round(median / floor, 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv)
