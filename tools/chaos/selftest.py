#!/usr/bin/env python3
"""The checker's self-test: each deliberately broken variant, of the library
(cargo feature `chaos-variants`, src/chaos.rs) or of one binding (the Go
binding's build tag `latchkey_chaos`, the Python worker's plant_variant),
runs a short chaos run on one server with the workers of every language it
affects, and the checker must report the invariant the variant breaks, in
each of those languages: a violation of another invariant, or one seen in
some languages only, is a miss. The C and Go workers of these runs link the
broken library (make chaos-build builds target/chaos/*-variants); Python
loads it. Two runs at a time (the machine is small: the next starts when
one ends); a variant missed in
some language runs again, with the next seed, for those languages, up to
three times. Exits 1 if any variant went unnoticed in any language.

A language counts as caught when a hold or call of that language is in a
violation of the expected invariant (the checker names the languages of
every violation).

usage: selftest.py [--seed N] [--duration SECONDS] [--variants a,b]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

ALL = ["rust", "c", "python", "go"]

# Many holds outlive their ttl without renewal: their releases are stale.
STALE_HOLDERS = ["--faults", "none", "--renew-percent", "30", "--long-percent", "50"]
# Server restarts, renewed long holds and a longer ttl: an overlap after a
# restart lasts well past one renewal period unless the holder is told.
RENEWED_LONG_HOLDS = ["--faults", "server-restart", "--renew-percent", "100", "--long-percent", "85",
                      "--ttl-ms", "6000"]


@dataclass
class Variant:
    invariant: str  # the invariant it breaks
    langs: list[str]  # every language it affects
    extra: list[str]  # run.py arguments that expose it
    workers: int = 4  # in all, shared among the languages (at least one each)
    seconds: float = 0.0  # the run's length when shorter than --duration


VARIANTS: dict[str, Variant] = {
    # The library's (src/chaos.rs): every language goes through it.
    # A stale holder (held past its ttl without renewal) deletes the lock
    # of the next holder; no fault needed.
    # The overlap needs a third worker waiting when the stale release
    # deletes the lock: two workers per language.
    "release-no-owner-check": Variant("exclusion", ALL, STALE_HOLDERS, workers=8),
    "stale-release": Variant("exclusion", ALL, STALE_HOLDERS, workers=8),
    # A renewal that failed counts as confirmed: after a restart without
    # persistence the holder keeps believing while the next one takes the
    # lock. Its release later fails, which says so too late; the checker's
    # timely-report rule (one renewal period) catches it.
    "renew-ignores-failure": Variant("no-silent-loss", ALL, RENEWED_LONG_HOLDS),
    # The counter is lost with the data.
    "fence-no-clock": Variant("fencing", ALL, ["--faults", "server-restart"]),
    # Liveness is judged away from faults: none here.
    # (A waiter that never subscribes is no longer one: the queue reserves
    # the lock for it all the same, and it polls blind every 100 ms.)
    "release-wakes-nobody": Variant("liveness", ALL, ["--faults", "none"]),
    # Fair locks in every worker, a release (or a fair caller finding the
    # lock free) hands it to the waiter that arrived last: a waiter that
    # queued well before another began gets the lock after it. No faults
    # (they excuse the pairs near them); one name, eight workers and many
    # holds longer than the ttl keep several waiters queued for seconds.
    "queue-skipping": Variant("arrival-order", ALL, [
        "--fair", "--faults", "none", "--long-percent", "50"], workers=8, seconds=15),
    # The C ABI never calls the lost-lease callback: C's on_lost, Go's Lost
    # channel and Python's on_lost stay silent, and a renewed holder hears
    # of its loss only at check(), long after the next holder took the lock.
    "c-lost-callback-never-runs": Variant("no-silent-loss", ["c", "python", "go"],
                                          RENEWED_LONG_HOLDS),
    # A semaphore of size 2 that lets a third permit in: every worker takes
    # permits (run.py --semaphore) of one semaphore, no faults (whose
    # excuses would hide it); eight workers keep it full, short holds
    # change hands often, so that every language is in some excess. A
    # short run: make test runs it.
    "semaphore-overcommit": Variant("semaphore", ALL, [
        "--semaphore", "--faults", "none", "--long-percent", "0"], workers=8, seconds=8),
    # The bindings' own. Go: Unlock returns nil after a lost lease, so a
    # holder without renewal (no Lost report) whose lock went with a restart
    # is never told. Holds shorter than a 6 s ttl (their check passes) and
    # restarts every few seconds: many holds outlive a restart.
    "go-unlock-ignores-loss": Variant("no-silent-loss", ["go"], [
        "--faults", "server-restart", "--renew-percent", "0", "--long-percent", "0",
        "--ttl-ms", "6000"]),
    # Python: check() passes after the lease ran out, so a stale holder
    # believes it holds the lock while the next one does.
    "python-check-ignores-loss": Variant("exclusion", ["python"], STALE_HOLDERS),
}


@dataclass
class Run:
    variant: str
    langs: list[str]
    seed: int
    out: str
    argv: list[str]


def make_run(variant: str, langs: list[str], seed: int, duration: float) -> Run:
    out = os.path.join(REPO, "target", "chaos", f"selftest-{variant}")
    per_lang = max(1, VARIANTS[variant].workers // len(langs))
    argv = [sys.executable, os.path.join(HERE, "run.py"), "--profile", "selftest",
            "--seed", str(seed), "--variant", variant,
            "--duration", str(min(duration, VARIANTS[variant].seconds or duration)),
            "--langs", ",".join(langs), "--per-lang", str(per_lang), "--out", out,
            "--expect-violation", *VARIANTS[variant].extra]
    return Run(variant, langs, seed, out, argv)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--variants", default=None, help="only these, comma-separated")
    args = parser.parse_args()
    chosen = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        print(f"selftest: unknown variants {', '.join(unknown)}")
        return 2
    runs = [make_run(v, VARIANTS[v].langs, args.seed, args.duration) for v in chosen]
    missed = run_batches(runs)
    # The faults and timings are random: the languages a variant was missed
    # in get up to three more runs, each with the next seed.
    for extra_seed in range(args.seed + 1, args.seed + 4):
        if not missed:
            break
        again = ", ".join(f"{v} ({'/'.join(ls)})" for v, ls in missed.items())
        print(f"selftest: again with seed {extra_seed}: {again}", flush=True)
        missed = run_batches([make_run(v, ls, extra_seed, args.duration) for v, ls in missed.items()])
    if missed:
        print("selftest: the checker missed "
              + "; ".join(f"{v} in {', '.join(ls)}" for v, ls in missed.items())
              + f" (seeds {args.seed} to {args.seed + 3})")
        return 1
    print("selftest: the checker caught every broken variant, in every language it affects, "
          "by the invariant it breaks")
    return 0


def run_batches(runs: list[Run], at_once: int = 2) -> dict[str, list[str]]:
    """Runs the variants `at_once` at a time, the next as soon as one ends;
    returns, per variant, the languages in which the checker missed it."""
    missed: dict[str, list[str]] = {}
    pending = list(runs)
    running: list[tuple[Run, subprocess.Popen[bytes], str]] = []
    while pending or running:
        while pending and len(running) < at_once:
            run = pending.pop(0)
            # Output to a file, not a pipe: nobody reads it until the end.
            log = os.path.join(REPO, "target", "chaos", f"selftest-{run.variant}.log")
            os.makedirs(os.path.dirname(log), exist_ok=True)
            with open(log, "wb") as out:
                proc = subprocess.Popen(run.argv, stdout=out, stderr=subprocess.STDOUT)
            running.append((run, proc, log))
        done = [r for r in running if r[1].poll() is not None]
        if not done:
            time.sleep(0.2)
            continue
        for entry in done:
            running.remove(entry)
            run, proc, log = entry
            with open(log, "rb") as f:
                output = f.read().decode(errors="replace")
            invariant = VARIANTS[run.variant].invariant
            found: dict[str, int] = {}
            per_lang: dict[str, int] = {}
            unsound: list[str] = []
            try:
                with open(os.path.join(run.out, "results.json")) as f:
                    for phase in json.load(f)["phases"]:
                        for k, n in phase["violations"].items():
                            found[k] = found.get(k, 0) + n
                        for lang, n in phase.get("violations_by_lang", {}).get(invariant, {}).items():
                            per_lang[lang] = per_lang.get(lang, 0) + n
                        unsound += phase.get("run_faults", []) + phase.get("fixture_faults", [])
            except (OSError, ValueError):
                unsound.append(f"no results (exit status {proc.returncode})")
            # A run that is not sound (a worker died, a language wrote
            # nothing) catches nothing.
            missing = list(run.langs) if unsound else [
                lang for lang in run.langs if not per_lang.get(lang)]
            caught = [lang for lang in run.langs if lang not in missing]
            print(f"selftest: variant {run.variant:<28} expected {invariant:<15} "
                  f"per language {dict((lang, per_lang.get(lang, 0)) for lang in run.langs)} "
                  f"(all: {found or 'none'})  "
                  + (f"caught in {', '.join(caught)}" if caught else "")
                  + (f"  MISSED in {', '.join(missing)}" if missing else ""), flush=True)
            for fault in unsound:
                print(f"selftest:   run not sound: {fault}")
            if missing:
                missed[run.variant] = missing
                print(output[-3000:])
    return missed


if __name__ == "__main__":
    sys.exit(main())
