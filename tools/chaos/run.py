#!/usr/bin/env python3
"""The chaos run: real Redis deployments, workers in every language on the
same lock names, a nemesis injecting faults at random, and the checker on
the histories. A seed replays the same schedule of faults and operations.

usage: run.py --duration SECONDS --seed N --profile short|long|selftest
              [--variant NAME] [--out DIR] [--report FILE]
              [--deployments a,b] [--langs rust,python] [--per-lang N] [--fair] [--semaphore]
Exit status: 0 when no invariant was violated, 1 otherwise (with
--expect-violation: the reverse); 1 whenever the run was not sound (a run
or fixture fault), 2 when a language's worker is missing."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
import deployments  # noqa: E402
import nemesis  # noqa: E402
import report  # noqa: E402
import resp  # noqa: E402
from servers import Server  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["chaos-a", "chaos-b"]
#: The size of the semaphores of the semaphore mode (run.py --semaphore).
SEMAPHORE_SIZE = 2

PROFILES: dict[str, dict[str, Any]] = {
    "short": {
        "deployments": ["single-none", "single-always", "redlock", "sentinel", "cluster"],
        "langs": ["rust", "python", "c", "go"], "per_lang": 1,
        "faults": (nemesis.WORKER_FAULTS + nemesis.SERVER_FAULTS + nemesis.FAILOVER
                   + nemesis.PROXY_FAULTS),
        "ttl_ms": 2000, "command_timeout_ms": 1000,
    },
    "long": {
        "deployments": ["single-none", "single-everysec", "single-always", "redlock",
                        "sentinel", "cluster"],
        "langs": ["rust", "python", "c", "go"], "per_lang": 2,
        "faults": (nemesis.WORKER_FAULTS + nemesis.SERVER_FAULTS + nemesis.FAILOVER
                   + nemesis.PROXY_FAULTS),
        "ttl_ms": 2000, "command_timeout_ms": 1000,
        # Run again with fair locks (every worker's), where the checker
        # also judges arrival order; not Redlock, which refuses fair locks.
        "fair_deployments": ["single-always", "sentinel", "cluster"],
        # And with semaphores (of SEMAPHORE_SIZE permits) instead of locks,
        # where the checker judges the permits held at once; not Redlock,
        # which refuses semaphores.
        "semaphore_deployments": ["single-always", "sentinel"],
    },
    # The variants' self-test: the Rust worker on one server, with the
    # faults that expose the broken variants. A command timeout well below
    # the ttl: a renewal cut off by a partition fails (and is retried) many
    # times within one lease.
    "selftest": {
        "deployments": ["single-none"], "langs": ["rust"], "per_lang": 4,
        "names": ["chaos-a"],
        "faults": ["worker-stop", "server-restart", "client-pause", "client-pause", "debug-sleep"],
        "ttl_ms": 2000, "command_timeout_ms": 300, "long_percent": 35, "renew_percent": 40,
        "gap": (1.0, 3.0),
    },
}


def worker_command(lang: str, variant: Optional[str]) -> list[str]:
    """The worker of a language; with a variant, the one built against the
    library's broken variants (make chaos-build: the C and Go workers link
    the chaos-variants static library, Python loads its shared library)."""
    suffix = "-variants" if variant else ""
    if lang == "rust":
        target = "target/chaos-variants" if variant else "target"
        return [os.path.join(REPO, target, "release", "examples", "chaos-worker")]
    if lang == "python":
        return [sys.executable, os.path.join(REPO, "tools", "chaos", "workers", "python", "worker.py")]
    if lang == "c":
        return [os.path.join(REPO, "target", "chaos", "c-worker" + suffix)]
    if lang == "go":
        return [os.path.join(REPO, "target", "chaos", "go-worker" + suffix)]
    raise ValueError(lang)


class MasterWatch(threading.Thread):
    """Asks the deployment twice a second whether it has a master that
    takes writes; keeps the stretches without one (fixture faults when
    longer than the deployment's failover bound)."""

    def __init__(self, deployment: deployments.Deployment) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.outages: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        down_since: Optional[int] = None
        while not self.done.wait(0.5):
            try:
                ok = self.deployment.has_master()
            except Exception:  # a probe racing a restart: ask again
                continue
            now = time.monotonic_ns()
            if not ok and down_since is None:
                down_since = now
            elif ok and down_since is not None:
                self.record(down_since, now)
                down_since = None
        if down_since is not None:
            self.record(down_since, time.monotonic_ns(), "still none when the run ended")

    def record(self, start: int, end: int, what: str = "") -> None:
        self.outages.append({"start": start, "end": end, "seconds": round((end - start) / 1e9, 3),
                             "what": what})

    def stop(self) -> list[dict[str, Any]]:
        self.done.set()
        self.join()
        return self.outages


# The commands that run a script (INFO commandstats names them cmdstat_...).
SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


def scripts_run(port: int) -> int:
    """How many scripts a server has run since it started."""
    info = resp.command(port, "INFO", "commandstats", timeout=2.0)
    text = info.decode() if isinstance(info, bytes) else str(info)
    total = 0
    for line in text.splitlines():
        key, _, stats = line.partition(":")
        if key.removeprefix("cmdstat_") in SCRIPT_COMMANDS:
            fields = dict(f.split("=", 1) for f in stats.split(",") if "=" in f)
            total += int(fields.get("calls", 0))
    return total


class ScriptCount(threading.Thread):
    """Counts the scripts the deployment's data servers run during the
    run, from INFO commandstats once a second (a restarted server starts
    again from zero: what it ran before its last reading is kept, what it
    ran since then is lost). For the scripts-per-handoff number."""

    def __init__(self, deployment: deployments.Deployment) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.last: dict[int, int] = {}
        self.total = 0
        self.done = threading.Event()

    def sample(self) -> None:
        for server in self.deployment.data_servers():
            try:
                now = scripts_run(server.port)
            except (resp.RedisError, ValueError):
                continue  # down (a restart), or asleep: read it next time
            before = self.last.get(server.port)
            if before is None:
                self.last[server.port] = now  # the first reading: the baseline
                continue
            self.total += now - before if now >= before else now
            self.last[server.port] = now

    def run(self) -> None:
        self.sample()
        while not self.done.wait(1.0):
            self.sample()

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.sample()
        return self.total


class Workers:
    """The worker processes of one phase, by id."""

    def __init__(self, run_dir: str, spec: Callable[[str], str], storage: str, until_ns: int, seed: int,
                 ttl_ms: int, command_timeout_ms: int, variant: Optional[str],
                 fair: bool = False, semaphore: int = 0) -> None:
        self.run_dir, self.spec, self.storage = run_dir, spec, storage
        self.fair = fair
        self.semaphore = semaphore  # the semaphores' size; 0: locks
        self.until_ns, self.seed = until_ns, seed
        self.ttl_ms, self.command_timeout_ms = ttl_ms, command_timeout_ms
        self.variant = variant
        self.long_percent = 15
        self.renew_percent = 70
        self.names = NAMES
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.langs: dict[str, str] = {}
        self.killed: set[str] = set()  # by the nemesis
        self.generation: dict[str, int] = {}
        # The Python worker: this tree's package over this tree's library (the
        # package never looks for a target/release by itself).
        self.env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "bindings", "python"),
                        LATCHKEY_LIBRARY=os.path.join(REPO, "target", "release", "liblatchkey.so"))
        if variant:
            self.env["LATCHKEY_CHAOS_VARIANT"] = variant
            self.env["LATCHKEY_LIBRARY"] = os.path.join(REPO, "target", "chaos-variants", "release",
                                                        "liblatchkey.so")

    def spawn(self, lang: str, worker_id: str) -> None:
        seed = (self.seed * 1_000_003 + sum(map(ord, worker_id)) * 7919) % (2**63)
        argv = worker_command(lang, self.variant) + [
            "--deployment", self.spec(worker_id), "--storage", self.storage, "--names", ",".join(self.names),
            "--ttl-ms", str(self.ttl_ms), "--seed", str(seed), "--id", worker_id,
            "--history", os.path.join(self.run_dir, f"history-{worker_id}.jsonl"),
            "--until-ns", str(self.until_ns), "--command-timeout-ms", str(self.command_timeout_ms),
            "--long-percent", str(self.long_percent), "--renew-percent", str(self.renew_percent),
            "--fair", "1" if self.fair else "0", "--semaphore", str(self.semaphore)]
        err = open(os.path.join(self.run_dir, f"stderr-{worker_id}.txt"), "wb")
        self.procs[worker_id] = subprocess.Popen(argv, env=self.env, stdout=err, stderr=err,
                                                 stdin=subprocess.DEVNULL)
        err.close()
        self.langs[worker_id] = lang

    def pick(self, rng: random.Random, holding: bool = False) -> Optional[str]:
        """A live worker; with `holding`, one that holds a lock if any does
        (its history's last line is a successful acquire or a write)."""
        alive = sorted(w for w, p in self.procs.items() if p.poll() is None)
        if holding:
            holders = [w for w in alive if self.last_op(w) in ("acquired", "write")]
            alive = holders or alive
        return rng.choice(alive) if alive else None

    def last_op(self, worker_id: str) -> str:
        path = os.path.join(self.run_dir, f"history-{worker_id}.jsonl")
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                last = json.loads(f.read().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            return ""
        if last.get("op") == "acquire":
            return "acquired" if last.get("ok") else "acquire"
        return str(last.get("op", ""))

    def signal(self, worker_id: str, sig: int) -> None:
        proc = self.procs[worker_id]
        if proc.poll() is None:
            proc.send_signal(sig)

    def replace(self, worker_id: str) -> str:
        self.procs[worker_id].wait()
        self.killed.add(worker_id)
        base = worker_id.split("~")[0]
        self.generation[base] = self.generation.get(base, 0) + 1
        new_id = f"{base}~{self.generation[base]}"
        self.spawn(self.langs[worker_id], new_id)
        return new_id

    def continue_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)

    def wait(self, grace_s: float) -> list[str]:
        """Waits for every worker to stop after its deadline; kills and
        names those that do not."""
        deadline = time.monotonic() + max(0.0, (self.until_ns - time.monotonic_ns()) / 1e9) + grace_s
        stragglers = []
        for worker_id, proc in sorted(self.procs.items()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stragglers.append(worker_id)
                proc.kill()
                proc.wait()
        return stragglers

    def report(self) -> dict[str, dict[str, Any]]:
        """Per worker: language, exit status, killed by the nemesis, and the
        end of its stderr (why a worker died)."""
        out: dict[str, dict[str, Any]] = {}
        for worker_id, proc in sorted(self.procs.items()):
            try:
                with open(os.path.join(self.run_dir, f"stderr-{worker_id}.txt"), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - 600))
                    stderr = f.read().decode(errors="replace")
            except OSError:
                stderr = ""
            out[worker_id] = {"lang": self.langs[worker_id], "exit": proc.returncode,
                              "killed": worker_id in self.killed, "stderr": stderr}
        return out


