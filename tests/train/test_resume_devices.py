"""Resuming on another device (issue 20, defect 7).

A checkpoint written on a GPU holds a CUDA RNG state (and, for BIRD, a phi optimizer with ``capturable``
step counts): resumed on a CPU-only machine the run must never call ``torch.cuda`` and must give the result
of the uninterrupted run. A checkpoint written on the CPU has no CUDA RNG state: resumed on a GPU, each
lockstep student must still get a CUDA RNG stream of its own (before, all drew from the global one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import run_config

from kdfair.train import lockstep
from kdfair.train.device import resumed_cuda_rng_state
from kdfair.train.runner import execute
from kdfair.train.sampling import STREAM_CUDA_RESUME, torch_seed_for
from kdfair.train.student import Learner, Student


class Interrupted(Exception):
    pass


def _arrays(run_dir: Path) -> dict[str, bytes]:
    with np.load(run_dir / "predictions.npz") as npz:
        return {key: npz[key].tobytes() for key in npz.files}


def test_gpu_checkpoint_resumes_on_the_cpu(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = {"epochs": 3, "max_steps_per_epoch": 2}
    runs = [
        run_config("ds_kd_T4_a0.8_s0", train=train),
        run_config("ds_bird_s0", method="bird", method_options={"warmup_epochs": 0}, train=train),
    ]
    reference = tmp_path / "reference"
    (reference / "runs").mkdir(parents=True)
    (reference / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
    expected = [_arrays(f) for f in execute(runs, reference, device="cpu", progress=False)]

    def crash(point: str) -> None:
        if point == "epoch:ds_bird_s0:2":
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(lockstep, "crash_point", crash)
        with pytest.raises(Interrupted):
            execute(runs, sweep, device="cpu", progress=False)
    for run in runs:  # make the checkpoints look as a GPU run writes them
        path = sweep / "runs" / run.run_id / "checkpoint.pt"
        state = torch.load(path, weights_only=False)
        state["cuda_rng"] = torch.arange(16, dtype=torch.uint8)
        extra = state["method"].get("_extra_state")
        if extra is not None:  # BIRD's phi optimizer with its step count on the GPU
            extra["phi_optimizer"]["param_groups"][0]["capturable"] = True
        torch.save(state, path)

    def no_cuda(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run on the CPU called torch.cuda")

    monkeypatch.setattr(torch.cuda, "set_rng_state", no_cuda)
    monkeypatch.setattr(torch.cuda, "get_rng_state", no_cuda)
    resumed = execute(runs, sweep, device="cpu", progress=False)
    assert [_arrays(f) for f in resumed] == expected


class FakeCudaGenerator:
    """Stands in for ``torch.Generator("cuda")`` on a machine without CUDA; its state names its seed."""

    seeds: list[int] = []

    def __init__(self, device: torch.device | str) -> None:
        assert torch.device(device).type == "cuda"
        self.seed = -1

    def manual_seed(self, seed: int) -> FakeCudaGenerator:
        self.seed = seed
        FakeCudaGenerator.seeds.append(seed)
        return self

    def get_state(self) -> torch.Tensor:
        return torch.tensor(list(self.seed.to_bytes(8, "little")), dtype=torch.uint8)


def _student(run_id: str) -> Student:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    learner = Learner(model, torch.nn.Module(), optimizer, scheduler)  # type: ignore[arg-type]
    return Student(run_id, None, learner, None, 3, False)  # type: ignore[arg-type]


def test_cpu_checkpoint_on_cuda_gives_each_student_its_own_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "Generator", FakeCudaGenerator)
    monkeypatch.setattr(FakeCudaGenerator, "seeds", [])
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    saved = torch.arange(16, dtype=torch.uint8)
    assert resumed_cuda_rng_state(saved, cpu, 0, 2) is None  # a GPU checkpoint on the CPU: no CUDA state
    assert resumed_cuda_rng_state(saved, cuda, 0, 2) is saved

    checkpoint = {**_student("a").state(), "epoch": 2, "cuda_rng": None}  # written on the CPU
    students = [_student("a"), _student("b")]
    for student in students:
        student.restore(checkpoint, cuda, seed=7)
    states = [s.rng.cuda for s in students]
    assert all(state is not None for state in states) and states[0] is not states[1]  # a stream each
    assert torch.equal(states[0], states[1])  # both as the run alone: seeded by (seed, epoch) alone
    assert FakeCudaGenerator.seeds == [torch_seed_for(7, 2, STREAM_CUDA_RESUME)] * 2
    later = resumed_cuda_rng_state(None, cuda, 7, 3)
    assert not torch.equal(later, states[0])  # another epoch: another stream (not epoch 2's replayed)
