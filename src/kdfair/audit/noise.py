"""The noise floor of group fairness in the audit (SPEC §5 "Noise floor", docs/audit.md "Noise floor").

For every protected attribute the audit draws B permutations of the attribute within each true class once
(:func:`null_plans`, before the runs; seeded by ``NULL_SEED`` and the attribute's name, in ``sample_id``
order) and every run's DPD, EOD, mean-DEO and max-DEO are recomputed under all of them
(:func:`kdfair.metrics.noise.null_distribution`). Because every run shares the same permutations of the
shared test set, the mean over a condition's seeds has an exact permutation null too: permutation b of the
mean is the mean of the seeds' permutation b.

Files written by the audit (docs/ARCHITECTURE.md, "Audit output"), fractions except p-values:

- ``noise_floor.csv``: one row per (run, attribute, metric): ``condition, role, method, temperature, alpha,
  seed, metric, attribute, value, null_mean, null_q95, excess, p_value, n_permutations``.
- ``noise_floor_summary.csv``: one row per (condition, attribute, metric), for the mean over seeds:
  ``condition, role, method, temperature, alpha, metric, attribute, n_seeds, mean, null_mean, null_q95,
  excess, excess_std, p_value, p_value_bh, significant, significant_bh, n_permutations``; BH over the
  conditions of one (metric, attribute).
- ``fairness_tests.csv``: is a DS fairer than the NDS (``nds_vs_ds``) or the teacher (``teacher_vs_ds``)
  beyond the noise floor? A two-sided Welch t-test over seeds of the excess over the null mean:
  ``comparison, condition, reference, method, temperature, alpha, metric, attribute, n_seeds,
  n_seeds_reference, excess, excess_reference, difference, p_value, p_value_bh, significant,
  significant_bh, undefined``; ``difference`` = DS minus reference (negative: the DS is fairer); BH over the
  temperatures of one (comparison, metric, attribute, method, alpha), as for #SC/#TC.
- ``audit.json`` ``noise_floor``: the null, B, the seed, and per attribute and metric the conditions whose
  seed mean exceeds its noise floor after BH (``exceeds``).
"""

from __future__ import annotations

import time
import warnings
import zlib
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from kdfair.audit.conditions import Condition, reference_conditions
from kdfair.audit.inputs import Reference
from kdfair.audit.options import check_permutations
from kdfair.errors import KdfairWarning
from kdfair.metrics.noise import (
    DEFAULT_SEED,
    NULL_METRICS,
    NullResult,
    WithinClassPermutations,
    null_distribution,
    seed_mean_null,
    within_class_permutations,
)
from kdfair.metrics.table import METRICS
from kdfair.stats import benjamini_hochberg

NULL_SEED = DEFAULT_SEED  # with the attribute's name, seeds the permutations: the same on every audit
NOISE_RUNS_CSV = "noise_floor.csv"  # per run; the report reads only the summary and the tests
NOISE_FILES = (NOISE_RUNS_CSV, "noise_floor_summary.csv", "fairness_tests.csv")
IDENTITY = ["condition", "role", "method", "temperature", "alpha"]
RUN_COLUMNS = [*IDENTITY, "seed", "metric", "attribute", "value", "null_mean", "null_q95", "excess"]
RUN_COLUMNS += ["p_value", "n_permutations"]
SUMMARY_COLUMNS = [*IDENTITY, "metric", "attribute", "n_seeds", "mean", "null_mean", "null_q95", "excess"]
SUMMARY_COLUMNS += ["excess_std", "p_value", "p_value_bh", "significant", "significant_bh", "n_permutations"]
TEST_COLUMNS = ["comparison", "condition", "reference", "method", "temperature", "alpha", "metric"]
TEST_COLUMNS += ["attribute", "n_seeds", "n_seeds_reference", "excess", "excess_reference", "difference"]
TEST_COLUMNS += ["p_value", "p_value_bh", "significant", "significant_bh", "undefined"]

CONSTANT_EXCESS = 1e-12  # seed values of the excess (fractions) this close count as constant (rounding)
Nulls = dict[tuple[str, str], NullResult]  # (attribute, metric) -> one run's observed value and null


def null_plans(ref: Reference, n_permutations: int) -> dict[str, WithinClassPermutations]:
    """Per protected attribute, ``n_permutations`` within-class permutations of the reference's groups.

    Seeded by ``NULL_SEED`` and the attribute's name and drawn in ``sample_id`` order: the same permutations
    on every audit of the same test set, whatever the row order. ``n_permutations`` 0: no noise floor.
    """
    check_permutations(n_permutations)
    if n_permutations == 0:
        return {}
    return {
        name: within_class_permutations(
            ref.y_true,
            codes,
            n_classes=ref.n_classes,
            n_permutations=n_permutations,
            random_state=np.random.SeedSequence([NULL_SEED, zlib.crc32(name.encode("utf-8"))]),
            sample_id=ref.sample_id,
        )
        for name, codes in ref.attributes.items()
    }


