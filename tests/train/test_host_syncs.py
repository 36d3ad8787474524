"""A training step makes no host sync (issue 20, defect 5): on a GPU, every read of a tensor's value on the
host (``float(t)``, ``if t.all():``, ``.tolist()``, boolean-mask indexing) waits for the device. The lockstep
loop reads logged values once per epoch; these tests count the host reads kdfair's code makes while building
a batch and stepping every method (:mod:`host_reads`, a CPU stand-in for ``torch.cuda.set_sync_debug_mode``,
which scripts/gpu_check.py uses on CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from host_reads import HostReads
from train_helpers import run_config

from kdfair.losses.fairness import class_group_ce_gap
from kdfair.train import lockstep
from kdfair.train.runner import execute

METHODS = {  # every method a DS run can use, with the options that make each do all of its work
    "ce": {},
    "kd": {},
    "fkd": {},
    "fitnet": {},
    "at": {},
    "ad": {"kd_weight": 0.5, "adversary_steps": 2},
    "mfd": {"kd_weight": 0.5},
    "bird": {"warmup_epochs": 0},
    "bird_no_meta": {"warmup_epochs": 0},
}


def test_the_counter_sees_kdfair_host_reads_and_not_torch_internals() -> None:
    logits, labels, groups = (
        torch.randn(6, 3),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.tensor([0, 0, 0, 1, 1, 1]),
    )
    with HostReads() as reads:
        class_group_ce_gap(logits, labels, groups)  # num_groups=None: groups.max().item()
    assert len(reads.calls) == 1 and reads.calls[0].startswith("item at ") and "fairness.py" in reads.calls[0]
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param])
    param.grad = torch.ones(3)
    with HostReads() as reads:
        optimizer.step()  # reads its CPU step count: torch's, not kdfair's
        float(param.detach().sum())  # this test module is not kdfair either
    assert reads.calls == []


def test_training_steps_of_every_method_read_nothing_back(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = HostReads()
    real_step, real_batch = lockstep._step_all, lockstep._make_batch

    def counted_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with reads:
            return real_step(*args, **kwargs)

    def counted_batch(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with reads:
            return real_batch(*args, **kwargs)

    monkeypatch.setattr(lockstep, "_step_all", counted_step)
    monkeypatch.setattr(lockstep, "_make_batch", counted_batch)
    train = {"epochs": 1, "max_steps_per_epoch": 2}
    runs = [run_config(f"ds_{m}_s0", method=m, method_options=o, train=train) for m, o in METHODS.items()]
    folders = execute(runs, sweep, device="cpu", progress=False)
    assert all((f / "DONE").is_file() for f in folders)
    assert reads.calls == []
