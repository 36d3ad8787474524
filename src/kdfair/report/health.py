"""Run health in the report: degenerate predictors and unconverged training (kdfair.audit.health).

Read from ``audit.json`` ``degenerate`` and ``convergence`` (written by ``kdfair audit``; an older audit
without them gets a note asking to re-run the audit). What the report does with them:

- every fairness number (DPD, EOD, mean-/max-DEO, individual and counterfactual fairness, and the Δ DEO of
  the teacher-vs-student table) of a degenerate condition carries the mark ``†`` (:data:`MARK`) in the
  tables (Markdown, LaTeX, the CSV's ``<column> mark`` column) and the figures, with a note saying which
  conditions and why; the report has no ranking, bold or "best" cell, so a marked value is never presented
  as fairest without its mark;
- every table gets a note naming the conditions whose students had not converged, and the page opens its
  warnings with a box listing both kinds of condition.
"""

from __future__ import annotations

import html
from typing import Any

from kdfair.degenerate import MARK
from kdfair.metrics.table import METRICS
from kdfair.report.load import AuditData

FIGURE_PREFIXES = ("fig4_", "fig6_", "fig7_", "fig9_")  # figures that draw fairness numbers


def is_fairness_metric(metric: str) -> bool:
    """True for the metrics a degenerate predictor makes look fair: near 0 (consistency near 100 %) for a
    constant predictor; the ``kind`` "fairness" entries of :data:`kdfair.metrics.table.METRICS`."""
    entry = METRICS.get(metric)
    return entry is not None and entry.kind == "fairness"


def degenerate_conditions(audit: AuditData) -> dict[str, dict[str, Any]]:
    """Condition id -> ``{"degenerate_seeds": [...], "n_seeds": n}`` for each degenerate condition."""
    entry = audit.meta.get("degenerate")
    return dict(entry.get("conditions") or {}) if isinstance(entry, dict) else {}


def unconverged_conditions(audit: AuditData) -> dict[str, dict[str, Any]]:
    """Condition id -> ``{"converged_seeds", "seeds_with_curves", "n_seeds", "unconverged_seeds"}`` for each
    condition with at least one seed whose training had not converged."""
    entry = audit.meta.get("convergence")
    conditions = (entry.get("conditions") or {}) if isinstance(entry, dict) else {}
    return {cid: e for cid, e in conditions.items() if e.get("unconverged_seeds")}


def fairness_mark(audit: AuditData, condition: str, metric: str) -> str:
    """:data:`MARK` when ``metric`` is a fairness number of a degenerate ``condition``, else ``""``."""
    return MARK if is_fairness_metric(metric) and condition in degenerate_conditions(audit) else ""


def _label(audit: AuditData, cid: str) -> str:
    return next((c.label for c in audit.conditions if c.id == cid), cid)


def degenerate_note(audit: AuditData) -> str | None:
    """The tables' and figures' note on ``†``: which conditions and the rule; None when none is flagged."""
    flagged = degenerate_conditions(audit)
    if not flagged:
        return None
    which = ", ".join(
        f"{_label(audit, cid)} ({len(e['degenerate_seeds'])}/{e['n_seeds']} seeds)"
        for cid, e in flagged.items()
    )
    rule = audit.meta["degenerate"].get("rule", "")
    return (
        f"{MARK} degenerate predictor: {which}. A seed that predicts (almost) one class has fairness numbers "
        f"near 0 without being fair, and pulls the mean toward 0. Rule: {rule}."
    )


def convergence_note(audit: AuditData) -> str | None:
    """The tables' note naming the conditions whose students had not converged; None when there are none."""
    flagged = unconverged_conditions(audit)
    if not flagged:
        return None
    which = ", ".join(
        f"{_label(audit, cid)} ({len(e['unconverged_seeds'])}/{e['seeds_with_curves']} seeds)"
        for cid, e in flagged.items()
    )
    criterion = audit.meta["convergence"].get("criterion", "")
    return f"Not converged: {which}; their numbers may change with longer training. Criterion: {criterion}."


def missing_check_note(audit: AuditData) -> str | None:
    """A note when the audit predates the degenerate check (no ``degenerate`` in audit.json)."""
    if "degenerate" in audit.meta:
        return None
    return (
        "This audit has no degenerate-predictor check (made by an older kdfair): run kdfair audit again to "
        "flag models that predict (almost) one class."
    )


