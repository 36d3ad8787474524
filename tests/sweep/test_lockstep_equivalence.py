"""A lockstep sweep and a one-by-one sweep (``--no-lockstep``) give the same runs and the same audit.

Same predictions.npz, config.json and run.json for every run, and the same audit tables, byte for byte.
Only epochs.csv's timings (``images_per_s``, ``seconds``) and its ``lockstep_students`` column differ
(and so checkpoint.pt, which holds that log).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from sweep_helpers import TINY, predictions_equal, run_cli, write_config

TIMING = {"images_per_s", "seconds", "lockstep_students"}
DS_RUNS = ["ds_kd_T1_a0.8_s0", "ds_kd_T4_a0.8_s0", "ds_kd_T1_a0.8_s1", "ds_kd_T4_a0.8_s1"]


def _epochs(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_no_lockstep_gives_the_same_runs_and_audit(reference: tuple[Path, str], tmp_path: Path) -> None:
    ref, _ = reference  # the lockstep sweep, audited
    out = tmp_path / "out"
    for run_id in ("teacher_s0", "teacher_s1", "nds_s0", "nds_s1"):  # not trained in lockstep either way
        shutil.copytree(ref / "runs" / run_id, out / "runs" / run_id)
    config = write_config(tmp_path, TINY)
    status, stdout, err = run_cli("sweep", str(config), "--out", str(out), "--no-lockstep", "--no-report")
    assert status == 0, err
    assert (
        "sweep tiny: 8 runs in 8 units" in stdout
        and "[5/8] start ds_kd_T1_a0.8_s0 (ds_kd_T1_a0.8_s0)" in stdout
    )

    run_ids = sorted(p.name for p in (ref / "runs").iterdir())
    assert run_ids == sorted(p.name for p in (out / "runs").iterdir()) and len(run_ids) == 8
    for run_id in run_ids:
        mine, theirs = out / "runs" / run_id, ref / "runs" / run_id
        assert predictions_equal(mine / "predictions.npz", theirs / "predictions.npz") == [], run_id
        for name in ("config.json", "run.json"):
            assert json.loads((mine / name).read_text()) == json.loads((theirs / name).read_text()), name
    for run_id in DS_RUNS:
        mine, theirs = (_epochs(folder / "runs" / run_id / "epochs.csv") for folder in (out, ref))
        assert [r["lockstep_students"] for r in mine] == ["1", "1"]
        assert [r["lockstep_students"] for r in theirs] == ["2", "2"]
        strip = [[{k: v for k, v in r.items() if k not in TIMING} for r in rows] for rows in (mine, theirs)]
        assert strip[0] == strip[1] and len(strip[0]) == 2

    audit_files = sorted(p.relative_to(ref / "audit") for p in (ref / "audit").rglob("*") if p.is_file())
    assert (
        sorted(p.relative_to(out / "audit") for p in (out / "audit").rglob("*") if p.is_file()) == audit_files
    )
    assert {"summary.csv", "significance_counts.csv", "class_tests.csv"} <= {str(p) for p in audit_files}
    for name in audit_files:
        if name.name != "audit.json":
            assert (out / "audit" / name).read_bytes() == (ref / "audit" / name).read_bytes(), name
    info, ref_info = (json.loads((folder / "audit" / "audit.json").read_text()) for folder in (out, ref))
    assert _without_paths(info, out) == _without_paths(ref_info, ref)


def _without_paths(value: object, root: Path) -> object:
    """``value`` with the sweep folder's path replaced by ``<sweep>`` (audit.json names the folder)."""
    return json.loads(json.dumps(value).replace(str(root), "<sweep>"))
