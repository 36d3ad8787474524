"""No run is dropped silently: incomplete run folders are errors naming them, or skipped by name on request;
an npz array of Python objects is named with its dtype."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from audit_helpers import load_npz

from kdfair.audit.engine import audit_runs
from kdfair.cli import main
from kdfair.discovery import find_runs
from kdfair.errors import PredictionFormatError
from kdfair.synthetic import make_synthetic_sweep


@pytest.fixture
def three_seeds(tmp_path: Path) -> Path:
    """3 seeds of teacher, NDS and DS at T = 2 (4 classes, 120 samples)."""
    make_synthetic_sweep(
        tmp_path / "sweep", n_classes=4, n_samples=120, seeds=[0, 1, 2], temperatures=[2], seed=4
    )
    return tmp_path / "sweep"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured.err
    return lines[0]


def test_folder_without_run_json_is_an_error_or_skipped_by_name(
    three_seeds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = three_seeds / "runs" / "ds_kd_T2_a0.8_s1"
    (folder / "run.json").unlink()
    assert main(["audit", str(three_seeds)]) == 2
    assert _one_error_line(capsys) == (
        f"kdfair audit: error: {folder}: incomplete run folder: has predictions.npz but no run.json; "
        "complete or remove it, or skip incomplete folders (kdfair audit --skip-incomplete)"
    )
    assert not (three_seeds / "audit").exists()

    assert main(["audit", str(three_seeds), "--skip-incomplete", "--permutations", "0"]) == 0
    out = capsys.readouterr().out
    assert f"skipped incomplete run folder {folder}: has predictions.npz but no run.json" in out
    info = json.loads((three_seeds / "audit" / "audit.json").read_text())
    assert info["skipped_runs"] == [{"folder": str(folder), "reason": "has predictions.npz but no run.json"}]
    assert info["n_runs"] == 8
    assert info["n_seeds"] == {"teacher": 3, "nds": 3, "ds_kd_T2_a0.8": 2}
    ds = next(c for c in info["conditions"] if c["id"] == "ds_kd_T2_a0.8")
    assert ds["seeds"] == [0, 2]


def test_json_mode_names_skipped_folders_on_stderr(
    three_seeds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = three_seeds / "runs" / "nds_s2"
    (folder / "predictions.npz").unlink()
    argv = ["audit", str(three_seeds), "--skip-incomplete", "--json", "--permutations", "0"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    reason = "has run.json but no predictions file (predictions.npz, predictions.parquet, predictions.csv)"
    assert f"skipped incomplete run folder {folder}: {reason}" in captured.err
    assert json.loads(captured.out)["audit"]["skipped_runs"] == [{"folder": str(folder), "reason": reason}]


def test_every_incomplete_kind_is_found(three_seeds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = three_seeds / "runs"
    (runs / "teacher_s2" / "run.json").unlink()
    (runs / "nds_s1" / "predictions.npz").rename(runs / "nds_s1" / "predictions.csv")  # a table: complete
    (runs / "orphan").mkdir()
    (runs / "orphan" / "predictions.parquet").write_bytes(b"")
    (runs / "notes").mkdir()
    (runs / "notes" / "readme.txt").write_text("not a run")  # neither file: not a run folder
    unreadable = runs / "ds_kd_T2_a0.8_s0" / "predictions.npz"
    real_access = os.access
    monkeypatch.setattr(
        "kdfair.discovery.os.access", lambda p, mode: Path(p) != unreadable and real_access(p, mode)
    )
    with pytest.raises(
        PredictionFormatError, match=r"ds_kd_T2_a0.8_s0: incomplete run folder: cannot be read"
    ):
        find_runs(three_seeds)
    found = find_runs(three_seeds, skip_incomplete=True)
    assert [(s.folder.name, s.reason) for s in found.skipped] == [
        ("ds_kd_T2_a0.8_s0", "cannot be read (predictions.npz: permission denied)"),
        ("orphan", "has predictions.parquet but no run.json"),
        ("teacher_s2", "has predictions.npz but no run.json"),
    ]
    assert len(found.run_dirs) == 7 and runs / "nds_s1" in found.run_dirs  # 9 runs, 2 incomplete


def test_unreadable_folder_is_named(three_seeds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder that cannot be listed (os.walk's error) is incomplete, named with the error."""
    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):
        for folder, dirs, files in real_walk(top, onerror=onerror, **kwargs):
            if Path(folder).name == "nds_s0":
                onerror(PermissionError(13, "Permission denied", folder))
                continue
            yield folder, dirs, files

    monkeypatch.setattr("kdfair.discovery.os.walk", walk)
    with pytest.raises(
        PredictionFormatError, match=r"nds_s0: incomplete run folder: cannot be read \(PermissionError"
    ):
        audit_runs(three_seeds)


def test_object_dtype_sample_id_is_named(three_seeds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = three_seeds / "runs" / "nds_s1"
    arrays = load_npz(folder / "predictions.npz")
    ids = np.array([f"id{i}" for i in arrays["sample_id"]], dtype=object)  # e.g. from a pandas object column
    np.savez(folder / "predictions.npz", **{**arrays, "sample_id": ids})  # pickled by numpy
    assert main(["audit", str(three_seeds)]) == 2
    assert _one_error_line(capsys) == (
        f"kdfair audit: error: {folder / 'predictions.npz'}: array 'sample_id' has dtype object (pickled "
        "Python objects), which kdfair does not load; save it as int or str, "
        "e.g. np.asarray(values, dtype=str)"
    )
