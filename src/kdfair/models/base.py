"""The interface every model in the registry implements.

``forward(x)`` returns logits. ``forward_all(x)`` returns logits, the penultimate features (the input of the
final linear layer, shape (B, feature_dim)) and, for convolutional models, the outputs of the main stages
(a list of (B, C_i, H_i, W_i) maps, used by attention transfer and FitNet hints).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class ModelOutput(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor
    maps: list[torch.Tensor]


class KDModel(nn.Module):
    """Base class: subclasses set ``feature_dim`` and implement :meth:`forward_all`."""

    feature_dim: int
    num_classes: int

    def forward_all(self, x: torch.Tensor) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x).logits
