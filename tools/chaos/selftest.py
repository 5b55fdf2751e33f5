#!/usr/bin/env python3
"""The checker's self-test: each deliberately broken variant of the library
(cargo feature `chaos-variants`, see src/chaos.rs) runs a short chaos run
with the Rust worker on one server, and the checker must report a violation
(the invariant the variant breaks is the one expected, but any counts). Two
runs at a time (the machine is small); exits 1 if any variant went
unnoticed.

usage: selftest.py [--seed N] [--duration SECONDS]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Many holds outlive their ttl without renewal: their releases are stale.
STALE_HOLDERS = ["--faults", "none", "--renew-percent", "30", "--long-percent", "50"]

# variant -> (the invariant it must break, extra run.py arguments)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    # A stale holder (held past its ttl without renewal) deletes the lock
    # of the next holder; no fault needed.
    "release-no-owner-check": ("exclusion", STALE_HOLDERS),
    "stale-release": ("exclusion", STALE_HOLDERS),
    # A renewal that failed counts as confirmed: after a restart without
    # persistence the holder keeps believing while the next one takes the
    # lock. Its release later fails, which says so too late; the checker's
    # timely-report rule (one renewal period) catches it. Long renewed
    # holds and a longer ttl make that overlap outlast the rule's slack.
    "renew-ignores-failure": ("no-silent-loss", [
        "--faults", "server-restart", "--renew-percent", "100", "--long-percent", "85",
        "--ttl-ms", "6000"]),
    # The counter is lost with the data.
    "fence-no-clock": ("fencing", ["--faults", "server-restart"]),
    # Liveness is judged away from faults: none here.
    "waiter-never-subscribes": ("liveness", ["--faults", "none"]),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=30)
    args = parser.parse_args()
    runs = []
    for variant, (invariant, extra) in VARIANTS.items():
        out = os.path.join(REPO, "target", "chaos", f"selftest-{variant}")
        argv = [sys.executable, os.path.join(HERE, "run.py"), "--profile", "selftest",
                "--seed", str(args.seed), "--duration", str(args.duration),
                "--variant", variant, "--out", out, "--expect-violation", *extra]
        runs.append((variant, invariant, out, argv))
    missed = run_batches(runs)
    # The faults and timings are random: a missed variant gets up to three
    # more runs, each with the next seed, before the self-test fails.
    tried = [args.seed]
    for extra_seed in range(args.seed + 1, args.seed + 4):
        if not missed:
            break
        print(f"selftest: again with seed {extra_seed}: {', '.join(missed)}", flush=True)
        retry = [(v, inv, out, [a if a != str(args.seed) else str(extra_seed) for a in argv])
                 for v, inv, out, argv in runs if v in missed]
        missed = run_batches(retry)
        tried.append(extra_seed)
    if missed:
        seeds = ", ".join(str(seed) for seed in tried)
        print(f"selftest: the checker missed {', '.join(missed)} (seeds {seeds})")
        return 1
    print("selftest: the checker caught every broken variant")
    return 0


def run_batches(runs: list[tuple[str, str, str, list[str]]]) -> list[str]:
    """Runs the variants two at a time; returns those the checker missed."""
    failed = []
    for i in range(0, len(runs), 2):
        batch = [(v, inv, out, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
                 for v, inv, out, argv in runs[i:i + 2]]
        for variant, invariant, out, proc in batch:
            output = proc.communicate()[0].decode(errors="replace")
            found: dict[str, int] = {}
            try:
                with open(os.path.join(out, "results.json")) as f:
                    for phase in json.load(f)["phases"]:
                        for k, n in phase["violations"].items():
                            found[k] = found.get(k, 0) + n
            except (OSError, ValueError):
                pass
            # Caught when the run reports a violation (the invariant the
            # variant breaks is expected, but another one counts too).
            caught = bool(found)
            print(f"selftest: variant {variant:<24} expected {invariant}: "
                  f"{found.get(invariant, 0):>3}  (all: {found or 'none'})  "
                  f"{'caught' if caught else 'MISSED'}", flush=True)
            if not caught:
                failed.append(variant)
                print(output[-3000:])
    return failed


if __name__ == "__main__":
    sys.exit(main())
