"""Run configs of the trainer tests (a uniquely named module: ``conftest`` clashes with tests/sweep's)."""

from __future__ import annotations

from typing import Any

from kdfair.train.config import RunConfig

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
