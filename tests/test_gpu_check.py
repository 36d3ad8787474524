"""scripts/gpu_check.sh (issue 14) parses, and on a machine without CUDA it stops at its CUDA check with exit
status 3 and a message that says so, having written device.json (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_check_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs the whole check")
def test_gpu_check_fails_loudly_without_cuda(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "gpu_check: FAILED: no CUDA device" in done.stderr
    assert "no CUDA device: this check needs a GPU machine" in done.stdout
    assert json.loads((tmp_path / "device.json").read_text())["cuda_available"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.json", "log.txt"]  # stopped before the rest
