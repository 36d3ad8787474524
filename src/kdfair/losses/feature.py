"""Feature distillation distance (SPEC §2, "Feature KD"; BIRD, seeds/004 Eqn. 2 and 4).

``D(h_S, h_T)`` is the mean squared error between the student's penultimate features and the teacher's,
averaged over the batch and the feature dimension (squared feature units). When the widths differ, a learned
linear map (:class:`FeatureProjector`) first sends ``h_S`` to the teacher's width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors (autocast) as float32; float32 and float64 (tests) unchanged."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def feature_mse(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """``mean((h_S - h_T)^2)`` over batch and features. Gradients flow into both arguments, so BIRD's gated
    target carries its gate's gradient; pass the teacher's features detached.

    Both inputs are (B, d) (after any projection); a width mismatch is a ValueError naming both widths.
    """
    if student_features.shape != teacher_features.shape:
        raise ValueError(
            f"feature shapes differ: student {tuple(student_features.shape)}, "
            f"teacher {tuple(teacher_features.shape)}"
        )
    return F.mse_loss(upcast(student_features), upcast(teacher_features))


class FeatureProjector(nn.Module):
    """Identity when the widths agree, else a learned linear map ``R^{d_student} -> R^{d_teacher}``."""

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.linear: nn.Linear | None = None
        if student_dim != teacher_dim:
            self.linear = nn.Linear(student_dim, teacher_dim)

    def forward(self, student_features: torch.Tensor) -> torch.Tensor:
        if self.linear is None:
            return student_features
        return self.linear(student_features.to(self.linear.weight.dtype))
