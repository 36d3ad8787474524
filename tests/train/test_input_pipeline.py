"""The input pipeline's GPU paths, checked on the CPU (issue 20, defect 8).

On CUDA an in-memory split is kept on the device (crop, flip and normalisation run there), host tensors go
through pinned memory without blocking, and the next batch is built on a worker thread. None of this may
change a batch or a result: here the device-resident gather and the prefetching trainer are run on the CPU
and compared with the plain path, bit for bit. (Throughput on a GPU: scripts/gpu_check.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from standin import make_dataset
from train_helpers import run_config

from kdfair.io import environment_info
from kdfair.train import runner
from kdfair.train.augment import InputPipeline
from kdfair.train.lockstep import EpochContext


@pytest.mark.parametrize("augment", [True, False])
def test_device_resident_split_gives_the_same_batches(augment: bool) -> None:
    split = make_dataset().split("train")
    kwargs = {"modality": "image", "augment": augment, "channels_last": True}
    plain = InputPipeline(split, **kwargs, images_on_device=False)
    resident = InputPipeline(split, **kwargs, images_on_device=True)
    generator = torch.Generator().manual_seed(3)
    for index in (np.arange(10), np.array([95, 0, 17, 17, 4])):
        drawn = plain.draw(len(index), generator) if augment else None
        torch.testing.assert_close(resident.batch(index, drawn), plain.batch(index, drawn), rtol=0, atol=0)
    host = torch.arange(4)
    assert resident.to_device(host) is host  # the CPU: no copy, no pinned memory


def test_prefetching_trainer_gives_the_same_runs(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the next batch on a worker thread (CUDA's default) changes nothing: the same draws in the
    same order, so the same bits."""
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t) for t in (2.0, 8.0)]
    plain = _bytes(runner.execute(runs, _with_teacher(sweep, "plain"), device="cpu", progress=False))
    monkeypatch.setattr(runner, "EpochContext", lambda **fields: EpochContext(**{**fields, "prefetch": True}))
    seen = []
    real = runner.train_epochs

    def spy(students, ctx):  # noqa: ANN001, ANN202
        seen.append(ctx.prefetch)
        return real(students, ctx)

    monkeypatch.setattr(runner, "train_epochs", spy)
    folders = runner.execute(runs, _with_teacher(sweep, "prefetch"), device="cpu", progress=False)
    assert seen == [True] and _bytes(folders) == plain


def _with_teacher(sweep: Path, name: str) -> Path:
    """A new sweep folder beside ``sweep`` that sees its trained teacher."""
    (sweep / name / "runs").mkdir(parents=True)
    (sweep / name / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    return sweep / name


def _bytes(folders: list[Path]) -> list[bytes]:
    return [(f / "predictions.npz").read_bytes() for f in folders]


def test_environment_names_the_gpu_the_run_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20, defect 9: ``cuda:1`` recorded GPU 0's name."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU number {index}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert environment_info("cuda:1")["cuda_device_name"] == "GPU number 1"
    assert environment_info("cuda")["cuda_device_name"] == "GPU number 2"
    assert "cuda_device_name" not in environment_info("cpu")
