"""The interface between the trainer and a training method (``ce``, ``kd``, ``fitnet``, ``at``, ``ad``,
``mfd``, ``bird``, ``bird_no_meta``).

The trainer owns the loop, the data, the student's optimizer and the teacher. Each step it builds a
:class:`Batch`, the teacher's outputs for that batch (:class:`TeacherOutput`, from a live teacher or a cache),
and calls, in order:

1. ``method.before_step(student, batch, teacher, meta)`` (BIRD's meta update of its gate; a no-op otherwise);
2. ``parts = method.loss(student, batch, teacher)``; ``parts["loss"].backward()``;
3. the optimizer step over the student's parameters and ``method.parameters()`` (regressors, discriminators),
   except those the method trains with an optimizer of its own (``method.own_parameters()``).

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
    maps: list[torch.Tensor] | None = None  # stage outputs, live teachers only


# A callable that returns the next meta batch and its teacher outputs (BIRD's meta split); the teacher outputs
# are only needed by methods with ``needs_meta_teacher`` (an empty TeacherOutput() otherwise).
MetaSource = Callable[[], tuple[Batch, TeacherOutput]]


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

    def loss(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        """Loss parts for one batch; ``"loss"`` is the total to back-propagate, in nats per sample."""
        raise NotImplementedError

    def before_step(
        self, student: KDModel, batch: Batch, teacher: TeacherOutput | None, meta: MetaSource | None
    ) -> dict[str, float]:
        """Work done before the student's step (BIRD's meta update). Returns scalars to log."""
        return {}

    def start_epoch(self, epoch: int) -> None:
        """Called by the trainer before the first step of every epoch (``epoch`` counts from 0), also after a
        resume. A no-op by default; BIRD uses it to end its warm-up of plain feature KD."""

    def own_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters this method optimises itself (excluded from the student's optimizer)."""
        return iter(())


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
