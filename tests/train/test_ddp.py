"""DDP: one run trained by 2 CPU processes (torchrun, gloo) equals the same run in one process.

Each rank takes ``batch[rank::2]`` of the same batches (same order and augmentation) and DDP averages the
gradients. LeNet-5 has no BatchNorm and the KD loss is a batch mean, so with equal shards (batch 32 = 2 x
16, 96 train images) the averaged gradient is the gradient of the whole batch: the two ranks end with the
same parameters, and those equal the single-process run up to float rounding (sums in another order).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from standin import make_dataset
from train_helpers import run_config

from kdfair.predictions import load_predictions
from kdfair.train import ddp
from kdfair.train.runner import execute
from kdfair.train.teacher import build_network

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ddp_two_cpu_processes_match_one_process(sweep: Path, tmp_path: Path) -> None:
    config = run_config("ds_kd_T4_a0.8_s0")  # 2 epochs x 3 steps of 32 images (16 per rank)
    spec = tmp_path / "run.json"
    spec.write_text(config.model_dump_json())
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
        *("--master_addr", "127.0.0.1", "--master_port", str(_free_port())),
        *(str(HERE / "standin.py"), "--ddp", str(spec), "--sweep-dir", str(sweep), "--no-progress"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDFAIR_TEST_RANK_STATES": str(tmp_path)}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # (a) identical parameters on both ranks

    other = tmp_path / "single"
    (other / "runs").mkdir(parents=True)
    (other / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    (single,) = execute([config], other, device="cpu", progress=False)
    reference = torch.load(single / "checkpoint.pt", weights_only=False)["model"]
    torch.manual_seed(config.seed)
    initial = build_network(config.model, make_dataset()).state_dict()
    # (b) the 2-process run is the 1-process run, up to rounding far below how far training moved them
    mismatch = max(float((rank0[k] - reference[k]).abs().max()) for k in reference)
    moved = max(float((reference[k] - initial[k]).abs().max()) for k in reference)
    assert mismatch < 1e-6 and moved > 5e-3, (mismatch, moved)  # measured: 7e-9 and 1.5e-2

    folder = sweep / "runs" / config.run_id
    saved = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 2 and all(torch.equal(saved["model"][k], rank0[k]) for k in rank0)
    pred, ref_pred = load_predictions(folder), load_predictions(single)
    np.testing.assert_array_equal(pred.sample_id, ref_pred.sample_id)
    np.testing.assert_allclose(pred.probs, ref_pred.probs, atol=1e-5)
    assert (folder / "DONE").is_file() and len((folder / "epochs.csv").read_text().splitlines()) == 3


def test_nccl_pins_the_local_gpu_before_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With CUDA, ``torch.cuda.set_device(LOCAL_RANK)`` comes before ``init_process_group("nccl")``."""
    calls: list[tuple[str, object]] = []

    class Stop(Exception):
        pass

    def init(backend: str) -> None:
        calls.append(("init_process_group", backend))
        raise Stop

    spec = tmp_path / "run.json"
    spec.write_text(run_config("nds_s0", role="nds").model_dump_json())
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.append(("set_device", index)))
    monkeypatch.setattr(ddp.dist, "init_process_group", init)
    with pytest.raises(Stop):
        ddp.main([str(spec), "--sweep-dir", str(tmp_path)])
    assert calls == [("set_device", 3), ("init_process_group", "nccl")]
