"""Unit tests of the checker's rules on small made-up histories: each rule
must be able to fail (python3 -m unittest discover -s tools/chaos; part of
make chaos-short). The self-test (selftest.py) checks the same rules on
real runs of broken variants."""

from __future__ import annotations

import json
import os
import tempfile
import unittest
from typing import Any, Optional

import checker

S = checker.NS  # one second in ns
TIMEOUT_MS = 1000


def write_run(events: list[dict[str, Any]], faults: Optional[list[dict[str, Any]]] = None) -> str:
    run_dir = tempfile.mkdtemp(prefix="checker-test-")
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_worker.setdefault(e["w"], []).append(e)
    for worker, lines in by_worker.items():
        with open(os.path.join(run_dir, f"history-{worker}.jsonl"), "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in lines)
    with open(os.path.join(run_dir, "nemesis.jsonl"), "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in faults or [])
    return run_dir


def hold(worker: str, lang: str, seq: int, fence: int, acquired: float, checked: float,
         *, check_err: Optional[str] = None, release_err: Optional[str] = None,
         renew: bool = False, ttl_ms: int = 2000, lost_at: Optional[float] = None,
         name: str = "a") -> list[dict[str, Any]]:
    """The lines of one hold: acquire, check, release (and a lost report)."""
    common = {"w": worker, "lang": lang, "seq": seq, "name": name, "hold": f"{worker}:{seq}",
              "fence": fence}
    lines = [{**common, "op": "acquire", "mode": "try", "deadline_ms": 0, "renew": renew,
              "ttl_ms": ttl_ms, "t0": int(acquired * S) - 1000, "t1": int(acquired * S), "ok": True},
             {**common, "op": "check", "t0": int(checked * S), "t1": int(checked * S) + 1000,
              "ok": check_err is None, **({"err": check_err} if check_err else {})},
             {**common, "op": "release", "t0": int(checked * S) + 2000,
              "t1": int(checked * S) + 3000, "ok": release_err is None,
              **({"err": release_err} if release_err else {})}]
    if lost_at is not None:
        lines.append({"w": worker, "lang": lang, "op": "lost", "name": name, "fence": fence,
                      "t": int(lost_at * S)})
    return lines


def restart_at(seconds: float) -> dict[str, Any]:
    return {"kind": "server-restart", "start": int(seconds * S), "end": int(seconds * S) + 1000,
            "target": "lock-server", "unsurvivable": True}


class NoSilentLoss(unittest.TestCase):
    def overlap(self, release_err: Optional[str], *, fault: bool = True,
                renew: bool = True) -> dict[str, Any]:
        # b acquires while a believes; a's release fails with release_err.
        events = (hold("go-0", "go", 1, 10, 100.0, 105.0, release_err=release_err, renew=renew)
                  + hold("rust-0", "rust", 1, 11, 100.5, 105.5))
        faults = [restart_at(100.2)] if fault else []
        return checker.check(write_run(events, faults), command_timeout_ms=TIMEOUT_MS)

    def test_a_release_saying_not_held_tells_the_holder(self) -> None:
        result = self.overlap("NotHeld")
        self.assertEqual(result["counts"]["overlaps_reported"], 1)
        self.assertNotIn("no-silent-loss", result["violations"])

    def test_a_release_that_timed_out_tells_nobody(self) -> None:
        # Before: any release error counted as telling the holder. A renewed
        # hold, due a report long before, and a hold that is not renewed
        # whose lease no unsurvivable fault explains: silent.
        for err in ("Connection", "Timeout"):
            for fault, renew in ((True, True), (False, False)):
                result = self.overlap(err, fault=fault, renew=renew)
                self.assertEqual(result["counts"]["overlaps_silent"], 1, err)
                self.assertEqual(result["violations_by_lang"]["no-silent-loss"],
                                 {"go": 1, "rust": 1})

    def test_a_hold_nothing_could_tell_is_unknowable_not_silent(self) -> None:
        # Not renewed, its lease gone with a restart, its release unable to
        # reach Redis (a chaos-short run met it: an eviction, then a server
        # asleep at the release): nothing could have told it.
        result = self.overlap("Connection", fault=True, renew=False)
        self.assertEqual(result["counts"]["overlaps_unknowable"], 1)
        self.assertNotIn("no-silent-loss", result["violations"])

    def test_a_renewed_holder_that_ended_before_its_next_renewal_was_due(self) -> None:
        # a is renewed and checks 0.1 s after b acquired: its next renewal
        # would have told it; its release failed on a broken connection.
        events = (hold("go-0", "go", 1, 10, 100.0, 100.6, release_err="Connection", renew=True)
                  + hold("c-0", "c", 1, 11, 100.5, 101.5))
        result = checker.check(write_run(events, [restart_at(100.2)]), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["counts"]["overlaps_ended_before_the_next_renewal"], 1)
        self.assertEqual(result["violations"], {})
        # Believing for 5 s after b acquired, it was due a report: silent.
        events = (hold("go-0", "go", 1, 10, 100.0, 105.5, release_err="Connection", renew=True)
                  + hold("c-0", "c", 1, 11, 100.5, 106.0))
        result = checker.check(write_run(events, [restart_at(100.2)]), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["counts"]["overlaps_silent"], 1)

    def test_a_renewed_holder_told_only_at_check_is_told_too_late(self) -> None:
        # a's lease went with a restart at 100.2; no lost report, its check
        # at 110 finds it lost; b holds from 101 to 110.
        events = (hold("c-0", "c", 1, 10, 100.0, 110.0, check_err="Lost", release_err="NotHeld",
                       renew=True)
                  + hold("python-0", "python", 1, 11, 101.0, 110.5, renew=True))
        result = checker.check(write_run(events, [restart_at(100.2)]), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["violations"].get("no-silent-loss"), 1)
        # Told by a lost report within a renewal period: in time.
        events = (hold("c-0", "c", 1, 10, 100.0, 110.0, check_err="Lost", release_err="NotHeld",
                       renew=True, lost_at=101.5)
                  + hold("python-0", "python", 1, 11, 101.0, 110.5, renew=True))
        result = checker.check(write_run(events, [restart_at(100.2)]), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["violations"], {})


def permit(worker: str, lang: str, seq: int, fence: int, acquired: float, checked: float,
           permits: int = 1, size: int = 2, **kw: Any) -> list[dict[str, Any]]:
    """The lines of one semaphore hold: a hold with the size and permits."""
    lines = hold(worker, lang, seq, fence, acquired, checked, name="s", **kw)
    lines[0].update(size=size, permits=permits)
    return lines


class Semaphore(unittest.TestCase):
    def check(self, events: list[dict[str, Any]],
              faults: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
        return checker.check(write_run(events, faults), command_timeout_ms=TIMEOUT_MS)

    def test_more_permits_believed_than_the_size_is_a_violation(self) -> None:
        # Size 2: rust holds 1, c holds 2 while rust still believes.
        events = permit("r", "rust", 1, 1, 1.0, 3.0) + permit("c", "c", 1, 2, 2.0, 4.0, permits=2)
        result = self.check(events)
        self.assertEqual(result["violations"].get("semaphore"), 1)
        self.assertEqual(result["violations_by_lang"]["semaphore"], {"c": 1, "rust": 1})
        self.assertNotIn("exclusion", result["violations"])
        # Three holders of one permit each, the third while both others believe.
        events = (permit("r", "rust", 1, 1, 1.0, 5.0) + permit("c", "c", 1, 2, 2.0, 5.0)
                  + permit("g", "go", 1, 3, 3.0, 4.0))
        self.assertEqual(self.check(events)["violations"].get("semaphore"), 1)

    def test_a_full_semaphore_and_what_the_holders_were_told_is_no_violation(self) -> None:
        # Two holders of one permit each: full, legal (no exclusion either).
        events = permit("r", "rust", 1, 1, 1.0, 3.0) + permit("c", "c", 1, 2, 2.0, 4.0)
        # Two permits right after both ended.
        events += permit("g", "go", 1, 3, 4.5, 5.0, permits=2)
        # A third holder whose check failed, or who heard of its loss first,
        # did not believe it held its permit.
        events += permit("p", "python", 1, 4, 4.6, 4.9, check_err="Lost")
        events += permit("p", "python", 2, 5, 4.7, 4.9, lost_at=4.8)
        result = self.check(events)
        self.assertEqual(result["violations"], {})
        self.assertEqual(result["counts"]["semaphore_most_permits_believed"], 2)

    def test_an_excess_across_an_unsurvivable_fault_is_excused(self) -> None:
        events = permit("r", "rust", 1, 1, 1.0, 3.0) + permit("c", "c", 1, 2, 2.0, 4.0, permits=2)
        result = self.check(events, [restart_at(1.5)])
        self.assertNotIn("semaphore", result["violations"])
        self.assertEqual(result["counts"]["semaphore_excused"], 1)


class Liveness(unittest.TestCase):
    def test_a_blocking_acquire_waiting_on_a_free_lock(self) -> None:
        # The lock is held 100..101, then free; the waiter returns at 130.
        events = hold("rust-0", "rust", 1, 10, 100.0, 101.0)
        events.append({"w": "c-0", "lang": "c", "op": "acquire", "seq": 1, "name": "a",
                       "mode": "blocking", "renew": False, "ttl_ms": 2000, "t0": int(100.5 * S),
                       "t1": int(130 * S), "ok": True, "hold": "c-0:1", "fence": 11})
        result = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS)
        blocking = [v for v in result["violation_examples"] if "blocking" in v.get("what", "")]
        self.assertEqual([v["langs"] for v in blocking], [["c"]])
        self.assertEqual(result["counts"]["late_calls"], 1)
        # Behind a hold until 129 it is fine.
        events = hold("rust-0", "rust", 1, 10, 100.0, 129.0) + events[3:]
        result = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["violations"], {})

    def test_longest_gap(self) -> None:
        self.assertEqual(checker.longest_gap(0, 100, []), 100)
        self.assertEqual(checker.longest_gap(0, 100, [(10, 20), (15, 50), (80, 200)]), 30)
        self.assertEqual(checker.longest_gap(0, 100, [(-5, 200)]), 0)


def fair_acquire(worker: str, lang: str, seq: int, fence: int, started: float, returned: float,
                 *, mode: str = "blocking") -> list[dict[str, Any]]:
    """The lines of one hold of a fair lock acquired after waiting."""
    lines = hold(worker, lang, seq, fence, returned, returned + 0.1)
    lines[0].update(mode=mode, fair=True, t0=int(started * S))
    if mode == "blocking":
        del lines[0]["deadline_ms"]
    else:
        lines[0]["deadline_ms"] = 20_000
    return lines


class ArrivalOrder(unittest.TestCase):
    # With a command timeout of 1 s, a waiter's first attempt was answered
    # at most 4 s after its call began.
    def test_a_later_caller_served_first_is_a_violation(self) -> None:
        # go-0 waits from 100 s; c-0 begins at 105 s, after go-0 queued,
        # and gets the lock (token 11) before go-0 (token 12).
        events = (fair_acquire("go-0", "go", 1, 12, 100.0, 110.0, mode="timeout")
                  + fair_acquire("c-0", "c", 1, 11, 105.0, 108.0))
        result = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["violations"].get("arrival-order"), 1, result["violation_examples"])
        self.assertEqual(result["violations_by_lang"]["arrival-order"], {"c": 1, "go": 1})
        self.assertEqual(result["counts"]["fair_pairs_compared"], 1)

    def test_in_arrival_order_or_ambiguous_or_near_a_fault_is_no_violation(self) -> None:
        in_order = (fair_acquire("go-0", "go", 1, 11, 100.0, 108.0)
                    + fair_acquire("c-0", "c", 1, 12, 105.0, 110.0))
        # c-0 began 2 s after go-0: go-0's first attempt may not have been
        # answered yet, so either may have queued first.
        ambiguous = (fair_acquire("go-0", "go", 1, 12, 100.0, 110.0)
                     + fair_acquire("c-0", "c", 1, 11, 102.0, 108.0))
        # An ordinary lock promises no order.
        not_fair = (hold("go-0", "go", 1, 12, 110.0, 110.1)
                    + hold("c-0", "c", 1, 11, 108.0, 108.1))
        not_fair[0].update(mode="blocking", t0=int(100 * S))
        not_fair[3].update(mode="blocking", t0=int(105 * S))
        for events, compared in ((in_order, 1), (ambiguous, 0), (not_fair, None)):
            result = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS)
            self.assertNotIn("arrival-order", result["violations"], result["violation_examples"])
            self.assertEqual(result["counts"].get("fair_pairs_compared"), compared)
        # A server restart while go-0 waited may have lost the queue.
        events = (fair_acquire("go-0", "go", 1, 12, 100.0, 110.0)
                  + fair_acquire("c-0", "c", 1, 11, 105.0, 108.0))
        result = checker.check(write_run(events, [restart_at(103.0)]), command_timeout_ms=TIMEOUT_MS)
        self.assertNotIn("arrival-order", result["violations"])
        self.assertEqual(result["counts"]["fair_pairs_excused"], 1)
        # A fault of an uninvolved worker changes nothing.
        stop = {"kind": "worker-stop", "start": int(103 * S), "end": int(106 * S),
                "target": "rust-0", "unsurvivable": False}
        events += hold("rust-0", "rust", 1, 5, 90.0, 91.0)
        result = checker.check(write_run(events, [stop]), command_timeout_ms=TIMEOUT_MS)
        self.assertEqual(result["violations"].get("arrival-order"), 1)


