"""Reports of audits that lack some roles (predictions from elsewhere): no NDS runs, no teacher runs, DS
only, no DS. Each sweep is audited by the real engine through ``kdfair report RUNS_DIR``; the tables must hold
exactly the values recomputed from the audit's per-run files, with '-' and a note where a count needs the
missing role, and the figures that need it are left out with a note."""

from __future__ import annotations

import contextlib
import io

import html5lib
import numpy as np
import pandas as pd
import pytest
from report_sweep import copy_sweep
from test_report_tables import read_table

from kdfair.cli import main
from kdfair.report import load_audit
from kdfair.report.figures import _disagreement_condition

DROPPED = {"no_nds": ("nds",), "no_teacher": ("teacher",), "ds_only": ("teacher", "nds"), "no_ds": ("ds",)}
CONDITIONS = [("teacher", "Teacher", "-"), ("nds", "NDS", "-"), ("ds_kd_T2_a0.8", "DS", "2")]
CONDITIONS += [("ds_kd_T4_a0.8", "DS", "4")]
VS_TEMPERATURE = {"fig3_significance_vs_temperature", "fig4_fairness_group", "fig6_individual_fairness"}
FIGURES = {
    "no_nds": {"fig1_class_accuracy", "fig2_disagreement", *VS_TEMPERATURE, "fig7_bird_group"},
    # without teacher runs there are no teacher features: kNN individual fairness is skipped (SPEC §6)
    "no_teacher": {"fig1_class_accuracy", *VS_TEMPERATURE - {"fig6_individual_fairness"}, "fig7_bird_group"},
    "ds_only": {*VS_TEMPERATURE - {"fig6_individual_fairness"}, "fig7_bird_group"},
    "no_ds": {"fig7_bird_group"},  # nothing to plot against temperature
}
NO_NDS_NOTE = "The audit has no NDS runs: #SC (NDS vs DS) is undefined and shown as '-'."
NO_TEACHER_NOTE = "The audit has no teacher runs: #TC (teacher vs DS) is undefined and shown as '-'."


@pytest.fixture(scope="module", params=list(DROPPED))
def partial(request, real_sweep, tmp_path_factory):
    """(case, runs folder, stderr) after ``kdfair report RUNS_DIR`` on the sweep without some roles."""
    root = copy_sweep(real_sweep, tmp_path_factory.mktemp(request.param) / "sweep", DROPPED[request.param])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["report", str(root)]) == 0
    return request.param, root, err.getvalue()


def kept(case: str) -> list[tuple[str, str, str]]:
    return [c for c in CONDITIONS if c[0].split("_")[0] not in DROPPED[case]]


def stat_text(runs: pd.DataFrame, cid: str, metric: str, attribute: str = "") -> str:
    """mean ± std (ddof 1) in percent of one condition's per-seed values in run_metrics.csv."""
    mine = runs[(runs.condition == cid) & (runs.metric == metric) & (runs.attribute.fillna("") == attribute)]
    values = 100 * mine.value.to_numpy()
    assert len(values) == 2
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def expected_table1(case: str, root) -> list[list[str]]:
    runs = pd.read_csv(root / "audit" / "run_metrics.csv")
    tests = pd.read_csv(root / "audit" / "class_tests.csv")
    rows = []
    for cid, model, temperature in kept(case):
        counts = []
        for comparison, role in (("nds_vs_ds", "nds"), ("teacher_vs_ds", "teacher")):
            mine = tests[(tests.comparison == comparison) & (tests.condition == cid)]
            defined = cid.startswith("ds_") and role not in DROPPED[case]
            assert len(mine) == (4 if defined else 0)  # 4 classes
            counts += [str(int(mine[c].sum())) if defined else "-" for c in ("significant", "significant_bh")]
        rows.append([model, temperature, "2", stat_text(runs, cid, "accuracy"), *counts])
    return rows


