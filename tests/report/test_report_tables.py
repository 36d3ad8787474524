"""Tables: exact cell strings (hand-worked and recomputed from the fixture's per-seed values), CSV numbers,
LaTeX booktabs and escaping, and tables left out when their inputs are absent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_synthetic import write_synthetic_audit

from kdfair.report import load_audit, write_tables
from kdfair.report.all_tables import build_tables
from kdfair.report.tabular import Stat, Table, cell_text, latex_escape, to_csv, to_latex, to_markdown


def parse_markdown(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first pipe table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    split = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines]
    return split[0], split[2:]


def expected(values: list[float], scale: float = 100.0, decimals: int = 2) -> str:
    arr = np.asarray(values) * scale
    return f"{arr.mean():.{decimals}f} ± {arr.std(ddof=1):.{decimals}f}"


def read_table(index: Path, name: str) -> tuple[list[str], list[list[str]]]:
    return parse_markdown((index.parent / "tables" / f"{name}.md").read_text())


def test_stat_formatting_rules():
    assert Stat(71.234, 0.449).text() == "71.23 ± 0.45"
    assert Stat(71.235, float("nan")).text() == "71.23" or Stat(71.235, float("nan")).text() == "71.24"
    assert Stat(float("nan"), 1.0).text() == "n/a"
    assert Stat(0.12345, 0.01, decimals=4).text() == "0.1235 ± 0.0100"
    assert cell_text(None) == "-" and cell_text(7) == "7"


def test_hand_worked_cells(small):
    _, index = small
    header, rows = read_table(index, "table1_accuracy_significance")
    assert header[:4] == ["Model", "T", "Seeds", "Test Acc. (%)"]
    assert rows[0][:4] == ["Teacher", "-", "3", "72.00 ± 2.00"]
    assert rows[0][4:] == ["-", "-", "-", "-"]
    _, rows = read_table(index, "table2_fairness_color")
    assert rows[1][0] == "NDS" and rows[1][3] == "6.00 ± 1.00"
    _, rows = read_table(index, "table4_individual_fairness")
    assert rows[3][:3] == ["DS", "2", "0.2000 ± 0.1000"]


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("table2_fairness_color", [("accuracy", "", 100), ("eod", "color", 100), ("dpd", "color", 100)]),
        ("table4_individual_fairness", [("individual_unfairness", "", 1), ("consistency", "", 100)]),
        (
            "bird_methods_color",
            [("auroc", "", 100), ("f1", "", 100), ("deo_mean", "color", 100), ("deo_max", "color", 100)],
        ),
    ],
)
def test_every_cell_matches_recomputation(small, name, metrics):
    audit, index = small
    _, rows = read_table(index, name)
    ids = [c["id"] for c in audit.conditions]  # fixture order: teacher, nds, DS by temperature
    assert len(rows) == len(ids)
    for cid, row in zip(ids, rows, strict=True):
        cells = row[-len(metrics) :]
        for cell, (metric, attribute, scale) in zip(cells, metrics, strict=True):
            assert cell == expected(audit.per_seed[(cid, metric, attribute)], scale, 2 if scale == 100 else 4)


def test_counts_raw_and_bh(small):
    audit, index = small
    header, rows = read_table(index, "table1_accuracy_significance")
    assert header[-4:] == ["#SC", "#SC (BH)", "#TC", "#TC (BH)"]
    counts = audit.counts.set_index("condition")
    for row, cid in zip(rows[2:], counts.index, strict=True):
        assert [int(x) for x in row[-4:]] == [int(counts.loc[cid, k]) for k in ("sc", "sc_bh", "tc", "tc_bh")]
    tests = audit.class_tests
    first_sc = int(
        tests[(tests.comparison == "nds_vs_ds") & (tests.condition == "ds_kd_T1_a0.8")].significant.sum()
    )
    assert int(rows[2][-4]) == first_sc
    assert (index.parent / "tables" / "table1_accuracy_significance.md").read_text().count(
        "two-sided Welch t-test on normalised class accuracy, level 0.05, out of 10 classes"
    ) == 1


def test_csv_is_numeric_and_unrounded(small):
    audit, index = small
    frame = pd.read_csv(index.parent / "tables" / "table1_accuracy_significance.csv")
    assert list(frame.columns[:5]) == ["Model", "T", "Seeds", "Test Acc. (%) mean", "Test Acc. (%) std"]
    for cond, (_, row) in zip(audit.conditions, frame.iterrows(), strict=True):
        values = np.asarray(audit.per_seed[(cond["id"], "accuracy", "")]) * 100
        assert row["Test Acc. (%) mean"] == pytest.approx(values.mean(), abs=1e-9)
        assert row["Test Acc. (%) std"] == pytest.approx(values.std(ddof=1), abs=1e-9)
    assert math.isnan(frame.loc[0, "#SC"])  # teacher: not applicable -> empty


def test_inheritance_deltas(small):
    audit, index = small
    header, rows = read_table(index, "bird_inheritance_color")
    assert (
        header[:3] == ["Teacher", "Student", "Training"]
        and rows[0][0] == "resnet56"
        and rows[1][1] == "resnet20"
    )
    nds = np.mean(audit.per_seed[("nds", "deo_mean", "color")])
    ds = np.mean(audit.per_seed[("ds_kd_T4_a0.8", "deo_mean", "color")])
    assert rows[-1][2] == "kd T=4 α=0.8"
    assert rows[-1][-2] == f"{100 * (ds - nds):+.2f}"
    assert rows[1][-2:] == ["-", "-"]


def test_latex_booktabs_and_escaping(small):
    _, index = small
    tex = (index.parent / "tables" / "table1_accuracy_significance.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"72.00 $\pm$ 2.00" in tex and r"\#SC (BH)" in tex
    assert latex_escape("a_b & 50% #1 {x} ~^\\ $") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{} \$"
    )


def test_renderers_on_a_hand_made_table():
    table = Table(
        "t", "T", "cap", ["Model", "x|y"], [["A", Stat(1.0, 0.5)], ["B", None]], notes=["n"], breaks=[1]
    )
    assert "| A | 1.00 ± 0.50 |" in to_markdown(table) and "x\\|y" in to_markdown(table)
    assert to_csv(table).splitlines() == ["Model,x|y mean,x|y std", "A,1.0,0.5", "B,,"]
    assert to_latex(table).count(r"\midrule") == 2


def test_no_attributes_omits_fairness_tables(tmp_path):
    write_synthetic_audit(tmp_path / "audit", attributes={})
    tables, omitted = build_tables(load_audit(tmp_path / "audit"))
    names = [t.name for t in tables]
    assert names == ["table1_accuracy_significance", "table4_individual_fairness", "bird_methods"]
    assert any("no protected attributes" in note for note in omitted)
    bird = next(t for t in tables if t.name == "bird_methods")
    assert bird.columns[-2:] == ["AUROC (%)", "F1 (%)"]


def test_methods_are_grouped_and_labelled(tmp_path):
    write_synthetic_audit(tmp_path / "audit", methods=("kd", "bird"), alphas=(0.5, 0.8), temperatures=(2,))
    tables, omitted = build_tables(load_audit(tmp_path / "audit"))
    write_tables(tables, tmp_path / "report", omitted)
    index = tmp_path / "report" / "index.html"  # not rendered: only the tables are checked here
    header, rows = read_table(index, "bird_methods_color")
    assert [r[0] for r in rows] == ["ce", "ce", "bird", "bird", "kd", "kd"]
    assert [r[3] for r in rows] == ["-", "-", "0.5", "0.8", "0.5", "0.8"]
    header1, _ = read_table(index, "table1_accuracy_significance")
    assert header1[:4] == ["Model", "Method", "T", "α"]
    tex = (index.parent / "tables" / "bird_methods_color.tex").read_text()
    assert tex.count(r"\midrule") == 1 + 2  # header rule + before bird + before kd
