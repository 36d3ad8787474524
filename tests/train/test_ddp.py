"""DDP: one run trained by 2 CPU processes (gloo) writes a complete, valid run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_helpers import run_config

from kdfair.predictions import load_predictions

HERE = Path(__file__).parent


@pytest.mark.slow
def test_ddp_two_cpu_processes(sweep: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (about 30 s): run with -m slow")
    config = run_config("ds_kd_T4_a0.8_s0", train={"max_steps_per_epoch": 2})
    spec = tmp_path / "run.json"
    spec.write_text(config.model_dump_json())
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        str(HERE / "standin.py"),
        "--ddp",
        str(spec),
        "--sweep-dir",
        str(sweep),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep / "runs" / config.run_id
    assert {p.name for p in folder.iterdir()} >= {
        "config.json",
        "epochs.csv",
        "checkpoint.pt",
        "predictions.npz",
        "run.json",
        "DONE",
    }
    pred = load_predictions(folder)
    assert pred.probs.shape == (40, 3) and np.isfinite(pred.features).all()
    rows = (folder / "epochs.csv").read_text().splitlines()
    assert len(rows) == 3 and json.loads((folder / "config.json").read_text())["run_id"] == config.run_id
