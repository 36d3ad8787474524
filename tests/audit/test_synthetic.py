"""kdfair.synthetic: the sweeps follow the prediction format and carry the planted effects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audit_helpers import load_npz

from kdfair.audit.engine import AuditResult, audit_runs
from kdfair.audit.write import write_audit
from kdfair.discovery import discover_runs
from kdfair.predictions import load_predictions, read_run_meta
from kdfair.synthetic import make_synthetic_sweep, write_example


def test_float16_sweep_loads_and_plants_effect(tmp_path: Path) -> None:
    runs = make_synthetic_sweep(
        tmp_path,
        n_classes=5,
        n_samples=4000,
        seeds=[0],
        temperatures=[1, 6],
        logit_dtype="float16",
        effects={
            "degraded_classes": (2,),
            "degrade_drop": 0.5,
            "accuracy": {"teacher": 0.9, "nds": 0.7, "ds": 0.7},
        },
    )
    assert [r.name for r in runs] == ["teacher_s0", "nds_s0", "ds_kd_T1_a0.8_s0", "ds_kd_T6_a0.8_s0"]
    assert load_npz(runs[0] / "predictions.npz")["logits"].dtype == np.float16
    accuracy = {}
    for run_dir in runs:
        run = load_predictions(run_dir)
        assert run.probs.dtype == np.float32 and np.allclose(run.probs.sum(axis=1), 1.0, atol=1e-3)
        hit = run.y_pred == run.y_true
        accuracy[run_dir.name] = [hit[run.y_true == c].mean() for c in range(5)]
    low, high = np.array(accuracy["ds_kd_T1_a0.8_s0"]), np.array(accuracy["ds_kd_T6_a0.8_s0"])
    assert low[2] - high[2] == pytest.approx(0.5, abs=0.08)  # the planted drop, 800 samples per class
    assert np.abs(np.delete(low - high, 2)).max() < 0.08
    assert np.mean(accuracy["teacher_s0"]) == pytest.approx(0.9, abs=0.05)


def test_example_is_auditable(tmp_path: Path) -> None:
    runs = write_example(tmp_path)
    assert len(runs) == len(discover_runs(tmp_path)) == 3 * 6
    assert read_run_meta(runs[-1]).temperature == 8.0
    arrays = load_npz(runs[0] / "predictions.npz")
    assert arrays["logits"].shape == (2000, 10) and {"attr_group", "attr_region"} <= set(arrays)
    result = audit_runs(tmp_path)
    assert result.info["attributes"]["region"] == ["0", "1", "2"]
    assert not result.warnings


def test_failed_write_leaves_previous_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_synthetic_sweep(tmp_path, n_classes=3, n_samples=60, seeds=[0, 1], temperatures=[2])
    result = audit_runs(tmp_path)
    write_audit(result, tmp_path / "audit")
    before = (tmp_path / "audit" / "summary.csv").read_text()

    def boom(res: AuditResult, folder: Path) -> None:
        (folder / "audit.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr("kdfair.audit.write._write_tables", boom)
    with pytest.raises(OSError):
        write_audit(result, tmp_path / "audit")
    assert (tmp_path / "audit" / "summary.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit", "representation.npz", "runs"]
