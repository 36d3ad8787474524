"""``kdfair audit`` on the command line: summary, --json, one-line errors with no partial output, warnings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz, rewrite_npz

from kdfair.cli import main
from kdfair.io import write_json_atomic


def _fails_cleanly(sweep: Path, capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the audit; assert exit 2, one stderr line containing ``needles``, nothing on stdout, no output."""
    assert main(["audit", str(sweep)]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("kdfair audit: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert captured.out == ""
    assert not (sweep / "audit").exists()
    assert not [p.name for p in sweep.iterdir() if p.name.startswith(".audit")]
    return lines[0]


def test_table_and_files(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a"
    assert main(["audit", str(sweep_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ds_kd_T8_a0.8" in text and "DPD group %" in text and "EOD region %" in text and str(out) in text
    acc = pd.read_csv(out / "summary.csv").query("condition == 'teacher' and metric == 'accuracy'").iloc[0]
    assert f"{100 * acc['mean']:.2f}±{100 * acc['std']:.2f}" in text
    assert (out / "audit.json").exists()


def test_json_matches_files(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    assert main(["audit", str(sweep_dir), "--out", str(out), "--json", "--level", "0.01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "kdfair.audit.summary/1" and doc["out_dir"] == str(out)
    assert doc["audit"] == json.loads((out / "audit.json").read_text())
    assert doc["audit"]["level"] == 0.01
    assert set(doc["files"]) >= {"summary.csv", "disagreement/nds.npy"}
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    assert len(doc["summary"]) == len(summary)
    for got, row in zip(doc["summary"], summary.to_dict(orient="records"), strict=True):
        assert got["metric"] == row["metric"] and got["mean"] == pytest.approx(row["mean"])
    counts = pd.read_csv(out / "significance_counts.csv").set_index("condition")
    table = {row["condition"]: row for row in doc["table"]}
    assert table["ds_kd_T8_a0.8"]["sc"] == counts.loc["ds_kd_T8_a0.8", "sc"]
    assert table["ds_kd_T8_a0.8"]["tc_bh"] == counts.loc["ds_kd_T8_a0.8", "tc_bh"]
    assert table["teacher"]["sc"] is None
    nds_acc = summary.query("condition == 'nds' and metric == 'accuracy'")["mean"].iloc[0]
    assert table["nds"]["accuracy_mean"] == pytest.approx(nds_acc)


def test_rerun_replaces_previous_audit(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tiny_sweep)]) == 0
    (tiny_sweep / "audit" / "stale.txt").write_text("old")
    assert main(["audit", str(tiny_sweep), "--k", "3"]) == 0
    assert not (tiny_sweep / "audit" / "stale.txt").exists()
    assert json.loads((tiny_sweep / "audit" / "audit.json").read_text())["individual_fairness"]["k"] == 3
    capsys.readouterr()


# ---- bad input: one line, exit 2, no partial output ----


def test_mismatched_lengths(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_sweep / "runs" / "nds_s1"
    rewrite_npz(run, y_true=load_npz(run / "predictions.npz")["y_true"][:-5])
    _fails_cleanly(tiny_sweep, capsys, "nds_s1", "'y_true' has shape (115,)")


def test_nan_logits(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_sweep / "runs" / "ds_kd_T2_a0.8_s0"
    logits = load_npz(run / "predictions.npz")["logits"]
    logits[3, 1], logits[7, 0] = np.nan, np.inf
    rewrite_npz(run, logits=logits)
    _fails_cleanly(tiny_sweep, capsys, "ds_kd_T2_a0.8_s0", "NaN or inf", "2 rows")


def test_labels_out_of_range(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_sweep / "runs" / "teacher_s1"
    y_true = load_npz(run / "predictions.npz")["y_true"]
    y_true[0] = 4
    rewrite_npz(run, y_true=y_true)
    _fails_cleanly(tiny_sweep, capsys, "teacher_s1", "labels outside [0, 4)")


def test_attribute_with_one_group(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_sweep / "runs" / "nds_s0"
    rewrite_npz(run, attr_group=np.zeros(120, dtype=np.int64))
    _fails_cleanly(tiny_sweep, capsys, "nds_s0", "'group' has only one group")


def test_class_absent_from_test_set(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run in (tiny_sweep / "runs").iterdir():
        y_true = load_npz(run / "predictions.npz")["y_true"]
        rewrite_npz(run, y_true=np.where(y_true == 2, 0, y_true))
    _fails_cleanly(tiny_sweep, capsys, "class 2 ('class_2') has no test samples")


def test_different_sample_ids(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tiny_sweep / "runs" / "ds_kd_T2_a0.8_s1"
    rewrite_npz(run, sample_id=load_npz(run / "predictions.npz")["sample_id"] + 1)
    _fails_cleanly(tiny_sweep, capsys, "teacher_s0", "ds_kd_T2_a0.8_s1", "different sample ids", "120 is not")


def test_one_seed_condition_skips_its_welch(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A condition with one seed is audited; only the Welch tests it takes part in are skipped, with a warning
    (it used to stop the whole audit, and with it the end-of-sweep audit of a one-seed sweep)."""
    shutil.rmtree(tiny_sweep / "runs" / "ds_kd_T2_a0.8_s1")
    assert main(["audit", str(tiny_sweep)]) == 0
    captured = capsys.readouterr()
    message = "nds_vs_ds ds_kd_T2_a0.8: Welch class test skipped ('ds_kd_T2_a0.8' has 1 seed"
    assert message in captured.out  # the console summary lists the warnings (stderr with --json)
    audit = tiny_sweep / "audit"
    assert any(message in w for w in json.loads((audit / "audit.json").read_text())["warnings"])
    counts = pd.read_csv(audit / "significance_counts.csv").set_index("condition")
    assert counts.loc["ds_kd_T2_a0.8", ["sc", "sc_bh", "tc", "tc_bh"]].isna().all()
    assert counts.loc["ds_kd_T2_a0.8", "n_seeds"] == 1
    assert pd.read_csv(audit / "class_tests.csv").empty  # the fixture's only DS condition
    metrics = pd.read_csv(audit / "run_metrics.csv")
    assert set(metrics.query("condition == 'ds_kd_T2_a0.8'")["seed"]) == {0}  # its one run is still measured


def test_one_seed_teacher_skips_only_tc(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A one-teacher sweep (the CIFAR-10S teacher of RESULTS.md 3b) keeps #SC and loses only #TC."""
    for run in (tiny_sweep / "runs").glob("teacher_s*"):
        if run.name != "teacher_s0":
            shutil.rmtree(run)
    assert main(["audit", str(tiny_sweep)]) == 0
    assert "teacher_vs_ds ds_kd_T2_a0.8: Welch class test skipped" in capsys.readouterr().out
    counts = pd.read_csv(tiny_sweep / "audit" / "significance_counts.csv")
    assert counts["tc"].isna().all() and counts["sc"].notna().all()
    tests = pd.read_csv(tiny_sweep / "audit" / "class_tests.csv")
    assert set(tests["comparison"]) == {"nds_vs_ds"} and len(tests) == counts["n_classes"].sum()


def test_truncated_npz(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_sweep / "runs" / "nds_s1" / "predictions.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _fails_cleanly(tiny_sweep, capsys, "nds_s1", "truncated or corrupt npz")


def test_unknown_role(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = json.loads((tiny_sweep / "runs" / "nds_s0" / "run.json").read_text())
    write_json_atomic(tiny_sweep / "runs" / "nds_s0" / "run.json", {**meta, "role": "student"})
    _fails_cleanly(tiny_sweep, capsys, "nds_s0", "unknown role 'student'", "teacher, nds, ds")


# ---- undefined cases: warnings named in audit.json, not crashes ----


def _audit_json(sweep: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["audit", str(sweep), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["audit"] == json.loads((sweep / "audit" / "audit.json").read_text())
    return doc["audit"]


def test_group_without_positives_is_a_named_warning(
    tiny_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    y_true = load_npz(tiny_sweep / "runs" / "teacher_s0" / "predictions.npz")["y_true"]
    for run in (tiny_sweep / "runs").iterdir():  # group 1 = exactly the class-3 samples: no class-0 positives
        rewrite_npz(run, attr_group=(y_true == 3).astype(np.int64))
    info = _audit_json(tiny_sweep, capsys)
    hits = [w for w in info["warnings"] if w.startswith("nds_s0: TPR difference") and "class 0 group 1" in w]
    assert hits, info["warnings"]


def test_zero_variance_welch_is_a_named_warning(tiny_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tiny_sweep / "runs"
    for condition in ("nds", "ds_kd_T2_a0.8"):  # every seed predicts the same: zero variance in both groups
        shutil.copy(
            runs / f"{condition}_s0" / "predictions.npz", runs / f"{condition}_s1" / "predictions.npz"
        )
    info = _audit_json(tiny_sweep, capsys)
    hits = [
        w for w in info["warnings"] if w.startswith("nds_vs_ds ds_kd_T2_a0.8: Welch test undefined for 4")
    ]
    assert hits, info["warnings"]
    tests = pd.read_csv(tiny_sweep / "audit" / "class_tests.csv")
    undefined = tests[tests["comparison"] == "nds_vs_ds"]
    assert undefined["undefined"].all() and not undefined["significant"].any()
    assert undefined["p_value"].isna().all()


def test_missing_teacher_skips_comparisons_with_warning(
    tiny_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in (0, 1):
        shutil.rmtree(tiny_sweep / "runs" / f"teacher_s{seed}")
    info = _audit_json(tiny_sweep, capsys)
    assert "no teacher runs: #TC (teacher vs DS) comparisons skipped" in info["warnings"]
    assert "no teacher runs: disagreement matrices skipped" in info["warnings"]
    counts = pd.read_csv(tiny_sweep / "audit" / "significance_counts.csv")
    assert counts["tc"].isna().all() and counts["sc"].notna().all()
    tests = pd.read_csv(tiny_sweep / "audit" / "class_tests.csv")
    assert set(tests["comparison"]) == {"nds_vs_ds"} and len(tests) == counts["n_classes"].sum()
    assert not list((tiny_sweep / "audit" / "disagreement").iterdir())
