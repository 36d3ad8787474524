"""The audit flags degenerate students (kdfair.degenerate): run_health.csv, condition_health.csv,
audit.json, the console summary and the --json table; values recomputed from the prediction files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz, rewrite_npz

from kdfair.audit.engine import audit_runs
from kdfair.audit.write import write_audit
from kdfair.cli import main

CONSTANT_RUN = "ds_kd_T2_a0.8_s1"
CONSTANT_CLASS = 3


@pytest.fixture
def constant_sweep(tiny_sweep: Path) -> Path:
    """The tiny sweep with DS T=2 seed 1 replaced by a constant predictor (always class 3)."""
    run = tiny_sweep / "runs" / CONSTANT_RUN
    logits = load_npz(run / "predictions.npz")["logits"]
    constant = np.zeros_like(logits)
    constant[:, CONSTANT_CLASS] = 1.0
    rewrite_npz(run, logits=constant)
    return tiny_sweep


def _shares(run_dir: Path) -> tuple[float, float]:
    """(largest predicted-class share, that class's true share), recomputed from predictions.npz."""
    arrays = load_npz(run_dir / "predictions.npz")
    y_pred = arrays["logits"].argmax(axis=1)
    top = np.bincount(y_pred, minlength=4).argmax()
    return float(np.mean(y_pred == top)), float(np.mean(arrays["y_true"] == top))


def test_constant_predictor_is_flagged_and_normal_ones_are_not(constant_sweep: Path, tmp_path: Path) -> None:
    result = audit_runs(constant_sweep)
    out = write_audit(result, tmp_path / "audit")
    runs = pd.read_csv(out / "run_health.csv")
    assert len(runs) == 6  # teacher, NDS, DS x 2 seeds
    for row in runs.itertuples():
        name = {"teacher": "teacher", "nds": "nds"}.get(row.condition, "ds_kd_T2_a0.8")
        top_share, true_share = _shares(constant_sweep / "runs" / f"{name}_s{row.seed}")
        assert row.top_share == pytest.approx(top_share) and row.top_true_share == pytest.approx(true_share)
        assert bool(row.degenerate) == (row.condition == "ds_kd_T2_a0.8" and row.seed == 1)
    flagged = runs[runs["degenerate"]].iloc[0]
    assert (flagged.top_class, flagged.top_share, flagged.classes_predicted) == (CONSTANT_CLASS, 1.0, 1)
    assert flagged.entropy_ratio == 0.0 and "100.0% of predictions are class 3" in flagged.degenerate_reason
    conditions = pd.read_csv(out / "condition_health.csv").set_index("condition")
    assert conditions.loc["ds_kd_T2_a0.8", "degenerate_seeds"] == 1
    assert conditions["degenerate"].to_dict() == {"teacher": False, "nds": False, "ds_kd_T2_a0.8": True}
    info = json.loads((out / "audit.json").read_text())
    assert info["degenerate"]["conditions"] == {"ds_kd_T2_a0.8": {"degenerate_seeds": [1], "n_seeds": 2}}
    assert info["degenerate"]["share_threshold"] == 0.9 and info["degenerate"]["mark"] == "†"
    # the constant run's DPD and EOD are exactly 0: the numbers the flag guards
    metrics = result.run_metrics.query("condition == 'ds_kd_T2_a0.8' and seed == 1")
    assert (metrics.query("metric in ('dpd', 'eod', 'deo_mean', 'deo_max')")["value"] == 0.0).all()


def test_console_marks_the_fairness_numbers(
    constant_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(constant_sweep), "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    ds = next(line for line in lines if line.startswith("ds_kd_T2_a0.8"))
    nds = next(line for line in lines if line.startswith("nds"))
    assert ds.endswith("DEGENERATE 1/2")
    assert ds.count("†") == 2 and "†" not in nds  # DPD and EOD of the one attribute 'group'
    summary = pd.read_csv(tmp_path / "a" / "summary.csv").set_index(["condition", "metric"])
    dpd = summary.loc[("ds_kd_T2_a0.8", "dpd"), "mean"]
    columns = re.split(r"\s{2,}", lines[0].strip())  # cells are joined by two or more spaces
    cells = dict(zip(columns, re.split(r"\s{2,}", ds.strip()), strict=True))
    assert cells["DPD group %"].startswith(f"{100 * dpd:.2f}") and cells["DPD group %"].endswith(" †")
    assert cells["EOD group %"].endswith(" †") and cells["health"] == "DEGENERATE 1/2"
    assert any(line.startswith("ds_kd_T2_a0.8: DEGENERATE predictor in 1 of 2 seed(s)") for line in lines)
    assert any(line.startswith("†: degenerate when the largest predicted-class share") for line in lines)


def test_json_table_carries_the_flag(
    constant_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(constant_sweep), "--out", str(tmp_path / "b"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    table = {row["condition"]: row for row in doc["table"]}
    assert (table["ds_kd_T2_a0.8"]["degenerate"], table["ds_kd_T2_a0.8"]["degenerate_seeds"]) == (True, 1)
    assert (table["nds"]["degenerate"], table["nds"]["degenerate_seeds"]) == (False, 0)
    assert table["nds"]["converged"] is None and table["nds"]["seeds_with_curves"] == 0  # no epochs.csv
    assert doc["audit"]["degenerate"]["conditions"] == {
        "ds_kd_T2_a0.8": {"degenerate_seeds": [1], "n_seeds": 2}
    }
    assert {"run_health.csv", "condition_health.csv"} <= set(doc["files"])


def test_a_healthy_sweep_prints_no_health_column(tiny_sweep: Path, tmp_path: Path, capsys) -> None:
    assert main(["audit", str(tiny_sweep), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "health" not in out.splitlines()[0] and "†" not in out and "DEGENERATE" not in out
    assert json.loads((tmp_path / "c" / "audit.json").read_text())["degenerate"]["conditions"] == {}
