"""Class-wise figures (paper 002 Figures 1-2), BIRD bars (paper 004), and :func:`build_figures`.

With many classes the figures stay legible: Figure 1 shows the ``top_k`` classes with the largest
|mean change| of normalised class accuracy (NDS vs DS; teacher vs DS without NDS runs) plus a histogram of
all classes' changes; Figure 2 shows the ``top_k`` classes with the most teacher-student disagreement, on a
log colour scale. A figure whose inputs are absent (e.g. Figure 2 without teacher runs) is left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from tqdm import tqdm

import kdfair.report.figures_curves as figures_curves
import kdfair.report.figures_lines as figures_lines
from kdfair.metrics.table import METRICS, arrow_label
from kdfair.report.counterfactual import fig_counterfactual, twin_attributes
from kdfair.report.figstyle import (
    HATCHES,
    NDS_STYLE,
    OKABE_ITO,
    TEACHER_STYLE,
    Figure,
    new_figure,
    save_figure,
    series_style,
)
from kdfair.report.health import annotate_captions, mark_bar
from kdfair.report.load import AuditData, Condition
from kdfair.report.noise import bar_band, bar_note
from kdfair.report.tables_bird import DEO_METRICS, PERFORMANCE_METRICS, by_method

TOP_K_CLASSES = 15
HEATMAP_CLASSES = 30


COMPARISONS = (("nds_vs_ds", "NDS"), ("teacher_vs_ds", "teacher"))


def class_comparison(audit: AuditData) -> tuple[str, str] | None:
    """The class-test comparison Figure 1 marks, and its reference's name: NDS vs DS (the paper's), or
    teacher vs DS when the audit has no NDS runs; None when ``class_tests.csv`` has neither."""
    tests = audit.table("class_tests")
    if tests is None:
        return None
    present = set(tests["comparison"].astype(str))
    return next(((c, name) for c, name in COMPARISONS if c in present), None)


def top_classes(audit: AuditData, conditions: list[str], k: int, comparison: str = "nds_vs_ds") -> list[int]:
    """The ``k`` classes with the largest max over ``conditions`` of |mean_change| in ``comparison``."""
    if audit.n_classes <= k:
        return list(range(audit.n_classes))
    tests = audit.table("class_tests")
    mine = tests[(tests["comparison"] == comparison) & tests["condition"].isin(conditions)]
    score = mine.assign(abs_change=mine["mean_change"].abs()).groupby("class")["abs_change"].max()
    ranked = score.sort_values(ascending=False, kind="stable").index[:k]
    return sorted(int(c) for c in ranked)


def _column_name(cond: Condition) -> str:
    return {"teacher": "Teacher", "nds": "NDS"}.get(cond.role) or f"T={cond.temperature:g}"


def fig_class_accuracy(audit: AuditData, out_dir: Path, top_k: int = TOP_K_CLASSES) -> Figure | None:
    """Paper 002 Figure 1: mean class accuracy (%) of teacher, NDS and DS(T), affected classes marked ×.

    Affected: significant in the Welch test of normalised class accuracy against the NDS, or against the
    teacher when the audit has no NDS (:func:`class_comparison`). Right panel: histogram of every class's
    change of normalised class accuracy r_c (a ratio, unitless) at every temperature.
    """
    class_acc, tests, series = (
        audit.table("class_accuracy"),
        audit.table("class_tests"),
        figures_lines.ds_series(audit),
    )
    found = class_comparison(audit)
    if class_acc is None or found is None or not series:
        return None
    comparison, reference = found
    label, ds = max(series, key=lambda s: len(s[1]))
    columns = audit.by_role("teacher")[:1] + audit.by_role("nds")[:1] + ds
    ids = [c.id for c in columns]
    classes = top_classes(audit, [c.id for c in ds], top_k, comparison)
    means = class_acc[class_acc["condition"].isin(ids)].groupby(["condition", "class"])["accuracy"].mean()
    marked = tests[tests["comparison"] == comparison].set_index(["condition", "class"])["significant"]
    fig, axes = new_figure(2, 1, width=12, height=4.6)
    ax = axes[0, 0]
    x = np.arange(len(columns))
    names = audit.class_names
    for index, cls in enumerate(classes):
        y = [100.0 * means.get((cid, cls), np.nan) for cid in ids]
        ax.plot(x, y, linewidth=1.2, markersize=4, label=names[cls], **series_style(index, len(classes)))
        sig = [i for i, c in enumerate(columns) if c.role == "ds" and bool(marked.get((c.id, cls), False))]
        ax.scatter(x[sig], np.asarray(y)[sig], marker="x", s=70, color="black", zorder=5, linewidths=1.8)
    ax.scatter([], [], marker="x", color="black", label=f"significant vs {reference}")
    ax.set_xticks(x, [_column_name(c) for c in columns], rotation=45)
    ax.set_ylabel("class accuracy (%)")
    all_shown = len(classes) == audit.n_classes
    shown = "all classes" if all_shown else f"top {len(classes)} of {audit.n_classes} classes"
    ax.set_title(f"(a) {label}: {shown}")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), ncols=1 if len(classes) <= 15 else 2)
    _change_histogram(axes[0, 1], tests, [c.id for c in ds], audit.level, comparison, reference)
    png, svg = save_figure(fig, out_dir, "fig1_class_accuracy")
    which = (
        f"all {audit.n_classes} classes"
        if all_shown
        else f"the {len(classes)} of {audit.n_classes} classes whose normalised accuracy changes most "
        f"against the {reference} at any temperature"
    )
    refs = [("teacher", "the teacher"), ("nds", "the non-distilled student (NDS)")]
    models = ", ".join(text for role, text in refs if audit.by_role(role))
    no_nds = "" if reference == "NDS" else " (the audit has no NDS runs, so DS is compared with the teacher)"
    return Figure(
        name="fig1_class_accuracy",
        title="Figure 1: Class accuracy per temperature",
        caption=f"Left: mean test accuracy of each class ({which}) for {models} and the distilled student "
        f"at each temperature; × marks a class whose normalised accuracy differs significantly from the "
        f"{reference}{no_nds} (two-sided Welch t-test, p ≤ {audit.level:g}). Right: for every class and "
        f"temperature, the change of normalised class accuracy r_c (class accuracy divided by the "
        f"model's overall accuracy, a unitless ratio) against the {reference}; significant changes hatched.",
        png=png,
        svg=svg,
        meta={"classes_shown": classes, "series": label, "comparison": comparison},
    )


def _change_histogram(
    ax, tests, conditions: list[str], level: float, comparison: str, reference: str
) -> None:
    mine = tests[(tests["comparison"] == comparison) & tests["condition"].isin(conditions)]
    change = mine["mean_change"].to_numpy(dtype=float)  # change of r_c, a ratio: not in percent
    sig = mine["significant"].astype(bool).to_numpy()
    bins = np.histogram_bin_edges(change[np.isfinite(change)], bins=30)
    ax.hist(
        [change[~sig], change[sig]],
        bins=bins,
        stacked=True,
        color=[OKABE_ITO[4], OKABE_ITO[5]],
        hatch=None,
        label=["not significant", f"significant (p ≤ {level:g})"],
        edgecolor="black",
        linewidth=0.3,
    )
    for patch in ax.containers[1]:
        patch.set_hatch("//")
    ax.set_xlabel(f"Δ normalised class accuracy r_c, DS − {reference} (ratio, unitless)")
    ax.set_ylabel("classes × temperatures")
    ax.set_title(f"(b) all {mine['class'].nunique()} classes")
    ax.legend(loc="best")


def _disagreement_condition(audit: AuditData) -> tuple[str, str] | None:
    """The DS shown in Figure 2 and why: the one with the largest #SC, else (no NDS) the largest #TC, else
    the last DS; None without DS conditions."""
    ds = audit.by_role("ds")
    if not ds:
        return None
    counts = audit.table("significance_counts")
    for key, why in (("sc", "the most classes affected against the NDS, #SC"), ("tc", "the largest #TC")):
        if counts is None or key not in counts.columns:
            break
        score = {str(r["condition"]): float(r[key]) for _, r in counts.iterrows() if pd.notna(r[key])}
        if score:
            return max(ds, key=lambda c: score.get(c.id, -1.0)).id, why
    return ds[-1].id, "the last temperature"


def fig_disagreement(audit: AuditData, out_dir: Path, top_k: int = HEATMAP_CLASSES) -> Figure | None:
    """Paper 002 Figure 2: teacher vs NDS and teacher vs DS disagreement counts (off-diagonal, log scale).

    Needs teacher runs (the matrices are teacher vs student); without NDS runs only the DS panel is drawn.
    """
    chosen = _disagreement_condition(audit)
    if chosen is None:
        return None
    ds_id, why = chosen
    ds_label = next(c.label for c in audit.conditions if c.id == ds_id)
    panels = [(c.id, "teacher vs NDS") for c in audit.by_role("nds")[:1]] + [
        (ds_id, f"teacher vs {ds_label}")
    ]
    mats = [audit.disagreement(cid) for cid, _ in panels]
    if any(m is None for m in mats):
        return None
    n = mats[0].shape[0]
    for m in mats:
        np.fill_diagonal(m, 0.0)
    total = sum(m.sum(axis=0) + m.sum(axis=1) for m in mats)
    classes = np.arange(n) if n <= top_k else np.sort(np.argsort(-total, kind="stable")[:top_k])
    subs = [m[np.ix_(classes, classes)].astype(float) for m in mats]
    positive = np.concatenate([s[s > 0] for s in subs])
    norm = (
        LogNorm(vmin=max(positive.min(), 1e-3), vmax=max(positive.max(), 1e-3 * 10))
        if positive.size
        else None
    )
    fig, axes = new_figure(len(panels), 1, width=6.5 * len(panels) - 1, height=5.6)
    names = [audit.class_names[c] for c in classes]
    letters = "ab" if len(panels) == 2 else "a"
    for ax, sub, (_, title), letter in zip(axes[0], subs, panels, letters, strict=True):
        shown = np.where(sub > 0, sub, np.nan)
        np.fill_diagonal(shown, np.nan)
        image = ax.imshow(shown, cmap="viridis", norm=norm, interpolation="nearest", rasterized=True)
        ax.grid(False)
        ticks = np.arange(len(classes)) if len(classes) <= 30 else np.arange(0, len(classes), 5)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=7)
        ax.set_xlabel("student prediction")
        ax.set_ylabel("teacher prediction")
        ax.set_title(f"({letter}) {title}")
    fig.colorbar(image, ax=axes[0].tolist(), label="test samples (seed mean, log scale)", shrink=0.85)
    png, svg = save_figure(fig, out_dir, "fig2_disagreement")
    which = (
        "all classes"
        if len(classes) == n
        else f"the {len(classes)} of {n} classes with the most disagreement"
    )
    sides = (
        f"Left: the non-distilled student; right: the distilled student {ds_label}"
        if len(panels) == 2
        else f"The audit has no NDS runs, so only the distilled student {ds_label} is shown"
    )
    return Figure(
        name="fig2_disagreement",
        title="Figure 2: Teacher-student disagreement",
        caption=f"How often the teacher predicts the row class while the student predicts the column class "
        f"({which}; diagonal left blank; blank cells: no disagreement). {sides} (the temperature with "
        f"{why}).",
        png=png,
        svg=svg,
        meta={
            "classes_shown": [int(c) for c in classes],
            "condition": ds_id,
            "panels": [p for p, _ in panels],
        },
    )


def fig_bird(audit: AuditData, out_dir: Path, attribute: str) -> Figure | None:
    """BIRD bars: AUROC, F1, mean-DEO, max-DEO (%) per condition, grouped and hatched by method."""
    metrics = [(m, "") for m in PERFORMANCE_METRICS] + [(m, attribute) for m in DEO_METRICS if attribute]
    metrics = [(m, a, arrow_label(m)) for m, a in metrics if audit.has_metric(m, a)]
    if not metrics:
        return None
    conds = by_method(audit)
    methods = sorted({c.method for c in conds if c.role == "ds"})
    fig, axes = new_figure(len(metrics), 1, width=3.2 * len(metrics) + 1.5, height=4.2)
    x = np.arange(len(conds))
    for ax, (metric, attr, title) in zip(axes[0], metrics, strict=True):
        scale = METRICS[metric].scale
        for i, c in enumerate(conds):
            found = audit.stat(c.id, metric, attr)
            if found is None:
                continue
            k = methods.index(c.method) if c.role == "ds" else -1
            color = (
                TEACHER_STYLE["color"]
                if c.role == "teacher"
                else NDS_STYLE["color"]
                if k < 0
                else OKABE_ITO[k % 5]
            )
            ax.bar(
                i,
                scale * found[0],
                yerr=np.nan_to_num(scale * found[1]),
                color=color,
                capsize=2,
                hatch=HATCHES[(k + 1) % len(HATCHES)],
                edgecolor="white" if k < 0 else "black",
                linewidth=0.4,
            )
            top = scale * found[0] + np.nan_to_num(scale * found[1])
            mark_bar(ax, audit, i, top, c.id, metric)  # † on a degenerate condition's fairness bar
            bar_band(ax, audit, i, c.id, metric, attr)  # the DEO bar's noise floor (report.noise)
        ax.set_xticks(
            x,
            [
                "Teacher"
                if c.role == "teacher"
                else "NDS"
                if c.role == "nds"
                else f"{c.method} T={c.temperature:g}"
                for c in conds
            ],
            rotation=90,
            fontsize=7,
        )
        ax.set_title(title)
    name = f"fig7_bird_{''.join(ch if ch.isalnum() else '_' for ch in attribute.lower()) or 'methods'}"
    png, svg = save_figure(fig, out_dir, name)
    where = f" for the attribute '{attribute}'" if attribute else ""
    return Figure(
        name=name,
        title=f"BIRD comparison per method{where}",
        caption="Predictive performance (AUROC, F1: higher is better) and fairness (mean-DEO, max-DEO: the "
        "largest accuracy gap between groups, averaged over or maximised over classes; lower is "
        "fairer) of every "
        "condition, grouped by method; bars show the mean and error bars the std over seeds, in percent."
        + bar_note(audit),
        png=png,
        svg=svg,
    )


def build_figures(
    audit: AuditData, out_dir: Path, top_k: int = TOP_K_CLASSES
) -> tuple[list[Figure], list[str]]:
    """Render every figure the audit supports into ``out_dir``; return them and notes on those left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            "Figure 1 (class accuracy; needs DS runs and teacher or NDS runs)",
            lambda: fig_class_accuracy(audit, out_dir, top_k),
        ),
        ("Figure 2 (disagreement; needs teacher and DS runs)", lambda: fig_disagreement(audit, out_dir)),
        (
            "Figure 3 (affected classes vs temperature; needs DS runs)",
            lambda: figures_lines.fig_significance(audit, out_dir),
        ),
    ]
    for attribute in audit.attributes:
        jobs.append(
            (
                f"Figures 4-5 for '{attribute}' (needs DS runs with EOD or DPD)",
                lambda a=attribute: figures_lines.fig_group_fairness(audit, out_dir, a),
            )
        )
    jobs.append(
        (
            "Individual fairness figure (needs DS runs with its metrics)",
            lambda: figures_lines.fig_individual_fairness(audit, out_dir),
        )
    )
    for attribute in twin_attributes(audit):  # counterfactual unfairness and flips vs T
        draw = lambda a=attribute: fig_counterfactual(audit, out_dir, a)  # noqa: E731
        jobs.append((f"Counterfactual figure for '{attribute}' (needs DS runs with twins)", draw))
    for attribute in audit.attributes or [""]:
        jobs.append((f"BIRD bars for '{attribute or '-'}'", lambda a=attribute: fig_bird(audit, out_dir, a)))
    jobs.append(
        (
            "Learning curves (need epochs.csv in the run folders)",
            lambda: figures_curves.fig_learning_curves(audit, out_dir),
        )
    )
    figures, omitted = [], []
    for what, job in tqdm(jobs, desc="report figures", unit="figure", disable=None, leave=False):
        figure = job()
        if figure is None:
            omitted.append(f"{what} omitted: its inputs are absent from the audit.")
        else:
            figures.append(figure)
    annotate_captions(audit, figures)  # the † note on figures with fairness numbers (report.health)
    return figures, omitted
