"""The interface between the trainer and a training method (``ce``, ``kd``, ``fitnet``, ``at``, ``ad``,
``mfd``, ``bird``, ``bird_no_meta``).

The trainer owns the loop, the data, the student's optimizer and the teacher. Each step it builds a
:class:`Batch`, the teacher's outputs for that batch (:class:`TeacherOutput`, from a live teacher or a cache),
and calls, in order:

1. ``method.before_step(student, batch, teacher, meta)`` (BIRD's meta update of its gate, AD's adversary
   steps; a no-op otherwise);
2. ``parts = method.loss(student, batch, teacher)``; ``parts["loss"].backward()``; the train accuracy is
   counted from ``parts["logits"]`` (``LOGITS``), the student's logits of the batch, and the other parts
   are logged (:func:`logged_parts`);
3. the optimizer step over the student's parameters and ``method.parameters()`` (regressors, discriminators),
   except those the method trains with an optimizer of its own (``method.own_parameters()``).

A method steps its own optimizers with :meth:`Method.step_own`, which under DDP first averages their
gradients over the ranks (``gradient_sync``), so every rank's copy of ``phi`` or of the adversary takes the
same step. Values a step logs stay tensors on the device (no host sync per step; the trainer reads them once
per epoch).

A method is an ``nn.Module`` so that its trainable parts are saved in the checkpoint with the student.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from kdfair.models.base import KDModel


@dataclass
class Batch:
    """One training batch, already on the training device."""

    inputs: torch.Tensor  # (B, 3, H, W) float, normalised; or (B, L) int64 token ids
    labels: torch.Tensor  # (B,) int64
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B,) int64 group codes
    index: torch.Tensor | None = None  # (B,) positions in the split, used to look up cached teacher outputs


@dataclass
class TeacherOutput:
    """The teacher's outputs for a batch; fields a method does not need may be None."""

    logits: torch.Tensor | None = None  # (B, C)
    features: torch.Tensor | None = None  # (B, d_teacher)
    # stage outputs of a network teacher: live, or cached (None at the indices no method of the unit reads:
    # Method.teacher_maps_read)
    maps: list[torch.Tensor | None] | None = None


# A callable that returns the next meta batch and its teacher outputs (BIRD's meta split); the teacher outputs
# are only needed by methods with ``needs_meta_teacher`` (an empty TeacherOutput() otherwise).
MetaSource = Callable[[], tuple[Batch, TeacherOutput]]

# Values a step logs: scalar tensors (kept on the device) or Python floats
StepLogs = dict[str, torch.Tensor | float]

LOSS = "loss"  # Method.loss parts: the total to back-propagate, in nats per sample
LOGITS = "logits"  # Method.loss parts: the student's logits of the batch (B, C), detached; the train accuracy

# Averages the gradients of the given parameters over the DDP ranks, in place (kdfair.train.ddp)
GradientSync = Callable[[list[nn.Parameter]], None]


