"""The noise floor in the report (kdfair.report.noise): marks, floor columns, two tables, captions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kdfair.audit.engine import audit_runs
from kdfair.audit.write import write_audit
from kdfair.report import build_report
from kdfair.report.load import load_audit
from kdfair.report.noise import NOT_SIGNIFICANT, table_fairness_tests, table_noise_floor
from kdfair.report.tables import table_group_fairness
from kdfair.synthetic import make_synthetic_sweep


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DS students lose 30 points on group 1; teacher and NDS errors ignore the group."""
    root = tmp_path_factory.mktemp("report_noise")
    effects = {"group_gap": {"teacher": 0.0, "nds": 0.0, "ds": 0.3}, "degrade_drop": 0.0}
    make_synthetic_sweep(
        root, n_classes=4, n_samples=600, seeds=[0, 1, 2], temperatures=[1, 4], effects=effects
    )
    result = audit_runs(root, representation="none", auroc="never", permutations=99)
    return write_audit(result, root / "audit")


def test_table2_marks_values_within_the_floor_and_shows_floor_and_p(audit_dir: Path):
    audit = load_audit(audit_dir)
    table = table_group_fairness(audit, "group")
    assert table.columns[-4:] == ["EOD floor (%)", "EOD p", "DPD floor (%)", "DPD p"]
    summary = pd.read_csv(audit_dir / "noise_floor_summary.csv").set_index(
        ["condition", "metric", "attribute"]
    )
    for cond, row in zip(audit.conditions, table.rows, strict=True):
        found = summary.loc[(cond.id, "eod", "group")]
        eod_text = row[table.columns.index("EOD (%)")].text()
        assert eod_text.endswith(NOT_SIGNIFICANT) == (found["p_value"] > 0.05)
        assert row[-4] == f"{100 * found['null_mean']:.2f}" and row[-3] == f"{found['p_value']:.3f}"
    teacher, ds = table.rows[0], table.rows[-1]
    assert teacher[table.columns.index("EOD (%)")].text().endswith(NOT_SIGNIFICANT)
    assert not ds[table.columns.index("EOD (%)")].text().endswith(NOT_SIGNIFICANT)


def test_noise_and_test_tables(audit_dir: Path):
    audit = load_audit(audit_dir)
    floor = table_noise_floor(audit, "group")
    assert len(floor.rows) == 4 * 4 and floor.breaks == [4, 8, 12]  # 4 metrics x 4 conditions
    tests = table_fairness_tests(audit, "group")
    assert len(tests.rows) == 4 * 2  # 4 metrics x 2 DS conditions
    eod_vs_nds = float(tests.rows[0][2])
    assert eod_vs_nds > 5  # the DS is less fair than the NDS, in pp


def test_report_files_carry_the_noise_floor(audit_dir: Path, tmp_path: Path):
    index = build_report(audit_dir, tmp_path / "report")
    text = (tmp_path / "report" / "tables.md").read_text()
    assert "Noise floor of group fairness, attribute 'group'" in text and "n.s.: the value does not" in text
    page = index.read_text()
    assert "noise floor, from the mean to the 95th percentile" in page  # Figures 4-5 caption
    assert (tmp_path / "report" / "tables" / "fairness_tests_group.tex").is_file()
