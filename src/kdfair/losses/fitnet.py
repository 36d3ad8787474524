"""FitNet hints (Romero et al. 2015; SPEC §2 "FitNet").

A regressor maps a student layer (the guided layer) to the teacher layer's shape (the hint), and the hint
loss is the mean squared error between them. On stage maps the regressor is a 1x1 convolution + BatchNorm
(as in Knowledge-Distillation-Zoo, which BIRD follows, seeds/004 appendix A.3); on penultimate features
(black-box teachers) it is a linear layer + BatchNorm. Spatial sizes that differ are average-pooled to the
smaller one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdfair.losses.feature import upcast


class HintRegressor(nn.Module):
    """``student (B, c_s, H, W) -> (B, c_t, H, W)`` (maps) or ``(B, d_s) -> (B, d_t)`` (features)."""

    def __init__(self, student_channels: int, teacher_channels: int, *, on_maps: bool) -> None:
        super().__init__()
        self.on_maps = on_maps
        if on_maps:
            self.body: nn.Module = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False),
                nn.BatchNorm2d(teacher_channels),
            )
        else:
            self.body = nn.Sequential(
                nn.Linear(student_channels, teacher_channels, bias=False), nn.BatchNorm1d(teacher_channels)
            )

    def forward(self, student: torch.Tensor) -> torch.Tensor:
        return self.body(student)


def match_spatial(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool two (B, C, H, W) maps to the smaller of their spatial sizes (per dimension)."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    return pool_to(a, size), pool_to(b, size)


def pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, size)``; as ``avg_pool2d`` with kernel = stride = the factor when ``size``
    divides the map (the same values and gradients, bit for bit on the CPU), whose CUDA backward is
    deterministic, unlike adaptive pooling's (docs/sweeps.md "Determinism")."""
    height, width = x.shape[-2:]
    if height % size[0] == 0 and width % size[1] == 0:
        factor = (height // size[0], width // size[1])
        return x if factor == (1, 1) else F.avg_pool2d(x, factor)
    return F.adaptive_avg_pool2d(x, size)


def hint_loss(regressed: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the regressed student layer and the (detached) teacher layer.

    Maps of different spatial size are pooled to the smaller first (:func:`match_spatial`).
    """
    if regressed.dim() == 4:
        regressed, teacher = match_spatial(regressed, teacher)
    if regressed.shape != teacher.shape:
        raise ValueError(f"hint shapes differ: {tuple(regressed.shape)} vs {tuple(teacher.shape)}")
    return F.mse_loss(upcast(regressed), upcast(teacher).detach())
