"""Learning curves: training loss and accuracy per epoch, per condition, mean over seeds.

Input: the audit's ``learning_curves.csv`` (``condition, seed, epoch, train_loss, train_acc, lr``; copied
from each run folder's ``epochs.csv`` by ``kdfair audit``). A condition whose students had not converged
(audit.json ``convergence``) is labelled so in the legend. The figure is left out without curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kdfair.report.figstyle import NDS_STYLE, TEACHER_STYLE, Figure, new_figure, save_figure, series_style
from kdfair.report.health import unconverged_conditions
from kdfair.report.load import AuditData, Condition

NAME = "fig8_learning_curves"
LOG_SCALE_SPAN = 20.0  # the loss axis is logarithmic when the plotted means span more than this factor


def mean_curves(curves: pd.DataFrame, condition: str, column: str) -> pd.DataFrame:
    """Per epoch of ``condition``: ``mean`` and ``std`` (ddof 1; 0 with one seed) of ``column`` over the
    seeds that have that epoch, and ``n`` (how many seeds)."""
    mine = curves[(curves["condition"] == condition) & curves[column].notna()]
    grouped = mine.groupby("epoch", sort=True)[column]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, n="count")
    return out.reset_index()


def _style(cond: Condition, index: int, n_ds: int) -> dict[str, Any]:
    if cond.role == "teacher":
        return dict(TEACHER_STYLE)
    if cond.role == "nds":
        return dict(NDS_STYLE)
    return series_style(index, n_ds)


def _label(cond: Condition, flagged: dict[str, dict[str, Any]]) -> str:
    entry = flagged.get(cond.id)
    if entry is None:
        return cond.label
    return f"{cond.label} (not converged {len(entry['unconverged_seeds'])}/{entry['seeds_with_curves']})"


def _panel(
    ax: Any, audit: AuditData, curves: pd.DataFrame, column: str, scale: float, conds: list[Condition]
) -> bool:
    """One panel: ``column`` (times ``scale``) per epoch, one line per condition with a ±1 std band."""
    flagged = unconverged_conditions(audit)
    ds = [c for c in conds if c.role == "ds"]
    drawn, lows, highs = False, [], []
    for cond in conds:
        stats = mean_curves(curves, cond.id, column)
        if not len(stats):
            continue
        style = _style(cond, ds.index(cond) if cond in ds else 0, len(ds))
        epochs, mean, std = stats["epoch"], stats["mean"] * scale, stats["std"] * scale
        every = max(1, len(epochs) // 10)
        ax.plot(epochs, mean, markevery=every, markersize=4, label=_label(cond, flagged), **style)
        ax.fill_between(epochs, mean - std, mean + std, color=style["color"], alpha=0.12, linewidth=0)
        lows.append(float(mean.min()))
        highs.append(float(mean.max()))
        drawn = True
    if drawn and column == "train_loss" and min(lows) > 0 and max(highs) / min(lows) > LOG_SCALE_SPAN:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    return drawn


def fig_learning_curves(audit: AuditData, out_dir: Path) -> Figure | None:
    """Training loss and training accuracy (%) per epoch, per condition, mean ± std over seeds."""
    curves = audit.table("learning_curves")
    if curves is None or not len(curves):
        return None
    curves = curves.assign(condition=curves["condition"].astype(str))
    conds = [c for c in audit.conditions if c.id in set(curves["condition"])]
    has_acc = "train_acc" in curves.columns and curves["train_acc"].notna().any()
    fig, axes = new_figure(2 if has_acc else 1, 1, width=12 if has_acc else 7, height=4.4)
    if not _panel(axes[0, 0], audit, curves, "train_loss", 1.0, conds):
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    axes[0, 0].set_ylabel("training loss (the method's objective)")
    axes[0, 0].set_title("(a) training loss" if has_acc else "training loss")
    if has_acc:
        _panel(axes[0, 1], audit, curves, "train_acc", 100.0, conds)
        axes[0, 1].set_ylabel("training accuracy (%)")
        axes[0, 1].set_title("(b) training accuracy")
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), ncols=1 if len(conds) <= 16 else 2)
    png, svg = save_figure(fig, out_dir, NAME)
    flagged = unconverged_conditions(audit)
    warning = (
        f" {len(flagged)} condition(s) had not converged by the audit's criterion and are labelled so."
        if flagged
        else " Every condition with curves met the audit's convergence criterion."
    )
    return Figure(
        name=NAME,
        title="Learning curves",
        caption="Training loss and training accuracy per epoch (mean over seeds; band: ±1 std), from each "
        "run's epochs.csv. The loss is each method's own objective (a DS's includes the T²-scaled "
        "distillation term), so its level differs between conditions; its shape shows whether training "
        f"had levelled off.{warning} The lr per epoch is in the audit's learning_curves.csv.",
        png=png,
        svg=svg,
        meta={"conditions": [c.id for c in conds], "unconverged": sorted(flagged)},
    )
