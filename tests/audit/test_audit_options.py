"""The audit's options as data (kdfair.audit.options): recorded in audit.json ``options`` as the keyword
arguments of ``audit_runs``, read back strictly, and repeating the audit when passed back; older audit.json
files without them; an audit of chosen run folders (``run_dirs``); the audit folder's writer."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_helpers import load_npz

from kdfair.audit import AuditOptions, Run, audit_predictions
from kdfair.audit.engine import audit_runs
from kdfair.audit.write import AUDIT_FILES, write_audit
from kdfair.discovery import select_runs
from kdfair.errors import KdfairError, PredictionFormatError


def test_options_are_the_keyword_arguments_of_audit_runs() -> None:
    parameters = set(inspect.signature(audit_runs).parameters) - {"runs_dir", "jobs", "progress"}
    assert set(AuditOptions().as_dict()) == parameters
    assert AuditOptions().as_dict() == {
        "level": 0.05,
        "k": 5,
        "representation": "auto",
        "auroc": "auto",
        "permutations": 999,
        "skip_incomplete": False,
        "run_dirs": None,
    }


def test_audit_json_records_the_options_and_they_repeat_the_audit(tiny_sweep: Path) -> None:
    orphan = tiny_sweep / "runs" / "orphan"  # predictions without run.json: an incomplete folder
    orphan.mkdir()
    (orphan / "predictions.npz").write_bytes(
        (tiny_sweep / "runs" / "nds_s1" / "predictions.npz").read_bytes()
    )
    asked = {"level": 0.1, "k": 3, "representation": "input", "auroc": "never", "permutations": 19}
    first = write_audit(audit_runs(tiny_sweep, skip_incomplete=True, **asked), tiny_sweep / "audit")
    meta = json.loads((first / "audit.json").read_text())
    assert meta["options"] == {**asked, "skip_incomplete": True, "run_dirs": None}
    assert meta["skipped_runs"] == [{"folder": str(orphan), "reason": "has predictions.npz but no run.json"}]
    options, note = AuditOptions.from_audit_json(meta, "audit.json")
    assert note is None and options == AuditOptions(**{**asked, "skip_incomplete": True})
    again = write_audit(audit_runs(tiny_sweep, **options.as_dict()), tiny_sweep / "again")
    for name in ("summary.csv", "run_metrics.csv", "class_tests.csv", "noise_floor.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(first / name), pd.read_csv(again / name))
    assert json.loads((again / "audit.json").read_text())["options"] == meta["options"]


def test_a_representation_path_is_recorded_absolute(
    tiny_sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_sweep)
    result = audit_runs(".", representation="representation.npz", permutations=0)
    assert result.info["options"]["representation"] == str(tiny_sweep / "representation.npz")
    assert result.info["individual_fairness"]["option"] == str(tiny_sweep / "representation.npz")


def test_options_read_back_strictly() -> None:
    with pytest.raises(
        KdfairError, match=r"audit.json options: unknown option\(s\) alpha; valid: level, k, "
    ):
        AuditOptions.from_audit_json({"options": {"level": 0.05, "alpha": 1}}, "audit.json")
    with pytest.raises(KdfairError, match=r"^audit.json options: --k must be >= 2 .*, got 5.0$"):
        AuditOptions.from_audit_json({"options": {"k": 5.0}}, "audit.json")
    with pytest.raises(KdfairError, match="skip_incomplete must be true or false, got 'yes'"):
        AuditOptions.from_dict({"skip_incomplete": "yes"})
    with pytest.raises(KdfairError, match=r"run_dirs: '\.\./other' is not a folder path relative"):
        AuditOptions.from_dict({"run_dirs": ["runs/a", "../other"]})
    with pytest.raises(KdfairError, match="--permutations must be an integer >= 0, got -1"):
        AuditOptions(permutations=-1)
    partial = AuditOptions.from_dict({"level": 0.01, "run_dirs": ["runs/b", "runs/a"]})
    assert partial == AuditOptions(level=0.01, run_dirs=("runs/b", "runs/a"))  # absent keys: defaults


def test_an_audit_json_without_options_gives_what_it_records_with_a_note() -> None:
    old = {
        "level": 0.01,
        "individual_fairness": {
            "representation": "teacher features (teacher_s0)",
            "option": "teacher",
            "k": 7,
        },
        "auroc": {"mode": "never", "computed": False},
        "noise_floor": {"permutations": 0, "computed": False},
        "skipped_runs": [],
    }
    options, note = AuditOptions.from_audit_json(old, "a/audit.json")
    assert options == AuditOptions(level=0.01, k=7, representation="teacher", auroc="never", permutations=0)
    assert note == (
        "a/audit.json records no 'options' (an audit by an older kdfair): its options are read from what it "
        "records (level, k, representation, auroc, permutations); skip_incomplete: the default"
    )
    oldest = {"level": 0.2, "individual_fairness": {"representation": "none", "k": 5}}  # before the twins
    options, note = AuditOptions.from_audit_json(oldest, "audit.json")
    assert options == AuditOptions(level=0.2)  # representation: the default, auto
    assert note is not None and note.endswith(
        "(level, k); representation, auroc, permutations, skip_incomplete: the default"
    )


def test_run_dirs_audit_only_those_folders(tiny_sweep: Path) -> None:
    runs = tiny_sweep / "runs"
    (runs / "nds_s0" / "run.json").unlink()  # not chosen: its incomplete folder is not looked at
    chosen = ["runs/teacher_s0", runs / "teacher_s1", "runs/ds_kd_T2_a0.8_s0", "runs/ds_kd_T2_a0.8_s1"]
    result = audit_runs(tiny_sweep, run_dirs=chosen, permutations=0)
    assert result.info["n_runs"] == 4 and result.info["n_seeds"] == {"teacher": 2, "ds_kd_T2_a0.8": 2}
    assert result.info["options"]["run_dirs"] == [
        "runs/ds_kd_T2_a0.8_s0",
        "runs/ds_kd_T2_a0.8_s1",
        "runs/teacher_s0",
        "runs/teacher_s1",
    ]
    accuracy = result.run_metrics.query("metric == 'accuracy' and condition == 'teacher'")
    arrays = load_npz(runs / "teacher_s1" / "predictions.npz")
    expected = np.mean(arrays["logits"].argmax(axis=1) == arrays["y_true"])
    assert accuracy.set_index("seed").loc[1, "value"] == pytest.approx(expected)
    with pytest.raises(PredictionFormatError, match=r"runs/nds_s9: incomplete run folder: no such folder"):
        audit_runs(tiny_sweep, run_dirs=[*chosen, "runs/nds_s9"])
    with pytest.raises(KdfairError, match="is not below the runs folder"):
        audit_runs(tiny_sweep, run_dirs=[tiny_sweep.parent])
    found = select_runs(tiny_sweep, ["runs/nds_s9", "runs/nds_s0", "runs/teacher_s0"], skip_incomplete=True)
    assert found.run_dirs == [runs / "teacher_s0"]
    assert [(s.folder, s.reason) for s in found.skipped] == [
        (runs / "nds_s0", "has predictions.npz but no run.json"),
        (runs / "nds_s9", "no such folder"),
    ]


def test_in_memory_audit_records_its_options(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    runs = [
        Run(role=role, seed=seed, y_true=y, logits=rng.normal(size=(30, 3)), attributes={"g": y % 2})
        for role in ("teacher", "nds")
        for seed in (0, 1)
    ]
    result = audit_predictions(runs, level=0.2, k=4, representation="none", permutations=0)
    assert result.info["options"] == {
        **AuditOptions().as_dict(),
        "level": 0.2,
        "k": 4,
        "representation": "none",
        "permutations": 0,
    }


def test_write_audit_writes_the_listed_files(tiny_sweep: Path) -> None:
    out = write_audit(audit_runs(tiny_sweep, permutations=0), tiny_sweep / "audit")
    written = {p.name + ("/" if p.is_dir() else "") for p in out.iterdir()}
    assert written == set(AUDIT_FILES) - {"learning_curves.csv"}  # no run has epochs.csv
    assert sorted(p.name for p in (out / "disagreement").iterdir()) == ["ds_kd_T2_a0.8.npy", "nds.npy"]
