"""The noise floor of group fairness in the report (kdfair.audit.noise; docs/report.md, "Noise floor").

From the audit's ``noise_floor_summary.csv`` (per condition, the mean over seeds of DPD, EOD, mean-DEO and
max-DEO, its permutation null and p-value) and ``fairness_tests.csv`` (DS vs NDS and vs teacher, Welch over
seeds of the excess over the null):

- every table cell of DPD, EOD or DEO whose seed mean does not exceed its noise floor (p > the audit's level)
  carries the mark ``n.s.`` (:func:`noise_mark`, through ``kdfair.report.tables.stat_cell``);
- Tables 2-3 gain the floor (null mean) and the p-value of EOD and DPD (:func:`floor_columns`);
- two tables per attribute: the noise floor of every metric, and the between-condition tests;
- the figures of EOD and DPD against T draw each DS line's null band (null mean to 95th percentile) and hollow
  markers where a point is within the floor (:func:`draw_null_band`).
An audit without these files (older, or ``--permutations 0``) shows none of it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kdfair.metrics.table import METRICS
from kdfair.report.load import AuditData
from kdfair.report.tabular import Cell, Table, signed

NOT_SIGNIFICANT = "n.s."
TABLE_METRICS = ("eod", "dpd", "deo_mean", "deo_max")  # rows of the noise tables: the paper's EOD first
FLOOR_METRICS = ("eod", "dpd")  # Tables 2-3's floor columns


def _row(audit: AuditData, condition: str, metric: str, attribute: str) -> Any | None:
    """The condition's ``noise_floor_summary.csv`` row for (metric, attribute), or None."""
    summary = audit.table("noise_floor_summary")
    if summary is None or summary.empty or not attribute:
        return None
    hit = summary[
        (summary["condition"] == condition)
        & (summary["metric"] == metric)
        & (summary["attribute"] == attribute)
    ]
    return hit.iloc[0] if len(hit) else None


def noise_mark(audit: AuditData, condition: str, metric: str, attribute: str) -> str:
    """``n.s.`` when the condition's seed mean of ``metric`` does not exceed its noise floor, else ``""``."""
    row = _row(audit, condition, metric, attribute)
    if row is None or not math.isfinite(float(row["p_value"])):
        return ""
    return NOT_SIGNIFICANT if float(row["p_value"]) > audit.level else ""


def p_text(value: Any) -> str | None:
    """A p-value with 3 decimals (the smallest with B = 999 is 0.001); None when undefined."""
    return f"{float(value):.3f}" if value is not None and math.isfinite(float(value)) else None


def _percent(value: Any) -> str | None:
    return f"{100 * float(value):.2f}" if value is not None and math.isfinite(float(value)) else None


def floor_columns(audit: AuditData) -> list[str]:
    """Tables 2-3's extra columns (none without a noise floor)."""
    summary = audit.table("noise_floor_summary")
    if summary is None or summary.empty:
        return []
    return [f"{METRICS[m].column} {what}" for m in FLOOR_METRICS for what in ("floor (%)", "p")]


def floor_cells(audit: AuditData, condition: str, attribute: str) -> list[Cell]:
    """One row's cells of :func:`floor_columns`: the null mean (%) and the p-value of EOD and DPD."""
    if not floor_columns(audit):
        return []
    cells: list[Cell] = []
    for metric in FLOOR_METRICS:
        row = _row(audit, condition, metric, attribute)
        cells += [None, None] if row is None else [_percent(row["null_mean"]), p_text(row["p_value"])]
    return cells


def floor_note(audit: AuditData) -> list[str]:
    """The note under tables with noise-floor marks or columns."""
    info = audit.meta.get("noise_floor") or {}
    if not info.get("computed"):
        return []
    return [
        f"Noise floor: the mean over seeds under {info['permutations']} permutations of the protected "
        "attribute within each true class (errors unrelated to the group); p = (1 + #{null >= observed}) / "
        f"(1 + B). {NOT_SIGNIFICANT}: the value does not exceed its noise floor (p > {audit.level:g}) and "
        "cannot be told from sampling noise."
    ]


