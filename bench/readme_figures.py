#!/usr/bin/env python3
"""The README's benchmark figures, from bench/results/latest.jsonl.

The README quotes the last `make bench` run between the markers
`<!-- bench-figures:begin -->` and `<!-- bench-figures:end -->`. This
script writes that block (`--write`, run by bench/run.sh) or checks that
the README still says what the results file says (`--check`, run by
`make lint`), so no figure in the README can drift from the measurements.
Every figure is an absolute median measured against one server in one
run, with its ratio to the run's floor (the fastest PING any client
reached in that run): ratios to each process's own floor hid that a peer
was faster (a Go client's floor was twice the Rust one's).

Usage: bench/readme_figures.py --check|--write [repository root]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BEGIN = "<!-- bench-figures:begin -->"
END = "<!-- bench-figures:end -->"

# (language, latchkey's row, the peers of that language)
LANGUAGES = [
    ("Rust", "latchkey-rust", ["redlock-rs"]),
    ("Python", "latchkey-python", ["redis-py", "python-redis-lock", "pottery"]),
    ("Go", "latchkey-go", ["redsync"]),
]


def medians(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {
        (r["scenario"], r["impl"]): float(r["median_us"])
        for r in rows
        if isinstance(r.get("median_us"), (int, float))
        and r.get("scenario") in ("cycle", "handoff", "floor")
        and "skipped" not in r
    }


def run_floor(by: dict[tuple[str, str], float]) -> float | None:
    floors = [v for (scenario, _), v in by.items() if scenario == "floor"]
    return min(floors) if floors else None


def fmt(median: float | None, floor: float | None) -> str:
    if median is None:
        return "—"
    text = f"{median / 1000:,.1f} ms" if median >= 10_000 else f"{median:,.0f} µs"
    return text if not floor else f"{text} ({median / floor:.2f}×)"


def block(rows: list[dict]) -> str:
    by = medians(rows)
    floor = run_floor(by)
    lines = [
        BEGIN,
        "",
        "From the last run (`bench/results/latest.jsonl`): medians against one",
        "server in one run, each with its ratio to the run's floor, the fastest",
        f"plain `PING` round trip any client reached ({fmt(floor, None)}; lower is better).",
        "",
        "| language | scenario | latchkey | peers |",
        "|---|---|---|---|",
    ]
    for language, ours, peers in LANGUAGES:
        for scenario, label in (("cycle", "acquire + release"), ("handoff", "handoff to a waiter")):
            theirs = ", ".join(f"{p} {fmt(by.get((scenario, p)), floor)}" for p in peers)
            lines.append(f"| {language} | {label} | {fmt(by.get((scenario, ours)), floor)} | {theirs} |")
    bare = by.get(("cycle", "bare-lua-scripts"))
    pubsub = by.get(("handoff", "bare-pubsub-scripts"))
    lines += [
        "",
        f"The floor of latchkey's own design: two bare Lua scripts cost {fmt(bare, floor)},",
        f"a bare pub/sub handoff {fmt(pubsub, floor)}.",
        "",
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("--check", "--write"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent)
    rows = [json.loads(l) for l in (root / "bench/results/latest.jsonl").read_text().splitlines() if l.strip()]
    readme_path = root / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        print("readme-figures: the README has no benchmark block (markers missing)", file=sys.stderr)
        return 1
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    fresh = head + block(rows) + tail
    if sys.argv[1] == "--write":
        readme_path.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != readme:
        print(
            "readme-figures: the README's benchmark figures differ from bench/results/latest.jsonl; "
            "run bench/readme_figures.py --write",
            file=sys.stderr,
        )
        return 1
    print("readme-figures: the README quotes bench/results/latest.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
