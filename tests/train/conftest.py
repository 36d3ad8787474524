"""Shared fixtures of the trainer tests: the stand-in data set and one trained teacher."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import standin  # noqa: E402

from kdfair.train.config import RunConfig  # noqa: E402

BASE: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "standin"},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "threads": 1, "milestones": [1]},
}


def run_config(run_id: str, role: str = "ds", **overrides: Any) -> RunConfig:
    """A small run on the stand-in data; DS runs default to KD from ``teacher_s0``."""
    raw: dict[str, Any] = {**BASE, "run_id": run_id, "role": role, "model": {"name": "lenet5"}}
    if role == "ds":
        raw.update(method="kd", temperature=4.0, alpha=0.8, teacher={"kind": "run", "run_id": "teacher_s0"})
    train = {**BASE["train"], **overrides.pop("train", {})}
    raw.update(overrides, train=train)
    return RunConfig.model_validate(raw)


@pytest.fixture(autouse=True)
def _standin(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdfair.train import runner

    real = runner.load_data
    monkeypatch.setattr(
        runner, "load_data", lambda c: standin.make_dataset() if c.name == "standin" else real(c)
    )
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep folder holding a finished teacher run ``teacher_s0`` (LeNet-5, 2 epochs)."""
    from kdfair.train import runner

    real = runner.load_data
    runner.load_data = lambda c: standin.make_dataset()
    try:
        out = tmp_path_factory.mktemp("teacher_sweep")
        runner.execute([run_config("teacher_s0", role="teacher")], out, device="cpu", progress=False)
    finally:
        runner.load_data = real
    return out


@pytest.fixture
def sweep(trained_teacher: Path, tmp_path: Path) -> Path:
    """A fresh copy of the teacher sweep for one test."""
    target = tmp_path / "sweep"
    shutil.copytree(trained_teacher, target)
    return target
