"""The train accuracy comes from the logits each method's loss returns (``parts["logits"]``, issue 16), and
equals the count the old forward hook gave: the output of the student's last ``nn.Linear`` with
``num_classes`` outputs, compared with the batch's labels."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import run_config

from kdfair.methods.base import LOGITS, logged_parts
from kdfair.train import trainer
from kdfair.train.runner import execute

METHOD_RUNS = {
    "ce": {"role": "nds"},
    "kd": {},
    "fkd": {"method": "fkd"},
    "fitnet": {"method": "fitnet"},
    "at": {"method": "at"},
    "ad": {"method": "ad"},
    "mfd": {"method": "mfd"},
    "bird": {"method": "bird", "method_options": {"warmup_epochs": 1}},
}


class HeadCount:
    """The old ``LogitRecorder`` as an oracle: counts right predictions of the head's last output per step."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
        heads[-1].register_forward_hook(self._hook)
        self.last: torch.Tensor | None = None
        self.correct = self.seen = 0
        self.per_epoch: list[float] = []

    def _hook(self, module: nn.Module, args: object, output: torch.Tensor) -> None:
        self.last = output.detach()

    def count(self, labels: torch.Tensor) -> None:
        assert self.last is not None
        self.correct += int((self.last.argmax(dim=1) == labels).sum())
        self.seen += len(labels)


@pytest.mark.parametrize("name", list(METHOD_RUNS))
def test_train_accuracy_equals_the_head_count(
    name: str, sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters: list[HeadCount] = []
    real_build = trainer.build_student

    def build(*args: object, **kwargs: object):  # noqa: ANN202 - the trainer's own signature
        student = real_build(*args, **kwargs)  # type: ignore[arg-type]
        counter = HeadCount(student.model, student.model.num_classes)
        counters.append(counter)
        real_loss, real_start = student.method.loss, student.method.start_epoch

        def loss(net: nn.Module, batch, teacher) -> dict[str, torch.Tensor]:  # noqa: ANN001
            parts = real_loss(net, batch, teacher)
            counter.count(batch.labels)
            assert torch.equal(parts[LOGITS], counter.last)  # the very logits the hook saw
            assert LOGITS not in logged_parts(parts) and "loss" not in logged_parts(parts)
            return parts

        def start_epoch(epoch: int) -> None:
            if counter.seen:
                counter.per_epoch.append(counter.correct / counter.seen)
            counter.correct = counter.seen = 0
            real_start(epoch)

        student.method.loss, student.method.start_epoch = loss, start_epoch  # type: ignore[method-assign]
        return student

    from kdfair.train import runner

    monkeypatch.setattr(runner, "build_student", build)
    options = {"train": {"max_steps_per_epoch": 3}, **METHOD_RUNS[name]}
    run_id = "nds_s0" if name == "ce" else f"ds_{name}_s0"
    (folder,) = execute([run_config(run_id, **options)], sweep, device="cpu", progress=False)
    (counter,) = counters
    counter.per_epoch.append(counter.correct / counter.seen)
    with open(folder / "epochs.csv", newline="") as handle:
        logged = [float(row["train_acc"]) for row in csv.DictReader(handle)]
    assert logged == pytest.approx(counter.per_epoch, abs=1e-12) and len(logged) == 2
    assert not any(
        key.endswith(LOGITS) for key in (folder / "epochs.csv").read_text().splitlines()[0].split(",")
    )