def _labels(audit: AuditData) -> dict[str, str]:
    return {c.id: c.label for c in audit.conditions}


def table_noise_floor(audit: AuditData, attribute: str) -> Table | None:
    """Per metric and condition: value, noise floor (null mean and 95th percentile), excess and p-values."""
    summary = audit.table("noise_floor_summary")
    if summary is None or summary.empty or not (summary["attribute"] == attribute).any():
        return None
    labels, rows, breaks = _labels(audit), [], []
    for metric in TABLE_METRICS:
        if rows:
            breaks.append(len(rows))
        for cond in audit.conditions:
            row = _row(audit, cond.id, metric, attribute)
            if row is None:
                continue
            mark = noise_mark(audit, cond.id, metric, attribute)
            value = _percent(row["mean"])
            rows.append(
                [
                    METRICS[metric].column,
                    labels[cond.id],
                    f"{value} {mark}".strip() if value else None,
                    _percent(row["null_mean"]),
                    _percent(row["null_q95"]),
                    signed(100 * float(row["excess"])),
                    p_text(row["p_value"]),
                    p_text(row["p_value_bh"]),
                ]
            )
    return Table(
        name=f"noise_floor_{_slug(attribute)}",
        title=f"Noise floor of group fairness, attribute '{attribute}'",
        caption="Each condition's fairness numbers (mean over seeds, %) beside what they are when errors "
        "have nothing to do with the group: the mean and 95th percentile under the permutation null, the "
        "excess over the null mean (pp) and the permutation p-value, raw and after Benjamini-Hochberg over "
        "the conditions.",
        columns=[
            "Metric",
            "Condition",
            "Value (%)",
            "Null mean (%)",
            "Null 95th pct (%)",
            "Excess (pp)",
            "p",
            "p (BH)",
        ],
        rows=rows,
        notes=floor_note(audit),
        breaks=breaks,
        n_label_columns=2,
    )


