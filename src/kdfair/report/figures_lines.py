"""Figures of quantities against the distillation temperature (paper 002 Figures 3-5, individual fairness).

DS conditions form one line per (method, alpha); the teacher and the NDS are horizontal reference lines with a
±1 std band. Fractions are plotted in percent; individual unfairness is unitless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kdfair.metrics.table import METRICS, axis_label
from kdfair.report.figstyle import NDS_STYLE, TEACHER_STYLE, Figure, new_figure, save_figure, series_style
from kdfair.report.figstyle import temperature_axis as _temperature_axis
from kdfair.report.health import fairness_mark, mark_points
from kdfair.report.knn import knn_notes
from kdfair.report.load import AuditData, Condition
from kdfair.report.noise import band_legend, draw_null_band, figure_note


def ds_series(audit: AuditData) -> list[tuple[str, list[Condition]]]:
    """DS conditions grouped by (method, alpha), each sorted by temperature, with a legend label."""
    groups: dict[tuple[str, float | None], list[Condition]] = {}
    for cond in audit.by_role("ds"):
        groups.setdefault((cond.method, cond.alpha), []).append(cond)
    single = len(groups) == 1
    out = []
    for (method, alpha), conds in groups.items():
        label = "DS" if single else f"DS {method} α={alpha:g}"
        out.append((label, sorted(conds, key=lambda c: c.temperature or 0.0)))
    return out


def _mean_std(audit: AuditData, conds: list[Condition], metric: str, attribute: str, scale: float):
    stats = [audit.stat(c.id, metric, attribute) for c in conds]
    mean = np.array([s[0] * scale if s else np.nan for s in stats])
    std = np.array([s[1] * scale if s else np.nan for s in stats])
    return mean, np.nan_to_num(std)


def metric_vs_temperature(ax: Any, audit: AuditData, metric: str, attribute: str, ylabel: str) -> bool:
    """Plot ``metric`` (mean ± std over seeds, in its METRICS display units) against T with teacher/NDS
    references; False when no DS condition has the metric (a plot against temperature needs DS runs)."""
    scale = METRICS[metric].scale
    series = ds_series(audit)
    drawn = banded = False
    for index, (label, conds) in enumerate(series):
        mean, std = _mean_std(audit, conds, metric, attribute, scale)
        if np.all(np.isnan(mean)):
            continue
        temps = [c.temperature for c in conds]
        ax.errorbar(temps, mean, yerr=std, capsize=3, label=label, **series_style(index, len(series)))
        mark_points(ax, audit, temps, mean, [c.id for c in conds], metric)  # † degenerate (report.health)
        color = series_style(index, len(series))["color"]  # the line's null band (report.noise)
        banded |= draw_null_band(ax, audit, temps, [c.id for c in conds], metric, attribute, scale, color)
        drawn = True
    for role, style, name in (("teacher", TEACHER_STYLE, "Teacher"), ("nds", NDS_STYLE, "NDS")):
        found = [audit.stat(c.id, metric, attribute) for c in audit.by_role(role)]
        if drawn and found and found[0] is not None:
            mean, std = found[0][0] * scale, np.nan_to_num(found[0][1] * scale)
            mark = fairness_mark(audit, audit.by_role(role)[0].id, metric)
            label = f"{name} (reference)" + (f" {mark} degenerate" if mark else "")
            ax.axhline(mean, color=style["color"], linestyle=style["linestyle"], label=label)
            ax.axhspan(mean - std, mean + std, color=style["color"], alpha=0.08)
    if drawn:
        _temperature_axis(ax, [c.temperature for _, conds in series for c in conds])
        ax.set_ylabel(ylabel)
        band_legend(ax) if banded else ax.legend(loc="best")
    return drawn


COUNT_STYLES = {"sc": ("#0072B2", "o", "#SC (NDS vs DS)"), "tc": ("#E69F00", "s", "#TC (teacher vs DS)")}


def _counts_by_condition(audit: AuditData) -> tuple[dict[str, Any], list[str]]:
    """significance_counts.csv rows by condition id, and the count keys (``sc``, ``tc``) it defines: #SC is
    undefined (empty) without NDS runs, #TC without teacher runs."""
    counts = audit.table("significance_counts")
    if counts is None:
        return {}, []
    keys = [k for k in COUNT_STYLES if k in counts.columns and counts[k].notna().any()]
    return {str(r["condition"]): r for _, r in counts.iterrows()}, keys


def _plot_counts(ax: Any, audit: AuditData, series: list, by_cond: dict[str, Any], keys: list[str]) -> None:
    for label, conds in series:
        temps = [c.temperature for c in conds]
        for key in keys:
            color, marker, name = COUNT_STYLES[key]
            for suffix, linestyle, tag in (("", "-", "raw"), ("_bh", "--", "BH")):
                values = [float(by_cond[c.id][key + suffix]) if c.id in by_cond else np.nan for c in conds]
                prefix = "" if len(series) == 1 else f"{label}: "
                ax.plot(
                    temps,
                    values,
                    color=color,
                    marker=marker,
                    linestyle=linestyle,
                    markerfacecolor="white" if suffix else color,
                    label=f"{prefix}{name}, {tag}",
                )
    _temperature_axis(ax, [c.temperature for _, conds in series for c in conds])
    ax.set_ylabel(f"significantly affected classes (of {audit.n_classes})")
    ax.set_title(f"(a) affected classes, p ≤ {audit.level:g}")
    ax.legend(loc="best")


