"""Adversarial debiasing (Zhang et al. 2018; SPEC §2 "AD"): a gradient reversal layer and a group classifier.

The gradient reversal layer (Ganin & Lempitsky 2015) is the identity in the forward pass and multiplies the
incoming gradient by ``-scale`` in the backward pass. Placed between the student's features and the group
classifier, it lets one backward pass train the classifier to predict the protected group while pushing the
student's features to hide it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GradientReversal(torch.autograd.Function):
    """``forward(x, scale) = x``; ``backward: grad_x = -scale * grad_out`` (no gradient for ``scale``)."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = float(scale)
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad_output, None


def grad_reverse(inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Apply the gradient reversal layer with reversal scale ``scale`` (lambda, >= 0)."""
    return GradientReversal.apply(inputs, scale)


class GroupAdversary(nn.Module):
    """An MLP ``d -> hidden -> ReLU -> num_groups`` that predicts the protected group from features."""

    def __init__(self, feature_dim: int, num_groups: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_groups))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
