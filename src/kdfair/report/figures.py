"""Class-wise figures (paper 002 Figures 1-2), BIRD bars (paper 004), and :func:`build_figures`.

With many classes the figures stay legible: Figure 1 shows the ``top_k`` classes with the largest
|mean change| of normalised class accuracy (NDS vs DS) plus a histogram of all classes' changes;
Figure 2 shows
the ``heatmap_k`` classes with the most teacher-student disagreement, on a log colour scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from tqdm import tqdm

from kdfair.report import figures_lines
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
from kdfair.report.load import AuditData
from kdfair.report.tables_bird import by_method

TOP_K_CLASSES = 15
HEATMAP_CLASSES = 30


def top_classes(audit: AuditData, conditions: list[str], k: int) -> list[int]:
    """The ``k`` classes with the largest max over ``conditions`` of |mean_change| (NDS vs DS), by index."""
    if audit.n_classes <= k:
        return list(range(audit.n_classes))
    tests = audit.table("class_tests")
    nds = tests[(tests["comparison"] == "nds_vs_ds") & tests["condition"].isin(conditions)]
    score = nds.assign(abs_change=nds["mean_change"].abs()).groupby("class")["abs_change"].max()
    ranked = score.sort_values(ascending=False, kind="stable").index[:k]
    return sorted(int(c) for c in ranked)


def fig_class_accuracy(audit: AuditData, out_dir: Path, top_k: int = TOP_K_CLASSES) -> Figure | None:
    """Paper 002 Figure 1: mean class accuracy (%) of teacher, NDS and DS(T), affected classes marked ×."""
    class_acc, tests, series = (
        audit.table("class_accuracy"),
        audit.table("class_tests"),
        figures_lines.ds_series(audit),
    )
    if class_acc is None or tests is None or not series:
        return None
    label, ds = max(series, key=lambda s: len(s[1]))
    columns = [c for c in (audit.by_role("teacher")[:1] + audit.by_role("nds")[:1] + ds)]
    ids = [c.id for c in columns]
    classes = top_classes(audit, [c.id for c in ds], top_k)
    means = class_acc[class_acc["condition"].isin(ids)].groupby(["condition", "class"])["accuracy"].mean()
    nds_tests = tests[tests["comparison"] == "nds_vs_ds"].set_index(["condition", "class"])
    fig, axes = new_figure(2, 1, width=12, height=4.6)
    ax = axes[0, 0]
    x = np.arange(len(columns))
    names = audit.class_names
    for index, cls in enumerate(classes):
        y = [100.0 * means.get((cid, cls), np.nan) for cid in ids]
        ax.plot(x, y, linewidth=1.2, markersize=4, label=names[cls], **series_style(index, len(classes)))
        sig = [
            i
            for i, c in enumerate(columns)
            if c.role == "ds" and bool(nds_tests["significant"].get((c.id, cls), False))
        ]
        ax.scatter(x[sig], np.asarray(y)[sig], marker="x", s=70, color="black", zorder=5, linewidths=1.8)
    ax.scatter([], [], marker="x", color="black", label="significant vs NDS")
    ax.set_xticks(
        x,
        [
            "Teacher" if c.role == "teacher" else "NDS" if c.role == "nds" else f"T={c.temperature:g}"
            for c in columns
        ],
        rotation=45,
    )
    ax.set_ylabel("class accuracy (%)")
    shown = (
        "all classes"
        if len(classes) == audit.n_classes
        else f"top {len(classes)} of {audit.n_classes} classes"
    )
    ax.set_title(f"(a) {label}: {shown}")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), ncols=1 if len(classes) <= 15 else 2)
    _change_histogram(axes[0, 1], tests, [c.id for c in ds], audit.level)
    png, svg = save_figure(fig, out_dir, "fig1_class_accuracy")
    return Figure(
        name="fig1_class_accuracy",
        title="Figure 1: Class accuracy per temperature",
        caption=f"Left: mean test accuracy of each class ({shown}, chosen by the largest change against the "
        "non-distilled student) for the teacher, the non-distilled student (NDS) and the "
        "distilled student at "
        "each temperature; × marks a class whose normalised accuracy differs significantly from the NDS "
        f"(two-sided Welch t-test, p ≤ {audit.level:g}). Right: the change in normalised accuracy of every "
        "class at every temperature, significant changes hatched.",
        png=png,
        svg=svg,
        meta={"classes_shown": classes, "series": label},
    )


def _change_histogram(ax, tests, conditions: list[str], level: float) -> None:
    nds = tests[(tests["comparison"] == "nds_vs_ds") & tests["condition"].isin(conditions)]
    change = 100.0 * nds["mean_change"].to_numpy(dtype=float)
    sig = nds["significant"].astype(bool).to_numpy()
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
    ax.set_xlabel("Δ normalised class accuracy, DS − NDS (pp)")
    ax.set_ylabel("classes × temperatures")
    ax.set_title(f"(b) all {nds['class'].nunique()} classes")
    ax.legend(loc="best")


def _disagreement_condition(audit: AuditData) -> str | None:
    ds = audit.by_role("ds")
    counts = audit.table("significance_counts")
    if not ds:
        return None
    if counts is None:
        return ds[-1].id
    sc = {str(r["condition"]): int(r["sc"]) for _, r in counts.iterrows()}
    return max(ds, key=lambda c: sc.get(c.id, -1)).id


def fig_disagreement(audit: AuditData, out_dir: Path, top_k: int = HEATMAP_CLASSES) -> Figure | None:
    """Paper 002 Figure 2: teacher vs NDS and teacher vs DS disagreement counts (off-diagonal, log scale)."""
    nds, ds_id = audit.by_role("nds"), _disagreement_condition(audit)
    if not nds or ds_id is None:
        return None
    mats = [audit.disagreement(nds[0].id), audit.disagreement(ds_id)]
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
    fig, axes = new_figure(2, 1, width=12, height=5.6)
    ds_label = next(c.label for c in audit.conditions if c.id == ds_id)
    names = [audit.class_names[c] for c in classes]
    for ax, sub, title in zip(
        axes[0], subs, ["(a) teacher vs NDS", f"(b) teacher vs {ds_label}"], strict=True
    ):
        shown = np.where(sub > 0, sub, np.nan)
        np.fill_diagonal(shown, np.nan)
        image = ax.imshow(shown, cmap="viridis", norm=norm, interpolation="nearest", rasterized=True)
        ax.grid(False)
        ticks = np.arange(len(classes)) if len(classes) <= 30 else np.arange(0, len(classes), 5)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=7)
        ax.set_xlabel("student prediction")
        ax.set_ylabel("teacher prediction")
        ax.set_title(title)
    fig.colorbar(image, ax=axes[0].tolist(), label="test samples (seed mean, log scale)", shrink=0.85)
    png, svg = save_figure(fig, out_dir, "fig2_disagreement")
    which = (
        "all classes"
        if len(classes) == n
        else f"the {len(classes)} of {n} classes with the most disagreement"
    )
    return Figure(
        name="fig2_disagreement",
        title="Figure 2: Teacher-student disagreement",
        caption=f"How often the teacher predicts the row class while the student predicts the column class "
        f"({which}; diagonal left blank; blank cells: no disagreement). Left: the non-distilled "
        f"student; right: "
        f"the distilled student {ds_label} (the temperature with the most affected classes).",
        png=png,
        svg=svg,
        meta={"classes_shown": [int(c) for c in classes], "condition": ds_id},
    )


def fig_bird(audit: AuditData, out_dir: Path, attribute: str) -> Figure | None:
    """BIRD bars: AUROC, F1, mean-DEO, max-DEO (%) per condition, grouped and hatched by method."""
    metrics = [("auroc", "", "AUROC (%) ↑"), ("f1", "", "F1 (%) ↑")]
    metrics += (
        [("deo_mean", attribute, "mean-DEO (%) ↓"), ("deo_max", attribute, "max-DEO (%) ↓")]
        if attribute
        else []
    )
    metrics = [m for m in metrics if audit.has_metric(m[0], m[1])]
    if not metrics:
        return None
    conds = by_method(audit)
    methods = sorted({c.method for c in conds if c.role == "ds"})
    fig, axes = new_figure(len(metrics), 1, width=3.2 * len(metrics) + 1.5, height=4.2)
    x = np.arange(len(conds))
    for ax, (metric, attr, title) in zip(axes[0], metrics, strict=True):
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
                100 * found[0],
                yerr=np.nan_to_num(100 * found[1]),
                color=color,
                capsize=2,
                hatch=HATCHES[(k + 1) % len(HATCHES)],
                edgecolor="white" if k < 0 else "black",
                linewidth=0.4,
            )
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
        "condition, grouped by method; bars show the mean and error bars the std over seeds, in percent.",
        png=png,
        svg=svg,
    )


def build_figures(
    audit: AuditData, out_dir: Path, top_k: int = TOP_K_CLASSES
) -> tuple[list[Figure], list[str]]:
    """Render every figure the audit supports into ``out_dir``; return them and notes on those left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("Figure 1 (class accuracy)", lambda: fig_class_accuracy(audit, out_dir, top_k)),
        ("Figure 2 (disagreement)", lambda: fig_disagreement(audit, out_dir)),
        (
            "Figure 3 (affected classes vs temperature)",
            lambda: figures_lines.fig_significance(audit, out_dir),
        ),
    ]
    for attribute in audit.attributes:
        jobs.append(
            (
                f"Figures 4-5 for '{attribute}'",
                lambda a=attribute: figures_lines.fig_group_fairness(audit, out_dir, a),
            )
        )
    jobs.append(("Individual fairness figure", lambda: figures_lines.fig_individual_fairness(audit, out_dir)))
    for attribute in audit.attributes or [""]:
        jobs.append((f"BIRD bars for '{attribute or '-'}'", lambda a=attribute: fig_bird(audit, out_dir, a)))
    figures, omitted = [], []
    for what, job in tqdm(jobs, desc="report figures", unit="figure", disable=None, leave=False):
        figure = job()
        if figure is None:
            omitted.append(f"{what} omitted: its inputs are absent from the audit.")
        else:
            figures.append(figure)
    return figures, omitted
