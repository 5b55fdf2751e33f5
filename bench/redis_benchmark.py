#!/usr/bin/env python3
"""The floor as redis-benchmark sees it: `redis-benchmark -c N -P 1 -t ping`.

  redis_benchmark.py PORT CLIENTS REQUESTS RUNS SCENARIO

Runs redis-benchmark RUNS times against 127.0.0.1:PORT and prints one JSON
line: the median PING_MBULK (a RESP array, as client libraries send it)
throughput over the runs, its min-max, and the per-request latency.
"""

import csv
import io
import json
import subprocess
import sys


def one_run(port, clients, requests):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
         "-P", "1", "-n", str(requests), "-t", "ping", "--csv"],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    for row in csv.DictReader(io.StringIO(out)):
        if row["test"] == "PING_MBULK":
            return float(row["rps"]), float(row["p50_latency_ms"]) * 1000
    raise RuntimeError(f"no PING_MBULK line in redis-benchmark's output: {out!r}")


def main(argv):
    if len(argv) != 6:
        sys.exit(__doc__)
    port, clients, requests, runs, scenario = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5]
    results = sorted(one_run(port, clients, requests) for _ in range(runs))
    rps = sorted(r for r, _ in results)
    median_rps = rps[len(rps) // 2]
    p50 = sorted(l for _, l in results)[len(results) // 2]
    print(json.dumps({
        "scenario": scenario,
        "impl": f"redis-benchmark -c {clients} -P 1",
        "threads": clients,
        "ops_per_s": round(median_rps, 1),
        "spread_ops_per_s": [round(rps[0], 1), round(rps[-1], 1)],
        # Time per request on aggregate: 1 / throughput.
        "median_us": round(1e6 / median_rps, 2),
        "p50_latency_us": round(p50, 1),
        "runs": runs,
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv)