def table_notes(audit: AuditData, has_marks: bool) -> list[str]:
    """The notes every table gets: the ``†`` note (when the table has a marked cell) and convergence."""
    notes = [degenerate_note(audit)] if has_marks else []
    notes += [convergence_note(audit)]
    return [n for n in notes if n]


def health_html(audit: AuditData) -> str:
    """The page's warning box on degenerate and unconverged conditions ("" when there is nothing to say)."""
    items = []
    for cid, e in degenerate_conditions(audit).items():
        seeds = ", ".join(map(str, e["degenerate_seeds"]))
        items.append(
            f"<li><strong>{html.escape(_label(audit, cid))}: degenerate predictor</strong> in "
            f"{len(e['degenerate_seeds'])} of {e['n_seeds']} seeds (seeds {html.escape(seeds)}): it predicts "
            f"(almost) one class, which pulls its DPD, EOD and DEO toward 0 without being fair; they are "
            f"marked {MARK} in every table and figure.</li>"
        )
    for cid, e in unconverged_conditions(audit).items():
        seeds = ", ".join(map(str, e["unconverged_seeds"]))
        items.append(
            f"<li><strong>{html.escape(_label(audit, cid))}: not converged</strong> in "
            f"{len(e['unconverged_seeds'])} of {e['seeds_with_curves']} seeds with learning curves (seeds "
            f"{html.escape(seeds)}): its numbers may change with longer training (see the learning "
            f"curves).</li>"
        )
    rules = [f'<p class="note">{html.escape(text)}</p>' for text in _rules(audit)]
    missing = missing_check_note(audit)
    if missing:
        items.append(f"<li>{html.escape(missing)}</li>")
    if not items:
        return ""
    return f'<div class="warnings health" id="health"><ul>{"".join(items)}</ul>{"".join(rules)}</div>'


def _rules(audit: AuditData) -> list[str]:
    """The degenerate rule and the convergence criterion, each when some condition is flagged by it."""
    rules = []
    if degenerate_conditions(audit):
        rules.append(f"{MARK} Degenerate-predictor rule: {audit.meta['degenerate'].get('rule', '')}.")
    if unconverged_conditions(audit):
        rules.append(f"Convergence criterion: {audit.meta['convergence'].get('criterion', '')}.")
    return rules


MARK_COLOR = "#D55E00"  # Okabe-Ito vermilion


def mark_points(ax: Any, audit: AuditData, xs: list, ys: Any, conditions: list[str], metric: str) -> int:
    """Circle and label ``†`` each point whose condition is degenerate (fairness metrics only); returns how
    many points were marked. ``ys`` in display units; NaN points are skipped."""
    marked = 0
    for x, y, cid in zip(xs, ys, conditions, strict=True):
        if fairness_mark(audit, cid, metric) and y == y:
            ax.scatter([x], [y], s=160, facecolors="none", edgecolors=MARK_COLOR, linewidths=1.6, zorder=6)
            ax.annotate(
                MARK, (x, y), xytext=(6, 6), textcoords="offset points", color=MARK_COLOR, fontsize=12
            )
            marked += 1
    label = f"{MARK} degenerate predictor"
    if marked and label not in ax.get_legend_handles_labels()[1]:  # one legend entry per axes
        ax.scatter([], [], s=160, facecolors="none", edgecolors=MARK_COLOR, label=label)
    return marked


def mark_bar(ax: Any, audit: AuditData, x: float, top: float, condition: str, metric: str) -> None:
    """Write ``†`` above a bar (``top`` in display units) of a degenerate condition's fairness metric."""
    if fairness_mark(audit, condition, metric):
        ax.annotate(
            MARK,
            (x, top),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            color=MARK_COLOR,
            fontsize=12,
            fontweight="bold",
        )


def annotate_captions(audit: AuditData, figures: list) -> None:
    """Append the ``†`` note to the captions of the figures that draw fairness numbers (in place)."""
    note = degenerate_note(audit)
    for figure in figures if note else []:
        if figure.name.startswith(FIGURE_PREFIXES):
            figure.caption = f"{figure.caption} {note}"
