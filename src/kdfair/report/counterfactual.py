"""The report's counterfactual fairness (SPEC §6): a table and a figure against the temperature.

Counterfactual unfairness is the mean total variation distance between a test sample's and its twin's
predicted probabilities (a fraction, shown with 4 decimals); the flip rate is the share of pairs whose
predicted class changes (shown in percent). Both per protected attribute the twins change, mean ± std over
seeds, lower is fairer.
"""

from __future__ import annotations

from pathlib import Path

from kdfair.metrics.table import METRICS, column_label
from kdfair.report.figstyle import Figure
from kdfair.report.figures_lines import two_panel
from kdfair.report.load import AuditData
from kdfair.report.tables import STD_NOTE, group_breaks, label_columns, stat_cell
from kdfair.report.tabular import Table

TWIN_METRICS = tuple(name for name, entry in METRICS.items() if entry.needs_twins)  # unfairness, flips


def twin_attributes(audit: AuditData) -> list[str]:
    """Attributes with counterfactual metrics in the audit, in audit.json's order."""
    recorded = list((audit.meta.get("counterfactual") or {}).get("pairs") or {})
    found = sorted(set(audit.summary.loc[audit.summary["metric"] == TWIN_METRICS[0], "attribute"]))
    return [a for a in recorded if a in found] + [a for a in found if a not in recorded]


def table_counterfactual(audit: AuditData) -> Table | None:
    """Per condition and protected attribute: counterfactual unfairness (TV) and flip rate (%)."""
    attributes = twin_attributes(audit)
    if not attributes:
        return None
    names, cells = label_columns(audit)
    shown = [(m, a) for m in TWIN_METRICS for a in attributes]
    columns = [column_label(m, a) for m, a in shown]
    rows = [cells(c) + [stat_cell(audit, c.id, m, a) for m, a in shown] for c in audit.conditions]
    pairs = (audit.meta.get("counterfactual") or {}).get("pairs") or {}
    counts = ", ".join(f"{a}: {n:,} twins" for a, n in pairs.items())
    return Table(
        name="table4_counterfactual_fairness",
        title="Table 4 (counterfactual): individual fairness on counterfactual twins",
        caption="Each test sample against its twins that differ only in one protected attribute: the mean "
        "total variation distance between their predicted probabilities (0 = the prediction ignores the "
        "attribute, 1 = disjoint predictions) and the share of pairs whose predicted class flips (%). "
        "Lower is fairer.",
        columns=names + columns,
        rows=rows,
        notes=[STD_NOTE] + ([f"Pairs per seed: {counts} (counterfactual.npz, SPEC §6)."] if counts else []),
        breaks=group_breaks(audit.conditions),
        n_label_columns=len(names),
    )


def fig_counterfactual(audit: AuditData, out_dir: Path, attribute: str) -> Figure | None:
    """Counterfactual unfairness and flip rate (%) against the temperature for one attribute."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in attribute.lower())
    name = f"fig9_counterfactual_{slug}"
    paths = two_panel(
        audit,
        out_dir,
        name,
        [(m, attribute) for m in TWIN_METRICS],
    )
    if paths is None:
        return None
    return Figure(
        name=name,
        title=f"Counterfactual fairness vs temperature, attribute '{attribute}'",
        caption=f"Left: the mean total variation distance between the predicted probabilities of a test "
        f"sample and of its twin that differs only in '{attribute}'; right: the share of such pairs whose "
        "predicted class changes, in percent. The distilled student at each temperature (mean ± std over "
        "seeds); horizontal lines: the teacher and the non-distilled student. Lower is fairer.",
        png=paths[0],
        svg=paths[1],
    )
