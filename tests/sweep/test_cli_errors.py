"""Bad configs fail at once, before any training: ``kdfair sweep`` exits 2 with one line on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import TINY, env_without_crash, merged, run_cli, write_config


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"seedz": [0]}, "seedz: Extra inputs are not permitted"),
        ({"distill": {"temperatures": [4, -1]}}, "distill.temperatures.1: Input should be greater than 0"),
        ({"distill": {"alphas": [1.2]}}, "distill.alphas.0: Input should be less than or equal to 1"),
        ({"student": {"model": "lenet7"}}, "student.model: unknown model 'lenet7'; valid models: "),
        ({"data": {"name": "cifar11"}}, "data.name: unknown data set 'cifar11'; valid data sets: "),
        (
            {"data": {"name": "cifar10", "root": "{tmp}/nothing-here", "options": {}}},
            "data.root: data set 'cifar10': missing ",
        ),
        (
            {"data": {"name": "cifar10", "root": "{tmp}", "options": {}}},
            "missing cifar-10-batches-py/data_batch_1",
        ),
        (
            {"data": {"name": "trifeature", "options": {"size": 8}}},
            "data.options: data set 'trifeature': unknown option 'size'",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, changes: dict, expected: str) -> None:
    raw = merged(TINY, **changes)
    if "root" in raw["data"]:
        raw["data"]["root"] = raw["data"]["root"].replace("{tmp}", str(tmp_path))
    config = write_config(tmp_path, raw, "bad.yaml")
    status, stdout, stderr = run_cli("sweep", str(config), "--out", str(tmp_path / "out"))
    assert status == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith(f"kdfair sweep: error: {config}: "), stderr
    assert expected in stderr, stderr
    assert not (tmp_path / "out").exists()  # nothing was written, nothing trained


def test_console_command_exit_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, merged(TINY, train={"lr": -1}), "bad.yaml")
    command = [sys.executable, "-m", "kdfair", "sweep", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env_without_crash())
    assert done.returncode == 2
    assert done.stderr == f"kdfair sweep: error: {config}: train.lr: Input should be greater than 0\n"


def test_changed_config_in_an_existing_folder_stops_before_training(
    reference: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = reference
    config = write_config(tmp_path, merged(TINY, train={"lr": 0.05}))
    status, _, stderr = run_cli("sweep", str(config), "--out", str(out), "--no-audit")
    assert (
        status == 2 and "holds a different config for run 'teacher_s0'" in stderr and stderr.count("\n") == 1
    )


def test_option_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY)
    assert run_cli("sweep", str(config), "--workers", "0")[0] == 2
    status, _, stderr = run_cli("sweep", str(config), "--address", "auto")
    assert status == 2 and "--address needs --executor ray" in stderr


def test_folder_written_before_new_config_keys_still_resumes(
    reference: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: the sweep's pre-flight check compared config.json verbatim, so a folder written before
    ``train.schedule`` / ``warmup_epochs`` / ``fuse_students`` existed was refused as "a different config".
    Keys added later with their defaults must not block a resume (nothing is retrained)."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    for path in out.glob("runs/*/config.json"):
        raw = json.loads(path.read_text())
        for key in ("schedule", "warmup_epochs", "fuse_students"):
            raw["train"].pop(key)
        path.write_text(json.dumps(raw))
    config = write_config(tmp_path, TINY)
    status, stdout, stderr = run_cli("sweep", str(config), "--out", str(out), "--no-audit")
    assert status == 0, stderr
    assert "units: 0 trained" in stdout and " 0 failed" in stdout, stdout
