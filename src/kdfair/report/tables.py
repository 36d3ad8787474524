"""The report's tables, built from an audit folder (SPEC §8; paper 002 Tables 1-4, BIRD 004 Tables 1-6).

Every table has one row per condition in the paper's order (Teacher, NDS, DS by temperature; DS grouped by
method and alpha), label columns ``Model`` [``Method``] ``T`` [``α``], and mean ± std over seeds. Each
metric's column label, unit and decimals come from its entry in :data:`kdfair.metrics.table.METRICS`:
percent with 2 decimals (accuracy, fairness, AUROC, F1, consistency), or as is with 4 decimals (individual
and counterfactual unfairness). Formatting rules: :mod:`kdfair.report.tabular` and docs/report.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kdfair.metrics.table import METRICS, column_label
from kdfair.report.health import fairness_mark
from kdfair.report.knn import knn_notes
from kdfair.report.load import AuditData, Condition
from kdfair.report.noise import floor_cells, floor_columns, noise_mark
from kdfair.report.tabular import Cell, Stat, Table

TEST_NAME = "two-sided Welch t-test on normalised class accuracy"
STD_NOTE = "Mean ± std over seeds (std with ddof = 1)."


def _show_method(audit: AuditData) -> bool:
    ds_methods = {c.method for c in audit.by_role("ds")}
    odd = any(c.method != "ce" for c in audit.conditions if c.role != "ds")
    return odd or len(ds_methods) > 1 or ds_methods - {"kd"} != set()


def _show_alpha(audit: AuditData) -> bool:
    return len({c.alpha for c in audit.by_role("ds")}) > 1


def label_columns(audit: AuditData) -> tuple[list[str], Callable[[Condition], list[Cell]]]:
    """The label column names and a function giving one condition's label cells."""
    show_method, show_alpha = _show_method(audit), _show_alpha(audit)
    names = ["Model"] + (["Method"] if show_method else []) + ["T"] + (["α"] if show_alpha else [])

    def cells(cond: Condition) -> list[Cell]:
        model = {"teacher": "Teacher", "nds": "NDS", "ds": "DS"}.get(cond.role, cond.role)
        out: list[Cell] = [model]
        if show_method:
            out.append(cond.method)
        out.append(f"{cond.temperature:g}" if cond.temperature is not None else None)
        if show_alpha:
            out.append(f"{cond.alpha:g}" if cond.alpha is not None else None)
        return out

    return names, cells


def group_breaks(conditions: list[Condition]) -> list[int]:
    """Row indices where a new block starts: the first DS row and each change of DS method or alpha."""
    breaks, previous = [], None
    for index, cond in enumerate(conditions):
        key = (cond.role == "ds", cond.method if cond.role == "ds" else "", cond.alpha)
        if previous is not None and key != previous:
            breaks.append(index)
        previous = key
    return breaks


def stat_cell(audit: AuditData, cond: str, metric: str, attribute: str = "") -> Cell:
    """``Stat`` of one summary row in the metric's display units and decimals (its METRICS entry), None when
    absent; a fairness number of a degenerate condition carries the mark ``†`` (:mod:`kdfair.report.health`),
    one within its noise floor ``n.s.`` (:mod:`kdfair.report.noise`)."""
    found = audit.stat(cond, metric, attribute)
    if found is None:
        return None
    mean, std, _ = found
    entry = METRICS[metric]
    marks = (fairness_mark(audit, cond, metric), noise_mark(audit, cond, metric, attribute))
    return Stat(mean * entry.scale, std * entry.scale, entry.decimals, " ".join(m for m in marks if m))


def _n_seeds(audit: AuditData, cond: Condition) -> int:
    found = audit.stat(cond.id, "accuracy")
    return found[2] if found is not None else len(cond.seeds)


