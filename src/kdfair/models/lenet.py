"""LeNet-5 for colour input (LeCun et al. 1998, with ReLU and max pooling).

conv 6@5x5 -> ReLU -> 2x2 max-pool -> conv 16@5x5 -> ReLU -> 2x2 max-pool -> fc 120 -> fc 84 -> fc C.
``features`` is the 84-d layer (after its ReLU); ``maps`` the two pooled conv outputs. At 3x32x32 input
and 10 classes it has 62,006 parameters; other square ``image_size`` values change only the first fc layer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.weights import load_pretrained

DEFAULT_IMAGE_SIZE = 32
FEATURE_DIM = 84


def _conv_output_size(image_size: int) -> int:
    """Side length after conv5 -> pool2 -> conv5 -> pool2 (no padding)."""
    return ((image_size - 4) // 2 - 4) // 2


class LeNet5(KDModel):
    """LeNet-5 on ``in_channels`` x ``image_size`` x ``image_size`` input."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = DEFAULT_IMAGE_SIZE) -> None:
        super().__init__()
        side = _conv_output_size(image_size)
        if side < 1:
            raise ConfigError(f"lenet5 needs image_size >= 16, got {image_size}")
        self.num_classes = num_classes
        self.feature_dim = FEATURE_DIM
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, FEATURE_DIM)
        self.fc3 = nn.Linear(FEATURE_DIM, num_classes)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        map1 = F.max_pool2d(F.relu(self.conv1(x)), 2)
        map2 = F.max_pool2d(F.relu(self.conv2(map1)), 2)
        hidden = F.relu(self.fc1(torch.flatten(map2, 1)))
        features = F.relu(self.fc2(hidden))
        return ModelOutput(self.fc3(features), features, [map1, map2])


def lenet5(
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
) -> LeNet5:
    """Build LeNet-5; ``image_size`` defaults to 32."""
    model = LeNet5(num_classes, in_channels, image_size or DEFAULT_IMAGE_SIZE)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
