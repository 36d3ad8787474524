"""The per-epoch lr schedules of TrainConfig: "step" (SPEC §3) and "cosine" with linear warm-up."""

import math

import pytest
import torch

from kdfair.errors import ConfigError
from kdfair.train.config import TrainConfig
from kdfair.train.trainer import lr_factor, make_scheduler


def _lrs(train: TrainConfig) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=train.lr)
    scheduler = make_scheduler(train, optimizer)
    lrs = []
    for _ in range(train.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_step_schedule_divides_at_milestones():
    train = TrainConfig(epochs=6, lr=0.1, milestones=[2, 4], lr_decay=0.1)
    assert _lrs(train) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_hand_worked():
    # warm-up 2 of 6 epochs: 1/3, 2/3 of lr, then cos over the 4 remaining epochs at progress 0, 1/4, 1/2, 3/4
    train = TrainConfig(epochs=6, lr=0.3, schedule="cosine", warmup_epochs=2)
    expected = [0.1, 0.2] + [0.15 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert _lrs(train) == pytest.approx(expected)
    assert [lr_factor(train, e) for e in range(6)] == pytest.approx([x / 0.3 for x in expected])


def test_cosine_schedule_resumes_from_its_state_dict():
    train = TrainConfig(epochs=8, lr=1.0, schedule="cosine", warmup_epochs=1)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=train.lr)
    scheduler = make_scheduler(train, optimizer)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    state = (optimizer.state_dict(), scheduler.state_dict())
    fresh_opt = torch.optim.SGD([param], lr=train.lr)
    fresh = make_scheduler(train, fresh_opt)
    fresh_opt.load_state_dict(state[0])
    fresh.load_state_dict(state[1])
    fresh_opt.step()
    fresh.step()
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(lr_factor(train, 4))


def test_warmup_must_leave_cosine_epochs():
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(epochs=3, schedule="cosine", warmup_epochs=3)
