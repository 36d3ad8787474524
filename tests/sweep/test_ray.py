"""The Ray executor on a local Ray instance gives the same predictions as the serial executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import TINY, assert_unit_progress, merged, predictions_equal, run_cli, write_config


@pytest.mark.ray
def test_ray_executor_matches_serial(reference: tuple[Path, str], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    ref, _ = reference
    config = write_config(tmp_path, merged(TINY, seeds=[1]))
    out = tmp_path / "out"
    status, stdout, err = run_cli(
        "sweep", str(config), "--out", str(out), "--executor", "ray", "--workers", "2", "--no-audit"
    )
    assert status == 0, err
    run_ids = sorted(p.name for p in (out / "runs").iterdir())
    assert run_ids == ["ds_kd_T1_a0.8_s1", "ds_kd_T4_a0.8_s1", "nds_s1", "teacher_s1"]
    for run_id in run_ids:
        assert (
            predictions_equal(
                out / "runs" / run_id / "predictions.npz", ref / "runs" / run_id / "predictions.npz"
            )
            == []
        )
    lines = stdout.splitlines()
    finished_teacher = next(i for i, line in enumerate(lines) if line.startswith("[1/3] finished teacher_s1"))
    assert (
        lines.index("[3/3] start ds_s1 (2 runs in lockstep: ds_kd_T1_a0.8_s1 ... ds_kd_T4_a0.8_s1)")
        > finished_teacher
    )
    # progress without per-epoch bars: unit lines with counts and times, and a bar over units on stderr
    assert_unit_progress(lines, err, 3)
