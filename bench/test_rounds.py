#!/usr/bin/env python3
"""Unit tests of the `cycle` scenario's interleaved rounds: the rotating
order and the pooling (bench/rows.py), the per-round ratios and the
verdicts judged on their median (bench/report.py). Offline, no server; run
by `make lint`.

Usage: python3 bench/test_rounds.py
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
import rows


def cycle_row(impl, rounds):
    measured = sorted(m for m in rounds if m is not None)
    return {"scenario": "cycle", "impl": impl, "median_us": measured[len(measured) // 2], "round_medians_us": rounds}


class Order(unittest.TestCase):
    def test_no_implementation_is_always_first_or_last(self):
        impls = [f"i{k}" for k in range(9)]
        orders = [rows.order(r, 5, impls) for r in range(5)]
        for order in orders:
            self.assertEqual(sorted(order), impls)
        self.assertEqual(orders[0], impls)
        for impl in impls:
            positions = {order.index(impl) for order in orders}
            self.assertGreater(len(positions), 1, impl)
        self.assertEqual(len({order[0] for order in orders}), 5)
        self.assertEqual(len({order[-1] for order in orders}), 5)

    def test_one_round_or_one_implementation(self):
        self.assertEqual(rows.order(0, 1, ["a", "b"]), ["a", "b"])
        self.assertEqual(rows.order(3, 5, ["a"]), ["a"])
        self.assertEqual(rows.order(0, 5, []), [])


class RoundRatios(unittest.TestCase):
    def test_ratio_per_round_then_median(self):
        mine = cycle_row("latchkey-go", [170.0, 354.0, 200.0, 300.0, 180.0])
        ref = cycle_row("redsync", [283.0, 238.0, 250.0, 400.0, 200.0])
        ratios = report.round_ratios(mine, ref)
        expected = [170 / 283, 354 / 238, 200 / 250, 300 / 400, 180 / 200]
        for got, want in zip(ratios, expected):
            self.assertAlmostEqual(got, want)
        mid, lo, hi = report.ratio_summary(ratios)
        self.assertAlmostEqual(mid, 0.8)
        self.assertAlmostEqual(lo, 170 / 283)
        self.assertAlmostEqual(hi, 354 / 238)

    def test_rounds_one_side_missed_are_left_out(self):
        mine = cycle_row("latchkey-go", [100.0, None, 300.0])
        ref = cycle_row("redsync", [200.0, 200.0, None])
        self.assertEqual(report.round_ratios(mine, ref), [0.5])

    def test_against_a_number_and_without_rounds(self):
        self.assertEqual(report.round_ratios(cycle_row("latchkey-rust", [100.0, 300.0]), 50.0), [2.0, 6.0])
        old = {"scenario": "cycle", "impl": "latchkey-rust", "median_us": 90.0}
        self.assertEqual(report.round_ratios(old, {"median_us": 100.0}), [0.9])
        self.assertEqual(report.round_ratios(old, 45.0), [2.0])


class Verdicts(unittest.TestCase):
    def rows(self, go_rounds):
        return [
            {"scenario": "floor", "impl": "raw-ping-spinning", "median_us": 100.0},
            cycle_row("latchkey-rust", [150.0, 260.0, 200.0]),
            cycle_row("latchkey-go", go_rounds),
            cycle_row("redsync", [200.0, 300.0, 250.0]),
        ]

    def verdict(self, rows_, start):
        return next((ok, why) for title, ok, why in report.targets(rows_) if title.startswith(start))

    def test_judged_on_the_median_of_the_per_round_ratios(self):
        # latchkey-go: 0.5×, 1.0×, 0.8× redsync round by round: median 0.8×,
        # met although one round is slower than 0.9×.
        ok, why = self.verdict(self.rows([100.0, 300.0, 200.0]), "`cycle` ≤ 0.9× redsync")
        self.assertTrue(ok)
        self.assertIn("latchkey-go 200.0 µs: 0.80× (median of 3 rounds; rounds 0.50–1.00×)", why)
        # 1.0×, 0.5×, 1.2×: median 1.0×, missed.
        ok, _ = self.verdict(self.rows([200.0, 150.0, 300.0]), "`cycle` ≤ 0.9× redsync")
        self.assertFalse(ok)

    def test_floor_verdict_per_round(self):
        # latchkey-rust 1.5×, 2.6×, 2.0× the floor of 100 µs: median 2.0×.
        ok, why = self.verdict(self.rows([100.0, 300.0, 200.0]), "`cycle` ≤ 2.3× the run's floor")
        self.assertTrue(ok)
        self.assertIn("2.00× (median of 3 rounds; rounds 1.50–2.60×)", why)


class Pooling(unittest.TestCase):
    def test_one_row_per_implementation_from_its_rounds(self):
        round_rows = []
        for r in range(3):
            round_rows += [
                {"scenario": "floor", "impl": "latchkey-rust", "median_us": 50.0 + r, "floor_us": 50.0 + r,
                 "round": r, "samples_us": [50.0 + r] * 20, "floor_source": "x"},
                {"scenario": "cycle", "impl": "latchkey-rust", "median_us": 100.0 * (r + 1), "floor_us": 50.0 + r,
                 "round": r, "samples_us": [100.0 * (r + 1)] * 20, "floor_source": "x"},
                {"scenario": "cycle", "impl": "latchkey-c", "median_us": 10.0 + r, "round": r,
                 "batch_means_us": [10.0 + r] * 20},
            ]
        round_rows.append({"scenario": "cycle", "impl": "redsync", "skipped": "no go", "round": 0})
        merged = {(m["scenario"], m["impl"]): m for m in rows.merge_rounds(round_rows, 3)}
        rust = merged[("cycle", "latchkey-rust")]
        self.assertEqual(rust["round_medians_us"], [100.0, 200.0, 300.0])
        self.assertEqual(rust["samples"], 60)
        self.assertEqual(rust["median_us"], 200.0)
        self.assertEqual(rust["floor_us"], 51.0)
        self.assertNotIn("samples_us", rust)
        self.assertNotIn("round", rust)
        c = merged[("cycle", "latchkey-c")]
        self.assertEqual((c["median_us"], c["batches"]), (11.0, 60))
        self.assertEqual(c["floor_us"], merged[("floor", "latchkey-rust")]["median_us"])
        self.assertEqual(merged[("cycle", "redsync")], {"scenario": "cycle", "impl": "redsync", "skipped": "no go"})


if __name__ == "__main__":
    unittest.main(verbosity=1)