class Method(nn.Module):
    """Base class of training methods. Subclasses implement :meth:`loss`."""

    name: ClassVar[str]
    needs_teacher: ClassVar[bool] = True
    needs_teacher_logits: ClassVar[bool] = True
    needs_teacher_features: ClassVar[bool] = False
    needs_teacher_maps: ClassVar[bool] = False
    uses_meta_split: ClassVar[bool] = False
    # whether before_step reads the TeacherOutput of its meta batches (the MetaSource's second item). When
    # False the meta source may return an empty TeacherOutput() and skip the teacher's forward pass or cache
    # lookup for every meta batch. BIRD: False (its L_o on the meta batch uses the student only).
    needs_meta_teacher: ClassVar[bool] = False
    # set by kdfair.train.ddp.distribute: averages the gradients of the method's own parameters over the
    # ranks before :meth:`step_own` steps them; None in a single process
    gradient_sync: GradientSync | None = None

    def loss(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        """Loss parts for one batch: ``"loss"`` (``LOSS``) is the total to back-propagate, in nats per sample;
        ``"logits"`` (``LOGITS``) the student's logits of the batch, detached, from which the trainer counts
        the train accuracy; every other part is a scalar the trainer logs (:func:`logged_parts`)."""
        raise NotImplementedError

    def before_step(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta: MetaSource | None
    ) -> StepLogs:
        """Work done before the student's step (BIRD's meta update). Returns scalars to log (0-dim tensors
        stay on the device: no host sync)."""
        return {}

    def step_own(self, optimizer: torch.optim.Optimizer, *, skip_non_finite: bool = False) -> torch.Tensor:
        """Step one of the method's own optimizers (BIRD's phi, AD's adversary); under DDP their gradients
        are first averaged over the ranks, so every rank's copy takes the same step.

        ``skip_non_finite``: when any gradient is not finite, the parameters and the optimizer's state keep
        their values (a skipped step), decided on the device without a host sync. Returns whether the
        gradients were finite (a 0-dim bool tensor; always True without ``skip_non_finite``).
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self.gradient_sync is not None:
            self.gradient_sync(params)
        if not skip_non_finite:
            optimizer.step()
            return torch.ones((), dtype=torch.bool, device=params[0].device)
        return step_where_finite(optimizer, params)

    def start_epoch(self, epoch: int) -> None:
        """Called by the trainer before the first step of every epoch (``epoch`` counts from 0), also after a
        resume. A no-op by default; BIRD uses it to end its warm-up of plain feature KD."""

    def own_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters this method optimises itself (excluded from the student's optimizer)."""
        return iter(())

    def teacher_maps_read(self, n_teacher_maps: int) -> tuple[int, ...]:
        """Indices (ascending, from 0) of the teacher's stage maps :meth:`loss` reads, for a teacher with
        ``n_teacher_maps`` maps: the trainer caches only these (``kdfair.train.teacher``). Every map when
        the method needs maps and does not say which; none otherwise."""
        return tuple(range(n_teacher_maps)) if self.needs_teacher_maps else ()


def logged_parts(parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parts of :meth:`Method.loss` a step logs (epochs.csv ``train_<part>``): all but the total loss
    and the student's logits."""
    return {key: value for key, value in parts.items() if key not in (LOSS, LOGITS)}


def step_where_finite(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> torch.Tensor:
    """``optimizer.step()``, undone element by element when any gradient of ``params`` is not finite.

    No host sync: non-finite gradients are replaced by 0 for the step, and afterwards ``torch.where`` keeps
    the old parameters and optimizer state (a fresh state's old values are its zeros) unless all were
    finite. Adam keeps its step count on the parameters' device (``capturable``) on CUDA, so the count is
    restored too. Returns the 0-dim bool ``finite``.
    """
    grads = [p.grad for p in params if p.grad is not None]
    finite = torch.ones((), dtype=torch.bool, device=params[0].device)
    for grad in grads:
        finite = finite & torch.isfinite(grad).all()
    _state_on_param_device(optimizer)
    old_params = [p.detach().clone() for p in params]
    old_state = {
        id(p): {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
        for p in params
        if p in optimizer.state
    }
    for p in params:
        if p.grad is not None:
            p.grad = torch.where(finite, p.grad, torch.zeros_like(p.grad))
    optimizer.step()
    with torch.no_grad():
        for p, old in zip(params, old_params, strict=True):
            p.copy_(torch.where(finite, p, old))
            saved = old_state.get(id(p), {})
            for key, value in optimizer.state[p].items():
                if torch.is_tensor(value):
                    value.copy_(torch.where(finite, value, saved.get(key, torch.zeros_like(value))))
    return finite


def _state_on_param_device(optimizer: torch.optim.Optimizer) -> None:
    """Adam-like optimizers: ``capturable`` on CUDA (step counts on the device), off elsewhere."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        on_cuda = all(p.is_cuda for p in group["params"])
        group["capturable"] = on_cuda
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                optimizer.state[p]["step"] = step.to(p.device if on_cuda else "cpu")


@dataclass(frozen=True)
class MethodContext:
    """What a method's builder may use to size its trainable parts."""

    student: KDModel
    num_classes: int
    temperature: float | None  # None for teacher and NDS runs
    alpha: float | None
    t2_scaling: bool = True
    teacher_feature_dim: int | None = None
    teacher_map_channels: tuple[int, ...] | None = None  # channels of the teacher's stage maps, live teachers
    attribute_levels: dict[str, list[str]] = field(default_factory=dict)
    student_map_channels: tuple[int, ...] | None = None  # channels of the student's stage maps (FitNet hints)
    # the student optimizer's learning rate (``train.lr``); BIRD's virtual step uses it. None: not given
    learning_rate: float | None = None
