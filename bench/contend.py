#!/usr/bin/env python3
"""contended-4 for any implementation: 4 processes on one lock.

  contend.py IMPL URL SECONDS ROUNDS FLOOR_US -- COMMAND...

Each round starts 4 copies of `COMMAND... URL NAME START_NS END_NS
COUNTER_FILE` (the `contend` subcommand of every benchmark program), which
take the lock, increment a number in COUNTER_FILE by a plain read and write
(not atomic: only the lock keeps it right), give the lock back, until END_NS
on CLOCK_MONOTONIC, then print how many times they held it. Prints one JSON
line: median over rounds of the throughput (with its min-max), fairness
(smallest share / mean share; median and worst round), and violations (the
acquisitions counted minus the final counter, summed over rounds: must be 0).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

CONTENDERS = 4
# Time for the processes to start (interpreters, imports, connections).
STARTUP_S = 1.5


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def one_round(command, url, name, seconds):
    with tempfile.TemporaryDirectory(prefix="latchkey-contend-") as tmp:
        counter = os.path.join(tmp, "counter")
        with open(counter, "w") as f:
            f.write("0")
        start = now_ns() + int(STARTUP_S * 1e9)
        end = start + int(seconds * 1e9)
        procs = [
            subprocess.Popen(
                command + [url, name, str(start), str(end), counter],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(CONTENDERS)
        ]
        counts = []
        for p in procs:
            out, _ = p.communicate(timeout=STARTUP_S + seconds + 120)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} exited with {p.returncode}")
            counts.append(int(out.split()[-1]))
        with open(counter) as f:
            final = int(f.read().strip() or 0)
    return counts, final


def main(argv):
    if "--" not in argv or argv.index("--") != 6:
        sys.exit(__doc__)
    impl, url, seconds, rounds, floor_us = argv[1:6]
    seconds, rounds, floor_us = float(seconds), int(rounds), float(floor_us)
    command = argv[7:]
    results = [
        one_round(command, url, f"bench:contended:{impl}:{r}", seconds) for r in range(rounds)
    ]
    ops = [sum(c) / seconds for c, _ in results]
    fairness = [min(c) / (sum(c) / len(c)) if sum(c) else 0.0 for c, _ in results]
    violations = sum(abs(sum(c) - final) for c, final in results)
    ops_median = median(ops)
    per_op_us = 1e6 / ops_median if ops_median else float("inf")
    row = {
        "scenario": "contended-4",
        "impl": impl,
        "ops_per_s": round(ops_median, 1),
        "spread_ops_per_s": [round(min(ops), 1), round(max(ops), 1)],
        "median_us": round(per_op_us, 2),
        "floor_us": floor_us,
        "ratio": round(per_op_us / floor_us, 3),
        "fairness": round(median(fairness), 3),
        "fairness_min": round(min(fairness), 3),
        "violations": violations,
        "acquisitions": sum(sum(c) for c, _ in results),
        "per_process": [c for c, _ in results],
        "rounds": rounds,
        "seconds_per_round": seconds,
        "floor_source": "the run's floor (latchkey-rust cycle scenario)",
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv)