def fig_significance(audit: AuditData, out_dir: Path) -> Figure | None:
    """Paper 002 Figure 3: #SC and #TC (raw and BH) and test accuracy against temperature.

    Only the counts the audit defines are drawn (no #SC without NDS runs, no #TC without teacher runs); with
    neither, the figure shows the accuracy panel alone.
    """
    series = ds_series(audit)
    if not series:
        return None
    by_cond, keys = _counts_by_condition(audit)
    fig, axes = new_figure(2 if keys else 1, 1, width=11 if keys else 6, height=4.2)
    if keys:
        _plot_counts(axes[0, 0], audit, series, by_cond, keys)
    accuracy_ax = axes[0, -1]
    metric_vs_temperature(accuracy_ax, audit, "accuracy", "", axis_label("accuracy", direction=False))
    accuracy_ax.set_title("(b) test accuracy" if keys else "test accuracy")
    png, svg = save_figure(fig, out_dir, "fig3_significance_vs_temperature")
    missing = [
        f"no {who} runs, so {name} is not shown"
        for key, who, name in (("sc", "NDS", "#SC"), ("tc", "teacher", "#TC"))
        if key not in keys
    ]
    left = (
        "Left: how many classes change significantly when distilling at each temperature, compared with "
        + " and ".join(
            {"sc": "the student trained from scratch (#SC)", "tc": "the teacher (#TC)"}[k] for k in keys
        )
        + "; solid lines count raw p-values, dashed lines after Benjamini-Hochberg correction. Right: "
        if keys
        else ""
    )
    note = f" The audit has {' and '.join(missing)}." if missing else ""
    return Figure(
        name="fig3_significance_vs_temperature",
        title="Figure 3: Temperature vs affected classes and accuracy",
        caption=f"{left}{'the' if keys else 'The'} distilled student's test accuracy (mean ± std over "
        f"seeds), with the teacher and the non-distilled student, where present, as horizontal "
        f"references.{note}",
        png=png,
        svg=svg,
        meta={"counts": keys},
    )


def two_panel(audit: AuditData, out_dir: Path, name: str, panels: list[tuple[str, str]]):
    """One panel per (metric, attribute), titled with the metric's axis label and direction (METRICS)."""
    fig, axes = new_figure(len(panels), 1, width=11, height=4.0)
    drawn = False
    for ax, (metric, attribute) in zip(axes[0], panels, strict=True):
        ylabel = axis_label(metric)
        drawn |= metric_vs_temperature(ax, audit, metric, attribute, ylabel)
        ax.set_title(ylabel)
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    return save_figure(fig, out_dir, name)


def fig_group_fairness(audit: AuditData, out_dir: Path, attribute: str) -> Figure | None:
    """Paper 002 Figures 4-5: EOD and DPD (%) against temperature for one attribute."""
    if not (audit.has_metric("eod", attribute) or audit.has_metric("dpd", attribute)):
        return None
    slug = "".join(ch if ch.isalnum() else "_" for ch in attribute.lower())
    name = f"fig4_fairness_{slug}"
    paths = two_panel(
        audit,
        out_dir,
        name,
        [("eod", attribute), ("dpd", attribute)],
    )
    if paths is None:
        return None
    return Figure(
        name=name,
        title=f"Figures 4-5: Group fairness vs temperature, attribute '{attribute}'",
        caption=f"Equalized odds difference (left) and demographic parity difference (right) between the "
        f"'{attribute}' groups, in percent, for the distilled student at each temperature (mean ± std over "
        "seeds). Horizontal lines: the teacher and the non-distilled student. Lower is fairer."
        + figure_note(audit),
        png=paths[0],
        svg=paths[1],
    )


def fig_individual_fairness(audit: AuditData, out_dir: Path) -> Figure | None:
    """Individual unfairness (unitless) and consistency (%) against temperature."""
    if not (audit.has_metric("individual_unfairness") or audit.has_metric("consistency")):
        return None
    name = "fig6_individual_fairness"
    paths = two_panel(
        audit,
        out_dir,
        name,
        [("individual_unfairness", ""), ("consistency", "")],
    )
    if paths is None:
        return None
    return Figure(
        name=name,
        title="Individual fairness vs temperature",
        caption="Left: how much the predicted probabilities differ between a test sample and its nearest "
        "neighbours, per unit of (normalised) distance; lower is fairer. Right: consistency, the "
        "agreement of "
        "a prediction with its neighbours' predictions, in percent; higher is fairer. "
        + " ".join(knn_notes(audit)),  # the neighbours' space (the teacher's?) and what the pairs share
        png=paths[0],
        svg=paths[1],
    )
