"""Feature KD (BIRD's FKD baseline; SPEC §2).

``L = alpha * MSE(P(h_S), h_T) + (1 - alpha) * CE``, with ``h`` the penultimate features and ``P`` a learned
linear map when the student's and teacher's widths differ (identity otherwise). The helpers it shares with
the other methods: :mod:`kdfair.methods.common`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from kdfair.losses.feature import FeatureProjector, feature_mse, upcast
from kdfair.methods.base import LOGITS, Batch, Method, MethodContext, TeacherOutput
from kdfair.methods.common import STRICT, resolve_alpha, teacher_feature_width, teacher_features
from kdfair.models.base import KDModel


class FeatureKDOptions(BaseModel):
    model_config = STRICT
    alpha: float | None = Field(None, ge=0.0, le=1.0)  # weight of the feature MSE; None: the run's, else 0.9


class FeatureKD(Method):
    """``alpha * MSE(P(h_S), h_T) + (1 - alpha) * CE`` (BIRD's FKD baseline)."""

    name = "fkd"
    needs_teacher_logits = False
    needs_teacher_features = True

    def __init__(self, options: FeatureKDOptions, context: MethodContext) -> None:
        super().__init__()
        self.alpha = resolve_alpha(options.alpha, context, default=0.9)
        self.projector = FeatureProjector(context.student.feature_dim, teacher_feature_width(context))

    def loss(self, student: KDModel, batch: Batch, teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
        out = student.forward_all(batch.inputs)
        feature = feature_mse(self.projector(out.features), teacher_features(self.name, teacher).detach())
        ce = F.cross_entropy(upcast(out.logits), batch.labels)
        total = self.alpha * feature + (1.0 - self.alpha) * ce
        return {"loss": total, "feature": feature, "ce": ce, LOGITS: out.logits.detach()}


def build_fkd(options: FeatureKDOptions, context: MethodContext) -> Method:
    return FeatureKD(options, context)
