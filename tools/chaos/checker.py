"""The checker: reads the workers' histories and the nemesis log of one
run of one deployment and says whether the library kept its promises.

Invariants (README, Semantics and "What one Redis guarantees"):
- exclusion: no two holds of one name overlap while both holders were told
  they hold it (no lost report before, and `check()` Ok at, the end of the
  hold), unless a fault the deployment cannot survive happened meanwhile;
- no silent loss: every overlap, whatever the faults, is reported to one of
  the holders (a lost report, `check()` failing, or `release()` saying
  NotHeld; a release that failed otherwise, say on a timeout, told nobody
  anything; counted apart, as unknowable, is a hold that is not renewed,
  lost to an unsurvivable fault, whose release could not reach Redis:
  nothing could have told it), and when both holds are renewed, in time: at most one renewal
  period (a third of the ttl) plus the command timeout and some slack after
  the overlap began, one of them no longer believes it holds the lock (a
  renewal is where the watchdog learns and the lost report comes from; a
  report only at check or release comes too late);
- fencing: tokens issued for a name grow in real-time order and are never
  issued twice; the storage accepted writes in strictly increasing token
  order and its final value is the highest accepted (or unknown) write;
- liveness: no call outlives its deadline plus the timeouts (with slack),
  a blocking acquire does not wait while nobody's lease stands in its way,
  a released lock goes to a waiter (or a single try) promptly when nothing
  is broken, and no lock stays held by nobody after the run;
- arrival order (fair locks only): a waiter that surely queued before
  another one started its call, both waiting away from faults, gets the
  lock first (see check_arrival_order);
- semaphore (semaphore runs: acquire lines with "size" and "permits"): at
  no moment do the permits of the holds whose holders all believed they
  held them (the exclusion invariant's holds and intervals) exceed the
  size, unless a fault the deployment cannot survive happened between
  their acquires (see check_semaphore). Overlaps of a semaphore's holds
  are legal, so exclusion, the overlap rules of no silent loss and the
  handoff rule of liveness do not apply to them.

Not an invariant, a number: scripts per handoff, the scripts the lock
servers ran (INFO commandstats) per acquisition that waited.

Besides the library's invariants, the run itself must be sound: every
language wrote histories and no worker died of itself (run faults), and the
deployment had a master most of the time (fixture faults: an outage longer
than its failover bound is the fixture's fault, not the library's).

Each violation names the languages of the holds or calls in it, so the
self-test can ask whether a broken variant was caught in every language.

A hold's interval runs from its acquire's return to its `check()` call:
inside it, the holder believed it held the lock."""

from __future__ import annotations

import bisect
import glob
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

NS = 1_000_000_000

#: How long a fair lock's queue may be held up by a waiter that died, was
#: cut off or left a stray entry (a late copy of an attempt): its entry
#: runs out 15 s after its last attempt and the others look again within
#: 5 s (README, "Fair locks."). Liveness excuses that long after a fault in
#: a fair run.
FAIR_QUEUE_HOLDUP_NS = 20 * NS

#: An acquire that took longer than this waited (a free lock is one round
#: trip away); only for the scripts-per-handoff number.
WAITED_NS = 10_000_000


@dataclass
class Hold:
    worker: str
    lang: str
    name: str
    hold: str
    fence: int
    acq_t0: int
    acq_t1: int
    check_t0: Optional[int] = None
    check_ok: bool = False
    release_ok: Optional[bool] = None
    release_err: Optional[str] = None
    release_t1: Optional[int] = None
    lost_t: list[int] = field(default_factory=list)
    renewed: bool = False
    ttl_ms: int = 0
    size: int = 0  # a semaphore's size (0: a lock)
    permits: int = 1  # the permits a semaphore's hold took

    def told_held_at_check(self) -> bool:
        return (self.check_t0 is not None and self.check_ok
                and not any(t < self.check_t0 for t in self.lost_t))

    def told_at_release(self) -> bool:
        """README: release() says NotHeld when the lease had been lost. Any
        other failure (a timeout, a broken connection) tells the holder
        nothing about its lease."""
        return self.release_ok is False and self.release_err in ("NotHeld", "Lost")

    def never_told_lost(self) -> bool:
        # Without a release line (the worker was killed first) nobody knows
        # what the release would have said: not counted as silent.
        return (self.told_held_at_check() and self.release_ok is not None
                and not self.lost_t and not self.told_at_release())

    def believed_until(self) -> Optional[int]:
        """When the holder stopped believing it held the lock: its first
        lost report, else its check() (whatever it said); None if it never
        got that far."""
        ends = [t for t in (self.check_t0, min(self.lost_t, default=None)) if t is not None]
        return min(ends) if ends else None


