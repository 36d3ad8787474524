"""Attention transfer (Zagoruyko & Komodakis 2017, "Paying more attention to attention"; SPEC §2 "AT").

The attention map of a (B, C, H, W) activation is the channel mean of the squared activations, flattened to
(B, H*W) and L2-normalised per sample. The loss, as in the paper's official code, is
``beta / 2 * sum over layer pairs of mean((a_S - a_T)^2)`` (mean over batch and positions); beta = 1000 in
the paper. Maps of different spatial size are average-pooled to the smaller one before taking attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kdfair.losses.feature import upcast
from kdfair.losses.fitnet import match_spatial


def attention_map(activations: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``normalize(mean_c(A_c^2))`` flattened: (B, C, H, W) -> (B, H*W), unit L2 norm per row."""
    if activations.dim() != 4:
        raise ValueError(
            f"attention maps need (B, C, H, W) activations, got shape {tuple(activations.shape)}"
        )
    squared_mean = upcast(activations).pow(2).mean(dim=1)
    return F.normalize(squared_mean.flatten(1), p=2, dim=1, eps=eps)


def attention_transfer_loss(
    student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor], *, beta: float = 1000.0
) -> torch.Tensor:
    """``beta/2 * sum_j mean((attention(S_j) - attention(T_j))^2)`` over paired maps (teacher detached)."""
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError(
            f"attention transfer needs matching non-empty map lists, got {len(student_maps)} student and "
            f"{len(teacher_maps)} teacher maps"
        )
    total = student_maps[0].new_zeros((), dtype=upcast(student_maps[0]).dtype)
    for student, teacher in zip(student_maps, teacher_maps, strict=True):
        student, teacher = match_spatial(student, teacher.detach())
        total = total + (attention_map(student) - attention_map(teacher)).pow(2).mean()
    return beta / 2.0 * total