def phase_name(deployment: str, fair: bool, semaphore: bool = False) -> str:
    """A phase's name (its directory, its row in the report)."""
    return deployment + ("-fair" if fair else "") + ("-semaphore" if semaphore else "")


def run_phase(name: str, index: int, args: argparse.Namespace, profile: dict[str, Any],
              out_dir: str, seconds: float, fair: bool = False,
              semaphore: bool = False) -> dict[str, Any]:
    run_dir = os.path.join(out_dir, phase_name(name, fair, semaphore))
    os.makedirs(run_dir, exist_ok=True)
    server_root = tempfile.mkdtemp(prefix=f"latchkey-chaos-{name}-")
    deployment = deployments.make(name, server_root)
    if deployment is None:
        raise SystemExit(f"unknown deployment {name}")
    storage = Server("storage", server_root)
    ttl_ms, timeout_ms = profile["ttl_ms"], profile["command_timeout_ms"]
    phase_seed = args.seed * 100 + index
    watch = MasterWatch(deployment)
    scripts = ScriptCount(deployment)
    try:
        storage.start()
        deployment.start()
        watch.start()
        scripts.start()
        until_ns = time.monotonic_ns() + int(seconds * 1e9)
        workers = Workers(run_dir, deployment.spec, storage.url, until_ns, phase_seed, ttl_ms,
                          timeout_ms, args.variant, fair, SEMAPHORE_SIZE if semaphore else 0)
        workers.long_percent = profile.get("long_percent", 15)
        workers.renew_percent = profile.get("renew_percent", 70)
        workers.names = profile.get("names", NAMES)
        for lang in profile["langs"]:
            for i in range(args.per_lang or profile["per_lang"]):
                workers.spawn(lang, f"{lang}-{i}")
        # Faults for the first three quarters; the rest is quiet, so that
        # liveness after healing is checked too.
        faults_until = time.monotonic_ns() + int(seconds * 0.75 * 1e9)
        nem = nemesis.Nemesis(random.Random(phase_seed), deployment, workers,
                              os.path.join(run_dir, "nemesis.jsonl"), profile["faults"],
                              ttl_ms, timeout_ms, gap=profile.get("gap", (0.3, 1.5)))
        nem.run(faults_until)
        stragglers = workers.wait(grace_s=3 * ttl_ms / 1000 + 4 * timeout_ms / 1000 + 10)
        outages = watch.stop()
        scripts_total = scripts.stop()
        # Whatever a worker still held when it stopped expires within a ttl.
        time.sleep(ttl_ms / 1000 + 0.5)
        final = final_state(deployment, storage, stragglers, workers.names, semaphore)
        final.update(workers=workers.report(), langs=profile["langs"], outages=outages,
                     scripts=scripts_total,
                     failover_bound_s=deployment.failover_bound_s(nem.longest_fault_s()))
        with open(os.path.join(run_dir, "final.json"), "w") as f:
            json.dump(final, f, indent=2)
        result = checker.check(run_dir, command_timeout_ms=timeout_ms, final=final,
                               fair_handoff=deployment.fair_handoff)
    finally:
        watch.done.set()
        scripts.done.set()
        deployment.stop()
        storage.stop()
        shutil.rmtree(server_root, ignore_errors=True)
    result.update(deployment=phase_name(name, fair, semaphore), seconds=seconds, seed=args.seed,
                  assumptions=deployment.assumptions,
                  workers={w: workers.langs[w] for w in workers.procs})
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def final_state(deployment: deployments.Deployment, storage: Server,
                stragglers: list[str], names: list[str], semaphore: bool = False) -> dict[str, Any]:
    left: dict[str, bool] = {}
    # A semaphore's key is its lease set (src/keys.rs, ":sem").
    namespace = "sem:" if semaphore else ""
    for name in names:
        held = False
        for port in deployment.lock_key_ports():
            try:
                held = held or bool(resp.command(port, "EXISTS", f"latchkey:{namespace}{{{name}}}"))
            except resp.RedisError:
                pass
        left[name] = held
    stored: dict[str, Any] = {}
    for name in names:
        stored[name] = resp.command(storage.port, "HGET", f"latchkey:fenced:{{res-{name}}}", "fence")
    return {"lock_keys_left": left, "storage": stored, "stragglers": stragglers}


