"""A lockstep student (:mod:`kdfair.train.lockstep`): one run's bookkeeping and its parts, split by concern.

- :class:`Learner`: what the run trains (network, method, optimizer, learning-rate schedule);
- :class:`RngStreams`: the run's own torch RNG streams, swapped in around each of its steps;
- :class:`MetaFeed`: BIRD's meta batches (methods with a meta split only);
- :class:`DDPHandles`: the DDP proxy the method calls and the gradient average (DDP runs only).

:meth:`Student.state` and :meth:`Student.restore` are the checkpoint's contents (``checkpoint.pt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from kdfair.methods.base import MetaSource, Method
from kdfair.models.base import KDModel
from kdfair.train.batches import BatchPlan
from kdfair.train.device import resumed_cuda_rng_state
from kdfair.train.rundir import RunFolder
from kdfair.train.sampling import MetaBatches


@dataclass
class Learner:
    """What one run trains: the network, the method (with its trainable parts), their optimizer and
    learning-rate schedule."""

    model: KDModel
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


@dataclass
class RngStreams:
    """A student's own torch RNG streams, swapped in before each of its steps and saved after it, so that
    training beside other students draws the same numbers as training alone."""

    cpu: torch.Tensor = field(default_factory=torch.get_rng_state)
    cuda: torch.Tensor | None = None  # on a GPU only

    def swap_in(self, device: torch.device) -> None:
        """Make these streams torch's current ones (``device``: the CUDA device of ``cuda``)."""
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, device)

    def save(self, device: torch.device) -> None:
        """Keep torch's current streams as this student's (after its step)."""
        self.cpu = torch.get_rng_state()
        if self.cuda is not None:
            self.cuda = torch.cuda.get_rng_state(device)


@dataclass
class MetaFeed:
    """BIRD's meta batches: the sampler of held-out positions and the callable the method pulls the next
    meta batch from (:class:`kdfair.methods.base.MetaSource`)."""

    batches: MetaBatches
    source: MetaSource


class GradientSync(Protocol):
    """:class:`kdfair.train.ddp.GradientAverage`: after the backward pass, averages the method gradients
    over the ranks; ``weight`` is this rank's share of the batch."""

    weight: float

    def __call__(self) -> None: ...


@dataclass
class DDPHandles:
    """How a student's step runs under DDP (set by :func:`kdfair.train.ddp.distribute`)."""

    net: nn.Module  # what the method calls: a DDP proxy of the model
    sync_grads: GradientSync


@dataclass
class Student:
    """One run inside a lockstep group: what it trains (``learner``), its batches and epochs, its own RNG
    streams, and, where they apply, BIRD's meta batches and the DDP handles."""

    run_id: str
    folder: RunFolder
    learner: Learner
    plan: BatchPlan
    epochs: int
    live_teacher: bool  # True: live forward per batch; False: cached outputs (or no teacher needed)
    max_steps: int | None = None  # train.max_steps_per_epoch
    rng: RngStreams = field(default_factory=RngStreams)
    meta: MetaFeed | None = None  # methods with a meta split (BIRD)
    ddp: DDPHandles | None = None  # None: one process, the method calls the model itself
    next_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> KDModel:
        return self.learner.model

    @property
    def method(self) -> Method:
        return self.learner.method

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.learner.optimizer

    @property
    def net(self) -> nn.Module:
        """What the method calls: the model, or its DDP proxy."""
        return self.model if self.ddp is None else self.ddp.net

    def state(self) -> dict[str, Any]:
        """Everything to resume after ``next_epoch`` epochs (saved as checkpoint.pt)."""
        return {
            "run_id": self.run_id,
            "epoch": self.next_epoch,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.learner.scheduler.state_dict(),
            "rng": self.rng.cpu,
            "cuda_rng": self.rng.cuda,
            "history": self.history,
        }

    def restore(self, state: dict[str, Any], device: torch.device, seed: int) -> None:
        """Continue from a checkpoint ``state``, on ``device`` (which may differ from the one that wrote it;
        see :func:`resumed_cuda_rng_state`); ``seed``: the run's seed."""
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.learner.scheduler.load_state_dict(state["scheduler"])
        self.next_epoch, self.history = int(state["epoch"]), list(state["history"])
        self.rng.cpu = state["rng"]
        self.rng.cuda = resumed_cuda_rng_state(state.get("cuda_rng"), device, seed, self.next_epoch)
