"""Trainer per-step overheads: no per-step host syncs, one teacher lookup per batch, cheap determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.utils.deterministic as deterministic
from train_helpers import run_config

from kdfair.train.config import TrainConfig
from kdfair.train.device import deterministic_threads
from kdfair.train.lockstep import StepTotals
from kdfair.train.runner import execute
from kdfair.train.teacher import Teacher


def test_step_totals_weighted_means() -> None:
    totals = StepTotals()
    totals.add(4, torch.tensor(2.0), torch.tensor(3), {"kd": torch.tensor(1.0), "gate": 0.5})
    totals.add(2, torch.tensor(5.0), torch.tensor(2), {"kd": torch.tensor(4.0), "gate": 1.5})
    loss, accuracy, extra = totals.means()
    assert totals.seen == 6
    assert loss == pytest.approx((4 * 2.0 + 2 * 5.0) / 6)
    assert accuracy == pytest.approx(5 / 6)
    assert extra == {"kd": pytest.approx((4 + 8) / 6), "gate": pytest.approx((2 + 3) / 6)}


def test_deterministic_block_skips_nan_fill_and_restores() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), deterministic.fill_uninitialized_memory)
    with deterministic_threads(TrainConfig(deterministic=True)):
        assert torch.are_deterministic_algorithms_enabled()
        assert deterministic.fill_uninitialized_memory is False
        assert not torch.isnan(torch.empty(1000)).all()  # not NaN-filled (the fill costs ~15% on ResNet-20)
    assert (torch.are_deterministic_algorithms_enabled(), deterministic.fill_uninitialized_memory) == before
    with deterministic_threads(TrainConfig(deterministic=False)):
        assert deterministic.fill_uninitialized_memory == before[1]


def _host_syncs(monkeypatch: pytest.MonkeyPatch, sweep: Path, batch_size: int, tag: str) -> int:
    """Tensor -> Python number conversions during a 2-student, 2-epoch lockstep execute."""
    calls = [0]
    real_float, real_item = torch.Tensor.__float__, torch.Tensor.item

    def counted_float(self: torch.Tensor) -> float:
        calls[0] += 1
        return real_float(self)

    def counted_item(self: torch.Tensor):  # noqa: ANN202
        calls[0] += 1
        return real_item(self)

    runs = [
        run_config(f"ds_kd_T{t}_a0.8_{tag}", temperature=t, train={"batch_size": batch_size})
        for t in (2.0, 4.0)
    ]
    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "__float__", counted_float)
        patch.setattr(torch.Tensor, "item", counted_item)
        execute(runs, sweep, device="cpu", progress=False)
    return calls[0]


def test_host_syncs_do_not_grow_with_steps(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    few = _host_syncs(monkeypatch, sweep, 48, "few")  # 2 steps per epoch
    many = _host_syncs(monkeypatch, sweep, 12, "many")  # 8 steps per epoch
    assert few == many


def test_cached_teacher_lookup_once_per_batch(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = Teacher.lookup

    def counting(self: Teacher, index: torch.Tensor):  # noqa: ANN202
        calls.append(len(index))
        return real(self, index)

    monkeypatch.setattr(Teacher, "lookup", counting)
    runs = [run_config(f"ds_kd_T{t}_a0.8_s0", temperature=t, train={"augment": False}) for t in (2, 4, 8)]
    execute(runs, sweep, device="cpu", progress=False)
    assert calls == [32, 32, 32] * 2  # 3 batches x 2 epochs, shared by the 3 students