def table_accuracy_counts(audit: AuditData) -> Table:
    """Table 1 of paper 002: test accuracy, #SC and #TC (raw and BH-corrected) per condition."""
    names, cells = label_columns(audit)
    counts = audit.table("significance_counts")
    by_cond = {} if counts is None else {str(r["condition"]): r for _, r in counts.iterrows()}
    count_cols = ["#SC", "#SC (BH)", "#TC", "#TC (BH)"] if counts is not None else []
    rows: list[list[Cell]] = []
    for cond in audit.conditions:
        row = cells(cond) + [_n_seeds(audit, cond), stat_cell(audit, cond.id, "accuracy")]
        found = by_cond.get(cond.id)
        for key in ("sc", "sc_bh", "tc", "tc_bh")[: len(count_cols)]:
            row.append(int(found[key]) if found is not None and not _isnan(found[key]) else None)
        rows.append(row)
    notes = [
        STD_NOTE,
        f"#SC: classes significantly affected, NDS vs DS; #TC: teacher vs DS; {TEST_NAME}, "
        f"level {audit.level:g}, out of {audit.n_classes} classes; (BH): after Benjamini-Hochberg "
        "control at the same level.",
    ]
    notes += _undefined_note(audit)
    if counts is None:
        notes.append("significance_counts.csv is absent: #SC and #TC are not shown.")
    else:
        notes += _missing_reference_notes(audit)
    return Table(
        name="table1_accuracy_significance",
        title="Table 1: Class-wise bias and distillation",
        caption="Test accuracy (%) and the number of significantly affected classes per condition.",
        columns=names + ["Seeds", column_label("accuracy")] + count_cols,
        rows=rows,
        notes=notes,
        breaks=group_breaks(audit.conditions),
        n_label_columns=len(names),
    )


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _missing_reference_notes(audit: AuditData) -> list[str]:
    """Why #SC or #TC cells are '-' for every DS row: the audit has no NDS or no teacher runs."""
    if not audit.by_role("ds"):
        return []
    return [
        f"The audit has no {who} runs: {what} is undefined and shown as '-'."
        for role, who, what in (
            ("nds", "NDS", "#SC (NDS vs DS)"),
            ("teacher", "teacher", "#TC (teacher vs DS)"),
        )
        if not audit.by_role(role)
    ]


def _undefined_note(audit: AuditData) -> list[str]:
    tests = audit.table("class_tests")
    if tests is None or "undefined" not in tests.columns:
        return []
    n_undefined = int(tests["undefined"].astype(bool).sum())
    if n_undefined == 0:
        return []
    return [
        f"{n_undefined} class tests were undefined (zero variance in both groups) and count as not affected."
    ]


def table_group_fairness(audit: AuditData, attribute: str) -> Table | None:
    """Tables 2-3 of paper 002: test accuracy, EOD and DPD (%) per condition for one attribute."""
    if not (audit.has_metric("eod", attribute) or audit.has_metric("dpd", attribute)):
        return None
    names, cells = label_columns(audit)
    shown = (("accuracy", ""), ("eod", attribute), ("dpd", attribute))
    rows = [
        cells(c)
        + [stat_cell(audit, c.id, m, a) for m, a in shown]
        + floor_cells(audit, c.id, attribute)  # noise floor and p of EOD and DPD (report.noise)
        for c in audit.conditions
    ]
    return Table(
        name=f"table2_fairness_{_slug(attribute)}",
        title=f"Tables 2-3: Group fairness, attribute '{attribute}'",
        caption="Test accuracy, equalized odds difference (EOD) and demographic parity difference "
        "(DPD), in %; "
        "lower EOD and DPD is fairer.",
        columns=names + [column_label(m) for m, _ in shown] + floor_columns(audit),
        rows=rows,
        notes=[STD_NOTE, "Multi-class tasks: one-vs-rest per class, averaged over classes (SPEC §5)."],
        breaks=group_breaks(audit.conditions),
        n_label_columns=len(names),
    )


def table_individual_fairness(audit: AuditData) -> Table | None:
    """Table 4 of paper 002: individual unfairness (unitless) and consistency (%) per condition."""
    if not (audit.has_metric("individual_unfairness") or audit.has_metric("consistency")):
        return None
    names, cells = label_columns(audit)
    shown = ("individual_unfairness", "consistency")
    rows = [cells(c) + [stat_cell(audit, c.id, m) for m in shown] for c in audit.conditions]
    return Table(
        name="table4_individual_fairness",
        title="Table 4: Individual fairness",
        caption="Individual unfairness (mean total variation between a sample's and its neighbours' "
        "predicted "
        "probabilities per normalised distance; lower is fairer) and consistency (%; higher is fairer).",
        columns=names + [column_label(m) for m in shown],
        rows=rows,
        notes=[STD_NOTE, *knn_notes(audit)],  # the pairs' space (the teacher's?) and what they share
        breaks=group_breaks(audit.conditions),
        n_label_columns=len(names),
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_") or "attribute"


def model_names(audit: AuditData) -> tuple[str, str]:
    """Teacher and student model names from audit.json ``settings.models`` (condition id -> model, as
    ``kdfair audit`` writes it): the first teacher condition's model, and the first NDS's (else the first
    DS's); "Teacher"/"Student" where unknown."""
    settings = audit.meta.get("settings") or {}
    models = settings.get("models") if isinstance(settings.get("models"), dict) else {}

    def first(roles: tuple[str, ...], default: str) -> str:
        ids = [c.id for role in roles for c in audit.by_role(role)]
        return next((str(models[i]) for i in ids if models.get(i)), default)

    return first(("teacher",), "Teacher"), first(("nds", "ds"), "Student")
