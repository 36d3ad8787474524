"""Tiny KDModels and batches for the method tests (CPU, float64 where gradients are compared)."""

from __future__ import annotations

import torch
from torch import nn

from kdfair.methods.base import Batch, MethodContext, TeacherOutput
from kdfair.models.base import KDModel, ModelOutput


class TinyMLP(KDModel):
    """in_dim -> 6 (BatchNorm, tanh) -> feature_dim (tanh) -> classes; smooth, so finite differences work."""

    def __init__(self, in_dim: int = 5, feature_dim: int = 4, num_classes: int = 3) -> None:
        super().__init__()
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.body = nn.Sequential(
            nn.Linear(in_dim, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, feature_dim), nn.Tanh()
        )
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        features = self.body(x)
        return ModelOutput(self.fc(features), features, [])


class TinyConv(KDModel):
    """Two conv stages (channels ``widths``; the second halves the size), pooled features, linear head."""

    def __init__(self, widths: tuple[int, int] = (4, 6), num_classes: int = 3) -> None:
        super().__init__()
        self.feature_dim, self.num_classes, self.map_channels = widths[1], num_classes, widths
        self.stage1 = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        self.stage2 = nn.Sequential(nn.Conv2d(widths[0], widths[1], 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(widths[1], num_classes)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        m1 = self.stage1(x)
        m2 = self.stage2(m1)
        features = m2.mean(dim=(2, 3))
        return ModelOutput(self.fc(features), features, [m1, m2])


def make_batch(
    n: int,
    *,
    in_shape: tuple[int, ...] = (5,),
    classes: int = 3,
    groups: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Batch:
    """Random inputs; labels and groups cycle so every (class, group) cell is present when n allows."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    attr = (torch.arange(n) // classes) % groups
    inputs = torch.randn((n, *in_shape), generator=gen, dtype=dtype)
    return Batch(inputs=inputs, labels=labels, attributes={"sex": attr, "age": 1 - attr % 2})


def context_for(student: KDModel, **kw: object) -> MethodContext:
    base = dict(
        student=student,
        num_classes=student.num_classes,
        temperature=4.0,
        alpha=0.8,
        attribute_levels={"sex": ["f", "m"], "age": ["young", "old"]},
    )
    base.update(kw)
    return MethodContext(**base)  # type: ignore[arg-type]


def mlp(seed: int = 0) -> TinyMLP:
    torch.manual_seed(seed)
    return TinyMLP().double()


def teacher_output(batch: Batch, width: int, *, seed: int = 1, classes: int = 3) -> TeacherOutput:
    gen = torch.Generator().manual_seed(seed)
    n = len(batch.labels)
    return TeacherOutput(
        logits=torch.randn(n, classes, generator=gen, dtype=torch.float64),
        features=torch.randn(n, width, generator=gen, dtype=torch.float64),
    )
