"""Group fairness metrics: kdfair against fairlearn, and the one-vs-rest path at 1,000 classes.

Binary DPD and EOD on the same 1,000,000 rows (several groups of unequal size, every group with positives
and negatives): checks that kdfair and fairlearn agree, and times both, round-robin, taking the median of the
repeats. Then times kdfair's multi-class (one-vs-rest, paper Algorithm 1) DPD and EOD at 1,000 classes x
50,000 rows x 10 groups. Prints a Markdown table; exits with status 1 if any value differs.

    .venv/bin/python benchmarks/bench_fairness_metrics.py [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
from fairlearn.metrics import demographic_parity_difference as fairlearn_dpd
from fairlearn.metrics import equalized_odds_difference as fairlearn_eod

from kdfair.errors import KdfairWarning
from kdfair.metrics import demographic_parity_difference, equalized_odds_difference

TOLERANCE = 1e-12  # absolute: both compute the same ratios of integer counts


def binary_case(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary labels, predictions with 20% noise, 6 groups with shares 40/25/15/10/7/3 %."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(6, size=rows, p=[0.40, 0.25, 0.15, 0.10, 0.07, 0.03])
    y_true = (rng.random(rows) < 0.3 + 0.05 * groups).astype(np.int64)
    y_pred = np.where(rng.random(rows) < 0.2, 1 - y_true, y_true)
    return y_true, y_pred, groups


def multiclass_case(rows: int, n_classes: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, rows)
    y_pred = np.where(rng.random(rows) < 0.7, y_true, rng.integers(0, n_classes, rows))
    return y_true, y_pred, rng.integers(0, 10, rows)


def round_robin(functions: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, alternating the functions so that load changes hit all of them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    y_true, y_pred, groups = binary_case(args.rows)
    calls = {
        "kdfair dpd": lambda: demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
        "fairlearn dpd": lambda: fairlearn_dpd(y_true, y_pred, sensitive_features=groups),
        "kdfair eod": lambda: equalized_odds_difference(y_true, y_pred, sensitive_features=groups),
        "fairlearn eod": lambda: fairlearn_eod(y_true, y_pred, sensitive_features=groups),
    }
    values = {name: call() for name, call in calls.items()}  # also a warm-up
    seconds = round_robin(calls, args.repeats)
    median = {name: statistics.median(times) for name, times in seconds.items()}

    print(f"Binary, {args.rows:,} rows, 6 groups, median of {args.repeats} round-robin repeats\n")
    print("| metric | kdfair value | fairlearn value | kdfair (ms) | fairlearn (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    agree = True
    for metric in ("dpd", "eod"):
        ours, theirs = values[f"kdfair {metric}"], values[f"fairlearn {metric}"]
        agree &= abs(ours - theirs) <= TOLERANCE
        ratio = median[f"fairlearn {metric}"] / median[f"kdfair {metric}"]
        print(
            f"| {metric} | {ours:.12f} | {theirs:.12f} | {1e3 * median[f'kdfair {metric}']:.1f} "
            f"| {1e3 * median[f'fairlearn {metric}']:.1f} | {ratio:.0f}x |"
        )

    n_classes, rows = 1000, 50_000
    multi_true, multi_pred, multi_groups = multiclass_case(rows, n_classes)

    def one_vs_rest(metric: Callable[..., float]) -> Callable[[], float]:
        def call() -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", KdfairWarning)  # some (class, group) cells have no positives
                return metric(multi_true, multi_pred, sensitive_features=multi_groups, n_classes=n_classes)

        return call

    multi = round_robin(
        {"dpd": one_vs_rest(demographic_parity_difference), "eod": one_vs_rest(equalized_odds_difference)},
        args.repeats,
    )
    print(f"\nMulti-class one-vs-rest, {n_classes} classes x {rows:,} rows x 10 groups (kdfair only)\n")
    print("| metric | kdfair (ms) |")
    print("|---|---|")
    for metric, times in multi.items():
        print(f"| {metric} | {1e3 * statistics.median(times):.1f} |")

    if not agree:
        print("\nFAIL: kdfair and fairlearn values differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
