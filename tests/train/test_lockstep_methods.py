"""Lockstep equals one-by-one for the methods that carry their own state (BIRD's phi and its Adam state, AD's
adversary and its optimizer, MFD's projector), with MFD's balanced sampler: each student of a lockstep unit
ends bit for bit where it ends trained alone (issue 20's test gaps)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from standin import make_dataset
from train_helpers import run_config

from kdfair.train.runner import execute
from kdfair.train.trainer import make_plan


def _state(folder: Path) -> dict[str, object]:
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=False)
    with np.load(folder / "predictions.npz") as npz:
        arrays = {key: npz[key].tobytes() for key in npz.files}
    return {"model": checkpoint["model"], "method": checkpoint["method"], "predictions": arrays}


def _equal(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if torch.is_tensor(a):
        return torch.is_tensor(b) and torch.equal(a, b)
    return a == b


def test_bird_ad_mfd_in_lockstep_equal_one_by_one(sweep: Path, tmp_path: Path) -> None:
    train = {"sampler": "balanced", "max_steps_per_epoch": 2}
    runs = [
        run_config("ds_bird_a_s0", method="bird", method_options={"warmup_epochs": 1}, train=train),
        run_config("ds_bird_b_s0", method="bird", method_options={"warmup_epochs": 0}, train=train),
        run_config("ds_ad_s0", method="ad", method_options={"adversary_steps": 2}, train=train),
        run_config("ds_mfd_s0", method="mfd", method_options={"kd_weight": 0.5}, train=train),
    ]
    together = execute(runs, sweep, device="cpu", progress=False)
    for run, folder in zip(runs, together, strict=True):
        other = tmp_path / f"alone_{run.run_id}"
        (other / "runs").mkdir(parents=True)
        (other / "runs" / "teacher_s0").symlink_to(sweep / "runs" / "teacher_s0")
        (single,) = execute([run], other, device="cpu", progress=False)
        assert _equal(_state(single), _state(folder)), run.run_id
    phis = [torch.load(f / "checkpoint.pt", weights_only=False)["method"]["phi"] for f in together[:2]]
    assert not torch.equal(phis[0], phis[1])  # the two BIRD students differ: each kept its own phi


def test_balanced_plan_balances_cells_of_the_train_positions() -> None:
    """``train.sampler: balanced`` with a meta split: batches of train positions (never meta ones), each
    with the (class, group) cells as even as the batch size allows."""
    dataset = make_dataset()
    config = run_config("ds_mfd_s0", method="mfd", train={"sampler": "balanced", "batch_size": 16})
    plan, meta = make_plan(config, dataset, SimpleNamespace(uses_meta_split=True))  # type: ignore[arg-type]
    assert meta is not None and not set(meta) & set(plan.positions)
    split = dataset.split("train")
    cells = split.labels * 2 + split.attributes["colour"]
    batches = plan.batches(0)
    assert len(batches) == -(-len(plan.positions) // 16)
    for batch in batches:
        assert set(batch) <= set(plan.positions) and len(batch) == 16
        counts = np.bincount(cells[batch], minlength=6)
        assert counts.max() - counts.min() <= 1  # 16 over 6 cells: 2 or 3 each
    assert [b.tolist() for b in plan.batches(0)] == [b.tolist() for b in batches]  # a function of the epoch
    assert [b.tolist() for b in plan.batches(1)] != [b.tolist() for b in batches]
