"""The audit judges convergence from each run folder's epochs.csv (kdfair.convergence) and copies the
learning curves: run_health.csv, condition_health.csv, learning_curves.csv, audit.json, console, --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kdfair.audit.engine import audit_runs
from kdfair.audit.write import write_audit
from kdfair.cli import main

EPOCHS = 20


def _converged(epochs: int = EPOCHS) -> np.ndarray:
    """10 time constants of an exponential: flat at the end and before."""
    return 0.3 + 2.0 * np.exp(-np.arange(1, epochs + 1) / 2.0)


def _falling(epochs: int = EPOCHS) -> np.ndarray:
    """A straight line from 2.3 to 1.0: still falling 2/19 of its range over the last 2 epochs."""
    return np.linspace(2.3, 1.0, epochs)


def _write(run_dir: Path, loss: np.ndarray, *, with_extras: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame({"epoch": np.arange(1, len(loss) + 1), "train_loss": loss})
    if with_extras:  # what kdfair's trainer writes (and more columns, which the audit ignores)
        frame.insert(1, "lr", 0.05)
        frame["train_acc"] = np.linspace(0.3, 0.9, len(loss))
        frame["images_per_s"] = 1000.0
    frame.to_csv(run_dir / "epochs.csv", index=False)
    return frame


@pytest.fixture
def curve_sweep(tiny_sweep: Path) -> Path:
    """Teacher converged; NDS still falling (both seeds); DS seed 0 converged, seed 1 falling. DS seed 1's
    file is the minimal external format (epoch, train_loss only)."""
    runs = tiny_sweep / "runs"
    for seed in (0, 1):
        _write(runs / f"teacher_s{seed}", _converged())
        _write(runs / f"nds_s{seed}", _falling())
    _write(runs / "ds_kd_T2_a0.8_s0", _converged())
    _write(runs / "ds_kd_T2_a0.8_s1", _falling(), with_extras=False)
    return tiny_sweep


def test_still_falling_runs_are_flagged_and_converged_ones_are_not(curve_sweep: Path, tmp_path: Path) -> None:
    out = write_audit(audit_runs(curve_sweep), tmp_path / "audit")
    runs = pd.read_csv(out / "run_health.csv").set_index(["condition", "seed"])
    assert runs["converged"].to_dict() == {
        ("teacher", 0): True,
        ("teacher", 1): True,
        ("nds", 0): False,
        ("nds", 1): False,
        ("ds_kd_T2_a0.8", 0): True,
        ("ds_kd_T2_a0.8", 1): False,
    }
    # the line falls 1/19 of its range per epoch: the 2-epoch window means differ by 2/19
    assert runs.loc[("nds", 0), "tail_change"] == pytest.approx(2 / 19)
    assert runs.loc[("nds", 0), "epochs"] == EPOCHS
    assert "still falling" in runs.loc[("nds", 0), "convergence_reason"]
    assert runs.loc[("teacher", 0), "final_lr_ratio"] == 1.0
    assert np.isnan(runs.loc[("ds_kd_T2_a0.8", 1), "final_lr_ratio"])  # no lr column
    conditions = pd.read_csv(out / "condition_health.csv").set_index("condition")
    assert conditions.loc["ds_kd_T2_a0.8", ["seeds_with_curves", "converged_seeds"]].tolist() == [2, 1]
    assert conditions["converged"].to_dict() == {"teacher": True, "nds": False, "ds_kd_T2_a0.8": False}
    info = json.loads((out / "audit.json").read_text())["convergence"]
    assert info["conditions"]["ds_kd_T2_a0.8"] == {
        "converged_seeds": 1,
        "seeds_with_curves": 2,
        "n_seeds": 2,
        "unconverged_seeds": [1],
    }
    assert info["conditions"]["nds"]["unconverged_seeds"] == [0, 1]
    assert info["tail_tolerance"] == 0.02 and info["late_tolerance"] == 0.05


def test_learning_curves_are_copied_into_the_audit(curve_sweep: Path, tmp_path: Path) -> None:
    out = write_audit(audit_runs(curve_sweep), tmp_path / "audit")
    curves = pd.read_csv(out / "learning_curves.csv")
    assert list(curves.columns) == ["condition", "seed", "epoch", "train_loss", "train_acc", "lr"]
    assert len(curves) == 6 * EPOCHS
    nds = curves.query("condition == 'nds' and seed == 1")
    np.testing.assert_allclose(nds["train_loss"], _falling())
    np.testing.assert_allclose(nds["train_acc"], np.linspace(0.3, 0.9, EPOCHS))
    assert (nds["lr"] == 0.05).all()
    minimal = curves.query("condition == 'ds_kd_T2_a0.8' and seed == 1")
    assert minimal["train_acc"].isna().all() and minimal["lr"].isna().all()


def test_console_and_json_warn(curve_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(curve_sweep), "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("nds ")).endswith("unconverged 2/2")
    assert next(line for line in lines if line.startswith("ds_kd")).endswith("unconverged 1/2")
    assert "unconverged" not in next(line for line in lines if line.startswith("teacher"))
    assert "ds_kd_T2_a0.8: NOT CONVERGED in 1 of 2 seed(s) with learning curves (seeds 1)" in lines
    assert any(line.startswith("converged: training loss flat at the end") for line in lines)
    assert main(["audit", str(curve_sweep), "--out", str(tmp_path / "b"), "--json"]) == 0
    table = {row["condition"]: row for row in json.loads(capsys.readouterr().out)["table"]}
    assert (table["teacher"]["converged"], table["teacher"]["converged_seeds"]) == (True, 2)
    assert (table["ds_kd_T2_a0.8"]["converged"], table["ds_kd_T2_a0.8"]["converged_seeds"]) == (False, 1)


def test_a_malformed_epochs_csv_is_a_named_warning(curve_sweep: Path) -> None:
    bad = curve_sweep / "runs" / "nds_s1" / "epochs.csv"
    bad.write_text("epoch,loss\n1,2.0\n2,1.0\n")
    result = audit_runs(curve_sweep)
    assert any(str(bad) in w and "train_loss" in w for w in result.warnings)
    conditions = result.health["condition_health"].set_index("condition")
    assert conditions.loc["nds", "seeds_with_curves"] == 1  # seed 1 left out, seed 0 still judged
