"""Shared fixtures of the trainer tests: the stand-in data set and one trained teacher."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import standin  # noqa: E402
from train_helpers import run_config  # noqa: E402

from kdfair.train.teacher import Teacher  # noqa: E402


@pytest.fixture(autouse=True)
def _standin(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdfair.train import datasets

    real = datasets.load_data
    monkeypatch.setattr(
        datasets, "load_data", lambda c: standin.make_dataset() if c.name == "standin" else real(c)
    )
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep folder holding a finished teacher run ``teacher_s0`` (LeNet-5, 2 epochs)."""
    from kdfair.train import datasets, runner

    real = datasets.load_data
    datasets.load_data = lambda c: standin.make_dataset()
    try:
        out = tmp_path_factory.mktemp("teacher_sweep")
        runner.execute([run_config("teacher_s0", role="teacher")], out, device="cpu", progress=False)
    finally:
        datasets.load_data = real
    return out


@pytest.fixture
def sweep(trained_teacher: Path, tmp_path: Path) -> Path:
    """A fresh copy of the teacher sweep for one test."""
    target = tmp_path / "sweep"
    shutil.copytree(trained_teacher, target)
    return target


@pytest.fixture
def live_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch sizes of every live teacher forward."""
    calls: list[int] = []
    real = Teacher.live

    def counting(self: Teacher, inputs: torch.Tensor, runtime):  # noqa: ANN001, ANN202
        calls.append(len(inputs))
        return real(self, inputs, runtime)

    monkeypatch.setattr(Teacher, "live", counting)
    return calls
