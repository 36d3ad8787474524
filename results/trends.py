"""Trend and comparison evidence for RESULTS.md, computed from a sweep's audit folder.

Usage: ``python results/trends.py AUDIT_DIR [--max-t 10] [--methods ATTRIBUTE] [--out FILE.md]``

For the temperature experiments (one DS method, several T) it prints, per metric (and protected
attribute), Spearman's rank correlation of the DS conditions' seed means against T (``scipy.stats.spearmanr``;
n = number of temperatures <= ``--max-t``) with its two-sided p-value, plus how many DS conditions beat the
NDS; the same for #SC / #TC and their Benjamini-Hochberg versions from ``significance_counts.csv``. For the
fair-distillation experiments (several DS methods at one T) it prints each method's mean-/max-DEO beside KD's
and the NDS's, with Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) over the per-seed values.
Fractions are shown in percent, as in the report. Inputs: ``summary.csv``, ``run_metrics.csv``,
``significance_counts.csv`` (docs/ARCHITECTURE.md, "Audit output"); definitions: SPEC §4-§5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy import stats

from kdfair.io import write_text_atomic

LOWER_IS_BETTER = {
    "eod",
    "dpd",
    "deo_mean",
    "deo_max",
    "individual_unfairness",
    "counterfactual_unfairness",
    "counterfactual_flip_rate",
}
TREND_METRICS = [
    "accuracy",
    "eod",
    "dpd",
    "individual_unfairness",
    "consistency",
    "counterfactual_unfairness",
    "counterfactual_flip_rate",
]
UNITLESS = {"individual_unfairness", "counterfactual_unfairness"}  # shown as fractions, 4 digits


def _fmt(x: float, scale: float = 100.0, digits: int = 2) -> str:
    return "n/a" if pd.isna(x) else f"{x * scale:.{digits}f}"


def _rho(t: pd.Series, v: pd.Series) -> str:
    """Spearman rho of v against t, with its p-value, as a Markdown cell."""
    if len(t) < 3 or v.nunique() < 2:
        return "n/a"
    res = stats.spearmanr(t, v)
    return f"{res.statistic:+.2f} (p={res.pvalue:.3f})"


def temperature_trends(audit: Path, max_t: float) -> str:
    """Markdown: Spearman rho of every DS metric against T, and DS-vs-NDS counts."""
    summary = pd.read_csv(audit / "summary.csv", dtype={"attribute": str})
    summary["attribute"] = summary["attribute"].fillna("")
    ds = summary[(summary.role == "ds") & (summary.temperature <= max_t)]
    nds = summary[summary.role == "nds"]
    lines = [
        f"Spearman rho of the DS seed means against T (T <= {max_t:g}, n = {ds.temperature.nunique()} "
        "temperatures), p two-sided; 'DS better than NDS' counts DS conditions whose mean is better.",
        "",
        "| metric | attribute | rho vs T (p) | NDS mean | DS mean range | DS better than NDS |",
        "|---|---|---|---|---|---|",
    ]
    for (metric, attr), group in ds.groupby(["metric", "attribute"], sort=True):
        if metric not in TREND_METRICS:
            continue
        group = group.sort_values("temperature")
        base = nds[(nds.metric == metric) & (nds.attribute == attr)]["mean"]
        scale, digits = (1.0, 4) if metric in UNITLESS else (100.0, 2)
        base_v = float(base.iloc[0]) if len(base) else float("nan")
        lower = metric in LOWER_IS_BETTER
        better = int(((group["mean"] < base_v) if lower else (group["mean"] > base_v)).sum())
        lines.append(
            f"| {metric} | {attr or '-'} | {_rho(group.temperature, group['mean'])} | "
            f"{_fmt(base_v, scale, digits)} | {_fmt(group['mean'].min(), scale, digits)}-"
            f"{_fmt(group['mean'].max(), scale, digits)} | {better}/{len(group)} |"
        )
    counts_path = audit / "significance_counts.csv"
    if counts_path.exists():
        counts = pd.read_csv(counts_path)
        counts = counts[counts.temperature <= max_t].sort_values("temperature")
        lines += ["", "| count | rho vs T (p) | values by T |", "|---|---|---|"]
        for col in ["sc", "sc_bh", "tc", "tc_bh"]:
            if col in counts and counts[col].notna().any():
                pairs = zip(counts.temperature, counts[col], strict=True)
                values = ", ".join(f"{t:g}:{int(v)}" for t, v in pairs)
                lines.append(f"| {col} | {_rho(counts.temperature, counts[col])} | {values} |")
    lines += noise_floor_trends(audit, max_t) + accuracy_vs_nds(audit, max_t)
    return "\n".join(lines)


def noise_floor_trends(audit: Path, max_t: float) -> list[str]:
    """Markdown lines: the group-fairness trends read through the noise floor (SPEC §5).

    Per metric and attribute: Spearman rho of the DS conditions' excess over the null mean against T, how
    many DS conditions exceed their floor (BH), and how many are significantly fairer or less fair than the
    NDS (the audit's Welch test over seeds of the excess, BH over temperatures: ``fairness_tests.csv``).
    """
    floor_path, tests_path = audit / "noise_floor_summary.csv", audit / "fairness_tests.csv"
    if not floor_path.exists():
        return []
    floor = pd.read_csv(floor_path, dtype={"attribute": str})
    tests = pd.read_csv(tests_path, dtype={"attribute": str}) if tests_path.exists() else None
    ds = floor[(floor.role == "ds") & (floor.temperature <= max_t)]
    lines = [
        "",
        "Through the noise floor: excess = seed mean minus the permutation null's mean (percentage points); "
        "'beyond floor' counts DS conditions with BH-significant excess; 'vs NDS' counts DS conditions whose "
        "excess is significantly lower / higher than the NDS's (Welch over seeds, BH over T).",
        "",
        "| metric | attribute | rho of excess vs T (p) | NDS excess | DS excess range | beyond floor | "
        "vs NDS lower / higher |",
        "|---|---|---|---|---|---|---|",
    ]
    for (metric, attr), group in ds.groupby(["metric", "attribute"], sort=True):
        group = group.sort_values("temperature")
        nds = floor[(floor.role == "nds") & (floor.metric == metric) & (floor.attribute == attr)]
        nds_excess = float(nds["excess"].iloc[0]) if len(nds) else float("nan")
        lower = higher = "-"
        if tests is not None:
            mine = tests[
                (tests.comparison == "nds_vs_ds") & (tests.metric == metric) & (tests.attribute == attr)
            ]
            mine = mine[(mine.temperature <= max_t) & mine.significant_bh.astype(bool)]
            lower, higher = int((mine.difference < 0).sum()), int((mine.difference > 0).sum())
        lines.append(
            f"| {metric} | {attr} | {_rho(group.temperature, group['excess'])} | {_fmt(nds_excess)} | "
            f"{_fmt(group['excess'].min())}-{_fmt(group['excess'].max())} | "
            f"{int(group.significant_bh.astype(bool).sum())}/{len(group)} | {lower} / {higher} |"
        )
    return lines


def accuracy_vs_nds(audit: Path, max_t: float) -> list[str]:
    """Markdown lines: accuracy and counterfactual unfairness of each DS condition against the NDS."""
    runs = pd.read_csv(audit / "run_metrics.csv", dtype={"attribute": str})
    runs["attribute"] = runs["attribute"].fillna("")
    lines = []
    for (metric, attr), sel in runs.groupby(["metric", "attribute"], sort=True):
        if metric in ("accuracy", "counterfactual_unfairness"):
            lines += _vs_nds(sel, metric, attr, max_t)
    return lines


def _vs_nds(sel: pd.DataFrame, metric: str, attribute: str, max_t: float) -> list[str]:
    """One line: DS minus NDS per temperature, Welch over seeds (two-sided), BH over the temperatures."""
    nds = sel[sel.role == "nds"]["value"]
    ds = sel[(sel.role == "ds") & (sel.temperature <= max_t)]
    if len(nds) < 2 or ds.empty:
        return []
    rows = []
    for t, group in ds.groupby("temperature"):
        test = stats.ttest_ind(group["value"], nds, equal_var=False)
        rows.append((t, group["value"].mean() - nds.mean(), test.pvalue))
    bh = stats.false_discovery_control([p for _, _, p in rows])
    scale, unit = (1.0, "") if metric in UNITLESS else (100.0, " points")
    cells = ", ".join(
        f"{t:g}: {d * scale:+.4g} (p={p:.3f}, BH {q:.3f})" for (t, d, p), q in zip(rows, bh, strict=True)
    )
    name = metric + (f" ({attribute})" if attribute else "")
    return ["", f"{name}, DS minus NDS{unit} (Welch over seeds; BH over T): {cells}"]


def method_comparison(audit: Path, attribute: str) -> str:
    """Markdown: each DS method's mean-/max-DEO and accuracy against KD and the NDS, Welch p over seeds."""
    runs = pd.read_csv(audit / "run_metrics.csv", dtype={"attribute": str})
    runs["attribute"] = runs["attribute"].fillna("")
    lines = [
        f"Per-seed Welch t-test (two-sided) of each method against KD and against the NDS; attribute "
        f"{attribute}; values in percent, mean over seeds.",
        "",
        "| method | metric | mean | KD mean | p vs KD | NDS mean | p vs NDS |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric, attr in [("deo_mean", attribute), ("deo_max", attribute), ("accuracy", "")]:
        sel = runs[(runs.metric == metric) & (runs.attribute == attr)]
        nds = sel[sel.role == "nds"]["value"]
        kd = sel[(sel.role == "ds") & (sel.method == "kd")]["value"]
        for method, group in sel[sel.role == "ds"].groupby("method", sort=False):
            vals = group["value"]
            p_kd = "-" if method == "kd" else f"{stats.ttest_ind(vals, kd, equal_var=False).pvalue:.3f}"
            p_nds = f"{stats.ttest_ind(vals, nds, equal_var=False).pvalue:.3f}"
            lines.append(
                f"| {method} | {metric} | {_fmt(vals.mean())} | {_fmt(kd.mean())} | {p_kd} | "
                f"{_fmt(nds.mean())} | {p_nds} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audit", type=Path)
    parser.add_argument("--max-t", type=float, default=10.0)
    parser.add_argument("--methods", metavar="ATTRIBUTE", help="fair-method comparison for this attribute")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.methods:
        text = method_comparison(args.audit, args.methods)
    else:
        text = temperature_trends(args.audit, args.max_t)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
