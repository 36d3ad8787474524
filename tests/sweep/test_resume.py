"""Resume: a sweep killed with SIGKILL at several points finishes, on re-running, with predictions
bit-for-bit equal to an uninterrupted sweep and no temporary files (``KDFAIR_CRASH_AT``, io.crash_point)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sweep_helpers import TINY, env_without_crash, predictions_equal, run_cli, temporary_files, write_config


def _killed_at(crash_at: str, config: Path, out: Path) -> None:
    """Run the sweep in a subprocess that SIGKILLs itself at ``crash_at``."""
    env = {**env_without_crash(), "KDFAIR_CRASH_AT": crash_at}
    command = [sys.executable, "-m", "kdfair", "sweep", str(config), "--out", str(out), "--no-audit"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, (crash_at, done.returncode, done.stderr[-2000:])


def test_killed_sweep_resumes_to_identical_predictions(reference: tuple[Path, str], tmp_path: Path) -> None:
    ref, _ = reference
    config = write_config(tmp_path, TINY)
    out = tmp_path / "out"
    runs = out / "runs"

    _killed_at("epoch:teacher_s0:1", config, out)  # during a teacher, after its first epoch's checkpoint
    assert (runs / "teacher_s0" / "checkpoint.pt").is_file() and not (runs / "teacher_s0" / "DONE").exists()

    _killed_at("write:predictions.npz", config, out)  # the teacher's predictions, just before the rename
    assert not (runs / "teacher_s0" / "predictions.npz").exists()
    assert [p.name.startswith(".predictions.npz.") for p in temporary_files(out)] == [True]

    _killed_at("epoch:ds_kd_T4_a0.8_s0:1", config, out)  # during the lockstep students of seed 0
    done = sorted(p.parent.name for p in runs.glob("*/DONE"))
    assert done == ["nds_s0", "nds_s1", "teacher_s0", "teacher_s1"]
    assert (runs / "ds_kd_T1_a0.8_s0" / "checkpoint.pt").is_file()
    assert (runs / "ds_kd_T4_a0.8_s0" / "checkpoint.pt").is_file()

    status, stdout, err = run_cli("sweep", str(config), "--out", str(out), "--no-audit")
    assert status == 0, err
    assert stdout.count("] done already: ") == 4 and "[5/6] start ds_s0" in stdout
    assert temporary_files(out) == []
    run_ids = sorted(p.name for p in runs.iterdir())
    assert run_ids == sorted(p.name for p in (ref / "runs").iterdir()) and len(run_ids) == 8
    for run_id in run_ids:
        assert (runs / run_id / "DONE").is_file()
        differ = predictions_equal(
            runs / run_id / "predictions.npz", ref / "runs" / run_id / "predictions.npz"
        )
        assert differ == [], (run_id, differ)