def test_table1_values_and_notes(partial):
    case, root, err = partial
    index = root / "report" / "index.html"
    header, rows = read_table(index, "table1_accuracy_significance")
    assert header == ["Model", "T", "Seeds", "Test Acc. (%)", "#SC", "#SC (BH)", "#TC", "#TC (BH)"]
    assert rows == expected_table1(case, root)
    text = (root / "report" / "tables" / "table1_accuracy_significance.md").read_text()
    assert (NO_NDS_NOTE in text) == (case in ("no_nds", "ds_only"))
    assert (NO_TEACHER_NOTE in text) == (case in ("no_teacher", "ds_only"))
    if case == "no_nds":  # #TC is still shown
        assert [r[6] for r in rows[1:]] != ["-", "-"]
    assert "Traceback" not in err and "auditing the" in err


def test_fairness_table_values(partial):
    """EOD and DPD marked n.s. within their noise floor, then the floor (%) and p of EOD and DPD."""
    case, root, _ = partial
    runs = pd.read_csv(root / "audit" / "run_metrics.csv")
    floor = pd.read_csv(root / "audit" / "noise_floor_summary.csv").query("attribute == 'group'")
    floor = floor.set_index(["condition", "metric"])
    _, rows = read_table(root / "report" / "index.html", "table2_fairness_group")

    def marked(cid: str, metric: str) -> str:
        within = floor.loc[(cid, metric), "p_value"] > 0.05
        return stat_text(runs, cid, metric, "group") + (" n.s." if within else "")

    def floor_cells(cid: str) -> list[str]:
        found = [floor.loc[(cid, m)] for m in ("eod", "dpd")]
        return [text for f in found for text in (f"{100 * f['null_mean']:.2f}", f"{f['p_value']:.3f}")]

    assert rows == [
        [model, temperature, stat_text(runs, cid, "accuracy"), marked(cid, "eod"), marked(cid, "dpd")]
        + floor_cells(cid)
        for cid, model, temperature in kept(case)
    ]


def test_figures_present_and_left_out_with_notes(partial):
    case, root, _ = partial
    report = root / "report"
    assert {p.stem for p in (report / "figures").glob("*.png")} == FIGURES[case]
    page = report / "index.html"
    html5lib.HTMLParser(strict=True).parse(page.read_bytes())
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == len(FIGURES[case])
    assert ("Figure 2 (disagreement; needs teacher and DS runs) omitted" in text) == (case != "no_nds")
    inheritance = "Teacher vs student table for &#x27;group&#x27; (needs teacher, NDS and mean-DEO) omitted"
    assert (inheritance in text) == (case != "no_ds")
    if case == "no_nds":
        assert "differs significantly from the teacher (the audit has no NDS runs" in text
        assert "The audit has no NDS runs, so #SC is not shown." in text
    if case in ("ds_only", "no_ds"):
        assert "Figure 1 (class accuracy; needs DS runs and teacher or NDS runs) omitted" in text
    if case == "no_ds":
        assert "Figures 4-5 for &#x27;group&#x27; (needs DS runs with EOD or DPD) omitted" in text


def test_disagreement_condition_with_empty_counts(partial):
    """The DS Figure 2 shows: largest #SC, else largest #TC (no NDS: #SC is empty), else the last DS."""
    case, root, _ = partial
    counts = pd.read_csv(root / "audit" / "significance_counts.csv")
    chosen = _disagreement_condition(load_audit(root / "audit"))
    if case == "no_ds":
        assert counts.empty and chosen is None
        return
    assert counts.sc.isna().all() == ("nds" in DROPPED[case])  # the empty #SC that used to crash
    assert counts.tc.isna().all() == ("teacher" in DROPPED[case])
    if case == "ds_only":
        assert chosen == ("ds_kd_T4_a0.8", "the last temperature")
    else:
        key = "tc" if case == "no_nds" else "sc"
        best = counts.condition[int(np.argmax(counts[key].to_numpy()))]
        why = "the largest #TC" if case == "no_nds" else "the most classes affected against the NDS, #SC"
        assert chosen == (best, why)
