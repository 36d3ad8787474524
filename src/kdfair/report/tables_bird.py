"""BIRD-style tables (paper 004): AUROC, F1, mean-DEO and max-DEO per method, and the teacher-vs-student
comparison of its Table 6 ("the student inherits the teacher's unfairness").

All four metrics in percent, mean ± std over seeds; conditions are grouped by method (teacher and NDS first).
"""

from __future__ import annotations

from kdfair.metrics.table import METRICS, column_label
from kdfair.report.health import fairness_mark
from kdfair.report.load import AuditData, Condition
from kdfair.report.tables import STD_NOTE, _slug, model_names, stat_cell
from kdfair.report.tabular import Cell, Table, signed

PERFORMANCE_METRICS = ("auroc", "f1")  # BIRD's columns without an attribute
DEO_METRICS = ("deo_mean", "deo_max")  # and per attribute


def by_method(audit: AuditData) -> list[Condition]:
    """Teacher and NDS first, then DS conditions grouped by method, alpha and temperature."""
    return sorted(
        audit.conditions, key=lambda c: (c.role == "ds", c.method if c.role == "ds" else "", c.sort_key)
    )


def _method_breaks(conditions: list[Condition]) -> list[int]:
    keys = [(c.role == "ds", c.method if c.role == "ds" else "") for c in conditions]
    return [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]


def _label(cond: Condition) -> list[Cell]:
    model = {"teacher": "Teacher", "nds": "NDS", "ds": "DS"}.get(cond.role, cond.role)
    return [
        cond.method,
        model,
        f"{cond.temperature:g}" if cond.temperature is not None else None,
        f"{cond.alpha:g}" if cond.alpha is not None else None,
    ]


def _metrics(audit: AuditData, attribute: str) -> list[tuple[str, str, str]]:
    """(metric, column, attribute) of the metrics present for ``attribute`` (AUROC/F1 have no attribute)."""
    found = [(m, column_label(m), "") for m in PERFORMANCE_METRICS if audit.has_metric(m)]
    if attribute:
        found += [(m, column_label(m), attribute) for m in DEO_METRICS if audit.has_metric(m, attribute)]
    return found


def table_bird(audit: AuditData, attribute: str) -> Table | None:
    """BIRD Tables 1-5 shape: AUROC, F1, mean-DEO, max-DEO (%) per method for one attribute ("" = none)."""
    metrics = _metrics(audit, attribute)
    if not metrics or (attribute and not any(a for _, _, a in metrics)):
        return None
    conditions = by_method(audit)
    rows = [_label(c) + [stat_cell(audit, c.id, m, a) for m, _, a in metrics] for c in conditions]
    where = f", attribute '{attribute}'" if attribute else ""
    return Table(
        name=f"bird_methods_{_slug(attribute)}" if attribute else "bird_methods",
        title=f"BIRD table: predictive performance and fairness per method{where}",
        caption="AUROC and F1 (higher is better), mean-DEO and max-DEO (lower is fairer), in %, "
        "conditions grouped by method.",
        columns=["Method", "Model", "T", "α"] + [col for _, col, _ in metrics],
        rows=rows,
        notes=[STD_NOTE, "DEO: per class, the gap in accuracy between groups; mean and max over classes."],
        breaks=_method_breaks(conditions),
        n_label_columns=4,
    )


def _delta(audit: AuditData, cond: str, ref: str, metric: str, attribute: str) -> str | None:
    a, b = audit.stat(cond, metric, attribute), audit.stat(ref, metric, attribute)
    if a is None or b is None:
        return None
    marks = " ".join(dict.fromkeys(m for m in (fairness_mark(audit, c, metric) for c in (cond, ref)) if m))
    return signed(100.0 * (a[0] - b[0])) + (f" {marks}" if marks else "")


def table_inheritance(audit: AuditData, attribute: str) -> Table | None:
    """BIRD Table 6 shape: teacher, NDS and each DS side by side, with the DEO change against the NDS."""
    teachers, students = audit.by_role("teacher"), audit.by_role("nds")
    if not (teachers and students and audit.has_metric(DEO_METRICS[0], attribute)):
        return None
    teacher_name, student_name = model_names(audit)
    nds = students[0].id
    metrics = _metrics(audit, attribute)
    rows: list[list[Cell]] = []
    for cond in [teachers[0], students[0], *audit.by_role("ds")]:
        if cond.role == "teacher":
            label: list[Cell] = [teacher_name, None, "teacher"]
        elif cond.role == "nds":
            label = [None, student_name, "from scratch (NDS)"]
        else:
            label = [teacher_name, student_name, f"{cond.method} T={cond.temperature:g} α={cond.alpha:g}"]
        stats = [stat_cell(audit, cond.id, m, a) for m, _, a in metrics]
        deltas = [_delta(audit, cond.id, nds, m, attribute) for m in DEO_METRICS]
        rows.append(label + stats + ([None, None] if cond.role == "nds" else deltas))
    return Table(
        name=f"bird_inheritance_{_slug(attribute)}",
        title=f"Teacher vs student unfairness, attribute '{attribute}'",
        caption="Does the distilled student inherit the teacher's unfairness? Each DS beside the teacher and "
        "the NDS; Δ columns: change in mean-DEO / max-DEO against the NDS, in percentage points (pp).",
        columns=["Teacher", "Student", "Training"]
        + [col for _, col, _ in metrics]
        + [f"Δ {METRICS[m].column} vs NDS (pp)" for m in DEO_METRICS],
        rows=rows,
        notes=[STD_NOTE, "A positive Δ means the model is less fair than the NDS (BIRD Table 6)."],
        breaks=[1, 2] if len(rows) > 2 else [1],
        n_label_columns=3,
    )
