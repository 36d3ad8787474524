"""The audit's tables, built from per-run results (docs/ARCHITECTURE.md, "Audit output").

All values are fractions in [0, 1] except counts; ``std`` uses ddof = 1 (NaN with one seed).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from kdfair.audit.conditions import Condition, reference_conditions
from kdfair.audit.inputs import Reference
from kdfair.audit.runmetrics import RunResult
from kdfair.errors import KdfairWarning
from kdfair.metrics import disagreement_matrix, disagreement_rate
from kdfair.stats import welch_class_test

RUN_METRIC_COLUMNS = [
    "condition",
    "role",
    "method",
    "temperature",
    "alpha",
    "seed",
    "metric",
    "attribute",
    "value",
]
SUMMARY_COLUMNS = [
    "condition",
    "role",
    "method",
    "temperature",
    "alpha",
    "metric",
    "attribute",
    "n_seeds",
    "mean",
    "std",
]
CLASS_TEST_COLUMNS = [
    "comparison",
    "condition",
    "class",
    "p_value",
    "p_value_bh",
    "significant",
    "significant_bh",
    "mean_change",
    "undefined",
]
COUNT_COLUMNS = [
    "condition",
    "method",
    "temperature",
    "alpha",
    "sc",
    "sc_bh",
    "tc",
    "tc_bh",
    "n_classes",
    "level",
    "n_seeds",
]

Results = dict[str, list[RunResult]]


def run_metrics_table(conditions: list[Condition], results: Results) -> pd.DataFrame:
    """``run_metrics.csv``: one row per (run, metric, attribute)."""
    rows = [
        {**cond.identity(), "seed": r.seed, "metric": metric, "attribute": attribute, "value": value}
        for cond in conditions
        for r in results[cond.id]
        for metric, attribute, value in r.scalars
    ]
    return pd.DataFrame(rows, columns=RUN_METRIC_COLUMNS)


def summary_table(run_metrics: pd.DataFrame) -> pd.DataFrame:
    """``summary.csv``: per (condition, metric, attribute) the number of seeds with a value, mean and std."""
    keys = ["condition", "role", "method", "temperature", "alpha", "metric", "attribute"]
    grouped = run_metrics.groupby(keys, sort=False, dropna=False)["value"]
    summary = grouped.agg(n_seeds="count", mean="mean", std=lambda v: v.std(ddof=1)).reset_index()
    return summary[SUMMARY_COLUMNS]


def class_accuracy_table(conditions: list[Condition], results: Results) -> pd.DataFrame:
    """``class_accuracy.csv``: class accuracy ``b_c`` and normalised accuracy ``r_c`` per run and class."""
    frames = []
    for cond in conditions:
        for r in results[cond.id]:
            n = len(r.class_accuracy)
            frames.append(
                pd.DataFrame(
                    {
                        "condition": cond.id,
                        "seed": r.seed,
                        "class": np.arange(n),
                        "accuracy": r.class_accuracy,
                        "normalized_accuracy": r.normalized_accuracy,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _welch(a: list[RunResult], b: list[RunResult], level: float, label: str):
    """Raw and BH Welch tests of B against A; warnings are re-issued prefixed with ``label``."""
    args = (
        np.stack([r.class_accuracy for r in a]),
        np.array([r.accuracy for r in a]),
        np.stack([r.class_accuracy for r in b]),
        np.array([r.accuracy for r in b]),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KdfairWarning)
        raw = welch_class_test(*args, level=level, correction=None)
        bh = welch_class_test(*args, level=level, correction="bh")
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, KdfairWarning)):
        warnings.warn(f"{label}: {message}", KdfairWarning, stacklevel=2)
    return raw, bh


def welch_comparisons(
    conditions: list[Condition], results: Results, level: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``class_tests.csv`` and ``significance_counts.csv``: #SC (NDS vs DS), #TC (teacher vs DS)."""
    teacher, nds = reference_conditions(conditions)
    ds_conditions = [c for c in conditions if c.role == "ds"]
    for role, ref in (("NDS", nds), ("teacher", teacher)):
        if ref is None and ds_conditions:
            what = "#SC (NDS vs DS)" if role == "NDS" else "#TC (teacher vs DS)"
            warnings.warn(f"no {role} runs: {what} comparisons skipped", KdfairWarning, stacklevel=2)
    test_frames, counts = [], []
    for cond in ds_conditions:
        row = {k: v for k, v in cond.identity().items() if k != "role"}
        row.update(sc=None, sc_bh=None, tc=None, tc_bh=None)
        for comparison, ref, key in (("nds_vs_ds", nds, "sc"), ("teacher_vs_ds", teacher, "tc")):
            if ref is None:
                continue
            short = [c for c in (ref, cond) if c.n_seeds < 2]
            if short:  # one seed has no variance: the test is undefined, not 0 classes
                seeds = ", ".join(f"'{c.id}' has {c.n_seeds}" for c in short)
                warnings.warn(
                    f"{comparison} {cond.id}: Welch class test skipped ({seeds} seed; it needs at least 2 "
                    "per condition)",
                    KdfairWarning,
                    stacklevel=2,
                )
                continue
            raw, bh = _welch(results[ref.id], results[cond.id], level, f"{comparison} {cond.id}")
            row[key], row[f"{key}_bh"] = raw.count, bh.count
            test_frames.append(
                pd.DataFrame(
                    {
                        "comparison": comparison,
                        "condition": cond.id,
                        "class": np.arange(len(raw.p_values)),
                        "p_value": raw.p_values,
                        "p_value_bh": raw.p_values_bh,
                        "significant": raw.significant,
                        "significant_bh": bh.significant,
                        "mean_change": raw.mean_change,
                        "undefined": raw.undefined,
                    }
                )
            )
        row.update(n_classes=len(results[cond.id][0].class_accuracy), level=level, n_seeds=cond.n_seeds)
        counts.append(row)
    tests = (
        pd.concat(test_frames, ignore_index=True) if test_frames else pd.DataFrame(columns=CLASS_TEST_COLUMNS)
    )
    count_table = pd.DataFrame(counts, columns=COUNT_COLUMNS)
    for column in ("sc", "sc_bh", "tc", "tc_bh"):
        count_table[column] = count_table[column].astype("Int64")
    return tests[CLASS_TEST_COLUMNS], count_table


