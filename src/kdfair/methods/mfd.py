"""MFD, fair feature distillation (Jung et al. 2021, CVPR; SPEC §2 "MFD").

``L = CE + lambda_h * KD_T + (lambda_f / 2) * sum over (class c, group g) of MMD^2(T_c, S_cg)``, with the MMD
of :func:`kdfair.losses.mmd.mfd_mmd` (RBF kernel, bandwidth 2 * sigma * batch mean squared teacher-student
distance) between the detached teacher features of class c and the student features of class c and group g.
A learned linear map sends the student's features to the teacher's width when they differ. MFD's
label-wise balanced sampler is the trainer's ``train.sampler: balanced``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, Field

from kdfair.losses.feature import FeatureProjector
from kdfair.losses.mmd import mfd_mmd
from kdfair.methods.base import LOGITS, Batch, Method, MethodContext, TeacherOutput
from kdfair.methods.common import (
    STRICT,
    batch_groups,
    resolve_attribute,
    resolve_temperature,
    task_terms,
    teacher_feature_width,
    teacher_features,
)
from kdfair.models.base import KDModel


class MFDOptions(BaseModel):
    model_config = STRICT
    attribute: str | None = None  # protected attribute defining the groups; None: the data set's first
    mmd_weight: float = Field(1.0, ge=0.0)  # lambda_f; the MMD sum is multiplied by lambda_f / 2 (SPEC §2)
    sigma: float = Field(1.0, gt=0.0)  # RBF bandwidth multiplier (dimensionless)
    kd_weight: float = Field(0.0, ge=0.0)  # lambda_h, weight of the Hinton KD term; 0 = off (our default)
    temperature: float | None = Field(None, gt=0.0)  # KD temperature; None: the run's, else 3 (MFD)


class MFD(Method):
    """Cross-entropy, optional Hinton KD, and the class- and group-wise MMD to the teacher's features."""

    name = "mfd"
    needs_teacher_features = True

    def __init__(self, options: MFDOptions, context: MethodContext) -> None:
        super().__init__()
        self.options = options
        self.attribute, _ = resolve_attribute(self.name, options.attribute, context)
        self.t2_scaling = context.t2_scaling
        self.temperature = resolve_temperature(options.temperature, context, default=3.0)
        self.projector = FeatureProjector(context.student.feature_dim, teacher_feature_width(context))
        self.needs_teacher_logits = options.kd_weight > 0

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        out = student.forward_all(batch.inputs)
        groups = batch_groups(self.name, batch, self.attribute)
        mmd = mfd_mmd(
            self.projector(out.features),
            teacher_features(self.name, teacher),
            batch.labels,
            groups,
            sigma=self.options.sigma,
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
        total = parts.pop("task") + self.options.mmd_weight / 2.0 * mmd
        return {"loss": total, "mmd": mmd, **parts, LOGITS: out.logits.detach()}


def build_mfd(options: MFDOptions, context: MethodContext) -> Method:
    return MFD(options, context)
