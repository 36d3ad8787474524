"""BIRD's fairness objective L_o (seeds/004 Eqn. 3; SPEC §2 "BIRD").

``L_o = sum over classes c of max over groups g of |CE(class c and group g) - CE(class c)|``, where each CE
is the mean per-sample cross-entropy (nats) over the named samples of the batch. Classes absent from the
batch contribute 0; groups absent from a class are left out of that class's max (never a division by zero).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdfair.losses.feature import upcast


def class_group_ce_gap(
    logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, num_groups: int | None = None
) -> torch.Tensor:
    """L_o of one batch: logits (B, C), labels and group codes (B,) int64 -> differentiable scalar (nats)."""
    num_classes = logits.shape[1]
    num_groups = int(groups.max().item()) + 1 if num_groups is None else num_groups
    per_sample = F.cross_entropy(upcast(logits), labels, reduction="none")
    zeros_c = per_sample.new_zeros(num_classes)
    class_mean = zeros_c.index_add(0, labels, per_sample) / torch.bincount(
        labels, minlength=num_classes
    ).clamp(min=1)
    cell = labels * num_groups + groups
    cell_count = torch.bincount(cell, minlength=num_classes * num_groups)
    cell_sum = per_sample.new_zeros(num_classes * num_groups).index_add(0, cell, per_sample)
    cell_mean = (cell_sum / cell_count.clamp(min=1)).view(num_classes, num_groups)
    gap = (cell_mean - class_mean.unsqueeze(1)).abs()
    # absent cells get 0: gaps are >= 0, so a 0 never changes the max over the present groups of a class,
    # and a class absent from the batch (all cells absent) contributes 0.
    gap = gap.masked_fill(cell_count.view(num_classes, num_groups) == 0, 0.0)
    return gap.max(dim=1).values.sum()
