#!/usr/bin/env python3
"""Collects result rows for bench/run.sh.

  rows.py append ROWS SCENARIO IMPL [FLOOR_US]   JSON lines on stdin -> ROWS
  rows.py skip ROWS SCENARIO IMPL REASON         a `skipped` row -> ROWS
  rows.py get ROWS SCENARIO IMPL KEY             print one field
  rows.py order ROUND ROUNDS IMPL...             the implementations in ROUND's order
  rows.py rounds ROUND_ROWS ROWS ROUNDS          one row per implementation -> ROWS

`append` checks that the program printed at least one JSON object, fills in
`floor_us` and `ratio` from FLOOR_US (the run's floor) where a program has no
floor of its own, and prints a one-line summary of each row on stderr. With
BENCH_ROUND set (bench/run.sh's interleaved `cycle` rounds), `append` and
`skip` tag each row with that round.

The `cycle` scenario runs in rounds: every implementation once per round,
in an order that rotates from round to round (`order`), so that all of them
see the same minutes of a shared machine. `rounds` then makes one row per
implementation from its rounds: the statistics over all its samples pooled
(as one run of all its cycles would give them), `round_medians_us` (each
round's median, null where that round failed) and `rounds`.
"""

import json
import os
import statistics
import sys

# The programs' batches (the median is the median of the batch medians).
BATCHES = 10


def summary(row):
    if "skipped" in row:
        return f"{row['scenario']} {row['impl']}: skipped: {row['skipped']}"
    parts = [f"{row['scenario']} {row['impl']}" + (f" (round {row['round'] + 1})" if "round" in row else "") + ":"]
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
    if row.get("round_medians_us"):
        parts.append("rounds " + " / ".join("–" if m is None else f"{m:,.1f}" for m in row["round_medians_us"]))
    return " ".join(parts)


def tag_round(row):
    if os.environ.get("BENCH_ROUND", "") != "":
        row["round"] = int(os.environ["BENCH_ROUND"])
    return row


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
            f.write(json.dumps(tag_round(row)) + "\n")
            print("bench:   " + summary(row), file=sys.stderr, flush=True)


def skip(path, scenario, impl, reason):
    row = tag_round({"scenario": scenario, "impl": impl, "skipped": reason})
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


def order(round_index, rounds, impls):
    """The implementations in round `round_index`'s order: the list rotated
    by a step of len/rounds (rounded up) per round, so that over the rounds
    each implementation runs early, in the middle and late."""
    if not impls:
        return []
    step = max(1, -(-len(impls) // max(1, rounds)))
    start = (round_index * step) % len(impls)
    return impls[start:] + impls[:start]


def quantile(sorted_values, q):
    """Nearest rank, as the benchmark programs take it."""
    return sorted_values[round((len(sorted_values) - 1) * q)]


def pooled_stats(us):
    """The programs' statistics over samples in the order taken: median of
    BATCHES batch medians, p90 of all, the batch medians' spread, mean."""
    batches = max(1, min(BATCHES, len(us)))
    size = len(us) // batches
    medians = sorted(
        quantile(sorted(us[b * size : (b + 1) * size if b + 1 < batches else len(us)]), 0.5)
        for b in range(batches)
    )
    return {
        "median_us": round(quantile(medians, 0.5), 3),
        "p90_us": round(quantile(sorted(us), 0.9), 3),
        "spread_us": [round(medians[0], 2), round(medians[-1], 2)],
        "mean_us": round(sum(us) / len(us), 3),
        "samples": len(us),
    }


# What a round's row says about that round alone: recomputed or dropped.
ROUND_ONLY = ("round", "samples_us", "batch_means_us", "median_us", "p90_us", "spread_us", "mean_us",
              "samples", "floor_us", "ratio", "ops_per_s")


def merge_rounds(round_rows, rounds):
    """One row per (scenario, impl) from the rows of `rounds` rounds, in
    the order they first appear (round 0 runs in the listed order)."""
    groups = {}
    for row in round_rows:
        groups.setdefault((row["scenario"], row["impl"]), []).append(row)
    out = []
    for (scenario, impl), group in groups.items():
        ok = sorted((r for r in group if "skipped" not in r), key=lambda r: r.get("round", 0))
        if not ok:
            out.append({k: v for k, v in group[0].items() if k != "round"})
            continue
        row = {k: v for k, v in ok[0].items() if k not in ROUND_ONLY}
        if all("samples_us" in r for r in ok):
            row.update(pooled_stats([s for r in ok for s in r["samples_us"]]))
        elif all("batch_means_us" in r for r in ok):
            # latchkey-c: the median and p90 of all the batch means.
            means = sorted(m for r in ok for m in r["batch_means_us"])
            row.update(median_us=quantile(means, 0.5), p90_us=quantile(means, 0.9), batches=len(means))
        else:
            row["median_us"] = statistics.median(r["median_us"] for r in ok)
        floors = [r["floor_us"] for r in ok if r.get("floor_us")]
        if scenario == "floor" and floors:
            row["floor_us"] = row["median_us"]
        elif floors:
            row["floor_us"] = round(statistics.median(floors), 3)
        if row.get("floor_us"):
            row["ratio"] = round(row["median_us"] / row["floor_us"], 3)
        row["ops_per_s"] = round(1e6 / row["median_us"], 1)
        by_round = {r.get("round", 0): r["median_us"] for r in ok}
        row["round_medians_us"] = [by_round.get(i) for i in range(rounds)]
        row["rounds"] = rounds
        failed = [g for g in group if "skipped" in g]
        if failed:
            row["rounds_failed"] = [f"round {g.get('round', 0) + 1}: {g['skipped']}" for g in failed]
        out.append(row)
    # Rows without a floor of their own (latchkey-c) get the Rust process's.
    floor = next((r["median_us"] for r in out if (r["scenario"], r["impl"]) == ("floor", "latchkey-rust")
                  and "median_us" in r), None)
    for row in out:
        if floor and "median_us" in row and "floor_us" not in row:
            row["floor_us"] = floor
            row["ratio"] = round(row["median_us"] / floor, 3)
            row["floor_source"] = "the run's floor (latchkey-rust cycle scenario)"
    return out


def rounds_command(round_path, path, rounds):
    with open(round_path) as f:
        round_rows = [json.loads(line) for line in f if line.strip().startswith("{")]
    with open(path, "a") as f:
        for row in merge_rounds(round_rows, rounds):
            f.write(json.dumps(row) + "\n")
            print("bench:   " + summary(row), file=sys.stderr, flush=True)


def main(argv):
    if len(argv) >= 5 and argv[1] == "append":
        append(argv[2], argv[3], argv[4], argv[5] if len(argv) > 5 else None)
    elif len(argv) == 6 and argv[1] == "skip":
        skip(*argv[2:])
    elif len(argv) == 6 and argv[1] == "get":
        get(*argv[2:])
    elif len(argv) >= 4 and argv[1] == "order":
        print(" ".join(order(int(argv[2]), int(argv[3]), argv[4:])))
    elif len(argv) == 5 and argv[1] == "rounds":
        rounds_command(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