def run_nulls(y_pred: np.ndarray, plans: dict[str, WithinClassPermutations] | None) -> tuple[Nulls, float]:
    """One run's metrics and their nulls for every attribute, and the seconds it took.

    ``y_pred`` (N,) in the reference's row order.
    """
    start = time.perf_counter()
    nulls = {
        (name, metric): result
        for name, plan in (plans or {}).items()
        for metric, result in null_distribution(y_pred, plan).items()
    }
    return nulls, time.perf_counter() - start


def noise_floor_table(conditions: list[Condition], results: dict[str, list[Any]]) -> pd.DataFrame:
    """``noise_floor.csv``: per run, attribute and metric the value and its permutation null."""
    rows = [
        {
            **cond.identity(),
            "seed": r.seed,
            "metric": metric,
            "attribute": attribute,
            "value": n.observed,
            "null_mean": n.null_mean,
            "null_q95": n.null_q95,
            "excess": n.excess,
            "p_value": n.p_value,
            "n_permutations": len(n.null),
        }
        for cond in conditions
        for r in results[cond.id]
        for (attribute, metric), n in r.nulls.items()
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _bh_by(frame: pd.DataFrame, keys: list[str], level: float) -> pd.DataFrame:
    """Add ``p_value_bh`` (Benjamini-Hochberg within each group of ``keys``) and the two verdicts."""
    family = frame.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    p_values, adjusted = frame["p_value"].to_numpy(float), np.full(len(frame), np.nan)
    for code in np.unique(family):
        adjusted[family == code] = benjamini_hochberg(p_values[family == code])
    frame["p_value_bh"] = adjusted
    frame["significant"] = frame["p_value"].fillna(np.inf) <= level
    frame["significant_bh"] = frame["p_value_bh"].fillna(np.inf) <= level
    return frame


def noise_summary_table(
    conditions: list[Condition], results: dict[str, list[Any]], level: float
) -> pd.DataFrame:
    """``noise_floor_summary.csv``: per condition the seed mean, its exact null and p; BH over conditions."""
    rows = []
    for cond in conditions:
        runs = results[cond.id]
        for key in runs[0].nulls if runs else ():
            mean = seed_mean_null([r.nulls[key] for r in runs])
            excess = [r.nulls[key].excess for r in runs]
            rows.append(
                {
                    **cond.identity(),
                    "metric": key[1],
                    "attribute": key[0],
                    "n_seeds": len(runs),
                    "mean": mean.observed,
                    "null_mean": mean.null_mean,
                    "null_q95": mean.null_q95,
                    "excess": mean.excess,
                    "excess_std": np.std(excess, ddof=1) if len(runs) > 1 else np.nan,
                    "p_value": mean.p_value,
                    "n_permutations": len(mean.null),
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if not c.startswith(("p_value_", "sig"))])
    return _bh_by(frame, ["metric", "attribute"], level)[SUMMARY_COLUMNS]


def welch_p_value(a: list[float], b: list[float], label: str) -> float:
    """Two-sided Welch p of the seed values ``a`` vs ``b``; NaN (and a warning) when undefined."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.isnan(x).any() or np.isnan(y).any() or max(np.ptp(x), np.ptp(y)) <= CONSTANT_EXCESS:
        warnings.warn(
            f"{label}: Welch test undefined (zero variance in both groups or NaN)", KdfairWarning, 2
        )
        return float("nan")
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    t = (np.mean(x) - np.mean(y)) / np.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))  # Welch-Satterthwaite
    return float(2 * special.stdtr(df, -abs(t)))  # as scipy.stats.ttest_ind(equal_var=False)


def fairness_tests_table(
    conditions: list[Condition], results: dict[str, list[Any]], level: float
) -> pd.DataFrame:
    """``fairness_tests.csv``: Welch over seeds of the excess over the null mean, DS vs NDS and vs teacher."""
    teacher, nds = reference_conditions(conditions)
    rows = []
    for cond in (c for c in conditions if c.role == "ds"):
        for comparison, ref in (("nds_vs_ds", nds), ("teacher_vs_ds", teacher)):
            if ref is None or not results[cond.id] or not results[ref.id]:
                continue
            for key in results[cond.id][0].nulls:
                mine = [r.nulls[key].excess for r in results[cond.id]]
                theirs = [r.nulls[key].excess for r in results[ref.id] if key in r.nulls]
                label = f"{comparison} {cond.id} {key[1]} '{key[0]}'"
                p = welch_p_value(theirs, mine, label) if len(mine) > 1 and len(theirs) > 1 else float("nan")
                rows.append(
                    {
                        "comparison": comparison,
                        "condition": cond.id,
                        "reference": ref.id,
                        "method": cond.method,
                        "temperature": cond.temperature,
                        "alpha": cond.alpha,
                        "metric": key[1],
                        "attribute": key[0],
                        "n_seeds": len(mine),
                        "n_seeds_reference": len(theirs),
                        "excess": np.mean(mine),
                        "excess_reference": np.mean(theirs),
                        "difference": np.mean(mine) - np.mean(theirs),
                        "p_value": p,
                        "undefined": bool(np.isnan(p)),
                    }
                )
    frame = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if not c.startswith(("p_value_", "sig"))])
    family = ["comparison", "metric", "attribute", "method", "alpha"]
    return _bh_by(frame, family, level)[TEST_COLUMNS]


def noise_tables(
    conditions: list[Condition], results: dict[str, list[Any]], level: float
) -> dict[str, pd.DataFrame]:
    """The three noise-floor tables by file stem (empty, with their columns, without a noise floor)."""
    return {
        "noise_floor": noise_floor_table(conditions, results),
        "noise_floor_summary": noise_summary_table(conditions, results, level),
        "fairness_tests": fairness_tests_table(conditions, results, level),
    }


def noise_info(n_permutations: int, summary: pd.DataFrame, level: float) -> dict[str, Any]:
    """``audit.json``'s ``noise_floor``: how the null was drawn and which conditions exceed it (after BH)."""
    if n_permutations == 0:
        return {"permutations": 0, "computed": False, "note": "noise floor not computed (--permutations 0)"}
    exceeds: dict[str, dict[str, list[str]]] = {}
    for row in summary.itertuples(index=False):
        found = exceeds.setdefault(row.attribute, {}).setdefault(row.metric, [])
        if row.significant_bh:
            found.append(row.condition)
    return {
        "computed": True,
        "null": "the protected attribute permuted within each true class",
        "permutations": n_permutations,
        "seed": NULL_SEED,
        "metrics": list(NULL_METRICS),
        "level": level,
        "p_value": "(1 + #{null >= observed}) / (1 + B); per run, and per condition for the mean over seeds",
        "between_conditions": "two-sided Welch t-test over seeds of the excess over the null mean; "
        "Benjamini-Hochberg over the temperatures of each (comparison, metric, attribute, method, alpha)",
        "exceeds": exceeds,
    }


def noise_lines(info: dict[str, Any]) -> list[str]:
    """The console summary's lines: per attribute, which conditions exceed their noise floor (after BH)."""
    noise = info.get("noise_floor") or {}
    if not noise.get("computed"):
        return [noise["note"]] if noise.get("note") else []
    n_conditions = len(info.get("conditions") or [])
    lines = [
        f"Noise floor ({noise['permutations']} permutations of each attribute within each true class; "
        f"'n.s.': the seed mean does not exceed its floor, p > {noise['level']:g}):"
    ]
    for attribute, metrics in noise["exceeds"].items():
        verdict = "; ".join(
            f"{METRICS[m].column if m in METRICS else m}: {', '.join(ids) or 'none'}"
            for m, ids in metrics.items()
        )
        lines.append(f"  {attribute}, conditions beyond the floor (BH over {n_conditions}): {verdict}")
    return lines


NOT_SIGNIFICANT = "n.s."  # the mark of a value that does not exceed its noise floor (p > level)


def within_noise(summary: pd.DataFrame | None, condition: str, metric: str, attribute: str) -> bool:
    """Whether the condition's seed mean of ``metric`` does not exceed its noise floor (raw p > level).

    False when the audit has no noise floor for it (nothing to mark).
    """
    if summary is None or summary.empty:
        return False
    hit = summary[
        (summary["condition"] == condition)
        & (summary["metric"] == metric)
        & (summary["attribute"] == attribute)
    ]
    return (
        bool(len(hit)) and not bool(hit["significant"].iloc[0]) and bool(np.isfinite(hit["p_value"].iloc[0]))
    )


def summary_entries(summary: pd.DataFrame | None, condition: str, attributes: list[str]) -> dict[str, Any]:
    """The ``--json`` table's noise entries of one condition: ``dpd_null_mean``, ``dpd_p_value``,
    ``eod_null_mean``, ``eod_p_value``, each {attribute: value or None} (None: no noise floor)."""
    entries: dict[str, Any] = {}
    for metric in ("dpd", "eod"):
        for column in ("null_mean", "p_value"):
            entries[f"{metric}_{column}"] = {a: None for a in attributes}
    if summary is None or summary.empty:
        return entries
    mine = summary[(summary["condition"] == condition) & summary["metric"].isin(["dpd", "eod"])]
    for row in mine.itertuples(index=False):
        for column in ("null_mean", "p_value"):
            value = float(getattr(row, column))
            entries[f"{row.metric}_{column}"][row.attribute] = value if np.isfinite(value) else None
    return entries


def console_mark(row: dict[str, Any], metric: str, attribute: str, level: float) -> str:
    """`` n.s.`` after a console value whose seed mean does not exceed its noise floor (p > level)."""
    p = (row.get(f"{metric}_p_value") or {}).get(attribute)
    return f" {NOT_SIGNIFICANT}" if p is not None and p > level else ""