# What the final state of a phase (final.json) showed, for runs that did
# not keep it: these violations are carried over as they were.
FINAL_STATE_CHECKS = ("lock still held", "worker did not stop", "final token")


def recheck(out_dir: str, report_path: Optional[str]) -> int:
    """Runs the checker again on every phase of an earlier run (after the
    checker changed) and rewrites its results.json (and the report)."""
    with open(os.path.join(out_dir, "results.json")) as f:
        summary = json.load(f)
    timeout_ms = PROFILES[summary["profile"]]["command_timeout_ms"]
    for i, old in enumerate(summary["phases"]):
        run_dir = os.path.join(out_dir, old["deployment"])
        final_path = os.path.join(run_dir, "final.json")
        final = None
        if os.path.exists(final_path):
            with open(final_path) as f:
                final = json.load(f)
        fair = old["deployment"].removesuffix("-semaphore").removesuffix("-fair") != "cluster" or deployments.Cluster.fair_handoff
        new = checker.check(run_dir, command_timeout_ms=timeout_ms, final=final, fair_handoff=fair)
        if final is None:
            carried = [v for v in old["violation_examples"]
                       if any(k in str(v.get("what", "")) for k in FINAL_STATE_CHECKS)]
            new["violation_examples"] += carried
            for v in carried:
                new["violations"][v["invariant"]] = new["violations"].get(v["invariant"], 0) + 1
        for key in ("deployment", "seconds", "seed", "assumptions", "workers"):
            new[key] = old[key]
        summary["phases"][i] = new
        print(f"chaos: {old['deployment']}: violations {old['violations'] or 'none'} -> "
              f"{new['violations'] or 'none'}")
        for fault in new["run_faults"] + new["fixture_faults"]:
            print(f"chaos: {old['deployment']}: {fault}")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if report_path:
        with open(report_path, "w") as f:
            f.write(report.render(summary))
    return 1 if any(p["violations"] or p["run_faults"] or p["fixture_faults"]
                    for p in summary["phases"]) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--profile", default="short", choices=sorted(PROFILES))
    parser.add_argument("--variant", default=None)
    parser.add_argument("--per-lang", type=int, default=None, help="workers per language")
    parser.add_argument("--deployments", default=None)
    parser.add_argument("--langs", default=None)
    parser.add_argument("--fair", action="store_true",
                        help="every worker's locks are fair (not on Redlock, which refuses them)")
    parser.add_argument("--semaphore", action="store_true",
                        help=f"every worker takes permits of semaphores of size {SEMAPHORE_SIZE} instead "
                        "of locks (not on Redlock, which refuses them)")
    parser.add_argument("--faults", default=None, help="fault kinds, comma-separated, or none")
    parser.add_argument("--renew-percent", type=int, default=None,
                        help="holds in a hundred renewed by the watchdog")
    parser.add_argument("--long-percent", type=int, default=None,
                        help="holds in a hundred that outlive the ttl")
    parser.add_argument("--ttl-ms", type=int, default=None, help="the locks' ttl")
    parser.add_argument("--out", default=None)
    parser.add_argument("--report", default=None, help="write RELIABILITY.md here")
    parser.add_argument("--expect-violation", action="store_true")
    parser.add_argument("--recheck", default=None,
                        help="check an earlier run's histories again (DIR with results.json)")
    parser.add_argument("--report-from", default=None,
                        help="only write --report from this results.json of an earlier run")
    args = parser.parse_args()
    if args.recheck:
        return recheck(args.recheck, args.report)
    if args.report_from:
        with open(args.report_from) as f:
            summary = json.load(f)
        with open(args.report or "RELIABILITY.md", "w") as f:
            f.write(report.render(summary))
        return 0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**9)
    profile = dict(PROFILES[args.profile])
    if args.deployments:
        profile["deployments"] = args.deployments.split(",")
    if args.langs:
        profile["langs"] = args.langs.split(",")
    # A language without its worker is a run that checks less than it says:
    # an error (leave it out with --langs), not a silent omission.
    missing = [worker_command(lang, args.variant)[-1] for lang in profile["langs"]
               if not os.path.exists(worker_command(lang, args.variant)[-1])]
    if missing:
        print(f"chaos: no worker {', '.join(missing)}: build them with make chaos-build "
              "(or leave their languages out with --langs)", file=sys.stderr)
        return 2
    if args.renew_percent is not None:
        profile["renew_percent"] = args.renew_percent
    if args.long_percent is not None:
        profile["long_percent"] = args.long_percent
    if args.ttl_ms is not None:
        profile["ttl_ms"] = args.ttl_ms
    if args.faults:
        profile["faults"] = [] if args.faults == "none" else args.faults.split(",")
    if args.fair and args.semaphore:
        print("chaos: --fair and --semaphore exclude each other (a semaphore is never fair)",
              file=sys.stderr)
        return 2
    # Phases: every deployment (with fair locks if --fair, semaphores if
    # --semaphore), then the profile's fair and semaphore phases. Fair
    # locks and semaphores are refused on Redlock.
    special = args.fair or args.semaphore
    phases = [(name, args.fair, args.semaphore) for name in profile["deployments"]
              if not (special and name == "redlock")]
    if not special and not args.deployments:
        phases += [(name, True, False) for name in profile.get("fair_deployments", [])]
        phases += [(name, False, True) for name in profile.get("semaphore_deployments", [])]
    if not phases:
        print("chaos: no deployment to run (fair locks and semaphores are refused on Redlock)",
              file=sys.stderr)
        return 2
    out_dir = args.out or os.path.join(REPO, "target", "chaos", f"{args.profile}-seed{args.seed}"
                                       + (f"-{args.variant}" if args.variant else ""))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    print(f"chaos: profile {args.profile}, seed {args.seed}, {args.duration:.0f} s"
          + (f", variant {args.variant}" if args.variant else "") + f", histories in {out_dir}",
          flush=True)
    seconds = args.duration / len(phases)
    results = []
    for index, (name, fair, semaphore) in enumerate(phases):
        result = run_phase(name, index, args, profile, out_dir, seconds, fair, semaphore)
        results.append(result)
        name = phase_name(name, fair, semaphore)
        c = result["counts"]
        print(f"chaos: {name}: {result['ops'].get('acquire', 0)} acquires, "
              f"{c['holds']} holds, faults {result['faults']}, "
              f"violations {result['violations'] or 'none'}", flush=True)
        print(f"chaos: {name}: scripts per handoff {c.get('scripts_per_handoff')} "
              f"({c.get('scripts')} scripts, {c.get('waited_acquires')} acquisitions that waited)"
              + (f"; arrival order: {c.get('fair_pairs_compared', 0)} pairs compared, "
                 f"{c.get('fair_pairs_excused', 0)} excused by faults" if fair else "")
              + (f"; semaphore: at most {c.get('semaphore_most_permits_believed')} permits believed "
                 f"held at once (size {SEMAPHORE_SIZE}), "
                 f"{c.get('semaphore_excused', 0)} excess moments excused by faults"
                 if semaphore else ""), flush=True)
        for fault in result["run_faults"]:
            print(f"chaos: {name}: RUN FAULT (the run is not sound): {fault}", flush=True)
        for fault in result["fixture_faults"]:
            print(f"chaos: {name}: FIXTURE FAULT (not the library's): {fault}", flush=True)
    summary = {"profile": args.profile, "seed": args.seed, "duration": args.duration,
               "variant": args.variant, "phases": results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(report.render(summary))
        print(f"chaos: wrote {args.report}")
    violated = any(r["violations"] for r in results)
    unsound = any(r["run_faults"] or r["fixture_faults"] for r in results)
    if violated:
        for r in results:
            for v in r["violation_examples"][:3]:
                print(f"chaos: {r['deployment']}: {json.dumps(v)}")
        print(f"chaos: reproduce with: make chaos DURATION={args.duration:.0f} SEED={args.seed} "
              f"PROFILE={args.profile}")
    if unsound:
        return 1  # whatever was expected: this run did not check what it says
    if args.expect_violation:
        return 0 if violated else 1
    return 1 if violated else 0


if __name__ == "__main__":
    sys.exit(main())