def disagreements(
    conditions: list[Condition], results: Results, ref: Reference
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Teacher-vs-condition disagreement matrices and per-class rates, seed s paired with seed s, averaged.

    Returns ``{condition id: (C, C) float}`` (rows = teacher) for the NDS and every DS, and the
    ``disagreement_rate.csv`` table. Conditions with no seed shared with the teacher are skipped (warning).
    """
    teacher, _ = reference_conditions(conditions)
    students = [c for c in conditions if c.role != "teacher"]
    matrices: dict[str, np.ndarray] = {}
    frames = []
    if teacher is None:
        if students:
            warnings.warn("no teacher runs: disagreement matrices skipped", KdfairWarning, stacklevel=2)
        return matrices, pd.DataFrame(columns=["condition", "class", "rate"])
    teacher_pred = {r.seed: r.y_pred for r in results[teacher.id]}
    for cond in students:
        pairs = [(teacher_pred[r.seed], r.y_pred) for r in results[cond.id] if r.seed in teacher_pred]
        if not pairs:
            warnings.warn(
                f"{cond.id}: no seed shared with the teacher; disagreement skipped",
                KdfairWarning,
                stacklevel=2,
            )
            continue
        n = ref.n_classes
        matrices[cond.id] = np.mean([disagreement_matrix(t, s, n) for t, s in pairs], axis=0)
        rate = np.mean([disagreement_rate(ref.y_true, t, s, n) for t, s in pairs], axis=0)
        frames.append(pd.DataFrame({"condition": cond.id, "class": np.arange(n), "rate": rate}))
    rates = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["condition", "class", "rate"])
    )
    return matrices, rates


def collect_settings(conditions: list[Condition]) -> dict[str, Any]:
    """``audit.json``'s ``settings``: the data set, the model per condition, the run.json ``settings``
    shared by every run (``common``) and each condition's first-seed ``settings`` (``by_condition``)."""
    metas = [m for c in conditions for m in c.metas]
    datasets = sorted({m.dataset for m in metas if m.dataset})
    common = dict(metas[0].settings) if metas else {}
    for m in metas[1:]:
        common = {k: v for k, v in common.items() if k in m.settings and m.settings[k] == v}
    return {
        "dataset": datasets[0] if len(datasets) == 1 else (datasets or None),
        "models": {c.id: c.metas[0].model for c in conditions},
        "common": common,
        "by_condition": {c.id: dict(c.metas[0].settings) for c in conditions},
    }
