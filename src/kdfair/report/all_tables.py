"""Every table of the report, in report order (:func:`build_tables`): which tables an audit supports, a note
for each one left out, and the notes every table gets (noise floor, degenerate and unconverged conditions).

The tables themselves: :mod:`kdfair.report.tables` (paper 002 Tables 1-4),
:mod:`kdfair.report.counterfactual`, :mod:`kdfair.report.tables_bird` (paper 004) and
:mod:`kdfair.report.noise`.
"""

from __future__ import annotations

from kdfair.degenerate import MARK
from kdfair.report.counterfactual import table_counterfactual
from kdfair.report.health import table_notes
from kdfair.report.load import AuditData
from kdfair.report.noise import (
    NOT_SIGNIFICANT,
    floor_columns,
    floor_note,
    table_fairness_tests,
    table_noise_floor,
)
from kdfair.report.tables import table_accuracy_counts, table_group_fairness, table_individual_fairness
from kdfair.report.tables_bird import table_bird, table_inheritance
from kdfair.report.tabular import Table, cell_text


def build_tables(audit: AuditData) -> tuple[list[Table], list[str]]:
    """Every table the audit supports, in report order, and a note for each table left out."""
    tables: list[Table] = [table_accuracy_counts(audit)]
    omitted: list[str] = []
    attributes = audit.attributes
    if not attributes:
        omitted.append("Group fairness tables (Tables 2-3) omitted: the audit has no protected attributes.")
    for attribute in attributes:
        _add(
            tables, omitted, table_group_fairness(audit, attribute), f"Table 2 for '{attribute}' (no EOD/DPD)"
        )
    _add(tables, omitted, table_individual_fairness(audit), "Table 4 (no individual fairness metrics)")
    _add(tables, omitted, table_counterfactual(audit), "Counterfactual Table 4 (no counterfactual.npz)")
    for attribute in attributes or [""]:
        _add(
            tables, omitted, table_bird(audit, attribute), f"BIRD table for '{attribute or '-'}' (no metrics)"
        )
    for attribute in attributes:
        _add(
            tables,
            omitted,
            table_inheritance(audit, attribute),
            f"Teacher vs student table for '{attribute}' (needs teacher, NDS and mean-DEO)",
        )
    for attribute in attributes:  # the noise floor and the between-condition tests (kdfair.report.noise)
        _add(tables, omitted, table_noise_floor(audit, attribute), f"Noise floor table for '{attribute}'")
        _add(tables, omitted, table_fairness_tests(audit, attribute), f"Fairness tests for '{attribute}'")
    for table in tables:  # the n.s. note where a value is within its noise floor or floors are shown
        marked = any(NOT_SIGNIFICANT in cell_text(c) for row in table.rows for c in row)
        floors = any(column in table.columns for column in floor_columns(audit))  # Tables 2-3's floor columns
        table.notes += floor_note(audit) if marked or floors else []
    for table in tables:  # degenerate (†) and convergence notes (kdfair.report.health)
        table.notes += table_notes(audit, any(MARK in cell_text(c) for row in table.rows for c in row))
    return tables, omitted


def _add(tables: list[Table], omitted: list[str], table: Table | None, what: str) -> None:
    if table is None:
        omitted.append(f"{what} omitted: its inputs are absent from the audit.")
    else:
        tables.append(table)
