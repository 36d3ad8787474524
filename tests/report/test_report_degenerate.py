"""The report marks every fairness number of a degenerate condition with † (tables in Markdown, LaTeX and
CSV, the BIRD and inheritance tables, the figures' captions) and warns on the page; healthy rows stay bare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import html5lib
import numpy as np
import pytest
from report_sweep import copy_sweep

from kdfair.audit.engine import audit_runs
from kdfair.audit.write import write_audit
from kdfair.report import build_report

DEGENERATE = "ds_kd_T4_a0.8"  # seed 0 predicts class 1 only


@pytest.fixture(scope="module")
def report(real_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(audit folder, report folder) of the real sweep with DS T=4 seed 0 a constant predictor."""
    root = copy_sweep(real_sweep, tmp_path_factory.mktemp("degenerate") / "sweep")
    run = root / "runs" / f"{DEGENERATE}_s0"
    with np.load(run / "predictions.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["logits"] = np.zeros_like(arrays["logits"])
    arrays["logits"][:, 1] = 1.0
    np.savez(run / "predictions.npz", **arrays)
    audit = write_audit(audit_runs(root), root / "audit")
    build_report(audit, root / "report")
    return audit, root / "report"


def _md_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return cells[0], cells[2:]


def _summary(audit: Path) -> dict[tuple[str, str, str], tuple[float, float]]:
    rows = csv.DictReader((audit / "summary.csv").open())
    return {(r["condition"], r["metric"], r["attribute"]): (float(r["mean"]), float(r["std"])) for r in rows}


def test_fairness_cells_of_the_degenerate_condition_are_marked(report: tuple[Path, Path]) -> None:
    audit, out = report
    summary = _summary(audit)
    header, rows = _md_rows(out / "tables" / "table2_fairness_group.md")
    for row in rows:
        condition = {"Teacher": "teacher", "NDS": "nds"}.get(row[0]) or f"ds_kd_T{row[1]}_a0.8"
        for column, metric in (("EOD (%)", "eod"), ("DPD (%)", "dpd")):
            mean, std = summary[(condition, metric, "group")]
            cell = row[header.index(column)]  # other marks (n.s.: within the noise floor) may follow
            assert cell.startswith(f"{100 * mean:.2f} ± {100 * std:.2f}")
            assert ("†" in cell) == (condition == DEGENERATE)
        acc = row[header.index("Test Acc. (%)")]
        assert "†" not in acc  # accuracy is not a fairness number: never marked
    text = (out / "tables" / "table2_fairness_group.md").read_text()
    assert "_Note:_ † degenerate predictor: DS kd T=4 a=0.8 (1/2 seeds)." in text
    assert r"$^\dagger$" in (out / "tables" / "table2_fairness_group.tex").read_text()


def test_bird_tables_mark_deo_and_its_delta(report: tuple[Path, Path]) -> None:
    _, out = report
    rows = list(csv.DictReader((out / "tables" / "bird_methods_group.csv").open()))
    marks = {(r["Model"], r["T"]): "†" in r["mean-DEO (%) mark"] for r in rows}
    assert marks == {("Teacher", ""): False, ("NDS", ""): False, ("DS", "2"): False, ("DS", "4"): True}
    assert all(("†" in r["max-DEO (%) mark"]) == marks[(r["Model"], r["T"])] for r in rows)
    assert "AUROC (%) mark" not in rows[0]  # AUROC and F1 are never marked
    header, md = _md_rows(out / "tables" / "bird_inheritance_group.md")
    t4 = next(r for r in md if "T=4" in r[2])
    t2 = next(r for r in md if "T=2" in r[2])
    for column in ("mean-DEO (%)", "max-DEO (%)", "Δ mean-DEO vs NDS (pp)", "Δ max-DEO vs NDS (pp)"):
        assert "†" in t4[header.index(column)] and "†" not in t2[header.index(column)]


def test_individual_fairness_is_marked_too(report: tuple[Path, Path]) -> None:
    _, out = report
    header, rows = _md_rows(out / "tables" / "table4_individual_fairness.md")
    marked = [row[1] for row in rows if "†" in row[-1]]
    assert marked == ["4"]


def test_page_warns_and_figures_say_what_the_mark_means(report: tuple[Path, Path]) -> None:
    _, out = report
    page = (out / "index.html").read_text()
    html5lib.HTMLParser(strict=True, tree=html5lib.getTreeBuilder("etree")).parse(page)
    assert '<div class="warnings health" id="health">' in page
    assert "DS kd T=4 a=0.8: degenerate predictor</strong> in 1 of 2 seeds (seeds 0)" in page
    for name in ("fig4_fairness_group", "fig6_individual_fairness", "fig7_bird_group"):
        start = page.index(f'<figure id="{name}"')
        caption = page[start : page.index("</figure>", start)]
        assert "† degenerate predictor: DS kd T=4 a=0.8 (1/2 seeds)" in caption, name
    start = page.index('<figure id="fig3_significance_vs_temperature"')
    assert "†" not in page[start : page.index("</figure>", start)]  # accuracy figure: no mark


def test_nothing_is_ranked_or_bolded(report: tuple[Path, Path]) -> None:
    """The report has no "best" cell: no bold or highlighted numbers that could skip the mark."""
    _, out = report
    for path in (out / "tables").glob("*.md"):
        body = [line for line in path.read_text().splitlines() if line.startswith("|")]
        assert not any("**" in line or "best" in line.lower() for line in body), path
    page = (out / "index.html").read_text()
    tables = page[page.index('<section id="tables">') :]
    assert "<b>" not in tables and "<strong>" not in tables and "best" not in tables.lower()


def test_an_audit_without_the_check_gets_a_note(report: tuple[Path, Path], tmp_path: Path) -> None:
    audit, _ = report
    old = tmp_path / "old_audit"
    old.mkdir()
    for path in audit.iterdir():
        if path.is_file() and path.name not in ("run_health.csv", "condition_health.csv"):
            (old / path.name).write_bytes(path.read_bytes())
    meta = json.loads((old / "audit.json").read_text())
    del meta["degenerate"], meta["convergence"]
    (old / "audit.json").write_text(json.dumps(meta))
    page = build_report(old, tmp_path / "report", figures=False).read_text()
    assert "This audit has no degenerate-predictor check" in page
    assert "†" not in (tmp_path / "report" / "tables.md").read_text()
