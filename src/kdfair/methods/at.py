"""Attention transfer (Zagoruyko & Komodakis 2017; SPEC §2 "AT").

``L = CE + kd_weight * KD + beta/2 * sum over layer pairs of mean((a_S - a_T)^2)``, with ``a`` the
L2-normalised channel mean of squared activations (:mod:`kdfair.losses.attention`). beta = 1000 as in the AT
paper. BIRD's experiments use 1e6 (seeds/004 appendix A.1) with the AT repository's maps, which are ours, so
the ``configs/paper/bird_*.yaml`` set ``beta: 1e6``. Needs the stage maps of a live teacher.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, Field

from kdfair.losses.attention import attention_transfer_loss
from kdfair.methods.base import LOGITS, Batch, Method, MethodContext, TeacherOutput
from kdfair.methods.common import STRICT, resolve_temperature, task_terms
from kdfair.models.base import KDModel


class AttentionTransferOptions(BaseModel):
    model_config = STRICT
    beta: float = Field(1000.0, ge=0.0)  # AT weight (AT paper: 1e3; BIRD's runs: 1e6); the loss uses beta / 2
    # (student map index, teacher map index) pairs; None: the last min(n_student, n_teacher) maps, in order
    layer_pairs: list[tuple[int, int]] | None = Field(None, min_length=1)
    kd_weight: float = Field(0.0, ge=0.0)  # weight of the Hinton KD term on logits; 0 = off
    temperature: float | None = Field(None, gt=0.0)  # KD temperature; None: the run's, else 4


def default_pairs(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """The last ``min(n_student, n_teacher)`` maps of each model, paired in order."""
    n = min(n_student, n_teacher)
    return [(n_student - n + j, n_teacher - n + j) for j in range(n)]


class AttentionTransfer(Method):
    """Attention transfer on stage maps plus cross-entropy (and optional Hinton KD)."""

    name = "at"
    needs_teacher_maps = True

    def __init__(self, options: AttentionTransferOptions, context: MethodContext) -> None:
        super().__init__()
        self.options = options
        self.t2_scaling = context.t2_scaling
        self.temperature = resolve_temperature(options.temperature, context, default=4.0)
        self.needs_teacher_logits = options.kd_weight > 0
        student_maps = context.student_map_channels or getattr(context.student, "map_channels", None)
        self.student_map_count = None if student_maps is None else len(student_maps)

    def teacher_maps_read(self, n_teacher_maps: int) -> tuple[int, ...]:
        """The teacher halves of the layer pairs (all maps when the student's map count is unknown)."""
        if self.options.layer_pairs is not None:
            return tuple(sorted({t % n_teacher_maps for _, t in self.options.layer_pairs}))
        if self.student_map_count is None:
            return tuple(range(n_teacher_maps))
        return tuple(t for _, t in default_pairs(self.student_map_count, n_teacher_maps))

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        if teacher is None or not teacher.maps:
            raise ValueError("method 'at' needs the teacher's stage maps (a live convolutional teacher)")
        out = student.forward_all(batch.inputs)
        if not out.maps:
            raise ValueError("method 'at' needs a student with stage maps (a convolutional model)")
        pairs = self.options.layer_pairs or default_pairs(len(out.maps), len(teacher.maps))
        attention = attention_transfer_loss(
            [out.maps[s] for s, _ in pairs], [teacher.maps[t] for _, t in pairs], beta=self.options.beta
        )
        parts = task_terms(
            self.name,
            out.logits,
            batch.labels,
            teacher,
            kd_weight=self.options.kd_weight,
            temperature=self.temperature,
            t2_scaling=self.t2_scaling,
        )
        total = parts.pop("task") + attention
        return {"loss": total, "attention": attention, **parts, LOGITS: out.logits.detach()}


def build_at(options: AttentionTransferOptions, context: MethodContext) -> Method:
    return AttentionTransfer(options, context)
