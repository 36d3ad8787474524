"""CIFAR ResNets (He et al. 2016, §4.2): resnet20/32/44/56/110.

A 3x3 16-channel stem, then 3 stages of n BasicBlocks with 16/32/64 channels (n = (depth - 2) / 6; stages 2
and 3 halve the spatial size), global average pooling and a linear layer. Shortcuts are option A of the
paper: identity, with stride-2 subsampling and zero-padded extra channels where the shape changes, so they
add no parameters (resnet20: 0.27M, resnet56: 0.85M parameters for 10 classes). Kaiming-normal init.
``maps`` are the 3 stage outputs; ``features`` the 64-d pooled vector.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kdfair.errors import ConfigError
from kdfair.models.base import KDModel, ModelOutput
from kdfair.models.weights import load_pretrained

STAGE_CHANNELS = (16, 32, 64)


class PadShortcut(nn.Module):
    """Option-A shortcut: keep every ``stride``-th pixel, zero-pad the channels to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        low = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, low, self.extra - low))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a ReLU between and after the residual sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        needs_pad = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module = (
            PadShortcut(in_channels, out_channels, stride) if needs_pad else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(KDModel):
    """The CIFAR ResNet of depth ``6n + 2``."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ConfigError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.num_classes = num_classes
        self.feature_dim = STAGE_CHANNELS[-1]
        self.conv1 = nn.Conv2d(in_channels, STAGE_CHANNELS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_CHANNELS[0])
        stages = []
        channels = STAGE_CHANNELS[0]
        for index, out_channels in enumerate(STAGE_CHANNELS):
            first_stride = 1 if index == 0 else 2
            blocks = [BasicBlock(channels, out_channels, first_stride)]
            blocks += [BasicBlock(out_channels, out_channels, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        self.apply(_kaiming_init)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        out = F.relu(self.bn1(self.conv1(x)))
        maps = []
        for stage in self.stages:
            out = stage(out)
            maps.append(out)
        features = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return ModelOutput(self.fc(features), features, maps)


def _kaiming_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def cifar_resnet(
    depth: int,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    pretrained: str | Path | None = None,
) -> CifarResNet:
    """Build a CIFAR ResNet of ``depth``; ``image_size`` is unused (any size works)."""
    model = CifarResNet(depth, num_classes, in_channels)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
