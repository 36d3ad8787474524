"""The two standard methods: cross-entropy only (teacher, NDS) and Hinton KD (SPEC §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from kdfair.losses.kd import hinton_kd_loss
from kdfair.methods.base import LOGITS, Batch, Method, MethodContext, TeacherOutput
from kdfair.models.base import KDModel


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrossEntropy(Method):
    """Plain cross-entropy on the labels: how teachers and non-distilled students are trained."""

    name = "ce"
    needs_teacher = False
    needs_teacher_logits = False

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        logits = student(batch.inputs)
        ce = F.cross_entropy(logits.float(), batch.labels)
        return {"loss": ce, "ce": ce, LOGITS: logits.detach()}


class HintonKD(Method):
    """``alpha * T^2 * KL(teacher^T || student^T) + (1 - alpha) * CE``."""

    name = "kd"

    def __init__(self, context: MethodContext) -> None:
        super().__init__()
        if context.temperature is None or context.alpha is None:
            raise ValueError("method 'kd' needs a temperature and an alpha")
        self.temperature = float(context.temperature)
        self.alpha = float(context.alpha)
        self.t2_scaling = context.t2_scaling

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        if teacher is None or teacher.logits is None:
            raise ValueError("method 'kd' needs the teacher's logits")
        logits = student(batch.inputs)
        parts = hinton_kd_loss(
            logits,
            teacher.logits,
            batch.labels,
            temperature=self.temperature,
            alpha=self.alpha,
            t2_scaling=self.t2_scaling,
        )
        return {**parts, LOGITS: logits.detach()}


def build_ce(options: NoOptions, context: MethodContext) -> Method:
    return CrossEntropy()


def build_kd(options: NoOptions, context: MethodContext) -> Method:
    return HintonKD(context)
