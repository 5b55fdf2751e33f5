#!/usr/bin/env python3
"""Collects result rows for bench/run.sh.

  rows.py append ROWS SCENARIO IMPL [FLOOR_US]   JSON lines on stdin -> ROWS
  rows.py skip ROWS SCENARIO IMPL REASON         a `skipped` row -> ROWS
  rows.py get ROWS SCENARIO IMPL KEY             print one field

`append` checks that the program printed at least one JSON object, fills in
`floor_us` and `ratio` from FLOOR_US (the run's floor) where a program has no
floor of its own, and prints a one-line summary of each row on stderr.
"""

import json
import sys


def summary(row):
    if "skipped" in row:
        return f"{row['scenario']} {row['impl']}: skipped: {row['skipped']}"
    parts = [f"{row['scenario']} {row['impl']}:"]
    for key, fmt in (
        ("threads", "N={}"),
        ("leases", "{:,} leases"),
        ("masters", "{} masters"),
        ("median_us", "median {:,.1f} µs"),
        ("floor_us", "floor {:,.1f} µs"),
        ("ratio", "{:.2f}×"),
        ("ops_per_s", "{:,.0f}/s"),
        ("fairness", "fairness {:.2f}"),
        ("violations", "{} violations"),
        ("cpu_fraction", "cpu {:.3f}"),
        ("rss_bytes_per_lease", "{:.0f} B/lease"),
        ("keys_right_after", "{:,} keys right after"),
        ("bytes_per_name_right_after", "{:.0f} B/name right after"),
        ("keys_after_retention", "{:,} keys after the retention"),
        ("bytes_after_retention", "{:+,.0f} B vs the baseline after it"),
    ):
        if row.get(key) is not None and not (key == "masters" and row[key] == 1):
            parts.append(fmt.format(row[key]))
    return " ".join(parts)


def append(path, scenario, impl, floor_us=None):
    rows = []
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    if not rows:
        rows = [{"scenario": scenario, "impl": impl, "skipped": "the program printed no result"}]
    with open(path, "a") as f:
        for row in rows:
            if floor_us and "median_us" in row and "floor_us" not in row:
                row["floor_us"] = float(floor_us)
                row["ratio"] = round(row["median_us"] / float(floor_us), 3)
                row["floor_source"] = "the run's floor (latchkey-rust cycle scenario)"
            f.write(json.dumps(row) + "\n")
            print("bench:   " + summary(row), file=sys.stderr, flush=True)


def skip(path, scenario, impl, reason):
    row = {"scenario": scenario, "impl": impl, "skipped": reason}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("bench:   " + summary(row), file=sys.stderr, flush=True)


def get(path, scenario, impl, key):
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["scenario"] == scenario and row["impl"] == impl and key in row:
                print(row[key])
                return
    sys.exit(f"rows.py: no {key} for {scenario} {impl}")


def main(argv):
    if len(argv) >= 5 and argv[1] == "append":
        append(argv[2], argv[3], argv[4], argv[5] if len(argv) > 5 else None)
    elif len(argv) == 6 and argv[1] == "skip":
        skip(*argv[2:])
    elif len(argv) == 6 and argv[1] == "get":
        get(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