class ScriptsPerHandoff(unittest.TestCase):
    def test_scripts_per_acquisition_that_waited(self) -> None:
        events = (fair_acquire("go-0", "go", 1, 11, 100.0, 101.0)
                  + fair_acquire("c-0", "c", 1, 12, 100.5, 102.0)
                  + hold("rust-0", "rust", 1, 13, 103.0, 103.5))  # a try: did not wait
        result = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS,
                               final={"scripts": 9})
        self.assertEqual(result["counts"]["waited_acquires"], 2)
        self.assertEqual(result["counts"]["scripts_per_handoff"], 4.5)


class Soundness(unittest.TestCase):
    def test_a_language_without_history_and_a_dead_worker_are_run_faults(self) -> None:
        events = hold("rust-0", "rust", 1, 10, 100.0, 101.0)
        final = {"langs": ["rust", "python"], "stragglers": [], "lock_keys_left": {},
                 "workers": {"rust-0": {"lang": "rust", "exit": 0, "killed": False},
                             "python-0": {"lang": "python", "exit": 1, "killed": False,
                                          "stderr": "ImportError"},
                             "rust-1": {"lang": "rust", "exit": -9, "killed": True}}}
        faults = checker.check(write_run(events), command_timeout_ms=TIMEOUT_MS,
                               final=final)["run_faults"]
        self.assertEqual(len(faults), 2, faults)
        self.assertIn("no python worker", faults[0])
        self.assertIn("python-0", faults[1])

    def test_an_outage_past_the_failover_bound_is_a_fixture_fault(self) -> None:
        final = {"failover_bound_s": 20, "outages": [{"seconds": 4.0}, {"seconds": 36.2}]}
        faults = checker.check(write_run(hold("rust-0", "rust", 1, 10, 100.0, 101.0)),
                               command_timeout_ms=TIMEOUT_MS, final=final)["fixture_faults"]
        self.assertEqual(len(faults), 1)
        self.assertIn("36.2 s", faults[0])


if __name__ == "__main__":
    unittest.main()
