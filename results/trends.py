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

LOWER_IS_BETTER = {"eod", "dpd", "deo_mean", "deo_max", "individual_unfairness"}
TREND_METRICS = ["accuracy", "eod", "dpd", "individual_unfairness", "consistency"]


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
        scale, digits = (1.0, 4) if metric == "individual_unfairness" else (100.0, 2)
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
    return "\n".join(lines)


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