@dataclass
class Fault:
    kind: str
    start: int
    end: int
    target: str
    unsurvivable: bool


def load(run_dir: str) -> tuple[list[dict[str, Any]], list[Fault]]:
    events: list[dict[str, Any]] = []
    for path in sorted(glob.glob(os.path.join(run_dir, "history-*.jsonl"))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by SIGKILL
    faults = []
    nemesis_path = os.path.join(run_dir, "nemesis.jsonl")
    if os.path.exists(nemesis_path):
        with open(nemesis_path) as f:
            for line in f:
                e = json.loads(line)
                faults.append(Fault(e["kind"], e["start"], e["end"], str(e.get("target", "")),
                                    bool(e.get("unsurvivable"))))
    return events, faults


def build_holds(events: list[dict[str, Any]]) -> list[Hold]:
    holds: dict[tuple[str, int], Hold] = {}
    by_fence: dict[tuple[str, str, int], Hold] = {}
    for e in events:
        if e.get("op") == "acquire" and e.get("ok"):
            h = Hold(e["w"], e["lang"], e["name"], str(e["hold"]), int(e["fence"]),
                     e["t0"], e["t1"], renewed=bool(e.get("renew")),
                     ttl_ms=int(e.get("ttl_ms", 0)), size=int(e.get("size", 0) or 0),
                     permits=int(e.get("permits", 1) or 1))
            holds[(e["w"], e["seq"])] = h
            by_fence[(e["w"], e["name"], h.fence)] = h
    for e in events:
        op = e.get("op")
        if op == "check" and (e["w"], e["seq"]) in holds:
            h = holds[(e["w"], e["seq"])]
            h.check_t0, h.check_ok = e["t0"], bool(e["ok"])
        elif op == "release" and (e["w"], e["seq"]) in holds:
            h = holds[(e["w"], e["seq"])]
            h.release_ok, h.release_err, h.release_t1 = bool(e["ok"]), e.get("err"), e["t1"]
        elif op == "lost":
            h2 = by_fence.get((e["w"], e["name"], int(e["fence"])))
            if h2 is not None:
                h2.lost_t.append(e["t"])
    return list(holds.values())


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def check(run_dir: str, *, command_timeout_ms: int, slack_s: float = 5.0,
          handoff_slack_s: float = 1.0, final: Optional[dict[str, Any]] = None,
          fair_handoff: bool = True) -> dict[str, Any]:
    events, faults = load(run_dir)
    holds = build_holds(events)
    violations: list[dict[str, Any]] = []
    counts: dict[str, Any] = {"holds": len(holds)}
    by_lang: dict[str, dict[str, int]] = {}

    def violate(invariant: str, langs: Any = (), **details: Any) -> None:
        """Records a violation; `langs`: the languages of the holds or
        calls in it (the self-test asks per language)."""
        names = sorted(set(langs))
        violations.append({"invariant": invariant, "langs": names, **details})
        for lang in names:
            per = by_lang.setdefault(invariant, {})
            per[lang] = per.get(lang, 0) + 1

    unsurvivable = [f for f in faults if f.unsurvivable]
    # A fair run: its acquires say so. A fair queue keeps a dead waiter's
    # place for a while, so liveness excuses longer after a fault.
    fair = any(e.get("fair") for e in events if e.get("op") == "acquire")
    holdup = FAIR_QUEUE_HOLDUP_NS if fair else 0

    def excused(start: int, end: int) -> bool:
        return any(overlaps(f.start, f.end + 1, start, end) for f in unsurvivable)

    stops = [f for f in faults if f.kind == "worker-stop"]

    def stopped(worker: str, start: int, end: int) -> bool:
        return any(f.target == worker and overlaps(f.start, f.end, start, end) for f in stops)

    def told_too_late(a: Hold, b: Hold) -> bool:
        """Both renewed holds still believed they held the lock a renewal
        period (plus the command timeout and slack) after the overlap began
        (a worker stopped by the nemesis meanwhile excepted: its renewals
        stopped with it)."""
        if not (a.renewed and b.renewed and a.ttl_ms and b.ttl_ms):
            return False
        a_end, b_end = a.believed_until(), b.believed_until()
        if a_end is None or b_end is None:
            return False
        period_ns = max(a.ttl_ms, b.ttl_ms) * 1_000_000 // 3
        began = max(a.acq_t1, b.acq_t1)
        deadline = began + period_ns + command_timeout_ms * 1_000_000 + int(handoff_slack_s * NS)
        if a_end <= deadline or b_end <= deadline:
            return False
        return not (stopped(a.worker, began, a_end) or stopped(b.worker, began, b_end))

    # --- exclusion and no silent loss -------------------------------------------
    reported = silent = late = excused_overlaps = before_renewal = 0

    def ended_before_its_renewal(a: Hold, b: Hold) -> bool:
        """The README promises a renewed hold the report of its loss at its
        next renewal: `a` (whose lease `b` took) stopped believing before
        that renewal was due (one renewal period, the command timeout and
        slack after `b` acquired), so no report was due yet; a release that
        then failed on a timeout or a broken connection is no report, but
        not a broken promise either."""
        if not (a.renewed and a.ttl_ms) or a.check_t0 is None:
            return False
        due = (b.acq_t1 + a.ttl_ms * 1_000_000 // 3 + command_timeout_ms * 1_000_000
               + int(handoff_slack_s * NS))
        return a.check_t0 <= due
    def unknowable(a: Hold, b: Hold) -> bool:
        """Nothing could have told `a`: it is not renewed (only its release
        asks Redis), its lease went with a fault the deployment cannot
        survive (a restart without its data, an eviction), and its release
        could not reach Redis (timeout, broken connection). A library that
        said NotHeld there would be guessing."""
        return (not a.renewed and a.release_err in ("Connection", "Timeout")
                and excused(min(a.acq_t0, b.acq_t0), max(a.acq_t1, b.acq_t1)))

    unknown = 0
    by_name: dict[str, list[Hold]] = {}
    for h in holds:
        by_name.setdefault(h.name, []).append(h)
    for name, group in by_name.items():
        if any(h.size for h in group):
            continue  # a semaphore's holds may overlap: check_semaphore judges them
        told = sorted((h for h in group if h.told_held_at_check()), key=lambda h: h.acq_t1)
        for i, a in enumerate(told):
            assert a.check_t0 is not None
            for b in told[i + 1:]:
                if b.acq_t1 >= a.check_t0:
                    break
                assert b.check_t0 is not None
                if not overlaps(a.acq_t1, a.check_t0, b.acq_t1, b.check_t0):
                    continue
                pair = {"name": name, "langs": (a.lang, b.lang), "a": describe(a), "b": describe(b)}
                if a.never_told_lost() and b.never_told_lost():
                    if ended_before_its_renewal(a, b):
                        before_renewal += 1
                    elif unknowable(a, b):
                        unknown += 1
                    else:
                        silent += 1
                        violate("no-silent-loss", **pair)
                elif told_too_late(a, b):
                    late += 1
                    violate("no-silent-loss", told="too late", **pair)
                else:
                    reported += 1
                if excused(min(a.acq_t0, b.acq_t0), max(a.acq_t1, b.acq_t1)):
                    excused_overlaps += 1
                else:
                    violate("exclusion", **pair)
        # A renewed hold whose check() found it lost believed it held the
        # lock until then, unless a lost report came first: when the lost
        # report never comes (or comes late), two renewed holders believe at
        # once for longer than a renewal period. Pairs of holds both told
        # at check were judged above.
        renewed = sorted((h for h in group if h.renewed and h.believed_until() is not None),
                         key=lambda h: h.acq_t1)
        for i, a in enumerate(renewed):
            a_end = a.believed_until()
            assert a_end is not None
            for b in renewed[i + 1:]:
                if b.acq_t1 >= a_end:
                    break
                if a.told_held_at_check() and b.told_held_at_check():
                    continue
                if a.worker == b.worker or not told_too_late(a, b):
                    continue
                late += 1
                violate("no-silent-loss", told="too late (found lost only at check)", name=name,
                        langs=(a.lang, b.lang), a=describe(a), b=describe(b))
    counts.update(overlaps_reported=reported, overlaps_silent=silent,
                  overlaps_ended_before_the_next_renewal=before_renewal,
                  overlaps_unknowable=unknown,
                  overlaps_reported_too_late=late,
                  overlaps_excused_by_unsurvivable_faults=excused_overlaps)

    # --- fencing: issue order -----------------------------------------------------
    for name, group in by_name.items():
        by_return = sorted(group, key=lambda h: h.acq_t1)
        returns = [h.acq_t1 for h in by_return]
        prefix_max: list[tuple[int, Hold]] = []
        best: Optional[Hold] = None
        for h in by_return:
            if best is None or h.fence > best.fence:
                best = h
            prefix_max.append((best.fence, best))
        seen: dict[int, Hold] = {}
        for h in group:
            other = seen.get(h.fence)
            if other is not None and other.hold != h.hold:
                violate("fencing", what="one token issued to two holds", name=name,
                        langs=(other.lang, h.lang), a=describe(other), b=describe(h))
            seen[h.fence] = h
            i = bisect.bisect_left(returns, h.acq_t0) - 1
            if i >= 0 and prefix_max[i][0] >= h.fence:
                violate("fencing", what="token not above one issued before this acquire began",
                        name=name, langs=(prefix_max[i][1].lang, h.lang),
                        earlier=describe(prefix_max[i][1]), later=describe(h))

    # --- fencing: the storage, and the guards' own fenced writes --------------------
    writes = [e for e in events if e.get("op") == "write"]
    counts["writes_accepted"] = sum(1 for e in writes if e.get("ok"))
    counts["writes_refused"] = sum(1 for e in writes if not e.get("ok") and "err" not in e)
    check_write_order(writes, "storage", lambda start, end: False, violate,
                      (final or {}).get("storage"))
    # Guard::fenced_write goes to the lock deployment, which may lose the
    # resource along with the locks in a fault it cannot survive.
    guard_writes = [e for e in events if e.get("op") == "gwrite"]
    counts["guard_writes_accepted"] = sum(1 for e in guard_writes if e.get("ok"))
    check_write_order(guard_writes, "lock deployment (Guard::fenced_write)", excused, violate, None)

    # --- liveness -----------------------------------------------------------------------
    any_fault = [f for f in faults if f.kind != "snapshot"]
    workers = {e["w"] for e in events if "w" in e}
    timeouts_ns = 2 * command_timeout_ms * 1_000_000 + int(slack_s * NS)
    late = 0
    for e in events:
        if "t0" not in e or "t1" not in e or e.get("op") not in ("acquire", "write", "gwrite", "check",
                                                                 "release"):
            continue
        if e.get("op") == "acquire" and "deadline_ms" not in e:
            continue  # blocking: no deadline
        deadline_ns = int(e.get("deadline_ms", 0)) * 1_000_000
        if e["t1"] - e["t0"] <= deadline_ns + timeouts_ns:
            continue
        if stopped(e["w"], e["t0"], e["t1"]):
            continue  # the worker itself was stopped
        late += 1
        violate("liveness", what="call outlived its deadline plus the timeouts", call=brief(e),
                langs=(e.get("lang", "?"),), seconds=round((e["t1"] - e["t0"]) / NS, 3))
    counts["late_calls"] = late + check_blocking_waits(events, holds, faults, command_timeout_ms,
                                                       slack_s, violate, holdup_ns=holdup)

    grace = command_timeout_ms * 1_000_000 + NS
    window = int(handoff_slack_s * NS)
    acquires = [e for e in events if e.get("op") == "acquire"]
    # Who may take a released lock: a waiter (waiting when it was released)
    # or a single try (which may take a lock being handed over); a fresh
    # waiting acquire taking it while older waiters keep waiting means the
    # release did not go to a waiter.
    got = sorted((e["t1"], e["name"], e["t0"], e.get("mode")) for e in acquires if e.get("ok"))
    slow = 0
    releases = {(e["w"], e.get("hold")): e for e in events if e.get("op") == "release"}
    for h in holds:
        # Only a hold that was still held at its check releases anything.
        # A semaphore's release frees its permits only: a waiter for more
        # may rightly wait on (no handoff rule for semaphores).
        if h.release_ok is not True or not h.told_held_at_check() or h.size:
            continue
        release = releases.get((h.worker, h.hold))
        if release is None:
            continue
        r = release["t1"]
        waiters = [w for w in acquires if w["name"] == h.name and w.get("mode") != "try"
                   and w["t0"] < r - window // 10 and w["t1"] > r + window]
        if not waiters:
            continue
        # Away from faults that concern this handoff: any fault of a server,
        # and a fault of the releaser or of a waiter (killed, stopped, cut
        # off). A fault of an uninvolved worker excuses nothing (it used to
        # excuse everything near it: only the quiet last quarter of a run
        # was judged).
        # In a fair run, a fault of any worker too, for as long as the
        # queue may keep the place of a waiter it killed or cut off (the
        # killed worker's acquire never made it to its history).
        involved = {h.worker, *(w["w"] for w in waiters)}
        if any((f.target not in workers or f.target in involved)
               and overlaps(f.start - grace, f.end + grace, r - window, r + window)
               for f in any_fault):
            continue
        if fair and any(overlaps(f.start - grace, f.end + grace + holdup, r - window, r + window)
                        for f in any_fault):
            continue
        # From the release's invoke: the next holder's acquire may return
        # before the release's own reply does.
        i = bisect.bisect_left(got, (release["t0"],))
        served = any(t <= r + window and n == h.name and (t0 < r or mode == "try")
                     for t, n, t0, mode in got[i:i + 200])
        if not served:
            slow += 1
            if not fair_handoff:
                continue  # a known gap of this deployment: counted only
            violate("liveness", what="a released lock went to no waiter within "
                    f"{handoff_slack_s} s", name=h.name, release=brief(release),
                    langs=[h.lang, *(w.get("lang", "?") for w in waiters)],
                    waiters=[brief(w) for w in waiters[:3]])
    counts["slow_handoffs"] = slow

    semaphore_holds = [h for h in holds if h.size]
    if semaphore_holds:
        counts.update(check_semaphore(semaphore_holds, excused, violate))

    if fair:
        counts.update(check_arrival_order(events, faults, workers, command_timeout_ms, violate))

    # Scripts per handoff: what the lock servers ran (INFO commandstats,
    # summed over the run by run.py) per acquisition that waited. Not an
    # invariant (it varies with faults and with the renewals and fenced
    # writes of the run): a number, so that a herd coming back shows.
    waited = sum(1 for e in acquires if e.get("ok") and e.get("mode") != "try"
                 and e["t1"] - e["t0"] > WAITED_NS)
    counts["waited_acquires"] = waited
    scripts = (final or {}).get("scripts")
    if scripts is not None:
        counts["scripts"] = int(scripts)
        counts["scripts_per_handoff"] = round(int(scripts) / waited, 2) if waited else None

    if final is not None:
        for name, held in final.get("lock_keys_left", {}).items():
            if held:
                violate("liveness", what="lock still held after the run and its ttl", name=name)
        for worker in final.get("stragglers", []):
            violate("liveness", what="worker did not stop after its deadline", worker=worker,
                    langs=(final.get("workers", {}).get(worker, {}).get("lang", "?"),))

    ops: dict[str, int] = {}
    errors: dict[str, int] = {}
    langs: dict[str, dict[str, int]] = {}
    for e in events:
        op = e.get("op")
        if op in ("acquire", "write", "gwrite", "check", "release", "lost"):
            ops[op] = ops.get(op, 0) + 1
            per_lang = langs.setdefault(e.get("lang", "?"), {})
            per_lang[op] = per_lang.get(op, 0) + 1
            if op == "acquire" and e.get("ok"):
                per_lang["acquired"] = per_lang.get("acquired", 0) + 1
        if "err" in e:
            errors[e["err"]] = errors.get(e["err"], 0) + 1
    by_invariant: dict[str, int] = {}
    for v in violations:
        by_invariant[v["invariant"]] = by_invariant.get(v["invariant"], 0) + 1
    return {"counts": counts, "ops": ops, "errors": errors, "langs": langs,
            "faults": count_faults(faults), "violations": by_invariant,
            "violations_by_lang": by_lang, "violation_examples": violations[:20],
            "run_faults": run_faults(events, final), "fixture_faults": fixture_faults(final),
            "longest_outage_s": (max((o["seconds"] for o in final["outages"]), default=0.0)
                                 if final is not None and "outages" in final else None)}


def check_blocking_waits(events: list[dict[str, Any]], holds: list[Hold], faults: list[Fault],
                         command_timeout_ms: int, slack_s: float,
                         violate: Callable[..., None], holdup_ns: int = 0) -> int:
    """A blocking acquire has no deadline, but it may wait only while the
    lock is someone's: from a hold's acquire until its release returned
    (until its lease ran out, a ttl later, when the release failed or never
    came), or while a fault kept the lock unreachable or unknown (from the
    fault until three command timeouts plus a ttl after it). A stretch
    of its wait longer than the ttl plus twice the command timeout plus
    slack with none of those is a waiter that missed a free lock. A fair
    queue may keep a dead or cut-off waiter's place `holdup_ns` longer."""
    ttl_of = {h.name: h.ttl_ms for h in holds if h.ttl_ms}
    last_seen: dict[str, int] = {}
    for e in events:
        t = max(int(e.get("t1", 0) or 0), int(e.get("t", 0) or 0))
        last_seen[e["w"]] = max(last_seen.get(e["w"], 0), t)
    busy: dict[str, list[tuple[int, int]]] = {}
    for h in holds:
        ttl = (h.ttl_ms or ttl_of.get(h.name, 0)) * 1_000_000
        end = h.release_t1 if h.release_t1 is not None else last_seen.get(h.worker, h.acq_t1)
        if h.release_ok is not True:
            end += ttl
        # The lease began when the acquire's last attempt reached Redis:
        # not before the acquire began, nor long before it returned (a
        # waiting acquire began long before).
        began = max(h.acq_t0, h.acq_t1 - command_timeout_ms * 1_000_000)
        busy.setdefault(h.name, []).append((began, end))
    grace = command_timeout_ms * 1_000_000 + NS
    fault_spans = [(f.start - grace, f.end + 3 * grace + max(ttl_of.values(), default=0) * 1_000_000
                    + holdup_ns)
                   for f in faults if f.kind != "snapshot"]
    allowed = max(ttl_of.values(), default=0) * 1_000_000 + 2 * command_timeout_ms * 1_000_000 \
        + int(slack_s * NS)
    late = 0
    for e in events:
        if e.get("op") != "acquire" or e.get("mode") != "blocking" or "t1" not in e:
            continue
        spans = sorted(busy.get(e["name"], []) + fault_spans)
        gap = longest_gap(e["t0"], e["t1"], spans)
        if gap > allowed:
            late += 1
            violate("liveness", what="a blocking acquire waited while nobody held the lock",
                    call=brief(e), langs=(e.get("lang", "?"),), free_seconds=round(gap / NS, 3))
    return late


def check_semaphore(holds: list[Hold], excused: Callable[[int, int], bool],
                    violate: Callable[..., None]) -> dict[str, int]:
    """A semaphore never has more permits out than its size: at no moment
    do the permits of the holds whose holders all believed they held them
    (no lost report before, and check() Ok at, the end of the hold; from
    the acquire's return to the check, as for exclusion) add up to more
    than the size, unless a fault the deployment cannot survive (a restart
    without its data, an older snapshot, an eviction) happened between
    their acquires. One violation per hold whose start brings the sum over
    the size."""
    most = excess = excused_moments = 0
    by_name: dict[str, list[Hold]] = {}
    for h in holds:
        if h.told_held_at_check():
            by_name.setdefault(h.name, []).append(h)
    for name, group in by_name.items():
        group.sort(key=lambda h: h.acq_t1)
        active: list[Hold] = []
        for h in group:
            assert h.check_t0 is not None
            active = [a for a in active if a.check_t0 is not None and a.check_t0 > h.acq_t1]
            active.append(h)
            held = sum(a.permits for a in active)
            most = max(most, held)
            size = min(a.size for a in active)
            if held <= size:
                continue
            if excused(min(a.acq_t0 for a in active), max(a.acq_t1 for a in active)):
                excused_moments += 1
                continue
            excess += 1
            violate("semaphore", what=f"{held} permits believed held at once, size {size}",
                    name=name, langs=[a.lang for a in active], size=size, permits=held,
                    holds=[dict(describe(a), permits=a.permits) for a in active])
    return {"semaphore_holds": len(holds), "semaphore_most_permits_believed": most,
            "semaphore_excess": excess, "semaphore_excused": excused_moments}


def first_answer_bound_ns(command_timeout_ms: int) -> int:
    """How late after its call began the first attempt of an acquire that
    succeeded after waiting was surely answered. The public API says only
    when the call began and returned, not when its first attempt (the
    script that queued it) ran; but a first attempt that is not answered
    ends the call (it has not waited yet, so it does not ride an outage
    out), so one that succeeded had it answered within a connect timeout
    (the worker's equals its command timeout), a command timeout and one
    resend after a dropped connection (another command timeout), plus 1 s
    for a loaded machine."""
    return 3 * command_timeout_ms * 1_000_000 + NS


def check_arrival_order(events: list[dict[str, Any]], faults: list[Fault], workers: set[str],
                        command_timeout_ms: int, violate: Callable[..., None]) -> dict[str, int]:
    """A fair lock is first come, first served (README, "Fair locks."): a
    waiter A queued by its first attempt gets the lock before any caller B
    whose call began after A was queued. When A was queued is known only
    within first_answer_bound_ns of its call's start, so only pairs where B
    began later than that are compared (B began while A still waited:
    else A got the lock first and there is nothing to compare). B got the
    lock before A when its fencing token is lower and its call returned
    first (tokens of one name grow with every grant). A is a waiting
    acquire (a single try never queues); B may be any: not even a fair
    try takes the lock while an earlier waiter is queued.

    Excused, conservatively: any fault of a server or of A's or B's worker
    during A's wait (a restart or failover loses the queue, an eviction
    drops it, a pause, a sleep or a cut-off can run a waiter's entry out,
    which then arrives anew). A fault of another worker does not change
    the order of A and B: a dead waiter ahead of both holds them up, in
    their order."""
    margin = first_answer_bound_ns(command_timeout_ms)
    grace = command_timeout_ms * 1_000_000 + NS
    timed = [f for f in faults if f.kind != "snapshot"]
    got: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("op") == "acquire" and e.get("ok") and e.get("fair") and "fence" in e:
            got.setdefault(e["name"], []).append(e)
    compared = excused = 0
    for name, acquires in got.items():
        acquires.sort(key=lambda e: e["t0"])
        starts = [e["t0"] for e in acquires]
        for a in acquires:
            if a.get("mode") == "try":
                continue
            # B began after A was surely queued and while A still waited.
            for b in acquires[bisect.bisect_right(starts, a["t0"] + margin):]:
                if b["t0"] >= a["t1"]:
                    break
                if b["w"] == a["w"]:
                    continue
                if any(overlaps(f.start - grace, f.end + grace, a["t0"], a["t1"])
                       and (f.target not in workers or f.target in (a["w"], b["w"]))
                       for f in timed):
                    excused += 1
                    continue
                compared += 1
                if int(b["fence"]) < int(a["fence"]) and b["t1"] < a["t1"]:
                    violate("arrival-order", what="a later caller got a fair lock before a "
                            "waiter queued before it began", name=name,
                            langs=(a.get("lang", "?"), b.get("lang", "?")),
                            first=brief(a), later=brief(b),
                            queued_before_by_s=round((b["t0"] - a["t0"]) / NS, 3))
    return {"fair_pairs_compared": compared, "fair_pairs_excused": excused}


def longest_gap(start: int, end: int, spans: list[tuple[int, int]]) -> int:
    """The longest stretch of [start, end) that no span (sorted) covers."""
    longest, covered = 0, start
    for s, e in spans:
        if e <= covered:
            continue
        if s >= end:
            break
        if s > covered:
            longest = max(longest, s - covered)
        covered = max(covered, e)
        if covered >= end:
            return longest
    return max(longest, end - covered)


def run_faults(events: list[dict[str, Any]], final: Optional[dict[str, Any]]) -> list[str]:
    """What makes a run unsound whatever the library did: a language that
    wrote no history (missing, or every worker of it died at start-up), or a
    worker that exited with an error (not killed by the nemesis)."""
    if final is None or "workers" not in final:
        return []
    faults = []
    acquires: dict[str, int] = {}
    for e in events:
        if e.get("op") == "acquire":
            acquires[e.get("lang", "?")] = acquires.get(e.get("lang", "?"), 0) + 1
    for lang in final.get("langs", []):
        if not acquires.get(lang):
            faults.append(f"no {lang} worker wrote an acquire to its history")
    for worker, info in sorted(final["workers"].items()):
        if info.get("killed") or worker in final.get("stragglers", []):
            continue
        if info.get("exit") != 0:
            faults.append(f"worker {worker} ({info.get('lang')}) exited with status {info.get('exit')}: "
                          f"{info.get('stderr', '')[-300:]}")
    return faults


def fixture_faults(final: Optional[dict[str, Any]]) -> list[str]:
    """A deployment without a master for longer than its failover bound:
    the fixture's fault (a nemesis that broke replication, a failover that
    never completed), reported apart from the library's violations."""
    if final is None:
        return []
    bound = float(final.get("failover_bound_s", 0) or 0)
    return [f"no master for {o['seconds']:.1f} s (bound {bound:.0f} s): {o.get('what', '')}"
            for o in final.get("outages", []) if bound and o["seconds"] > bound]


def check_write_order(writes: list[dict[str, Any]], where: str,
                      excused: Callable[[int, int], bool], violate: Callable[..., None],
                      stored_tokens: Optional[dict[str, Any]]) -> None:
    """Accepted fenced writes of one resource come in strictly increasing
    token order (an equal token only from the same hold), in real time;
    the resource's final token is the highest write that may have landed."""
    per_resource: dict[str, list[dict[str, Any]]] = {}
    for e in sorted((e for e in writes if e.get("ok")), key=lambda e: e["t1"]):
        per_resource.setdefault(e["name"], []).append(e)
    for name, accepted_here in per_resource.items():
        returns = [e["t1"] for e in accepted_here]
        running: list[dict[str, Any]] = []
        top: Optional[dict[str, Any]] = None
        for e in accepted_here:
            if top is None or int(e["fence"]) > int(top["fence"]):
                top = e
            running.append(top)
        for e in accepted_here:
            i = bisect.bisect_left(returns, e["t0"]) - 1
            if i < 0:
                continue
            prev = running[i]
            out_of_order = int(prev["fence"]) > int(e["fence"]) or (
                int(prev["fence"]) == int(e["fence"]) and prev["hold"] != e["hold"])
            if out_of_order and not excused(prev["t0"], e["t1"]):
                violate("fencing", what=f"{where} accepted a write out of token order",
                        name=name, langs=(prev.get("lang", "?"), e.get("lang", "?")),
                        earlier=brief(prev), later=brief(e))
        if stored_tokens is not None and name in stored_tokens:
            stored = stored_tokens[name]
            possible = {int(e["fence"]) for e in writes
                        if e["name"] == name and (e.get("ok") or "err" in e)}
            highest = max(int(e["fence"]) for e in accepted_here)
            if stored is None or int(stored) < highest or int(stored) not in possible:
                top = max(accepted_here, key=lambda e: int(e["fence"]))
                violate("fencing", what=f"{where}: final token is not the highest write",
                        name=name, langs=(top.get("lang", "?"),), stored=stored,
                        highest_accepted=highest)


def count_faults(faults: list[Fault]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faults:
        out[f.kind] = out.get(f.kind, 0) + 1
    return out


def describe(h: Hold) -> dict[str, Any]:
    return {"worker": h.worker, "hold": h.hold, "fence": h.fence, "acquired": h.acq_t1,
            "checked": h.check_t0, "check_ok": h.check_ok, "release_ok": h.release_ok,
            "lost": h.lost_t[:1]}


def brief(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("w", "op", "seq", "name", "mode", "fence", "t0", "t1", "ok", "err", "deadline_ms")
    return {k: e[k] for k in keys if k in e}


if __name__ == "__main__":
    import sys
    print(json.dumps(check(sys.argv[1], command_timeout_ms=int(sys.argv[2]) if len(sys.argv) > 2 else 1000),
                     indent=2))