def table_fairness_tests(audit: AuditData, attribute: str) -> Table | None:
    """Per DS condition and metric: the change of the excess over the null against the NDS and the teacher."""
    tests = audit.table("fairness_tests")
    if tests is None or tests.empty or not (tests["attribute"] == attribute).any():
        return None
    tests = tests[tests["attribute"] == attribute]
    labels, rows, breaks = _labels(audit), [], []
    for metric in TABLE_METRICS:
        if rows:
            breaks.append(len(rows))
        for cond in audit.by_role("ds"):
            cells: list[Cell] = [METRICS[metric].column, labels[cond.id]]
            for comparison in ("nds_vs_ds", "teacher_vs_ds"):
                hit = tests[
                    (tests["comparison"] == comparison)
                    & (tests["condition"] == cond.id)
                    & (tests["metric"] == metric)
                ]
                found = hit.iloc[0] if len(hit) else None
                cells += (
                    [None, None, None]
                    if found is None
                    else [
                        signed(100 * float(found["difference"])),
                        p_text(found["p_value"]),
                        p_text(found["p_value_bh"]),
                    ]
                )
            rows.append(cells)
    return Table(
        name=f"fairness_tests_{_slug(attribute)}",
        title=f"Is distillation fairer beyond the noise floor? Attribute '{attribute}'",
        caption="Change of the excess over the noise floor (DS minus reference, pp; negative: the DS is "
        "fairer) and the two-sided Welch t-test over seeds, raw and after Benjamini-Hochberg over "
        "temperatures.",
        columns=["Metric", "Condition", "Δ vs NDS (pp)", "p", "p (BH)", "Δ vs teacher (pp)", "p", "p (BH)"],
        rows=rows,
        notes=["The excess of a run is its value minus the mean of its permutation null (docs/audit.md)."],
        breaks=breaks,
        n_label_columns=2,
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_") or "attribute"


def draw_null_band(
    ax: Any,
    audit: AuditData,
    temperatures: list[float],
    conditions: list[str],
    metric: str,
    attribute: str,
    scale: float,
    color: Any,
) -> bool:
    """Shade one DS line's null band (null mean to 95th percentile, in display units) and draw hollow
    markers on its points within the floor (p > level). False when the audit has no floor for it."""
    rows = [_row(audit, cid, metric, attribute) for cid in conditions]
    if all(r is None for r in rows):
        return False
    low = np.array([np.nan if r is None else float(r["null_mean"]) * scale for r in rows])
    high = np.array([np.nan if r is None else float(r["null_q95"]) * scale for r in rows])
    ax.fill_between(temperatures, low, high, color=color, alpha=0.13, linewidth=0)
    ax.plot(temperatures, low, color=color, linestyle=":", linewidth=1.0)
    within = [noise_mark(audit, cid, metric, attribute) == NOT_SIGNIFICANT for cid in conditions]
    if any(within):
        values = [audit.stat(cid, metric, attribute) for cid in conditions]
        xs = [t for t, w in zip(temperatures, within, strict=True) if w]
        ys = [v[0] * scale for v, w in zip(values, within, strict=True) if w and v is not None]
        ax.scatter(xs[: len(ys)], ys, s=42, facecolors="white", edgecolors=color, linewidths=1.4, zorder=5)
    return True


def band_legend(ax: Any) -> None:
    """Legend entries for the null band and the hollow (within the floor) markers."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Patch(facecolor="grey", alpha=0.25, label="noise floor: null mean to 95th pct"),
        Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="grey"),
    ]
    labels += ["noise floor: null mean to 95th pct", f"{NOT_SIGNIFICANT}: within the floor"]
    ax.legend(handles, labels, loc="best")


def figure_note(audit: AuditData) -> str:
    """The caption sentence of figures with null bands; empty without a noise floor."""
    info = audit.meta.get("noise_floor") or {}
    if not info.get("computed"):
        return ""
    return (
        " Shaded: each DS line's noise floor, from the mean to the 95th percentile of its value when the "
        f"attribute is permuted within each true class ({info['permutations']} permutations); hollow "
        f"markers: within the floor (p > {audit.level:g}), indistinguishable from sampling noise."
    )


def bar_band(ax: Any, audit: AuditData, x: float, condition: str, metric: str, attribute: str) -> bool:
    """Over one fairness bar (in %), a grey box from the null mean to its 95th percentile, hatched when the
    bar is within its floor. False when the audit has no floor for it."""
    row = _row(audit, condition, metric, attribute)
    if row is None or not math.isfinite(float(row["null_mean"])):
        return False
    within = noise_mark(audit, condition, metric, attribute) == NOT_SIGNIFICANT
    low, high = 100 * float(row["null_mean"]), 100 * float(row["null_q95"])
    ax.fill_between([x - 0.42, x + 0.42], low, high, color="grey", alpha=0.45, linewidth=0, zorder=4)
    ax.hlines(low, x - 0.42, x + 0.42, colors="black", linestyles=":", linewidth=1.0, zorder=4)
    if within:
        ax.text(x, high, NOT_SIGNIFICANT, ha="center", va="bottom", fontsize=6, zorder=5)
    return True


def bar_note(audit: AuditData) -> str:
    """The caption sentence of the BIRD bars with noise floors; empty without a noise floor."""
    info = audit.meta.get("noise_floor") or {}
    if not info.get("computed"):
        return ""
    return (
        " Grey boxes on the DEO bars: the noise floor, from the mean (dotted) to the 95th percentile of the "
        f"value when the attribute is permuted within each true class; {NOT_SIGNIFICANT}: within the floor "
        f"(p > {audit.level:g})."
    )
